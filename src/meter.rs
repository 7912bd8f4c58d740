//! A body stream that counts, hashes and enforces an exact length on the way
//! to the sink, and reports how the body ended.
//!
//! The sink sees an error item, and so stores nothing, whenever the body is
//! longer or shorter than the chunk, fails, or (given an expected digest)
//! does not hash to it. The engine learns which of these happened from the
//! [`MeterReport`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};

use crate::digest::Sha256Digest;
use crate::error::{BodyLength, BoxError};

/// How a metered body ended.
#[derive(Debug)]
pub(crate) enum MeterOutcome {
    /// Exactly the expected length arrived, with this digest.
    Complete(Sha256Digest),
    /// More bytes than expected arrived; the body was cut off.
    TooLong,
    /// The body ended after this many bytes, short of the expected length.
    TooShort(u64),
    /// The bytes do not hash to the expected digest.
    DigestMismatch(Sha256Digest),
    /// The body stream itself failed.
    Failed(BoxError),
}

/// Where the metered stream leaves its outcome for the engine.
#[derive(Debug, Clone, Default)]
pub(crate) struct MeterReport(Arc<Mutex<Option<MeterOutcome>>>);

impl MeterReport {
    fn set(&self, outcome: MeterOutcome) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    /// Takes the outcome, if the body ended.
    pub(crate) fn take(&self) -> Option<MeterOutcome> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The metering stream.
pub(crate) struct Metered {
    inner: BoxStream<'static, Result<Bytes, BoxError>>,
    expected_len: u64,
    expected_sha256: Option<Sha256Digest>,
    seen: u64,
    hasher: Option<Sha256>,
    report: MeterReport,
}

impl Metered {
    /// Meters `inner`, which must have exactly `expected_len` bytes.
    pub(crate) fn new(
        inner: BoxStream<'static, Result<Bytes, BoxError>>,
        expected_len: u64,
        expected_sha256: Option<Sha256Digest>,
    ) -> (Self, MeterReport) {
        let report = MeterReport::default();
        let metered = Metered {
            inner,
            expected_len,
            expected_sha256,
            seen: 0,
            hasher: Some(Sha256::new()),
            report: report.clone(),
        };
        (metered, report)
    }

    fn fail(
        &mut self,
        outcome: MeterOutcome,
        message: &'static str,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        self.hasher = None;
        self.report.set(outcome);
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ))))
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                this.seen += bytes.len() as u64;
                if this.seen > this.expected_len {
                    return this.fail(MeterOutcome::TooLong, "body longer than the chunk");
                }
                hasher.update(&bytes);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(MeterOutcome::Failed(e), "request body failed"),
            Poll::Ready(None) => {
                if this.seen < this.expected_len {
                    let seen = this.seen;
                    return this.fail(MeterOutcome::TooShort(seen), "body shorter than the chunk");
                }
                let Some(hasher) = this.hasher.take() else {
                    return Poll::Ready(None);
                };
                let digest = Sha256Digest::from_hasher(hasher);
                if this.expected_sha256.is_some_and(|want| want != digest) {
                    return this.fail(
                        MeterOutcome::DigestMismatch(digest),
                        "chunk checksum mismatch",
                    );
                }
                this.report.set(MeterOutcome::Complete(digest));
                Poll::Ready(None)
            }
        }
    }
}

impl MeterOutcome {
    /// The length the body had, for a length error.
    pub(crate) fn body_length(&self, expected: u64) -> BodyLength {
        match self {
            MeterOutcome::TooShort(n) => BodyLength::Exactly(*n),
            _ => BodyLength::MoreThan(expected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn body(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, BoxError>> {
        let items: Vec<Result<Bytes, BoxError>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(items).boxed()
    }

    async fn drain(m: Metered) -> (Vec<u8>, bool) {
        let items: Vec<_> = m.collect().await;
        let failed = items.iter().any(Result::is_err);
        let data = items.into_iter().filter_map(Result::ok).flatten().collect();
        (data, failed)
    }

    #[tokio::test]
    async fn exact_length_passes_and_is_hashed() {
        let (m, report) = Metered::new(body(&[b"ab", b"c"]), 3, None);
        let (data, failed) = drain(m).await;
        assert_eq!((data.as_slice(), failed), (&b"abc"[..], false));
        match report.take() {
            Some(MeterOutcome::Complete(d)) => assert_eq!(d, Sha256Digest::of(b"abc")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn long_short_and_wrong_digest_bodies_end_in_an_error() {
        let (m, r) = Metered::new(body(&[b"ab", b"cd"]), 3, None);
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooLong)));

        let (m, r) = Metered::new(body(&[b"ab"]), 3, None);
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooShort(2))));

        let (m, r) = Metered::new(body(&[b"abc"]), 3, Some(Sha256Digest::of(b"abd")));
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::DigestMismatch(_))));

        let failing =
            futures::stream::iter([Ok(Bytes::from_static(b"a")), Err("reset".into())]).boxed();
        let (m, r) = Metered::new(failing, 3, None);
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::Failed(_))));
    }
}
