//! What every dialect shares once bytes are in: complete, abort, status,
//! claim, read.

use super::hashing::DigestMismatch;
use super::types::{Attachment, SessionStatus};
use super::{Actor, Engine};
use crate::digest::Sha256Digest;
use crate::error::{DigestScope, Error, Operation, SinkError};
use crate::ledger::{Ledger, PartReceipt};
use crate::machine::{self, Completion};
use crate::session::{Owner, Session, SessionId, SessionState, UploadKind};
use crate::sink::{ByteStream, FinishedBlob};

/// Why assembling a blob failed.
enum AssemblyFailure {
    /// The sink failed (or the bytes do not match the expected digest).
    Sink(SinkError),
    /// The whole file's digest, known before the sink was asked, is not the
    /// expected one: nothing was assembled.
    Mismatch(DigestMismatch),
    /// A partial upload of a concatenation is missing or not complete.
    Engine(Error),
}

/// The whole file's bytes do not have the `expected` SHA-256.
fn file_mismatch(expected: Sha256Digest, actual: Sha256Digest) -> Error {
    Error::ChecksumMismatch {
        scope: DigestScope::File,
        expected: expected.into(),
        actual: actual.into(),
    }
}

impl Engine {
    /// Completes an upload: checks every byte arrived, assembles the blob,
    /// verifies the expected whole-file SHA-256 if one was given, and leaves
    /// the upload *temporary* until [`claim`](Engine::claim)ed. Completing a
    /// completed upload returns the same attachment.
    ///
    /// The whole file's SHA-256 is usually known by now, hashed as the
    /// chunks arrived: the sink then records it without reading the data
    /// again, and a digest other than the expected one is refused before the
    /// sink is asked. Otherwise the bytes the running digest misses are read
    /// back once (or the sink computes the digest as it assembles).
    pub async fn complete(&self, caller: &Owner, id: SessionId) -> Result<Attachment, Error> {
        self.complete_expecting(caller, id, None).await
    }

    /// Completes an upload whose whole-file SHA-256 the client states now
    /// (a client that hashes while it sends learns it only at the end). The
    /// blob is published only if its bytes have that digest; otherwise the
    /// answer is [`Error::ChecksumMismatch`] and, as for a digest given at
    /// initiate, the session is open again with its chunks (on sinks that
    /// keep them). A digest that differs from one given at initiate is
    /// refused before anything is assembled. An upload completed already is
    /// checked against it too.
    pub async fn complete_expecting(
        &self,
        caller: &Owner,
        id: SessionId,
        sha256: Option<Sha256Digest>,
    ) -> Result<Attachment, Error> {
        self.finish_expecting(id, Actor::Client(caller, Operation::Complete), sha256)
            .await
    }

    /// Completes an upload for `actor`: takes the session into
    /// `finalizing`, assembles its blob (from its parts, or for a tus final
    /// upload from its partial uploads' blobs), and records the outcome.
    pub(super) async fn finish(
        &self,
        id: SessionId,
        actor: Actor<'_>,
    ) -> Result<Attachment, Error> {
        self.finish_expecting(id, actor, None).await
    }

    /// [`finish`](Engine::finish) with a whole-file SHA-256 stated at
    /// completion, checked with (not instead of) one given at creation.
    async fn finish_expecting(
        &self,
        id: SessionId,
        actor: Actor<'_>,
        stated: Option<Sha256Digest>,
    ) -> Result<Attachment, Error> {
        let timeouts = self.config.timeouts;
        let (session, done) = self
            .update(id, actor, |s, now| {
                if let (Some(stated), Some(declared)) = (stated, s.file.sha256)
                    && stated != declared
                {
                    return Err(Error::invalid_request(format!(
                        "the SHA-256 given at completion ({stated}) differs from the one given at creation ({declared})"
                    )));
                }
                Ok(match machine::begin_complete(s, now, &timeouts)? {
                    Completion::Finalize(s) => (Some(s), None),
                    Completion::AlreadyCompleted(blob) => (None, Some(blob)),
                })
            })
            .await?;
        if let Some(blob) = done {
            return match stated.filter(|d| *d != blob.sha256) {
                Some(expected) => Err(file_mismatch(expected, blob.sha256)),
                None => Ok(Attachment::of(&session, blob)),
            };
        }
        let expected = stated.or(session.file.sha256);
        match self.assemble_renewing_lease(&session, expected).await {
            Ok(blob) => {
                let finished = self
                    .update(id, Actor::Engine, |s, now| {
                        Ok((Some(machine::finish_complete(s, blob, now, &timeouts)?), ()))
                    })
                    .await;
                match finished {
                    Ok((session, ())) => {
                        tracing::info!(session = %id, size = blob.size, sha256 = %blob.sha256, "upload completed");
                        Ok(Attachment::of(&session, blob))
                    }
                    Err(e) => self.completed_elsewhere(id, blob).await.ok_or(e),
                }
            }
            Err(failure) => {
                let mismatch = matches!(
                    failure,
                    AssemblyFailure::Sink(SinkError::DigestMismatch { .. })
                );
                // A mismatch found by the sink while it assembled; one the
                // engine found beforehand left the parts untouched.
                if mismatch && !self.sink.capabilities().keeps_parts_on_digest_mismatch {
                    // The sink consumed the parts: nothing is left to repair.
                    let failed = self
                        .update(id, Actor::Engine, |s, now| {
                            Ok((Some(machine::fail_finalize(s, now, &timeouts)?), ()))
                        })
                        .await;
                    match failed {
                        Ok((session, ())) => self.purge_and_mark(&session).await,
                        Err(e) => {
                            tracing::warn!(session = %id, error = %e, "could not end a failed upload")
                        }
                    }
                } else {
                    let reopened = self
                        .update(id, Actor::Engine, |s, now| {
                            Ok((Some(machine::reopen(s, now, &timeouts)?), ()))
                        })
                        .await;
                    if let Err(e) = reopened {
                        tracing::warn!(session = %id, error = %e, "could not reopen after a failed finalize");
                    }
                }
                Err(match failure {
                    AssemblyFailure::Sink(SinkError::DigestMismatch { expected, actual })
                    | AssemblyFailure::Mismatch(DigestMismatch { expected, actual }) => {
                        file_mismatch(expected, actual)
                    }
                    AssemblyFailure::Sink(other) => other.into(),
                    AssemblyFailure::Engine(e) => e,
                })
            }
        }
    }

    /// Builds the blob of a `finalizing` session while renewing its lease
    /// every third of the lease, so a long assembly keeps the session and a
    /// short lease still lets another process take over soon after a crash.
    async fn assemble_renewing_lease(
        &self,
        session: &Session,
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, AssemblyFailure> {
        let timeouts = self.config.timeouts;
        let every = (timeouts.finalize_lease / 3).max(std::time::Duration::from_millis(10));
        let mut assemble = std::pin::pin!(self.assemble(session, expected));
        loop {
            tokio::select! {
                result = &mut assemble => return result,
                () = tokio::time::sleep(every) => {
                    let renewed = self
                        .update(session.id, Actor::Engine, |s, now| {
                            Ok((Some(machine::renew_lease(s, now, &timeouts)?), ()))
                        })
                        .await;
                    if let Err(e) = renewed {
                        // A store outage, or another finalizer finished: the
                        // assembly goes on, and its result is recorded (or
                        // found recorded) as without renewal.
                        tracing::warn!(session = %session.id, error = %e, "could not renew the finalize lease");
                    }
                }
            }
        }
    }

    /// Builds the blob of a `finalizing` session, whose bytes must have the
    /// `expected` SHA-256 if one is given.
    async fn assemble(
        &self,
        session: &Session,
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, AssemblyFailure> {
        if let UploadKind::Final { parts } = &session.kind {
            let mut sources = Vec::with_capacity(parts.len());
            for part in parts {
                let loaded = self
                    .load(*part, Actor::Engine)
                    .await
                    .map_err(AssemblyFailure::Engine)?;
                machine::readable_blob(&loaded.session, self.clock.now())
                    .map_err(AssemblyFailure::Engine)?;
                sources.push(loaded.session.upload);
            }
            return self
                .sink
                .concatenate(&session.upload, &sources, expected)
                .await
                .map_err(AssemblyFailure::Sink);
        }
        let size = session.file.size.unwrap_or(0);
        let ledger = match session.state.ledger() {
            // Hashed as it arrived: nothing to wait for.
            Some(ledger) if ledger.hashed().upto() == size => ledger.clone(),
            // A catch-up of this process may be moving the hashed prefix:
            // let it land, then take the prefix as stored now.
            _ => {
                self.caught_up(session.id).await;
                self.current_ledger(session).await
            }
        };
        let parts: Vec<PartReceipt> = ledger.parts().cloned().collect();
        let digest = self
            .blob_digest(&session.upload, &ledger, size, expected)
            .await
            .map_err(AssemblyFailure::Mismatch)?;
        self.sink
            .finalize(&session.upload, &parts, digest)
            .await
            .map_err(AssemblyFailure::Sink)
    }

    /// The ledger of a `finalizing` session as stored now (its hashed prefix
    /// may have moved since it was loaded), if it still has the same parts;
    /// otherwise the one it was loaded with.
    async fn current_ledger(&self, session: &Session) -> Ledger {
        let mine = session.state.ledger().cloned().unwrap_or_default();
        match self.load(session.id, Actor::Engine).await {
            Ok(loaded) => match &loaded.session.state {
                SessionState::Finalizing { ledger, .. } if ledger.parts().eq(mine.parts()) => {
                    ledger.clone()
                }
                _ => mine,
            },
            Err(_) => mine,
        }
    }

    /// Aborts an open upload and deletes every byte it holds.
    pub async fn abort(&self, caller: &Owner, id: SessionId) -> Result<(), Error> {
        let timeouts = self.config.timeouts;
        let (session, ()) = self
            .update(id, Actor::Client(caller, Operation::Abort), |s, now| {
                Ok((Some(machine::abort(s, now, &timeouts)?), ()))
            })
            .await?;
        self.purge_and_mark(&session).await;
        tracing::debug!(session = %id, "upload aborted");
        Ok(())
    }

    /// What a client needs to resume: state, chunks received, expiry.
    pub async fn status(&self, caller: &Owner, id: SessionId) -> Result<SessionStatus, Error> {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::Status))
            .await?;
        let s = loaded.session;
        machine::ensure_alive(&s, self.clock.now())?;
        Ok(SessionStatus {
            id: s.id,
            state: s.state.kind(),
            chunk_size: s.chunk_size,
            total_chunks: s.total_chunks(),
            received_chunks: machine::received_chunks(&s),
            missing_chunks: machine::missing_chunks(&s),
            received_bytes: match (s.state.ledger(), s.state.blob()) {
                (Some(l), _) => l.received_bytes(),
                (None, Some(b)) => b.size,
                (None, None) => 0,
            },
            expires_at: s.expires_at,
            kind: s.kind.clone(),
            offset: match (s.state.ledger(), s.state.blob()) {
                (Some(l), _) => l.contiguous_end(),
                (None, Some(b)) => b.size,
                (None, None) => 0,
            },
            blob: s.state.blob().copied(),
            file: s.file,
        })
    }

    /// Claims a completed upload for the application: it becomes permanent
    /// and the sweep no longer reaps it.
    pub async fn claim(&self, caller: &Owner, id: SessionId) -> Result<Attachment, Error> {
        let (session, ()) = self
            .update(id, Actor::Client(caller, Operation::Claim), |s, now| {
                Ok((Some(machine::claim(s, now)?), ()))
            })
            .await?;
        let blob = machine::readable_blob(&session, self.clock.now())?;
        Ok(Attachment::of(&session, blob))
    }

    /// Streams back the blob of a completed or claimed upload.
    pub async fn read(&self, caller: &Owner, id: SessionId) -> Result<ByteStream, Error> {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::Read))
            .await?;
        machine::readable_blob(&loaded.session, self.clock.now())?;
        Ok(self.sink.read(&loaded.session.upload).await?)
    }
}
