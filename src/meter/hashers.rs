//! The hashing a metered body needs, done on the receiving task or, for a
//! large body, on tokio's blocking pool, overlapped with the receiving and
//! the writing ([`Offload`]).

use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::checksum::{Checksum, ChecksumAlgorithm, Hasher};
use crate::digest::Sha256Digest;
use crate::error::BoxError;
use crate::offload::Offload;

/// A body of at least this many bytes (or of unknown length) is hashed on
/// the blocking pool; a smaller one on the receiving task, where handing its
/// buffers over would cost more than it saves.
pub(crate) const OFF_TASK_FROM: u64 = 1 << 20;

/// Every hasher one body feeds.
#[derive(Debug)]
pub(crate) struct BodyHashers {
    /// The body's own checksums: the algorithms a declared (or late)
    /// checksum needs, SHA-256 among them only when one needs it.
    sums: Vec<Hasher>,
    /// The whole file's hasher, resumed where the body starts.
    running: Option<Sha256>,
}

/// What the hashers made of a whole body.
#[derive(Debug)]
pub(crate) struct BodySums {
    /// The body's own checksums, in the order of the algorithms.
    pub(crate) sums: Vec<Checksum>,
    /// The running whole-file hasher, continued with the body's bytes.
    pub(crate) running: Option<Sha256>,
}

impl BodySums {
    /// The body's own SHA-256, if it was computed.
    pub(crate) fn sha256(&self) -> Option<Sha256Digest> {
        self.sums
            .iter()
            .find(|s| s.algorithm == ChecksumAlgorithm::Sha256)
            .and_then(|s| Sha256Digest::from_slice(&s.value))
    }
}

impl BodyHashers {
    /// Hashers for `algorithms` and the running whole-file hasher.
    pub(crate) fn new(algorithms: &[ChecksumAlgorithm], running: Option<Sha256>) -> Self {
        BodyHashers {
            sums: algorithms.iter().copied().map(Hasher::new).collect(),
            running,
        }
    }

    /// Only the running whole-file hasher `running`.
    pub(crate) fn running(running: Sha256) -> Self {
        BodyHashers::new(&[], Some(running))
    }

    /// Whether there is nothing to hash.
    pub(crate) fn is_idle(&self) -> bool {
        self.sums.is_empty() && self.running.is_none()
    }

    fn update(&mut self, bytes: &[u8]) {
        for h in &mut self.sums {
            h.update(bytes);
        }
        if let Some(running) = &mut self.running {
            running.update(bytes);
        }
    }

    /// The [`Offload`] work: hashes a batch of buffers.
    fn update_batch(&mut self, batch: &[Bytes]) -> Result<(), BoxError> {
        for bytes in batch {
            self.update(bytes);
        }
        Ok(())
    }

    fn finish(self) -> BodySums {
        BodySums {
            sums: self.sums.into_iter().map(Hasher::finish).collect(),
            running: self.running,
        }
    }
}

/// Where a body's hashing runs.
#[derive(Debug)]
pub(crate) enum Hashing {
    /// On the task that polls the body.
    OnTask(BodyHashers),
    /// On tokio's blocking pool, a batch of buffers at a time.
    OffTask(Offload<BodyHashers>),
    /// Finished, or given up with the body.
    Over,
}

impl Hashing {
    /// Hashes with `hashers`, on the blocking pool when `off_task` and a
    /// tokio runtime is there to lend it.
    pub(crate) fn start(hashers: BodyHashers, off_task: bool) -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if off_task && !hashers.is_idle() => {
                Hashing::OffTask(Offload::new(hashers, BodyHashers::update_batch, runtime))
            }
            _ => Hashing::OnTask(hashers),
        }
    }

    /// Ready when the hashers can take another buffer. An error if hashing
    /// failed.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Hashing::OffTask(offload) => offload.poll_ready(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Hashes `bytes` (after [`poll_ready`](Self::poll_ready) said so).
    pub(crate) fn update(&mut self, bytes: &Bytes) -> Result<(), BoxError> {
        match self {
            Hashing::OnTask(hashers) => {
                hashers.update(bytes);
                Ok(())
            }
            Hashing::OffTask(offload) => offload.push(bytes.clone()),
            Hashing::Over => Ok(()),
        }
    }

    /// Ready with the sums once every buffer given is hashed.
    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<BodySums, BoxError>> {
        let hashers = match self {
            Hashing::OnTask(_) => match std::mem::replace(self, Hashing::Over) {
                Hashing::OnTask(hashers) => Ok(hashers),
                _ => unreachable!("matched above"),
            },
            Hashing::OffTask(offload) => {
                let hashers = std::task::ready!(offload.poll_finish(cx));
                *self = Hashing::Over;
                hashers
            }
            Hashing::Over => Err("the body was hashed already".into()),
        };
        Poll::Ready(hashers.map(BodyHashers::finish))
    }

    /// Hashes `bytes`, waiting for room first.
    pub(crate) async fn feed(&mut self, bytes: &Bytes) -> Result<(), BoxError> {
        futures::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.update(bytes)
    }

    /// The sums, once every buffer fed is hashed.
    pub(crate) async fn finish(&mut self) -> Result<BodySums, BoxError> {
        futures::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Gives up: a batch at work ends on its own, and nothing waits for it.
    pub(crate) fn abandon(&mut self) {
        *self = Hashing::Over;
    }
}
