//! Headers that break their grammar: tus `Upload-Metadata` and
//! `Upload-Checksum`, the IETF draft's Structured Fields
//! (`Upload-Complete`, `Content-Digest`, `Repr-Digest`,
//! `Upload-Draft-Interop-Version`), and headers larger than the server
//! reads. Each is refused with nothing created or stored, or, where the
//! grammar says a field that does not parse counts as absent, handled as
//! absent.

use reqwest::{Method, StatusCode};
use resumable::SessionId;

use crate::scene::*;

/// The `Content-Digest` (sha-256) of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    content_digest(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_metadata_that_breaks_the_grammar_is_400() {
    let mut scene = Scene::start("tus_metadata_that_breaks_the_grammar_is_400", 1024).await;
    let token = Some("grammar-tus");
    let before = scene.server.uploads().len();
    for (metadata, code) in [
        ("filename ====", "invalid-request"),
        ("filename Y", "invalid-request"),
        ("filename YQ=x", "invalid-request"),
        ("filename YQ==,", "invalid-request"),
        ("filename YQ==, ,type YQ==", "invalid-request"),
        ("filename\tYQ==", "invalid-request"),
        ("fïlename YQ==", "invalid-request"),
        ("filename", "invalid-file-name"),
        ("filename ", "invalid-file-name"),
        ("filename Lg==", "invalid-file-name"),
        ("filename Li4v", "invalid-file-name"),
    ] {
        let headers = [TUS, ("upload-length", "10"), ("upload-metadata", metadata)];
        let resp = scene
            .send(Method::POST, "/files", token, &headers, "")
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, code, metadata).await;
    }
    assert_eq!(scene.server.uploads().len(), before, "nothing created");

    // A name that is not UTF-8 names no file; the metadata is kept as sent.
    let headers = [
        TUS,
        ("upload-length", "10"),
        ("upload-metadata", "filename /w=="),
    ];
    let resp = scene
        .send(Method::POST, "/files", token, &headers, "")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = id_in(&location(&resp)).to_owned();
    assert_eq!(stored_name(&scene.server, &owner(token), &id).await, None);

    // A thousand keys are only metadata; a header past what the server
    // reads is refused by the HTTP layer.
    let many: Vec<String> = (0..1000).map(|i| format!("k{i} YQ==")).collect();
    let many = many.join(",");
    let headers = [
        TUS,
        ("upload-length", "10"),
        ("upload-metadata", many.as_str()),
    ];
    let resp = scene
        .send(Method::POST, "/files", token, &headers, "")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let path = scene.server.path_of(&location(&resp));
    let resp = scene
        .server
        .request(Method::HEAD, &path, token)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header_str(&resp, "upload-metadata").as_deref(),
        Some(many.as_str())
    );
    let huge = format!("filename {}", "A".repeat(1 << 20));
    let request = head(
        &scene.server,
        "POST",
        "/files",
        &[TUS, ("upload-length", "10"), ("upload-metadata", &huge)],
    );
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 431, "a 1 MiB header: {reply:?}");
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_checksums_that_break_the_grammar_are_400() {
    let mut scene = Scene::start("tus_checksums_that_break_the_grammar_are_400", 1024).await;
    let resp = scene
        .server
        .send(Method::POST, "/files", &[TUS, ("upload-length", "4")], "")
        .await;
    let upload = scene.server.path_of(&location(&resp));
    let short_sha256 = format!("sha256 {}", b64(&[7; 31]));
    let long_md5 = format!("md5 {}", b64(&[7; 17]));
    let sha512 = format!("sha512 {}", b64(&[7; 64]));
    let trailing = format!("sha1 {} extra", b64(&[7; 20]));
    let tab = format!("sha1\t{}", b64(&[7; 20]));
    let huge = format!("sha1 {}", "A".repeat(64 << 10));
    for value in [
        short_sha256.as_str(),
        long_md5.as_str(),
        sha512.as_str(),
        trailing.as_str(),
        tab.as_str(),
        huge.as_str(),
        "",
        "sha256 ",
        " sha1",
    ] {
        let headers = [
            TUS,
            OFFSET_STREAM,
            ("upload-offset", "0"),
            ("upload-checksum", value),
        ];
        let resp = scene
            .send(Method::PATCH, &upload, None, &headers, "0123")
            .await;
        expect_problem(
            resp,
            StatusCode::BAD_REQUEST,
            "invalid-request",
            &value[..value.len().min(40)],
        )
        .await;
    }
    let id: SessionId = id_in(&upload).parse().unwrap();
    let status = scene.server.engine.status(&owner(None), id).await.unwrap();
    assert_eq!(status.offset, 0, "no bytes kept");
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ietf_structured_fields_that_do_not_parse_are_refused_or_absent() {
    let mut scene = Scene::start(
        "ietf_structured_fields_that_do_not_parse_are_refused_or_absent",
        1024,
    )
    .await;
    let token = Some("grammar-ietf");
    let v8 = ("upload-draft-interop-version", "8");
    let before = scene.server.uploads().len();

    // Creation: an Upload-Complete that does not parse is no
    // Upload-Complete (400); a malformed Repr-Digest or interop version is
    // 400. Nothing is created.
    for value in ["?2", "1", "true", "?1;", "(?1)", "", "?1, ?0"] {
        let headers = [v8, ("upload-complete", value)];
        let resp = scene
            .send(Method::POST, "/uploads", token, &headers, "")
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", value).await;
    }
    let short = format!("sha-256=:{}:", b64(&[1; 31]));
    for value in [
        "sha-256=:abc",
        "sha-256=?1",
        short.as_str(),
        "sha-256=(:AAAA:)",
        "((",
    ] {
        let headers = [v8, ("upload-complete", "?0"), ("repr-digest", value)];
        let resp = scene
            .send(Method::POST, "/uploads", token, &headers, "")
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", value).await;
    }
    for version in ["9", "2", "-1", "8.0", "256", "", "eight"] {
        let headers = [
            ("upload-draft-interop-version", version),
            ("upload-complete", "?0"),
        ];
        let resp = scene
            .send(Method::POST, "/uploads", token, &headers, "")
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", version).await;
    }
    assert_eq!(scene.server.uploads().len(), before, "nothing created");

    // Appends: a malformed Content-Digest is 400 and keeps nothing.
    let resp = scene
        .server
        .request(Method::POST, "/uploads", token)
        .header(v8.0, v8.1)
        .header("upload-complete", "?0")
        .send()
        .await
        .unwrap();
    let upload = scene.server.path_of(&location(&resp));
    let append = |digest: &str, complete: &str| {
        vec![
            v8,
            PARTIAL_UPLOAD,
            ("upload-offset", "0"),
            ("upload-complete", complete),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("content-digest".to_owned(), digest.to_owned())])
        .collect::<Vec<_>>()
    };
    for digest in [
        "sha-256=:abc",
        "sha-256=?1",
        short.as_str(),
        "sha-256=(:AAAA:)",
        "((",
    ] {
        let headers = append(digest, "?0");
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = scene
            .send(Method::PATCH, &upload, token, &headers, "0123")
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", digest).await;
    }
    // A dictionary with sha-256 twice: the last one counts (RFC 8941),
    // here the wrong one, so the bytes are refused.
    let twice = format!("{}, {}", digest_of(b"0123"), digest_of(b"3210"));
    let headers = append(&twice, "?0");
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = scene
        .send(Method::PATCH, &upload, token, &headers, "0123")
        .await;
    expect_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum-mismatch",
        "twice",
    )
    .await;
    let id: SessionId = id_in(&upload).parse().unwrap();
    let status = scene.server.engine.status(&owner(token), id).await.unwrap();
    assert_eq!(status.offset, 0, "no bytes kept");

    // An Upload-Complete that does not parse, on an append, is absent: the
    // bytes are appended and the upload stays open.
    let right = digest_of(b"0123");
    let headers = append(&right, "?2");
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = scene
        .send(Method::PATCH, &upload, token, &headers, "0123")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?0"));
    let status = scene.server.engine.status(&owner(token), id).await.unwrap();
    assert_eq!((status.offset, status.blob.is_some()), (4, false));
    scene.finish().await;
}
