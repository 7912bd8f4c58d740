//! The appending flow of tus, the IETF draft and the raw upload: create an
//! upload (its length possibly unknown), append bytes at its current offset,
//! declare its length, concatenate partial uploads, terminate.
//!
//! An upload whose length is known completes by itself when its last byte
//! is recorded; the append that completes it returns the attachment.

use bytes::Bytes;
use futures::Stream;

use super::hashing::Resumed;
use super::types::{AppendOptions, AppendReceipt, NewAppendUpload, SessionStatus};
use super::{Actor, BodyFailure, Engine, outcome_unknown};
use crate::error::{BoxError, DigestScope, Error, Operation, SinkError};
use crate::ledger::PartReceipt;
use crate::machine;
use crate::meter::{Expected, LengthRule, MeterOutcome};
use crate::session::{FileMeta, FileName, Owner, Session, SessionId, StateKind, UploadKind};
use crate::sink::PartSpec;

impl Engine {
    /// Creates an upload that receives its bytes by appending. An upload of
    /// length 0 is complete at once.
    pub async fn create(
        &self,
        caller: &Owner,
        upload: NewAppendUpload,
    ) -> Result<SessionStatus, Error> {
        let file = FileMeta {
            name: upload
                .file_name
                .as_deref()
                .map(FileName::parse)
                .transpose()?,
            size: upload.size,
            content_type: upload.content_type,
            sha256: upload.sha256,
            metadata: upload.metadata,
        };
        self.check_length(caller, upload.size)?;
        self.admit(caller, &file).await?;
        let kind = if upload.partial {
            UploadKind::Partial
        } else {
            UploadKind::Appended
        };
        let session = self.create_appended(caller, file, kind).await?;
        if machine::is_fully_received(&session) {
            self.finish(session.id, Actor::Engine).await?;
        }
        self.status(caller, session.id).await
    }

    /// Creates the concatenation of `parts` (tus `Upload-Concat: final`):
    /// partial uploads of the caller, in order. It completes as soon as every
    /// part has; until then its length is the sum of the parts' lengths if
    /// all are known.
    pub async fn create_final(
        &self,
        caller: &Owner,
        parts: Vec<SessionId>,
        upload: NewAppendUpload,
    ) -> Result<SessionStatus, Error> {
        if parts.is_empty() {
            return Err(Error::invalid_request(
                "a concatenation needs at least one partial upload",
            ));
        }
        let mut length = Some(0u64);
        for part in &parts {
            let loaded = self
                .load(*part, Actor::Client(caller, Operation::Read))
                .await?;
            machine::ensure_alive(&loaded.session, self.clock.now())?;
            if loaded.session.kind != UploadKind::Partial {
                return Err(Error::invalid_request(format!(
                    "upload {part} is not a partial upload"
                )));
            }
            length = match (length, loaded.session.file.size) {
                (Some(a), Some(b)) => {
                    Some(a.checked_add(b).ok_or_else(|| Error::FileTooLarge {
                        size: u64::MAX,
                        max: self.max_file_size(caller).unwrap_or(u64::MAX),
                    })?)
                }
                _ => None,
            };
        }
        self.check_length(caller, length)?;
        let file = FileMeta {
            name: upload
                .file_name
                .as_deref()
                .map(FileName::parse)
                .transpose()?,
            size: length,
            content_type: upload.content_type,
            sha256: None,
            metadata: upload.metadata,
        };
        self.admit(caller, &file).await?;
        let kind = UploadKind::Final {
            parts: parts.clone(),
        };
        let session = self.create_appended(caller, file, kind).await?;
        if self.parts_completed(&parts).await? {
            self.finish_final(session.id, &parts).await?;
        }
        self.status(caller, session.id).await
    }

    /// The status of an appended upload (tus and IETF `HEAD`). A
    /// concatenation whose parts have all completed is completed first.
    pub async fn upload_status(
        &self,
        caller: &Owner,
        id: SessionId,
    ) -> Result<SessionStatus, Error> {
        let status = self.status(caller, id).await?;
        if let UploadKind::Final { parts } = &status.kind
            && status.state == StateKind::Open
            && self.parts_completed(parts).await?
        {
            match self.finish_final(id, parts).await {
                // Another request is completing it, or has.
                Ok(())
                | Err(Error::InvalidState {
                    state: StateKind::Finalizing | StateKind::Completed,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
            return self.status(caller, id).await;
        }
        Ok(status)
    }

    /// Appends `body` at `offset`, which must be the upload's current
    /// offset. With [`AppendOptions::keep_cut_off`], the bytes of a body cut
    /// off mid-way are kept. Completes the upload when its last byte arrives.
    pub async fn append<S, E>(
        &self,
        caller: &Owner,
        id: SessionId,
        offset: u64,
        body: S,
        options: AppendOptions,
    ) -> Result<AppendReceipt, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let actor = Actor::Client(caller, Operation::Append);
        self.check_length(caller, options.length)?;
        let loaded = self.load(id, actor).await?;
        // A length declared with the bytes counts for every check before the
        // body is read, and is recorded together with them, never alone.
        let now = self.clock.now();
        let probe = match options.length {
            Some(length) => machine::declare_length(loaded.session.clone(), length, now)?,
            None => loaded.session.clone(),
        };
        let room = machine::append_target(&probe, offset, now)?;
        let upload_room = room.or_else(|| {
            self.policy
                .max_file_size(caller)
                .map(|max| max.saturating_sub(offset))
        });
        let limit = upload_room.into_iter().chain(options.max_len).min();
        // The request's own limit, when it is the one that binds, is
        // reported as such: a request too large, not an upload too long.
        let request_cap = options
            .max_len
            .filter(|cap| upload_room.is_none_or(|room| *cap < room));
        if let (Some(declared), Some(limit)) = (options.declared_len, limit)
            && declared > limit
        {
            return Err(match request_cap {
                Some(max) => Error::FileTooLarge {
                    size: declared,
                    max,
                },
                None => too_long(&probe, limit, offset),
            });
        }
        let upload = loaded.session.upload.clone();
        // Bytes appended where the hashed prefix ends continue it.
        let resumed = Resumed::at(&loaded.session, offset);
        let stored = if options.declared_len == Some(0) {
            None
        } else {
            let expected = match (options.checksum, options.late_checksum) {
                (Some(c), _) => Expected::Now(c),
                (None, Some(late)) => Expected::Late(late),
                (None, None) => Expected::Nothing,
            };
            let spec = PartSpec {
                index: loaded
                    .session
                    .state
                    .ledger()
                    .map_or(0, |l| l.parts().len() as u64),
                offset,
                len: None,
            };
            let rule = LengthRule::AtMost(limit);
            let running = resumed.as_ref().map(Resumed::hasher);
            let keep = options.keep_cut_off;
            match self
                .store_body(&upload, spec, body, rule, keep, expected, running)
                .await
            {
                Ok(stored) => Some(stored),
                Err(BodyFailure::Sink(SinkError::NotFound)) => {
                    return Err(self.gone_or_state(id, Operation::Append).await);
                }
                Err(BodyFailure::Sink(e)) => return Err(e.into()),
                Err(BodyFailure::Meter(outcome)) => {
                    return Err(match (outcome, request_cap) {
                        (MeterOutcome::TooLong, Some(max)) => Error::FileTooLarge {
                            size: max.saturating_add(1),
                            max,
                        },
                        (outcome, _) => append_error(outcome, &probe, limit, offset),
                    });
                }
            }
        };
        let cut_off = stored.as_ref().and_then(|s| s.cut_off.as_ref());
        if let Some(cut_off) = cut_off {
            tracing::debug!(session = %id, error = %cut_off, "keeping the bytes of a cut-off append");
        }
        // A body cut off did not carry the last bytes its request announced:
        // what arrived is kept, and the upload stays open.
        let last = options.last && cut_off.is_none();
        let receipt = stored.as_ref().map(|s| PartReceipt {
            offset,
            len: s.len,
            sha256: s.sha256,
            part: s.part.clone(),
        });
        let len = receipt.as_ref().map_or(0, |r| r.len);
        let advance = match (resumed, &receipt, stored.as_ref()) {
            (Some(resumed), Some(receipt), Some(stored)) => {
                resumed.advance(receipt, stored.running.clone())
            }
            _ => None,
        };
        let timeouts = self.config.timeouts;
        let recorded = self
            .update(id, actor, |s, now| {
                let s = match options.length {
                    Some(length) => machine::declare_length(s, length, now)?,
                    None => s,
                };
                let s = match &receipt {
                    Some(r) => machine::record_append(s, r.clone(), now, &timeouts)?,
                    None => machine::record_append(s, empty_receipt(offset), now, &timeouts)?,
                };
                let s = match &advance {
                    Some(advance) => advance.apply(s),
                    None => s,
                };
                let s = if last {
                    machine::declare_length(s, offset + len, now)?
                } else {
                    s
                };
                Ok((Some(s), ()))
            })
            .await;
        let session = match recorded {
            Ok((session, ())) => session,
            Err(e) => {
                if let Some(stored) = stored.as_ref().filter(|_| !outcome_unknown(&e)) {
                    let _ = self.sink.discard_part(&upload, &stored.part).await;
                }
                return Err(e);
            }
        };
        if let Some(stored) = stored.filter(|s| s.len == 0) {
            let _ = self.sink.discard_part(&upload, &stored.part).await;
        }
        self.catch_up_after(&session);
        let completed = if machine::is_fully_received(&session) {
            Some(self.finish(id, Actor::Engine).await?)
        } else {
            None
        };
        Ok(AppendReceipt {
            offset: offset + len,
            length: session.file.size,
            expires_at: session.expires_at,
            completed,
        })
    }

    /// Fixes the length of an upload created without one (tus
    /// creation-defer-length). Completes the upload if every byte is in.
    pub async fn declare_length(
        &self,
        caller: &Owner,
        id: SessionId,
        length: u64,
    ) -> Result<SessionStatus, Error> {
        self.check_length(caller, Some(length))?;
        let (session, ()) = self
            .update(
                id,
                Actor::Client(caller, Operation::DeclareLength),
                |s, now| {
                    // A concatenation's length is its parts'; it is fixed
                    // only when they have all completed.
                    if let UploadKind::Final { .. } = s.kind {
                        machine::ensure_alive(&s, now)?;
                        return Err(Error::InvalidState {
                            id,
                            state: s.state.kind(),
                            operation: Operation::DeclareLength,
                        });
                    }
                    Ok((Some(machine::declare_length(s, length, now)?), ()))
                },
            )
            .await?;
        if machine::is_fully_received(&session) {
            self.finish(id, Actor::Engine).await?;
        }
        self.status(caller, id).await
    }

    /// Terminates an upload on the client's request (tus termination): an
    /// open upload, or a completed one not yet claimed, and deletes every
    /// byte it holds.
    pub async fn terminate(&self, caller: &Owner, id: SessionId) -> Result<(), Error> {
        let timeouts = self.config.timeouts;
        let (session, ()) = self
            .update(id, Actor::Client(caller, Operation::Abort), |s, now| {
                Ok((Some(machine::terminate(s, now, &timeouts)?), ()))
            })
            .await?;
        self.purge_and_mark(&session).await;
        Ok(())
    }

    /// Creates an appended session of `kind` for `caller`.
    async fn create_appended(
        &self,
        caller: &Owner,
        file: FileMeta,
        kind: UploadKind,
    ) -> Result<Session, Error> {
        // A concatenation (tus `final`) receives no bytes of its own.
        let size = match kind {
            UploadKind::Final { .. } => None,
            _ => file.size,
        };
        self.create_session(size, |id, handle, now| {
            machine::open_appended(
                id,
                caller.clone(),
                file,
                kind,
                handle,
                now,
                &self.config.timeouts,
            )
        })
        .await
    }

    /// Refuses a length over the policy's or the sink's maximum.
    fn check_length(&self, caller: &Owner, length: Option<u64>) -> Result<(), Error> {
        let Some(length) = length else {
            return Ok(());
        };
        let sink_max = self.sink.capabilities().max_blob_size;
        let max = self
            .policy
            .max_file_size(caller)
            .map_or(sink_max, |p| p.min(sink_max));
        if length > max {
            return Err(Error::FileTooLarge { size: length, max });
        }
        Ok(())
    }

    /// Whether every partial upload of a concatenation has completed.
    async fn parts_completed(&self, parts: &[SessionId]) -> Result<bool, Error> {
        for part in parts {
            let loaded = self.load(*part, Actor::Engine).await?;
            if loaded.session.state.blob().is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Completes a concatenation whose parts have all completed: fixes its
    /// length to the sum of theirs, then assembles it.
    async fn finish_final(&self, id: SessionId, parts: &[SessionId]) -> Result<(), Error> {
        let mut length = 0;
        for part in parts {
            let loaded = self.load(*part, Actor::Engine).await?;
            length += loaded.session.state.blob().map_or(0, |b| b.size);
        }
        self.update(id, Actor::Engine, |s, now| {
            Ok((Some(machine::declare_length(s, length, now)?), ()))
        })
        .await?;
        self.finish(id, Actor::Engine).await.map(drop)
    }
}

/// The receipt of an append that carried no bytes.
fn empty_receipt(offset: u64) -> PartReceipt {
    PartReceipt {
        offset,
        len: 0,
        sha256: Some(crate::digest::Sha256Digest::of(b"")),
        part: crate::ledger::PartRef::new(""),
    }
}

/// The error for bytes past what the upload may hold: its length, or the
/// policy's maximum while the length is unknown.
fn too_long(session: &Session, limit: u64, offset: u64) -> Error {
    match session.file.size {
        Some(length) => Error::BeyondLength { length },
        None => Error::FileTooLarge {
            size: offset.saturating_add(limit).saturating_add(1),
            max: offset.saturating_add(limit),
        },
    }
}

fn append_error(
    outcome: MeterOutcome,
    session: &Session,
    limit: Option<u64>,
    offset: u64,
) -> Error {
    match outcome {
        MeterOutcome::Failed(source) => Error::Body { source },
        MeterOutcome::ChecksumMismatch { expected, actual } => Error::ChecksumMismatch {
            scope: DigestScope::Append(offset),
            expected,
            actual,
        },
        _ => too_long(session, limit.unwrap_or(u64::MAX), offset),
    }
}
