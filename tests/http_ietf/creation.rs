//! `OPTIONS` (`204`, `Accept-Patch`, `Upload-Limit`) and creation: careful
//! (`?0`, no body), whole (`?1` with the body), and what it refuses (`400`,
//! `413`).

use reqwest::header::CACHE_CONTROL;
use reqwest::{Method, StatusCode};
use resumable::Owner;

use crate::client::*;

#[tokio::test]
async fn options_is_204_with_accept_patch_and_upload_limit() {
    let server = TestServer::start(1024).await;
    let upload = server.ietf_create(&[]).await;
    let max = server.engine.max_file_size(&Owner::anonymous()).unwrap();
    for path in [UPLOADS, upload.as_str()] {
        let resp = server.ietf(Method::OPTIONS, path, &[V8], Vec::new()).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header_str(&resp, "accept-patch").as_deref(),
            Some("application/partial-upload")
        );
        let limits = upload_limit(&resp);
        assert_eq!(limits.get("max-size"), Some(&max), "{limits:?}");
        assert_eq!(
            header_str(&resp, "upload-draft-interop-version").as_deref(),
            Some("8")
        );
        assert!(header_str(&resp, "tus-resumable").is_none(), "not tus");
    }
}

#[tokio::test]
async fn careful_creation_is_201_with_location_offset_0_and_limits() {
    let server = TestServer::start(1024).await;
    let resp = server
        .ietf_post(&[("upload-complete", "?0"), ("upload-length", "100")], b"")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = location(&resp);
    let prefix = format!("http://{}/uploads/", server.authority());
    assert!(location.starts_with(&prefix), "{location}");
    assert_eq!(upload_offset(&resp), Some(0));
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?0"));
    assert_eq!(header_str(&resp, "upload-length").as_deref(), Some("100"));
    let limits = upload_limit(&resp);
    let max = server.engine.max_file_size(&Owner::anonymous()).unwrap();
    assert_eq!(limits.get("max-size"), Some(&max));
    assert_eq!(limits.get("max-age"), Some(&EXPIRY.as_secs()));
    assert!(header_str(&resp, "repr-digest").is_none());
    assert_eq!(server.ietf_offset(&server.path_of(&location)).await, 0);
}

#[tokio::test]
async fn whole_creation_with_complete_is_201_with_repr_digest() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(5000, 21);
    let resp = server
        .ietf_post(
            &[
                ("upload-complete", "?1"),
                ("content-type", "image/png"),
                ("content-disposition", "inline; filename=\"pic.png\""),
            ],
            &data,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?1"));
    assert_eq!(upload_offset(&resp), Some(5000));
    assert_eq!(header_str(&resp, "upload-length").as_deref(), Some("5000"));
    assert_eq!(header_str(&resp, "repr-digest"), Some(repr_digest(&data)));
    let limits = upload_limit(&resp);
    assert!(
        !limits.contains_key("max-age"),
        "a complete upload: {limits:?}"
    );
    let upload = server.path_of(&location(&resp));
    assert_eq!(server.blob(id_in(&upload)), data);
    let status = server
        .engine
        .status(&Owner::anonymous(), id_in(&upload).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.file.name.as_ref().map(|n| n.as_str()),
        Some("pic.png")
    );
    assert_eq!(status.file.content_type.as_deref(), Some("image/png"));
}

#[tokio::test]
async fn empty_upload_with_complete_is_201_and_complete() {
    let server = TestServer::start(1024).await;
    // With `Content-Length: 0`, and with no body headers at all.
    for headers in [
        vec![("upload-complete", "?1"), ("content-length", "0")],
        vec![("upload-complete", "?1")],
        vec![("upload-complete", "?1"), ("upload-length", "0")],
    ] {
        let resp = server.ietf_post(&headers, b"").await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{headers:?}");
        assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?1"));
        assert_eq!(upload_offset(&resp), Some(0));
        assert_eq!(header_str(&resp, "upload-length").as_deref(), Some("0"));
        assert_eq!(header_str(&resp, "repr-digest"), Some(repr_digest(b"")));
        let upload = server.path_of(&location(&resp));
        assert_eq!(server.blob(id_in(&upload)), b"");
    }
}

#[tokio::test]
async fn creation_with_the_first_bytes_is_201_at_their_end() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(3000, 22);
    let resp = server
        .ietf_post(&[("upload-complete", "?0"), PARTIAL_UPLOAD], &data[..1000])
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(upload_offset(&resp), Some(1000));
    assert_eq!(header_str(&resp, "upload-complete").as_deref(), Some("?0"));
    assert!(
        header_str(&resp, "upload-length").is_none(),
        "not known yet"
    );
    let upload = server.path_of(&location(&resp));
    let resp = server
        .ietf_patch(&upload, 1000, &data[1000..], true, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.blob(id_in(&upload)), data);
    let status = server
        .engine
        .status(&Owner::anonymous(), id_in(&upload).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.file.content_type, None,
        "the draft's media type is no file type"
    );
}

#[tokio::test]
async fn creation_without_upload_complete_is_400() {
    let server = TestServer::start(1024).await;
    for headers in [
        vec![],
        vec![("upload-complete", "yes")],
        vec![("upload-complete", "1")],
    ] {
        let resp = server.ietf_post(&headers, b"abc").await;
        assert!(header_str(&resp, "location").is_none());
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn upload_length_disagreeing_with_the_complete_body_is_400() {
    let server = TestServer::start(1024).await;
    let resp = server
        .ietf_post(
            &[("upload-complete", "?1"), ("upload-length", "10")],
            b"abc",
        )
        .await;
    assert!(header_str(&resp, "location").is_none());
    let body = draft_problem(resp, StatusCode::BAD_REQUEST, "inconsistent-upload-length").await;
    assert_eq!(body["title"], "Inconsistent Upload Length Values");
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn length_over_the_max_is_413_with_upload_limit() {
    let server = TestServer::start(1024).await;
    let max = server.engine.max_file_size(&Owner::anonymous()).unwrap();
    let over = (max + 1).to_string();
    let resp = server
        .ietf_post(&[("upload-complete", "?0"), ("upload-length", &over)], b"")
        .await;
    assert_eq!(upload_limit(&resp).get("max-size"), Some(&max));
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert!(server.uploads().is_empty());
}

#[tokio::test]
async fn repr_digest_mismatch_at_completion_is_422() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(2000, 23);
    let wrong = repr_digest(b"another file");
    let upload = server.ietf_create(&[("repr-digest", &wrong)]).await;
    let resp = server.ietf_patch(&upload, 0, &data, true, &[]).await;
    problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "checksum-mismatch").await;
    let head = server.ietf_head(&upload).await;
    assert_eq!(
        header_str(&head, "upload-complete").as_deref(),
        Some("?0"),
        "a mismatching upload is not complete"
    );
    assert_eq!(
        header_str(&head, CACHE_CONTROL.as_str()).as_deref(),
        Some("no-store")
    );
}
