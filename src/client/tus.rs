//! tus 1.0: creation (`POST` with `Upload-Length` and `Upload-Metadata`),
//! then `PATCH`es at `Upload-Offset`, one at a time, each with
//! `Upload-Checksum: sha256 …`; resume from the offset a `HEAD` reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Body, Method, Url};
use tokio::io::{AsyncRead, AsyncSeek};

use super::Shared;
use super::body::ChunkBody;
use super::error::{Error, Operation};
use super::progress::RestartReason;
use super::retry::{backoff, resend, retrying};
use super::source::Source;
use super::upload::{Finished, Probe, Run, Start};
use super::wire::unless_stalled;
use crate::digest::Sha256Digest;

/// The protocol version spoken.
const TUS_VERSION: &str = "1.0.0";

/// The media type of `PATCH` bodies.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// What a `HEAD` tells.
#[derive(Debug, Clone, Copy)]
struct Head {
    offset: u64,
    length: Option<u64>,
}

/// Uploads `source` in tus.
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
        let url = resolve(shared, &session).map_err(|detail| Error::Config { reason: detail })?;
        let probe = head(run, &url).await.map(|head| {
            if head.length != Some(source.size) || head.offset > source.size {
                Probe::Mismatch(format!(
                    "it is for {:?} bytes (offset {}), the source has {}",
                    head.length, head.offset, source.size
                ))
            } else {
                Probe::Fits(head.offset)
            }
        });
        let discard = terminate(shared, &url);
        resumed = run
            .settle(&url, explicit, probe, GONE, discard, &mut restarted)
            .await?
            .map(|offset| (url, offset));
    }
    let (url, offset, held) = match resumed {
        Some((url, offset)) => {
            run.resumed(&url, shared.tus_chunk_size, source, offset)
                .await?;
            (url, offset, Some(offset))
        }
        None => {
            let url = create(run, source).await?;
            run.started(&url, shared.tus_chunk_size, source).await?;
            (url, 0, None)
        }
    };
    append_all(run, source, &url, offset).await?;
    Ok(Finished {
        session: url,
        sha256: None,
        resumption: Run::resumption(held, restarted),
    })
}

/// The statuses of a `HEAD` that say the upload is gone for good.
const GONE: &[u16] = &[403, 404, 410];

/// An upload URL from a `Location` or a caller: absolute, or relative to
/// the creation endpoint.
fn resolve(shared: &Shared, location: &str) -> Result<String, String> {
    let base = Url::parse(&shared.tus_base).map_err(|e| e.to_string())?;
    let url = base
        .join(location)
        .map_err(|e| format!("{location:?} is not an upload URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{location:?} is not an http(s) upload URL"));
    }
    Ok(url.into())
}

/// `POST {tus}`: creates the upload, returns its URL.
async fn create<R>(run: &Run, source: &Source<R>) -> Result<String, Error> {
    let shared = &run.shared;
    let mut metadata = format!("filename {}", BASE64.encode(&source.name));
    if let Some(media_type) = &run.content_type {
        metadata.push_str(&format!(",filetype {}", BASE64.encode(media_type)));
    }
    let location: String = retrying(&shared.retry, &run.tracker, Operation::Create, || {
        let request = shared
            .wire
            .request(Method::POST, &shared.tus_base)
            .header("tus-resumable", TUS_VERSION)
            .header("upload-length", source.size)
            .header("upload-metadata", &metadata);
        async move {
            let response = shared.wire.send(Operation::Create, request).await?;
            header(response.headers(), LOCATION.as_str())
                .map(str::to_owned)
                .ok_or_else(|| Error::protocol(Operation::Create, "no Location"))
        }
    })
    .await?;
    resolve(shared, &location).map_err(|detail| Error::protocol(Operation::Create, detail))
}

/// `HEAD` of the upload, retried.
async fn head(run: &Run, url: &str) -> Result<Head, Error> {
    let shared = &run.shared;
    retrying(&shared.retry, &run.tracker, Operation::Offset, || {
        let request = shared
            .wire
            .request(Method::HEAD, url)
            .header("tus-resumable", TUS_VERSION);
        async move {
            let response = shared.wire.send(Operation::Offset, request).await?;
            let h = response.headers();
            let offset = number(h, "upload-offset")
                .ok_or_else(|| Error::protocol(Operation::Offset, "no valid Upload-Offset"))?;
            Ok(Head {
                offset,
                length: number(h, "upload-length"),
            })
        }
    })
    .await
}

/// `DELETE` of the upload, once.
pub(crate) async fn terminate(shared: &Shared, url: &str) -> Result<(), Error> {
    let url = resolve(shared, url).map_err(|reason| Error::Config { reason })?;
    let request = shared
        .wire
        .request(Method::DELETE, &url)
        .header("tus-resumable", TUS_VERSION);
    shared
        .wire
        .send(Operation::Terminate, request)
        .await
        .map(drop)
}

/// `PATCH`es from `offset` to the end, one at a time. A failure that may
/// have moved the offset (no reply, a retryable status, `409`) is followed
/// by a `HEAD` to learn where to go on; a checksum mismatch (`460`) sends
/// the same bytes again. Each of these is bounded; the bounds start over
/// whenever the offset moves forward.
async fn append_all<R>(
    run: &Arc<Run>,
    source: &mut Source<R>,
    url: &str,
    mut offset: u64,
) -> Result<(), Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let shared = &run.shared;
    let (mut retries, mut resends) = (0, 0);
    let mut read: Option<(u64, Bytes, Sha256Digest)> = None;
    while offset < source.size {
        let len = shared.tus_chunk_size.min(source.size - offset);
        // At most the tus chunk size, which the builder checked fits.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let (data, digest) = match &read {
            Some((at, data, digest)) if *at == offset && data.len() == len => {
                (data.clone(), *digest)
            }
            _ => {
                let data = source.read_at(offset, len).await?;
                let digest = hash(data.clone()).await?;
                read = Some((offset, data.clone(), digest));
                (data, digest)
            }
        };
        let operation = Operation::Append(offset);
        let last = offset + len as u64 == source.size;
        let (result, sent) = patch(run, url, offset, data, digest, last).await;
        let error = match result {
            Ok(next) if next > offset && next <= offset + len as u64 => {
                run.tracker.acknowledged(next - offset, sent);
                offset = next;
                (retries, resends) = (0, 0);
                continue;
            }
            Ok(next) => {
                return Err(Error::protocol(
                    operation,
                    format!("the offset went to {next} after {len} bytes at {offset}"),
                ));
            }
            Err(e) => e,
        };
        run.tracker.failed(sent);
        if resend(run, operation, &error, retries, &mut resends) {
            continue;
        }
        let conflict = error.status() == Some(409);
        if (conflict || error.is_retryable()) && retries < shared.retry.retries() {
            if !conflict {
                backoff(&shared.retry, &run.tracker, operation, retries, &error).await;
            }
            retries += 1;
            let now = head(run, url).await?;
            if now.length != Some(source.size) || now.offset > source.size {
                return Err(Error::protocol(
                    Operation::Offset,
                    format!(
                        "the upload is now {:?} bytes at offset {}, the source {}",
                        now.length, now.offset, source.size
                    ),
                ));
            }
            if now.offset > offset {
                run.tracker.acknowledged(now.offset - offset, 0);
            }
            offset = now.offset;
            continue;
        }
        return Err(error.with_attempts(retries + resends + 1));
    }
    Ok(())
}

/// One `PATCH`: the new offset, and how many body bytes went out.
async fn patch(
    run: &Arc<Run>,
    url: &str,
    offset: u64,
    data: Bytes,
    digest: Sha256Digest,
    last: bool,
) -> (Result<u64, Error>, u64) {
    let shared = &run.shared;
    let operation = Operation::Append(offset);
    let sent = Arc::new(AtomicU64::new(0));
    let body = ChunkBody::new(
        data,
        run.tracker.clone(),
        sent.clone(),
        shared.limiter.clone(),
    );
    let request = shared
        .wire
        .request(Method::PATCH, url)
        .header("tus-resumable", TUS_VERSION)
        .header("upload-offset", offset)
        .header(CONTENT_TYPE, OFFSET_OCTET_STREAM)
        .header(
            "upload-checksum",
            format!("sha256 {}", BASE64.encode(digest.as_bytes())),
        )
        .body(Body::wrap(body));
    // The last PATCH completes the upload before its reply: no stall bound.
    let stall = shared.stall_timeout.filter(|_| !last);
    let result = unless_stalled(operation, stall, &sent, async {
        let response = shared.wire.send(operation, request).await?;
        number(response.headers(), "upload-offset")
            .ok_or_else(|| Error::protocol(operation, "no valid Upload-Offset"))
    })
    .await;
    (result, sent.load(Ordering::Relaxed))
}

/// The SHA-256 of `data`, off the async workers.
async fn hash(data: Bytes) -> Result<Sha256Digest, Error> {
    tokio::task::spawn_blocking(move || Sha256Digest::of(&data))
        .await
        .map_err(|e| Error::Read {
            source: std::io::Error::other(e),
        })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// A header holding a decimal number.
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let value = header(headers, name)?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, Dialect};
    use reqwest::header::HeaderValue;

    #[test]
    fn locations_resolve_against_the_creation_endpoint() {
        let client = Client::builder("http://127.0.0.1:8080")
            .dialect(Dialect::Tus)
            .build()
            .unwrap();
        let shared = &client.shared;
        assert_eq!(
            resolve(shared, "/files/abc").unwrap(),
            "http://127.0.0.1:8080/files/abc"
        );
        assert_eq!(
            resolve(shared, "https://uploads.example/files/abc").unwrap(),
            "https://uploads.example/files/abc"
        );
        assert!(resolve(shared, "ftp://host/x").is_err());
    }

    #[test]
    fn numbers_are_plain_decimals() {
        let mut h = HeaderMap::new();
        for (value, expected) in [
            ("42", Some(42)),
            (" 7 ", Some(7)),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("", None),
            ("99999999999999999999999", None),
        ] {
            h.insert("upload-offset", HeaderValue::from_str(value).unwrap());
            assert_eq!(number(&h, "upload-offset"), expected, "{value:?}");
        }
    }
}
