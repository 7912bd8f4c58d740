//! `HEAD` (`200` and everything a client resumes from) and `PATCH` (`204`,
//! and `400`, `409`, `413`, `415`), deferred lengths and completed uploads.

use reqwest::StatusCode;
use reqwest::header::CACHE_CONTROL;

use crate::client::*;

#[tokio::test]
async fn head_is_200_with_offset_length_metadata_in_client_order_and_no_store() {
    let server = TestServer::start(1024).await;
    let metadata = format!(
        "zeta {},alpha {},flag,filename {}",
        b64(b"last first"),
        b64(b"\x00\xffbytes"),
        b64("cät.jpg".as_bytes())
    );
    let upload = server
        .tus_create(&[("upload-length", "10"), ("upload-metadata", &metadata)])
        .await;
    server.tus_patch_ok(&upload, 0, b"0123").await;
    let head = server.tus_head(&upload).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_tus(&head);
    assert_eq!(upload_offset(&head), Some(4));
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("10"));
    assert!(header_str(&head, "upload-defer-length").is_none());
    assert_eq!(
        header_str(&head, "upload-metadata").as_deref(),
        Some(metadata.as_str()),
        "echoed as the client sent it, in its order"
    );
    assert_eq!(
        header_str(&head, CACHE_CONTROL.as_str()).as_deref(),
        Some("no-store")
    );
    assert!(header_str(&head, "upload-concat").is_none());
    let expires = header_str(&head, "upload-expires").expect("Upload-Expires");
    assert!(httpdate::parse_http_date(&expires).is_ok());
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn deferred_length_shows_in_head_and_a_later_patch_sets_it() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(700, 3);
    let upload = server.tus_create(&[("upload-defer-length", "1")]).await;
    let head = server.tus_head(&upload).await;
    assert_eq!(upload_offset(&head), Some(0));
    assert_eq!(
        header_str(&head, "upload-defer-length").as_deref(),
        Some("1")
    );
    assert!(header_str(&head, "upload-length").is_none());

    assert_eq!(server.tus_patch_ok(&upload, 0, &data[..300]).await, 300);
    let head = server.tus_head(&upload).await;
    assert_eq!(
        header_str(&head, "upload-defer-length").as_deref(),
        Some("1"),
        "still unknown"
    );

    // The last PATCH names the length; the upload completes with it.
    let resp = server
        .tus_patch(&upload, 300, &data[300..], &[("upload-length", "700")])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(upload_offset(&resp), Some(700));
    let head = server.tus_head(&upload).await;
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("700"));
    assert!(header_str(&head, "upload-defer-length").is_none());
    assert_eq!(upload_offset(&head), Some(700));
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn a_length_once_set_cannot_change() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    let resp = server
        .tus_patch(&upload, 0, b"abc", &[("upload-length", "12")])
        .await;
    problem(resp, StatusCode::BAD_REQUEST, "inconsistent-upload-length").await;
    assert_eq!(server.tus_offset(&upload).await, 0);

    // A deferred length below what already arrived.
    let deferred = server.tus_create(&[("upload-defer-length", "1")]).await;
    server.tus_patch_ok(&deferred, 0, b"abcdef").await;
    let resp = server
        .tus_patch(&deferred, 6, b"gh", &[("upload-length", "4")])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.tus_offset(&deferred).await, 6);
}

#[tokio::test]
async fn patch_is_204_with_upload_offset_and_upload_expires() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(2500, 4);
    let upload = server.tus_create_len(data.len()).await;
    let mut offset = 0;
    for piece in data.chunks(1000) {
        let resp = server.tus_patch(&upload, offset, piece, &[]).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_tus(&resp);
        offset += piece.len();
        assert_eq!(upload_offset(&resp), Some(offset as u64));
        let expires = header_str(&resp, "upload-expires");
        if offset < data.len() {
            let at = httpdate::parse_http_date(&expires.expect("Upload-Expires")).unwrap();
            assert_eq!(at, server.now() + EXPIRY);
        } else {
            assert!(expires.is_none(), "a completed upload does not expire");
        }
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn patch_of_another_media_type_is_415() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    for content_type in [
        Some("application/octet-stream"),
        Some("text/plain"),
        Some("application/partial-upload"),
        None,
    ] {
        let mut headers = vec![("upload-offset", "0")];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let resp = server
            .tus(reqwest::Method::PATCH, &upload, &headers, b"abc".to_vec())
            .await;
        assert_tus(&resp);
        problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    assert_eq!(server.tus_offset(&upload).await, 0);
}

#[tokio::test]
async fn patch_without_or_with_a_garbled_upload_offset_is_400() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    let resp = server
        .tus(
            reqwest::Method::PATCH,
            &upload,
            &[OFFSET_STREAM],
            b"abc".to_vec(),
        )
        .await;
    problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    for garbled in ["", "-1", "zero", "0x0", "1.0", " 0 1"] {
        let resp = server
            .tus(
                reqwest::Method::PATCH,
                &upload,
                &[OFFSET_STREAM, ("upload-offset", garbled)],
                b"abc".to_vec(),
            )
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(server.tus_offset(&upload).await, 0);
}

#[tokio::test]
async fn patch_at_a_wrong_offset_is_409_and_tells_the_right_one() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    server.tus_patch_ok(&upload, 0, b"0123").await;
    for wrong in [0, 3, 5, 10] {
        let resp = server.tus_patch(&upload, wrong, b"45", &[]).await;
        assert_tus(&resp);
        assert_eq!(upload_offset(&resp), Some(4), "the right offset");
        problem(resp, StatusCode::CONFLICT, "mismatching-upload-offset").await;
    }
    assert_eq!(server.tus_offset(&upload).await, 4, "nothing was modified");
    assert_eq!(server.tus_patch_ok(&upload, 4, b"456789").await, 10);
    assert_eq!(server.blob(id_in(&upload)), b"0123456789");
}

#[tokio::test]
async fn patch_past_upload_length_is_413_and_keeps_nothing() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    server.tus_patch_ok(&upload, 0, b"0123").await;
    let resp = server.tus_patch(&upload, 4, b"4567890123", &[]).await;
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "beyond-upload-length").await;
    assert_eq!(server.tus_offset(&upload).await, 4);
    assert_eq!(server.tus_patch_ok(&upload, 4, b"456789").await, 10);
    assert_eq!(server.blob(id_in(&upload)), b"0123456789");
}

#[tokio::test]
async fn patch_to_a_completed_upload_at_its_end_is_204() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(6).await;
    assert_eq!(server.tus_patch_ok(&upload, 0, b"abcdef").await, 6);
    // A client that lost the reply sends an empty PATCH at the end.
    let resp = server.tus_patch(&upload, 6, b"", &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::NO_CONTENT,
        "{:?}",
        resp.headers()
    );
    assert_eq!(upload_offset(&resp), Some(6), "{:?}", resp.headers());
    // Elsewhere, the offset is wrong.
    let resp = server.tus_patch(&upload, 2, b"cdef", &[]).await;
    assert_eq!(upload_offset(&resp), Some(6));
    problem(resp, StatusCode::CONFLICT, "mismatching-upload-offset").await;
    assert_eq!(server.blob(id_in(&upload)), b"abcdef");
}
