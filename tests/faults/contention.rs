//! Compare-and-swap conflict storms: retried transparently up to the
//! engine's limit, then answered with `Contention` (503, retryable), with
//! nothing recorded and nothing left behind.

use resumable::conformance::faults::{SinkOp, StoreFault, StoreOp};
use resumable::{Error, ErrorKind};

use crate::rig::*;

on_both_backends!(
    conflict_storm_within_the_limit_is_retried_transparently,
    conflict_storm_past_the_limit_is_contention,
);

/// As many conflicts as the engine retries: the chunk is recorded once the
/// storm passes, and the caller never hears of it.
async fn conflict_storm_within_the_limit_is_retried_transparently(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 20).await;
    rig.send_each(&info, &source, [0]).await;
    let updates = rig.store.calls(StoreOp::Update);
    let conflicts = u64::from(MAX_RETRIES);
    rig.store
        .fail_next(StoreOp::Update, StoreFault::Conflict, conflicts);
    let receipt = rig.send(&info, &source, 1).await.expect("the chunk");
    assert!(!receipt.replaced);
    assert_eq!(rig.store.injected(StoreOp::Update), conflicts);
    assert_eq!(rig.store.calls(StoreOp::Update) - updates, conflicts + 1);
    assert_eq!(
        rig.sink.calls(SinkOp::PutPart),
        2,
        "the body is stored once"
    );
    rig.assert_holds(&rig.status(info.id).await, &[0, 1]);
    rig.resume_and_complete(&info, &source).await;
}

/// One conflict more than the engine retries: `Contention`, 503, retryable;
/// the chunk is not recorded and its stored part is discarded; a retry once
/// the storm passed is taken.
async fn conflict_storm_past_the_limit_is_contention(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 21).await;
    rig.send_each(&info, &source, [0, 1]).await;
    let conflicts = u64::from(MAX_RETRIES) + 1;
    rig.store
        .fail_next(StoreOp::Update, StoreFault::Conflict, conflicts);
    let error = assert_fails(
        rig.send(&info, &source, 2).await,
        ErrorKind::Unavailable,
        503,
        "contention",
        true,
    );
    assert!(matches!(error, Error::Contention { id } if id == info.id));
    assert_eq!(rig.store.injected(StoreOp::Update), conflicts);
    assert_eq!(rig.store.pending(StoreOp::Update), 0);
    rig.assert_holds(&rig.status(info.id).await, &[0, 1]);
    if let Some(parts) = rig.part_files(info.id) {
        assert_eq!(parts, 2, "the unrecorded part is discarded");
    }
    let retried = rig.send(&info, &source, 2).await.expect("the retry");
    assert!(!retried.replaced);
    rig.resume_and_complete(&info, &source).await;
}

/// A storm on complete: `Contention` before anything is assembled; the
/// session stays open with every chunk, and complete succeeds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_storm_on_complete_is_contention() {
    let (rig, source, info) = Rig::with_upload(Backend::Fs, 22).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    rig.store.fail_next(
        StoreOp::Update,
        StoreFault::Conflict,
        u64::from(MAX_RETRIES) + 1,
    );
    assert_fails(
        rig.complete(info.id).await,
        ErrorKind::Unavailable,
        503,
        "contention",
        true,
    );
    assert_eq!(rig.sink.calls(SinkOp::Finalize), 0, "nothing assembled");
    rig.assert_holds(&rig.status(info.id).await, &Vec::from_iter(0..CHUNKS));
    rig.resume_and_complete(&info, &source).await;
}
