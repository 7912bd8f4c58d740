//! What a raw upload stores (`201` and its JSON), with or without a
//! declared length, and the life of the temporary file it becomes: claimed
//! by the application, or reaped by the sweep.

use std::time::{Duration, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use resumable::Owner;

use crate::*;

/// How long an unclaimed upload stays (the engine's default, as Drupal's).
const TEMPORARY_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

#[tokio::test]
async fn upload_is_201_with_the_stored_file_and_the_blob_is_the_body() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(100_000, 31);
    let resp = server
        .raw_post(DEFAULT, "../../photos/cat.jpg", data.clone())
        .await;
    assert!(header_str(&resp, "location").is_none());
    let file = json_of(resp, StatusCode::CREATED).await;
    let id = file["id"].as_str().expect("an id");
    assert_eq!(file["fileName"], "cat.jpg", "the path is removed");
    assert_eq!(file["fileSize"], 100_000);
    assert_eq!(file["sha256"], sha256_hex(&data));
    assert_eq!(file["state"], "completed");
    assert_eq!(file["temporary"], true);
    let until = humantime::parse_rfc3339(file["temporaryUntil"].as_str().unwrap()).unwrap();
    assert_eq!(until, UNIX_EPOCH + START + TEMPORARY_MAX_AGE);
    assert_eq!(server.blob(id), data);
    assert_eq!(server.uploads(), vec![id.to_owned()]);
}

#[tokio::test]
async fn chunked_body_without_content_length_is_stored() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(50_000, 32);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(7000).map(|c| Ok(c.to_vec())).collect();
    let resp = server
        .request(Method::POST, DEFAULT, None)
        .header(OCTET_STREAM.0, OCTET_STREAM.1)
        .header("content-disposition", "file; filename=\"stream.bin\"")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    let file = json_of(resp, StatusCode::CREATED).await;
    assert_eq!(file["fileSize"], 50_000);
    assert_eq!(file["sha256"], sha256_hex(&data));
    assert_eq!(server.blob(file["id"].as_str().unwrap()), data);
}

#[tokio::test]
async fn empty_file_and_no_content_type_are_stored() {
    let server = TestServer::start(1024).await;
    let resp = server
        .send(
            Method::POST,
            DEFAULT,
            &[
                ("content-disposition", "file; filename=\"empty.txt\""),
                ("content-length", "0"),
            ],
            "",
        )
        .await;
    let file = json_of(resp, StatusCode::CREATED).await;
    assert_eq!(file["fileSize"], 0);
    assert_eq!(file["sha256"], sha256_hex(b""));
    assert_eq!(file["temporary"], true);
    assert_eq!(server.blob(file["id"].as_str().unwrap()), b"");
}

#[tokio::test]
async fn claimed_file_is_permanent_and_the_sweep_keeps_it() {
    let server = TestServer::start(1024).await;
    let resp = server
        .raw_post(DEFAULT, "keep.txt", b"keep me".to_vec())
        .await;
    let file = json_of(resp, StatusCode::CREATED).await;
    let id = file["id"].as_str().unwrap();

    let claimed = server
        .engine
        .claim(&Owner::anonymous(), id.parse().unwrap())
        .await
        .expect("claim");
    assert_eq!(claimed.state.as_str(), "claimed");
    assert_eq!(claimed.reap_at, None);

    server
        .clock
        .advance(TEMPORARY_MAX_AGE + Duration::from_secs(1));
    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!((report.expired, report.purged, report.failed), (0, 0, 0));
    assert_eq!(server.blob(id), b"keep me");
}

#[tokio::test]
async fn unclaimed_file_is_deleted_by_the_sweep_after_its_max_age() {
    let server = TestServer::start(1024).await;
    let resp = server
        .raw_post(DEFAULT, "tmp.txt", b"temporary".to_vec())
        .await;
    let file = json_of(resp, StatusCode::CREATED).await;
    let id = file["id"].as_str().unwrap();

    // Not before its time.
    server
        .clock
        .advance(TEMPORARY_MAX_AGE - Duration::from_secs(1));
    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!(report.purged, 0);
    assert_eq!(server.blob(id), b"temporary");

    server.clock.advance(Duration::from_secs(2));
    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert!(!server.upload_dir(id).exists());
    assert!(server.uploads().is_empty());
    let claim = server
        .engine
        .claim(&Owner::anonymous(), id.parse().unwrap())
        .await;
    assert!(claim.is_err(), "too late to claim");
}
