//! Chunk assembly: what `FsSink::finalize` costs for a 256 MiB upload.
//!
//! Group `assembly_256MiB`, every function on the same 256 MiB of
//! pseudo-random bytes, in one temporary directory under the default temp
//! dir. Before each timed `finalize`, untimed, an upload is begun with its
//! size (so the sink reserves its blocks) and its 32 parts of 8 MiB are put
//! (and fsynced) through `FsSink::put_part`, in a shuffled order, each body
//! in 64 KiB items as the engine hands it over; after it, the upload is
//! purged, untimed.
//!
//! - `fs_sink_finalize_in_place_compute`: the parts were written in place
//!   into the upload's data file. `finalize` with `BlobDigest::Compute` and
//!   the expected digest: it reads the data file once to hash it, checks the
//!   digest, fsyncs, publishes the data file as the blob (a link, no copy)
//!   and removes the claims.
//! - `fs_sink_finalize_in_place_known`: the same with `BlobDigest::Known`
//!   (the caller hashed the parts already): nothing is read.
//! - `fs_sink_finalize_by_copy`: the upload's directory is made as an older
//!   version of the sink made it (no data file), so every part is a file of
//!   its own and `finalize` copies them in order into one file, hashing on
//!   the way, as every `finalize` did before parts were written in place.
//! - `plain_copy` (baseline): `std::fs::copy` of one 256 MiB file holding the
//!   same bytes, followed by an fsync of the copy so that both functions end
//!   with the bytes durable. No hashing. On Linux `std::fs::copy` uses
//!   `copy_file_range`, so this is the kernel's copy, the floor for any
//!   assembly by copying. The copy is removed afterwards and the removal
//!   committed (directory fsync), untimed, as `purge` does for the sink:
//!   with a `discard` mount, a removal left uncommitted would be paid by the
//!   next timed fsync.
//!
//! The sources are in the page cache when the timing starts (the parts and
//! the baseline's source are written and fsynced just before), so the
//! figures compare the copy, the hashing and the final fsync, not cold reads.
//!
//! Throughput is reported in bytes of the assembled file. Sampling is flat
//! with 10 samples. `fs_sink_finalize_in_place_known` takes milliseconds
//! while staging its upload takes a few hundred, so it is measured with a
//! short warm-up and measurement time (about one iteration per sample;
//! criterion says it cannot complete the samples in that time, which is
//! expected).

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

/// How the upload's directory is laid out before its parts are put.
#[derive(Clone, Copy)]
enum Layout {
    /// As `begin` makes it: parts are written in place.
    Current,
    /// As an older version of the sink made it: only `parts/`, so every part
    /// is a file of its own.
    PartFiles,
}

/// Begins an upload and stores all its parts in a shuffled order, returning
/// what `finalize` takes.
async fn stage(
    sink: &FsSink,
    root: &Path,
    upload: &Upload,
    layout: Layout,
) -> (UploadHandle, Vec<PartReceipt>) {
    let handle = sink
        .begin(&SessionId::random(), Some(TOTAL as u64))
        .await
        .expect("begin");
    if let Layout::PartFiles = layout {
        let dir = root.join("uploads").join(handle.as_str());
        fs::remove_file(dir.join("data")).expect("remove data");
        fs::remove_dir(dir.join("claims")).expect("remove claims");
    }
    let mut order: Vec<usize> = (0..PARTS).collect();
    fastrand::Rng::with_seed(0x0DD).shuffle(&mut order);
    let mut receipts = Vec::with_capacity(PARTS);
    for index in order {
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
            sha256: Some(upload.part_digests[index]),
            part,
        });
    }
    receipts.sort_by_key(|r| r.offset);
    let in_place = receipts
        .iter()
        .filter(|r| r.part.as_str().ends_with(".inplace"))
        .count();
    let want = match layout {
        Layout::Current => PARTS,
        Layout::PartFiles => 0,
    };
    assert_eq!(in_place, want, "parts written in place");
    (handle, receipts)
}

/// Times `finalize` of freshly staged uploads, `iters` times.
async fn time_finalize(
    sink: &FsSink,
    root: &Path,
    upload: &Upload,
    layout: Layout,
    digest: BlobDigest,
    iters: u64,
) -> Duration {
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        let (handle, parts) = stage(sink, root, upload, layout).await;
        let start = Instant::now();
        let blob = sink
            .finalize(&handle, &parts, digest)
            .await
            .expect("finalize");
        timed += start.elapsed();
        assert_eq!(
            (blob.size, blob.sha256),
            (TOTAL as u64, upload.whole),
            "finalize assembled the wrong bytes"
        );
        let published = fs::metadata(sink.blob_path(&handle).expect("blob path"))
            .expect("the blob is published");
        assert_eq!(published.len(), TOTAL as u64);
        sink.purge(&handle).await.expect("purge");
    }
    timed
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

    let root = dir.path().join("sink");
    let (sink_ref, upload_ref, root_ref) = (&sink, &upload, root.as_path());
    let compute = BlobDigest::Compute {
        expected: Some(upload.whole),
    };
    let runs = [
        (
            "fs_sink_finalize_in_place_compute",
            Layout::Current,
            compute,
        ),
        ("fs_sink_finalize_by_copy", Layout::PartFiles, compute),
    ];
    for (name, layout, digest) in runs {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                time_finalize(sink_ref, root_ref, upload_ref, layout, digest, iters)
            });
        });
    }
    group
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(20));
    let known = BlobDigest::Known(upload.whole);
    group.bench_function("fs_sink_finalize_in_place_known", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            time_finalize(
                sink_ref,
                root_ref,
                upload_ref,
                Layout::Current,
                known,
                iters,
            )
        });
    });
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

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
