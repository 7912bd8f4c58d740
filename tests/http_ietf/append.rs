//! Offset retrieval (`HEAD`, `204`) and appends (`PATCH`): `204`, and what
//! they refuse (`400`, `409`, `410`, `415`, `422`).

use reqwest::header::CACHE_CONTROL;
use reqwest::{Method, StatusCode};

use crate::client::*;

#[tokio::test]
async fn head_is_204_with_offset_complete_length_limits_and_no_store() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[("upload-length", "100")]).await;
    let resp = server.ietf_patch(&upload, 0, &[5; 40], false, &[]).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let head = server.ietf_head(&upload).await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&head), Some(40));
    assert_eq!(header_str(&head, "upload-complete").as_deref(), Some("?0"));
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("100"));
    assert_eq!(
        header_str(&head, CACHE_CONTROL.as_str()).as_deref(),
        Some("no-store")
    );
    assert_eq!(upload_limit(&head).get("max-age"), Some(&EXPIRY.as_secs()));
    assert_eq!(
        header_str(&head, "upload-draft-interop-version").as_deref(),
        Some("8")
    );
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn appends_are_204_and_the_last_completes_with_repr_digest() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(4000, 24);
    let upload = server.ietf_create(&[]).await;
    let resp = server
        .ietf_patch(&upload, 0, &data[..1500], false, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&resp), Some(1500));
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?0"));
    assert!(header_str(&resp, "repr-digest").is_none());

    let resp = server
        .ietf_patch(&upload, 1500, &data[1500..], true, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&resp), Some(4000));
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?1"));
    assert_eq!(header_str(&resp, "upload-length").as_deref(), Some("4000"));
    assert_eq!(header_str(&resp, "repr-digest"), Some(repr_digest(&data)));
    assert_eq!(server.blob(id_in(&upload)), data);

    let head = server.ietf_head(&upload).await;
    assert_eq!(header_str(&head, "upload-complete").as_deref(), Some("?1"));
    assert_eq!(upload_offset(&head), Some(4000));
}

#[tokio::test]
async fn an_empty_append_with_complete_finishes_the_upload() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.ietf_patch(&upload, 0, b"abc", false, &[]).await;
    let resp = server
        .ietf_patch(&upload, 3, b"", true, &[("content-length", "0")])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?1"));
    assert_eq!(server.blob(id_in(&upload)), b"abc");
}

#[tokio::test]
async fn append_without_partial_upload_media_type_is_415_from_version_6() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    for version in ["6", "7", "8"] {
        for content_type in [Some("application/octet-stream"), None] {
            let mut headers = vec![
                ("upload-draft-interop-version", version),
                ("upload-offset", "0"),
                ("upload-complete", "?0"),
            ];
            headers.extend(content_type.map(|ct| ("content-type", ct)));
            let resp = server
                .ietf(Method::PATCH, &upload, &headers, b"abc".to_vec())
                .await;
            problem(
                resp,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            )
            .await;
        }
    }
    assert_eq!(server.ietf_offset(&upload).await, 0);

    // Version 5 took any media type.
    let resp = server
        .ietf(
            Method::PATCH,
            &upload,
            &[
                ("upload-draft-interop-version", "5"),
                ("upload-offset", "0"),
                ("upload-complete", "?0"),
                ("content-type", "application/octet-stream"),
            ],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&resp), Some(3));
}

#[tokio::test]
async fn append_without_a_valid_upload_offset_is_400() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    for offset in [None, Some("-1"), Some("abc"), Some("1.5")] {
        let mut headers = vec![V8, PARTIAL_UPLOAD, ("upload-complete", "?0")];
        headers.extend(offset.map(|o| ("upload-offset", o)));
        let resp = server
            .ietf(Method::PATCH, &upload, &headers, b"abc".to_vec())
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(server.ietf_offset(&upload).await, 0);
}

#[tokio::test]
async fn append_at_a_wrong_offset_is_409_mismatching_upload_offset() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.ietf_patch(&upload, 0, b"0123", false, &[]).await;
    for wrong in [0, 2, 9] {
        let resp = server.ietf_patch(&upload, wrong, b"45", false, &[]).await;
        assert_eq!(upload_offset(&resp), Some(4), "the right offset");
        let body = draft_problem(resp, StatusCode::CONFLICT, "mismatching-upload-offset").await;
        assert_eq!(body["title"], "Mismatching Upload Offset");
        assert_eq!(body["expected-offset"], 4);
        assert_eq!(body["provided-offset"], wrong);
    }
    assert_eq!(server.ietf_offset(&upload).await, 4);
}

#[tokio::test]
async fn appending_to_a_completed_upload_is_400_with_bytes_and_410_without() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.ietf_patch(&upload, 0, b"done", true, &[]).await;
    let resp = server.ietf_patch(&upload, 4, b"more", false, &[]).await;
    draft_problem(resp, StatusCode::BAD_REQUEST, "inconsistent-upload-length").await;
    // Empty: with `Content-Length: 0`, and with no body headers at all.
    for extra in [vec![("content-length", "0")], vec![]] {
        let resp = server.ietf_patch(&upload, 4, b"", true, &extra).await;
        let body = draft_problem(resp, StatusCode::GONE, "completed-upload").await;
        assert_eq!(body["title"], "Upload Is Completed");
    }
    assert_eq!(server.blob(id_in(&upload)), b"done");
}

#[tokio::test]
async fn append_past_upload_length_is_400_inconsistent_length() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[("upload-length", "5")]).await;
    let resp = server.ietf_patch(&upload, 0, b"abcdefgh", false, &[]).await;
    draft_problem(resp, StatusCode::BAD_REQUEST, "inconsistent-upload-length").await;
    // Completing with another length than the one announced.
    let resp = server.ietf_patch(&upload, 0, b"abc", true, &[]).await;
    draft_problem(resp, StatusCode::BAD_REQUEST, "inconsistent-upload-length").await;
    assert_eq!(server.ietf_offset(&upload).await, 0);
}

#[tokio::test]
async fn content_digest_mismatch_is_422_and_the_offset_stays() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    let wrong = content_digest(b"other bytes");
    let resp = server
        .ietf_patch(&upload, 0, b"abcdef", false, &[("content-digest", &wrong)])
        .await;
    problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "checksum-mismatch").await;
    assert_eq!(server.ietf_offset(&upload).await, 0);
    let right = content_digest(b"abcdef");
    let resp = server
        .ietf_patch(&upload, 0, b"abcdef", true, &[("content-digest", &right)])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.blob(id_in(&upload)), b"abcdef");
}
