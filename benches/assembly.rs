//! Chunk assembly: what `FsSink::finalize` costs for a 256 MiB upload.
//!
//! Group `assembly_256MiB`, both functions on the same 256 MiB of
//! pseudo-random bytes, in one temporary directory under the default temp
//! dir:
//!
//! - `fs_sink_finalize`: the upload is 32 parts of 8 MiB, stored (and
//!   fsynced) through `FsSink::put_part` before each iteration, untimed.
//!   Only `finalize` is timed: it copies the parts in order into one file,
//!   computes the SHA-256 of the whole file on the way (checked against the
//!   expected digest), fsyncs, publishes the blob and removes the parts. The
//!   upload is purged afterwards, untimed.
//! - `fs_sink_finalize_known`: the same, with the digest known
//!   ([`BlobDigest::Known`], as the engine passes it when it hashed the
//!   chunks as they arrived): the copy without the hashing.
//! - `plain_copy` (baseline): `std::fs::copy` of one 256 MiB file holding the
//!   same bytes, followed by an fsync of the copy so that both functions end
//!   with the bytes durable. No hashing. On Linux `std::fs::copy` uses
//!   `copy_file_range`, so this is the kernel's copy, the floor for any
//!   assembly by copying. The copy is removed afterwards and the removal
//!   committed (directory fsync), untimed, as `purge` does for the sink:
//!   with a `discard` mount, a removal left uncommitted would be paid by the
//!   next timed fsync.
//!
//! The sources of both are in the page cache when the copy starts (the parts
//! and the baseline's source are written and fsynced just before), so the
//! figures compare the copy, the hashing and the final fsync, not cold reads.
//!
//! Throughput is reported in bytes of the assembled file. Sampling is flat
//! with 10 samples, so a run is a few dozen assemblies.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use resumable::ledger::PartReceipt;
use resumable::sink::{BlobDigest, BlobSink, ByteStream, FsSink, PartSpec, UploadHandle};
use resumable::{SessionId, Sha256Digest};

/// One part (the engine's default chunk size).
const PART: usize = 8 << 20;
/// Parts per upload.
const PARTS: usize = 32;
/// The assembled file.
const TOTAL: usize = PART * PARTS;
/// The body items a part is streamed in.
const PIECE: usize = 64 << 10;

/// The data of one upload and what the sink needs to know about it.
struct Upload {
    data: Bytes,
    part_digests: Vec<Sha256Digest>,
    whole: Sha256Digest,
}

impl Upload {
    fn new() -> Self {
        let mut bytes = vec![0u8; TOTAL];
        fastrand::Rng::with_seed(0x5EED_CAFE).fill(&mut bytes);
        let data = Bytes::from(bytes);
        let part_digests = data.chunks(PART).map(Sha256Digest::of).collect();
        let whole = Sha256Digest::of(&data);
        Upload {
            data,
            part_digests,
            whole,
        }
    }

    fn part(&self, index: usize) -> Bytes {
        self.data.slice(index * PART..(index + 1) * PART)
    }
}

/// A part's body as the engine hands it to a sink: 64 KiB items.
fn body(part: Bytes) -> ByteStream {
    let pieces: Vec<Bytes> = (0..part.len())
        .step_by(PIECE)
        .map(|at| part.slice(at..(at + PIECE).min(part.len())))
        .collect();
    futures::stream::iter(pieces.into_iter().map(Ok)).boxed()
}

/// Begins an upload and stores all its parts, returning what `finalize`
/// takes.
async fn stage(sink: &FsSink, upload: &Upload) -> (UploadHandle, Vec<PartReceipt>) {
    let handle = sink
        .begin(&SessionId::random(), Some(TOTAL as u64))
        .await
        .expect("begin");
    let mut receipts = Vec::with_capacity(PARTS);
    for index in 0..PARTS {
        let spec = PartSpec {
            index: index as u64,
            offset: (index * PART) as u64,
            len: Some(PART as u64),
        };
        let part = sink
            .put_part(&handle, spec, body(upload.part(index)))
            .await
            .expect("put_part");
        receipts.push(PartReceipt {
            offset: spec.offset,
            len: PART as u64,
            sha256: upload.part_digests[index],
            part,
        });
    }
    (handle, receipts)
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).expect("create source");
    f.write_all(data).expect("write source");
    f.sync_all().expect("sync source");
}

fn assembly(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = FsSink::open(dir.path().join("sink")).expect("sink");
    let upload = Upload::new();
    let source = dir.path().join("source.bin");
    write_synced(&source, &upload.data);

    let mut group = c.benchmark_group("assembly_256MiB");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(TOTAL as u64));

    let (sink_ref, upload_ref) = (&sink, &upload);
    group.bench_function("fs_sink_finalize", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let (handle, parts) = stage(sink_ref, upload_ref).await;
                let start = Instant::now();
                let blob = sink_ref
                    .finalize(
                        &handle,
                        &parts,
                        BlobDigest::Compute {
                            expected: Some(upload_ref.whole),
                        },
                    )
                    .await
                    .expect("finalize");
                timed += start.elapsed();
                assert_eq!(
                    (blob.size, blob.sha256),
                    (TOTAL as u64, upload_ref.whole),
                    "finalize assembled the wrong bytes"
                );
                sink_ref.purge(&handle).await.expect("purge");
            }
            timed
        });
    });

    group.bench_function("fs_sink_finalize_known", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let (handle, parts) = stage(sink_ref, upload_ref).await;
                let start = Instant::now();
                let blob = sink_ref
                    .finalize(&handle, &parts, BlobDigest::Known(upload_ref.whole))
                    .await
                    .expect("finalize");
                timed += start.elapsed();
                assert_eq!((blob.size, blob.sha256), (TOTAL as u64, upload_ref.whole));
                sink_ref.purge(&handle).await.expect("purge");
            }
            timed
        });
    });

    let (target, dir_path) = (dir.path().join("copy.bin"), dir.path());
    group.bench_function("plain_copy", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let copied = fs::copy(&source, &target).expect("copy");
                OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .and_then(|f| f.sync_all())
                    .expect("sync copy");
                timed += start.elapsed();
                assert_eq!(black_box(copied), TOTAL as u64);
                fs::remove_file(&target).expect("remove copy");
                // Commit the removal untimed, as `purge` does for the sink.
                File::open(dir_path)
                    .and_then(|d| d.sync_all())
                    .expect("sync temp dir");
            }
            timed
        });
    });

    group.finish();
    drop(sink);
    dir.close().expect("remove temp dir");
}

criterion_group!(benches, assembly);
criterion_main!(benches);
