//! Chunk uploads that are refused and not recorded: wrong length, range,
//! index, media type or digest.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};

use crate::server::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_of_the_wrong_length_is_refused_and_not_recorded() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 2 * CHUNK + 100, 6, "length.bin").await;

    let cases: [(&str, Vec<u8>, u64); 4] = [
        ("0", data[..CHUNK - 1].to_vec(), CHUNK as u64),
        ("0", data[..CHUNK + 1].to_vec(), CHUNK as u64),
        ("0", Vec::new(), CHUNK as u64),
        ("2", data[..CHUNK].to_vec(), 100),
    ];
    for (index, body, expected) in &cases {
        let resp = server.put(None, &id, index, body, false).await;
        let p = problem(resp, StatusCode::BAD_REQUEST, "chunk-length-mismatch").await;
        assert_eq!(p["chunkId"], index.parse::<u64>().unwrap());
        assert_eq!(p["expectedLength"], *expected);
        assert_eq!(p["actualLength"], body.len());
    }

    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], 0);

    // The right length is then taken as a first receipt.
    server.put_new_chunk(None, &id, &data, 0, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_range_must_be_the_chunks_range() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 2 * CHUNK + 100, 7, "range.bin").await;
    let path = format!("/attachment/session/{id}/upload/1");
    let chunk = chunk_of(&data, CHUNK, 1);
    let size = data.len();

    for range in [
        format!("bytes 0-1023/{size}"),
        format!("bytes 1024-2047/{}", size + 1),
        "bytes 1024-2046/*".to_owned(),
        "bytes abc".to_owned(),
        "bytes 2047-1024/2148".to_owned(),
    ] {
        let headers = [OCTET_STREAM, ("content-range", range.as_str())];
        let resp = server
            .send(Method::PUT, &path, &headers, chunk.to_vec())
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());

    // The chunk's exact range is taken, with the file size or without.
    for (range, status) in [
        (format!("bytes 1024-2047/{size}"), StatusCode::CREATED),
        ("bytes 1024-2047/*".to_owned(), StatusCode::OK),
    ] {
        let headers = [OCTET_STREAM, ("content-range", range.as_str())];
        let resp = server
            .send(Method::PUT, &path, &headers, chunk.to_vec())
            .await;
        let receipt = json_of(resp, status).await;
        assert_eq!(receipt["chunkId"], 1);
        assert_eq!(receipt["offset"], CHUNK);
    }
    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_index_out_of_range_or_malformed_is_refused() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 2 * CHUNK + 100, 8, "index.bin").await;
    let body = &data[..100];

    for (index, expected) in [("3", 3u64), ("18446744073709551615", u64::MAX)] {
        let resp = server.put(None, &id, index, body, false).await;
        let p = problem(resp, StatusCode::BAD_REQUEST, "chunk-out-of-range").await;
        assert_eq!(p["chunkId"], expected);
        assert_eq!(p["totalChunks"], 3);
    }
    for index in [
        "99999999999999999999",
        "18446744073709551616",
        "-1",
        "abc",
        "1.0",
        "%2B1",
        "",
    ] {
        let resp = server.put(None, &id, index, body, false).await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_with_a_form_media_type_is_unsupported() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, CHUNK + 10, 10, "form.bin").await;
    let path = format!("/attachment/session/{id}/upload/0");
    let chunk = chunk_of(&data, CHUNK, 0);

    for media_type in [
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
    ] {
        let headers = [(CONTENT_TYPE.as_str(), media_type)];
        let resp = server
            .send(Method::PUT, &path, &headers, chunk.to_vec())
            .await;
        problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());

    // Parameters on the right media type are fine.
    let headers = [(CONTENT_TYPE.as_str(), "Application/Octet-Stream; x=y")];
    let resp = server
        .send(Method::PUT, &path, &headers, chunk.to_vec())
        .await;
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_with_a_wrong_content_digest_is_discarded() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, CHUNK + 10, 11, "digest.bin").await;
    let path = format!("/attachment/session/{id}/upload/0");
    let chunk = chunk_of(&data, CHUNK, 0);
    let other = source_bytes(CHUNK, 12);

    let digest = content_digest(&other);
    let headers = [OCTET_STREAM, ("content-digest", digest.as_str())];
    let resp = server
        .send(Method::PUT, &path, &headers, chunk.to_vec())
        .await;
    let p = problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "checksum-mismatch").await;
    assert_eq!(p["chunkId"], 0);
    assert_eq!(p["expectedSha256"], sha256_hex(&other));
    assert_eq!(p["actualSha256"], sha256_hex(chunk));

    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], 0);
    let parts = stored_attempts(&server.upload_dir(&id));
    assert!(
        parts.is_empty(),
        "the refused chunk's bytes remain: {parts:?}"
    );

    // A Content-Digest that is not a SHA-256 byte sequence is malformed.
    for bad in ["sha-256=:AAAA:", "sha-256=abc", "(("] {
        let headers = [OCTET_STREAM, ("content-digest", bad)];
        let resp = server
            .send(Method::PUT, &path, &headers, chunk.to_vec())
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }

    // The right digest is taken, as a first receipt.
    let receipt = json_of(
        server.put(None, &id, "0", chunk, true).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(receipt["sha256"], sha256_hex(chunk));
}
