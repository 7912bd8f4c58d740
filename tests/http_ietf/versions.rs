//! The interop versions: which are served (`400` for others), how each
//! names completeness and the upload's lifetime, and the version echoed in
//! every reply.

use reqwest::{Method, StatusCode};

use crate::client::*;

fn version(v: &str) -> (&'static str, &str) {
    ("upload-draft-interop-version", v)
}

#[tokio::test]
async fn unsupported_interop_versions_are_400() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    for v in ["2", "9", "0", "eight", "-8"] {
        let resp = server
            .ietf(
                Method::POST,
                UPLOADS,
                &[version(v), ("upload-complete", "?1")],
                b"abc".to_vec(),
            )
            .await;
        assert!(header_str(&resp, "location").is_none());
        let body = problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
        assert!(
            body["detail"].as_str().unwrap().contains("3 to 8"),
            "{body}"
        );
        let resp = server
            .ietf(Method::HEAD, &upload, &[version(v)], Vec::new())
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{v}");
        assert!(header_str(&resp, "upload-offset").is_none());
    }
    assert_eq!(server.uploads().len(), 1, "nothing more was created");
}

#[tokio::test]
async fn the_interop_version_is_echoed_and_defaults_to_8() {
    let server = TestServer::start(1024).await;
    for v in ["3", "4", "5", "6", "7", "8"] {
        let resp = server
            .ietf(Method::OPTIONS, UPLOADS, &[version(v)], Vec::new())
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header_str(&resp, "upload-draft-interop-version").as_deref(),
            Some(v)
        );
    }
    let upload = server.ietf_create(&[]).await;
    // Errors echo it too.
    let resp = server.ietf_patch(&upload, 7, b"x", false, &[]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(
        header_str(&resp, "upload-draft-interop-version").as_deref(),
        Some("8")
    );
    // Without the header: version 8, and nothing to echo.
    let resp = server.ietf(Method::HEAD, &upload, &[], Vec::new()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?0"));
    assert!(header_str(&resp, "upload-draft-interop-version").is_none());
}

#[tokio::test]
async fn version_3_speaks_upload_incomplete_inverted_both_ways() {
    let server = TestServer::start(1024).await;
    let v3 = version("3");
    // Upload-Incomplete: ?1 means more is to come.
    let resp = server
        .ietf(
            Method::POST,
            UPLOADS,
            &[v3, ("upload-incomplete", "?1")],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        header_str(&resp, "upload-incomplete").as_deref(),
        Some("?1")
    );
    assert!(header_str(&resp, "upload-complete").is_none());
    assert_eq!(upload_offset(&resp), Some(3));
    let upload = server.path_of(&location(&resp));

    // Any media type, and Upload-Incomplete: ?0 ends it.
    let resp = server
        .ietf(
            Method::PATCH,
            &upload,
            &[
                v3,
                ("upload-offset", "3"),
                ("upload-incomplete", "?0"),
                ("content-type", "application/octet-stream"),
            ],
            b"def".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_str(&resp, "upload-incomplete").as_deref(),
        Some("?0")
    );
    assert!(header_str(&resp, "upload-complete").is_none());
    assert_eq!(server.blob(id_in(&upload)), b"abcdef");
    let head = server.ietf(Method::HEAD, &upload, &[v3], Vec::new()).await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_str(&head, "upload-incomplete").as_deref(),
        Some("?0")
    );

    // A version 3 creation must say Upload-Incomplete; Upload-Complete is
    // a later version's word.
    let resp = server
        .ietf(
            Method::POST,
            UPLOADS,
            &[v3, ("upload-complete", "?1")],
            b"abc".to_vec(),
        )
        .await;
    problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
}

#[tokio::test]
async fn version_6_names_the_lifetime_expires_and_later_versions_max_age() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    server.clock.advance(std::time::Duration::from_secs(600));
    let left = EXPIRY.as_secs() - 600;
    for (v, key, other) in [
        ("6", "expires", "max-age"),
        ("7", "max-age", "expires"),
        ("8", "max-age", "expires"),
    ] {
        let head = server
            .ietf(Method::HEAD, &upload, &[version(v)], Vec::new())
            .await;
        assert_eq!(head.status(), StatusCode::NO_CONTENT);
        let limits = upload_limit(&head);
        assert_eq!(limits.get(key), Some(&left), "version {v}: {limits:?}");
        assert!(!limits.contains_key(other), "version {v}: {limits:?}");
    }
}
