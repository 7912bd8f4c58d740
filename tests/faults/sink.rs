//! Faults while a chunk's bytes are stored: a full disk, a short write, a
//! sink that acknowledges a short part, a lost reply, a failing client
//! body. None of these ever counts a byte of the chunk, and the upload
//! resumes and completes with exactly the source's bytes.

use resumable::conformance::faults::{SinkFault, SinkOp};
use resumable::{ChunkOptions, Error, ErrorKind, SinkError};

use crate::rig::*;

on_both_backends!(
    disk_full_mid_chunk,
    short_write_with_an_io_error,
    short_write_at_any_byte_is_never_counted,
    sink_acknowledging_a_short_part_is_caught,
    sink_unavailable_before_the_body_is_read,
    lost_reply_storing_a_part_leaves_nothing_after_completion,
    client_body_failing_mid_chunk,
);

/// The disk fills up 400 bytes into chunk 2: 503 `storage-full`, retryable;
/// chunks 0 and 1 stay, nothing of chunk 2 is counted or kept, and a retry
/// once there is room is taken.
async fn disk_full_mid_chunk(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 30).await;
    rig.send_each(&info, &source, 0..2).await;
    rig.sink.disk_full_after_bytes(400);
    let error = assert_fails(
        rig.send(&info, &source, 2).await,
        ErrorKind::Unavailable,
        503,
        "storage-full",
        true,
    );
    assert!(matches!(error, Error::Sink(SinkError::StorageFull)));
    assert_eq!(rig.sink.injected(SinkOp::PutPart), 1, "the write was cut");
    rig.assert_holds(&rig.status(info.id).await, &[0, 1]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 2, "no half-written part is kept");
    }
    let retried = rig.send(&info, &source, 2).await.expect("the retry");
    assert!(!retried.replaced);
    rig.resume_and_complete(&info, &source).await;
}

/// A write fails 700 bytes into the chunk with an I/O error: 500, not
/// retryable, nothing counted or kept.
async fn short_write_with_an_io_error(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 31).await;
    rig.send_each(&info, &source, [0, 10]).await;
    rig.sink.fail_put_part_after_bytes(700, SinkFault::Io);
    assert_fails(
        rig.send(&info, &source, 4).await,
        ErrorKind::Internal,
        500,
        "sink-failure",
        false,
    );
    rig.assert_holds(&rig.status(info.id).await, &[0, 10]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 2, "no half-written part is kept");
    }
    rig.resume_and_complete(&info, &source).await;
}

/// Short writes cut at every interesting byte of a chunk (none, one, at and
/// around the body's piece boundaries, all but one), of a full chunk and of
/// the shorter last one: never counted, never kept.
async fn short_write_at_any_byte_is_never_counted(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 32).await;
    rig.send_each(&info, &source, [0]).await;
    for (index, len) in [(5u64, 1000u64), (10, 500)] {
        let third = len / 3;
        for cut in [0, 1, third - 1, third, third + 1, 2 * third, len - 1] {
            rig.sink.disk_full_after_bytes(cut);
            let result = rig.send(&info, &source, index).await;
            assert!(
                matches!(result, Err(Error::Sink(SinkError::StorageFull))),
                "chunk {index} cut at {cut}: {result:?}"
            );
            rig.assert_holds(&rig.status(info.id).await, &[0]);
            if let Some(parts) = rig.part_files(info.id) {
                assert_eq!(parts, 1, "chunk {index} cut at {cut} left a part");
            }
        }
    }
    assert_eq!(rig.sink.injected(SinkOp::PutPart), 14);
    // A limit the body stays within cuts nothing.
    rig.sink.disk_full_after_bytes(CHUNK);
    rig.send(&info, &source, 5)
        .await
        .expect("a chunk that fits");
    assert_eq!(rig.sink.injected(SinkOp::PutPart), 14);
    rig.resume_and_complete(&info, &source).await;
}

/// The sink stops reading 600 bytes into the chunk and acknowledges a short
/// part: the engine notices the body was not read to its end, discards the
/// part and answers 500; nothing is counted.
async fn sink_acknowledging_a_short_part_is_caught(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 33).await;
    rig.send_each(&info, &source, 0..3).await;
    rig.sink.short_part_after_bytes(600);
    assert_fails(
        rig.send(&info, &source, 3).await,
        ErrorKind::Internal,
        500,
        "sink-failure",
        false,
    );
    assert_eq!(rig.sink.injected(SinkOp::PutPart), 1);
    assert_eq!(rig.sink.calls(SinkOp::DiscardPart), 1, "the short part");
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 3, "the short part is discarded");
    }
    rig.resume_and_complete(&info, &source).await;
}

/// The sink is unreachable: 503, retryable, before a byte is stored.
async fn sink_unavailable_before_the_body_is_read(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 34).await;
    rig.send_each(&info, &source, [3]).await;
    rig.sink
        .fail_next(SinkOp::PutPart, SinkFault::Unavailable, 2);
    for _ in 0..2 {
        assert_fails(
            rig.send(&info, &source, 4).await,
            ErrorKind::Unavailable,
            503,
            "sink-failure",
            true,
        );
    }
    rig.assert_holds(&rig.status(info.id).await, &[3]);
    rig.resume_and_complete(&info, &source).await;
}

/// The sink stores the part but its reply is lost: 503; the chunk is not
/// counted, the orphaned part stays until completion removes every part.
async fn lost_reply_storing_a_part_leaves_nothing_after_completion(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 35).await;
    rig.send_each(&info, &source, [0]).await;
    rig.sink
        .lose_reply_next(SinkOp::PutPart, SinkFault::Unavailable, 1);
    assert_fails(
        rig.send(&info, &source, 1).await,
        ErrorKind::Unavailable,
        503,
        "sink-failure",
        true,
    );
    rig.assert_holds(&rig.status(info.id).await, &[0]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 2, "the stored but unacknowledged part");
    }
    rig.resume_and_complete(&info, &source).await;
}

/// The client's body fails 500 bytes into the chunk: 400, retryable (the
/// same request with a whole body succeeds); nothing counted or kept.
async fn client_body_failing_mid_chunk(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 36).await;
    rig.send_each(&info, &source, [0]).await;
    let bytes = &source[chunk(1, SIZE)];
    let result = rig
        .engine
        .upload_chunk(
            &rig.me,
            info.id,
            1,
            failing_body(bytes, 500),
            ChunkOptions::default(),
        )
        .await;
    let error = assert_fails(
        result,
        ErrorKind::BadRequest,
        400,
        "request-body-failed",
        true,
    );
    assert!(matches!(error, Error::Body { .. }));
    rig.assert_holds(&rig.status(info.id).await, &[0]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 1, "the cut-off body is not kept");
    }
    rig.resume_and_complete(&info, &source).await;
}
