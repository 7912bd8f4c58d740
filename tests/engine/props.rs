//! Properties: random sequences of chunk attempts, good and bad, sent to
//! the memory backends, always assemble the intended bytes; and, with no
//! file digest to catch a mistake, sent a few at a time concurrently, the
//! blob's SHA-256 (the engine's running digest) is always the source's.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use resumable::error::{BodyLength, DigestScope};
use resumable::sink::MemorySink;
use resumable::store::MemoryStore;
use resumable::{ChunkOptions, Engine, Error, ManualClock, Owner};

use crate::harness::*;

/// One attempt at sending a chunk.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    /// The right bytes, without a checksum.
    Good,
    /// The right bytes with their checksum.
    GoodWithSha,
    /// `k` bytes too many.
    TooLong(usize),
    /// `k` bytes too few (possibly none left).
    TooShort(usize),
    /// The right bytes with the checksum of other bytes: refused.
    WrongSha,
    /// Damaged bytes with the checksum of the right ones: refused.
    DamagedWithSha,
    /// Damaged bytes without a checksum: accepted, so the client must send
    /// the chunk again later.
    DamagedUnchecked,
}

fn attempt_strategy() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        Just(Attempt::Good),
        Just(Attempt::GoodWithSha),
        (1usize..=3).prop_map(Attempt::TooLong),
        (1usize..=2000).prop_map(Attempt::TooShort),
        Just(Attempt::WrongSha),
        Just(Attempt::DamagedWithSha),
        Just(Attempt::DamagedUnchecked),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    len: usize,
    chunk_size: u64,
    seed: u64,
    /// Every chunk once, in a random order.
    order: Vec<u64>,
    /// Extra attempts: (which chunk, where in the sequence, what).
    extra: Vec<(prop::sample::Index, prop::sample::Index, Attempt)>,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    let len = prop_oneof![Just(0usize), 1usize..=64, 0usize..=64 * 1024];
    (len, 1u64..=40, any::<u64>()).prop_flat_map(|(len, chunks, seed)| {
        let chunk_size = (len as u64).div_ceil(chunks).max(1);
        let total = (len as u64).div_ceil(chunk_size);
        let order = Just((0..total).collect::<Vec<_>>()).prop_shuffle();
        let extra = prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                attempt_strategy(),
            ),
            0..24,
        );
        (order, extra).prop_map(move |(order, extra)| Scenario {
            len,
            chunk_size,
            seed,
            order,
            extra,
        })
    })
}

async fn run_scenario(s: Scenario) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(MemoryStore::new(), MemorySink::new())
        .config(config())
        .chunk_size(s.chunk_size)
        .clock(clock)
        .build();
    let me = Owner::new("client");
    let source = data(s.len, s.seed);
    let info = engine
        .initiate(
            &me,
            new_upload("random.bin", s.len as u64, Some(sha256(&source))),
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("initiate: {e}")))?;
    prop_assert_eq!(info.chunk_size, s.chunk_size);

    let mut plan: Vec<(u64, Attempt)> = s.order.iter().map(|&i| (i, Attempt::Good)).collect();
    if info.total_chunks > 0 {
        for (which, at, attempt) in &s.extra {
            let index = which.index(info.total_chunks as usize) as u64;
            plan.insert(at.index(plan.len() + 1), (index, *attempt));
        }
    }

    // Chunk index -> whether the recorded upload holds the right bytes.
    let mut recorded: BTreeMap<u64, bool> = BTreeMap::new();
    let send = |index: u64, bytes: Vec<u8>, options: ChunkOptions| {
        let engine = &engine;
        let me = &me;
        async move {
            engine
                .upload_chunk(me, info.id, index, body(&bytes), options)
                .await
        }
    };
    for (index, attempt) in plan {
        let good = source[chunk(&info, s.len, index)].to_vec();
        let len = good.len();
        let plain = ChunkOptions::default();
        match attempt {
            Attempt::Good | Attempt::GoodWithSha | Attempt::DamagedUnchecked => {
                let (bytes, options, right) = match attempt {
                    Attempt::Good => (good.clone(), plain, true),
                    Attempt::GoodWithSha => (good.clone(), with_sha(sha256(&good)), true),
                    _ => (flipped(&good), plain, false),
                };
                // Only a declared digest is computed (and checked).
                let want = options.sha256.map(|_| sha256(&bytes));
                let r = send(index, bytes, options)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("chunk {index}: {e}")))?;
                prop_assert_eq!(r.replaced, recorded.contains_key(&index));
                prop_assert_eq!(r.sha256, want);
                recorded.insert(index, right);
            }
            Attempt::TooLong(k) => {
                let mut bytes = good.clone();
                bytes.extend(std::iter::repeat_n(0xAB, k));
                let r = send(index, bytes, plain).await;
                prop_assert!(
                    matches!(r, Err(Error::ChunkLength { index: i, actual: BodyLength::MoreThan(n), .. })
                        if i == index && n == len as u64),
                    "{:?}",
                    r
                );
            }
            Attempt::TooShort(k) => {
                let short = len - k.min(len);
                let r = send(index, good[..short].to_vec(), plain).await;
                prop_assert!(
                    matches!(r, Err(Error::ChunkLength { index: i, actual: BodyLength::Exactly(n), .. })
                        if i == index && n == short as u64),
                    "{:?}",
                    r
                );
            }
            Attempt::WrongSha | Attempt::DamagedWithSha => {
                let damaged = flipped(&good);
                let (bytes, claimed) = match attempt {
                    Attempt::WrongSha => (good.clone(), sha256(&damaged)),
                    _ => (damaged, sha256(&good)),
                };
                let actual_sha = sha256(&bytes);
                let r = send(index, bytes, with_sha(claimed)).await;
                prop_assert!(
                    matches!(&r, Err(Error::ChecksumMismatch { scope: DigestScope::Chunk(i), expected, actual })
                        if *i == index && *expected == claimed.into() && *actual == actual_sha.into()),
                    "{:?}",
                    r
                );
            }
        }
        let status = engine
            .status(&me, info.id)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            status.received_chunks,
            recorded.keys().copied().collect::<Vec<_>>()
        );
    }

    // Complete refuses a damaged file and leaves it open; the client then
    // resends what it knows went wrong.
    let damaged: Vec<u64> = recorded
        .iter()
        .filter(|(_, right)| !**right)
        .map(|(i, _)| *i)
        .collect();
    if !damaged.is_empty() {
        let r = engine.complete(&me, info.id).await;
        prop_assert!(
            matches!(
                r,
                Err(Error::ChecksumMismatch {
                    scope: DigestScope::File,
                    ..
                })
            ),
            "{:?}",
            r
        );
        for index in damaged {
            let good = source[chunk(&info, s.len, index)].to_vec();
            let r = send(index, good, ChunkOptions::default())
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(r.replaced);
        }
    }
    let attachment = engine
        .complete(&me, info.id)
        .await
        .map_err(|e| TestCaseError::fail(format!("complete: {e}")))?;
    prop_assert_eq!(attachment.blob.size, s.len as u64);
    prop_assert_eq!(attachment.blob.sha256, sha256(&source));
    let back = engine
        .read(&me, info.id)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = concat(back)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(back == source, "the blob differs");
    Ok(())
}

/// Sends the scenario's attempts in batches of up to `batch` concurrent
/// requests (each batch for distinct chunks), with no file digest, then
/// resends the chunks whose recorded bytes are damaged and completes: the
/// blob must have the source's SHA-256, which the engine computed as the
/// chunks arrived (inline, in its background catch-up, or at complete).
async fn run_concurrent_scenario(s: Scenario, batch: usize) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Arc::new(
        Engine::builder(MemoryStore::new(), MemorySink::new())
            .config(config())
            .chunk_size(s.chunk_size)
            .clock(clock)
            .build(),
    );
    let me = Owner::new("client");
    let source = data(s.len, s.seed);
    let info = engine
        .initiate(&me, new_upload("random.bin", s.len as u64, None))
        .await
        .map_err(|e| TestCaseError::fail(format!("initiate: {e}")))?;

    let mut plan: Vec<(u64, Attempt)> = s.order.iter().map(|&i| (i, Attempt::Good)).collect();
    if info.total_chunks > 0 {
        for (which, at, attempt) in &s.extra {
            let index = which.index(info.total_chunks as usize) as u64;
            plan.insert(at.index(plan.len() + 1), (index, *attempt));
        }
    }
    let mut batches: Vec<Vec<(u64, Attempt)>> = Vec::new();
    for (index, attempt) in plan {
        match batches.last_mut() {
            Some(last) if last.len() < batch && last.iter().all(|(i, _)| *i != index) => {
                last.push((index, attempt))
            }
            _ => batches.push(vec![(index, attempt)]),
        }
    }

    // Chunk index -> whether the recorded upload holds the right bytes.
    let mut recorded: BTreeMap<u64, bool> = BTreeMap::new();
    for batch in batches {
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|(index, attempt)| {
                let good = source[chunk(&info, s.len, index)].to_vec();
                let plain = ChunkOptions::default();
                let (bytes, options, right) = match attempt {
                    Attempt::Good => (good, plain, true),
                    Attempt::GoodWithSha => {
                        let sha = sha256(&good);
                        (good, with_sha(sha), true)
                    }
                    Attempt::DamagedUnchecked => (flipped(&good), plain, false),
                    Attempt::TooLong(k) => {
                        let mut bytes = good;
                        bytes.extend(std::iter::repeat_n(0xAB, k));
                        (bytes, plain, false)
                    }
                    Attempt::TooShort(k) => {
                        let short = good.len() - k.min(good.len());
                        (good[..short].to_vec(), plain, false)
                    }
                    Attempt::WrongSha => {
                        let sha = sha256(&flipped(&good));
                        (good, with_sha(sha), false)
                    }
                    Attempt::DamagedWithSha => {
                        let sha = sha256(&good);
                        (flipped(&good), with_sha(sha), false)
                    }
                };
                let (engine, me) = (engine.clone(), me.clone());
                tokio::spawn(async move {
                    let r = engine
                        .upload_chunk(&me, info.id, index, body(&bytes), options)
                        .await;
                    (index, attempt, right, r)
                })
            })
            .collect();
        for task in tasks {
            let (index, attempt, right, r) = task
                .await
                .map_err(|e| TestCaseError::fail(format!("a task: {e}")))?;
            let accepted = matches!(
                attempt,
                Attempt::Good | Attempt::GoodWithSha | Attempt::DamagedUnchecked
            );
            prop_assert_eq!(
                r.is_ok(),
                accepted,
                "chunk {} {:?}: {:?}",
                index,
                attempt,
                r
            );
            if accepted {
                recorded.insert(index, right);
            }
        }
    }
    for (index, right) in recorded {
        if !right {
            let good = source[chunk(&info, s.len, index)].to_vec();
            engine
                .upload_chunk(&me, info.id, index, body(&good), ChunkOptions::default())
                .await
                .map_err(|e| TestCaseError::fail(format!("resend {index}: {e}")))?;
        }
    }
    let attachment = engine
        .complete(&me, info.id)
        .await
        .map_err(|e| TestCaseError::fail(format!("complete: {e}")))?;
    prop_assert_eq!(attachment.blob.size, s.len as u64);
    prop_assert_eq!(attachment.blob.sha256, sha256(&source));
    let back = engine
        .read(&me, info.id)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = concat(back)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(back == source, "the blob differs");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_attempts_always_assemble_the_intended_bytes(s in scenario_strategy()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_scenario(s))?;
    }

    #[test]
    fn concurrent_random_attempts_always_yield_the_source_digest(
        s in scenario_strategy(),
        batch in 1usize..=4,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_concurrent_scenario(s, batch))?;
    }
}
