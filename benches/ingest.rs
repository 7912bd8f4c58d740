//! Chunk ingest: what `Engine::upload_chunk` costs for one 8 MiB chunk on the
//! embedded default backends, against writing and hashing the same bytes
//! directly.
//!
//! Group `ingest_8MiB_chunk`, both functions on the same 8 MiB of
//! pseudo-random bytes, streamed as 64 KiB `Bytes` items, in one temporary
//! directory under the default temp dir, on a tokio multi-thread runtime:
//!
//! - `engine_upload_chunk`: `Engine::upload_chunk` over `FsStore` +
//!   `FsSink`: load and authorize the session, stream the body through the
//!   meter (length check; the running whole-file SHA-256, as the chunks come
//!   in order, hashed on the blocking pool) into the upload's file at the
//!   chunk's offset, fdatasync it and fsync the claims directory, then record
//!   the chunk and the hashed prefix with a compare-and-swap of the session
//!   record (load, lock, write, fsync, rename, fsync the directory). Every
//!   iteration sends the next chunk index, so no upload is a replacement. Sessions of up to 32 chunks are initiated
//!   before, and aborted (purged) after, untimed.
//! - `write_and_hash` (baseline): the same items written to a new file with
//!   `tokio::fs` (the I/O path the sink used before it wrote from the
//!   blocking pool itself), each item hashed with SHA-256
//!   on the async task just before it is written, then flush and fsync of the
//!   file. No directory fsync, no session record. The files are removed
//!   untimed in batches of 32 (then the directory is fsynced), as the
//!   engine's sessions are purged.
//!
//! Throughput is reported in bytes of the chunk.

use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{ChunkOptions, Engine, NewUpload, Owner};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

/// One chunk (the engine's default chunk size).
const CHUNK: usize = 8 << 20;
/// The body items.
const PIECE: usize = 64 << 10;
/// The most chunks one benchmark session has before it is aborted and a new
/// one initiated; bounds the session record and the disk space used.
const SESSION_CHUNKS: u64 = 32;

/// The chunk as a request body's items.
fn pieces() -> Vec<Bytes> {
    let mut bytes = vec![0u8; CHUNK];
    fastrand::Rng::with_seed(0x5EED_F00D).fill(&mut bytes);
    let chunk = Bytes::from(bytes);
    (0..CHUNK)
        .step_by(PIECE)
        .map(|at| chunk.slice(at..at + PIECE))
        .collect()
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::builder(
        FsStore::open(dir.path().join("store")).expect("store"),
        FsSink::open(dir.path().join("sink")).expect("sink"),
    )
    .chunk_size(CHUNK as u64)
    .build();
    let owner = Owner::new("bench");
    let pieces = pieces();
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("baseline dir");

    let mut group = c.benchmark_group("ingest_8MiB_chunk");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(CHUNK as u64));

    let (engine, owner, pieces, plain) = (&engine, &owner, &pieces, &plain);
    group.bench_function("engine_upload_chunk", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunks = left.min(SESSION_CHUNKS);
                let info = engine
                    .initiate(
                        owner,
                        NewUpload {
                            file_name: "bench.bin".into(),
                            file_size: chunks * CHUNK as u64,
                            content_type: None,
                            sha256: None,
                        },
                    )
                    .await
                    .expect("initiate");
                assert_eq!(info.chunk_size, CHUNK as u64);
                for index in 0..chunks {
                    let body =
                        futures::stream::iter(pieces.clone().into_iter().map(Ok::<_, io::Error>));
                    let options = ChunkOptions {
                        declared_len: Some(CHUNK as u64),
                        ..ChunkOptions::default()
                    };
                    let start = Instant::now();
                    let receipt = engine
                        .upload_chunk(owner, info.id, index, body, options)
                        .await
                        .expect("upload_chunk");
                    timed += start.elapsed();
                    assert!(!receipt.replaced, "chunk {index} was a replacement");
                }
                engine.abort(owner, info.id).await.expect("abort");
                left -= chunks;
            }
            timed
        });
    });

    group.bench_function("write_and_hash", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let files = left.min(SESSION_CHUNKS);
                for i in 0..files {
                    let path = plain.join(format!("{i}.bin"));
                    let items = pieces.clone();
                    let start = Instant::now();
                    let mut file = tokio::fs::File::create_new(&path).await.expect("create");
                    let mut hasher = Sha256::new();
                    for item in items {
                        hasher.update(&item);
                        file.write_all(&item).await.expect("write");
                    }
                    file.flush().await.expect("flush");
                    file.sync_all().await.expect("fsync");
                    black_box(hasher.finalize());
                    timed += start.elapsed();
                }
                // Removed in a batch and the removal committed, as the
                // engine's abort purges a session: with `discard` mounts the
                // commit of a removal is not cheap, and it is untimed in both.
                for i in 0..files {
                    let path = plain.join(format!("{i}.bin"));
                    tokio::fs::remove_file(&path).await.expect("remove");
                }
                std::fs::File::open(plain)
                    .and_then(|d| d.sync_all())
                    .expect("sync baseline dir");
                left -= files;
            }
            timed
        });
    });

    group.finish();
    drop(runtime);
    dir.close().expect("remove temp dir");
}

criterion_group!(benches, ingest);
criterion_main!(benches);
