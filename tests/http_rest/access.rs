//! Sessions and routes a request cannot reach: unknown or malformed ids,
//! another owner's session, wrong methods and unknown routes.

use reqwest::header::ALLOW;
use reqwest::{Method, StatusCode};

use crate::server::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_malformed_session_id_is_not_found() {
    let server = Server::start(1024).await;
    // A real session exists, so "not found" is not just an empty store.
    server.open(None, "real.bin", 10).await;

    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let malformed = [
        "..%2F..%2Fetc",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "not-a-session",
        "0123456789abcdef0123456789abcdeg",
    ];
    for id in std::iter::once(unknown.as_str()).chain(malformed) {
        let replies = [
            server.status(None, id).await,
            server.put(None, id, "0", b"0123456789", false).await,
            server.complete(None, id).await,
            server.abort(None, id).await,
        ];
        for resp in replies {
            problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owners_session_looks_unknown() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK, 9);
    let alice = Some("alice");
    let id = id_of(&server.open(alice, "private.bin", data.len()).await);
    server.put_new_chunk(alice, &id, &data, 0, false).await;

    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let unknown_type = problem(
        server.status(Some("bob"), &unknown).await,
        StatusCode::NOT_FOUND,
        "session-not-found",
    )
    .await["type"]
        .clone();

    for intruder in [Some("bob"), None] {
        let replies = [
            server.status(intruder, &id).await,
            server.put_chunk(intruder, &id, &data, 1, false).await,
            server
                .put(intruder, &id, "0", chunk_of(&data, CHUNK, 1), false)
                .await,
            server.complete(intruder, &id).await,
            server.abort(intruder, &id).await,
        ];
        for resp in replies {
            let p = problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
            assert_eq!(p["type"], unknown_type);
        }
    }

    let status = server.status_ok(alice, &id).await;
    assert_eq!(status["state"], "open");
    assert_eq!(u64s(&status["receivedChunks"]), [0]);
    assert!(server.upload_dir(&id).is_dir());
    server.put_new_chunk(alice, &id, &data, 1, false).await;
    let done = json_of(server.complete(alice, &id).await, StatusCode::OK).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_and_unknown_route() {
    let server = Server::start(1024).await;
    let id = id_of(&server.open(None, "m.bin", 10).await);

    let cases = [
        (Method::DELETE, format!("/attachment/session/{id}"), "GET"),
        (Method::PUT, format!("/attachment/session/{id}"), "GET"),
        (Method::GET, "/attachment/initiate".to_owned(), "POST"),
        (
            Method::GET,
            format!("/attachment/session/{id}/complete"),
            "POST",
        ),
        (
            Method::DELETE,
            format!("/attachment/session/{id}/abort"),
            "POST",
        ),
        (
            Method::POST,
            format!("/attachment/session/{id}/upload/0"),
            "PUT",
        ),
    ];
    for (method, path, allow) in cases {
        let resp = server.request(method, &path, None).send().await.unwrap();
        assert_eq!(
            header_str(&resp, ALLOW.as_str()).as_deref(),
            Some(allow),
            "{path}"
        );
        problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
    // The session survived the DELETE.
    assert_eq!(server.status_ok(None, &id).await["state"], "open");

    for path in [
        "/attachment/".to_owned(),
        "/attachment/nope".to_owned(),
        "/attachment/session".to_owned(),
        format!("/attachment/session/{id}/upload"),
        format!("/attachment/session/{id}/upload/0/extra"),
        format!("/attachment/session/{id}/claim"),
        "/attachment/initiate/".to_owned(),
    ] {
        let resp = server
            .request(Method::GET, &path, None)
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::NOT_FOUND, "no-such-route").await;
    }
    // Outside the API's base path the router answers a bare 404.
    for path in ["/", "/attachment", "/attachments/initiate", "/elsewhere"] {
        let resp = server
            .request(Method::POST, path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
