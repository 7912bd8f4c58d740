//! A body stream that counts, hashes and enforces a length on the way to the
//! sink, and reports how the body ended.
//!
//! Each buffer is hashed as it passes: by the algorithm of a declared
//! checksum (SHA-256 for a `Content-Digest: sha-256`; every supported one
//! for a checksum announced to come late) and, when the body starts where
//! the file's hashed prefix ends, by the running whole-file hasher resumed
//! from that prefix. A body with neither is not hashed at all: its part's
//! receipt then has no SHA-256 of its own, and the whole file's digest is
//! computed from the sink later. All the hashers read the same buffer, so
//! the bytes are passed over once; a large body's buffers are hashed on the
//! blocking pool in batches ([`hashers`]), overlapped with the receiving and
//! the writing.
//!
//! The sink sees an error item, and so stores nothing, whenever the body
//! breaks its length rule, fails (unless the caller keeps cut-off bodies), or
//! does not match a declared checksum. The engine learns which of these
//! happened from the [`MeterReport`].

pub(crate) mod hashers;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use sha2::Sha256;

use crate::checksum::{Checksum, ChecksumAlgorithm, LateChecksum};
use crate::digest::Sha256Digest;
use crate::error::{BodyLength, BoxError};
use hashers::{BodyHashers, BodySums, Hashing, OFF_TASK_FROM};

/// How long a body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthRule {
    /// Exactly this many bytes (a chunk).
    Exact(u64),
    /// At most this many bytes, if limited (an append); fewer is fine.
    AtMost(Option<u64>),
}

impl LengthRule {
    /// The most bytes the body may have, if limited.
    fn limit(self) -> Option<u64> {
        match self {
            LengthRule::Exact(n) => Some(n),
            LengthRule::AtMost(n) => n,
        }
    }
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

impl Expected {
    /// The algorithms the body must be hashed with to check it.
    fn algorithms(&self) -> Vec<ChecksumAlgorithm> {
        match self {
            Expected::Nothing => Vec::new(),
            Expected::Now(c) => vec![c.algorithm],
            Expected::Late(_) => ChecksumAlgorithm::ALL.to_vec(),
        }
    }
}

/// How a metered body ended.
#[derive(Debug)]
pub(crate) enum MeterOutcome {
    /// The body is acceptable: `len` bytes, with their SHA-256 if a declared
    /// checksum needed it. `cut_off` holds the body's error when the caller
    /// keeps cut-off bodies.
    Complete {
        len: u64,
        sha256: Option<Sha256Digest>,
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

/// Where the metered stream is.
enum Phase {
    /// Passing the body's buffers on.
    Streaming,
    /// The body ended (or was cut off, and is kept): waiting for the hashers.
    Ending { cut_off: Option<BoxError> },
    /// Over: the outcome is reported.
    Over,
}

/// The metering stream.
pub(crate) struct Metered {
    inner: BoxStream<'static, Result<Bytes, BoxError>>,
    rule: LengthRule,
    keep_cut_off: bool,
    expected: Expected,
    seen: u64,
    hashing: Hashing,
    phase: Phase,
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
        let hashers = BodyHashers::new(&expected.algorithms(), running);
        let large = rule.limit().is_none_or(|n| n >= OFF_TASK_FROM);
        let report = MeterReport::default();
        let metered = Metered {
            inner,
            rule,
            keep_cut_off,
            expected,
            seen: 0,
            hashing: Hashing::start(hashers, large),
            phase: Phase::Streaming,
            report: report.clone(),
        };
        (metered, report)
    }

    fn fail(
        &mut self,
        outcome: MeterOutcome,
        message: &'static str,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
        self.hashing.abandon();
        self.phase = Phase::Over;
        self.report.set(outcome);
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ))))
    }

    /// The body ended (or was cut off and is kept): checks the length, and
    /// goes on to wait for the hashers in [`Phase::Ending`] (`None`) or
    /// fails.
    fn end(&mut self, cut_off: Option<BoxError>) -> Option<Poll<Option<std::io::Result<Bytes>>>> {
        if let LengthRule::Exact(len) = self.rule
            && self.seen < len
        {
            let seen = self.seen;
            return Some(match cut_off {
                Some(e) => self.fail(MeterOutcome::Failed(e), "request body failed"),
                None => self.fail(MeterOutcome::TooShort(seen), "body shorter than the chunk"),
            });
        }
        self.phase = Phase::Ending { cut_off };
        None
    }

    /// Every byte is hashed: check the checksum and report.
    fn finish(
        &mut self,
        cut_off: Option<BoxError>,
        hashed: BodySums,
    ) -> Poll<Option<std::io::Result<Bytes>>> {
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
        if let Some(expected) = expected {
            // The algorithms hashed are those `expected` may use.
            let actual = (hashed.sums.iter())
                .find(|s| s.algorithm == expected.algorithm)
                .cloned()
                .unwrap_or(Checksum {
                    algorithm: expected.algorithm,
                    value: Vec::new(),
                });
            if actual != expected {
                return self.fail(
                    MeterOutcome::ChecksumMismatch { expected, actual },
                    "checksum mismatch",
                );
            }
        }
        self.phase = Phase::Over;
        self.report.set(MeterOutcome::Complete {
            len: self.seen,
            sha256: hashed.sha256(),
            cut_off,
            running: hashed.running,
        });
        Poll::Ready(None)
    }

    /// Takes the next buffer of the body, hashing it on the way; `None` once
    /// the body ended and the hashers are to be waited for.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<std::io::Result<Bytes>>>> {
        match self.hashing.poll_ready(cx) {
            Poll::Pending => return Some(Poll::Pending),
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                return Some(self.fail(MeterOutcome::Failed(e), "the body could not be hashed"));
            }
        }
        Some(match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                self.seen += bytes.len() as u64;
                if self.rule.limit().is_some_and(|max| self.seen > max) {
                    return Some(self.fail(MeterOutcome::TooLong, "body longer than allowed"));
                }
                if let Err(e) = self.hashing.update(&bytes) {
                    return Some(
                        self.fail(MeterOutcome::Failed(e), "the body could not be hashed"),
                    );
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) if self.keep_cut_off => return self.end(Some(e)),
            Poll::Ready(Some(Err(e))) => self.fail(MeterOutcome::Failed(e), "request body failed"),
            Poll::Ready(None) => return self.end(None),
        })
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Over => return Poll::Ready(None),
                Phase::Streaming => match this.poll_body(cx) {
                    Some(poll) => return poll,
                    None => continue,
                },
                Phase::Ending { .. } => {
                    let hashed = std::task::ready!(this.hashing.poll_finish(cx));
                    let Phase::Ending { cut_off } = std::mem::replace(&mut this.phase, Phase::Over)
                    else {
                        unreachable!("matched above")
                    };
                    return match hashed {
                        Ok(hashed) => this.finish(cut_off, hashed),
                        Err(e) => {
                            this.fail(MeterOutcome::Failed(e), "the body could not be hashed")
                        }
                    };
                }
            }
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
    use crate::checksum::Hasher;
    use futures::StreamExt;
    use sha2::Digest as _;

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
    async fn exact_length_passes_and_is_hashed_only_for_a_declared_digest() {
        let declared = Expected::Now(Sha256Digest::of(b"abc").into());
        for (expected, sha256) in [
            (Expected::Nothing, None),
            (declared, Some(Sha256Digest::of(b"abc"))),
        ] {
            let (m, report) = metered(body(&[b"ab", b"c"]), LengthRule::Exact(3), false, expected);
            let (data, failed) = drain(m).await;
            assert_eq!((data.as_slice(), failed), (&b"abc"[..], false));
            match report.take() {
                Some(MeterOutcome::Complete {
                    len: 3,
                    sha256: got,
                    cut_off: None,
                    running: None,
                }) => assert_eq!(got, sha256),
                other => panic!("{other:?}"),
            }
        }
    }

    /// A large body in many buffers, as the engine meters a big chunk.
    fn large_body(buffers: usize) -> (Vec<u8>, BoxStream<'static, Result<Bytes, BoxError>>) {
        let (data, buffers) = crate::test_frames::frames(buffers);
        (
            data,
            futures::stream::iter(buffers.into_iter().map(Ok)).boxed(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_body_is_hashed_off_the_task_with_the_same_result() {
        let (data, inner) = large_body(40);
        let len = data.len() as u64;
        assert!(
            len >= OFF_TASK_FROM,
            "large enough to be hashed off the task"
        );
        let mut resumed = Sha256::new();
        resumed.update(b"prefix");
        let (m, r) = Metered::new(
            inner,
            LengthRule::Exact(len),
            false,
            Expected::Now(Sha256Digest::of(&data).into()),
            Some(resumed),
        );
        let (passed, failed) = drain(m).await;
        assert!(!failed && passed == data, "the body passes unchanged");
        match r.take() {
            Some(MeterOutcome::Complete {
                sha256,
                running: Some(running),
                ..
            }) => {
                assert_eq!(sha256, Some(Sha256Digest::of(&data)));
                let whole = [b"prefix".as_slice(), &data].concat();
                assert_eq!(Sha256Digest::from_hasher(running), Sha256Digest::of(&whole));
            }
            other => panic!("{other:?}"),
        }

        // Refused bodies end the thread's work without an outcome of it.
        let (data, inner) = large_body(40);
        let (m, r) = Metered::new(
            inner,
            LengthRule::Exact(data.len() as u64 - 1),
            false,
            Expected::Nothing,
            Some(Sha256::new()),
        );
        assert!(drain(m).await.1);
        assert!(matches!(r.take(), Some(MeterOutcome::TooLong)));
        let (data, inner) = large_body(40);
        let mut wrong = data.clone();
        wrong[12_345] ^= 1;
        let (m, r) = Metered::new(
            inner,
            LengthRule::AtMost(None),
            false,
            Expected::Now(Sha256Digest::of(&wrong).into()),
            None,
        );
        assert!(drain(m).await.1);
        assert!(matches!(
            r.take(),
            Some(MeterOutcome::ChecksumMismatch { .. })
        ));
    }

    /// One body for [`check_cases`]: the body, its rule, whether cut-off
    /// bodies are kept, the expected checksum, whether the stream must end in
    /// an error, and what the outcome must be.
    type Case = (
        BoxStream<'static, Result<Bytes, BoxError>>,
        LengthRule,
        bool,
        Expected,
        bool,
        fn(&MeterOutcome) -> bool,
    );

    async fn check_cases(cases: Vec<Case>) {
        for (n, (inner, rule, keep, expected, refused, verdict)) in cases.into_iter().enumerate() {
            let (m, r) = metered(inner, rule, keep, expected);
            assert_eq!(drain(m).await.1, refused, "case {n}: refused");
            let outcome = r.take().unwrap_or_else(|| panic!("case {n}: no outcome"));
            assert!(verdict(&outcome), "case {n}: {outcome:?}");
        }
    }

    #[tokio::test]
    async fn long_short_and_wrong_checksum_bodies_end_in_an_error() {
        let exact = LengthRule::Exact(3);
        let wrong = Expected::Now(Sha256Digest::of(b"abd").into());
        check_cases(vec![
            (
                body(&[b"ab", b"cd"]),
                exact,
                false,
                Expected::Nothing,
                true,
                |o| matches!(o, MeterOutcome::TooLong),
            ),
            (body(&[b"ab"]), exact, false, Expected::Nothing, true, |o| {
                matches!(o, MeterOutcome::TooShort(2))
            }),
            (body(&[b"abc"]), exact, false, wrong, true, |o| {
                matches!(o, MeterOutcome::ChecksumMismatch { .. })
            }),
            (
                failing_after(b"a"),
                exact,
                false,
                Expected::Nothing,
                true,
                |o| matches!(o, MeterOutcome::Failed(_)),
            ),
        ])
        .await;
    }

    #[tokio::test]
    async fn appends_take_up_to_the_limit_and_keep_cut_off_bodies() {
        let (three, any) = (LengthRule::AtMost(Some(3)), LengthRule::AtMost(None));
        // A cut-off body cannot match a checksum, so it is not kept.
        let sum = Expected::Now(sha1_of(b"ab"));
        check_cases(vec![
            (
                body(&[b"ab"]),
                three,
                false,
                Expected::Nothing,
                false,
                |o| matches!(o, MeterOutcome::Complete { len: 2, .. }),
            ),
            (
                body(&[b"abcd"]),
                three,
                false,
                Expected::Nothing,
                true,
                |o| matches!(o, MeterOutcome::TooLong),
            ),
            (failing_after(b"ab"), any, true, sum, true, |o| {
                matches!(o, MeterOutcome::Failed(_))
            }),
        ])
        .await;

        // A kept cut-off body passes its bytes on and ends cleanly.
        let (m, r) = metered(failing_after(b"ab"), any, true, Expected::Nothing);
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
    }

    #[tokio::test]
    async fn other_algorithms_and_late_checksums_are_verified() {
        let any = LengthRule::AtMost(None);
        // Late checksums are read when the body ends.
        let (wrong, right) = (LateChecksum::new(), LateChecksum::new());
        wrong.set(sha1_of(b"abd"));
        right.set(sha1_of(b"abc"));
        let sha1 = Expected::Now(sha1_of(b"abc"));
        let never = || Expected::Late(LateChecksum::new());
        check_cases(vec![
            (body(&[b"abc"]), any, false, sha1, false, |o| {
                matches!(o, MeterOutcome::Complete { .. })
            }),
            (
                body(&[b"abc"]),
                any,
                false,
                Expected::Late(wrong),
                true,
                |o| matches!(o, MeterOutcome::ChecksumMismatch { .. }),
            ),
            (
                body(&[b"abc"]),
                any,
                false,
                Expected::Late(right),
                false,
                |o| matches!(o, MeterOutcome::Complete { .. }),
            ),
            // A late checksum that never comes vouches for nothing: neither
            // a whole body nor a cut-off one is kept.
            (body(&[b"abc"]), any, false, never(), true, |o| {
                matches!(o, MeterOutcome::Failed(_))
            }),
            (failing_after(b"ab"), any, true, never(), true, |o| {
                matches!(o, MeterOutcome::Failed(_))
            }),
        ])
        .await;
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
                assert_eq!(sha256, None, "no digest of its own was asked for");
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
