//! Retryable failures are retried (and only as often as allowed); a chunk
//! the server finds corrupted is sent again.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use resumable::client::{Error, Operation};

use crate::faults::Kind;
use crate::harness::{
    MIB, SIZE, Server, assert_problem, client_for, quick_retries, send, send_recorded,
};

#[tokio::test]
async fn transient_failures_are_retried_until_the_upload_succeeds() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("flaky.bin", SIZE, 10);
    server.faults.fail(Kind::Initiate, 1, 502);
    server.faults.fail(Kind::Chunk, 3, 503);
    server.faults.fail(Kind::Chunk, 1, 500);
    server.faults.fail(Kind::Chunk, 1, 408);
    server.faults.fail(Kind::Complete, 1, 504);
    // Enough retries that one chunk meeting every fault still succeeds.
    let policy = quick_retries(10, Duration::from_millis(20));
    let client = server.client().retry(policy).build().unwrap();
    let (done, events) = send_recorded(client.upload_file(&path)).await;
    let done = done.expect("uploaded despite the faults");

    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Initiate), 2);
    assert_eq!(server.faults.count(Kind::Chunk), 6 + 5);
    assert_eq!(server.faults.count(Kind::Complete), 2);
    assert_eq!(done.progress.retries, 7);
    let retries: Vec<Operation> = events.retries().into_iter().map(|r| r.operation).collect();
    assert_eq!(retries.len(), 7);
    assert_eq!(retries[0], Operation::Initiate);
    assert_eq!(retries.last(), Some(&Operation::Complete));
}

#[tokio::test]
async fn retry_after_sets_the_least_wait() {
    let server = Server::start(MIB as u64).await;
    server.faults.fail_with_retry_after(Kind::Initiate, 429, 1);
    // The default number of retries (5), with a cap above the server's
    // wait.
    let policy = quick_retries(5, Duration::from_secs(5));
    let client = server.client().retry(policy).build().unwrap();
    let (done, events) =
        send_recorded(client.upload_reader(std::io::Cursor::new(vec![1u8; 10]), "ten")).await;
    done.unwrap();
    let retries = events.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].attempt, 2);
    assert!(retries[0].delay >= Duration::from_secs(1), "{retries:?}");
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = Server::start(MIB as u64).await;
    let (path, _) = server.file("down.bin", MIB, 11);
    server.faults.fail(Kind::Chunk, usize::MAX, 503);
    let policy = quick_retries(3, Duration::from_millis(5));
    let client = server.client().retry(policy).build().unwrap();
    let e = send(client.upload_file(&path)).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.attempts(), Some(4));
    assert!(e.is_retryable());
    assert!(matches!(
        e,
        Error::Server {
            operation: Operation::Chunk(0),
            ..
        }
    ));
    assert_eq!(server.faults.count(Kind::Chunk), 4);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_a_transport_error() {
    // A port nothing listens on any more.
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client_for(&root).build().unwrap();
    let (result, events) =
        send_recorded(client.upload_reader(std::io::Cursor::new(vec![0u8; 100]), "x")).await;
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                operation: Operation::Initiate,
                attempts: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(events.told().len(), 4, "four retries told");
}

#[tokio::test]
async fn a_corrupted_chunk_is_sent_again() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("corrupt.bin", SIZE, 12);
    // One chunk body is altered on the way: its Content-Digest no longer
    // matches, the server refuses it (422) and the client resends it.
    server.faults.corrupt(Kind::Chunk, 1);
    let client = server.client().build().unwrap();
    let (done, events) = send_recorded(client.upload_file(&path)).await;
    let done = done.expect("uploaded");
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Chunk), 7);
    let resent: Vec<String> = events.retries().into_iter().map(|r| r.error).collect();
    assert_eq!(resent.len(), 1);
    assert!(
        resent[0].contains("422") && resent[0].contains("checksum-mismatch"),
        "{resent:?}"
    );
}

#[tokio::test]
async fn a_chunk_corrupted_every_time_fails_after_a_bounded_number_of_resends() {
    let server = Server::start(MIB as u64).await;
    let (path, _) = server.file("always.bin", MIB, 13);
    server.faults.corrupt(Kind::Chunk, usize::MAX);
    let client = server.client().digest_resends(2).build().unwrap();
    let e = send(client.upload_file(&path)).await.unwrap_err();
    assert_problem(&e, 422, "checksum-mismatch");
    assert_eq!(
        e.problem().and_then(|p| p.extensions.get("chunkId")),
        Some(&serde_json::json!(0))
    );
    assert_eq!(e.attempts(), Some(3));
    assert_eq!(server.faults.count(Kind::Chunk), 3);
}

#[tokio::test]
async fn a_chunk_that_stalls_is_abandoned_and_sent_again() {
    let server = Server::start(MIB as u64).await;
    let (path, data) = server.file("stall.bin", 3 * MIB, 14);
    // The first chunk request is never answered: the connection looks
    // alive, but nothing moves.
    server.faults.hold(Kind::Chunk, 1);
    let client = server
        .client()
        .stall_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let (done, events) = send_recorded(client.upload_file(&path)).await;
    let done = done.expect("uploaded after abandoning the stalled request");
    assert_eq!(server.stored(&done.session).await, data);
    assert!(server.faults.count(Kind::Chunk) > 3);
    let stalls = events
        .retries()
        .into_iter()
        .filter(|r| r.error.contains("no progress and no reply"))
        .count();
    assert!(stalls >= 1, "{:?}", events.told());
}
