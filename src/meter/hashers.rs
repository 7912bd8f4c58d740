//! The hashing a metered body needs, done on the receiving task or, for a
//! large body, on a thread of its own that the body's buffers are handed to
//! (so that hashing overlaps with receiving and writing on another core).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::channel::mpsc;
use sha2::{Digest as _, Sha256};

use crate::checksum::{Checksum, ChecksumAlgorithm, Hasher};
use crate::digest::Sha256Digest;
use crate::error::BoxError;

/// A body of at least this many bytes (or of unknown length) is hashed on
/// a thread of its own; a smaller one on the receiving task, where handing
/// its buffers over would cost more than it saves.
pub(crate) const OFF_TASK_FROM: u64 = 1 << 20;

/// How many of a body's buffers may wait for the hashing thread before the
/// body is read on: bounds the memory a slow hasher holds.
const QUEUED_BUFFERS: usize = 8;

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
    /// On a blocking thread of the tokio runtime, fed through a bounded
    /// channel.
    OffTask {
        /// `None` once the body ended (the thread then finishes).
        feed: Option<mpsc::Sender<Bytes>>,
        done: tokio::task::JoinHandle<BodySums>,
    },
    /// Finished, or given up with the body.
    Over,
}

impl Hashing {
    /// Hashes with `hashers`, on a thread of its own when `off_task` and a
    /// tokio runtime is there to lend one.
    pub(crate) fn start(hashers: BodyHashers, off_task: bool) -> Self {
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(runtime) if off_task && !hashers.is_idle() => {
                let (feed, buffers) = mpsc::channel::<Bytes>(QUEUED_BUFFERS);
                let done = runtime.spawn_blocking(move || {
                    let mut hashers = hashers;
                    for bytes in futures::executor::block_on_stream(buffers) {
                        hashers.update(&bytes);
                    }
                    hashers.finish()
                });
                Hashing::OffTask {
                    feed: Some(feed),
                    done,
                }
            }
            _ => Hashing::OnTask(hashers),
        }
    }

    /// Ready when the hashers can take another buffer: the hashing thread
    /// has room in its queue. An error if the thread is gone.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Hashing::OffTask {
                feed: Some(feed), ..
            } => Poll::Ready(ready!(feed.poll_ready(cx)).map_err(|_| hashing_stopped())),
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
            Hashing::OffTask {
                feed: Some(feed), ..
            } => feed
                .start_send(bytes.clone())
                .map_err(|_| hashing_stopped()),
            _ => Ok(()),
        }
    }

    /// Ready with the sums once every buffer given is hashed.
    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<BodySums, BoxError>> {
        let sums = match self {
            Hashing::OnTask(_) => match std::mem::replace(self, Hashing::Over) {
                Hashing::OnTask(hashers) => Ok(hashers.finish()),
                _ => unreachable!("matched above"),
            },
            Hashing::OffTask { feed, done } => {
                // Closing the channel ends the thread's loop.
                feed.take();
                let joined = ready!(Pin::new(done).poll(cx));
                *self = Hashing::Over;
                joined.map_err(|e| format!("the hashing thread failed: {e}").into())
            }
            Hashing::Over => Err("the body was hashed already".into()),
        };
        Poll::Ready(sums)
    }

    /// Hashes `bytes`, waiting for room in the hashing thread's queue.
    pub(crate) async fn feed(&mut self, bytes: &Bytes) -> Result<(), BoxError> {
        futures::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.update(bytes)
    }

    /// The sums, once every buffer fed is hashed.
    pub(crate) async fn finish(&mut self) -> Result<BodySums, BoxError> {
        futures::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Gives up: the thread, if any, stops once it has hashed what it holds.
    pub(crate) fn abandon(&mut self) {
        *self = Hashing::Over;
    }
}

fn hashing_stopped() -> BoxError {
    "the hashing thread stopped".into()
}
