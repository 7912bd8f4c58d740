//! Request bodies: any [`http_body::Body`] becomes the byte stream the engine
//! reads, and its trailers, if any, reach the dialect.
//!
//! # The idle timeout
//!
//! A client can open a request, send part of its body and then send nothing
//! more without closing the connection. Without a bound, the request would
//! hold its session's part (and a task, a file handle, a connection) for as
//! long as the connection lives. So every frame of a body must arrive within
//! the *idle timeout* of the one before it (of the first read, for the
//! first frame): waiting longer ends the stream with a [`BodyIdle`] error.
//! The engine reports that as [`Error::Body`](crate::Error::Body), like any
//! other broken body: a chunk is discarded and nothing is recorded, while an
//! append that keeps cut-off bodies (tus, the IETF draft) keeps the bytes
//! that arrived before the stall, exactly as if the connection had broken
//! there.
//!
//! The timeout bounds the gap between two frames, not the whole request: a
//! client that trickles one byte just inside the timeout keeps its request
//! alive. Bounding a request's total duration or minimum rate is the job of
//! the server in front (a proxy's or the framework's timeouts). The timer is
//! Tokio's (`tokio::time`), so the dialects must run on a Tokio runtime with
//! its time driver enabled, as the engine's adapters already do.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyStream;

use crate::error::BoxError;

/// How long a body may go without a frame unless configured otherwise (see
/// [`Endpoint::body_idle_timeout`](super::Endpoint::body_idle_timeout)).
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the trailers of a body are left when they arrive (before the end of
/// the data stream is reported).
pub(crate) type TrailerSink = Arc<dyn Fn(&HeaderMap) + Send + Sync>;

/// The error a body stream ends with when no frame arrived within the idle
/// timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyIdle {
    /// The idle timeout that elapsed.
    pub(crate) after: Duration,
}

impl fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body sent nothing for {:?} and was abandoned",
            self.after
        )
    }
}

impl std::error::Error for BodyIdle {}

/// The data frames of `body` as a stream of bytes; trailers are handed to
/// `on_trailers`. Waiting more than `idle` for a frame ends the stream with
/// a [`BodyIdle`] error; so does any error of the body itself, after which
/// the body is not polled again.
pub(crate) fn data_stream<B>(
    body: B,
    on_trailers: Option<TrailerSink>,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let frames: Pin<Box<BodyStream<B>>> = Box::pin(BodyStream::new(body));
    futures::stream::unfold(Some(frames), move |state| {
        let on_trailers = on_trailers.clone();
        async move {
            let mut frames = state?;
            loop {
                let frame = match tokio::time::timeout(idle, frames.next()).await {
                    Err(_elapsed) => {
                        let error: BoxError = Box::new(BodyIdle { after: idle });
                        return Some((Err(error), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(e.into()), None)),
                    Ok(Some(Ok(frame))) => frame,
                };
                match frame.into_data() {
                    Ok(data) => return Some((Ok(data), Some(frames))),
                    Err(frame) => {
                        if let (Ok(trailers), Some(sink)) = (frame.into_trailers(), &on_trailers) {
                            sink(&trailers);
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use http_body::Frame;
    use http_body_util::StreamBody;

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    fn body_of(
        frames: impl Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static,
    ) -> StreamBody<impl Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static> {
        StreamBody::new(frames)
    }

    #[tokio::test]
    async fn data_and_trailers_pass_through() {
        let mut trailers = HeaderMap::new();
        trailers.insert("upload-checksum", "sha1 AAAA".parse().unwrap());
        let frames: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"cd"))),
            Ok(Frame::trailers(trailers)),
        ];
        let seen = Arc::new(std::sync::Mutex::new(None));
        let slot = seen.clone();
        let sink: TrailerSink = Arc::new(move |h: &HeaderMap| {
            *slot.lock().unwrap() = h.get("upload-checksum").cloned();
        });
        let stream = data_stream(
            body_of(futures::stream::iter(frames)),
            Some(sink),
            DEFAULT_IDLE_TIMEOUT,
        );
        let all: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(all.concat(), b"abcd");
        assert_eq!(seen.lock().unwrap().as_ref().unwrap(), "sha1 AAAA");
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_with_an_idle_error_and_is_not_polled_again() {
        let polled_after = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = polled_after.clone();
        let frames = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"half")))])
            .chain(futures::stream::pending())
            .chain(futures::stream::poll_fn(move |_| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                std::task::Poll::Ready(None)
            }));
        let idle = Duration::from_millis(200);
        let mut stream = std::pin::pin!(data_stream(body_of(frames), None, idle));
        assert_eq!(stream.next().await.unwrap().unwrap(), "half");
        let started = std::time::Instant::now();
        let error = stream.next().await.unwrap().unwrap_err();
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        let idle_error = error.downcast_ref::<BodyIdle>().expect("a BodyIdle error");
        assert_eq!(idle_error.after, idle);
        assert!(stream.next().await.is_none(), "the stream ends after it");
        assert!(!polled_after.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn every_frame_restarts_the_timer() {
        let idle = Duration::from_secs(1);
        // Ten frames, each 150 ms after the one before: longer than the
        // timeout in all, but never a second without a frame.
        let frames = futures::stream::iter(0..10u8).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![i])))
        });
        let all: Vec<Bytes> = data_stream(body_of(frames), None, idle)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all.concat(), (0..10u8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_body_error_ends_the_stream() {
        let frames: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Err(std::io::Error::other("reset")),
            Ok(Frame::data(Bytes::from_static(b"never"))),
        ];
        let mut stream = std::pin::pin!(data_stream(
            body_of(futures::stream::iter(frames)),
            None,
            DEFAULT_IDLE_TIMEOUT
        ));
        assert_eq!(stream.next().await.unwrap().unwrap(), "x");
        assert!(stream.next().await.unwrap().is_err());
        assert!(stream.next().await.is_none());
    }
}
