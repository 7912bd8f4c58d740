//! Cancellation (`DELETE`, `204`, then `410`), expiry (`410`), unknown
//! uploads and other owners' (`404`), wrong methods (`405`), and a limit on
//! the size of one append (`413`).

use std::time::Duration;

use reqwest::header::ALLOW;
use reqwest::{Method, StatusCode};
use resumable::http::{Endpoint, IetfApi};

use crate::client::*;

#[tokio::test]
async fn delete_is_204_then_the_upload_is_gone_with_its_bytes() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.ietf_patch(&upload, 0, &[9; 100], false, &[]).await;
    assert!(server.upload_dir(id_in(&upload)).is_dir());
    let resp = server
        .ietf(Method::DELETE, &upload, &[V8], Vec::new())
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!server.upload_dir(id_in(&upload)).exists());

    let head = server.ietf_head(&upload).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert!(header_str(&head, "upload-offset").is_none());
    let resp = server.ietf_patch(&upload, 100, b"x", false, &[]).await;
    let body = problem(resp, StatusCode::GONE, "session-gone").await;
    assert_eq!(body["state"], "aborted");
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn expired_upload_is_410() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.clock.advance(EXPIRY - Duration::from_secs(1));
    assert_eq!(server.ietf_offset(&upload).await, 0);
    server.clock.advance(Duration::from_secs(1));
    let head = server.ietf_head(&upload).await;
    assert_eq!(head.status(), StatusCode::GONE);
    let resp = server.ietf_patch(&upload, 0, b"late", false, &[]).await;
    let body = problem(resp, StatusCode::GONE, "session-gone").await;
    assert_eq!(body["state"], "expired");
}

#[tokio::test]
async fn unknown_and_other_owners_uploads_are_404() {
    let server = TestServer::start(1024).await;
    let unknown = format!("{UPLOADS}/0123456789abcdef0123456789abcdef");
    for path in [unknown.as_str(), "/uploads/nope"] {
        let head = server.ietf_head(path).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{path}");
        let resp = server.ietf_patch(path, 0, b"x", false, &[]).await;
        problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
    }

    let resp = server
        .request(Method::POST, UPLOADS, Some("alice"))
        .header(V8.0, V8.1)
        .header("upload-complete", "?0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let upload = server.path_of(&location(&resp));
    let head = server
        .request(Method::HEAD, &upload, Some("bob"))
        .header(V8.0, V8.1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let resp = server.ietf_patch(&upload, 0, b"x", false, &[]).await;
    problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
    let resp = server
        .ietf(Method::DELETE, &upload, &[V8], Vec::new())
        .await;
    problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    for (method, path, allow) in [
        (Method::GET, upload.as_str(), "OPTIONS, HEAD, PATCH, DELETE"),
        (Method::PUT, upload.as_str(), "OPTIONS, HEAD, PATCH, DELETE"),
        (Method::GET, UPLOADS, "OPTIONS, POST"),
    ] {
        let resp = server.ietf(method, path, &[V8], Vec::new()).await;
        assert_eq!(header_str(&resp, ALLOW.as_str()).as_deref(), Some(allow));
        problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
}

#[tokio::test]
async fn max_append_size_is_announced_and_a_larger_append_is_413() {
    let server = TestServer::with_endpoint(|engine| {
        Endpoint::new().ietf(IetfApi::new(engine).with_max_append_size(1000))
    })
    .await;
    let resp = server
        .ietf(Method::OPTIONS, UPLOADS, &[V8], Vec::new())
        .await;
    assert_eq!(upload_limit(&resp).get("max-append-size"), Some(&1000));

    let data = source_bytes(1500, 25);
    let upload = server.ietf_create(&[]).await;
    let resp = server.ietf_patch(&upload, 0, &data, false, &[]).await;
    assert_eq!(upload_limit(&resp).get("max-append-size"), Some(&1000));
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert_eq!(server.ietf_offset(&upload).await, 0);

    // A creation carrying too much is refused before anything is made.
    let resp = server.ietf_post(&[("upload-complete", "?1")], &data).await;
    assert!(header_str(&resp, "location").is_none());
    assert_eq!(upload_limit(&resp).get("max-append-size"), Some(&1000));
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert_eq!(server.uploads(), vec![id_in(&upload).to_owned()]);

    // In pieces that fit, it goes through.
    for (offset, piece) in [(0, &data[..1000]), (1000, &data[1000..])] {
        let resp = server
            .ietf_patch(&upload, offset, piece, offset > 0, &[])
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(server.blob(id_in(&upload)), data);
}
