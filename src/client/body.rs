//! Request bodies of chunk bytes held in memory: handed to the connection
//! in small frames, each counted as sent, optionally paced by a rate limit
//! shared by every request of a client. The exact length is known, so the
//! request carries `Content-Length`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::progress::Tracker;

/// The largest frame handed to the connection at once.
const FRAME: usize = 64 << 10;

/// Paces the bytes of every request of a client to a rate.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bytes_per_sec: u64,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limit of `bytes_per_sec` (at least 1).
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            next: Mutex::new(None),
        }
    }

    /// Reserves the time to send `n` bytes: returns when they may go.
    fn reserve(&self, n: usize) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let start = next.map_or(now, |t| t.max(now));
        *next = Some(start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64));
        start
    }
}

/// The body of one attempt to send a chunk.
pub(crate) struct ChunkBody {
    data: Bytes,
    tracker: Arc<Tracker>,
    sent: Arc<AtomicU64>,
    limiter: Option<Arc<RateLimiter>>,
    wait: Option<Pin<Box<Sleep>>>,
    reserved: bool,
}

impl ChunkBody {
    /// A body of `data`, telling `tracker` and adding to `sent` as frames
    /// go out.
    pub(crate) fn new(
        data: Bytes,
        tracker: Arc<Tracker>,
        sent: Arc<AtomicU64>,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Self {
        ChunkBody {
            data,
            tracker,
            sent,
            limiter,
            wait: None,
            reserved: false,
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = this.data.len().min(FRAME);
        if !this.reserved {
            this.reserved = true;
            if let Some(limiter) = &this.limiter {
                let at = limiter.reserve(n);
                if at > Instant::now() {
                    this.wait = Some(Box::pin(tokio::time::sleep_until(at)));
                }
            }
        }
        if let Some(wait) = &mut this.wait {
            ready!(wait.as_mut().poll(cx));
            this.wait = None;
        }
        this.reserved = false;
        let frame = this.data.split_to(n);
        this.sent.fetch_add(n as u64, Ordering::Relaxed);
        this.tracker.sent(n as u64);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::progress::Listeners;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn frames_are_counted_and_add_up_to_the_data() {
        let tracker = Arc::new(Tracker::new(Listeners::default(), 200_000));
        let sent = Arc::new(AtomicU64::new(0));
        let data = Bytes::from(vec![9u8; 200_000]);
        let body = ChunkBody::new(data.clone(), tracker.clone(), sent.clone(), None);
        assert_eq!(body.size_hint().exact(), Some(200_000));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, data);
        assert_eq!(sent.load(Ordering::Relaxed), 200_000);
        assert_eq!(tracker.snapshot().bytes_sent, 200_000);
    }

    #[test]
    fn a_rate_limit_spaces_the_reservations() {
        // 1 byte a second: each reservation of 1,000 bytes starts 1,000 s
        // after the one before, however fast the calls come.
        let limiter = RateLimiter::new(1);
        let first = limiter.reserve(1_000);
        let later: Vec<Instant> = (0..3).map(|_| limiter.reserve(1_000)).collect();
        for (i, at) in later.iter().enumerate() {
            assert_eq!(*at - first, Duration::from_secs(1_000 * (i as u64 + 1)));
        }
    }
}
