//! One upload from start to finish, and what a chunk or a file that is
//! wrong does to it: lengths, chunk and file checksums, retries, gaps.

use std::time::Duration;

use bytes::Bytes;
use resumable::error::{BodyLength, DigestScope};
use resumable::{ChunkOptions, Error, Owner, StateKind};

use crate::harness::*;

on_both_backends!(
    full_upload_out_of_order_and_in_parallel,
    a_retried_chunk_replaces_the_first_upload,
    a_body_too_long_or_too_short_is_refused_and_not_recorded,
    a_chunk_checksum_mismatch_is_refused_then_a_correct_resend_works,
    a_file_checksum_mismatch_reopens_the_session_for_repair,
    complete_with_missing_chunks_names_them,
    an_empty_file_completes_without_chunks,
);

async fn full_upload_out_of_order_and_in_parallel(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 1).await;
    assert_eq!((info.chunk_size, info.total_chunks), (CHUNK, 11));
    assert_eq!(info.expires_at, t0() + timeouts().session_timeout);

    // Every chunk at once, from separate tasks, in a scrambled order.
    let order = [7, 2, 10, 0, 5, 9, 1, 8, 3, 6, 4];
    let tasks: Vec<_> = order
        .iter()
        .map(|&index| {
            let options = with_sha(sha256(&source[chunk(&info, SIZE, index)]));
            h.spawn_send(&me, &info, &source, index, options)
        })
        .collect();
    for (task, index) in tasks.into_iter().zip(order) {
        let receipt = task.await.expect("the task").expect("the chunk");
        let range = chunk(&info, SIZE, index);
        assert_eq!(receipt.index, index);
        assert_eq!(receipt.offset, range.start as u64);
        assert_eq!(receipt.len, range.len() as u64);
        assert_eq!(receipt.sha256, Some(sha256(&source[range])), "checked");
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
    assert_eq!(attachment.file.name.as_ref().unwrap().as_str(), "data.bin");
    assert_eq!(h.read_back(&me, info.id).await, source);

    // Complete is idempotent; claim makes the upload permanent.
    assert_eq!(h.engine.complete(&me, info.id).await.unwrap(), attachment);
    let claimed = h.engine.claim(&me, info.id).await.unwrap();
    assert_eq!((claimed.state, claimed.reap_at), (StateKind::Claimed, None));
    assert_eq!(claimed.blob, attachment.blob);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Claimed);
    assert_eq!(status.received_chunks, (0..11).collect::<Vec<_>>());
    assert_eq!(h.read_back(&me, info.id).await, source);
}

async fn a_retried_chunk_replaces_the_first_upload(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 2).await;
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
    assert_eq!(r.sha256, None, "no digest declared, none computed");
    let r = h
        .engine
        .upload_chunk(&me, info.id, 4, body(good), with_sha(sha256(good)))
        .await
        .unwrap();
    assert!(r.replaced);
    assert_eq!(r.sha256, Some(sha256(good)));
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
    let (h, me, source, info) = Harness::with_upload(backend, 3).await;
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
    let (h, me, source, info) = Harness::with_upload(backend, 4).await;
    let good = source[chunk(&info, SIZE, 2)].to_vec();
    let bad = flipped(&good);

    // The right bytes with a wrong checksum, then corrupted bytes with the
    // right checksum.
    for (sent, claimed) in [(&good, &bad), (&bad, &good)] {
        let r = h
            .engine
            .upload_chunk(&me, info.id, 2, body(sent), with_sha(sha256(claimed)))
            .await;
        assert_err!(
            r,
            Error::ChecksumMismatch { scope: DigestScope::Chunk(2), expected, actual }
                if expected == sha256(claimed).into() && actual == sha256(sent).into()
        );
    }
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
    assert_eq!(r.sha256, Some(sha256(&good)));
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
            if expected == sha256(&source).into() && actual == sha256(&corrupted).into()
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
    let (h, me, source, info) = Harness::with_upload(backend, 6).await;
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

/// A sink that consumes its parts on assembly (as S3 does) and cannot read
/// them back cannot repair an upload whose whole-file checksum it found
/// wrong: the engine ends the upload and deletes its bytes instead of
/// reopening it. The chunks arrive out of order, so the engine's running
/// digest does not cover the file and the sink computes it.
#[tokio::test]
async fn a_file_checksum_mismatch_ends_the_upload_when_the_sink_cannot_keep_its_parts() {
    use resumable::sink::{MemorySink, SinkCapabilities};
    use resumable::store::MemoryStore;
    let sink = std::sync::Arc::new(MemorySink::with_capabilities(SinkCapabilities {
        keeps_parts_on_digest_mismatch: false,
        readable_parts: false,
        ..SinkCapabilities::UNLIMITED
    }));
    let engine = resumable::Engine::builder(MemoryStore::new(), sink.clone())
        .chunk_size(4)
        .build();
    let me = Owner::new("alice");
    let source = b"hello world!".to_vec();
    let wrong = sha256(b"something else");
    let info = engine
        .initiate(&me, new_upload("f.bin", 12, Some(wrong)))
        .await
        .unwrap();
    for index in [1, 2, 0] {
        let bytes = source[index as usize * 4..(index as usize + 1) * 4].to_vec();
        engine
            .upload_chunk(&me, info.id, index, body(&bytes), ChunkOptions::default())
            .await
            .unwrap();
    }
    assert_err!(
        engine.complete(&me, info.id).await,
        Error::ChecksumMismatch {
            scope: DigestScope::File,
            ..
        }
    );
    assert_err!(
        engine.status(&me, info.id).await,
        Error::SessionGone {
            state: StateKind::Aborted,
            ..
        }
    );
    assert_eq!(
        sink.upload_count(),
        0,
        "every byte of the ended upload is deleted"
    );
}
