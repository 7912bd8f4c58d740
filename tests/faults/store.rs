//! Session store faults under chunk uploads, session creation and the sweep:
//! the client is told whether to retry, and no chunk acknowledged before
//! the fault is lost.

use std::time::Duration;

use resumable::conformance::faults::{SinkFault, SinkOp, StoreFault, StoreOp};
use resumable::{Error, ErrorKind, StateKind, StoreError, SweepReport};

use crate::rig::*;

on_both_backends!(
    store_unavailable_recording_a_chunk,
    store_backend_failure_recording_a_chunk,
    store_unavailable_loading_refuses_the_chunk_unread,
    lost_reply_recording_a_chunk_keeps_it_recorded,
    lost_reply_recording_a_chunk_then_resent,
    store_unavailable_creating_a_session_leaves_no_upload,
    sink_unavailable_beginning_an_upload_stores_no_session,
    store_unavailable_in_the_sweep_is_retried_by_the_next,
);

/// The store cannot record chunk 3: 503, retryable; chunks 0 to 2 stay
/// recorded, chunk 3 is not, and a retry of it is taken as a first receipt.
async fn store_unavailable_recording_a_chunk(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 1).await;
    rig.send_each(&info, &source, 0..3).await;
    rig.store
        .fail_next(StoreOp::Update, StoreFault::Unavailable, 1);
    let error = assert_fails(
        rig.send(&info, &source, 3).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    assert!(matches!(error, Error::Store(StoreError::Unavailable(_))));
    assert_eq!(rig.store.injected(StoreOp::Update), 1);
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2]);

    let retried = rig.send(&info, &source, 3).await.expect("the retry");
    assert!(!retried.replaced, "the failed attempt was never recorded");
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2, 3]);
    rig.resume_and_complete(&info, &source).await;
}

/// A store failure a retry cannot fix: 500, not retryable; the session is
/// unharmed and a later request still succeeds.
async fn store_backend_failure_recording_a_chunk(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 2).await;
    rig.send_each(&info, &source, [0, 5]).await;
    rig.store.fail_next(StoreOp::Update, StoreFault::Backend, 1);
    assert_fails(
        rig.send(&info, &source, 7).await,
        ErrorKind::Internal,
        500,
        "store-failure",
        false,
    );
    rig.assert_holds(&rig.status(info.id).await, &[0, 5]);
    rig.resume_and_complete(&info, &source).await;
}

/// The session cannot be loaded: the chunk is refused before a byte of it
/// is read or stored.
async fn store_unavailable_loading_refuses_the_chunk_unread(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 3).await;
    rig.send_each(&info, &source, [0]).await;
    let puts = rig.sink.calls(SinkOp::PutPart);
    rig.store
        .fail_next(StoreOp::Load, StoreFault::Unavailable, 1);
    assert_fails(
        rig.send(&info, &source, 1).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    assert_eq!(rig.sink.calls(SinkOp::PutPart), puts, "no part was written");
    assert_eq!(rig.part_files(info.id).unwrap_or(1), 1);
    rig.assert_holds(&rig.status(info.id).await, &[0]);
    rig.resume_and_complete(&info, &source).await;
}

/// The store records chunk 4 but the reply is lost: the client is told to
/// retry, yet the chunk is recorded, and its bytes must still be there: the
/// upload completes without sending it again.
async fn lost_reply_recording_a_chunk_keeps_it_recorded(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 4).await;
    rig.send_each(&info, &source, 0..4).await;
    rig.store
        .lose_reply_next(StoreOp::Update, StoreFault::Unavailable, 1);
    assert_fails(
        rig.send(&info, &source, 4).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    assert_eq!(rig.store.injected(StoreOp::Update), 1);
    // The record took effect: the status says chunk 4 is in.
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2, 3, 4]);
    // A client resuming from the status sends only the missing chunks.
    rig.resume_and_complete(&info, &source).await;
}

/// The same lost reply, and the client sends the chunk again as told: the
/// retry replaces the recorded attempt, whose part is discarded.
async fn lost_reply_recording_a_chunk_then_resent(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 5).await;
    rig.send_each(&info, &source, 0..2).await;
    rig.store
        .lose_reply_next(StoreOp::Update, StoreFault::Unavailable, 1);
    assert!(rig.send(&info, &source, 2).await.is_err());
    let retried = rig.send(&info, &source, 2).await.expect("the retry");
    assert!(retried.replaced, "the lost-reply attempt was recorded");
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 3, "the superseded part is discarded");
    }
    rig.resume_and_complete(&info, &source).await;
}

/// The session cannot be stored: initiate answers 503, and what the sink
/// began for it is purged; a retry starts an upload that completes.
async fn store_unavailable_creating_a_session_leaves_no_upload(backend: Backend) {
    let rig = Rig::new(backend);
    rig.store
        .fail_next(StoreOp::Create, StoreFault::Unavailable, 1);
    assert_fails(
        rig.initiate(SIZE).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    assert_eq!(rig.sink.calls(SinkOp::Begin), 1);
    assert_eq!(rig.sink.calls(SinkOp::Purge), 1);
    assert_eq!(rig.sink_uploads(), 0, "the begun upload is purged");

    let info = rig.start(SIZE).await;
    let source = data(SIZE, 6);
    rig.resume_and_complete(&info, &source).await;
    assert_eq!(rig.sink_uploads(), 1);
}

/// The sink cannot begin an upload: initiate answers 503 and no session is
/// stored.
async fn sink_unavailable_beginning_an_upload_stores_no_session(backend: Backend) {
    let rig = Rig::new(backend);
    rig.sink.fail_next(SinkOp::Begin, SinkFault::Unavailable, 1);
    assert_fails(
        rig.initiate(SIZE).await,
        ErrorKind::Unavailable,
        503,
        "sink-failure",
        true,
    );
    assert_eq!(rig.store.calls(StoreOp::Create), 0, "no session is stored");
    assert_eq!(rig.sink_uploads(), 0);
    let info = rig.start(SIZE).await;
    rig.resume_and_complete(&info, &data(SIZE, 7)).await;
}

/// The store fails under the sweep, first listing the due sessions, then
/// loading one: the first sweep fails, the second reports the failure, and
/// the third expires the abandoned session and purges its bytes.
async fn store_unavailable_in_the_sweep_is_retried_by_the_next(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 8).await;
    rig.send_each(&info, &source, 0..3).await;
    rig.clock.advance(timeouts().session_timeout);
    rig.store
        .fail_next(StoreOp::Due, StoreFault::Unavailable, 1);
    assert_fails(
        rig.engine.sweep().await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    rig.store
        .fail_next(StoreOp::Load, StoreFault::Unavailable, 1);
    let report = rig.engine.sweep().await.expect("the sweep");
    let failed = SweepReport {
        failed: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, failed);
    assert_eq!(rig.sink_uploads(), 1, "nothing purged yet");

    let report = rig.engine.sweep().await.expect("the sweep");
    let done = SweepReport {
        expired: 1,
        purged: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, done);
    assert_eq!(rig.sink_uploads(), 0);
    let gone = rig.engine.status(&rig.me, info.id).await;
    assert!(matches!(
        gone,
        Err(Error::SessionGone {
            state: StateKind::Expired,
            ..
        })
    ));
    rig.clock.advance(timeouts().tombstone_retention);
    assert_eq!(rig.engine.sweep().await.expect("the sweep").forgotten, 1);
    rig.assert_no_leftovers();
}

/// A record that does not decode: 500, not retryable, and nothing else
/// changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_is_an_internal_error() {
    let (rig, source, info) = Rig::with_upload(Backend::Memory, 9).await;
    rig.send_each(&info, &source, [0]).await;
    rig.store.fail_next(StoreOp::Load, StoreFault::Corrupt, 1);
    assert_fails(
        rig.engine.status(&rig.me, info.id).await,
        ErrorKind::Internal,
        500,
        "store-failure",
        false,
    );
    rig.assert_holds(&rig.status(info.id).await, &[0]);
    rig.resume_and_complete(&info, &source).await;
}

/// A slow store delays, and does not change, the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_store_changes_nothing() {
    let (rig, source, info) = Rig::with_upload(Backend::Fs, 10).await;
    rig.store
        .delay(StoreOp::Load, Duration::from_millis(2))
        .delay(StoreOp::Update, Duration::from_millis(2));
    rig.resume_and_complete(&info, &source).await;
    assert!(rig.store.calls(StoreOp::Update) > CHUNKS);
    assert_eq!(rig.store.injected(StoreOp::Update), 0);
}
