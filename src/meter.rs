//! A body stream that counts, hashes and enforces a length on the way to the
//! sink, and reports how the body ended.
//!
//! Each buffer is hashed as it passes: by the part's own SHA-256 (its
//! receipt's digest), by the algorithm of a declared checksum if another,
//! and, when the body starts where the file's hashed prefix ends, by the
//! running whole-file hasher resumed from that prefix. All of them read the
//! same buffer once it arrived, so the bytes are passed over once.
//!
//! The sink sees an error item, and so stores nothing, whenever the body
//! breaks its length rule, fails (unless the caller keeps cut-off bodies), or
//! does not match a declared checksum. The engine learns which of these
//! happened from the [`MeterReport`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};

use crate::checksum::{Checksum, ChecksumAlgorithm, Hasher, LateChecksum};
use crate::digest::Sha256Digest;
use crate::error::{BodyLength, BoxError};

/// How long a body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthRule {
    /// Exactly this many bytes (a chunk).
    Exact(u64),
    /// At most this many bytes, if limited (an append); fewer is fine.
    AtMost(Option<u64>),
}

/// Which checksum the body must match.
#[derive(Debug, Clone, Default)]
pub(crate) enum Expected {
    /// None.
    #[default]
    Nothing,
    /// This one, declared before the body.
    Now(Checksum),
    /// One that arrives with the end of the body, in any supported algorithm.
    Late(LateChecksum),
}

/// How a metered body ended.
#[derive(Debug)]
pub(crate) enum MeterOutcome {
    /// The body is acceptable: `len` bytes with this SHA-256. `cut_off` holds
    /// the body's error when the caller keeps cut-off bodies.
    Complete {
        len: u64,
        sha256: Sha256Digest,
        cut_off: Option<BoxError>,
        /// The running whole-file hasher, continued with this body's bytes,
        /// if one was given.
        running: Option<Sha256>,
    },
    /// More bytes than allowed arrived; the body was cut off.
    TooLong,
    /// The body ended after this many bytes, short of an exact length.
    TooShort(u64),
    /// The bytes do not match the declared checksum.
    ChecksumMismatch {
        expected: Checksum,
        actual: Checksum,
    },
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
    rule: LengthRule,
    keep_cut_off: bool,
    expected: Expected,
    seen: u64,
    /// SHA-256 first, then the algorithms a checksum may need; empty once
    /// the body ended.
    hashers: Vec<Hasher>,
    /// The whole file's hasher, resumed where this body starts.
    running: Option<Sha256>,
    report: MeterReport,
}

impl Metered {
    /// Meters `inner` under `rule`. With `keep_cut_off`, a body that fails
    /// mid-way ends cleanly with the bytes received (unless a checksum is
    /// expected, which such a body cannot match). `running`, the whole
    /// file's hasher resumed where this body starts, is fed the body's
    /// bytes too and handed back with an acceptable body's outcome.
    pub(crate) fn new(
        inner: BoxStream<'static, Result<Bytes, BoxError>>,
        rule: LengthRule,
        keep_cut_off: bool,
        expected: Expected,
        running: Option<Sha256>,
    ) -> (Self, MeterReport) {
        let mut hashers = vec![Hasher::new(ChecksumAlgorithm::Sha256)];
        match &expected {
            Expected::Now(c) if c.algorithm != ChecksumAlgorithm::Sha256 => {
                hashers.push(Hasher::new(c.algorithm));
            }
            Expected::Late(_) => hashers.extend(
                ChecksumAlgorithm::ALL
                    .into_iter()
                    .filter(|a| *a != ChecksumAlgorithm::Sha256)
                    .map(Hasher::new),
            ),
            _ => {}
        }
        let report = MeterReport::default();
        let metered = Metered {
            inner,
            rule,
            keep_cut_off,
            expected,
            seen: 0,
            hashers,
            running,
            report: report.clone(),
        };
        (metered, report)
    }

    fn fail(
        &mut self,
        outcome: MeterOutcome,
        message: &'static str,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        self.hashers.clear();
        self.running = None;
        self.report.set(outcome);
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ))))
    }

    /// The body ended (or was cut off and is kept): check length and checksum.
    fn finish(&mut self, cut_off: Option<BoxError>) -> Poll<Option<std::io::Result<Bytes>>> {
        if let LengthRule::Exact(len) = self.rule
            && self.seen < len
        {
            let seen = self.seen;
            return match cut_off {
                Some(e) => self.fail(MeterOutcome::Failed(e), "request body failed"),
                None => self.fail(MeterOutcome::TooShort(seen), "body shorter than the chunk"),
            };
        }
        let (expected, announced) = match std::mem::take(&mut self.expected) {
            Expected::Nothing => (None, false),
            Expected::Now(c) => (Some(c), true),
            Expected::Late(slot) => (slot.take(), true),
        };
        // A checksum was announced: bytes it does not vouch for (a body cut
        // off, or one whose late checksum never came) are not kept.
        let cut_off = match cut_off {
            Some(e) if announced => {
                return self.fail(MeterOutcome::Failed(e), "request body failed");
            }
            other => other,
        };
        if announced && expected.is_none() {
            let missing = "the body ended without the checksum it announced";
            return self.fail(MeterOutcome::Failed(missing.into()), missing);
        }
        let sums: Vec<Checksum> = self.hashers.drain(..).map(Hasher::finish).collect();
        let sha256 =
            Sha256Digest::from_slice(&sums[0].value).unwrap_or(Sha256Digest::from_bytes([0; 32]));
        if let Some(expected) = expected {
            let actual = sums
                .iter()
                .find(|s| s.algorithm == expected.algorithm)
                .cloned();
            match actual {
                Some(actual) if actual == expected => {}
                Some(actual) => {
                    return self.fail(
                        MeterOutcome::ChecksumMismatch { expected, actual },
                        "checksum mismatch",
                    );
                }
                None => {
                    let actual = Checksum {
                        algorithm: expected.algorithm,
                        value: Vec::new(),
                    };
                    return self.fail(
                        MeterOutcome::ChecksumMismatch { expected, actual },
                        "checksum not computed",
                    );
                }
            }
        }
        self.report.set(MeterOutcome::Complete {
            len: self.seen,
            sha256,
            cut_off,
            running: self.running.take(),
        });
        Poll::Ready(None)
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.hashers.is_empty() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                this.seen += bytes.len() as u64;
                let limit = match this.rule {
                    LengthRule::Exact(n) => Some(n),
                    LengthRule::AtMost(n) => n,
                };
                if limit.is_some_and(|max| this.seen > max) {
                    return this.fail(MeterOutcome::TooLong, "body longer than allowed");
                }
                for h in &mut this.hashers {
                    h.update(&bytes);
                }
                if let Some(running) = &mut this.running {
                    running.update(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) if this.keep_cut_off => this.finish(Some(e)),
            Poll::Ready(Some(Err(e))) => this.fail(MeterOutcome::Failed(e), "request body failed"),
            Poll::Ready(None) => this.finish(None),
        }
    }
}

impl MeterOutcome {
    /// The length the body had, for a length error.
    pub(crate) fn body_length(&self, limit: u64) -> BodyLength {
        match self {
            MeterOutcome::TooShort(n) => BodyLength::Exactly(*n),
            _ => BodyLength::MoreThan(limit),
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

    fn failing_after(data: &'static [u8]) -> BoxStream<'static, Result<Bytes, BoxError>> {
        futures::stream::iter([Ok(Bytes::from_static(data)), Err("reset".into())]).boxed()
    }

    /// A meter without a running whole-file hasher.
    fn metered(
        inner: BoxStream<'static, Result<Bytes, BoxError>>,
        rule: LengthRule,
        keep_cut_off: bool,
        expected: Expected,
    ) -> (Metered, MeterReport) {
        Metered::new(inner, rule, keep_cut_off, expected, None)
    }

    async fn drain(m: Metered) -> (Vec<u8>, bool) {
        let items: Vec<_> = m.collect().await;
        let failed = items.iter().any(Result::is_err);
        let data = items.into_iter().filter_map(Result::ok).flatten().collect();
        (data, failed)
    }

    fn sha1_of(data: &[u8]) -> Checksum {
        let mut h = Hasher::new(ChecksumAlgorithm::Sha1);
        h.update(data);
        h.finish()
    }

    #[tokio::test]
    async fn exact_length_passes_and_is_hashed() {
        let (m, report) = metered(
            body(&[b"ab", b"c"]),
            LengthRule::Exact(3),
            false,
            Expected::Nothing,
        );
        let (data, failed) = drain(m).await;
        assert_eq!((data.as_slice(), failed), (&b"abc"[..], false));
        match report.take() {
            Some(MeterOutcome::Complete {
                len: 3,
                sha256,
                cut_off: None,
                running: None,
            }) => {
                assert_eq!(sha256, Sha256Digest::of(b"abc"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn long_short_and_wrong_checksum_bodies_end_in_an_error() {
        let (m, r) = metered(
            body(&[b"ab", b"cd"]),
            LengthRule::Exact(3),
            false,
            Expected::Nothing,
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooLong)));

        let (m, r) = metered(
            body(&[b"ab"]),
            LengthRule::Exact(3),
            false,
            Expected::Nothing,
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooShort(2))));

        let wrong = Expected::Now(Sha256Digest::of(b"abd").into());
        let (m, r) = metered(body(&[b"abc"]), LengthRule::Exact(3), false, wrong);
        assert!(drain(m).await.1);
        assert!(matches!(
            r.take(),
            Some(MeterOutcome::ChecksumMismatch { .. })
        ));

        let (m, r) = metered(
            failing_after(b"a"),
            LengthRule::Exact(3),
            false,
            Expected::Nothing,
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::Failed(_))));
    }

    #[tokio::test]
    async fn appends_take_up_to_the_limit_and_keep_cut_off_bodies() {
        let (m, r) = metered(
            body(&[b"ab"]),
            LengthRule::AtMost(Some(3)),
            false,
            Expected::Nothing,
        );
        assert!(!drain(m).await.1);
        assert!(matches!(
            r.take(),
            Some(MeterOutcome::Complete { len: 2, .. })
        ));

        let (m, r) = metered(
            body(&[b"abcd"]),
            LengthRule::AtMost(Some(3)),
            false,
            Expected::Nothing,
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooLong)));

        let (m, r) = metered(
            failing_after(b"ab"),
            LengthRule::AtMost(None),
            true,
            Expected::Nothing,
        );
        let (data, failed) = drain(m).await;
        assert_eq!((data.as_slice(), failed), (&b"ab"[..], false));
        assert!(matches!(
            r.take(),
            Some(MeterOutcome::Complete {
                len: 2,
                cut_off: Some(_),
                ..
            })
        ));

        // A cut-off body cannot match a checksum, so it is not kept.
        let sum = Expected::Now(sha1_of(b"ab"));
        let (m, r) = metered(failing_after(b"ab"), LengthRule::AtMost(None), true, sum);
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::Failed(_))));
    }

    #[tokio::test]
    async fn other_algorithms_and_late_checksums_are_verified() {
        let (m, r) = metered(
            body(&[b"abc"]),
            LengthRule::AtMost(None),
            false,
            Expected::Now(sha1_of(b"abc")),
        );
        assert!(!drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::Complete { .. })));

        let late = LateChecksum::new();
        let (m, r) = metered(
            body(&[b"abc"]),
            LengthRule::AtMost(None),
            false,
            Expected::Late(late.clone()),
        );
        late.set(sha1_of(b"abd"));
        assert!(drain(m).await.1);
        assert!(matches!(
            r.take(),
            Some(MeterOutcome::ChecksumMismatch { .. })
        ));

        let late = LateChecksum::new();
        let (m, r) = metered(
            body(&[b"abc"]),
            LengthRule::AtMost(None),
            false,
            Expected::Late(late.clone()),
        );
        late.set(sha1_of(b"abc"));
        assert!(!drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::Complete { .. })));

        // A late checksum that never comes vouches for nothing: neither a
        // whole body nor a cut-off one is kept.
        for (stream, keep_cut_off) in [(body(&[b"abc"]), false), (failing_after(b"ab"), true)] {
            let (m, r) = metered(
                stream,
                LengthRule::AtMost(None),
                keep_cut_off,
                Expected::Late(LateChecksum::new()),
            );
            assert!(drain(m).await.1);
            assert!(matches!(r.take(), Some(MeterOutcome::Failed(_))));
        }
    }

    #[tokio::test]
    async fn the_running_hasher_continues_over_an_accepted_body_only() {
        let mut resumed = Sha256::new();
        resumed.update(b"0123");
        let (m, r) = Metered::new(
            body(&[b"45", b"6"]),
            LengthRule::AtMost(None),
            false,
            Expected::Nothing,
            Some(resumed.clone()),
        );
        assert!(!drain(m).await.1);
        match r.take() {
            Some(MeterOutcome::Complete {
                sha256,
                running: Some(running),
                ..
            }) => {
                assert_eq!(sha256, Sha256Digest::of(b"456"), "the part's own digest");
                assert_eq!(
                    Sha256Digest::from_hasher(running),
                    Sha256Digest::of(b"0123456"),
                    "the whole file's so far"
                );
            }
            other => panic!("{other:?}"),
        }

        // A kept cut-off body continues it with the bytes kept.
        let (m, r) = Metered::new(
            failing_after(b"45"),
            LengthRule::AtMost(None),
            true,
            Expected::Nothing,
            Some(resumed.clone()),
        );
        assert!(!drain(m).await.1);
        match r.take() {
            Some(MeterOutcome::Complete {
                running: Some(running),
                cut_off: Some(_),
                ..
            }) => assert_eq!(
                Sha256Digest::from_hasher(running),
                Sha256Digest::of(b"012345")
            ),
            other => panic!("{other:?}"),
        }

        // A refused body hands nothing back.
        let (m, r) = Metered::new(
            body(&[b"45"]),
            LengthRule::Exact(3),
            false,
            Expected::Nothing,
            Some(resumed),
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooShort(2))));
    }
}
