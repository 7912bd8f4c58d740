//! Refusals that a retry cannot help fail at once, with a typed error that
//! carries the status and the problem details.

use std::io::Cursor;

use resumable::DefaultPolicy;
use resumable::client::{Error, Operation};

use crate::faults::Kind;
use crate::harness::{MIB, Server, assert_problem, send, state_path};

#[tokio::test]
async fn a_file_over_the_limit_fails_at_once_with_the_servers_problem() {
    let server =
        Server::with_policy(MIB as u64, DefaultPolicy::new().max_file_size(MIB as u64)).await;
    let (path, _) = server.file("big.bin", MIB + 1, 20);
    let state = state_path(&path);
    let client = server.client().build().unwrap();
    let e = send(client.upload_file(&path).state_file(&state))
        .await
        .unwrap_err();

    let Error::Server {
        operation,
        status,
        ref problem,
        attempts,
        ..
    } = e
    else {
        panic!("expected a server error, got {e:?}");
    };
    assert_eq!((operation, status, attempts), (Operation::Initiate, 413, 1));
    let problem = problem.as_deref().expect("problem details");
    assert_eq!(problem.code(), Some("file-too-large"));
    assert_eq!(problem.title.as_deref(), Some("Payload Too Large"));
    assert_eq!(problem.status, Some(413));
    assert!(problem.detail.as_deref().is_some_and(|d| !d.is_empty()));
    assert_eq!(problem.extensions["maxFileSize"], serde_json::json!(MIB));
    assert!(!e.is_retryable());
    assert!(
        e.to_string()
            .starts_with("initiate: 413 Payload Too Large (file-too-large): "),
        "{e}"
    );
    assert_eq!(server.faults.count(Kind::Initiate), 1, "not retried");
    assert!(!state.exists(), "no session, no state");
}

#[tokio::test]
async fn client_error_statuses_on_a_chunk_are_not_retried() {
    let server = Server::start(MIB as u64).await;
    let client = server.client().concurrency(1).build().unwrap();
    for status in [400, 403, 404, 409, 410, 413, 415, 422] {
        server.faults.clear();
        server.faults.fail(Kind::Chunk, 1, status);
        let e = send(client.upload_reader(Cursor::new(vec![7u8; 2 * MIB]), "x.bin"))
            .await
            .unwrap_err();
        assert_problem(&e, status, "injected-fault");
        assert_eq!(e.attempts(), Some(1), "{e}");
        assert!(matches!(
            e,
            Error::Server {
                operation: Operation::Chunk(0),
                ..
            }
        ));
        assert_eq!(server.faults.count(Kind::Chunk), 1, "{status} was retried");
        assert_eq!(server.faults.count(Kind::Complete), 0);
    }
}

#[tokio::test]
async fn an_unknown_session_named_for_a_resume_is_an_error() {
    let server = Server::start(MIB as u64).await;
    let client = server.client().build().unwrap();
    let unknown = "0123456789abcdef0123456789abcdef";
    let e = send(
        client
            .upload_reader(Cursor::new(vec![1u8; 10]), "x")
            .resume(unknown),
    )
    .await
    .unwrap_err();
    assert_problem(&e, 404, "session-not-found");
    assert_eq!(server.faults.count(Kind::Initiate), 0, "no new session");

    let e = client
        .upload_reader(Cursor::new(vec![1u8; 10]), "x")
        .resume("../../etc")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
}
