//! Cancellation, and resuming: from the state file (only the missing
//! chunks are sent), by session id, and starting over when the session or
//! the file is not what the state says.

use std::path::Path;
use std::time::{Duration, SystemTime};

use resumable::client::{Dialect, Error, Event, RestartReason, Resumption, UploadState};
use resumable::{Owner, SessionId};

use crate::faults::Kind;
use crate::harness::{
    Interrupted, MIB, SIZE, Server, assert_resumed, interrupt, restart_reason, send, state_path,
};

#[tokio::test]
async fn cancelling_returns_cancelled_and_keeps_the_state_file() {
    let up = Interrupted::rest(30, 2).await;

    let record = UploadState::read(&up.state)
        .await
        .unwrap()
        .expect("the state file stays");
    assert_eq!(record.session, up.session);
    assert_eq!(record.dialect, Dialect::Rest);
    assert_eq!(record.endpoint, format!("{}/attachment", up.server.root()));
    assert_eq!(
        (record.file_size, record.chunk_size),
        (SIZE as u64, MIB as u64)
    );
    assert_eq!(record.file_name, "data.bin");
    assert!(record.fingerprint.is_some());
    assert_eq!(up.server.received(&up.session).await.len(), 2);
}

#[tokio::test]
async fn a_second_run_sends_only_the_missing_chunks() {
    let up = Interrupted::rest(31, 2).await;
    let held = up.server.received(&up.session).await;
    assert_eq!(held.len(), 2);

    let (done, events) = up.send_again().await;
    let done = done.expect("resumed and completed");

    let from = 2 * MIB as u64;
    assert_resumed(&up, &done, from).await;
    let faults = &up.server.faults;
    assert_eq!(faults.count(Kind::Initiate), 0);
    assert_eq!(faults.count(Kind::Status), 1);
    assert_eq!(faults.count(Kind::Chunk), 6 - 2, "only the missing chunks");
    assert_eq!(done.progress.resumed_from, from);
    assert_eq!(done.progress.bytes_acknowledged, SIZE as u64);
    assert_eq!(
        events.told().first(),
        Some(&Event::Resumed {
            session: up.session.clone(),
            acknowledged: from,
            total: SIZE as u64,
        })
    );
}

#[tokio::test]
async fn a_session_can_be_resumed_by_its_id_alone() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("data.bin", SIZE, 32);
    let client = server.client().build().unwrap();
    let session = interrupt(&server, &client, &path, None, Kind::Chunk, 3).await;
    let done = send(client.upload_file(&path).resume(&session))
        .await
        .unwrap();
    assert_eq!(
        done.resumption,
        Resumption::Resumed {
            from: 3 * MIB as u64
        }
    );
    assert_eq!(server.faults.count(Kind::Chunk), 3);
    assert_eq!(server.stored(&session).await, data);

    // A session named for a source of another size is refused.
    let (other, _) = server.file("other.bin", 10, 33);
    let e = client
        .upload_file(&other)
        .resume(&session)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SessionMismatch { .. }), "{e:?}");
}

/// Rewrites a field of the state file.
fn edit_state(state: &Path, field: &str, value: serde_json::Value) {
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    json[field] = value;
    std::fs::write(state, serde_json::to_vec(&json).unwrap()).unwrap();
}

/// Runs the upload again with the state file and checks it started over
/// for `reason`, sending all of the source in a new session.
async fn assert_started_over(up: &Interrupted, reason: RestartReason) -> String {
    let (done, events) = up.send_again().await;
    let done = done.expect("uploaded in a new session");
    assert_eq!(restart_reason(&done), &reason);
    assert_eq!(events.told().first(), Some(&Event::Restarted { reason }));
    let faults = &up.server.faults;
    assert_eq!(faults.count(Kind::Initiate), 1);
    assert_eq!(faults.count(Kind::Chunk), up.data.len().div_ceil(MIB));
    assert_eq!(up.server.stored(&done.session).await, up.data);
    assert!(!up.state.exists());
    done.session
}

#[tokio::test]
async fn a_session_the_server_lost_starts_over() {
    let up = Interrupted::rest(34, 1).await;
    // The state names a session this server does not know: 404.
    edit_state(
        &up.state,
        "session",
        "0123456789abcdef0123456789abcdef".into(),
    );
    assert_started_over(&up, RestartReason::SessionGone { status: 404 }).await;
}

#[tokio::test]
async fn an_aborted_session_starts_over() {
    let up = Interrupted::rest(35, 1).await;
    up.client.abort(&up.session).await.expect("aborted");
    up.server.faults.clear();
    let new = assert_started_over(&up, RestartReason::SessionGone { status: 410 }).await;
    assert_ne!(new, up.session);
}

#[tokio::test]
async fn a_changed_file_starts_over_and_frees_the_old_session() {
    let mut up = Interrupted::rest(36, 1).await;
    // Same name and size, other bytes, another modification time.
    (_, up.data) = up.server.file("data.bin", SIZE, 37);
    std::fs::File::options()
        .write(true)
        .open(&up.path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert_started_over(&up, RestartReason::SourceChanged).await;
    let id: SessionId = up.session.parse().unwrap();
    let gone = up.server.engine.status(&Owner::anonymous(), id).await;
    assert!(gone.is_err(), "the old session was aborted: {gone:?}");
}

#[tokio::test]
async fn a_damaged_state_file_starts_over() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("data.bin", 2 * MIB, 38);
    let state = state_path(&path);
    std::fs::write(&state, b"{\"version\": 1, \"sess").unwrap();
    let client = server.client().build().unwrap();
    let done = send(client.upload_file(&path).state_file(&state))
        .await
        .unwrap();
    let reason = restart_reason(&done);
    assert!(
        matches!(reason, RestartReason::StateUnreadable { .. }),
        "{reason:?}"
    );
    assert_eq!(server.stored(&done.session).await, data);
    assert!(!state.exists());
}

#[tokio::test]
async fn a_state_file_for_another_server_starts_over() {
    let mut up = Interrupted::rest(39, 1).await;
    // The same source and state file, sent to another server.
    let first = std::mem::replace(&mut up.server, Server::start(MIB as u64).await);
    up.client = up.server.client().build().unwrap();
    assert_started_over(&up, RestartReason::OtherTarget).await;
    assert_eq!(
        first.faults.count(Kind::Status),
        0,
        "the first server is not asked"
    );
}

#[tokio::test]
async fn a_completed_session_left_in_the_state_is_finished_without_sending() {
    let up = Interrupted::rest(40, 1).await;
    let kept = std::fs::read(&up.state).unwrap();
    up.send_again().await.0.unwrap();
    // As if the process had stopped between complete and removing the
    // state file.
    std::fs::write(&up.state, kept).unwrap();
    up.server.faults.clear();
    let done = up.send_again().await.0.unwrap();
    assert_resumed(&up, &done, SIZE as u64).await;
    assert_eq!(up.server.faults.count(Kind::Chunk), 0);
    assert_eq!(up.server.faults.count(Kind::Complete), 1);
}
