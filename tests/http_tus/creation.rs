//! Creation (`POST`): `201` with an absolute `Location` and `Upload-Expires`,
//! the length headers (`400`), the size limit (`413`), `Upload-Metadata`,
//! creation-with-upload and the empty upload.

use std::time::UNIX_EPOCH;

use reqwest::{Method, StatusCode};
use resumable::Owner;

use crate::client::*;

#[tokio::test]
async fn creation_is_201_with_absolute_location_and_upload_expires() {
    let server = TestServer::start(1024).await;
    let resp = server.tus_post(&[("upload-length", "100")]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_tus(&resp);
    let location = location(&resp);
    let prefix = format!("http://{}/files/", server.authority());
    let id = location.strip_prefix(&prefix).expect("an absolute URL");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{location}"
    );
    let expires = header_str(&resp, "upload-expires").expect("Upload-Expires");
    assert!(expires.ends_with(" GMT"), "an HTTP date: {expires}");
    assert_eq!(
        httpdate::parse_http_date(&expires).unwrap(),
        UNIX_EPOCH + START + EXPIRY,
        "the session timeout from now"
    );
    assert!(
        header_str(&resp, "upload-offset").is_none(),
        "no body, no offset"
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(server.tus_offset(&server.path_of(&location)).await, 0);
}

#[tokio::test]
async fn length_headers_both_neither_or_a_bad_value_are_400() {
    let server = TestServer::start(1024).await;
    for headers in [
        vec![("upload-length", "10"), ("upload-defer-length", "1")],
        vec![],
        vec![("upload-defer-length", "0")],
        vec![("upload-defer-length", "yes")],
        vec![("upload-length", "-1")],
        vec![("upload-length", "ten")],
        vec![("upload-length", "1.5")],
    ] {
        let resp = server.tus_post(&headers).await;
        assert_tus(&resp);
        assert!(header_str(&resp, "location").is_none());
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert!(server.uploads().is_empty(), "nothing was created");
}

#[tokio::test]
async fn length_over_the_max_is_413() {
    let server = TestServer::start(1024).await;
    let max = server.engine.max_file_size(&Owner::anonymous()).unwrap();
    let over = (max + 1).to_string();
    let body = problem(
        server.tus_post(&[("upload-length", &over)]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "file-too-large",
    )
    .await;
    assert_eq!(body["maxFileSize"], max);
    assert!(server.uploads().is_empty());
    // The max itself is fine.
    server
        .tus_create(&[("upload-length", &max.to_string())])
        .await;
}

#[tokio::test]
async fn malformed_upload_metadata_is_400() {
    let server = TestServer::start(1024).await;
    for metadata in [
        "filename !!!notbase64",
        "filename YQ==,filename Yg==",
        ",filename YQ==",
        "filename YQ== YQ==",
    ] {
        let resp = server
            .tus_post(&[("upload-length", "10"), ("upload-metadata", metadata)])
            .await;
        let body = problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
        assert!(
            body["detail"].as_str().unwrap().contains("Upload-Metadata"),
            "{metadata}: {body}"
        );
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn empty_upload_metadata_is_no_metadata() {
    let server = TestServer::start(1024).await;
    let upload = server
        .tus_create(&[("upload-length", "10"), ("upload-metadata", "")])
        .await;
    let head = server.tus_head(&upload).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(header_str(&head, "upload-metadata").is_none());
}

#[tokio::test]
async fn creation_with_upload_is_201_with_upload_offset() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(1000, 1);
    let resp = server
        .tus(
            Method::POST,
            FILES,
            &[("upload-length", "1000"), OFFSET_STREAM],
            data[..400].to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(upload_offset(&resp), Some(400));
    assert!(header_str(&resp, "upload-expires").is_some());
    let upload = server.path_of(&location(&resp));
    assert_eq!(server.tus_offset(&upload).await, 400);

    assert_eq!(server.tus_patch_ok(&upload, 400, &data[400..]).await, 1000);
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn creation_with_the_whole_upload_completes_it() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(300, 2);
    let resp = server
        .tus(
            Method::POST,
            FILES,
            &[("upload-length", "300"), OFFSET_STREAM],
            data.clone(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(upload_offset(&resp), Some(300));
    assert!(
        header_str(&resp, "upload-expires").is_none(),
        "a completed upload does not expire"
    );
    let upload = server.path_of(&location(&resp));
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn zero_length_upload_is_complete_at_creation() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create(&[("upload-length", "0")]).await;
    let head = server.tus_head(&upload).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(upload_offset(&head), Some(0));
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("0"));
    assert!(header_str(&head, "upload-defer-length").is_none());
    assert_eq!(server.blob(id_in(&upload)), b"");
    let status = server
        .engine
        .status(&Owner::anonymous(), id_in(&upload).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(status.state.as_str(), "completed");
}
