//! Uploads from start to finish: in parallel and out of order, with retried
//! and racing chunks, with gaps or a wrong file checksum at complete, and
//! the empty file.

use reqwest::StatusCode;
use reqwest::header::CACHE_CONTROL;
use serde_json::json;

use crate::server::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_out_of_order_upload_assembles_the_file() {
    const CHUNK: usize = 256 << 10;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes((3 << 20) + 12_345, 1);
    let total = data.len().div_ceil(CHUNK);
    assert_eq!(total, 13);

    let reply = json_of(
        server
            .initiate(
                None,
                &json!({
                    "fileName": "big.bin",
                    "fileSize": data.len(),
                    "contentType": "application/octet-stream",
                    "sha256": sha256_hex(&data),
                }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(reply["chunkSize"], CHUNK);
    assert_eq!(reply["totalChunks"], total);
    let id = id_of(&reply);

    let mut order: Vec<usize> = (0..total).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    assert_ne!(
        order,
        (0..total).collect::<Vec<_>>(),
        "the order is shuffled"
    );

    // Every chunk at once, in shuffled order; a digest on every other one.
    let uploads = order.iter().enumerate().map(|(n, &index)| {
        let server = &server;
        let id = id.as_str();
        let bytes = chunk_of(&data, CHUNK, index);
        async move {
            let resp = server
                .put(None, id, &index.to_string(), bytes, n % 2 == 0)
                .await;
            (n, index, bytes, json_of(resp, StatusCode::CREATED).await)
        }
    });
    for (n, index, bytes, receipt) in futures::future::join_all(uploads).await {
        assert_eq!(receipt["sessionId"], id);
        assert_eq!(receipt["chunkId"], index);
        assert_eq!(receipt["offset"], index * CHUNK);
        assert_eq!(receipt["size"], bytes.len());
        // The chunk's own digest only where one was declared (and checked).
        match n % 2 == 0 {
            true => assert_eq!(receipt["sha256"], sha256_hex(bytes)),
            false => assert!(receipt.get("sha256").is_none(), "{receipt}"),
        }
    }

    let resp = server.status(None, &id).await;
    assert_eq!(
        header_str(&resp, CACHE_CONTROL.as_str()).as_deref(),
        Some("no-store")
    );
    let status = json_of(resp, StatusCode::OK).await;
    assert_eq!(status["state"], "open");
    assert_eq!(
        u64s(&status["receivedChunks"]),
        (0..total as u64).collect::<Vec<_>>()
    );
    assert_eq!(u64s(&status["missingChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], data.len());
    assert_eq!(status["fileSize"], data.len());
    assert_eq!(status["fileName"], "big.bin");
    assert_eq!(status["contentType"], "application/octet-stream");

    let done = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(done["sessionId"], id);
    assert_eq!(done["state"], "completed");
    assert_eq!(done["fileSize"], data.len());
    assert_eq!(done["fileName"], "big.bin");
    assert_eq!(done["sha256"], sha256_hex(&data));

    let blob = server.blob(&id);
    assert!(blob == data, "the blob on disk differs from the source");

    // Completing again answers the same attachment; the upload is closed.
    let again = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(again, done);
    assert_eq!(server.status_ok(None, &id).await["state"], "completed");
    let late = server.put_chunk(None, &id, &data, 0, false).await;
    problem(late, StatusCode::CONFLICT, "invalid-session-state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_chunk_is_replaced_and_the_file_stays_correct() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 2500, 2, "retry.bin").await;

    // Chunk 1 first arrives damaged (right length, wrong bytes), then again.
    let damaged = source_bytes(CHUNK, 99);
    let first = json_of(
        server.put(None, &id, "1", &damaged, false).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(first.get("sha256").is_none(), "no digest declared: {first}");
    let retry = json_of(
        server.put_chunk(None, &id, &data, 1, true).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(retry["chunkId"], 1);
    assert_eq!(retry["sha256"], sha256_hex(chunk_of(&data, CHUNK, 1)));

    server.put_new_chunks(&id, &data, [2, 0], false).await;
    // An identical retry is answered 200 as well.
    let same = server.put_chunk(None, &id, &data, 0, true).await;
    json_of(same, StatusCode::OK).await;

    // Superseded attempts are discarded: one stored attempt per chunk.
    let parts = stored_attempts(&server.upload_dir(&id));
    assert_eq!(parts.len(), 3, "{parts:?}");

    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), [0, 1, 2]);
    assert_eq!(status["receivedBytes"], data.len());

    let done = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
    let blob = server.blob(&id);
    assert!(blob == data, "the blob on disk differs from the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_missing_chunks_lists_them() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 5 * CHUNK + 7, 5, "gaps.bin").await;
    server.put_new_chunks(&id, &data, [0, 2, 5], false).await;

    let body = problem(
        server.complete(None, &id).await,
        StatusCode::CONFLICT,
        "missing-chunks",
    )
    .await;
    assert_eq!(u64s(&body["missingChunks"]), [1, 3, 4]);
    assert_eq!(body["missingCount"], 3);

    let status = server.status_ok(None, &id).await;
    assert_eq!(status["state"], "open");
    assert_eq!(u64s(&status["receivedChunks"]), [0, 2, 5]);
    assert_eq!(u64s(&status["missingChunks"]), [1, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_file_checksum_mismatch_reopens_the_session() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(3 * CHUNK - 1, 13);
    let declared = sha256_hex(b"some other file");
    let reply = json_of(
        server
            .initiate(
                None,
                &json!({ "fileName": "whole.bin", "fileSize": data.len(), "sha256": declared }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = id_of(&reply);
    server.put_new_chunks(&id, &data, 0..3, true).await;

    // Twice: the parts survive a failed assembly.
    for _ in 0..2 {
        let p = problem(
            server.complete(None, &id).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum-mismatch",
        )
        .await;
        assert_eq!(p["expectedSha256"], declared);
        assert_eq!(p["actualSha256"], sha256_hex(&data));
        assert_eq!(p.get("chunkId"), None);

        let status = server.status_ok(None, &id).await;
        assert_eq!(status["state"], "open");
        assert_eq!(u64s(&status["receivedChunks"]), [0, 1, 2]);
    }
    assert!(!server.upload_dir(&id).join("blob").exists());
}

/// The whole-file SHA-256 stated at complete (`Repr-Digest`) is checked: a
/// wrong one is 422 and leaves the session open with its chunks; one that
/// contradicts the digest given at initiate is 400; the right one
/// completes, and a completed upload is checked against it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_file_digest_stated_at_complete_is_checked() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 3 * CHUNK - 7, 15, "stated.bin").await;
    server.put_new_chunks(&id, &data, 0..3, false).await;
    let complete_stating = |digest: String| {
        let server = &server;
        let id = id.clone();
        async move {
            server
                .request(
                    reqwest::Method::POST,
                    &format!("/attachment/session/{id}/complete"),
                    None,
                )
                .header("repr-digest", digest)
                .send()
                .await
                .expect("complete request")
        }
    };

    let wrong = content_digest(b"another file");
    let p = problem(
        complete_stating(wrong.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum-mismatch",
    )
    .await;
    assert_eq!(p["actualSha256"], sha256_hex(&data));
    let status = server.status_ok(None, &id).await;
    assert_eq!(status["state"], "open");
    assert_eq!(u64s(&status["receivedChunks"]), [0, 1, 2]);
    problem(
        complete_stating("sha-256=:not base64:".to_owned()).await,
        StatusCode::BAD_REQUEST,
        "invalid-request",
    )
    .await;

    let done = json_of(
        complete_stating(content_digest(&data)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["sha256"], sha256_hex(&data));
    problem(
        complete_stating(wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum-mismatch",
    )
    .await;
    assert_eq!(server.status_ok(None, &id).await["state"], "completed");

    // Contradicting the digest given at initiate: refused before assembly.
    let declared = sha256_hex(&data);
    let reply = json_of(
        server
            .initiate(
                None,
                &json!({ "fileName": "both.bin", "fileSize": data.len(), "sha256": declared }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let other = id_of(&reply);
    server.put_new_chunks(&other, &data, 0..3, false).await;
    let resp = server
        .request(
            reqwest::Method::POST,
            &format!("/attachment/session/{other}/complete"),
            None,
        )
        .header("repr-digest", content_digest(b"x"))
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert_eq!(server.status_ok(None, &other).await["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_chunk_keep_exactly_one() {
    const CHUNK: usize = 64 << 10;
    let (server, data, id) = Server::with_upload(CHUNK, 2 * CHUNK, 14, "race.bin").await;
    let chunk = chunk_of(&data, CHUNK, 0);

    let attempts = (0..6).map(|n| {
        let server = &server;
        let id = id.as_str();
        async move { server.put(None, id, "0", chunk, n % 2 == 0).await }
    });
    let (mut created, mut odd) = (0, 0);
    for resp in futures::future::join_all(attempts).await {
        let status = resp.status();
        let receipt = json_of(resp, status).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {receipt}"
        );
        created += usize::from(status == StatusCode::CREATED);
        match receipt.get("sha256") {
            Some(sha) => assert_eq!(*sha, sha256_hex(chunk)),
            None => odd += 1,
        }
    }
    assert_eq!(odd, 3, "the three attempts without a digest have none");
    assert_eq!(created, 1, "exactly one attempt is the first receipt");
    let parts = stored_attempts(&server.upload_dir(&id));
    assert_eq!(
        parts.len(),
        1,
        "superseded attempts are discarded: {parts:?}"
    );

    server.put_new_chunk(None, &id, &data, 1, false).await;
    let done = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file_completes_without_chunks() {
    let server = Server::start(1024).await;
    let reply = server.open(None, "empty.txt", 0).await;
    assert_eq!(reply["totalChunks"], 0);
    let id = id_of(&reply);
    problem(
        server.put(None, &id, "0", b"", false).await,
        StatusCode::BAD_REQUEST,
        "chunk-out-of-range",
    )
    .await;
    let done = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(done["fileSize"], 0);
    assert_eq!(done["sha256"], sha256_hex(b""));
    let blob = server.blob(&id);
    assert!(blob.is_empty());
}
