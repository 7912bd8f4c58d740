//! Faults at complete, abort and the sweep: a failed finalize reopens the
//! session, a lost completion record is recovered, a failed purge is
//! finished by the sweep.

use std::time::Duration;

use resumable::conformance::faults::{SinkFault, SinkOp, StoreFault, StoreOp};
use resumable::error::Operation;
use resumable::{Error, ErrorKind, StateKind, SweepReport};

use crate::rig::*;

on_both_backends!(
    failing_finalize_reopens_the_session,
    finalize_io_failure_is_internal_and_reopens,
    lost_reply_from_finalize_completes_on_retry,
    store_unavailable_recording_completion,
    lost_reply_recording_completion_is_recovered,
    failing_purge_on_abort_is_finished_by_the_sweep,
    failing_purge_on_expiry_is_finished_by_the_sweep,
    store_unavailable_marking_an_abort_purged,
    a_long_finalize_keeps_its_lease,
);

/// The sink cannot assemble the blob: 503, retryable; the session is open
/// again with every chunk, nothing is readable, and complete succeeds later.
async fn failing_finalize_reopens_the_session(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 40).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    rig.sink.fail_finalize(SinkFault::Unavailable);
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Unavailable,
        503,
        "sink-failure",
        true,
    );
    let status = rig.status(info.id).await;
    rig.assert_holds(&status, &Vec::from_iter(0..CHUNKS));
    assert_eq!(status.blob, None);
    assert!(matches!(
        rig.engine.read(&rig.me, info.id).await,
        Err(Error::InvalidState {
            state: StateKind::Open,
            ..
        })
    ));
    rig.resume_and_complete(&info, &source).await;
    assert_eq!(rig.sink.calls(SinkOp::Finalize), 2);
}

/// An I/O failure assembling the blob: 500, not retryable as such, and the
/// session is reopened all the same, so a later complete succeeds.
async fn finalize_io_failure_is_internal_and_reopens(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 41).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    rig.sink.fail_finalize(SinkFault::Io);
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Internal,
        500,
        "sink-failure",
        false,
    );
    rig.assert_holds(&rig.status(info.id).await, &Vec::from_iter(0..CHUNKS));
    rig.resume_and_complete(&info, &source).await;
}

/// The sink publishes the blob but its reply is lost: 503; the session is
/// reopened, and complete again finds the published blob (finalize is
/// idempotent), which is exactly the source.
async fn lost_reply_from_finalize_completes_on_retry(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 42).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    rig.sink
        .lose_reply_next(SinkOp::Finalize, SinkFault::Unavailable, 1);
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Unavailable,
        503,
        "sink-failure",
        true,
    );
    assert_eq!(rig.status(info.id).await.state, StateKind::Open);
    let attachment = rig.complete(info.id).await.expect("complete");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}

/// The blob is assembled but the store cannot record it: 503; the session
/// stays finalizing (chunks are refused, complete answers 409 while the
/// finalize lease runs), and once the lease ran out complete succeeds with
/// the same blob.
async fn store_unavailable_recording_completion(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 43).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    // The first update takes the session into finalizing, the second
    // records the blob.
    rig.store
        .skip_next(StoreOp::Update, 1)
        .fail_next(StoreOp::Update, StoreFault::Unavailable, 1);
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    assert_eq!(rig.store.injected(StoreOp::Update), 1);
    assert_eq!(rig.status(info.id).await.state, StateKind::Finalizing);
    assert!(matches!(
        rig.send(&info, &source, 0).await,
        Err(Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::UploadChunk,
            ..
        })
    ));
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Conflict,
        409,
        "invalid-session-state",
        false,
    );
    rig.clock.advance(timeouts().finalize_lease);
    let attachment = rig.complete(info.id).await.expect("complete");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}

/// The store records the completion but the reply is lost: the engine finds
/// the completion recorded with its blob and answers success.
async fn lost_reply_recording_completion_is_recovered(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 44).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    rig.store.skip_next(StoreOp::Update, 1).lose_reply_next(
        StoreOp::Update,
        StoreFault::Unavailable,
        1,
    );
    let attachment = rig.complete(info.id).await.expect("complete");
    assert_eq!(rig.store.injected(StoreOp::Update), 1);
    assert_eq!(attachment.state, StateKind::Completed);
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}

/// The sink cannot purge an aborted upload, at the abort and again at the
/// first sweep: the abort still succeeds (the session is gone for the
/// client), the first sweep counts the failure, the second purges, and
/// nothing is left.
async fn failing_purge_on_abort_is_finished_by_the_sweep(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 45).await;
    rig.send_each(&info, &source, 0..4).await;
    rig.sink.fail_next(SinkOp::Purge, SinkFault::Unavailable, 2);
    rig.engine.abort(&rig.me, info.id).await.expect("abort");
    assert!(matches!(
        rig.engine.status(&rig.me, info.id).await,
        Err(Error::SessionGone {
            state: StateKind::Aborted,
            ..
        })
    ));
    assert_eq!(rig.sink_uploads(), 1, "the bytes are still there");

    let report = rig.engine.sweep().await.expect("the sweep");
    let failed = SweepReport {
        failed: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, failed);
    assert_eq!(rig.sink_uploads(), 1);

    let report = rig.engine.sweep().await.expect("the sweep");
    let purged = SweepReport {
        purged: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, purged);
    assert_eq!(rig.sink_uploads(), 0);
    assert_eq!(rig.sink.injected(SinkOp::Purge), 2);
    // A late chunk resurrects nothing.
    assert!(matches!(
        rig.send(&info, &source, 5).await,
        Err(Error::SessionGone {
            state: StateKind::Aborted,
            ..
        })
    ));
    assert_eq!(
        rig.engine.sweep().await.expect("the sweep"),
        SweepReport::default()
    );
    rig.clock.advance(timeouts().tombstone_retention);
    assert_eq!(rig.engine.sweep().await.expect("the sweep").forgotten, 1);
    assert_eq!(rig.sink_uploads(), 0);
    rig.assert_no_leftovers();
}

/// The sink cannot purge an abandoned upload when the sweep expires it: the
/// sweep counts it expired and failed, and the next one purges it.
async fn failing_purge_on_expiry_is_finished_by_the_sweep(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 46).await;
    rig.send_each(&info, &source, [0, 1, 9]).await;
    rig.clock
        .advance(timeouts().session_timeout + Duration::from_secs(1));
    rig.sink.fail_purge(SinkFault::Io);
    let report = rig.engine.sweep().await.expect("the sweep");
    let failed = SweepReport {
        expired: 1,
        failed: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, failed);
    assert_eq!(rig.sink_uploads(), 1);
    let report = rig.engine.sweep().await.expect("the sweep");
    let purged = SweepReport {
        purged: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, purged);
    assert_eq!(rig.sink_uploads(), 0);
    rig.assert_no_leftovers();
}

/// The abort purges the bytes but cannot record it: the abort succeeds, and
/// the sweep purges again (idempotently) and records it.
async fn store_unavailable_marking_an_abort_purged(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 47).await;
    rig.send_each(&info, &source, 0..2).await;
    rig.store
        .skip_next(StoreOp::Update, 1)
        .fail_next(StoreOp::Update, StoreFault::Unavailable, 1);
    rig.engine.abort(&rig.me, info.id).await.expect("abort");
    assert_eq!(rig.store.injected(StoreOp::Update), 1);
    assert_eq!(rig.sink_uploads(), 0, "the bytes are purged");
    let report = rig.engine.sweep().await.expect("the sweep");
    let purged = SweepReport {
        purged: 1,
        ..SweepReport::default()
    };
    assert_eq!(report, purged, "the sweep records the purge");
    assert_eq!(
        rig.engine.sweep().await.expect("the sweep"),
        SweepReport::default()
    );
    rig.assert_no_leftovers();
}

/// A finalize that runs longer than the lease renews it while it works: a
/// second complete during it is told the session is finalizing (409) rather
/// than taking it over, and the first complete then succeeds.
async fn a_long_finalize_keeps_its_lease(backend: Backend) {
    let lease = Duration::from_millis(300);
    let config = resumable::EngineConfig {
        timeouts: resumable::machine::Timeouts {
            finalize_lease: lease,
            ..timeouts()
        },
        ..config()
    };
    let rig = Rig::with_config(backend, config);
    let info = rig.start(SIZE).await;
    let source = data(SIZE, 47);
    rig.send_each(&info, &source, 0..CHUNKS).await;
    let hold = rig.sink.hold_next(SinkOp::Finalize);
    let engine = rig.engine.clone();
    let me = rig.me.clone();
    let first = tokio::spawn(async move { engine.complete(&me, info.id).await });
    reached(&hold).await;
    // Three leases pass on the engine's clock; between the steps the
    // finalizer has real time to renew (it does every lease / 3).
    for _ in 0..3 {
        rig.clock.advance(lease);
        tokio::time::sleep(lease * 2).await;
    }
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Conflict,
        409,
        "invalid-session-state",
        false,
    );
    assert_eq!(rig.sink.calls(SinkOp::Finalize), 1, "no takeover");
    hold.release();
    let attachment = joined(first).await.expect("the first complete succeeds");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}
