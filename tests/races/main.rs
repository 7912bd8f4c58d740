//! Requests that race each other, at the engine, on the memory and on the
//! filesystem backends: one chunk uploaded twice at once, complete racing a
//! chunk, abort racing a chunk, and the sweep racing a chunk at the instant
//! the session expires.
//!
//! Each race runs [`ROUNDS`] times. The racing bodies stream their first
//! half, meet the other party at a [`Gate`], and then each waits a small
//! pause that differs from round to round (0 to 0.9 ms, or a mere yield)
//! before going on, so that the rounds see different interleavings. Every
//! race documents the outcomes it allows; each round asserts that the one it
//! observed is one of them, and that the blob (when there is one) is
//! exactly the bytes that were recorded. The tallies of the outcomes seen
//! are printed (`-- --nocapture`).

// Shared with the fault tests, which look inside the backends more.
#[allow(dead_code)]
#[path = "../support/backends.rs"]
mod backends;
#[path = "../support/files.rs"]
mod files;
// The engine scenarios' harness; the races use part of it.
#[allow(dead_code, unused_macros)]
#[macro_use]
#[path = "../engine/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use resumable::error::Operation;
use resumable::{ChunkOptions, ChunkReceipt, Error, StateKind, SweepReport};
use tokio::sync::Barrier;

use crate::harness::*;

/// How many times each race runs on each backend.
const ROUNDS: u64 = 20;

/// The chunk the races are about (a full chunk, not the last).
const K: u64 = 4;

on_both_backends!(
    the_same_chunk_uploaded_twice_at_once,
    complete_racing_a_retried_chunk,
    complete_racing_the_last_missing_chunk,
    abort_racing_a_chunk,
    sweep_racing_a_chunk_at_the_expiry_instant,
);

/// The pauses of the two parties of round `round`: every pair of
/// {yield, 0.3, 0.6, 0.9 ms} over 16 rounds.
fn pauses(round: u64) -> (Duration, Duration) {
    let step = |n: u64| Duration::from_micros((n % 4) * 300);
    (step(round), step(round / 4))
}

/// Waits `pause`, or only yields to the scheduler if it is zero.
async fn jitter(pause: Duration) {
    if pause.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(pause).await;
    }
}

/// Where the parties of a race meet: every party passes `met` once the
/// racing bodies are streaming (the engine has checked the session and
/// read their first half), and `go` when all may go on. Between the two,
/// a party may move the clock.
#[derive(Clone)]
struct Gate {
    met: Arc<Barrier>,
    go: Arc<Barrier>,
}

impl Gate {
    fn new(parties: usize) -> Gate {
        Gate {
            met: Arc::new(Barrier::new(parties)),
            go: Arc::new(Barrier::new(parties)),
        }
    }

    async fn meet(&self) {
        self.met.wait().await;
    }

    /// Waits for every party, then `pause`.
    async fn go(&self, pause: Duration) {
        self.go.wait().await;
        jitter(pause).await;
    }
}

/// A body of `bytes` that sends its first half, passes `gate` (waiting
/// `pause` after it), then sends the rest.
fn gated_body(
    bytes: Vec<u8>,
    gate: Gate,
    pause: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let all = Bytes::from(bytes);
    let (first, second) = (all.slice(..all.len() / 2), all.slice(all.len() / 2..));
    futures::stream::once(async move { Ok(first) }).chain(futures::stream::once(async move {
        gate.meet().await;
        gate.go(pause).await;
        Ok(second)
    }))
}

/// Uploads chunk `index` with `body` and `options` from a task of its own.
fn spawn_chunk(
    h: &Harness,
    me: &resumable::Owner,
    id: resumable::SessionId,
    index: u64,
    body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    options: ChunkOptions,
) -> tokio::task::JoinHandle<Result<ChunkReceipt, Error>> {
    let (engine, me) = (h.engine.clone(), me.clone());
    tokio::spawn(async move { engine.upload_chunk(&me, id, index, body, options).await })
}

/// The result of a racing task, which must end within a generous bound (a
/// race that deadlocks fails instead of hanging).
async fn ended<T>(task: tokio::task::JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Prints the outcomes a race saw.
fn report(race: &str, backend: Backend, tally: &BTreeMap<&'static str, u64>) {
    println!("{race} ({backend:?}): {tally:?}");
}

/// The same chunk uploaded twice at once.
///
/// Documented outcomes, identical bodies: both uploads succeed; exactly
/// one is the chunk's first receipt (`replaced == false`) and the other
/// replaced it (`replaced == true`); one copy is kept (the superseded part
/// is discarded), and the blob is the file.
///
/// Different bodies A and B: the same, and the chunk holds the bytes of the
/// upload recorded last (the one whose receipt says `replaced`); the blob
/// is the file with those bytes in the chunk: never a mix of A and B, never
/// the discarded upload's bytes, never both parts kept.
async fn the_same_chunk_uploaded_twice_at_once(backend: Backend) {
    let mut tally = BTreeMap::new();
    for round in 0..ROUNDS {
        for identical in [true, false] {
            let (h, me, source, info) = Harness::with_upload(backend, 1000 + round).await;
            for index in (0..info.total_chunks).filter(|i| *i != K) {
                h.send(&me, &info, &source, index).await.expect("a chunk");
            }
            let range = chunk(&info, SIZE, K);
            let a = source[range.clone()].to_vec();
            let b = if identical { a.clone() } else { flipped(&a) };
            let gate = Gate::new(2);
            let (pause_a, pause_b) = pauses(round);
            // Each declares its digest, so each receipt names its own bytes.
            let task_a = spawn_chunk(
                &h,
                &me,
                info.id,
                K,
                gated_body(a.clone(), gate.clone(), pause_a),
                with_sha(sha256(&a)),
            );
            let task_b = spawn_chunk(
                &h,
                &me,
                info.id,
                K,
                gated_body(b.clone(), gate, pause_b),
                with_sha(sha256(&b)),
            );
            let ra = ended(task_a, "task A").await.expect("upload A is recorded");
            let rb = ended(task_b, "task B").await.expect("upload B is recorded");
            assert_ne!(ra.replaced, rb.replaced, "exactly one first receipt");
            assert_eq!((ra.sha256, rb.sha256), (Some(sha256(&a)), Some(sha256(&b))));
            let (last, outcome) = match (ra.replaced, identical) {
                (true, true) => (&a, "identical, B first"),
                (false, true) => (&b, "identical, A first"),
                (true, false) => (&a, "different, B first, A kept"),
                (false, false) => (&b, "different, A first, B kept"),
            };
            *tally.entry(outcome).or_default() += 1;
            if let Some(parts) = h.part_files(info.id) {
                assert_eq!(
                    parts as u64, info.total_chunks,
                    "the superseded part is gone"
                );
            }
            let mut expected = source.clone();
            expected[range].copy_from_slice(last);
            let attachment = h.engine.complete(&me, info.id).await.expect("complete");
            assert_eq!(attachment.blob.sha256, sha256(&expected));
            assert_eq!(h.read_back(&me, info.id).await, expected);
        }
    }
    report("the same chunk twice", backend, &tally);
}

/// Complete racing a retry (different bytes) of a chunk already received.
///
/// Documented outcomes: either the retry is recorded before complete takes
/// the session into `finalizing`, and the blob holds the retry's bytes in
/// the chunk; or complete takes it first, the retry is refused with
/// `InvalidState` (`finalizing` or `completed`: HTTP 409) and the blob holds
/// the first upload's bytes. Complete succeeds either way (every chunk is
/// in). Never: a retry reported recorded whose bytes are not in the blob, a
/// blob with bytes of a discarded part, or a part left beside the blob.
async fn complete_racing_a_retried_chunk(backend: Backend) {
    let mut tally = BTreeMap::new();
    for round in 0..ROUNDS {
        let (h, me, source, info) = Harness::with_upload(backend, 2000 + round).await;
        h.send_all(&me, &info, &source).await;
        let range = chunk(&info, SIZE, K);
        let retry = flipped(&source[range.clone()]);
        let gate = Gate::new(2);
        let (pause_chunk, pause_complete) = pauses(round);
        let chunk_task = spawn_chunk(
            &h,
            &me,
            info.id,
            K,
            gated_body(retry.clone(), gate.clone(), pause_chunk),
            ChunkOptions::default(),
        );
        let complete_task = {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move {
                gate.meet().await;
                gate.go(pause_complete).await;
                engine.complete(&me, info.id).await
            })
        };
        let chunked = ended(chunk_task, "the chunk's task").await;
        let attachment = ended(complete_task, "the complete's task")
            .await
            .expect("complete succeeds: every chunk is in");
        let mut expected = source.clone();
        match chunked {
            Ok(receipt) => {
                assert!(receipt.replaced, "a retry replaces");
                expected[range].copy_from_slice(&retry);
                *tally.entry("retry recorded first").or_default() += 1;
            }
            Err(Error::InvalidState {
                state: StateKind::Finalizing | StateKind::Completed,
                operation: Operation::UploadChunk,
                ..
            }) => *tally.entry("complete first, retry 409").or_default() += 1,
            Err(other) => panic!("round {round}: {other:?}"),
        }
        assert_eq!(attachment.blob.sha256, sha256(&expected), "round {round}");
        assert_eq!(h.read_back(&me, info.id).await, expected, "round {round}");
        if let Some(dir) = h.upload_dir(info.id) {
            assert_eq!(entries(&dir), ["blob", "blob.json"], "round {round}");
        }
    }
    report("complete racing a retried chunk", backend, &tally);
}

/// Complete racing the one chunk still missing.
///
/// Documented outcomes: either the chunk is recorded first and complete
/// succeeds with the whole file; or complete comes first and is refused
/// with `MissingChunks` naming that chunk (HTTP 409), the chunk is then
/// recorded as a first receipt, and a later complete gives the whole file.
/// Never: a completed blob without the chunk, or the chunk refused.
async fn complete_racing_the_last_missing_chunk(backend: Backend) {
    let mut tally = BTreeMap::new();
    for round in 0..ROUNDS {
        let (h, me, source, info) = Harness::with_upload(backend, 3000 + round).await;
        for index in (0..info.total_chunks).filter(|i| *i != K) {
            h.send(&me, &info, &source, index).await.expect("a chunk");
        }
        let range = chunk(&info, SIZE, K);
        let gate = Gate::new(2);
        let (pause_chunk, pause_complete) = pauses(round);
        let bytes = source[range].to_vec();
        let chunk_task = spawn_chunk(
            &h,
            &me,
            info.id,
            K,
            gated_body(bytes, gate.clone(), pause_chunk),
            ChunkOptions::default(),
        );
        let complete_task = {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move {
                gate.meet().await;
                gate.go(pause_complete).await;
                engine.complete(&me, info.id).await
            })
        };
        let receipt = ended(chunk_task, "the chunk's task")
            .await
            .expect("the chunk is recorded either way");
        assert!(!receipt.replaced);
        let attachment = match ended(complete_task, "the complete's task").await {
            Ok(attachment) => {
                *tally.entry("chunk first").or_default() += 1;
                attachment
            }
            Err(Error::MissingChunks { missing, .. }) => {
                assert_eq!(missing, [K], "round {round}");
                *tally.entry("complete first, 409 missing").or_default() += 1;
                h.engine
                    .complete(&me, info.id)
                    .await
                    .expect("complete again")
            }
            Err(other) => panic!("round {round}: {other:?}"),
        };
        assert_eq!(attachment.blob.sha256, sha256(&source), "round {round}");
        assert_eq!(h.read_back(&me, info.id).await, source, "round {round}");
    }
    report("complete racing the last missing chunk", backend, &tally);
}

/// Abort racing a chunk.
///
/// Documented outcomes: either the chunk is recorded before the abort (its
/// upload succeeds) or after it (refused with `SessionGone`, aborted: HTTP
/// 410); the abort succeeds either way. Afterwards the session is gone
/// (aborted) and the sink holds no byte of it: not the chunk's part, not
/// the others. Never: an abort refused, or a part that outlives the abort.
async fn abort_racing_a_chunk(backend: Backend) {
    let mut tally = BTreeMap::new();
    for round in 0..ROUNDS {
        let (h, me, source, info) = Harness::with_upload(backend, 4000 + round).await;
        for index in [0, 1] {
            h.send(&me, &info, &source, index).await.expect("a chunk");
        }
        let gate = Gate::new(2);
        let (pause_chunk, pause_abort) = pauses(round);
        let bytes = source[chunk(&info, SIZE, K)].to_vec();
        let chunk_task = spawn_chunk(
            &h,
            &me,
            info.id,
            K,
            gated_body(bytes, gate.clone(), pause_chunk),
            ChunkOptions::default(),
        );
        let abort_task = {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move {
                gate.meet().await;
                gate.go(pause_abort).await;
                engine.abort(&me, info.id).await
            })
        };
        let chunked = ended(chunk_task, "the chunk's task").await;
        ended(abort_task, "the abort's task")
            .await
            .expect("the abort succeeds");
        match chunked {
            Ok(receipt) => {
                assert!(!receipt.replaced);
                *tally.entry("chunk first").or_default() += 1;
            }
            Err(Error::SessionGone {
                state: StateKind::Aborted,
                ..
            }) => *tally.entry("abort first, chunk 410").or_default() += 1,
            Err(other) => panic!("round {round}: {other:?}"),
        }
        assert_gone(h.engine.status(&me, info.id).await, StateKind::Aborted);
        assert_eq!(
            h.sink_uploads(),
            0,
            "round {round}: bytes outlived the abort"
        );
        if let Some(dir) = h.upload_dir(info.id) {
            assert!(!dir.exists(), "round {round}");
        }
    }
    report("abort racing a chunk", backend, &tally);
}

/// The sweep racing a chunk while the clock reaches the session's expiry.
///
/// The session expires at `expires_at` itself (`now >= expires_at`). The
/// clock is set while the chunk's body is streaming (after the engine
/// checked the session, before it records the chunk), then the sweep runs.
///
/// Documented outcomes, clock set to exactly `expires_at`: the chunk is
/// refused with `SessionGone`, expired (HTTP 410), whether it reaches the
/// store before or after the sweep; the sweep expires the session; once the
/// sweep is done (a purge racing the chunk's own write is finished by the
/// next sweep) the sink holds no byte of it. Never: the chunk recorded (an
/// expired session revived), or its part left behind.
///
/// Clock set to 1 ns before `expires_at`: the chunk is recorded (and
/// extends the expiry), the sweep has nothing to do, and the upload then
/// completes with the whole file, whichever ran first.
async fn sweep_racing_a_chunk_at_the_expiry_instant(backend: Backend) {
    let mut tally = BTreeMap::new();
    for round in 0..ROUNDS {
        for just_before in [false, true] {
            let (h, me, source, info) = Harness::with_upload(backend, 5000 + round).await;
            h.send(&me, &info, &source, 0).await.expect("chunk 0");
            let expires_at = h.engine.status(&me, info.id).await.unwrap().expires_at;
            let at = if just_before {
                expires_at - NS
            } else {
                expires_at
            };
            let gate = Gate::new(2);
            let (pause_chunk, pause_sweep) = pauses(round);
            let bytes = source[chunk(&info, SIZE, K)].to_vec();
            let chunk_task = spawn_chunk(
                &h,
                &me,
                info.id,
                K,
                gated_body(bytes, gate.clone(), pause_chunk),
                ChunkOptions::default(),
            );
            let sweep_task = {
                let (engine, clock) = (h.engine.clone(), h.clock.clone());
                tokio::spawn(async move {
                    // The clock moves while the body streams: after the
                    // engine checked the session, before the body may end.
                    gate.meet().await;
                    clock.set(at);
                    gate.go(pause_sweep).await;
                    engine.sweep().await
                })
            };
            let chunked = ended(chunk_task, "the chunk's task").await;
            let swept = ended(sweep_task, "the sweep's task")
                .await
                .expect("the sweep");
            if just_before {
                let receipt = chunked.expect("recorded before the expiry");
                assert!(!receipt.replaced);
                assert_eq!(swept, SweepReport::default(), "round {round}: nothing due");
                *tally.entry("1 ns before: recorded, kept").or_default() += 1;
                for index in (1..info.total_chunks).filter(|i| *i != K) {
                    h.send(&me, &info, &source, index).await.expect("a chunk");
                }
                let attachment = h.engine.complete(&me, info.id).await.expect("complete");
                assert_eq!(attachment.blob.sha256, sha256(&source));
                continue;
            }
            match chunked {
                Err(Error::SessionGone {
                    state: StateKind::Expired,
                    ..
                }) => {}
                other => panic!("round {round}: the chunk at the expiry instant: {other:?}"),
            }
            assert_eq!(swept.expired, 1, "round {round}: {swept:?}");
            let outcome = if swept.purged == 1 {
                "at the instant: 410, expired and purged"
            } else {
                "at the instant: 410, expired, purged by the next sweep"
            };
            *tally.entry(outcome).or_default() += 1;
            h.engine.sweep().await.expect("the next sweep");
            assert_gone(h.engine.status(&me, info.id).await, StateKind::Expired);
            assert_eq!(
                h.sink_uploads(),
                0,
                "round {round}: bytes outlived the expiry"
            );
        }
    }
    report(
        "sweep racing a chunk at the expiry instant",
        backend,
        &tally,
    );
}
