//! The session REST API: initiate (or read the status of the session to
//! resume), chunks in parallel with their digests, complete, and the
//! whole-file SHA-256 checked against the server's.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Body, Method};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncSeek};
use tokio::task::JoinSet;

use super::Shared;
use super::body::ChunkBody;
use super::error::{Error, Operation};
use super::progress::{Event, RestartReason};
use super::retry::{backoff, resend, retrying};
use super::source::Source;
use super::upload::{Finished, Probe, Run, Start};
use super::wire::{json, unless_stalled};
use crate::digest::Sha256Digest;

/// How many times a complete that reports missing chunks is followed by
/// sending them again.
const REPAIR_ROUNDS: u32 = 2;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Initiated {
    session_id: String,
    chunk_size: u64,
    total_chunks: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    file_size: u64,
    chunk_size: u64,
    total_chunks: u64,
    received_chunks: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    chunk_id: u64,
    size: u64,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Completed {
    file_size: u64,
    sha256: String,
}

/// How a session cuts the file into chunks.
#[derive(Debug, Clone, Copy)]
struct Layout {
    size: u64,
    chunk_size: u64,
    total: u64,
}

impl Layout {
    /// The layout a server announced, checked against the source's size
    /// and the largest chunk the client buffers.
    fn new(
        operation: Operation,
        shared: &Shared,
        size: u64,
        chunk_size: u64,
        total: u64,
    ) -> Result<Self, Error> {
        let bad = |detail: String| Err(Error::protocol(operation, detail));
        if chunk_size == 0 || chunk_size > shared.max_chunk_size {
            return bad(format!(
                "chunk size {chunk_size} is not between 1 and the client's limit of {} bytes",
                shared.max_chunk_size
            ));
        }
        if total != size.div_ceil(chunk_size) {
            return bad(format!(
                "{total} chunks of {chunk_size} bytes cannot hold {size} bytes"
            ));
        }
        Ok(Layout {
            size,
            chunk_size,
            total,
        })
    }

    /// The offset and length of chunk `index`.
    fn range(&self, index: u64) -> (u64, usize) {
        let offset = index * self.chunk_size;
        let len = self.chunk_size.min(self.size - offset);
        // At most the chunk size, which fits in memory (checked by the builder).
        (offset, usize::try_from(len).unwrap_or(usize::MAX))
    }
}

/// Uploads `source` in the session REST API.
pub(crate) async fn run<R>(
    run: &Arc<Run>,
    source: &mut Source<R>,
    start: Start,
    mut restarted: Option<RestartReason>,
) -> Result<Finished, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let shared = &run.shared;
    let mut resumed = None;
    if let Start::Resume { session, explicit } = start {
        let probe = status(run, &session).await.and_then(|status| {
            if status.file_size != source.size {
                return Ok(Probe::Mismatch(format!(
                    "it is for {} bytes, the source has {}",
                    status.file_size, source.size
                )));
            }
            let layout = Layout::new(
                Operation::Status,
                shared,
                source.size,
                status.chunk_size,
                status.total_chunks,
            )?;
            let received: HashSet<u64> = status
                .received_chunks
                .into_iter()
                .filter(|&i| i < layout.total)
                .collect();
            Ok(Probe::Fits((layout, received)))
        });
        let discard = abort(shared, &session);
        resumed = run
            .settle(&session, explicit, probe, GONE, discard, &mut restarted)
            .await?
            .map(|(layout, received)| (session, layout, received));
    }
    let (session, layout, received, held) = match resumed {
        Some((session, layout, received)) => {
            let held: u64 = received.iter().map(|&i| layout.range(i).1 as u64).sum();
            run.resumed(&session, layout.chunk_size, source, held)
                .await?;
            (session, layout, received, Some(held))
        }
        None => {
            let (session, layout) = initiate(run, source).await?;
            run.started(&session, layout.chunk_size, source).await?;
            (session, layout, HashSet::new(), None)
        }
    };
    // Hash the whole file on the way, unless the caller gave its digest
    // (then the server checks it, and held chunks need not be read).
    let whole = run.expected.is_none().then(Sha256::new);
    let whole = send_chunks(
        run,
        source,
        &session,
        layout,
        0..layout.total,
        &received,
        whole,
    )
    .await?
    .map(Sha256Digest::from_hasher);
    run.tracker.event(Event::Completing {
        session: session.clone(),
    });
    let completed = complete(run, source, &session, layout, whole).await?;
    if completed.file_size != source.size {
        return Err(Error::protocol(
            Operation::Complete,
            format!(
                "the stored file has {} bytes, the source {}",
                completed.file_size, source.size
            ),
        ));
    }
    if let Some(ours) = whole.or(run.expected)
        && !completed.sha256.eq_ignore_ascii_case(&ours.to_string())
    {
        return Err(Error::ChecksumMismatch {
            expected: ours.to_string(),
            actual: completed.sha256,
        });
    }
    Ok(Finished {
        session,
        sha256: Some(completed.sha256.to_ascii_lowercase()),
        resumption: Run::resumption(held, restarted),
    })
}

/// The statuses of a status read that say the session is gone for good.
const GONE: &[u16] = &[404, 410];

/// `POST {base}/initiate`.
async fn initiate<R>(run: &Run, source: &Source<R>) -> Result<(String, Layout), Error> {
    let shared = &run.shared;
    let url = format!("{}/initiate", shared.rest_base);
    let mut body = json!({ "fileName": source.name, "fileSize": source.size });
    if let Some(media_type) = &run.content_type {
        body["contentType"] = json!(media_type);
    }
    if let Some(digest) = run.expected {
        body["sha256"] = json!(digest.to_string());
    }
    let body = body.to_string();
    let initiated: Initiated = retrying(&shared.retry, &run.tracker, Operation::Initiate, || {
        let request = shared
            .wire
            .request(Method::POST, &url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        async move {
            let response = shared.wire.send(Operation::Initiate, request).await?;
            json(Operation::Initiate, response).await
        }
    })
    .await?;
    check_id(Operation::Initiate, &initiated.session_id)?;
    let layout = Layout::new(
        Operation::Initiate,
        shared,
        source.size,
        initiated.chunk_size,
        initiated.total_chunks,
    )?;
    Ok((initiated.session_id, layout))
}

/// A session id is used in URLs: it must be a plain path segment.
fn check_id(operation: Operation, id: &str) -> Result<(), Error> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::protocol(
            operation,
            format!("{id:?} is not a session id"),
        ));
    }
    Ok(())
}

/// `GET {base}/session/{id}`.
async fn status(run: &Run, session: &str) -> Result<Status, Error> {
    check_id(Operation::Status, session).map_err(|_| Error::Config {
        reason: format!("{session:?} is not a session id"),
    })?;
    let shared = &run.shared;
    let url = format!("{}/session/{session}", shared.rest_base);
    retrying(&shared.retry, &run.tracker, Operation::Status, || {
        let request = shared.wire.request(Method::GET, &url);
        async move {
            let response = shared.wire.send(Operation::Status, request).await?;
            json(Operation::Status, response).await
        }
    })
    .await
}

/// `POST {base}/session/{id}/abort`, once.
pub(crate) async fn abort(shared: &Shared, session: &str) -> Result<(), Error> {
    check_id(Operation::Abort, session)?;
    let url = format!("{}/session/{session}/abort", shared.rest_base);
    let request = shared.wire.request(Method::POST, &url);
    shared.wire.send(Operation::Abort, request).await.map(drop)
}

/// `POST {base}/session/{id}/complete`, stating the whole file's SHA-256
/// the client computed (`Repr-Digest`) so the server publishes nothing
/// else; when the server reports chunks missing (lost since they were
/// acknowledged, or a stale part), sends them again and completes again, a
/// bounded number of times.
async fn complete<R>(
    run: &Arc<Run>,
    source: &mut Source<R>,
    session: &str,
    layout: Layout,
    whole: Option<Sha256Digest>,
) -> Result<Completed, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let shared = &run.shared;
    let url = format!("{}/session/{session}/complete", shared.rest_base);
    let mut round = 0;
    loop {
        let result = retrying(&shared.retry, &run.tracker, Operation::Complete, || {
            let mut request = shared.wire.request(Method::POST, &url);
            if let Some(digest) = &whole {
                request = request.header("repr-digest", digest_field(digest));
            }
            async move {
                let response = shared.wire.send(Operation::Complete, request).await?;
                json(Operation::Complete, response).await
            }
        })
        .await;
        let missing = match &result {
            Err(e) if round < REPAIR_ROUNDS => missing_chunks(e, layout.total),
            _ => None,
        };
        let Some(missing) = missing else {
            return result;
        };
        round += 1;
        send_chunks(
            run,
            source,
            session,
            layout,
            missing.into_iter(),
            &HashSet::new(),
            None,
        )
        .await?;
    }
}

/// An RFC 9530 digest field value (`Content-Digest`, `Repr-Digest`).
fn digest_field(digest: &Sha256Digest) -> String {
    use base64::Engine as _;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest.as_bytes())
    )
}

/// The chunks a `409 missing-chunks` lists, when they are valid indices.
fn missing_chunks(e: &Error, total: u64) -> Option<Vec<u64>> {
    let problem = e.problem().filter(|p| p.code() == Some("missing-chunks"))?;
    let list: Vec<u64> = problem
        .extensions
        .get("missingChunks")?
        .as_array()?
        .iter()
        .map(|v| v.as_u64().filter(|&i| i < total))
        .collect::<Option<_>>()?;
    (!list.is_empty()).then_some(list)
}

/// Reads the chunks of `indices` in order, `concurrency` under way at a
/// time, and sends those not in `held`; feeds every chunk read to `whole`
/// (held ones are read only for it, and skipped when there is none).
async fn send_chunks<R>(
    run: &Arc<Run>,
    source: &mut Source<R>,
    session: &str,
    layout: Layout,
    mut indices: impl Iterator<Item = u64>,
    held: &HashSet<u64>,
    mut whole: Option<Sha256>,
) -> Result<Option<Sha256>, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < run.shared.concurrency {
            let Some(index) = indices.next() else { break };
            let send = !held.contains(&index);
            if !send && whole.is_none() {
                continue;
            }
            let (offset, len) = layout.range(index);
            let data = source.read_at(offset, len).await?;
            let (hashed, digest) = hash(whole.take(), data.clone(), send).await?;
            whole = hashed;
            if let Some(digest) = digest {
                let url = format!("{}/session/{session}/upload/{index}", run.shared.rest_base);
                tasks.spawn(put_chunk(run.clone(), url, index, data, digest));
            }
        }
        match tasks.join_next().await {
            None => return Ok(whole),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Some(Err(_)) => return Err(Error::Cancelled),
        }
    }
}

/// Feeds `data` to the whole-file hasher and, when `chunk`, hashes it on
/// its own; off the async workers.
async fn hash(
    whole: Option<Sha256>,
    data: Bytes,
    chunk: bool,
) -> Result<(Option<Sha256>, Option<Sha256Digest>), Error> {
    tokio::task::spawn_blocking(move || {
        let whole = whole.map(|mut h| {
            h.update(&data);
            h
        });
        (whole, chunk.then(|| Sha256Digest::of(&data)))
    })
    .await
    .map_err(|e| Error::Read {
        source: std::io::Error::other(e),
    })
}

/// `PUT {base}/session/{id}/upload/{index}` with `Content-Digest`, until
/// acknowledged: retried as the policy says, and sent again (a bounded
/// number of times) when the server finds the digest wrong.
async fn put_chunk(
    run: Arc<Run>,
    url: String,
    index: u64,
    data: Bytes,
    digest: Sha256Digest,
) -> Result<(), Error> {
    let shared = &run.shared;
    let operation = Operation::Chunk(index);
    let content_digest = digest_field(&digest);
    let (mut retries, mut resends) = (0, 0);
    loop {
        let sent = Arc::new(AtomicU64::new(0));
        let body = ChunkBody::new(
            data.clone(),
            run.tracker.clone(),
            sent.clone(),
            shared.limiter.clone(),
        );
        let request = shared
            .wire
            .request(Method::PUT, &url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("content-digest", &content_digest)
            .body(Body::wrap(body));
        let result = unless_stalled(operation, shared.stall_timeout, &sent, async {
            let response = shared.wire.send(operation, request).await?;
            json::<Receipt>(operation, response).await
        })
        .await;
        let sent = sent.load(Ordering::Relaxed);
        let error = match result {
            Ok(receipt) => {
                check_receipt(operation, &receipt, index, data.len(), digest)?;
                run.tracker.acknowledged(receipt.size, sent);
                return Ok(());
            }
            Err(e) => e,
        };
        run.tracker.failed(sent);
        if resend(&run, operation, &error, retries, &mut resends) {
            continue;
        }
        if error.is_retryable() && retries < shared.retry.retries() {
            backoff(&shared.retry, &run.tracker, operation, retries, &error).await;
            retries += 1;
            continue;
        }
        return Err(error.with_attempts(retries + resends + 1));
    }
}

/// A receipt must be for the chunk sent, of its length and digest.
fn check_receipt(
    operation: Operation,
    receipt: &Receipt,
    index: u64,
    len: usize,
    digest: Sha256Digest,
) -> Result<(), Error> {
    if receipt.chunk_id != index
        || receipt.size != len as u64
        || !receipt.sha256.eq_ignore_ascii_case(&digest.to_string())
    {
        return Err(Error::protocol(
            operation,
            format!(
                "the receipt is for chunk {} of {} bytes with SHA-256 {}; sent chunk {index} of {len} bytes with {digest}",
                receipt.chunk_id, receipt.size, receipt.sha256
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::client::error::Problem;

    fn shared() -> Arc<Shared> {
        Client::builder("http://127.0.0.1:1")
            .max_chunk_size(1 << 20)
            .build()
            .unwrap()
            .shared
    }

    #[test]
    fn layouts_are_checked() {
        let s = shared();
        let l = Layout::new(Operation::Initiate, &s, 2_621_440, 1 << 20, 3).unwrap();
        assert_eq!(l.range(0), (0, 1 << 20));
        assert_eq!(l.range(2), (2 << 20, 524_288));
        assert!(Layout::new(Operation::Initiate, &s, 0, 1 << 20, 0).is_ok());
        for (size, chunk, total) in [(10, 0, 0), (10, 4, 2), (10, 4, 4), (10, 2 << 20, 1)] {
            let e = Layout::new(Operation::Initiate, &s, size, chunk, total).unwrap_err();
            assert!(
                matches!(e, Error::Protocol { .. }),
                "{size} {chunk} {total}"
            );
        }
    }

    #[test]
    fn session_ids_are_path_segments() {
        assert!(check_id(Operation::Status, "92be12ca57ee489d97171264285f8545").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b", "é"] {
            assert!(check_id(Operation::Status, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_chunks_come_from_the_problem() {
        let problem = |json: &str| Error::Server {
            operation: Operation::Complete,
            status: 409,
            problem: Some(Box::new(serde_json::from_str::<Problem>(json).unwrap())),
            retry_after: None,
            attempts: 1,
        };
        let e = problem(r#"{"type":"urn:resumable:problem:missing-chunks","missingChunks":[1,3]}"#);
        assert_eq!(missing_chunks(&e, 4), Some(vec![1, 3]));
        assert_eq!(missing_chunks(&e, 3), None, "an index past the end");
        let e = problem(r#"{"type":"urn:resumable:problem:missing-chunks","missingChunks":[]}"#);
        assert_eq!(missing_chunks(&e, 4), None);
        let e = problem(r#"{"type":"urn:resumable:problem:invalid-session-state"}"#);
        assert_eq!(missing_chunks(&e, 4), None);
    }
}
