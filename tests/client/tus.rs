//! The client in tus: creation, PATCHes with checksums, resume from HEAD.

use resumable::client::{Dialect, Event, RestartReason, Resumption, UploadState};

use crate::faults::Kind;
use crate::harness::{
    Interrupted, MIB, SIZE, Server, assert_resumed, restart_reason, send, state_path,
};

#[tokio::test]
async fn a_file_goes_up_over_tus_and_is_stored_intact() {
    let server = Server::start(8 * MIB as u64).await;
    let (path, data) = server.file("tus.bin", SIZE, 50);
    let state = state_path(&path);
    let client = server.tus_client();
    let done = send(
        client
            .upload_file(&path)
            .state_file(&state)
            .content_type("application/x-test"),
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
    let up = Interrupted::tus(51, 2).await;
    assert_eq!(up.server.offset(&up.session).await, 2 * MIB as u64);
    let record = UploadState::read(&up.state).await.unwrap().unwrap();
    assert_eq!(
        (record.session.as_str(), record.dialect),
        (up.session.as_str(), Dialect::Tus)
    );

    let (done, events) = up.send_again().await;
    let done = done.unwrap();
    assert_resumed(&up, &done, 2 * MIB as u64).await;
    let faults = &up.server.faults;
    assert_eq!(faults.count(Kind::Create), 0);
    assert_eq!(faults.count(Kind::Head), 1);
    assert_eq!(faults.count(Kind::Patch), 4, "only the missing bytes");
    assert!(matches!(events.told().first(), Some(Event::Resumed { .. })));
}

#[tokio::test]
async fn a_corrupted_patch_is_sent_again() {
    let server = Server::start(8 * MIB as u64).await;
    let (path, data) = server.file("tus.bin", 3 * MIB, 52);
    // Upload-Checksum catches the altered body (460); the bytes are sent
    // again from the same offset.
    server.faults.corrupt(Kind::Patch, 1);
    let done = send(server.tus_client().upload_file(&path)).await.unwrap();
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Patch), 4);
    assert_eq!(done.progress.retries, 1);
}

#[tokio::test]
async fn a_failed_patch_reads_the_offset_and_goes_on() {
    let server = Server::start(8 * MIB as u64).await;
    let (path, data) = server.file("tus.bin", 3 * MIB, 53);
    server.faults.fail(Kind::Patch, 2, 503);
    server.faults.fail(Kind::Create, 1, 500);
    let done = send(server.tus_client().upload_file(&path)).await.unwrap();
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
    let (path, _) = server.file("tus.bin", 3 * MIB, 54);
    server.faults.fail(Kind::Patch, 1, 415);
    let e = send(server.tus_client().upload_file(&path))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(415));
    assert_eq!(e.attempts(), Some(1));
    assert_eq!(server.faults.count(Kind::Patch), 1);
}

#[tokio::test]
async fn a_lost_tus_upload_starts_over() {
    let up = Interrupted::tus(55, 1).await;
    up.client.abort(&up.session).await.expect("terminated");
    up.server.faults.clear();
    let done = up.send_again().await.0.unwrap();
    let reason = restart_reason(&done);
    assert!(
        matches!(reason, RestartReason::SessionGone { status: 404 | 410 }),
        "{reason:?}"
    );
    assert_ne!(done.session, up.session);
    assert_eq!(up.server.stored(&done.session).await, up.data);
    assert_eq!(up.server.faults.count(Kind::Patch), 6);
}
