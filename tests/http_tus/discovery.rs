//! What a tus client learns before it uploads, and the requests refused
//! before any upload is touched: `OPTIONS`, the protocol version (`412`),
//! wrong methods (`405`) and unknown uploads (`404`).

use std::collections::BTreeSet;

use reqwest::header::ALLOW;
use reqwest::{Method, StatusCode};
use resumable::Owner;

use crate::client::*;

/// The extensions the dialect implements.
const EXTENSIONS: [&str; 9] = [
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "checksum-trailer",
    "termination",
    "concatenation",
    "concatenation-unfinished",
];

fn list(value: &str) -> BTreeSet<String> {
    value.split(',').map(|v| v.trim().to_owned()).collect()
}

#[tokio::test]
async fn options_answers_204_with_version_extensions_algorithms_and_max_size() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    // No Tus-Resumable needed, and a wrong one is ignored.
    for (path, headers) in [
        (FILES, vec![]),
        (upload.as_str(), vec![("tus-resumable", "0.2.2")]),
    ] {
        let resp = server.send(Method::OPTIONS, path, &headers, "").await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert_tus(&resp);
        assert_eq!(header_str(&resp, "tus-version").as_deref(), Some("1.0.0"));
        let extensions = list(&header_str(&resp, "tus-extension").unwrap());
        let expected: BTreeSet<String> = EXTENSIONS.iter().map(|e| e.to_string()).collect();
        assert_eq!(extensions, expected);
        let algorithms = list(&header_str(&resp, "tus-checksum-algorithm").unwrap());
        for alg in ["sha1", "sha256", "md5"] {
            assert!(algorithms.contains(alg), "{alg} in {algorithms:?}");
        }
        let max = server.engine.max_file_size(&Owner::anonymous()).unwrap();
        assert_eq!(
            header_str(&resp, "tus-max-size"),
            Some(max.to_string()),
            "the engine's limit"
        );
        assert!(resp.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn missing_tus_resumable_is_412_with_tus_version_and_nothing_is_created() {
    let server = TestServer::start(1024).await;
    let resp = server
        .send(Method::POST, FILES, &[("upload-length", "10")], "")
        .await;
    assert_eq!(header_str(&resp, "tus-version").as_deref(), Some("1.0.0"));
    assert!(header_str(&resp, "location").is_none());
    problem(
        resp,
        StatusCode::PRECONDITION_FAILED,
        "unsupported-tus-version",
    )
    .await;
    assert!(server.uploads().is_empty(), "the request was not processed");

    // On an upload too, HEAD included.
    let upload = server.tus_create_len(10).await;
    let resp = server.send(Method::HEAD, &upload, &[], "").await;
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header_str(&resp, "tus-version").as_deref(), Some("1.0.0"));
    assert!(header_str(&resp, "upload-offset").is_none());
    let resp = server
        .send(
            Method::PATCH,
            &upload,
            &[OFFSET_STREAM, ("upload-offset", "0")],
            b"abc".to_vec(),
        )
        .await;
    problem(
        resp,
        StatusCode::PRECONDITION_FAILED,
        "unsupported-tus-version",
    )
    .await;
    assert_eq!(server.tus_offset(&upload).await, 0, "no byte was taken");
}

#[tokio::test]
async fn wrong_tus_resumable_is_412_with_tus_version() {
    let server = TestServer::start(1024).await;
    let resp = server
        .send(
            Method::POST,
            FILES,
            &[("tus-resumable", "0.2.2"), ("upload-length", "10")],
            "",
        )
        .await;
    assert_tus(&resp);
    assert_eq!(header_str(&resp, "tus-version").as_deref(), Some("1.0.0"));
    let body = problem(
        resp,
        StatusCode::PRECONDITION_FAILED,
        "unsupported-tus-version",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("0.2.2"));
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    for (method, path, allow) in [
        (Method::GET, upload.as_str(), "OPTIONS, HEAD, PATCH, DELETE"),
        (
            Method::POST,
            upload.as_str(),
            "OPTIONS, HEAD, PATCH, DELETE",
        ),
        (Method::PUT, FILES, "OPTIONS, POST"),
        (Method::PATCH, FILES, "OPTIONS, POST"),
    ] {
        let resp = server.tus(method.clone(), path, &[], Vec::new()).await;
        assert_tus(&resp);
        assert_eq!(header_str(&resp, ALLOW.as_str()).as_deref(), Some(allow));
        problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
}

#[tokio::test]
async fn unknown_uploads_are_404_without_upload_offset() {
    let server = TestServer::start(1024).await;
    let unknown = format!("{FILES}/{}", "0123456789abcdef0123456789abcdef");
    for path in [unknown.as_str(), "/files/not-an-id"] {
        let resp = server.tus_head(path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_tus(&resp);
        assert!(header_str(&resp, "upload-offset").is_none());
        let resp = server.tus_patch(path, 0, b"abc", &[]).await;
        problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
        let resp = server.tus(Method::DELETE, path, &[], Vec::new()).await;
        problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn another_owners_upload_is_404() {
    let server = TestServer::start(1024).await;
    let resp = server
        .request(Method::POST, FILES, Some("alice"))
        .header(TUS.0, TUS.1)
        .header("upload-length", "6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let upload = server.path_of(&location(&resp));

    // Anonymous and bob see nothing there, whatever they try.
    for token in [None, Some("bob")] {
        let head = server
            .request(Method::HEAD, &upload, token)
            .header(TUS.0, TUS.1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        assert!(header_str(&head, "upload-offset").is_none());
        let patch = server
            .request(Method::PATCH, &upload, token)
            .header(TUS.0, TUS.1)
            .header(OFFSET_STREAM.0, OFFSET_STREAM.1)
            .header("upload-offset", "0")
            .body("abcdef")
            .send()
            .await
            .unwrap();
        problem(patch, StatusCode::NOT_FOUND, "session-not-found").await;
        let delete = server
            .request(Method::DELETE, &upload, token)
            .header(TUS.0, TUS.1)
            .send()
            .await
            .unwrap();
        problem(delete, StatusCode::NOT_FOUND, "session-not-found").await;
    }
    // The owner's upload is untouched.
    let head = server
        .request(Method::HEAD, &upload, Some("alice"))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(upload_offset(&head), Some(0));
}
