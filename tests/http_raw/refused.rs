//! What a raw upload refuses: a missing or unusable file name (`400`), a
//! target that refuses the caller (`403`), an unknown target (`404`), a
//! method other than `POST` (`405`), a file too large (`413`), another media
//! type (`415`), an extension not allowed (`422`). Nothing of a refused
//! upload stays in the data directory.

use async_trait::async_trait;
use reqwest::header::ALLOW;
use reqwest::{Method, StatusCode};
use resumable::http::{Endpoint, RawApi};
use resumable::session::FileMeta;
use resumable::{DefaultPolicy, Error, Owner, Policy};

use crate::*;

/// A target policy that lets nobody upload.
#[derive(Debug)]
struct Nobody;

#[async_trait]
impl Policy for Nobody {
    async fn check_new_upload(&self, _owner: &Owner, _file: &FileMeta) -> Result<(), Error> {
        Err(Error::Forbidden {
            reason: "uploads to this field are closed".into(),
        })
    }
}

/// A server with the raw targets `small` (1000 bytes at most), `images`
/// (`jpg` and `png` only) and `closed` (nobody).
async fn targets_server() -> TestServer {
    TestServer::with_endpoint(|engine| {
        let raw = RawApi::new(engine)
            .target("small", DefaultPolicy::new().max_file_size(1000))
            .target(
                "images",
                DefaultPolicy::new().allow_extensions(["jpg", "png"]),
            )
            .target("closed", Nobody);
        Endpoint::new().raw(raw)
    })
    .await
}

#[tokio::test]
async fn missing_or_unusable_file_names_are_400() {
    let server = TestServer::start(1024).await;
    let resp = server
        .send(Method::POST, DEFAULT, &[OCTET_STREAM], b"abc".to_vec())
        .await;
    let body = problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Disposition")
    );
    for (disposition, code) in [
        ("file; filename=cat.jpg", "invalid-request"),
        ("file; filename*=UTF-8''cat.jpg", "invalid-request"),
        ("file; filename*=\"cat.jpg\"", "invalid-request"),
        ("file; filename=\"\"", "invalid-request"),
        ("file", "invalid-request"),
        ("file; filename=\"open", "invalid-request"),
        ("file; filename=\"../\"", "invalid-file-name"),
    ] {
        let resp = server
            .send(
                Method::POST,
                DEFAULT,
                &[OCTET_STREAM, ("content-disposition", disposition)],
                b"abc".to_vec(),
            )
            .await;
        problem(resp, StatusCode::BAD_REQUEST, code).await;
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn another_media_type_is_415() {
    let server = TestServer::start(1024).await;
    for content_type in [
        "multipart/form-data; boundary=x",
        "application/json",
        "image/png",
    ] {
        let resp = server
            .send(
                Method::POST,
                DEFAULT,
                &[
                    ("content-type", content_type),
                    ("content-disposition", "file; filename=\"a.bin\""),
                ],
                b"abc".to_vec(),
            )
            .await;
        problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn unknown_target_is_404() {
    let server = TestServer::start(1024).await;
    let resp = server
        .raw_post("/file/upload/avatars", "a.jpg", b"abc".to_vec())
        .await;
    problem(resp, StatusCode::NOT_FOUND, "no-such-route").await;
    // Paths that name no target at all are not the dialect's.
    for path in ["/file/upload/", "/file/upload/default/x"] {
        let resp = server.raw_post(path, "a.jpg", b"abc".to_vec()).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn methods_other_than_post_are_405() {
    let server = TestServer::start(1024).await;
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let resp = server.send(method.clone(), DEFAULT, &[], "").await;
        assert_eq!(header_str(&resp, ALLOW.as_str()).as_deref(), Some("POST"));
        problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
}

#[tokio::test]
async fn file_over_the_targets_max_is_413_and_leaves_nothing() {
    let server = targets_server().await;
    let data = source_bytes(1001, 33);
    let resp = server
        .raw_post("/file/upload/small", "big.bin", data.clone())
        .await;
    let body = problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert_eq!(body["maxFileSize"], 1000);
    assert!(server.uploads().is_empty());

    // Without a declared length the limit holds while the bytes arrive.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let resp = server
        .request(Method::POST, "/file/upload/small", None)
        .header(OCTET_STREAM.0, OCTET_STREAM.1)
        .header("content-disposition", "file; filename=\"big.bin\"")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert!(server.uploads().is_empty(), "nothing left in the data dir");

    // The max itself is fine.
    let resp = server
        .raw_post("/file/upload/small", "ok.bin", data[..1000].to_vec())
        .await;
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test]
async fn extension_not_allowed_is_422() {
    let server = targets_server().await;
    for name in ["run.exe", "noextension", "photo.jpg.php"] {
        let resp = server
            .raw_post("/file/upload/images", name, b"abc".to_vec())
            .await;
        problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "extension-not-allowed",
        )
        .await;
    }
    assert!(server.uploads().is_empty());
    let resp = server
        .raw_post("/file/upload/images", "Photo.JPG", b"abc".to_vec())
        .await;
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test]
async fn target_policy_that_refuses_is_403() {
    let server = targets_server().await;
    let resp = server
        .raw_post("/file/upload/closed", "a.txt", b"abc".to_vec())
        .await;
    let body = problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("closed"));
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn body_cut_off_before_its_length_is_refused_and_leaves_nothing() {
    let server = TestServer::start(1024).await;
    let mut request = format!(
        "POST {DEFAULT} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: file; filename=\"cut.bin\"\r\n\
         Content-Length: 1000\r\n\r\n",
        host = server.authority()
    )
    .into_bytes();
    request.extend_from_slice(&[1; 400]);
    let reply = server.raw_cut_off(&request).await.expect("a reply");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        server.uploads().is_empty(),
        "a raw upload is all or nothing"
    );
}
