//! Scenarios on `FsStore` + `FsSink` only: what the data directory holds,
//! and an upload resumed by a new engine over the same directory.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{Engine, ManualClock, Owner, SessionId};

use crate::harness::*;

/// Chunks are written in place into the upload's `data` file. After one
/// upload is claimed (over the temporary files of a finalizer that died),
/// one aborted and one expired and swept, the data directory holds the
/// claimed blob, the session records and the lock files, and nothing else;
/// once the tombstones are forgotten only the claimed upload's record
/// remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_data_dir_keeps_only_the_claimed_blob_and_records() {
    let h = Harness::new(Backend::Fs);
    let Backing::Fs { root, .. } = &h.backing else {
        unreachable!()
    };
    let me = Owner::new("alice");
    let source = data(SIZE, 16);
    let claimed = h.start(&me, SIZE, None).await;
    let aborted = h.start(&me, SIZE, None).await;
    let expired = h.start(&me, SIZE, None).await;
    h.send_all(&me, &claimed, &source).await;
    for index in [0, 3] {
        h.send(&me, &aborted, &source, index).await.unwrap();
        h.send(&me, &expired, &source, index).await.unwrap();
    }
    // Every chunk was written in place: `data` holds the file, one claim
    // per chunk (and the name of the attempt holding it), no part file.
    let upload_dir = root.join("uploads").join(claimed.id.to_string());
    assert_eq!(entries(&upload_dir), ["claims", "data", "parts"]);
    assert!(std::fs::read(upload_dir.join("data")).unwrap() == source);
    assert_eq!(entries(&upload_dir.join("parts")), Vec::<String>::new());
    let claims = entries(&upload_dir.join("claims"));
    assert_eq!(claims.len() as u64, 2 * claimed.total_chunks, "{claims:?}");
    assert_eq!(stored_attempts(&upload_dir) as u64, claimed.total_chunks);
    // What a finalizer killed before publishing leaves behind.
    std::fs::write(upload_dir.join("blob.Xk3q9a.tmp"), &source[..100]).unwrap();
    std::fs::write(upload_dir.join(".tmpQ8wz1c"), b"{}").unwrap();
    h.engine.complete(&me, claimed.id).await.unwrap();
    h.engine.claim(&me, claimed.id).await.unwrap();
    // Abort late enough that its tombstone outlives the next sweep.
    h.clock
        .advance(timeouts().session_timeout - Duration::from_secs(1));
    h.engine.abort(&me, aborted.id).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(report, ONE_EXPIRED_AND_PURGED);

    let layout = |records: &[SessionId]| {
        let mut want: BTreeSet<PathBuf> = ["locks", "sessions", "uploads"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let up = PathBuf::from("uploads").join(claimed.id.to_string());
        want.extend([up.join("blob"), up.join("blob.json"), up]);
        for id in [claimed.id, aborted.id, expired.id] {
            want.insert(shard_lock(id));
        }
        for id in records {
            want.insert(PathBuf::from(format!("sessions/{id}.json")));
        }
        want
    };
    let have: BTreeSet<PathBuf> = walk(root).into_iter().collect();
    assert_eq!(have, layout(&[claimed.id, aborted.id, expired.id]));

    h.clock.advance(timeouts().tombstone_retention);
    let report = h.engine.sweep().await.unwrap();
    assert_eq!(report.forgotten, 2);
    let have: BTreeSet<PathBuf> = walk(root).into_iter().collect();
    assert_eq!(have, layout(&[claimed.id]));
    assert_eq!(h.read_back(&me, claimed.id).await, source);
    let blob = std::fs::read(
        root.join("uploads")
            .join(claimed.id.to_string())
            .join("blob"),
    );
    assert_eq!(blob.unwrap(), source);
}

/// Parts and records written by one engine are found by another over the
/// same directory (a restart): the upload resumes where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_an_upload_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = || {
        Engine::builder(
            FsStore::open(dir.path()).unwrap(),
            FsSink::open(dir.path()).unwrap(),
        )
        .config(config())
        .clock(clock.clone())
        .build()
    };
    let me = Owner::new("alice");
    let source = data(SIZE, 17);
    let first = engine();
    let info = first
        .initiate(
            &me,
            new_upload("resume.bin", SIZE as u64, Some(sha256(&source))),
        )
        .await
        .unwrap();
    for index in 0..5 {
        send_chunk(&first, &me, &info, &source, index)
            .await
            .unwrap();
    }
    drop(first);

    let second = engine();
    let status = second.status(&me, info.id).await.unwrap();
    assert_eq!(status.received_chunks, [0, 1, 2, 3, 4]);
    for index in 5..info.total_chunks {
        send_chunk(&second, &me, &info, &source, index)
            .await
            .unwrap();
    }
    let attachment = second.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
}
