//! Retryable failures are retried (and only as often as allowed); a chunk
//! the server finds corrupted is sent again.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use resumable::client::{Error, Event, Operation, RetryPolicy};

use crate::faults::Kind;
use crate::harness::{Events, MIB, SIZE, Server, bounded, client_for, file};

#[tokio::test]
async fn transient_failures_are_retried_until_the_upload_succeeds() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "flaky.bin", SIZE, 10);
    server.faults.fail(Kind::Initiate, 1, 502);
    server.faults.fail(Kind::Chunk, 3, 503);
    server.faults.fail(Kind::Chunk, 1, 500);
    server.faults.fail(Kind::Chunk, 1, 408);
    server.faults.fail(Kind::Complete, 1, 504);
    let events = Events::default();
    // Enough retries that one chunk meeting every fault still succeeds.
    let client = server
        .client()
        .retry(
            RetryPolicy::new()
                .max_retries(10)
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let done = bounded(
        "the upload",
        client.upload_file(&path).on_event(events.recorder()).send(),
    )
    .await
    .expect("uploaded despite the faults");

    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Initiate), 2);
    assert_eq!(server.faults.count(Kind::Chunk), 6 + 5);
    assert_eq!(server.faults.count(Kind::Complete), 2);
    assert_eq!(done.progress.retries, 7);
    let retries: Vec<Operation> = events
        .told()
        .into_iter()
        .filter_map(|e| match e {
            Event::Retrying { operation, .. } => Some(operation),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 7);
    assert_eq!(retries[0], Operation::Initiate);
    assert_eq!(retries.last(), Some(&Operation::Complete));
}

#[tokio::test]
async fn retry_after_sets_the_least_wait() {
    let server = Server::start(MIB as u64).await;
    server.faults.fail_with_retry_after(Kind::Initiate, 429, 1);
    let events = Events::default();
    let client = server
        .client()
        .retry(
            RetryPolicy::new()
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_secs(5)),
        )
        .build()
        .unwrap();
    bounded(
        "the upload",
        client
            .upload_reader(std::io::Cursor::new(vec![1u8; 10]), "ten")
            .on_event(events.recorder())
            .send(),
    )
    .await
    .unwrap();
    let delays: Vec<Duration> = events
        .told()
        .into_iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, attempt, .. } => {
                assert_eq!(attempt, 2);
                Some(delay)
            }
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 1);
    assert!(delays[0] >= Duration::from_secs(1), "{delays:?}");
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "down.bin", MIB, 11);
    server.faults.fail(Kind::Chunk, usize::MAX, 503);
    let client = server
        .client()
        .retry(
            RetryPolicy::new()
                .max_retries(3)
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let e = bounded("the upload", client.upload_file(&path).send())
        .await
        .unwrap_err();
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
    let events = Events::default();
    let client = client_for(&root).build().unwrap();
    let e = bounded(
        "the upload",
        client
            .upload_reader(std::io::Cursor::new(vec![0u8; 100]), "x")
            .on_event(events.recorder())
            .send(),
    )
    .await
    .unwrap_err();
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
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "corrupt.bin", SIZE, 12);
    // One chunk body is altered on the way: its Content-Digest no longer
    // matches, the server refuses it (422) and the client resends it.
    server.faults.corrupt(Kind::Chunk, 1);
    let events = Events::default();
    let client = server.client().build().unwrap();
    let done = bounded(
        "the upload",
        client.upload_file(&path).on_event(events.recorder()).send(),
    )
    .await
    .expect("uploaded");
    assert_eq!(server.stored(&done.session).await, data);
    assert_eq!(server.faults.count(Kind::Chunk), 7);
    let resent: Vec<String> = events
        .told()
        .into_iter()
        .filter_map(|e| match e {
            Event::Retrying { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(resent.len(), 1);
    assert!(
        resent[0].contains("422") && resent[0].contains("checksum-mismatch"),
        "{resent:?}"
    );
}

#[tokio::test]
async fn a_chunk_corrupted_every_time_fails_after_a_bounded_number_of_resends() {
    let server = Server::start(MIB as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "always.bin", MIB, 13);
    server.faults.corrupt(Kind::Chunk, usize::MAX);
    let client = server.client().digest_resends(2).build().unwrap();
    let e = bounded("the upload", client.upload_file(&path).send())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    assert_eq!(
        e.problem().and_then(|p| p.code()),
        Some("checksum-mismatch")
    );
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
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "stall.bin", 3 * MIB, 14);
    // The first chunk request is never answered: the connection looks
    // alive, but nothing moves.
    server.faults.hold(Kind::Chunk, 1);
    let events = Events::default();
    let client = server
        .client()
        .stall_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let done = bounded(
        "the upload",
        client.upload_file(&path).on_event(events.recorder()).send(),
    )
    .await
    .expect("uploaded after abandoning the stalled request");
    assert_eq!(server.stored(&done.session).await, data);
    assert!(server.faults.count(Kind::Chunk) > 3);
    let stalls = events
        .told()
        .into_iter()
        .filter(|e| matches!(e, Event::Retrying { error, .. } if error.contains("no progress and no reply")))
        .count();
    assert!(stalls >= 1, "{:?}", events.told());
}
