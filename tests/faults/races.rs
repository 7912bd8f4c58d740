//! Delayed and held calls that reorder events: a store update overtaken by
//! another chunk, a chunk arriving during finalize, an abort overtaking a
//! chunk in flight, slow backends under concurrent chunks. Holds order the
//! events; no case depends on timing.

use std::time::Duration;

use resumable::conformance::faults::{SinkOp, StoreFault, StoreOp};
use resumable::{Error, StateKind};

use crate::rig::*;

on_both_backends!(
    held_update_overtaken_by_another_chunk_loses_nothing,
    a_catch_up_outlasting_a_conflict_storm_reads_nothing_twice,
    chunk_during_finalize_is_refused_and_changes_nothing,
    abort_overtaking_a_chunk_in_flight_resurrects_nothing,
    slow_backends_under_concurrent_chunks,
);

/// Chunk 1's record is held after its body is stored, while chunk 2 is
/// stored and recorded: chunk 1's compare-and-swap then loses, is retried,
/// and both chunks are recorded. Chunk 2, which arrived ahead of the hashed
/// prefix, is then read back once by the background catch-up.
async fn held_update_overtaken_by_another_chunk_loses_nothing(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 50).await;
    rig.send_each(&info, &source, [0]).await;
    let updates = rig.store.calls(StoreOp::Update);
    let hold = rig.store.hold_next(StoreOp::Update);
    let first = rig.spawn_send(&info, &source, 1);
    reached(&hold).await;
    rig.send_ok(&info, &source, 2).await;
    // The catch-up that recording chunk 1 starts waits at its read, so
    // that its own record does not count below.
    let read_back = rig.sink.hold_next(SinkOp::ReadPart);
    hold.release();
    let receipt = joined(first).await.expect("the held chunk");
    assert!(!receipt.replaced);
    // The held update lost its compare-and-swap and was retried once.
    assert_eq!(rig.store.calls(StoreOp::Update) - updates, 3);
    reached(&read_back).await;
    read_back.release();
    rig.assert_holds(&rig.status(info.id).await, &[0, 1, 2]);
    rig.resume_and_complete(&info, &source).await;
    // Chunk 2 was read back, and no part twice (the chunks sent after it
    // may have started before the prefix reached them, and then were read
    // back too).
    assert_read_back_once(&rig, 2);
}

/// The chunks the sink was asked to read back start with `first`, and none
/// was read twice.
fn assert_read_back_once(rig: &Rig, first: u64) {
    let reads: Vec<u64> = rig
        .sink
        .parts_read()
        .iter()
        .map(|p| p.offset / CHUNK)
        .collect();
    assert_eq!(reads.first(), Some(&first), "chunks read back: {reads:?}");
    let mut once = reads.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), reads.len(), "a chunk read twice: {reads:?}");
}

/// The background catch-up hashed a part, then its record meets more
/// conflicts than the engine retries: it tries again rather than throwing
/// its work away, so no part is read twice (before, the part was read again
/// at complete).
async fn a_catch_up_outlasting_a_conflict_storm_reads_nothing_twice(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 52).await;
    // Chunk 2 arrives ahead of the hashed prefix; chunk 1 closes the gap and
    // starts the catch-up, which stops at its read of chunk 2.
    rig.send_each(&info, &source, [0, 2]).await;
    let read_back = rig.sink.hold_next(SinkOp::ReadPart);
    rig.send_ok(&info, &source, 1).await;
    reached(&read_back).await;
    let conflicts = u64::from(MAX_RETRIES) + 1;
    rig.store
        .fail_next(StoreOp::Update, StoreFault::Conflict, conflicts);
    read_back.release();
    // Bounded wait until the catch-up's record has met every conflict.
    for _ in 0..1000 {
        if rig.store.pending(StoreOp::Update) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rig.store.injected(StoreOp::Update), conflicts);
    rig.resume_and_complete(&info, &source).await;
    assert_read_back_once(&rig, 2);
}

/// A chunk sent again, with other bytes, while complete is assembling the
/// blob: refused (409, finalizing); the blob is made of the recorded chunks.
async fn chunk_during_finalize_is_refused_and_changes_nothing(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 51).await;
    rig.send_each(&info, &source, 0..CHUNKS).await;
    let hold = rig.sink.hold_next(SinkOp::Finalize);
    let completing = {
        let (engine, me, id) = (rig.engine.clone(), rig.me.clone(), info.id);
        tokio::spawn(async move { engine.complete(&me, id).await })
    };
    reached(&hold).await;
    let other = data(SIZE, 999);
    let late = rig.send(&info, &other, 4).await;
    assert!(
        matches!(
            late,
            Err(Error::InvalidState {
                state: StateKind::Finalizing,
                ..
            })
        ),
        "{late:?}"
    );
    hold.release();
    let attachment = joined(completing).await.expect("complete");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}

/// A chunk is held before its body reaches the sink while the upload is
/// aborted and purged: the chunk then finds the upload gone (410) and
/// brings nothing back.
async fn abort_overtaking_a_chunk_in_flight_resurrects_nothing(backend: Backend) {
    let (rig, source, info) = Rig::with_upload(backend, 52).await;
    rig.send_each(&info, &source, 0..2).await;
    let hold = rig.sink.hold_next(SinkOp::PutPart);
    let late = rig.spawn_send(&info, &source, 2);
    reached(&hold).await;
    rig.engine.abort(&rig.me, info.id).await.expect("abort");
    assert_eq!(rig.sink_uploads(), 0);
    hold.release();
    let result = joined(late).await;
    assert!(
        matches!(
            result,
            Err(Error::SessionGone {
                state: StateKind::Aborted,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(rig.sink_uploads(), 0, "the late chunk re-created nothing");
    assert_eq!(
        rig.engine.sweep().await.expect("the sweep"),
        Default::default()
    );
    rig.assert_no_leftovers();
}

/// Every chunk at once through a slow store and a slow sink: all are taken
/// and the blob is the source.
async fn slow_backends_under_concurrent_chunks(backend: Backend) {
    let mut config = config();
    config.max_conflict_retries = 64;
    let rig = Rig::with_config(backend, config);
    let info = rig.start(SIZE).await;
    let source = data(SIZE, 53);
    rig.store
        .delay(StoreOp::Load, Duration::from_millis(1))
        .delay(StoreOp::Update, Duration::from_millis(3));
    rig.sink.delay(SinkOp::PutPart, Duration::from_millis(3));
    let tasks: Vec<_> = (0..CHUNKS)
        .map(|index| rig.spawn_send(&info, &source, index))
        .collect();
    for task in tasks {
        joined(task).await.expect("a chunk");
    }
    rig.assert_holds(&rig.status(info.id).await, &Vec::from_iter(0..CHUNKS));
    rig.store.clear();
    rig.sink.clear();
    let attachment = rig.complete(info.id).await.expect("complete");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(info.id, &source).await;
}
