//! The pure state machine: every rule of an upload, with no I/O, no clock and
//! no async.
//!
//! Each transition takes the session by value together with `now`, and
//! returns the new session or a typed [`Error`], never both. The engine
//! loads a session, asks the machine, and stores the result by
//! compare-and-swap; if the store reports a conflict it loads again and asks
//! again, which is always safe because every transition is a function of the
//! record it is given.
//!
//! ```text
//! open ──(all bytes, complete)──▶ finalizing ──▶ completed (temporary) ──claim──▶ claimed
//!  │  ▲                              │                │
//!  │  └────────(finalize failed)─────┘                └──(not claimed in time)──▶ expired
//!  ├──abort──▶ aborted
//!  └──(no activity until expires_at)──▶ expired
//! ```

use std::ops::Range;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Operation};
use crate::ledger::{HashedPrefix, Ledger, PartReceipt};
use crate::session::{
    ExpiryReason, FileMeta, Owner, Session, SessionId, SessionState, StateKind, UploadKind,
};
use crate::sink::{FinishedBlob, SinkCapabilities, UploadHandle};

/// The server-defined timings of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long an open session lives without activity. Every recorded chunk
    /// pushes its expiry to at least `now + session_timeout`.
    pub session_timeout: Duration,
    /// How long a completed upload stays *temporary* before it is reaped if
    /// the application has not claimed it.
    pub temporary_max_age: Duration,
    /// How long the record of an aborted or expired session is kept (so late
    /// requests are told it is gone) before it is forgotten.
    pub tombstone_retention: Duration,
    /// How long one complete request holds a session in `finalizing` before
    /// another may take over (if the first process died). The finalizer
    /// renews it every third of this while it works, so a long assembly
    /// keeps it, and after a crash a new complete succeeds within this time.
    pub finalize_lease: Duration,
}

impl Default for Timeouts {
    /// 24 h sessions, 6 h temporary uploads, 24 h tombstones, 1 min lease.
    fn default() -> Self {
        Timeouts {
            session_timeout: Duration::from_secs(24 * 3600),
            temporary_max_age: Duration::from_secs(6 * 3600),
            tombstone_retention: Duration::from_secs(24 * 3600),
            finalize_lease: Duration::from_secs(60),
        }
    }
}

/// The most missing chunk indices an error lists.
pub const MAX_LISTED_MISSING: usize = 1000;

/// Chooses the chunk size for a file: the server's `preferred` size, within
/// the sink's part-size bounds, raised if needed so the file fits the sink's
/// part count. A size no chunk size can fit is refused.
pub fn plan_chunk_size(
    file_size: u64,
    preferred: u64,
    caps: &SinkCapabilities,
) -> Result<u64, Error> {
    let min = caps.min_part_size.max(1);
    let max = caps.max_part_size.max(min);
    let largest = max.saturating_mul(caps.max_parts).min(caps.max_blob_size);
    if file_size > largest {
        return Err(Error::FileTooLarge {
            size: file_size,
            max: largest,
        });
    }
    let needed = file_size.div_ceil(caps.max_parts.max(1));
    Ok(preferred.clamp(min, max).max(needed))
}

/// A new, open session.
pub fn open(
    id: SessionId,
    owner: Owner,
    file: FileMeta,
    chunk_size: u64,
    upload: UploadHandle,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Session {
    Session {
        id,
        owner,
        file,
        chunk_size: chunk_size.max(1),
        created_at: now,
        expires_at: now + timeouts.session_timeout,
        upload,
        kind: UploadKind::Chunked,
        state: SessionState::Open {
            ledger: Ledger::new(),
        },
    }
}

/// A new, open upload that receives its bytes by appending (`kind` is
/// [`UploadKind::Appended`], [`UploadKind::Partial`] or
/// [`UploadKind::Final`]). Its length may still be unknown.
pub fn open_appended(
    id: SessionId,
    owner: Owner,
    file: FileMeta,
    kind: UploadKind,
    upload: UploadHandle,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Session {
    Session {
        kind,
        ..open(id, owner, file, u64::MAX, upload, now, timeouts)
    }
}

/// Whether the session still exists for clients at `now`: not aborted, not
/// expired, and not past its expiry (even if no sweep has run yet).
pub fn ensure_alive(session: &Session, now: SystemTime) -> Result<(), Error> {
    let gone = |state| {
        Err(Error::SessionGone {
            id: session.id,
            state,
        })
    };
    match &session.state {
        SessionState::Aborted { .. } => gone(StateKind::Aborted),
        SessionState::Expired { .. } => gone(StateKind::Expired),
        SessionState::Open { .. } if now >= session.expires_at => gone(StateKind::Expired),
        SessionState::Finalizing { lease_until, .. }
            if now >= *lease_until && now >= session.expires_at =>
        {
            gone(StateKind::Expired)
        }
        SessionState::Completed { reap_at, .. } if now >= *reap_at => gone(StateKind::Expired),
        _ => Ok(()),
    }
}

fn open_ledger(session: &Session, operation: Operation, now: SystemTime) -> Result<&Ledger, Error> {
    ensure_alive(session, now)?;
    match &session.state {
        SessionState::Open { ledger } => Ok(ledger),
        other => Err(Error::InvalidState {
            id: session.id,
            state: other.kind(),
            operation,
        }),
    }
}

/// Checks that chunk `index` may be uploaded now and returns its byte range.
/// Called before the body is read, and again (through [`record_chunk`])
/// after.
pub fn chunk_target(session: &Session, index: u64, now: SystemTime) -> Result<Range<u64>, Error> {
    open_ledger(session, Operation::UploadChunk, now)?;
    // Indexed chunks only go to uploads made for them: a chunk in the middle
    // of an appended upload would leave a hole its offset never reaches.
    if session.kind != UploadKind::Chunked {
        return Err(Error::InvalidState {
            id: session.id,
            state: session.state.kind(),
            operation: Operation::UploadChunk,
        });
    }
    session.chunk_range(index).ok_or(Error::ChunkOutOfRange {
        index,
        total: session.total_chunks(),
    })
}

/// Records a stored chunk. Returns the new session and the receipt of the
/// chunk it replaced, if it was a retry, whose bytes may now be discarded.
/// Recording extends the session's expiry.
pub fn record_chunk(
    session: Session,
    index: u64,
    receipt: PartReceipt,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<(Session, Option<PartReceipt>), Error> {
    let range = chunk_target(&session, index, now)?;
    if receipt.range() != range {
        return Err(Error::ChunkLength {
            index,
            expected: range.end - range.start,
            actual: crate::error::BodyLength::Exactly(receipt.len),
        });
    }
    let Session {
        state: SessionState::Open { mut ledger },
        ..
    } = session
    else {
        unreachable!("chunk_target checked the session is open")
    };
    let replaced = ledger
        .insert(receipt)
        .map_err(|overlap| Error::invalid_request(overlap.to_string()))?;
    let session = Session {
        expires_at: session.expires_at.max(now + timeouts.session_timeout),
        state: SessionState::Open { ledger },
        ..session
    };
    Ok((session, replaced))
}

/// Advances the hashed prefix of an open or finalizing session from `from`
/// to `next`, which is `from` continued with the bytes of `covering` (see
/// [`Ledger::advance_hashed`]): after recording a part that was hashed as it
/// streamed in, or after hashing recorded parts from the sink. Returns the
/// session and whether the prefix moved; it does not when another writer
/// moved the prefix or replaced one of the parts meanwhile, or when the
/// session no longer has a ledger. Records no activity: the expiry stays.
pub fn advance_hashed(
    mut session: Session,
    from: &HashedPrefix,
    covering: &[PartReceipt],
    next: HashedPrefix,
) -> (Session, bool) {
    let advanced = match &mut session.state {
        SessionState::Open { ledger } | SessionState::Finalizing { ledger, .. } => {
            ledger.advance_hashed(from, covering, next)
        }
        _ => false,
    };
    (session, advanced)
}

/// Checks that bytes may be appended at `offset` now, before the body is
/// read: the upload is open, appended, and at exactly that offset. Returns
/// how many bytes the upload still has room for, if its length is known.
pub fn append_target(
    session: &Session,
    offset: u64,
    now: SystemTime,
) -> Result<Option<u64>, Error> {
    let ledger = open_ledger(session, Operation::Append, now)?;
    if !matches!(session.kind, UploadKind::Appended | UploadKind::Partial) {
        return Err(Error::InvalidState {
            id: session.id,
            state: session.state.kind(),
            operation: Operation::Append,
        });
    }
    let expected = ledger.contiguous_end();
    if offset != expected {
        return Err(Error::OffsetMismatch {
            expected,
            provided: offset,
        });
    }
    Ok(session.file.size.map(|size| size - expected))
}

/// Records appended bytes (a part starting at the current offset, within the
/// length if known) and extends the expiry. A zero-length receipt records
/// nothing but still counts as activity.
pub fn record_append(
    session: Session,
    receipt: PartReceipt,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<Session, Error> {
    let room = append_target(&session, receipt.offset, now)?;
    if room.is_some_and(|room| receipt.len > room) {
        return Err(Error::BeyondLength {
            length: session.file.size.unwrap_or(0),
        });
    }
    let SessionState::Open { mut ledger } = session.state else {
        return Err(Error::InvalidState {
            id: session.id,
            state: session.state.kind(),
            operation: Operation::Append,
        });
    };
    if receipt.len > 0 {
        ledger
            .insert(receipt)
            .map_err(|overlap| Error::invalid_request(overlap.to_string()))?;
    }
    Ok(Session {
        expires_at: session.expires_at.max(now + timeouts.session_timeout),
        state: SessionState::Open { ledger },
        ..session
    })
}

/// Fixes the length of an upload whose length was not known. Declaring the
/// length it already has changes nothing; any other length, or one shorter
/// than the bytes received, is refused.
pub fn declare_length(session: Session, length: u64, now: SystemTime) -> Result<Session, Error> {
    let ledger = open_ledger(&session, Operation::DeclareLength, now)?;
    let received = ledger.contiguous_end().max(ledger.received_bytes());
    match session.file.size {
        Some(known) if known == length => Ok(session),
        Some(known) => Err(Error::InconsistentLength {
            reason: format!("the upload's length is {known}, not {length}"),
        }),
        None if length < received => Err(Error::InconsistentLength {
            reason: format!("{received} bytes were already received, more than {length}"),
        }),
        None => {
            let mut session = session;
            session.file.size = Some(length);
            Ok(session)
        }
    }
}

/// Whether every byte of an upload of known length has arrived, so that it
/// can be completed.
pub fn is_fully_received(session: &Session) -> bool {
    match (&session.state, session.file.size) {
        (SessionState::Open { ledger }, Some(size)) => ledger.is_complete(size),
        _ => false,
    }
}

/// Terminates an upload on the client's request (tus termination): an open
/// upload, or a completed one that is still temporary. Its bytes are to be
/// purged. Other states answer as [`abort`] does.
pub fn terminate(session: Session, now: SystemTime, timeouts: &Timeouts) -> Result<Session, Error> {
    ensure_alive(&session, now)?;
    match session.state {
        SessionState::Completed { .. } => Ok(Session {
            state: SessionState::Aborted {
                at: now,
                purged: false,
                forget_at: now + timeouts.tombstone_retention,
            },
            ..session
        }),
        _ => abort(session, now, timeouts),
    }
}

/// The indices of the chunks whose bytes are all recorded.
pub fn received_chunks(session: &Session) -> Vec<u64> {
    chunk_indices(session, true)
}

/// The indices of the chunks still missing some bytes (all of them once the
/// session no longer has a ledger, except for a completed upload).
pub fn missing_chunks(session: &Session) -> Vec<u64> {
    chunk_indices(session, false)
}

fn chunk_indices(session: &Session, received: bool) -> Vec<u64> {
    let all_received = session.state.blob().is_some();
    let ledger = session.state.ledger();
    (0..session.total_chunks())
        .filter(|&i| {
            let have = all_received
                || ledger.is_some_and(|l| l.covers(session.chunk_range(i).unwrap_or(0..0)));
            have == received
        })
        .collect()
}

/// What a complete request should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
// Returned once per complete request and matched at once: boxing the session
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Completion {
    /// Store this `finalizing` session, then assemble its ledger's parts.
    Finalize(Session),
    /// The upload was already completed; here is its blob.
    AlreadyCompleted(FinishedBlob),
}

/// Starts completing an upload: every byte must be recorded. A session
/// already `finalizing` is taken over only once its lease ran out; one
/// already completed answers with its blob, so complete is idempotent.
pub fn begin_complete(
    session: Session,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<Completion, Error> {
    ensure_alive(&session, now)?;
    let lease_until = now + timeouts.finalize_lease;
    match session.state {
        SessionState::Open { ledger } => {
            let Some(size) = session.file.size else {
                return Err(Error::LengthUnknown);
            };
            let is_final = matches!(session.kind, UploadKind::Final { .. });
            if !is_final && session.kind != UploadKind::Chunked && !ledger.is_complete(size) {
                return Err(Error::InconsistentLength {
                    reason: format!(
                        "the upload has {} of its {size} bytes",
                        ledger.contiguous_end()
                    ),
                });
            }
            if !is_final && !ledger.is_complete(size) {
                let probe = Session {
                    state: SessionState::Open { ledger },
                    ..session
                };
                let missing = missing_chunks(&probe);
                return Err(Error::MissingChunks {
                    missing_count: missing.len() as u64,
                    missing: missing.into_iter().take(MAX_LISTED_MISSING).collect(),
                });
            }
            Ok(Completion::Finalize(Session {
                state: SessionState::Finalizing {
                    ledger,
                    lease_until,
                },
                ..session
            }))
        }
        SessionState::Finalizing {
            ledger,
            lease_until: held_until,
        } => {
            if now < held_until {
                return Err(Error::InvalidState {
                    id: session.id,
                    state: StateKind::Finalizing,
                    operation: Operation::Complete,
                });
            }
            Ok(Completion::Finalize(Session {
                state: SessionState::Finalizing {
                    ledger,
                    lease_until,
                },
                ..session
            }))
        }
        SessionState::Completed { blob, .. } | SessionState::Claimed { blob, .. } => {
            Ok(Completion::AlreadyCompleted(blob))
        }
        ref other => Err(Error::InvalidState {
            id: session.id,
            state: other.kind(),
            operation: Operation::Complete,
        }),
    }
}

/// Extends the lease of a `finalizing` session to `now + finalize_lease`
/// (never shortens it): a finalizer renews its lease while it works, so the
/// lease can be short and a dead finalizer's session is taken over soon.
pub fn renew_lease(
    session: Session,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<Session, Error> {
    ensure_alive(&session, now)?;
    match session.state {
        SessionState::Finalizing {
            ledger,
            lease_until,
        } => Ok(Session {
            state: SessionState::Finalizing {
                ledger,
                lease_until: lease_until.max(now + timeouts.finalize_lease),
            },
            ..session
        }),
        ref other => Err(Error::InvalidState {
            id: session.id,
            state: other.kind(),
            operation: Operation::Complete,
        }),
    }
}

/// Checks that `session` is still `finalizing` and alive: a finalizer that
/// outlived both its lease and the session's expiry finds it expired, as
/// clients were told, and may not bring it back.
fn finalizing(session: &Session, operation: Operation, now: SystemTime) -> Result<(), Error> {
    ensure_alive(session, now)?;
    match session.state {
        SessionState::Finalizing { .. } => Ok(()),
        ref other => Err(Error::InvalidState {
            id: session.id,
            state: other.kind(),
            operation,
        }),
    }
}

/// Records a successful assembly: the upload is completed and *temporary*
/// until claimed or reaped.
pub fn finish_complete(
    session: Session,
    blob: FinishedBlob,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<Session, Error> {
    finalizing(&session, Operation::Complete, now)?;
    Ok(Session {
        state: SessionState::Completed {
            at: now,
            reap_at: now + timeouts.temporary_max_age,
            blob,
        },
        ..session
    })
}

/// Returns a `finalizing` session to `open` after a failed assembly (a
/// whole-file checksum mismatch, a sink failure), with its ledger intact and
/// its expiry extended, so the client can repair and complete again.
pub fn reopen(session: Session, now: SystemTime, timeouts: &Timeouts) -> Result<Session, Error> {
    finalizing(&session, Operation::Complete, now)?;
    let SessionState::Finalizing { ledger, .. } = session.state else {
        unreachable!("checked above")
    };
    Ok(Session {
        expires_at: session.expires_at.max(now + timeouts.session_timeout),
        state: SessionState::Open { ledger },
        ..session
    })
}

/// Ends a `finalizing` session whose assembly failed for good (a sink that
/// consumed its parts found the whole-file digest wrong): it is aborted and
/// its bytes are to be purged.
pub fn fail_finalize(
    session: Session,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Result<Session, Error> {
    finalizing(&session, Operation::Complete, now)?;
    Ok(Session {
        state: SessionState::Aborted {
            at: now,
            purged: false,
            forget_at: now + timeouts.tombstone_retention,
        },
        ..session
    })
}

/// Aborts an open session. Its bytes are to be purged.
pub fn abort(session: Session, now: SystemTime, timeouts: &Timeouts) -> Result<Session, Error> {
    open_ledger(&session, Operation::Abort, now)?;
    Ok(Session {
        state: SessionState::Aborted {
            at: now,
            purged: false,
            forget_at: now + timeouts.tombstone_retention,
        },
        ..session
    })
}

/// Claims a completed, temporary upload: it becomes permanent and is never
/// reaped. Claiming a claimed upload changes nothing.
pub fn claim(session: Session, now: SystemTime) -> Result<Session, Error> {
    ensure_alive(&session, now)?;
    match session.state {
        SessionState::Completed { blob, .. } => Ok(Session {
            state: SessionState::Claimed { at: now, blob },
            ..session
        }),
        SessionState::Claimed { .. } => Ok(session),
        ref other => Err(Error::InvalidState {
            id: session.id,
            state: other.kind(),
            operation: Operation::Claim,
        }),
    }
}

/// The finished blob of a completed or claimed upload, for reading it back.
pub fn readable_blob(session: &Session, now: SystemTime) -> Result<FinishedBlob, Error> {
    ensure_alive(session, now)?;
    session.state.blob().copied().ok_or(Error::InvalidState {
        id: session.id,
        state: session.state.kind(),
        operation: Operation::Read,
    })
}

/// What the sweep must do with a session at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAction {
    /// Nothing yet.
    Keep,
    /// Mark it expired (abandoned or unclaimed), then purge its bytes.
    Expire(ExpiryReason),
    /// Purge the bytes of an aborted or expired session, then mark it purged.
    Purge,
    /// Delete the record of a purged session.
    Forget,
}

/// Decides the sweep's work on one session.
pub fn sweep_action(session: &Session, now: SystemTime) -> SweepAction {
    match &session.state {
        SessionState::Open { .. } if now >= session.expires_at => {
            SweepAction::Expire(ExpiryReason::Abandoned)
        }
        SessionState::Finalizing { lease_until, .. }
            if now >= *lease_until && now >= session.expires_at =>
        {
            SweepAction::Expire(ExpiryReason::Abandoned)
        }
        SessionState::Completed { reap_at, .. } if now >= *reap_at => {
            SweepAction::Expire(ExpiryReason::Unclaimed)
        }
        SessionState::Aborted { purged: false, .. }
        | SessionState::Expired { purged: false, .. } => SweepAction::Purge,
        SessionState::Aborted {
            purged: true,
            forget_at,
            ..
        }
        | SessionState::Expired {
            purged: true,
            forget_at,
            ..
        } if now >= *forget_at => SweepAction::Forget,
        _ => SweepAction::Keep,
    }
}

/// Marks a session expired; its bytes are to be purged.
pub fn expire(
    session: Session,
    reason: ExpiryReason,
    now: SystemTime,
    timeouts: &Timeouts,
) -> Session {
    Session {
        state: SessionState::Expired {
            at: now,
            reason,
            purged: false,
            forget_at: now + timeouts.tombstone_retention,
        },
        ..session
    }
}

/// Records that every byte of an aborted or expired session is deleted.
/// Other sessions are returned unchanged.
pub fn mark_purged(session: Session) -> Session {
    let state = match session.state {
        SessionState::Aborted { at, forget_at, .. } => SessionState::Aborted {
            at,
            purged: true,
            forget_at,
        },
        SessionState::Expired {
            at,
            reason,
            forget_at,
            ..
        } => SessionState::Expired {
            at,
            reason,
            purged: true,
            forget_at,
        },
        other => other,
    };
    Session { state, ..session }
}

#[cfg(test)]
mod tests;
