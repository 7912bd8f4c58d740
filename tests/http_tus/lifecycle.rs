//! How a tus upload ends early: termination (`DELETE`, `204`, then `410`),
//! expiry under the clock (`410`), and `X-HTTP-Method-Override`.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::client::*;

/// Asserts that `HEAD`, `PATCH` and `DELETE` of `upload` are all `410`.
async fn assert_gone(server: &TestServer, upload: &str, state: &str) {
    let head = server.tus_head(upload).await;
    assert_eq!(head.status(), StatusCode::GONE);
    assert_tus(&head);
    assert!(header_str(&head, "upload-offset").is_none());
    let patch = server.tus_patch(upload, 0, b"abc", &[]).await;
    let body = problem(patch, StatusCode::GONE, "session-gone").await;
    assert_eq!(body["state"], state);
    let delete = server.tus(Method::DELETE, upload, &[], Vec::new()).await;
    problem(delete, StatusCode::GONE, "session-gone").await;
}

#[tokio::test]
async fn delete_is_204_then_the_upload_is_gone_with_its_bytes() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(100).await;
    server.tus_patch_ok(&upload, 0, &[7; 40]).await;
    assert!(server.upload_dir(id_in(&upload)).is_dir());

    let resp = server.tus(Method::DELETE, &upload, &[], Vec::new()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_tus(&resp);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert!(
        !server.upload_dir(id_in(&upload)).exists(),
        "the terminated upload's bytes are deleted"
    );
    assert_gone(&server, &upload, "aborted").await;
    assert!(server.uploads().is_empty(), "no request brought it back");
}

#[tokio::test]
async fn delete_of_a_completed_upload_removes_its_blob() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(5).await;
    server.tus_patch_ok(&upload, 0, b"hello").await;
    assert_eq!(server.blob(id_in(&upload)), b"hello");
    let resp = server.tus(Method::DELETE, &upload, &[], Vec::new()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!server.upload_dir(id_in(&upload)).exists());
    assert_gone(&server, &upload, "aborted").await;
}

#[tokio::test]
async fn expired_upload_is_410_and_the_sweep_deletes_its_bytes() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(100).await;
    server.tus_patch_ok(&upload, 0, &[1; 10]).await;

    // Activity extends the expiry; just before it, the upload is there.
    server.clock.advance(EXPIRY - Duration::from_secs(1));
    assert_eq!(server.tus_offset(&upload).await, 10);
    let resp = server.tus_patch(&upload, 10, &[2; 10], &[]).await;
    let expires = header_str(&resp, "upload-expires").unwrap();
    assert_eq!(
        httpdate::parse_http_date(&expires).unwrap(),
        server.now() + EXPIRY
    );
    server.clock.advance(EXPIRY - Duration::from_secs(1));
    assert_eq!(server.tus_offset(&upload).await, 20);

    server.clock.advance(Duration::from_secs(1));
    assert_gone(&server, &upload, "expired").await;
    assert!(
        server.upload_dir(id_in(&upload)).is_dir(),
        "until the sweep"
    );
    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert!(server.uploads().is_empty());
    assert_gone(&server, &upload, "expired").await;
}

#[tokio::test]
async fn method_override_turns_a_post_into_patch_or_delete() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(6).await;
    let resp = server
        .tus(
            Method::POST,
            &upload,
            &[
                ("x-http-method-override", "PATCH"),
                OFFSET_STREAM,
                ("upload-offset", "0"),
            ],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&resp), Some(3));
    assert_eq!(server.tus_offset(&upload).await, 3);

    // The override is the method, down to the rules of a PATCH.
    let resp = server
        .tus(
            Method::POST,
            &upload,
            &[("x-http-method-override", "PATCH"), ("upload-offset", "3")],
            b"def".to_vec(),
        )
        .await;
    problem(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;

    let resp = server
        .tus(
            Method::POST,
            &upload,
            &[("x-http-method-override", "DELETE")],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!server.upload_dir(id_in(&upload)).exists());
    assert_gone(&server, &upload, "aborted").await;
}
