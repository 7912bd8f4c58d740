//! The running whole-file SHA-256 (see the [module documentation](super)):
//! the hasher a body resumes, the background catch-up on parts that arrived
//! ahead of the hashed prefix, and the digest complete hands the sink.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use futures::StreamExt;
use sha2::Sha256;
use tokio::sync::watch;

use super::{Actor, Engine};
use crate::digest::Sha256Digest;
use crate::error::{BoxError, Error, SinkError};
use crate::ledger::{HashedPrefix, Ledger, PartReceipt};
use crate::machine;
use crate::meter::hashers::{BodyHashers, Hashing};
use crate::session::{Session, SessionId, SessionState};
use crate::sink::{BlobDigest, UploadHandle};

/// The most bytes one catch-up round hashes before it records its progress
/// (at least one part, however large).
const CATCH_UP_ROUND: u64 = 64 << 20;

/// How many times a catch-up round lost to [`Error::Contention`] is tried
/// again before it is given up (its parts are then hashed again later).
const CATCH_UP_PATIENCE: u32 = 8;

/// The sessions this process is catching up on.
#[derive(Debug, Default)]
pub(super) struct CatchUps(Mutex<HashMap<SessionId, Running>>);

/// One catch-up under way.
#[derive(Debug)]
struct Running {
    /// More parts were recorded since it looked: look again before ending.
    again: bool,
    /// Set when it ends.
    done: watch::Sender<bool>,
}

impl CatchUps {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Running>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A body's start on the hashed prefix: the prefix it resumed from, and the
/// hasher it feeds.
pub(super) struct Resumed {
    from: HashedPrefix,
}

impl Resumed {
    /// The prefix of `session`, if a body starting at `offset` continues it.
    pub(super) fn at(session: &Session, offset: u64) -> Option<Resumed> {
        let hashed = session.state.ledger()?.hashed();
        (hashed.upto() == offset).then(|| Resumed {
            from: hashed.clone(),
        })
    }

    /// The hasher the body's bytes are fed to.
    pub(super) fn hasher(&self) -> Sha256 {
        self.from.hasher()
    }

    /// The prefix to record with `part` once the body's bytes went through
    /// `hasher`, or `None` if the body was not hashed.
    pub(super) fn advance(self, part: &PartReceipt, hasher: Option<Sha256>) -> Option<Advance> {
        let next = HashedPrefix::new(part.range().end, &hasher?);
        (part.len > 0).then(|| Advance {
            from: self.from,
            part: part.clone(),
            next,
        })
    }
}

/// A hashed part to record together with the part itself.
pub(super) struct Advance {
    from: HashedPrefix,
    part: PartReceipt,
    next: HashedPrefix,
}

impl Advance {
    /// Advances the prefix of `session`, which has just recorded the part,
    /// if it is still where the body started.
    pub(super) fn apply(&self, session: Session) -> Session {
        let covering = std::slice::from_ref(&self.part);
        machine::advance_hashed(session, &self.from, covering, self.next.clone()).0
    }
}

impl Engine {
    /// After a part was recorded: if parts follow the session's hashed
    /// prefix (they arrived ahead of it), hashes them from the sink in a
    /// background task, unless one is already at it in this process (it then
    /// looks again before it ends). Needs a sink that reads parts back and a
    /// tokio runtime; the caller does not wait.
    pub(super) fn catch_up_after(&self, session: &Session) {
        let SessionState::Open { ledger } = &session.state else {
            return;
        };
        if ledger.unhashed_parts().next().is_none() || !self.sink.capabilities().readable_parts {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = session.id;
        {
            let mut running = self.catch_ups.lock();
            if let Some(under_way) = running.get_mut(&id) {
                under_way.again = true;
                return;
            }
            running.insert(
                id,
                Running {
                    again: false,
                    done: watch::Sender::new(false),
                },
            );
        }
        let engine = self.handle();
        runtime.spawn(async move { engine.run_catch_up(id).await });
    }

    /// The background task of [`catch_up_after`](Engine::catch_up_after).
    async fn run_catch_up(self, id: SessionId) {
        loop {
            if let Err(e) = self.catch_up(id).await {
                tracing::debug!(session = %id, error = %e, "hashing caught up no further; complete hashes the rest");
            }
            let mut running = self.catch_ups.lock();
            match running.get_mut(&id) {
                Some(under_way) if under_way.again => under_way.again = false,
                _ => {
                    if let Some(ended) = running.remove(&id) {
                        ended.done.send_replace(true);
                    }
                    return;
                }
            }
        }
    }

    /// Waits until no catch-up of `id` is under way in this process.
    pub(super) async fn caught_up(&self, id: SessionId) {
        let done = self.catch_ups.lock().get(&id).map(|r| r.done.subscribe());
        if let Some(mut done) = done {
            // The sender is dropped only after it sent `true`.
            let _ = done.wait_for(|d| *d).await;
        }
    }

    /// Hashes the parts that follow the prefix from the sink, a bounded
    /// round at a time, each recorded by compare-and-swap, until none
    /// follows, the session is no longer open, or a round no longer fits
    /// the record (another writer moved the prefix or replaced a part; it
    /// asks for another look if there is more to do).
    async fn catch_up(&self, id: SessionId) -> Result<(), Error> {
        loop {
            let loaded = self.load(id, Actor::Engine).await?;
            let SessionState::Open { ledger } = &loaded.session.state else {
                return Ok(());
            };
            let from = ledger.hashed().clone();
            let round = next_round(ledger);
            if round.is_empty() {
                return Ok(());
            }
            let next = self
                .hash_parts(&loaded.session.upload, &from, &round)
                .await?;
            let moved = self.record_round(id, &from, &round, &next).await?;
            if !moved {
                return Ok(());
            }
            tracing::trace!(session = %id, upto = next.upto(), "hashed prefix caught up");
        }
    }

    /// Records a catch-up round: the prefix moves from `from` to `next` if
    /// it is still `from` and the parts of `round` are still recorded as
    /// they were. The round's bytes were read and hashed already, so a round
    /// that keeps losing compare-and-swaps to the chunks being recorded
    /// meanwhile is tried again (up to [`CATCH_UP_PATIENCE`] times
    /// [`Engine::update`]'s own retries) rather than thrown away and read
    /// again later.
    async fn record_round(
        &self,
        id: SessionId,
        from: &HashedPrefix,
        round: &[PartReceipt],
        next: &HashedPrefix,
    ) -> Result<bool, Error> {
        let mut tries = 0;
        loop {
            let recorded = self
                .update(id, Actor::Engine, |s, _| {
                    let (s, moved) = machine::advance_hashed(s, from, round, next.clone());
                    Ok((moved.then_some(s), moved))
                })
                .await;
            match recorded {
                Err(Error::Contention { .. }) if tries < CATCH_UP_PATIENCE => tries += 1,
                recorded => return recorded.map(|(_, moved)| moved),
            }
        }
    }

    /// `from` continued with the bytes of `parts` (which follow it without
    /// a gap), read back from the sink and hashed on the blocking pool
    /// (overlapped with the reading).
    async fn hash_parts(
        &self,
        upload: &UploadHandle,
        from: &HashedPrefix,
        parts: &[PartReceipt],
    ) -> Result<HashedPrefix, SinkError> {
        let mut hashing = Hashing::start(BodyHashers::running(from.hasher()), true);
        let hashing_failed = |e: BoxError| SinkError::Backend(format!("hashing: {e}").into());
        let mut upto = from.upto();
        for part in parts {
            let mut stream = self.sink.read_part(upload, part).await?;
            let mut read = 0u64;
            while let Some(bytes) = stream.next().await {
                let bytes = bytes.map_err(SinkError::Io)?;
                read += bytes.len() as u64;
                if read > part.len {
                    break;
                }
                hashing.feed(&bytes).await.map_err(hashing_failed)?;
            }
            if read != part.len {
                return Err(SinkError::Backend(
                    format!(
                        "the part at {} read back {read} bytes, its receipt says {}",
                        part.offset, part.len
                    )
                    .into(),
                ));
            }
            upto = part.range().end;
        }
        let hashed = hashing.finish().await.map_err(hashing_failed)?;
        let hasher = hashed
            .running
            .ok_or_else(|| hashing_failed("the running hasher was lost".into()))?;
        Ok(HashedPrefix::new(upto, &hasher))
    }

    /// How `finalize` learns the digest of a `finalizing` session's blob of
    /// `size` bytes, the parts of `ledger`: known from its hashed prefix if
    /// that covers the file, known after hashing the rest from the sink if
    /// it can read parts back, or computed by the sink. A known digest that
    /// differs from `expected` is answered here, before the sink is asked.
    pub(super) async fn blob_digest(
        &self,
        upload: &UploadHandle,
        ledger: &Ledger,
        size: u64,
        expected: Option<Sha256Digest>,
    ) -> Result<BlobDigest, DigestMismatch> {
        let compute = BlobDigest::Compute { expected };
        let hashed = ledger.hashed();
        let whole = if hashed.upto() == size {
            hashed.clone()
        } else if self.sink.capabilities().readable_parts {
            let rest: Vec<PartReceipt> = ledger.unhashed_parts().cloned().collect();
            match self.hash_parts(upload, hashed, &rest).await {
                Ok(whole) if whole.upto() == size => whole,
                Ok(_) => return Ok(compute),
                Err(e) => {
                    tracing::warn!(upload = %upload, error = %e, "could not read the parts back; the sink computes the digest");
                    return Ok(compute);
                }
            }
        } else {
            return Ok(compute);
        };
        let actual = whole.digest();
        match expected.filter(|e| *e != actual) {
            Some(expected) => Err(DigestMismatch { expected, actual }),
            None => Ok(BlobDigest::Known(actual)),
        }
    }
}

/// The whole file's digest is known, and it is not the expected one.
#[derive(Debug)]
pub(super) struct DigestMismatch {
    pub(super) expected: Sha256Digest,
    pub(super) actual: Sha256Digest,
}

/// The parts a catch-up round hashes: those that follow the prefix, up to
/// [`CATCH_UP_ROUND`] bytes (at least one part).
fn next_round(ledger: &Ledger) -> Vec<PartReceipt> {
    let mut bytes = 0u64;
    ledger
        .unhashed_parts()
        .take_while(|p| {
            let take = bytes < CATCH_UP_ROUND;
            bytes += p.len;
            take
        })
        .cloned()
        .collect()
}
