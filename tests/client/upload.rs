//! Uploads in the session REST API that go well: chunks in parallel, the
//! stored bytes and their SHA-256, readers, empty files.

use std::io::Cursor;

use resumable::client::{Dialect, Error, Event, Resumption};

use crate::faults::Kind;
use crate::harness::{
    MIB, SIZE, Server, assert_problem, send, send_recorded, sha256_hex, state_path,
};

#[tokio::test]
async fn a_multi_chunk_file_goes_up_in_parallel_and_is_stored_intact() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("five.bin", SIZE, 1);
    let state = state_path(&path);
    // The first four chunks are held until all four are in the server at
    // once: the upload is parallel, and never more than 4 wide.
    server.faults.gather(Kind::Chunk, 4);
    let client = server.client().concurrency(4).build().unwrap();
    let (done, events) = send_recorded(
        client
            .upload_file(&path)
            .state_file(&state)
            .content_type("application/octet-stream"),
    )
    .await;
    let done = done.expect("uploaded");

    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(done.sha256.as_deref(), Some(sha256_hex(&data).as_str()));
    assert_eq!(
        (done.size, done.file_name.as_str()),
        (SIZE as u64, "five.bin")
    );
    assert_eq!(done.dialect, Dialect::Rest);
    assert_eq!(done.resumption, Resumption::New);
    assert_eq!(server.faults.max_in_flight(), 4);
    assert_eq!(server.faults.count(Kind::Chunk), 6);
    assert_eq!(server.faults.count(Kind::Initiate), 1);
    assert_eq!(server.faults.count(Kind::Complete), 1);
    assert_eq!(done.progress.bytes_sent, SIZE as u64);
    assert_eq!(done.progress.bytes_acknowledged, SIZE as u64);
    assert_eq!(done.progress.bytes_in_flight, 0);
    assert_eq!(done.progress.retries, 0);
    assert!(!state.exists(), "the state file is removed once complete");
    let told = events.told();
    assert!(matches!(
        told.first(),
        Some(Event::Started { total, chunk_size, .. }) if *total == SIZE as u64 && *chunk_size == MIB as u64
    ));
    assert_eq!(
        told.last(),
        Some(&Event::Completing {
            session: done.session.clone()
        })
    );
    assert_eq!(told.len(), 2, "{told:?}");
}

#[tokio::test]
async fn concurrency_one_sends_one_chunk_at_a_time() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("one.bin", SIZE, 2);
    let client = server.client().concurrency(1).build().unwrap();
    let done = send(client.upload_file(&path)).await.unwrap();
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.max_in_flight(), 1);
}

#[tokio::test]
async fn a_reader_uploads_from_offset_zero_whatever_its_position() {
    let server = Server::start(MIB as u64).await;
    let data = crate::harness::bytes(3 * MIB + 1, 3);
    let mut cursor = Cursor::new(data.clone());
    cursor.set_position(12_345);
    let client = server.client().build().unwrap();
    let done = send(client.upload_reader(cursor, "from-memory.bin"))
        .await
        .unwrap();
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(done.file_name, "from-memory.bin");
    assert_eq!(server.faults.count(Kind::Chunk), 4);
}

#[tokio::test]
async fn an_empty_file_uploads() {
    let server = Server::start(MIB as u64).await;
    let client = server.client().build().unwrap();
    let done = send(client.upload_reader(Cursor::new(Vec::new()), "empty"))
        .await
        .unwrap();
    assert_eq!(done.size, 0);
    assert_eq!(server.stored(&done.session).await, Vec::<u8>::new());
    assert_eq!(done.sha256.as_deref(), Some(sha256_hex(b"").as_str()));
    assert_eq!(server.faults.count(Kind::Chunk), 0);
}

#[tokio::test]
async fn a_known_sha256_is_sent_and_checked_by_the_server() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("known.bin", 2 * MIB + 7, 4);
    let client = server.client().build().unwrap();

    let known = sha256_hex(&data).to_uppercase();
    let done = send(client.upload_file(&path).sha256(known)).await.unwrap();
    assert_eq!(server.stored(&done.session).await, data);

    // A wrong digest: every chunk goes up, and the server refuses to
    // complete, once (a 422 is not retried).
    let wrong = sha256_hex(b"something else");
    let e = send(client.upload_file(&path).sha256(wrong))
        .await
        .unwrap_err();
    assert_problem(&e, 422, "checksum-mismatch");
    assert_eq!(e.attempts(), Some(1));
    assert!(matches!(
        e,
        Error::Server {
            operation: resumable::client::Operation::Complete,
            ..
        }
    ));

    let e = client
        .upload_file(&path)
        .sha256("not-hex")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
}

#[tokio::test]
async fn the_whole_file_digest_is_checked_against_the_servers() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("tampered.bin", 2 * MIB, 5);
    // The complete reply claims another SHA-256 than the source's.
    server.faults.tamper_complete();
    let client = server.client().build().unwrap();
    let e = send(client.upload_file(&path)).await.unwrap_err();
    match e {
        Error::ChecksumMismatch { expected, actual } => {
            assert_eq!(expected, sha256_hex(&data));
            assert_eq!(actual, "0".repeat(64));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

/// The client states the whole file's SHA-256 at complete
/// (`Repr-Digest`), so the server publishes nothing but the bytes the
/// client hashed; a caller-known digest went at initiate instead.
#[tokio::test]
async fn complete_states_the_whole_file_digest() {
    use base64::Engine as _;
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("stated.bin", 3 * MIB + 5, 6);
    let client = server.client().build().unwrap();
    let uploaded = send(client.upload_file(&path)).await.expect("upload");
    assert_eq!(uploaded.sha256.as_deref(), Some(sha256_hex(&data).as_str()));
    let digest = hex::decode(sha256_hex(&data)).unwrap();
    let expected = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    assert_eq!(server.faults.complete_digests(), [Some(expected)]);
}

#[tokio::test]
async fn a_missing_file_is_a_read_error() {
    let server = Server::start(MIB as u64).await;
    let client = server.client().build().unwrap();
    let e = client
        .upload_file("/nonexistent/file.bin")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Read { .. }), "{e:?}");
    assert_eq!(server.faults.count(Kind::Initiate), 0);
}

#[test]
fn an_upload_can_run_on_a_spawned_task() {
    fn spawnable<T: Send + 'static>(_: &T) {}
    let client = resumable::client::Client::new("http://127.0.0.1:1").unwrap();
    let upload = client.upload_file("x").send();
    spawnable(&upload);
}
