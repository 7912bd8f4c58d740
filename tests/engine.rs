//! The engine end to end, on the memory backends and on the filesystem
//! backends, with time driven by a [`ManualClock`].
//!
//! Most scenarios are written once as `async fn scenario(Backend)` and run on
//! both backends by `on_both_backends!`; a few look at the filesystem layout
//! and run on `FsStore` + `FsSink` only. A property test at the end sends
//! random chunk sequences to the memory backends.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use resumable::error::{BodyLength, DigestScope, Operation};
use resumable::machine::Timeouts;
use resumable::sink::{FsSink, MemorySink};
use resumable::store::{FsStore, MemoryStore};
use resumable::{
    ChunkOptions, ChunkReceipt, DefaultPolicy, Engine, EngineBuilder, EngineConfig, Error,
    ManualClock, NewUpload, Owner, SessionId, SessionInfo, Sha256Digest, StateKind, SweepReport,
};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// Asserts that `$result` is an `Err` matching `$pattern`, showing what it
/// was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            Err(other) => panic!("expected {}, got Err({other:?})", stringify!($pattern)),
            Ok(_) => panic!("expected {}, got Ok", stringify!($pattern)),
        }
    };
}

const NS: Duration = Duration::from_nanos(1);
const CHUNK: u64 = 1000;
/// 10 full chunks and a last one of 500 bytes.
const SIZE: usize = 10_500;

fn timeouts() -> Timeouts {
    Timeouts {
        session_timeout: Duration::from_secs(60),
        temporary_max_age: Duration::from_secs(30),
        tombstone_retention: Duration::from_secs(20),
        finalize_lease: Duration::from_secs(10),
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        chunk_size: CHUNK,
        timeouts: timeouts(),
        ..EngineConfig::default()
    }
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Deterministic bytes that differ from seed to seed.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// SHA-256 computed here, independently of the crate.
fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::from_slice(&Sha256::digest(bytes)).expect("32 bytes")
}

/// Collects a stream of bytes.
async fn concat(stream: resumable::sink::ByteStream) -> std::io::Result<Vec<u8>> {
    stream
        .try_fold(Vec::new(), |mut all, piece| async move {
            all.extend_from_slice(&piece);
            Ok(all)
        })
        .await
}

/// A body stream that hands `bytes` over in three pieces.
fn body(bytes: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let all = Bytes::copy_from_slice(bytes);
    let (a, b) = (all.len() / 3, 2 * all.len() / 3);
    let pieces = [all.slice(..a), all.slice(a..b), all.slice(b..)];
    futures::stream::iter(pieces.into_iter().filter(|p| !p.is_empty()).map(Ok))
}

fn chunk(info: &SessionInfo, len: usize, index: u64) -> Range<usize> {
    let start = (index * info.chunk_size) as usize;
    start..(start + info.chunk_size as usize).min(len)
}

fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[0] ^= 0xff;
    out
}

fn with_sha(sha256: Sha256Digest) -> ChunkOptions {
    ChunkOptions {
        sha256: Some(sha256),
        ..ChunkOptions::default()
    }
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Fs,
}

enum Backing {
    Memory(Arc<MemorySink>),
    Fs { _dir: TempDir, root: PathBuf },
}

struct Harness {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    backing: Backing,
}

impl Harness {
    fn new(backend: Backend) -> Self {
        Self::with(backend, |b| b)
    }

    fn with(backend: Backend, configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let (builder, backing) = match backend {
            Backend::Memory => {
                let sink = Arc::new(MemorySink::new());
                (
                    Engine::builder(MemoryStore::new(), sink.clone()),
                    Backing::Memory(sink),
                )
            }
            Backend::Fs => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let root = dir.path().join("data");
                let store = FsStore::open(&root).expect("the store opens");
                let sink = FsSink::open(&root).expect("the sink opens");
                (
                    Engine::builder(store, sink),
                    Backing::Fs { _dir: dir, root },
                )
            }
        };
        let engine = configure(builder.config(config()).clock(clock.clone())).build();
        Harness {
            engine: Arc::new(engine),
            clock,
            backing,
        }
    }

    /// How many uploads the sink holds any data of.
    fn sink_uploads(&self) -> usize {
        match &self.backing {
            Backing::Memory(sink) => sink.upload_count(),
            Backing::Fs { root, .. } => std::fs::read_dir(root.join("uploads"))
                .expect("the uploads directory")
                .count(),
        }
    }

    /// The filesystem sink's directory of an upload.
    fn upload_dir(&self, id: SessionId) -> Option<PathBuf> {
        match &self.backing {
            Backing::Memory(_) => None,
            Backing::Fs { root, .. } => Some(root.join("uploads").join(id.to_string())),
        }
    }

    /// How many part files the filesystem sink holds for an upload.
    fn part_files(&self, id: SessionId) -> Option<usize> {
        let parts = self.upload_dir(id)?.join("parts");
        Some(std::fs::read_dir(parts).map_or(0, Iterator::count))
    }

    async fn start(&self, owner: &Owner, len: usize, sha256: Option<Sha256Digest>) -> SessionInfo {
        self.engine
            .initiate(
                owner,
                NewUpload {
                    file_name: "data.bin".into(),
                    file_size: len as u64,
                    content_type: Some("application/octet-stream".into()),
                    sha256,
                },
            )
            .await
            .expect("initiate")
    }

    async fn send(
        &self,
        owner: &Owner,
        info: &SessionInfo,
        source: &[u8],
        index: u64,
    ) -> Result<ChunkReceipt, Error> {
        let bytes = &source[chunk(info, source.len(), index)];
        self.engine
            .upload_chunk(owner, info.id, index, body(bytes), ChunkOptions::default())
            .await
    }

    async fn send_all(&self, owner: &Owner, info: &SessionInfo, source: &[u8]) {
        for index in 0..info.total_chunks {
            self.send(owner, info, source, index).await.expect("chunk");
        }
    }

    async fn read_back(&self, owner: &Owner, id: SessionId) -> Vec<u8> {
        let stream = self.engine.read(owner, id).await.expect("read");
        concat(stream).await.expect("the blob streams")
    }
}

/// Runs each named scenario on the memory and on the filesystem backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Memory).await
                }
            )*
        }
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Fs).await
                }
            )*
        }
    };
}

on_both_backends!(
    full_upload_out_of_order_and_in_parallel,
    a_retried_chunk_replaces_the_first_upload,
    a_body_too_long_or_too_short_is_refused_and_not_recorded,
    a_chunk_checksum_mismatch_is_refused_then_a_correct_resend_works,
    a_file_checksum_mismatch_reopens_the_session_for_repair,
    complete_with_missing_chunks_names_them,
    abort_makes_the_session_gone_and_deletes_its_bytes,
    expiry_follows_the_clock_and_the_sweep_purges_then_forgets,
    activity_extends_the_expiry,
    an_unclaimed_upload_is_reaped_a_claimed_one_is_kept,
    another_owners_session_does_not_exist,
    the_open_session_quota_is_enforced,
    a_late_chunk_cannot_alter_a_completed_blob,
    a_chunk_in_flight_during_complete_cannot_alter_the_blob,
    hostile_file_names_are_refused_or_stripped,
    an_empty_file_completes_without_chunks,
    concurrent_retries_of_one_chunk_record_it_once,
    concurrent_completes_finalize_once,
    an_abort_racing_uploads_leaves_nothing_behind,
);

async fn full_upload_out_of_order_and_in_parallel(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = Arc::new(data(SIZE, 1));
    let info = h.start(&me, SIZE, None).await;
    assert_eq!((info.chunk_size, info.total_chunks), (CHUNK, 11));
    assert_eq!(info.expires_at, t0() + timeouts().session_timeout);

    // Every chunk at once, from separate tasks, in a scrambled order.
    let order = [7, 2, 10, 0, 5, 9, 1, 8, 3, 6, 4];
    let mut tasks = Vec::new();
    for index in order {
        let (engine, me, source, info) =
            (h.engine.clone(), me.clone(), source.clone(), info.clone());
        tasks.push(tokio::spawn(async move {
            let bytes = source[chunk(&info, source.len(), index)].to_vec();
            let options = with_sha(sha256(&bytes));
            engine
                .upload_chunk(&me, info.id, index, body(&bytes), options)
                .await
        }));
    }
    for (task, index) in tasks.into_iter().zip(order) {
        let receipt = task.await.expect("the task").expect("the chunk");
        let range = chunk(&info, SIZE, index);
        assert_eq!(receipt.index, index);
        assert_eq!(receipt.offset, range.start as u64);
        assert_eq!(receipt.len, range.len() as u64);
        assert_eq!(receipt.sha256, sha256(&source[range]));
        assert!(!receipt.replaced);
    }

    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.received_chunks, (0..11).collect::<Vec<_>>());
    assert_eq!(status.received_bytes, SIZE as u64);
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 11);
    }

    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.state, StateKind::Completed);
    assert_eq!(attachment.blob.size, SIZE as u64);
    assert_eq!(attachment.blob.sha256, sha256(&source));
    assert_eq!(
        attachment.reap_at,
        Some(t0() + timeouts().temporary_max_age)
    );
    assert_eq!(attachment.file.name.as_str(), "data.bin");
    assert_eq!(h.read_back(&me, info.id).await, *source);

    // Complete is idempotent; claim makes the upload permanent.
    assert_eq!(h.engine.complete(&me, info.id).await.unwrap(), attachment);
    let claimed = h.engine.claim(&me, info.id).await.unwrap();
    assert_eq!((claimed.state, claimed.reap_at), (StateKind::Claimed, None));
    assert_eq!(claimed.blob, attachment.blob);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Claimed);
    assert_eq!(status.received_chunks, (0..11).collect::<Vec<_>>());
    assert_eq!(h.read_back(&me, info.id).await, *source);
}

async fn a_retried_chunk_replaces_the_first_upload(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 2);
    let info = h.start(&me, SIZE, None).await;
    h.send_all(&me, &info, &source).await;

    // A corrupted copy of chunk 4 replaces the good one (no checksum to
    // catch it), then the good one replaces it again: the latest counts.
    let good = &source[chunk(&info, SIZE, 4)];
    let bad = flipped(good);
    let r = h
        .engine
        .upload_chunk(&me, info.id, 4, body(&bad), ChunkOptions::default())
        .await
        .unwrap();
    assert!(r.replaced);
    assert_eq!(r.sha256, sha256(&bad));
    let r = h.send(&me, &info, &source, 4).await.unwrap();
    assert!(r.replaced);
    assert_eq!(r.sha256, sha256(good));
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 11, "superseded parts are discarded");
    }

    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.received_bytes, SIZE as u64);
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
    assert_eq!(h.read_back(&me, info.id).await, source);
}

async fn a_body_too_long_or_too_short_is_refused_and_not_recorded(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 3);
    let info = h.start(&me, SIZE, None).await;
    h.send(&me, &info, &source, 1).await.unwrap();
    let before = h.engine.status(&me, info.id).await.unwrap();
    h.clock.advance(Duration::from_secs(5));

    let send = |index: u64, bytes: Vec<u8>, options: ChunkOptions| {
        let engine = h.engine.clone();
        let me = me.clone();
        async move {
            engine
                .upload_chunk(&me, info.id, index, body(&bytes), options)
                .await
        }
    };
    let plain = ChunkOptions::default;
    assert_err!(
        send(0, data(1001, 9), plain()).await,
        Error::ChunkLength {
            index: 0,
            expected: 1000,
            actual: BodyLength::MoreThan(1000)
        }
    );
    assert_err!(
        send(0, data(999, 9), plain()).await,
        Error::ChunkLength {
            index: 0,
            expected: 1000,
            actual: BodyLength::Exactly(999)
        }
    );
    assert_err!(
        send(0, Vec::new(), plain()).await,
        Error::ChunkLength {
            index: 0,
            actual: BodyLength::Exactly(0),
            ..
        }
    );
    // The last chunk is 500 bytes: a full-size body is too long.
    assert_err!(
        send(10, data(1000, 9), plain()).await,
        Error::ChunkLength {
            index: 10,
            expected: 500,
            actual: BodyLength::MoreThan(500)
        }
    );
    // A retry of a recorded chunk that is too short leaves the first upload.
    assert_err!(
        send(1, data(10, 9), plain()).await,
        Error::ChunkLength { index: 1, .. }
    );
    // A declared length that is wrong is refused before any byte is read.
    let declared = ChunkOptions {
        declared_len: Some(999),
        ..ChunkOptions::default()
    };
    assert_err!(
        send(0, source[..1000].to_vec(), declared).await,
        Error::ChunkLength {
            index: 0,
            expected: 1000,
            actual: BodyLength::Exactly(999)
        }
    );
    assert_err!(
        send(11, data(500, 9), plain()).await,
        Error::ChunkOutOfRange {
            index: 11,
            total: 11
        }
    );
    // A body that fails halfway (the client went away) is retryable.
    let broken = futures::stream::iter([
        Ok(Bytes::from_static(&[1; 400])),
        Err(std::io::Error::other("connection reset")),
    ]);
    let r = h
        .engine
        .upload_chunk(&me, info.id, 0, broken, plain())
        .await;
    match r {
        Err(e @ Error::Body { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Error::Body, got {other:?}"),
    }

    let after = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(after, before, "nothing recorded, expiry not extended");
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 1);
    }
    // The recorded chunk is still the good one.
    h.send_all(&me, &info, &source).await;
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
}

async fn a_chunk_checksum_mismatch_is_refused_then_a_correct_resend_works(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 4);
    let info = h.start(&me, SIZE, None).await;
    let good = source[chunk(&info, SIZE, 2)].to_vec();
    let bad = flipped(&good);

    // The right bytes with a wrong checksum.
    let r = h
        .engine
        .upload_chunk(&me, info.id, 2, body(&good), with_sha(sha256(&bad)))
        .await;
    assert_err!(
        r,
        Error::ChecksumMismatch { scope: DigestScope::Chunk(2), expected, actual }
            if expected == sha256(&bad) && actual == sha256(&good)
    );
    // Corrupted bytes with the right checksum.
    let r = h
        .engine
        .upload_chunk(&me, info.id, 2, body(&bad), with_sha(sha256(&good)))
        .await;
    assert_err!(
        r,
        Error::ChecksumMismatch { scope: DigestScope::Chunk(2), expected, actual }
            if expected == sha256(&good) && actual == sha256(&bad)
    );
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert!(status.received_chunks.is_empty());
    assert_eq!(status.received_bytes, 0);
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 0);
    }

    let r = h
        .engine
        .upload_chunk(&me, info.id, 2, body(&good), with_sha(sha256(&good)))
        .await
        .unwrap();
    assert!(!r.replaced);
    assert_eq!(r.sha256, sha256(&good));
    assert_eq!(
        h.engine.status(&me, info.id).await.unwrap().received_chunks,
        [2]
    );
    h.send_all(&me, &info, &source).await;
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
    assert_eq!(h.read_back(&me, info.id).await, source);
}

async fn a_file_checksum_mismatch_reopens_the_session_for_repair(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 5);
    let info = h.start(&me, SIZE, Some(sha256(&source))).await;
    let mut corrupted = source.clone();
    corrupted[3 * CHUNK as usize + 17] ^= 0x01;
    h.send_all(&me, &info, &corrupted).await;

    assert_err!(
        h.engine.complete(&me, info.id).await,
        Error::ChecksumMismatch { scope: DigestScope::File, expected, actual }
            if expected == sha256(&source) && actual == sha256(&corrupted)
    );
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.received_chunks, (0..11).collect::<Vec<_>>());
    assert_eq!(status.received_bytes, SIZE as u64);
    assert_err!(
        h.engine.claim(&me, info.id).await,
        Error::InvalidState { .. }
    );

    // Resending the damaged chunk repairs the upload.
    let r = h.send(&me, &info, &source, 3).await.unwrap();
    assert!(r.replaced);
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
    assert_eq!(attachment.file.sha256, Some(sha256(&source)));
    assert_eq!(h.read_back(&me, info.id).await, source);
}

async fn complete_with_missing_chunks_names_them(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 6);
    let info = h.start(&me, SIZE, None).await;
    for index in [0, 2, 5, 10] {
        h.send(&me, &info, &source, index).await.unwrap();
    }
    assert_err!(
        h.engine.complete(&me, info.id).await,
        Error::MissingChunks { missing, missing_count: 7 } if missing == [1, 3, 4, 6, 7, 8, 9]
    );
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.received_chunks, [0, 2, 5, 10]);
    assert_eq!(status.received_bytes, 3 * CHUNK + 500);
}

async fn abort_makes_the_session_gone_and_deletes_its_bytes(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 7);
    let info = h.start(&me, SIZE, None).await;
    for index in [0, 1, 4] {
        h.send(&me, &info, &source, index).await.unwrap();
    }
    assert_eq!(h.sink_uploads(), 1);
    h.engine.abort(&me, info.id).await.unwrap();

    let gone = |r: Result<(), Error>| {
        assert_err!(
            r,
            Error::SessionGone { id, state: StateKind::Aborted } if id == info.id
        )
    };
    gone(h.send(&me, &info, &source, 2).await.map(drop));
    gone(h.engine.complete(&me, info.id).await.map(drop));
    gone(h.engine.status(&me, info.id).await.map(drop));
    gone(h.engine.abort(&me, info.id).await);
    gone(h.engine.claim(&me, info.id).await.map(drop));
    gone(h.engine.read(&me, info.id).await.map(drop));

    assert_eq!(h.sink_uploads(), 0);
    if let Some(dir) = h.upload_dir(info.id) {
        assert!(!dir.exists(), "{} remains", dir.display());
    }
}

async fn expiry_follows_the_clock_and_the_sweep_purges_then_forgets(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 8);
    let info = h.start(&me, SIZE, None).await;
    h.send(&me, &info, &source, 0).await.unwrap();
    let expires_at = h.engine.status(&me, info.id).await.unwrap().expires_at;
    assert_eq!(expires_at, t0() + timeouts().session_timeout);

    // One nanosecond before the expiry the session is open and not due.
    h.clock.set(expires_at - NS);
    assert_eq!(
        h.engine.status(&me, info.id).await.unwrap().state,
        StateKind::Open
    );
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());

    // At the expiry every operation says it is gone, before any sweep.
    h.clock.set(expires_at);
    let expired = |r: Result<(), Error>| {
        assert_err!(
            r,
            Error::SessionGone {
                state: StateKind::Expired,
                ..
            }
        )
    };
    expired(h.send(&me, &info, &source, 1).await.map(drop));
    expired(h.engine.complete(&me, info.id).await.map(drop));
    expired(h.engine.status(&me, info.id).await.map(drop));
    expired(h.engine.abort(&me, info.id).await);
    assert_eq!(h.sink_uploads(), 1, "the bytes wait for the sweep");

    // The sweep expires the session and purges its bytes.
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            expired: 1,
            purged: 1,
            forgotten: 0,
            failed: 0
        }
    );
    assert_eq!(h.sink_uploads(), 0);
    expired(h.engine.status(&me, info.id).await.map(drop));
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());

    // The tombstone is kept for its retention, then forgotten.
    h.clock
        .advance(timeouts().tombstone_retention - Duration::from_secs(1));
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    expired(h.engine.status(&me, info.id).await.map(drop));
    h.clock.advance(Duration::from_secs(1));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            forgotten: 1,
            ..SweepReport::default()
        }
    );
    assert_err!(
        h.engine.status(&me, info.id).await,
        Error::SessionNotFound { id } if id == info.id.to_string()
    );
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
}

async fn activity_extends_the_expiry(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 9);
    let info = h.start(&me, SIZE, None).await;

    // A chunk just before the expiry pushes it a whole timeout further.
    h.clock.set(info.expires_at - NS);
    let receipt = h.send(&me, &info, &source, 0).await.unwrap();
    assert_eq!(
        receipt.expires_at,
        info.expires_at - NS + timeouts().session_timeout
    );

    h.clock.set(info.expires_at + Duration::from_secs(1));
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.expires_at, receipt.expires_at);
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    h.send(&me, &info, &source, 1).await.unwrap();

    // Without more activity it expires in its turn.
    let last = h.engine.status(&me, info.id).await.unwrap().expires_at;
    h.clock.set(last);
    assert_err!(
        h.engine.status(&me, info.id).await,
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    assert_eq!(h.engine.sweep().await.unwrap().expired, 1);
}

async fn an_unclaimed_upload_is_reaped_a_claimed_one_is_kept(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let (kept_src, reaped_src) = (data(SIZE, 10), data(SIZE, 11));
    let kept = h.start(&me, SIZE, None).await;
    let reaped = h.start(&me, SIZE, None).await;
    h.send_all(&me, &kept, &kept_src).await;
    h.send_all(&me, &reaped, &reaped_src).await;
    h.engine.complete(&me, kept.id).await.unwrap();
    let temporary = h.engine.complete(&me, reaped.id).await.unwrap();
    h.engine.claim(&me, kept.id).await.unwrap();
    let reap_at = temporary.reap_at.expect("a temporary upload");

    h.clock.set(reap_at - NS);
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    assert_eq!(h.read_back(&me, reaped.id).await, reaped_src);

    h.clock.set(reap_at);
    assert_err!(
        h.engine.read(&me, reaped.id).await,
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    let report = h.engine.sweep().await.unwrap();
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert_err!(
        h.engine.claim(&me, reaped.id).await,
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    assert_eq!(h.sink_uploads(), 1);
    if let Some(dir) = h.upload_dir(reaped.id) {
        assert!(!dir.exists());
    }

    // The claimed upload outlives every timeout.
    h.clock.advance(Duration::from_secs(365 * 24 * 3600));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!((report.expired, report.purged, report.forgotten), (0, 0, 1));
    let status = h.engine.status(&me, kept.id).await.unwrap();
    assert_eq!(status.state, StateKind::Claimed);
    assert_eq!(h.read_back(&me, kept.id).await, kept_src);
}

async fn another_owners_session_does_not_exist(backend: Backend) {
    let h = Harness::new(backend);
    let (alice, mallory) = (Owner::new("alice"), Owner::new("mallory"));
    let source = data(SIZE, 12);
    let info = h.start(&alice, SIZE, None).await;
    h.send(&alice, &info, &source, 0).await.unwrap();
    let before = h.engine.status(&alice, info.id).await.unwrap();

    // What an operation on a session that does not exist at all says, with
    // the id written as a placeholder.
    let unknown = SessionId::random();
    let shape = |e: Error, id: SessionId| {
        assert_err!(
            Err::<(), _>(&e),
            Error::SessionNotFound { id: shown } if *shown == id.to_string()
        );
        (
            e.kind(),
            e.code(),
            e.to_string().replace(&id.to_string(), "<id>"),
        )
    };
    let missing = shape(
        h.engine.status(&mallory, unknown).await.unwrap_err(),
        unknown,
    );

    let bytes = &source[chunk(&info, SIZE, 1)];
    let errors = [
        h.engine
            .upload_chunk(&mallory, info.id, 1, body(bytes), ChunkOptions::default())
            .await
            .map(drop),
        h.engine.complete(&mallory, info.id).await.map(drop),
        h.engine.status(&mallory, info.id).await.map(drop),
        h.engine.claim(&mallory, info.id).await.map(drop),
        h.engine.read(&mallory, info.id).await.map(drop),
        h.engine.abort(&mallory, info.id).await,
    ];
    for result in errors {
        assert_eq!(shape(result.unwrap_err(), info.id), missing);
    }
    // An out-of-range chunk reveals no chunk count either.
    let e = h
        .engine
        .upload_chunk(&mallory, info.id, 99, body(b"x"), ChunkOptions::default())
        .await
        .unwrap_err();
    assert_eq!(shape(e, info.id), missing);

    // Nothing changed for the owner, who can finish the upload.
    assert_eq!(h.engine.status(&alice, info.id).await.unwrap(), before);
    h.send_all(&alice, &info, &source).await;
    h.engine.complete(&alice, info.id).await.unwrap();
    assert_eq!(
        shape(
            h.engine
                .read(&mallory, info.id)
                .await
                .map(drop)
                .unwrap_err(),
            info.id
        ),
        missing
    );
    assert_eq!(h.read_back(&alice, info.id).await, source);
}

async fn the_open_session_quota_is_enforced(backend: Backend) {
    let h = Harness::with(backend, |b| {
        b.policy(DefaultPolicy::new().max_open_sessions(Some(2)))
    });
    let (alice, bob) = (Owner::new("alice"), Owner::new("bob"));
    let first = h.start(&alice, 10, None).await;
    let _second = h.start(&alice, 10, None).await;
    let new = || NewUpload {
        file_name: "third.bin".into(),
        file_size: 10,
        content_type: None,
        sha256: None,
    };
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );
    assert_eq!(h.sink_uploads(), 2, "a refused initiate leaves nothing");
    // Another owner has a quota of their own.
    h.engine.initiate(&bob, new()).await.unwrap();

    h.engine.abort(&alice, first.id).await.unwrap();
    let third = h.engine.initiate(&alice, new()).await.unwrap();
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );

    // A completed upload no longer counts.
    let source = data(10, 13);
    h.send_all(&alice, &third, &source).await;
    h.engine.complete(&alice, third.id).await.unwrap();
    h.engine.initiate(&alice, new()).await.unwrap();
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );

    // Sessions past their expiry no longer count, even before a sweep.
    h.clock.advance(timeouts().session_timeout);
    h.engine.initiate(&alice, new()).await.unwrap();
}

async fn a_late_chunk_cannot_alter_a_completed_blob(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 14);
    let info = h.start(&me, SIZE, None).await;
    h.send_all(&me, &info, &source).await;
    let attachment = h.engine.complete(&me, info.id).await.unwrap();

    let late = flipped(&source[chunk(&info, SIZE, 0)]);
    for expected in [StateKind::Completed, StateKind::Claimed] {
        let r = h
            .engine
            .upload_chunk(&me, info.id, 0, body(&late), ChunkOptions::default())
            .await;
        assert_err!(
            r,
            Error::InvalidState { id, state, operation: Operation::UploadChunk }
                if id == info.id && state == expected
        );
        assert_eq!(h.read_back(&me, info.id).await, source);
        assert_eq!(
            h.engine.complete(&me, info.id).await.unwrap().blob,
            attachment.blob
        );
        h.engine.claim(&me, info.id).await.unwrap();
    }
}

async fn a_chunk_in_flight_during_complete_cannot_alter_the_blob(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 15);
    let info = h.start(&me, SIZE, None).await;
    h.send_all(&me, &info, &source).await;

    // A retry of chunk 3 whose body stalls halfway until released.
    let late = flipped(&source[chunk(&info, SIZE, 3)]);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let first = Bytes::copy_from_slice(&late[..500]);
    let second = Bytes::copy_from_slice(&late[500..]);
    let stalled = futures::stream::once(async move {
        let _ = started_tx.send(());
        Ok::<_, std::io::Error>(first)
    })
    .chain(futures::stream::once(async move {
        let _ = release_rx.await;
        Ok(second)
    }));
    let upload = {
        let (engine, me) = (h.engine.clone(), me.clone());
        tokio::spawn(async move {
            engine
                .upload_chunk(&me, info.id, 3, stalled, ChunkOptions::default())
                .await
        })
    };
    started_rx.await.expect("the body is being read");

    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
    release_tx.send(()).unwrap();
    let r = upload.await.expect("the task");
    assert_err!(
        r,
        Error::InvalidState {
            state: StateKind::Completed,
            operation: Operation::UploadChunk,
            ..
        }
    );
    assert_eq!(h.read_back(&me, info.id).await, source);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    if let Some(dir) = h.upload_dir(info.id) {
        assert_eq!(entries(&dir), ["blob", "blob.json"]);
    }
}

async fn hostile_file_names_are_refused_or_stripped(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let upload = |name: String| NewUpload {
        file_name: name,
        file_size: 3,
        content_type: None,
        sha256: None,
    };
    let refused = [
        "../".to_owned(),
        "..".to_owned(),
        "a/..".to_owned(),
        "/".to_owned(),
        String::new(),
        "   ".to_owned(),
        "nul\0.txt".to_owned(),
        "../\0/etc/passwd".to_owned(),
        "bell\x07.txt".to_owned(),
        "line\nfeed.txt".to_owned(),
        "esc\x1b[31m.txt".to_owned(),
        "x".repeat(4096),
        format!("{}.txt", "x".repeat(300)),
    ];
    for name in refused {
        assert_err!(
            h.engine.initiate(&me, upload(name.clone())).await,
            Error::InvalidFileName { .. }
        );
    }
    assert_eq!(h.sink_uploads(), 0, "a refused name leaves nothing");

    let stripped = [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("./.hidden", ".hidden"),
        ("  spaced name.txt  ", "spaced name.txt"),
    ];
    for (raw, clean) in stripped {
        let info = h
            .engine
            .initiate(&me, upload(raw.to_owned()))
            .await
            .unwrap();
        let status = h.engine.status(&me, info.id).await.unwrap();
        assert_eq!(status.file.name.as_str(), clean);
        h.send_all(&me, &info, b"abc").await;
        let attachment = h.engine.complete(&me, info.id).await.unwrap();
        assert_eq!(attachment.file.name.as_str(), clean);
    }
    // File names never reach the filesystem: only ids do.
    if let Backing::Fs { root, .. } = &h.backing {
        let parent = root.parent().unwrap();
        assert_eq!(entries(parent), ["data"]);
        for path in walk(root) {
            let text = path.to_string_lossy();
            for (_, clean) in stripped {
                assert!(!text.contains(clean), "{text}");
            }
        }
    }
}

async fn an_empty_file_completes_without_chunks(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let info = h.start(&me, 0, Some(sha256(b""))).await;
    assert_eq!(info.total_chunks, 0);
    assert_err!(
        h.send(&me, &info, b"", 0).await,
        Error::ChunkOutOfRange { index: 0, total: 0 }
    );
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.size, 0);
    assert_eq!(attachment.blob.sha256, sha256(b""));
    assert!(h.read_back(&me, info.id).await.is_empty());
}

async fn concurrent_retries_of_one_chunk_record_it_once(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = Arc::new(data(SIZE, 18));
    let info = h.start(&me, SIZE, None).await;

    // Eight copies of chunk 5 race each other and the other chunks.
    let mut tasks = Vec::new();
    for index in (0..info.total_chunks).chain([5; 7]) {
        let (engine, me, source, info) =
            (h.engine.clone(), me.clone(), source.clone(), info.clone());
        tasks.push(tokio::spawn(async move {
            let bytes = &source[chunk(&info, source.len(), index)];
            engine
                .upload_chunk(&me, info.id, index, body(bytes), ChunkOptions::default())
                .await
        }));
    }
    let mut firsts = BTreeMap::<u64, usize>::new();
    for task in tasks {
        let receipt = task.await.expect("the task").expect("the chunk");
        if !receipt.replaced {
            *firsts.entry(receipt.index).or_default() += 1;
        }
    }
    // Each chunk was recorded first exactly once; every other copy replaced.
    assert_eq!(firsts, (0..info.total_chunks).map(|i| (i, 1)).collect());
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.received_bytes, SIZE as u64);
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 11, "every superseded copy is discarded");
    }
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
}

async fn concurrent_completes_finalize_once(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 19);
    let info = h.start(&me, SIZE, None).await;
    h.send_all(&me, &info, &source).await;

    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move { engine.complete(&me, info.id).await })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        match task.await.expect("the task") {
            Ok(attachment) => {
                assert_eq!(attachment.blob.sha256, sha256(&source));
                completed += 1;
            }
            // Another request holds the finalizing lease.
            Err(Error::InvalidState {
                state: StateKind::Finalizing,
                operation: Operation::Complete,
                ..
            }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(completed >= 1);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    assert_eq!(h.read_back(&me, info.id).await, source);
    if let Some(dir) = h.upload_dir(info.id) {
        assert_eq!(entries(&dir), ["blob", "blob.json"]);
    }
}

async fn an_abort_racing_uploads_leaves_nothing_behind(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = Arc::new(data(SIZE, 20));
    let info = h.start(&me, SIZE, None).await;

    let mut tasks = Vec::new();
    for index in 0..info.total_chunks {
        let (engine, me, source, info) =
            (h.engine.clone(), me.clone(), source.clone(), info.clone());
        tasks.push(tokio::spawn(async move {
            let bytes = &source[chunk(&info, source.len(), index)];
            engine
                .upload_chunk(&me, info.id, index, body(bytes), ChunkOptions::default())
                .await
                .map(drop)
        }));
    }
    h.engine.abort(&me, info.id).await.unwrap();
    for task in tasks {
        match task.await.expect("the task") {
            Ok(())
            | Err(Error::SessionGone {
                state: StateKind::Aborted,
                ..
            }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_err!(
        h.engine.status(&me, info.id).await,
        Error::SessionGone {
            state: StateKind::Aborted,
            ..
        }
    );
    assert_eq!(h.sink_uploads(), 0, "no part outlives the abort");
    if let Some(dir) = h.upload_dir(info.id) {
        assert!(!dir.exists());
    }
}

/// The names in a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every path under `root` (files and directories), relative, sorted.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

fn shard_lock(id: SessionId) -> PathBuf {
    PathBuf::from(format!("locks/{:02x}.lock", id.as_uuid().as_bytes()[0]))
}

/// After one upload is claimed, one aborted and one expired and swept, the
/// data directory holds the claimed blob, the session records and the lock
/// files, and nothing else; once the tombstones are forgotten only the
/// claimed upload's record remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_data_dir_keeps_only_the_claimed_blob_and_records() {
    let h = Harness::new(Backend::Fs);
    let Backing::Fs { root, .. } = &h.backing else {
        unreachable!()
    };
    let me = Owner::new("alice");
    let source = data(SIZE, 16);
    let claimed = h.start(&me, SIZE, None).await;
    let aborted = h.start(&me, SIZE, None).await;
    let expired = h.start(&me, SIZE, None).await;
    h.send_all(&me, &claimed, &source).await;
    for index in [0, 3] {
        h.send(&me, &aborted, &source, index).await.unwrap();
        h.send(&me, &expired, &source, index).await.unwrap();
    }
    h.engine.complete(&me, claimed.id).await.unwrap();
    h.engine.claim(&me, claimed.id).await.unwrap();
    // Abort late enough that its tombstone outlives the next sweep.
    h.clock
        .advance(timeouts().session_timeout - Duration::from_secs(1));
    h.engine.abort(&me, aborted.id).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            expired: 1,
            purged: 1,
            forgotten: 0,
            failed: 0
        }
    );

    let layout = |records: &[SessionId]| {
        let mut want: BTreeSet<PathBuf> = ["locks", "sessions", "uploads"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let up = PathBuf::from("uploads").join(claimed.id.to_string());
        want.extend([up.join("blob"), up.join("blob.json"), up]);
        for id in [claimed.id, aborted.id, expired.id] {
            want.insert(shard_lock(id));
        }
        for id in records {
            want.insert(PathBuf::from(format!("sessions/{id}.json")));
        }
        want
    };
    let have: BTreeSet<PathBuf> = walk(root).into_iter().collect();
    assert_eq!(have, layout(&[claimed.id, aborted.id, expired.id]));

    h.clock.advance(timeouts().tombstone_retention);
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(report.forgotten, 2);
    let have: BTreeSet<PathBuf> = walk(root).into_iter().collect();
    assert_eq!(have, layout(&[claimed.id]));
    assert_eq!(h.read_back(&me, claimed.id).await, source);
    let blob = std::fs::read(
        root.join("uploads")
            .join(claimed.id.to_string())
            .join("blob"),
    );
    assert_eq!(blob.unwrap(), source);
}

/// Parts and records written by one engine are found by another over the
/// same directory (a restart): the upload resumes where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_an_upload_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = || {
        Engine::builder(
            FsStore::open(dir.path()).unwrap(),
            FsSink::open(dir.path()).unwrap(),
        )
        .config(config())
        .clock(clock.clone())
        .build()
    };
    let me = Owner::new("alice");
    let source = data(SIZE, 17);
    let first = engine();
    let info = first
        .initiate(
            &me,
            NewUpload {
                file_name: "resume.bin".into(),
                file_size: SIZE as u64,
                content_type: None,
                sha256: Some(sha256(&source)),
            },
        )
        .await
        .unwrap();
    for index in 0..5 {
        let bytes = &source[chunk(&info, SIZE, index)];
        first
            .upload_chunk(&me, info.id, index, body(bytes), ChunkOptions::default())
            .await
            .unwrap();
    }
    drop(first);

    let second = engine();
    let status = second.status(&me, info.id).await.unwrap();
    assert_eq!(status.received_chunks, [0, 1, 2, 3, 4]);
    for index in 5..info.total_chunks {
        let bytes = &source[chunk(&info, SIZE, index)];
        second
            .upload_chunk(&me, info.id, index, body(bytes), ChunkOptions::default())
            .await
            .unwrap();
    }
    let attachment = second.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
}

// ---- property: random attempts always assemble the intended bytes ----

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
            NewUpload {
                file_name: "random.bin".into(),
                file_size: s.len as u64,
                content_type: None,
                sha256: Some(sha256(&source)),
            },
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
                let want = sha256(&bytes);
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
                        if *i == index && *expected == claimed && *actual == actual_sha),
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
}
