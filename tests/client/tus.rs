//! The client in tus: creation, PATCHes with checksums, resume from HEAD.

use resumable::client::{Dialect, Event, RestartReason, Resumption, UploadState};

use crate::faults::Kind;
use crate::harness::{Events, MIB, SIZE, Server, bounded, file};
use crate::resume::interrupt;

fn tus(server: &Server) -> resumable::client::Client {
    server
        .client()
        .dialect(Dialect::Tus)
        .tus_chunk_size(MIB as u64)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_file_goes_up_over_tus_and_is_stored_intact() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "tus.bin", SIZE, 50);
    let state = dir.path().join("tus.state.json");
    let client = tus(&server);
    let done = bounded(
        "the upload",
        client
            .upload_file(&path)
            .state_file(&state)
            .content_type("application/x-test")
            .send(),
    )
    .await
    .expect("uploaded");
    assert!(
        done.session
            .starts_with(&format!("{}/files/", server.root()))
    );
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(done.sha256, None);
    assert_eq!(done.resumption, Resumption::New);
    assert_eq!(server.faults.count(Kind::Create), 1);
    assert_eq!(server.faults.count(Kind::Patch), 6);
    assert_eq!(server.faults.max_in_flight(), 1, "one PATCH at a time");
    assert_eq!(done.progress.bytes_sent, SIZE as u64);
    assert!(!state.exists());

    // The name and type went as metadata.
    let id = done.session.rsplit('/').next().unwrap().parse().unwrap();
    let status = server
        .engine
        .upload_status(&resumable::Owner::anonymous(), id)
        .await
        .unwrap();
    assert_eq!(
        status.file.name.as_ref().map(|n| n.to_string()).as_deref(),
        Some("tus.bin")
    );
    assert_eq!(
        status.file.content_type.as_deref(),
        Some("application/x-test")
    );
}

#[tokio::test]
async fn a_cancelled_tus_upload_resumes_from_the_offset() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "tus.bin", SIZE, 51);
    let state = dir.path().join("tus.state.json");
    let client = tus(&server);
    let url = interrupt(&server, &client, &path, Some(&state), Kind::Patch, 2).await;
    assert_eq!(server.offset(&url).await, 2 * MIB as u64);
    let record = UploadState::read(&state).await.unwrap().unwrap();
    assert_eq!(
        (record.session.as_str(), record.dialect),
        (url.as_str(), Dialect::Tus)
    );

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
    .unwrap();
    assert_eq!(done.session, url);
    assert_eq!(
        done.resumption,
        Resumption::Resumed {
            from: 2 * MIB as u64
        }
    );
    assert_eq!(server.faults.count(Kind::Create), 0);
    assert_eq!(server.faults.count(Kind::Head), 1);
    assert_eq!(
        server.faults.count(Kind::Patch),
        4,
        "only the missing bytes"
    );
    assert_eq!(done.progress.bytes_sent, (SIZE - 2 * MIB) as u64);
    assert_eq!(server.stored(&url).await, data);
    assert!(!state.exists());
    assert!(matches!(events.told().first(), Some(Event::Resumed { .. })));
}

#[tokio::test]
async fn a_corrupted_patch_is_sent_again() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "tus.bin", 3 * MIB, 52);
    // Upload-Checksum catches the altered body (460); the bytes are sent
    // again from the same offset.
    server.faults.corrupt(Kind::Patch, 1);
    let done = bounded("the upload", tus(&server).upload_file(&path).send())
        .await
        .unwrap();
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Patch), 4);
    assert_eq!(done.progress.retries, 1);
}

#[tokio::test]
async fn a_failed_patch_reads_the_offset_and_goes_on() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "tus.bin", 3 * MIB, 53);
    server.faults.fail(Kind::Patch, 2, 503);
    server.faults.fail(Kind::Create, 1, 500);
    let done = bounded("the upload", tus(&server).upload_file(&path).send())
        .await
        .unwrap();
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Create), 2);
    assert_eq!(server.faults.count(Kind::Patch), 3 + 2);
    assert_eq!(
        server.faults.count(Kind::Head),
        2,
        "one offset read per failed PATCH"
    );
}

#[tokio::test]
async fn a_refused_patch_fails_at_once() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "tus.bin", 3 * MIB, 54);
    server.faults.fail(Kind::Patch, 1, 415);
    let e = bounded("the upload", tus(&server).upload_file(&path).send())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(415));
    assert_eq!(e.attempts(), Some(1));
    assert_eq!(server.faults.count(Kind::Patch), 1);
}

#[tokio::test]
async fn a_lost_tus_upload_starts_over() {
    let server = Server::start(8 * MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "tus.bin", SIZE, 55);
    let state = dir.path().join("tus.state.json");
    let client = tus(&server);
    let url = interrupt(&server, &client, &path, Some(&state), Kind::Patch, 1).await;
    client.abort(&url).await.expect("terminated");
    server.faults.clear();
    let done = bounded(
        "the upload",
        client.upload_file(&path).state_file(&state).send(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            done.resumption,
            Resumption::Restarted {
                reason: RestartReason::SessionGone { status: 404 | 410 }
            }
        ),
        "{:?}",
        done.resumption
    );
    assert_ne!(done.session, url);
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Patch), 6);
}
