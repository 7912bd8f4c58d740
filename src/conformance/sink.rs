//! The conformance suite of [`BlobSink`] implementations.
//!
//! Every check begins uploads of its own, sized by the sink's
//! [`capabilities`](BlobSink::capabilities) (every part but the last at
//! least `min_part_size`, so a sink with the S3 minimum gets parts of
//! 5 MiB), and panics with a message naming the broken rule. A check that
//! passes purges the uploads it began.
//!
//! [`run_all`] runs every check.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use super::join;
use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::PartReceipt;
use crate::session::SessionId;
use crate::sink::{BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, UploadHandle};

/// The part size the suite asks for, within the sink's bounds.
const PREFERRED_PART: u64 = 3001;

/// Runs every check of this suite on `sink`, one after another.
///
/// Run it on a multi-threaded tokio runtime so that the concurrent checks
/// run in parallel. `sink` is an `Arc` because those checks share it with the
/// tasks they spawn; the other checks take `&dyn BlobSink`.
pub async fn run_all(sink: Arc<dyn BlobSink>) {
    capabilities_are_sane(&*sink).await;
    put_finalize_read_round_trip(&*sink).await;
    parts_in_any_order_and_concurrently(sink.clone()).await;
    if sink.capabilities().parts_keyed_by_index {
        retried_parts_supersede_by_index(&*sink).await;
    } else {
        retried_parts_keep_their_bytes(&*sink).await;
    }
    failing_body_is_an_error(&*sink).await;
    digest_mismatch_publishes_nothing(&*sink).await;
    finalize_is_idempotent(&*sink).await;
    known_digest_is_published_as_given(&*sink).await;
    read_part_returns_the_acknowledged_bytes(&*sink).await;
    concurrent_finalize_agrees(sink.clone()).await;
    late_part_after_finalize_is_refused(sink.clone()).await;
    late_part_after_purge_is_refused(sink.clone()).await;
    purge_is_idempotent(&*sink).await;
    discard_of_a_gone_part_is_ok(&*sink).await;
    empty_upload_finalizes(&*sink).await;
    concatenate_joins_finished_blobs(&*sink).await;
    concurrent_concatenate_agrees(sink.clone()).await;
}

/// The capabilities describe a usable sink: `1 <= min_part_size <=
/// max_part_size`, `max_parts >= 1`, and a blob of one maximal part fits.
pub async fn capabilities_are_sane(sink: &dyn BlobSink) {
    let caps = sink.capabilities();
    assert!(
        caps.min_part_size >= 1 && caps.min_part_size <= caps.max_part_size,
        "capabilities must have 1 <= min_part_size <= max_part_size: {caps:?}"
    );
    assert!(
        caps.max_parts >= 1,
        "capabilities must allow a part: {caps:?}"
    );
    assert!(
        caps.max_blob_size >= caps.min_part_size,
        "capabilities must allow a blob of at least one part: {caps:?}"
    );
}

/// `begin`, `put_part` of every part in order (each body a stream of several
/// items, an empty one among them), `finalize`: the [`FinishedBlob`] has the
/// data's size and SHA-256, `read` returns exactly the data (and again), and
/// nothing is readable before `finalize` or after `purge`.
pub async fn put_finalize_read_round_trip(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 4, 1).await;
    expect_not_found(sink.read(&up.handle).await, "read before finalize");
    let receipts = up.put_all(sink).await;
    let blob = finalize_ok(sink, &up.handle, &receipts, None).await;
    assert_eq!(
        blob,
        up.finished(),
        "finalize must report the data's size and SHA-256"
    );
    for _ in 0..2 {
        assert_read(sink, &up.handle, &up.data, "read after finalize").await;
    }
    purge_ok(sink, &up.handle).await;
    expect_not_found(sink.read(&up.handle).await, "read after purge");
}

/// Parts of two uploads are put at once from concurrent tasks, in shuffled
/// order (the last part first); each upload finalizes to its own data.
pub async fn parts_in_any_order_and_concurrently(sink: Arc<dyn BlobSink>) {
    let uploads = [
        Upload::begin(&*sink, 6, 2).await,
        Upload::begin(&*sink, 5, 3).await,
    ];
    let mut jobs: Vec<(usize, u64)> = (0..uploads.len())
        .flat_map(|u| (0..uploads[u].ranges().len() as u64).map(move |i| (u, i)))
        .collect();
    fastrand::Rng::with_seed(7).shuffle(&mut jobs);
    jobs.sort_by_key(|&(u, i)| i + 1 != uploads[u].ranges().len() as u64);
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(u, index)| {
            let sink = sink.clone();
            let handle = uploads[u].handle.clone();
            let range = uploads[u].ranges()[index as usize].clone();
            let bytes = uploads[u].data[usize_range(&range)].to_vec();
            tokio::spawn(
                async move { (u, put_ok(&*sink, &handle, index, range.start, &bytes).await) },
            )
        })
        .collect();
    let mut receipts = vec![Vec::new(), Vec::new()];
    for task in tasks {
        let (u, receipt) = join(task).await;
        receipts[u].push(receipt);
    }
    for (up, mut parts) in uploads.iter().zip(receipts) {
        parts.sort_by_key(|p| p.offset);
        let blob = finalize_ok(&*sink, &up.handle, &parts, None).await;
        assert_eq!(
            blob,
            up.finished(),
            "parts put in any order and concurrently must assemble to the data"
        );
        assert_read(
            &*sink,
            &up.handle,
            &up.data,
            "read of a concurrently put upload",
        )
        .await;
        purge_ok(&*sink, &up.handle).await;
    }
}

/// A part put again (a retried chunk) gets its own reference and never
/// changes the bytes behind the first one: discarding the second attempt and
/// finalizing with the first yields the first attempt's bytes.
pub async fn retried_parts_keep_their_bytes(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 3, 4).await;
    let receipts = up.put_all(sink).await;
    let first = &receipts[0];
    let other = pattern(first.len as usize, 40);
    let retry = put_ok(sink, &up.handle, 0, 0, &other).await;
    assert_ne!(
        retry.part, first.part,
        "a part put again must get a new reference"
    );
    ok(
        sink.discard_part(&up.handle, &retry.part).await,
        "discard_part",
    );
    let blob = finalize_ok(sink, &up.handle, &receipts, None).await;
    assert_eq!(
        blob,
        up.finished(),
        "putting a part again must not change the bytes behind the first reference"
    );
    assert_read(sink, &up.handle, &up.data, "read after a retried part").await;
    purge_ok(sink, &up.handle).await;
}

/// For a sink whose parts are keyed by index: a part put again gets a
/// different reference, the first reference is refused by `finalize` (it
/// never assembles superseded bytes), and the latest one is assembled.
pub async fn retried_parts_supersede_by_index(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 3, 4).await;
    let mut receipts = up.put_all(sink).await;
    let first = receipts[0].clone();
    let other = pattern(first.len as usize, 40);
    let retry = put_ok(sink, &up.handle, 0, 0, &other).await;
    assert_ne!(
        retry.part, first.part,
        "a part put again with other bytes must get a new reference"
    );
    assert!(
        sink.finalize(&up.handle, &receipts, compute(None))
            .await
            .is_err(),
        "finalize must refuse a superseded part"
    );
    receipts[0] = retry;
    let mut data = up.data.clone();
    data[..other.len()].copy_from_slice(&other);
    let blob = finalize_ok(sink, &up.handle, &receipts, None).await;
    assert_eq!(
        blob,
        FinishedBlob {
            size: data.len() as u64,
            sha256: Sha256Digest::of(&data),
        },
        "finalize must assemble the latest bytes of a part put again"
    );
    assert_read(sink, &up.handle, &data, "read after a part put again").await;
    purge_ok(sink, &up.handle).await;
}

/// A body stream that fails (after some bytes, or at once) makes `put_part`
/// fail; the part can then be put again and the upload completes as if the
/// failure never happened.
pub async fn failing_body_is_an_error(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 3, 5).await;
    let ranges = up.ranges();
    for (index, sent) in [(1usize, 7usize), (0, 0)] {
        let range = &ranges[index];
        let spec = PartSpec {
            index: index as u64,
            offset: range.start,
            len: Some(range.end - range.start),
        };
        let head = Bytes::copy_from_slice(&up.data[usize_range(range)][..sent]);
        let body = futures::stream::iter([
            Ok(head),
            Err(io::Error::other("conformance: the client went away")),
        ])
        .boxed();
        if sink.put_part(&up.handle, spec, body).await.is_ok() {
            panic!("put_part with a body that fails after {sent} bytes must fail");
        }
    }
    let receipts = up.put_all(sink).await;
    let blob = finalize_ok(sink, &up.handle, &receipts, None).await;
    assert_eq!(
        blob,
        up.finished(),
        "a failed part must not affect the blob"
    );
    assert_read(sink, &up.handle, &up.data, "read after failed parts").await;
    purge_ok(sink, &up.handle).await;
}

/// `finalize` with an expected digest the data does not have fails with
/// [`SinkError::DigestMismatch`] (naming both digests), publishes nothing,
/// and keeps the parts: finalize with the right digest, or with none, then
/// succeeds.
pub async fn digest_mismatch_publishes_nothing(sink: &dyn BlobSink) {
    let wrong = Sha256Digest::of(b"not the data");
    for (seed, retry_with_digest) in [(6, true), (7, false)] {
        let up = Upload::begin(sink, 3, seed).await;
        let receipts = up.put_all(sink).await;
        let actual = up.finished().sha256;
        for _ in 0..2 {
            match sink
                .finalize(&up.handle, &receipts, compute(Some(wrong)))
                .await
            {
                Err(SinkError::DigestMismatch {
                    expected: e,
                    actual: a,
                }) => assert!(
                    e == wrong && a == actual,
                    "DigestMismatch must name the expected ({wrong}) and actual ({actual}) \
                     digests, got {e} and {a}"
                ),
                other => panic!(
                    "finalize with a wrong digest must fail with DigestMismatch, got {other:?}"
                ),
            }
            expect_not_found(sink.read(&up.handle).await, "read after a digest mismatch");
        }
        let expected = retry_with_digest.then_some(actual);
        let blob = finalize_ok(sink, &up.handle, &receipts, expected).await;
        assert_eq!(
            blob,
            up.finished(),
            "finalize after a digest mismatch must assemble the data"
        );
        assert_read(sink, &up.handle, &up.data, "read after a repaired finalize").await;
        purge_ok(sink, &up.handle).await;
    }
}

/// `finalize` called again after success returns the same [`FinishedBlob`]
/// and leaves the blob as it was.
pub async fn finalize_is_idempotent(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 3, 8).await;
    let receipts = up.put_all(sink).await;
    let digest = Some(up.finished().sha256);
    let first = finalize_ok(sink, &up.handle, &receipts, digest).await;
    for _ in 0..2 {
        let again = finalize_ok(sink, &up.handle, &receipts, digest).await;
        assert_eq!(
            again, first,
            "finalize again must return the same FinishedBlob"
        );
    }
    assert_read(sink, &up.handle, &up.data, "read after finalize twice").await;
    purge_ok(sink, &up.handle).await;
}

/// `finalize` with [`BlobDigest::Known`] publishes the blob with exactly the
/// digest given, without reading the data to check it: given a digest the
/// data does not have, the [`FinishedBlob`] carries that digest and the
/// data's size, `read` returns the data, and `finalize` again returns the
/// same blob.
pub async fn known_digest_is_published_as_given(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 3, 15).await;
    let receipts = up.put_all(sink).await;
    let given = Sha256Digest::of(b"a digest the caller vouches for");
    let blob = ok(
        sink.finalize(&up.handle, &receipts, BlobDigest::Known(given))
            .await,
        "finalize with a known digest",
    );
    assert_eq!(
        blob,
        FinishedBlob {
            size: up.data.len() as u64,
            sha256: given,
        },
        "finalize with a known digest must publish that digest (without reading the data to \
         check it) and the data's size"
    );
    assert_read(sink, &up.handle, &up.data, "read after a known digest").await;
    for digest in [BlobDigest::Known(given), compute(None)] {
        assert_eq!(
            ok(
                sink.finalize(&up.handle, &receipts, digest).await,
                "finalize again after a known digest",
            ),
            blob,
            "finalize again after a known digest must return the same blob"
        );
    }
    purge_ok(sink, &up.handle).await;
}

/// With [`SinkCapabilities::readable_parts`](crate::sink::SinkCapabilities):
/// `read_part` streams exactly the acknowledged bytes of each receipt, parts
/// put in any order, and still those of the first attempt at a part once
/// another attempt of the same index stored other bytes (unless parts are
/// keyed by index); the digest of those bytes, in order, given as
/// [`BlobDigest::Known`], publishes the data; after `purge` it fails with
/// [`SinkError::NotFound`]. Without the capability it fails with
/// [`SinkError::Unsupported`].
pub async fn read_part_returns_the_acknowledged_bytes(sink: &dyn BlobSink) {
    let caps = sink.capabilities();
    let up = Upload::begin(sink, 4, 16).await;
    if !caps.readable_parts {
        let receipts = up.put_all(sink).await;
        match sink.read_part(&up.handle, &receipts[0]).await {
            Err(SinkError::Unsupported(_)) => {}
            Err(e) => panic!(
                "read_part of a sink without readable_parts must fail with Unsupported, got {e:?}"
            ),
            Ok(_) => panic!(
                "read_part of a sink without readable_parts must fail with Unsupported, it \
                 succeeded"
            ),
        }
        purge_ok(sink, &up.handle).await;
        return;
    }
    let ranges = up.ranges();
    let mut receipts = Vec::with_capacity(ranges.len());
    for (index, range) in ranges.iter().enumerate().rev() {
        let bytes = &up.data[usize_range(range)];
        receipts.push(put_ok(sink, &up.handle, index as u64, range.start, bytes).await);
    }
    receipts.reverse();
    for (receipt, range) in receipts.iter().zip(&ranges) {
        assert_part(
            sink,
            &up.handle,
            receipt,
            &up.data[usize_range(range)],
            "read_part of a part put out of order",
        )
        .await;
    }
    if !caps.parts_keyed_by_index {
        let other = pattern(receipts[0].len as usize, 41);
        let retry = put_ok(sink, &up.handle, 0, 0, &other).await;
        assert_part(
            sink,
            &up.handle,
            &receipts[0],
            &up.data[usize_range(&ranges[0])],
            "read_part of a part once the same index was put again with other bytes",
        )
        .await;
        assert_part(
            sink,
            &up.handle,
            &retry,
            &other,
            "read_part of a part that replaces an earlier attempt",
        )
        .await;
    }
    let mut hasher = Sha256::new();
    for receipt in &receipts {
        let mut stream = ok(
            sink.read_part(&up.handle, receipt).await,
            "read_part to hash",
        );
        while let Some(item) = stream.next().await {
            hasher.update(
                item.unwrap_or_else(|e| panic!("read_part to hash: the stream failed: {e}")),
            );
        }
    }
    let blob = ok(
        sink.finalize(
            &up.handle,
            &receipts,
            BlobDigest::Known(Sha256Digest::from_hasher(hasher)),
        )
        .await,
        "finalize with the digest of the parts read back",
    );
    assert_eq!(
        blob,
        up.finished(),
        "the parts read back must hash to the data's SHA-256"
    );
    assert_read(sink, &up.handle, &up.data, "read after parts read back").await;
    purge_ok(sink, &up.handle).await;
    expect_not_found(
        sink.read_part(&up.handle, &receipts[0]).await,
        "read_part after purge",
    );
}

/// Several `finalize` calls of one upload at once (a finalizer whose lease
/// another took over) are safe: every call succeeds and reports the data's
/// size and SHA-256, and the blob read back is whole.
pub async fn concurrent_finalize_agrees(sink: Arc<dyn BlobSink>) {
    let up = Upload::begin(&*sink, 6, 10).await;
    let receipts = Arc::new(up.put_all(&*sink).await);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (sink, handle, receipts) = (sink.clone(), up.handle.clone(), receipts.clone());
            tokio::spawn(async move { sink.finalize(&handle, &receipts, compute(None)).await })
        })
        .collect();
    for task in tasks {
        let blob = ok(join(task).await, "a concurrent finalize");
        assert_eq!(
            blob,
            up.finished(),
            "a concurrent finalize must report the data's size and SHA-256"
        );
    }
    assert_read(
        &*sink,
        &up.handle,
        &up.data,
        "read after concurrent finalize calls",
    )
    .await;
    purge_ok(&*sink, &up.handle).await;
}

/// A part that arrives after `finalize` is refused with
/// [`SinkError::NotFound`], and neither it nor a part still streaming while
/// `finalize` ran changes the blob.
pub async fn late_part_after_finalize_is_refused(sink: Arc<dyn BlobSink>) {
    let up = Upload::begin(&*sink, 2, 9).await;
    let receipts = up.put_all(&*sink).await;
    let range = up.ranges()[0].clone();
    let late = pattern((range.end - range.start) as usize, 90);

    let in_flight = InFlight::start(sink.clone(), &up.handle, 0, range.start, &late).await;
    let blob = finalize_ok(&*sink, &up.handle, &receipts, None).await;
    in_flight.finish().await;

    let spec = PartSpec {
        index: 0,
        offset: range.start,
        len: Some(range.end - range.start),
    };
    expect_not_found(
        sink.put_part(&up.handle, spec, body(&late)).await,
        "put_part after finalize",
    );
    assert_eq!(blob, up.finished(), "finalize must assemble the data");
    assert_eq!(
        finalize_ok(&*sink, &up.handle, &receipts, None).await,
        blob,
        "a late part must not change the finished blob"
    );
    assert_read(&*sink, &up.handle, &up.data, "read after late parts").await;
    purge_ok(&*sink, &up.handle).await;
}

/// A part that arrives after `purge` is refused with [`SinkError::NotFound`]
/// and does not re-create the upload, nor does a part still streaming while
/// `purge` ran: nothing is readable, and `finalize` fails with `NotFound`.
pub async fn late_part_after_purge_is_refused(sink: Arc<dyn BlobSink>) {
    let up = Upload::begin(&*sink, 2, 10).await;
    let receipts = up.put_all(&*sink).await;
    let range = up.ranges()[1].clone();
    let bytes = up.data[usize_range(&range)].to_vec();

    let in_flight = InFlight::start(sink.clone(), &up.handle, 1, range.start, &bytes).await;
    purge_ok(&*sink, &up.handle).await;
    in_flight.finish().await;

    let spec = PartSpec {
        index: 1,
        offset: range.start,
        len: Some(range.end - range.start),
    };
    expect_not_found(
        sink.put_part(&up.handle, spec, body(&bytes)).await,
        "put_part after purge",
    );
    expect_not_found(
        sink.read(&up.handle).await,
        "read after late parts of a purged upload",
    );
    expect_not_found(
        sink.finalize(&up.handle, &[], compute(None)).await,
        "finalize (of no parts) after late parts of a purged upload",
    );
    expect_not_found(
        sink.finalize(&up.handle, &receipts, compute(None)).await,
        "finalize after late parts of a purged upload",
    );
    purge_ok(&*sink, &up.handle).await;
}

/// `purge` succeeds again on a purged upload, and removes an upload in any
/// stage: begun, with parts, finalized.
pub async fn purge_is_idempotent(sink: &dyn BlobSink) {
    let begun = Upload::begin(sink, 2, 11).await;
    let with_parts = Upload::begin(sink, 2, 12).await;
    with_parts.put_all(sink).await;
    let finalized = Upload::begin(sink, 2, 13).await;
    let receipts = finalized.put_all(sink).await;
    finalize_ok(sink, &finalized.handle, &receipts, None).await;
    for up in [&begun, &with_parts, &finalized] {
        for _ in 0..2 {
            purge_ok(sink, &up.handle).await;
        }
        expect_not_found(sink.read(&up.handle).await, "read after purge");
        expect_not_found(
            sink.finalize(&up.handle, &[], compute(None)).await,
            "finalize after purge",
        );
    }
}

/// `discard_part` of a part already discarded, of a part of a finalized
/// upload, and of a part of a purged upload succeeds.
pub async fn discard_of_a_gone_part_is_ok(sink: &dyn BlobSink) {
    let up = Upload::begin(sink, 2, 14).await;
    let receipts = up.put_all(sink).await;
    let extra = put_ok(
        sink,
        &up.handle,
        0,
        0,
        &up.data[usize_range(&up.ranges()[0])],
    )
    .await;
    for _ in 0..2 {
        ok(
            sink.discard_part(&up.handle, &extra.part).await,
            "discard_part (again)",
        );
    }
    finalize_ok(sink, &up.handle, &receipts, None).await;
    for r in &receipts {
        ok(
            sink.discard_part(&up.handle, &r.part).await,
            "discard_part after finalize",
        );
    }
    assert_read(
        sink,
        &up.handle,
        &up.data,
        "read after discarding parts of a finished blob",
    )
    .await;
    purge_ok(sink, &up.handle).await;
    for r in &receipts {
        ok(
            sink.discard_part(&up.handle, &r.part).await,
            "discard_part after purge",
        );
    }
}

/// An upload of 0 bytes, with no part, finalizes to a blob of size 0 with
/// the SHA-256 of empty input, with or without the expected digest, and
/// reads back empty.
pub async fn empty_upload_finalizes(sink: &dyn BlobSink) {
    let empty = FinishedBlob {
        size: 0,
        sha256: Sha256Digest::of(b""),
    };
    for expected in [None, Some(empty.sha256)] {
        let handle = begin_ok(sink, 0).await;
        let blob = finalize_ok(sink, &handle, &[], expected).await;
        assert_eq!(
            blob, empty,
            "an empty upload must finalize to an empty blob"
        );
        assert_read(sink, &handle, &[], "read of an empty blob").await;
        purge_ok(sink, &handle).await;
    }
}

/// `concatenate` publishes the finished blobs of its sources, in order, as
/// the upload's blob: their bytes one after the other, with their total size
/// and its SHA-256. Before that, a source that is not finalized (only begun,
/// or with parts only) makes it fail with [`SinkError::NotFound`], and an
/// expected digest the bytes do not have with
/// [`SinkError::DigestMismatch`]; neither publishes anything. Called again
/// it returns the same blob, even once the sources are purged; a late part
/// is refused, and the sources are left as they were.
pub async fn concatenate_joins_finished_blobs(sink: &dyn BlobSink) {
    let a = Upload::finalized(sink, 3, 20).await;
    let b = Upload::finalized(sink, 2, 21).await;
    let data = [a.data.as_slice(), b.data.as_slice()].concat();
    let joined = FinishedBlob {
        size: data.len() as u64,
        sha256: Sha256Digest::of(&data),
    };
    let target = begin_ok(sink, joined.size).await;
    let sources = [a.handle.clone(), b.handle.clone()];

    let with_parts = Upload::begin(sink, 2, 22).await;
    with_parts.put_all(sink).await;
    let begun = begin_ok(sink, 1).await;
    for unfinished in [&with_parts.handle, &begun] {
        expect_not_found(
            sink.concatenate(&target, &[a.handle.clone(), unfinished.clone()], None)
                .await,
            "concatenate of a source that is not finalized",
        );
        expect_not_found(
            sink.read(&target).await,
            "read after a concatenate of a source that is not finalized",
        );
    }
    let wrong = Sha256Digest::of(b"not the data");
    match sink.concatenate(&target, &sources, Some(wrong)).await {
        Err(SinkError::DigestMismatch { expected, actual }) => assert!(
            expected == wrong && actual == joined.sha256,
            "DigestMismatch of concatenate must name the expected ({wrong}) and actual ({}) \
             digests, got {expected} and {actual}",
            joined.sha256
        ),
        other => {
            panic!("concatenate with a wrong digest must fail with DigestMismatch, got {other:?}")
        }
    }
    expect_not_found(
        sink.read(&target).await,
        "read after a concatenate with a wrong digest",
    );

    let blob = ok(
        sink.concatenate(&target, &sources, Some(joined.sha256))
            .await,
        "concatenate",
    );
    assert_eq!(
        blob, joined,
        "concatenate must report the joined bytes' size and SHA-256"
    );
    assert_read(sink, &target, &data, "read after concatenate").await;
    let again = ok(
        sink.concatenate(&target, &sources, None).await,
        "concatenate again",
    );
    assert_eq!(again, joined, "concatenate again must return the same blob");
    expect_not_found(
        sink.put_part(
            &target,
            PartSpec {
                index: 0,
                offset: 0,
                len: None,
            },
            body(b"late"),
        )
        .await,
        "put_part after concatenate",
    );
    assert_read(sink, &a.handle, &a.data, "read of a concatenated source").await;
    assert_read(sink, &b.handle, &b.data, "read of a concatenated source").await;

    for handle in [&a.handle, &b.handle, &with_parts.handle, &begun] {
        purge_ok(sink, handle).await;
    }
    let after_purge = ok(
        sink.concatenate(&target, &sources, None).await,
        "concatenate again once the sources are purged",
    );
    assert_eq!(
        after_purge, joined,
        "concatenate again once the sources are purged must return the same blob"
    );
    assert_read(sink, &target, &data, "read once the sources are purged").await;
    purge_ok(sink, &target).await;
}

/// Several `concatenate` calls of one upload at once (a finalizer whose
/// lease another took over) are safe: every call reports the joined bytes'
/// size and SHA-256, and the blob read back is whole.
pub async fn concurrent_concatenate_agrees(sink: Arc<dyn BlobSink>) {
    let a = Upload::finalized(&*sink, 4, 23).await;
    let b = Upload::finalized(&*sink, 3, 24).await;
    let data = [a.data.as_slice(), b.data.as_slice()].concat();
    let joined = FinishedBlob {
        size: data.len() as u64,
        sha256: Sha256Digest::of(&data),
    };
    let target = begin_ok(&*sink, joined.size).await;
    let sources = Arc::new([a.handle.clone(), b.handle.clone()]);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (sink, target, sources) = (sink.clone(), target.clone(), sources.clone());
            tokio::spawn(async move { sink.concatenate(&target, &*sources, None).await })
        })
        .collect();
    for task in tasks {
        let blob = ok(join(task).await, "a concurrent concatenate");
        assert_eq!(
            blob, joined,
            "a concurrent concatenate must report the joined bytes' size and SHA-256"
        );
    }
    assert_read(
        &*sink,
        &target,
        &data,
        "read after concurrent concatenate calls",
    )
    .await;
    for handle in [&a.handle, &b.handle, &target] {
        purge_ok(&*sink, handle).await;
    }
}

/// One upload the suite makes: its handle, its data and its part size.
#[derive(Debug)]
struct Upload {
    handle: UploadHandle,
    data: Vec<u8>,
    part_size: u64,
}

impl Upload {
    /// Begins an upload of about `parts` parts (fewer if the sink takes
    /// fewer), the last one shorter, of data made from `seed`.
    async fn begin(sink: &dyn BlobSink, parts: u64, seed: u64) -> Upload {
        let caps = sink.capabilities();
        let min = caps.min_part_size.max(1);
        let part_size = PREFERRED_PART.clamp(min, caps.max_part_size.max(min));
        let parts = parts.min(caps.max_parts).max(1);
        let size = part_size * (parts - 1) + part_size.div_ceil(2);
        Upload {
            handle: begin_ok(sink, size).await,
            data: pattern(size as usize, seed),
            part_size,
        }
    }

    /// An upload as [`begin`](Upload::begin) makes it, its parts put and
    /// finalized.
    async fn finalized(sink: &dyn BlobSink, parts: u64, seed: u64) -> Upload {
        let up = Upload::begin(sink, parts, seed).await;
        let receipts = up.put_all(sink).await;
        finalize_ok(sink, &up.handle, &receipts, None).await;
        up
    }

    fn ranges(&self) -> Vec<Range<u64>> {
        let size = self.data.len() as u64;
        (0..size.div_ceil(self.part_size))
            .map(|i| i * self.part_size..((i + 1) * self.part_size).min(size))
            .collect()
    }

    /// Puts every part in order.
    async fn put_all(&self, sink: &dyn BlobSink) -> Vec<PartReceipt> {
        let mut receipts = Vec::new();
        for (index, range) in self.ranges().into_iter().enumerate() {
            let bytes = &self.data[usize_range(&range)];
            receipts.push(put_ok(sink, &self.handle, index as u64, range.start, bytes).await);
        }
        receipts
    }

    fn finished(&self) -> FinishedBlob {
        FinishedBlob {
            size: self.data.len() as u64,
            sha256: Sha256Digest::of(&self.data),
        }
    }
}

/// A `put_part` whose body stops half-way until [`InFlight::finish`].
#[derive(Debug)]
struct InFlight {
    release: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), SinkError>>,
}

impl InFlight {
    /// Starts the part and returns once the sink has read its first bytes
    /// (or given up on the body).
    async fn start(
        sink: Arc<dyn BlobSink>,
        handle: &UploadHandle,
        index: u64,
        offset: u64,
        bytes: &[u8],
    ) -> InFlight {
        let (started_tx, started) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let mut tail = Bytes::copy_from_slice(bytes);
        let head = tail.split_to(tail.len() / 2);
        let spec = PartSpec {
            index,
            offset,
            len: Some(bytes.len() as u64),
        };
        let body = futures::stream::iter([Ok(head)])
            .chain(futures::stream::once(async move {
                let _ = started_tx.send(());
                let _ = released.await;
                Ok(tail)
            }))
            .boxed();
        let handle = handle.clone();
        let task = tokio::spawn(async move { sink.put_part(&handle, spec, body).await.map(drop) });
        let _ = started.await;
        InFlight { release, task }
    }

    /// Lets the body end and waits for `put_part` to return. Its result is
    /// the sink's to choose; what counts is that it changes nothing.
    async fn finish(self) {
        let _ = self.release.send(());
        let _ = join(self.task).await;
    }
}

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut data);
    data
}

/// `bytes` as a stream of several items of uneven sizes, an empty one among
/// them.
fn body(bytes: &[u8]) -> ByteStream {
    let mut rest = Bytes::copy_from_slice(bytes);
    let mut items = Vec::new();
    for size in [1usize, 0, 7, 1021, 65_536].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        items.push(Ok(rest.split_to(size.min(rest.len()))));
    }
    futures::stream::iter(items).boxed()
}

fn usize_range(range: &Range<u64>) -> Range<usize> {
    range.start as usize..range.end as usize
}

async fn begin_ok(sink: &dyn BlobSink, size: u64) -> UploadHandle {
    ok(sink.begin(&SessionId::random(), Some(size)).await, "begin")
}

async fn put_ok(
    sink: &dyn BlobSink,
    handle: &UploadHandle,
    index: u64,
    offset: u64,
    bytes: &[u8],
) -> PartReceipt {
    let spec = PartSpec {
        index,
        offset,
        len: Some(bytes.len() as u64),
    };
    let part = ok(sink.put_part(handle, spec, body(bytes)).await, "put_part");
    PartReceipt {
        offset,
        len: bytes.len() as u64,
        sha256: Some(Sha256Digest::of(bytes)),
        part,
    }
}

async fn finalize_ok(
    sink: &dyn BlobSink,
    handle: &UploadHandle,
    parts: &[PartReceipt],
    expected: Option<Sha256Digest>,
) -> FinishedBlob {
    ok(
        sink.finalize(handle, parts, compute(expected)).await,
        "finalize",
    )
}

/// The digest argument of a `finalize` that computes the digest.
fn compute(expected: Option<Sha256Digest>) -> BlobDigest {
    BlobDigest::Compute { expected }
}

async fn purge_ok(sink: &dyn BlobSink, handle: &UploadHandle) {
    ok(sink.purge(handle).await, "purge");
}

/// Reads one part back and compares it with `data`.
async fn assert_part(
    sink: &dyn BlobSink,
    handle: &UploadHandle,
    receipt: &PartReceipt,
    data: &[u8],
    what: &str,
) {
    let stream = ok(sink.read_part(handle, receipt).await, what);
    assert_bytes(stream, data, what).await;
}

/// Reads the finished blob back and compares it with `data`.
async fn assert_read(sink: &dyn BlobSink, handle: &UploadHandle, data: &[u8], what: &str) {
    let stream = ok(sink.read(handle).await, what);
    assert_bytes(stream, data, what).await;
}

/// Collects `stream` and compares it with `data`.
async fn assert_bytes(mut stream: ByteStream, data: &[u8], what: &str) {
    let mut read = Vec::new();
    while let Some(item) = stream.next().await {
        read.extend_from_slice(&item.unwrap_or_else(|e| panic!("{what}: the stream failed: {e}")));
    }
    assert!(
        read == data,
        "{what} must return exactly the bytes stored: got {} bytes (SHA-256 {}), expected {} (SHA-256 {})",
        read.len(),
        Sha256Digest::of(&read),
        data.len(),
        Sha256Digest::of(data)
    );
}

fn ok<T>(result: Result<T, SinkError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

fn expect_not_found<T>(result: Result<T, SinkError>, what: &str) {
    match result {
        Err(SinkError::NotFound) => {}
        Err(e) => panic!("{what} must fail with NotFound, got {e:?}"),
        Ok(_) => panic!("{what} must fail with NotFound, it succeeded"),
    }
}
