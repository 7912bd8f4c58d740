//! The session REST flow: initiate a chunked upload, store chunks by index.

use bytes::Bytes;
use futures::Stream;

use super::hashing::Resumed;
use super::types::{ChunkOptions, ChunkReceipt, NewUpload, SessionInfo};
use super::{Actor, BodyFailure, Engine, outcome_unknown};
use crate::error::{BodyLength, BoxError, DigestScope, Error, Operation, SinkError};
use crate::ledger::PartReceipt;
use crate::machine;
use crate::meter::{Expected, LengthRule, MeterOutcome};
use crate::session::{FileMeta, FileName, Owner, Session, SessionId};
use crate::sink::PartSpec;

impl Engine {
    /// Starts a chunked upload: validates the file against the policy, picks
    /// the chunk size and the expiry, and creates the session.
    pub async fn initiate(&self, caller: &Owner, upload: NewUpload) -> Result<SessionInfo, Error> {
        let file = FileMeta {
            name: Some(FileName::parse(&upload.file_name)?),
            size: Some(upload.file_size),
            content_type: upload.content_type,
            sha256: upload.sha256,
            ..FileMeta::default()
        };
        self.admit(caller, &file).await?;
        let chunk_size = machine::plan_chunk_size(
            upload.file_size,
            self.config.chunk_size,
            &self.sink.capabilities(),
        )?;
        let session = self
            .create_session(Some(upload.file_size), |id, handle, now| {
                machine::open(
                    id,
                    caller.clone(),
                    file,
                    chunk_size,
                    handle,
                    now,
                    &self.config.timeouts,
                )
            })
            .await?;
        Ok(SessionInfo {
            id: session.id,
            chunk_size,
            total_chunks: session.total_chunks(),
            expires_at: session.expires_at,
        })
    }

    /// Streams chunk `index` into the sink and records it. The body must have
    /// exactly the chunk's length. It is hashed on the way through into the
    /// whole file's digest when it starts where the hashed prefix ends
    /// (chunks that arrived ahead of it are hashed from the sink in the
    /// background), and on its own only when `options` declares its
    /// SHA-256, which it must then match (the receipt repeats it). Any chunk
    /// may be sent in any order, concurrently with others, and again (the
    /// latest recorded upload of a chunk wins).
    pub async fn upload_chunk<S, E>(
        &self,
        caller: &Owner,
        id: SessionId,
        index: u64,
        body: S,
        options: ChunkOptions,
    ) -> Result<ChunkReceipt, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::UploadChunk))
            .await?;
        let range = machine::chunk_target(&loaded.session, index, self.clock.now())?;
        let len = range.end - range.start;
        check_declarations(&loaded.session, index, &range, &options)?;
        let expected = options
            .sha256
            .map_or(Expected::Nothing, |d| Expected::Now(d.into()));
        let spec = PartSpec {
            index,
            offset: range.start,
            len: Some(len),
        };
        let upload = loaded.session.upload.clone();
        // A chunk that starts where the hashed prefix ends continues it.
        let resumed = Resumed::at(&loaded.session, range.start);
        let running = resumed.as_ref().map(Resumed::hasher);
        let rule = LengthRule::Exact(len);
        let stored = match self
            .store_body(&upload, spec, body, rule, false, expected, running)
            .await
        {
            Ok(stored) => stored,
            Err(BodyFailure::Sink(SinkError::NotFound)) => {
                return Err(self.gone_or_state(id, Operation::UploadChunk).await);
            }
            Err(BodyFailure::Sink(e)) => return Err(e.into()),
            Err(BodyFailure::Meter(outcome)) => return Err(chunk_error(outcome, index, len)),
        };
        let receipt = PartReceipt {
            offset: range.start,
            len,
            sha256: stored.sha256,
            part: stored.part.clone(),
        };
        let advance = resumed.and_then(|r| r.advance(&receipt, stored.running));
        let timeouts = self.config.timeouts;
        let recorded = self
            .update(
                id,
                Actor::Client(caller, Operation::UploadChunk),
                |s, now| {
                    let (s, replaced) =
                        machine::record_chunk(s, index, receipt.clone(), now, &timeouts)?;
                    let s = match &advance {
                        Some(advance) => advance.apply(s),
                        None => s,
                    };
                    Ok((Some(s), replaced))
                },
            )
            .await;
        match recorded {
            Ok((session, replaced)) => {
                self.catch_up_after(&session);
                if let Some(old) = &replaced
                    && let Err(e) = self.sink.discard_part(&upload, &old.part).await
                {
                    tracing::warn!(session = %id, index, error = %e, "could not discard a superseded chunk");
                }
                Ok(ChunkReceipt {
                    index,
                    offset: range.start,
                    len,
                    sha256: stored.sha256,
                    replaced: replaced.is_some(),
                    expires_at: session.expires_at,
                })
            }
            Err(e) => {
                if !outcome_unknown(&e) {
                    let _ = self.sink.discard_part(&upload, &stored.part).await;
                }
                Err(e)
            }
        }
    }
}

/// Refuses a request whose declared length or range is not the chunk's,
/// before any byte is read.
fn check_declarations(
    session: &Session,
    index: u64,
    range: &std::ops::Range<u64>,
    options: &ChunkOptions,
) -> Result<(), Error> {
    let len = range.end - range.start;
    if let Some(declared) = options.declared_len.filter(|&d| d != len) {
        return Err(Error::ChunkLength {
            index,
            expected: len,
            actual: BodyLength::Exactly(declared),
        });
    }
    if let Some(declared) = &options.range {
        let total = session.file.size.unwrap_or(0);
        if declared.bytes != *range || declared.total.is_some_and(|t| t != total) {
            return Err(Error::invalid_request(format!(
                "the declared range {:?} of {:?} is not chunk {index}'s range {range:?} of {total}",
                declared.bytes, declared.total
            )));
        }
    }
    Ok(())
}

fn chunk_error(outcome: MeterOutcome, index: u64, len: u64) -> Error {
    match outcome {
        MeterOutcome::Failed(source) => Error::Body { source },
        MeterOutcome::ChecksumMismatch { expected, actual } => Error::ChecksumMismatch {
            scope: DigestScope::Chunk(index),
            expected,
            actual,
        },
        other => Error::ChunkLength {
            index,
            expected: len,
            actual: other.body_length(len),
        },
    }
}
