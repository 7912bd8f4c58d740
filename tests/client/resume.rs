//! Cancellation, and resuming: from the state file (only the missing
//! chunks are sent), by session id, and starting over when the session or
//! the file is not what the state says.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use resumable::client::{Client, Dialect, Error, Event, RestartReason, Resumption, UploadState};
use resumable::{Owner, SessionId};
use tokio_util::sync::CancellationToken;

use crate::faults::Kind;
use crate::harness::{Events, MIB, SIZE, Server, bounded, file};

/// Starts an upload of `path` that lets `pass` chunks (or appends) of
/// `kind` through and holds the rest, cancels it once those are
/// acknowledged, and checks it ends `Cancelled`. Returns the session (id or
/// tus URL) it had started. The fault rules are cleared afterwards.
pub(crate) async fn interrupt(
    server: &Server,
    client: &Client,
    path: &Path,
    state: Option<&Path>,
    kind: Kind,
    pass: usize,
) -> String {
    server.faults.hold_after(kind, pass);
    let cancel = CancellationToken::new();
    let events = Events::default();
    let mut upload = client
        .upload_file(path)
        .cancel_token(cancel.clone())
        .on_event(events.recorder());
    if let Some(state) = state {
        upload = upload.state_file(state);
    }
    let mut progress = upload.progress();
    let task = tokio::spawn(upload.send());
    bounded(
        "the first acknowledgements",
        progress.wait_for(|p| p.bytes_acknowledged >= (pass * MIB) as u64),
    )
    .await
    .expect("the upload is still running");
    cancel.cancel();
    // The held requests never end by themselves: the upload returns only
    // if cancelling drops them.
    let result = bounded("the cancelled upload", task).await.unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    server.faults.clear();
    events
        .told()
        .into_iter()
        .find_map(|e| match e {
            Event::Started { session, .. } => Some(session),
            _ => None,
        })
        .expect("a session was started")
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("data.bin.upload-state.json")
}

#[tokio::test]
async fn cancelling_returns_cancelled_and_keeps_the_state_file() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "data.bin", SIZE, 30);
    let state = state_path(dir.path());
    let client = server.client().concurrency(4).build().unwrap();
    let session = interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 2).await;

    let record = UploadState::read(&state)
        .await
        .unwrap()
        .expect("the state file stays");
    assert_eq!(record.session, session);
    assert_eq!(record.dialect, Dialect::Rest);
    assert_eq!(record.endpoint, format!("{}/attachment", server.root()));
    assert_eq!(
        (record.file_size, record.chunk_size),
        (SIZE as u64, MIB as u64)
    );
    assert_eq!(record.file_name, "data.bin");
    assert!(record.fingerprint.is_some());
    assert_eq!(server.received(&session).await.len(), 2);
}

#[tokio::test]
async fn a_second_run_sends_only_the_missing_chunks() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 31);
    let state = state_path(dir.path());
    let client = server.client().concurrency(4).build().unwrap();
    let session = interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 2).await;
    let held = server.received(&session).await;
    assert_eq!(held.len(), 2);

    let events = Events::default();
    let done = bounded(
        "the resumed upload",
        client
            .upload_file(&path)
            .state_file(&state)
            .on_event(events.recorder())
            .send(),
    )
    .await
    .expect("resumed and completed");

    assert_eq!(done.session, session);
    assert_eq!(
        done.resumption,
        Resumption::Resumed {
            from: 2 * MIB as u64
        }
    );
    assert_eq!(server.stored(&session).await, data);
    assert_eq!(server.faults.count(Kind::Initiate), 0);
    assert_eq!(server.faults.count(Kind::Status), 1);
    assert_eq!(
        server.faults.count(Kind::Chunk),
        6 - 2,
        "only the missing chunks"
    );
    assert_eq!(done.progress.bytes_sent, (SIZE - 2 * MIB) as u64);
    assert_eq!(done.progress.resumed_from, 2 * MIB as u64);
    assert_eq!(done.progress.bytes_acknowledged, SIZE as u64);
    assert!(!state.exists());
    assert_eq!(
        events.told().first(),
        Some(&Event::Resumed {
            session,
            acknowledged: 2 * MIB as u64,
            total: SIZE as u64,
        })
    );
}

#[tokio::test]
async fn a_session_can_be_resumed_by_its_id_alone() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 32);
    let client = server.client().build().unwrap();
    let session = interrupt(&server, &client, &path, None, Kind::Chunk, 3).await;
    let done = bounded(
        "the resumed upload",
        client.upload_file(&path).resume(&session).send(),
    )
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
    let (other, _) = file(dir.path(), "other.bin", 10, 33);
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
/// for `reason`, sending everything in a new session.
async fn assert_started_over(
    server: &Server,
    client: &Client,
    path: &Path,
    state: &Path,
    data: &[u8],
    reason: RestartReason,
) -> String {
    let events = Events::default();
    let done = bounded(
        "the upload",
        client
            .upload_file(path)
            .state_file(state)
            .on_event(events.recorder())
            .send(),
    )
    .await
    .expect("uploaded in a new session");
    assert_eq!(
        done.resumption,
        Resumption::Restarted {
            reason: reason.clone()
        }
    );
    assert_eq!(events.told().first(), Some(&Event::Restarted { reason }));
    assert_eq!(server.faults.count(Kind::Initiate), 1);
    assert_eq!(server.faults.count(Kind::Chunk), data.len().div_ceil(MIB));
    assert_eq!(server.stored(&done.session).await, data);
    assert!(!state.exists());
    done.session
}

#[tokio::test]
async fn a_session_the_server_lost_starts_over() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 34);
    let state = state_path(dir.path());
    let client = server.client().build().unwrap();
    interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 1).await;
    // The state names a session this server does not know: 404.
    edit_state(&state, "session", "0123456789abcdef0123456789abcdef".into());
    assert_started_over(
        &server,
        &client,
        &path,
        &state,
        &data,
        RestartReason::SessionGone { status: 404 },
    )
    .await;
}

#[tokio::test]
async fn an_aborted_session_starts_over() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 35);
    let state = state_path(dir.path());
    let client = server.client().build().unwrap();
    let session = interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 1).await;
    client.abort(&session).await.expect("aborted");
    server.faults.clear();
    let new = assert_started_over(
        &server,
        &client,
        &path,
        &state,
        &data,
        RestartReason::SessionGone { status: 410 },
    )
    .await;
    assert_ne!(new, session);
}

#[tokio::test]
async fn a_changed_file_starts_over_and_frees_the_old_session() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "data.bin", SIZE, 36);
    let state = state_path(dir.path());
    let client = server.client().build().unwrap();
    let old = interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 1).await;
    // Same name and size, other bytes, another modification time.
    let (_, changed) = file(dir.path(), "data.bin", SIZE, 37);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert_started_over(
        &server,
        &client,
        &path,
        &state,
        &changed,
        RestartReason::SourceChanged,
    )
    .await;
    let id: SessionId = old.parse().unwrap();
    let gone = server.engine.status(&Owner::anonymous(), id).await;
    assert!(gone.is_err(), "the old session was aborted: {gone:?}");
}

#[tokio::test]
async fn a_damaged_state_file_starts_over() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", 2 * MIB, 38);
    let state = state_path(dir.path());
    std::fs::write(&state, b"{\"version\": 1, \"sess").unwrap();
    let client = server.client().build().unwrap();
    let events = Events::default();
    let done = bounded(
        "the upload",
        client
            .upload_file(&path)
            .state_file(&state)
            .on_event(events.recorder())
            .send(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            done.resumption,
            Resumption::Restarted {
                reason: RestartReason::StateUnreadable { .. }
            }
        ),
        "{:?}",
        done.resumption
    );
    assert_eq!(server.stored(&done.session).await, data);
    assert!(!state.exists());
}

#[tokio::test]
async fn a_state_file_for_another_server_starts_over() {
    let first = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 39);
    let state = state_path(dir.path());
    let client = first.client().build().unwrap();
    interrupt(&first, &client, &path, Some(&state), Kind::Chunk, 1).await;

    let second = Server::start(MIB as u64).await;
    let client = second.client().build().unwrap();
    assert_started_over(
        &second,
        &client,
        &path,
        &state,
        &data,
        RestartReason::OtherTarget,
    )
    .await;
    assert_eq!(
        first.faults.count(Kind::Status),
        0,
        "the first server is not asked"
    );
}

#[tokio::test]
async fn a_completed_session_left_in_the_state_is_finished_without_sending() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "data.bin", SIZE, 40);
    let state = state_path(dir.path());
    let client = server.client().build().unwrap();
    let session = interrupt(&server, &client, &path, Some(&state), Kind::Chunk, 1).await;
    let kept = std::fs::read(&state).unwrap();
    bounded(
        "the upload",
        client.upload_file(&path).state_file(&state).send(),
    )
    .await
    .unwrap();
    // As if the process had stopped between complete and removing the
    // state file.
    std::fs::write(&state, kept).unwrap();
    server.faults.clear();
    let done = bounded(
        "the upload",
        client.upload_file(&path).state_file(&state).send(),
    )
    .await
    .unwrap();
    assert_eq!(done.session, session);
    assert_eq!(done.resumption, Resumption::Resumed { from: SIZE as u64 });
    assert_eq!(server.faults.count(Kind::Chunk), 0);
    assert_eq!(server.faults.count(Kind::Complete), 1);
    assert_eq!(done.progress.bytes_sent, 0);
    assert_eq!(server.stored(&session).await, data);
    assert!(!state.exists());
}
