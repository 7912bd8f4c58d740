//! Concatenation: partial uploads, a final upload of them by absolute URLs
//! or by paths (`201`), a final made before its partials finish
//! (concatenation-unfinished), and what a final refuses (`400`, `403`).

use reqwest::{Method, StatusCode};

use crate::client::*;

/// Creates a partial upload of `bytes`, filled at once or not at all.
async fn partial(server: &TestServer, bytes: &[u8], fill: bool) -> String {
    let upload = server
        .tus_create(&[
            ("upload-concat", "partial"),
            ("upload-length", &bytes.len().to_string()),
        ])
        .await;
    if fill {
        server.tus_patch_ok(&upload, 0, bytes).await;
    }
    upload
}

/// `POST` a final upload of `parts` (as written in `Upload-Concat`).
async fn post_final(server: &TestServer, parts: &[String]) -> reqwest::Response {
    let concat = format!("final;{}", parts.join(" "));
    server.tus_post(&[("upload-concat", &concat)]).await
}

#[tokio::test]
async fn final_of_absolute_urls_is_201_and_its_blob_is_the_concatenation() {
    let server = TestServer::start(1024).await;
    let (a, b) = (source_bytes(700, 11), source_bytes(500, 12));
    let pa = partial(&server, &a, true).await;
    let pb = partial(&server, &b, true).await;
    let head = server.tus_head(&pa).await;
    assert_eq!(
        header_str(&head, "upload-concat").as_deref(),
        Some("partial")
    );

    let urls = [server.url(&pa), server.url(&pb)];
    let resp = post_final(&server, &urls).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let fin = server.path_of(&location(&resp));
    let head = server.tus_head(&fin).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header_str(&head, "upload-concat"),
        Some(format!("final;{} {}", urls[0], urls[1]))
    );
    assert_eq!(upload_offset(&head), Some(1200));
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("1200"));
    assert_eq!(server.blob(id_in(&fin)), [a, b].concat());
    // The partials stay, for another concatenation.
    assert_eq!(server.tus_offset(&pa).await, 700);
}

#[tokio::test]
async fn final_of_paths_is_201_in_the_order_given() {
    let server = TestServer::start(1024).await;
    let (a, b) = (source_bytes(300, 13), source_bytes(200, 14));
    let pa = partial(&server, &a, true).await;
    let pb = partial(&server, &b, true).await;
    let resp = post_final(&server, &[pb.clone(), pa.clone(), pb.clone()]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let fin = server.path_of(&location(&resp));
    let head = server.tus_head(&fin).await;
    assert_eq!(upload_offset(&head), Some(700));
    let concat = header_str(&head, "upload-concat").unwrap();
    assert!(concat.starts_with("final;"), "{concat}");
    assert_eq!(server.blob(id_in(&fin)), [&b[..], &a, &b].concat());
}

#[tokio::test]
async fn final_before_its_partials_finish_completes_when_they_do() {
    let server = TestServer::start(1024).await;
    let (a, b) = (source_bytes(400, 15), source_bytes(600, 16));
    let pa = partial(&server, &a, false).await;
    let pb = partial(&server, &b, true).await;
    let resp = post_final(&server, &[pa.clone(), pb.clone()]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let fin = server.path_of(&location(&resp));

    let head = server.tus_head(&fin).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        header_str(&head, "upload-offset").is_none(),
        "no offset until the concatenation is done"
    );
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("1000"));
    assert!(
        header_str(&head, "upload-concat")
            .unwrap()
            .starts_with("final;")
    );

    server.tus_patch_ok(&pa, 0, &a[..100]).await;
    let head = server.tus_head(&fin).await;
    assert!(header_str(&head, "upload-offset").is_none());

    server.tus_patch_ok(&pa, 100, &a[100..]).await;
    let head = server.tus_head(&fin).await;
    assert_eq!(upload_offset(&head), Some(1000));
    assert_eq!(header_str(&head, "upload-length").as_deref(), Some("1000"));
    assert_eq!(server.blob(id_in(&fin)), [a, b].concat());
}

#[tokio::test]
async fn patch_to_a_final_is_403_and_changes_nothing() {
    let server = TestServer::start(1024).await;
    let pa = partial(&server, b"abc", false).await;
    let fin = server.path_of(&location(
        &post_final(&server, std::slice::from_ref(&pa)).await,
    ));
    let resp = server.tus_patch(&fin, 0, b"abc", &[]).await;
    assert_tus(&resp);
    problem(resp, StatusCode::FORBIDDEN, "invalid-session-state").await;
    assert_eq!(server.tus_offset(&pa).await, 0, "nor its partial");

    // Once it is complete too.
    server.tus_patch_ok(&pa, 0, b"abc").await;
    assert_eq!(server.tus_offset(&fin).await, 3);
    for offset in [0, 3] {
        let resp = server.tus_patch(&fin, offset, b"def", &[]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "at {offset}");
    }
    assert_eq!(server.blob(id_in(&fin)), b"abc");
}

#[tokio::test]
async fn final_with_a_body_is_403() {
    let server = TestServer::start(1024).await;
    let pa = partial(&server, b"abc", true).await;
    let concat = format!("final;{pa}");
    let resp = server
        .tus(
            Method::POST,
            FILES,
            &[("upload-concat", &concat), OFFSET_STREAM],
            b"more".to_vec(),
        )
        .await;
    assert!(header_str(&resp, "location").is_none());
    problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(server.uploads().len(), 1, "only the partial");
}

#[tokio::test]
async fn final_naming_a_non_partial_or_a_foreign_url_is_400() {
    let server = TestServer::start(1024).await;
    let pa = partial(&server, b"abc", true).await;
    let single = server.tus_create_len(3).await;
    server.tus_patch_ok(&single, 0, b"xyz").await;
    for parts in [
        vec![pa.clone(), single.clone()],
        vec![pa.clone(), "/elsewhere/abc".to_owned()],
        vec![format!("{FILES}/")],
    ] {
        let resp = post_final(&server, &parts).await;
        assert!(header_str(&resp, "location").is_none());
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    for concat in ["final;", "final", "whole"] {
        let resp = server.tus_post(&[("upload-concat", concat)]).await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    // An upload id that names nothing.
    let unknown = format!("{FILES}/0123456789abcdef0123456789abcdef");
    let resp = post_final(&server, &[pa, unknown]).await;
    problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
    assert_eq!(server.uploads().len(), 2);
}
