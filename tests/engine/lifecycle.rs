//! How a session ends: abort, expiry by the clock and the sweep, activity
//! that extends it, reaping of unclaimed uploads, and chunks after the end.

use std::time::Duration;

use resumable::error::Operation;
use resumable::{ChunkOptions, Error, Owner, StateKind, SweepReport};

use crate::harness::*;

on_both_backends!(
    abort_makes_the_session_gone_and_deletes_its_bytes,
    expiry_follows_the_clock_and_the_sweep_purges_then_forgets,
    activity_extends_the_expiry,
    an_unclaimed_upload_is_reaped_a_claimed_one_is_kept,
    a_late_chunk_cannot_alter_a_completed_blob,
);

async fn abort_makes_the_session_gone_and_deletes_its_bytes(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 7).await;
    for index in [0, 1, 4] {
        h.send(&me, &info, &source, index).await.unwrap();
    }
    assert_eq!(h.sink_uploads(), 1);
    h.engine.abort(&me, info.id).await.unwrap();

    let gone = |r: Result<(), Error>| {
        assert_err!(
            r,
            Error::SessionGone { id, state: StateKind::Aborted } if id == info.id
        )
    };
    gone(h.send(&me, &info, &source, 2).await.map(drop));
    gone(h.engine.complete(&me, info.id).await.map(drop));
    gone(h.engine.status(&me, info.id).await.map(drop));
    gone(h.engine.abort(&me, info.id).await);
    gone(h.engine.claim(&me, info.id).await.map(drop));
    gone(h.engine.read(&me, info.id).await.map(drop));

    assert_eq!(h.sink_uploads(), 0);
    if let Some(dir) = h.upload_dir(info.id) {
        assert!(!dir.exists(), "{} remains", dir.display());
    }
}

async fn expiry_follows_the_clock_and_the_sweep_purges_then_forgets(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 8).await;
    h.send(&me, &info, &source, 0).await.unwrap();
    let expires_at = h.engine.status(&me, info.id).await.unwrap().expires_at;
    assert_eq!(expires_at, t0() + timeouts().session_timeout);

    // One nanosecond before the expiry the session is open and not due.
    h.clock.set(expires_at - NS);
    assert_eq!(
        h.engine.status(&me, info.id).await.unwrap().state,
        StateKind::Open
    );
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());

    // At the expiry every operation says it is gone, before any sweep.
    h.clock.set(expires_at);
    assert_gone(h.send(&me, &info, &source, 1).await, StateKind::Expired);
    assert_gone(h.engine.complete(&me, info.id).await, StateKind::Expired);
    assert_gone(h.engine.status(&me, info.id).await, StateKind::Expired);
    assert_gone(h.engine.abort(&me, info.id).await, StateKind::Expired);
    assert_eq!(h.sink_uploads(), 1, "the bytes wait for the sweep");

    // The sweep expires the session and purges its bytes.
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(report, ONE_EXPIRED_AND_PURGED);
    assert_eq!(h.sink_uploads(), 0);
    assert_gone(h.engine.status(&me, info.id).await, StateKind::Expired);
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());

    // The tombstone is kept for its retention, then forgotten.
    h.clock
        .advance(timeouts().tombstone_retention - Duration::from_secs(1));
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    assert_gone(h.engine.status(&me, info.id).await, StateKind::Expired);
    h.clock.advance(Duration::from_secs(1));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            forgotten: 1,
            ..SweepReport::default()
        }
    );
    assert_err!(
        h.engine.status(&me, info.id).await,
        Error::SessionNotFound { id } if id == info.id.to_string()
    );
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
}

async fn activity_extends_the_expiry(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 9).await;

    // A chunk just before the expiry pushes it a whole timeout further.
    h.clock.set(info.expires_at - NS);
    let receipt = h.send(&me, &info, &source, 0).await.unwrap();
    assert_eq!(
        receipt.expires_at,
        info.expires_at - NS + timeouts().session_timeout
    );

    h.clock.set(info.expires_at + Duration::from_secs(1));
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.expires_at, receipt.expires_at);
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    h.send(&me, &info, &source, 1).await.unwrap();

    // Without more activity it expires in its turn.
    let last = h.engine.status(&me, info.id).await.unwrap().expires_at;
    h.clock.set(last);
    assert_gone(h.engine.status(&me, info.id).await, StateKind::Expired);
    assert_eq!(h.engine.sweep().await.unwrap().expired, 1);
}

async fn an_unclaimed_upload_is_reaped_a_claimed_one_is_kept(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let (kept_src, reaped_src) = (data(SIZE, 10), data(SIZE, 11));
    let kept = h.start(&me, SIZE, None).await;
    let reaped = h.start(&me, SIZE, None).await;
    h.send_all(&me, &kept, &kept_src).await;
    h.send_all(&me, &reaped, &reaped_src).await;
    h.engine.complete(&me, kept.id).await.unwrap();
    let temporary = h.engine.complete(&me, reaped.id).await.unwrap();
    h.engine.claim(&me, kept.id).await.unwrap();
    let reap_at = temporary.reap_at.expect("a temporary upload");

    h.clock.set(reap_at - NS);
    assert_eq!(h.engine.sweep().await.unwrap(), SweepReport::default());
    assert_eq!(h.read_back(&me, reaped.id).await, reaped_src);

    h.clock.set(reap_at);
    assert_gone(h.engine.read(&me, reaped.id).await, StateKind::Expired);
    let report = h.engine.sweep().await.unwrap();
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert_gone(h.engine.claim(&me, reaped.id).await, StateKind::Expired);
    assert_eq!(h.sink_uploads(), 1);
    if let Some(dir) = h.upload_dir(reaped.id) {
        assert!(!dir.exists());
    }

    // The claimed upload outlives every timeout.
    h.clock.advance(Duration::from_secs(365 * 24 * 3600));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!((report.expired, report.purged, report.forgotten), (0, 0, 1));
    let status = h.engine.status(&me, kept.id).await.unwrap();
    assert_eq!(status.state, StateKind::Claimed);
    assert_eq!(h.read_back(&me, kept.id).await, kept_src);
}

async fn a_late_chunk_cannot_alter_a_completed_blob(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 14).await;
    h.send_all(&me, &info, &source).await;
    let attachment = h.engine.complete(&me, info.id).await.unwrap();

    let late = flipped(&source[chunk(&info, SIZE, 0)]);
    for expected in [StateKind::Completed, StateKind::Claimed] {
        let r = h
            .engine
            .upload_chunk(&me, info.id, 0, body(&late), ChunkOptions::default())
            .await;
        assert_err!(
            r,
            Error::InvalidState { id, state, operation: Operation::UploadChunk }
                if id == info.id && state == expected
        );
        assert_eq!(h.read_back(&me, info.id).await, source);
        assert_eq!(
            h.engine.complete(&me, info.id).await.unwrap().blob,
            attachment.blob
        );
        h.engine.claim(&me, info.id).await.unwrap();
    }
}
