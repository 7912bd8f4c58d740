//! Bodies that lie about their length, and bodies with no length at all.
//!
//! - Longer than declared: the server reads exactly `Content-Length` bytes
//!   and never past them into what follows on the connection; the extra
//!   bytes are stored nowhere.
//! - Shorter than declared, then closed: a chunk is not recorded (the
//!   client sends it again); an IETF append keeps what arrived, and a cut
//!   off completing request does not complete the upload. (tus and the raw
//!   upload: `http_tus::wire::cut_off_patch_keeps_the_bytes_received`,
//!   `http_raw::refused::body_cut_off_before_its_length_is_refused_and_leaves_nothing`.)
//! - Chunked, with no length: taken where a dialect allows it, and bounded
//!   by the chunk's length, the upload's length and `max-append-size`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use resumable::SessionId;
use resumable::http::{Endpoint, IetfApi};
use serde_json::Value;

use crate::scene::*;

/// Bytes a client sends past its declared length.
const EXTRA: [u8; 500] = [0xEE; 500];

/// The largest IETF append of the bodies scene.
const MAX_APPEND: u64 = 1000;

/// Every dialect, the IETF draft limiting appends to [`MAX_APPEND`] bytes.
async fn bodies_scene(name: &'static str) -> Scene {
    Scene::with_endpoint(name, |engine| {
        Endpoint::all(engine.clone())
            .ietf(IetfApi::new(engine.clone()).with_max_append_size(MAX_APPEND))
            .raw(resumable::http::RawApi::new(engine).target(
                "default",
                resumable::DefaultPolicy::new().max_file_size(1 << 20),
            ))
    })
    .await
}

/// Initiates a REST upload of `size` bytes; its id and chunk size.
async fn rest_open(scene: &Scene, size: usize) -> (String, usize) {
    let body = serde_json::json!({ "fileName": "b.bin", "fileSize": size });
    let resp = scene
        .server
        .request(Method::POST, "/attachment/initiate", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    let reply = json_of(resp, StatusCode::CREATED).await;
    (
        session_id(&reply),
        reply["chunkSize"].as_u64().unwrap() as usize,
    )
}

async fn rest_status(scene: &Scene, id: &str) -> Value {
    let resp = scene
        .server
        .request(Method::GET, &format!("/attachment/session/{id}"), None)
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::OK).await
}

async fn rest_complete(scene: &Scene, id: &str) -> Value {
    let resp = scene
        .server
        .request(
            Method::POST,
            &format!("/attachment/session/{id}/complete"),
            None,
        )
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::OK).await
}

/// A tus upload of `length` bytes; its path.
async fn tus_open(scene: &Scene, length: usize) -> String {
    let resp = scene
        .server
        .send(
            Method::POST,
            "/files",
            &[TUS, ("upload-length", &length.to_string())],
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    scene.server.path_of(&location(&resp))
}

/// An IETF upload, incomplete, no bytes; its path.
async fn ietf_open(scene: &Scene) -> String {
    let resp = scene
        .server
        .send(
            Method::POST,
            "/uploads",
            &[
                ("upload-draft-interop-version", "8"),
                ("upload-complete", "?0"),
            ],
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    scene.server.path_of(&location(&resp))
}

/// The engine's view of an appended upload: offset, and whether complete.
async fn appended(scene: &Scene, path: &str) -> (u64, bool) {
    let id: SessionId = id_in(path).parse().unwrap();
    let status = scene
        .server
        .engine
        .status(&owner(None), id)
        .await
        .expect("status");
    (status.offset, status.blob.is_some())
}

/// Waits, a bounded number of times, until an appended upload's offset
/// leaves `from` (a cut-off body is recorded once the server saw the
/// connection end); returns the offset then.
async fn offset_once_moved(scene: &Scene, path: &str, from: u64) -> u64 {
    for _ in 0..500 {
        let (offset, _) = appended(scene, path).await;
        if offset != from {
            return offset;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    from
}

/// An IETF append of `bytes` at `offset` that must succeed.
async fn ietf_append(scene: &Scene, path: &str, offset: usize, bytes: &[u8], complete: bool) {
    let offset = offset.to_string();
    let resp = scene
        .server
        .send(
            Method::PATCH,
            path,
            &[
                ("upload-draft-interop-version", "8"),
                PARTIAL_UPLOAD,
                ("upload-offset", &offset),
                ("upload-complete", if complete { "?1" } else { "?0" }),
            ],
            bytes.to_vec(),
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::NO_CONTENT,
        "{:?}",
        resp.text().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_longer_than_declared_store_only_the_declared_bytes() {
    let mut scene = bodies_scene("bodies_longer_than_declared_store_only_the_declared_bytes").await;
    let data = source_bytes(2000, 21);

    // REST: one chunk of the whole file.
    let (id, _) = rest_open(&scene, data.len()).await;
    let path = format!("/attachment/session/{id}/upload/0");
    let mut request = head(
        &scene.server,
        "PUT",
        &path,
        &[OCTET_STREAM, ("content-length", "2000")],
    );
    request.extend_from_slice(&data);
    request.extend_from_slice(&EXTRA);
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 201, "{reply:?}");
    let done = rest_complete(&scene, &id).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
    assert_eq!(scene.server.blob(&id), data);

    // tus: a PATCH of the first 1000 bytes, and the extra after them.
    let tus = tus_open(&scene, data.len()).await;
    let mut request = head(
        &scene.server,
        "PATCH",
        &tus,
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-offset", "0"),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[..1000]);
    request.extend_from_slice(&EXTRA);
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("upload-offset"), Some("1000"));
    assert_eq!(appended(&scene, &tus).await, (1000, false));

    // IETF: an append, and a creation that completes.
    let ietf = ietf_open(&scene).await;
    let mut request = head(
        &scene.server,
        "PATCH",
        &ietf,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "0"),
            ("upload-complete", "?0"),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[..1000]);
    request.extend_from_slice(&EXTRA);
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(appended(&scene, &ietf).await, (1000, false));
    let mut request = head(
        &scene.server,
        "POST",
        "/uploads",
        &[("upload-complete", "?1"), ("content-length", "700")],
    );
    request.extend_from_slice(&data[..700]);
    request.extend_from_slice(&EXTRA);
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 201, "{reply:?}");
    let created = id_in(reply.header("location").expect("a Location")).to_owned();
    assert_eq!(scene.server.blob(&created), &data[..700]);

    // Raw: the whole file is the declared bytes.
    let mut request = head(
        &scene.server,
        "POST",
        RAW,
        &[
            OCTET_STREAM,
            ("content-disposition", "file; filename=\"long.bin\""),
            ("content-length", "300"),
        ],
    );
    request.extend_from_slice(&data[..300]);
    request.extend_from_slice(&EXTRA);
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 201, "{reply:?}");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["fileSize"], 300);
    assert_eq!(
        scene.server.blob(body["id"].as_str().unwrap()),
        &data[..300]
    );

    // The open uploads go on from where the declared bytes ended.
    scene
        .server
        .send(
            Method::PATCH,
            &tus,
            &[TUS, OFFSET_STREAM, ("upload-offset", "1000")],
            data[1000..].to_vec(),
        )
        .await;
    assert_eq!(scene.server.blob(id_in(&tus)), data);
    ietf_append(&scene, &ietf, 1000, &data[1000..], true).await;
    assert_eq!(scene.server.blob(id_in(&ietf)), data);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_shorter_than_declared_are_not_recorded_or_kept_as_sent() {
    let mut scene =
        bodies_scene("bodies_shorter_than_declared_are_not_recorded_or_kept_as_sent").await;
    let data = source_bytes(2000, 22);

    // REST: a chunk cut off is refused (if the server can still say so) and
    // not recorded.
    let (id, _) = rest_open(&scene, data.len()).await;
    let path = format!("/attachment/session/{id}/upload/0");
    let mut request = head(
        &scene.server,
        "PUT",
        &path,
        &[OCTET_STREAM, ("content-length", "2000")],
    );
    request.extend_from_slice(&data[..600]);
    if let Some(reply) = scene.cut_off(&request).await {
        assert_eq!(reply.status, 400, "{reply:?}");
    }
    let status = rest_status(&scene, &id).await;
    assert_eq!(status["receivedChunks"], serde_json::json!([]));
    assert_eq!(status["receivedBytes"], 0);

    // An initiate whose JSON is cut off creates nothing.
    let before = scene.server.uploads().len();
    let json = br#"{"fileName":"cut.bin","fileSize":10}"#;
    let mut request = head(
        &scene.server,
        "POST",
        "/attachment/initiate",
        &[
            ("content-type", "application/json"),
            ("content-length", "200"),
        ],
    );
    request.extend_from_slice(json);
    if let Some(reply) = scene.cut_off(&request).await {
        assert_eq!(reply.status, 400, "{reply:?}");
    }
    assert_eq!(scene.server.uploads().len(), before);

    // IETF: an append cut off keeps what arrived.
    let ietf = ietf_open(&scene).await;
    let mut request = head(
        &scene.server,
        "PATCH",
        &ietf,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "0"),
            ("upload-complete", "?0"),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[..400]);
    if let Some(reply) = scene.cut_off(&request).await {
        assert_eq!(reply.status, 204, "{reply:?}");
    }
    assert_eq!(offset_once_moved(&scene, &ietf, 0).await, 400);

    // A completing append cut off keeps what arrived, and does not complete
    // the upload short: with a declared length (which then is the
    // upload's), and chunked without one.
    let mut request = head(
        &scene.server,
        "PATCH",
        &ietf,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "400"),
            ("upload-complete", "?1"),
            ("content-length", "600"),
        ],
    );
    request.extend_from_slice(&data[400..700]);
    scene.cut_off(&request).await;
    offset_once_moved(&scene, &ietf, 400).await;
    assert_eq!(
        appended(&scene, &ietf).await,
        (700, false),
        "kept, not complete"
    );
    ietf_append(&scene, &ietf, 700, &data[700..1000], true).await;
    assert_eq!(scene.server.blob(id_in(&ietf)), &data[..1000]);

    let ietf = ietf_open(&scene).await;
    let mut request = head(
        &scene.server,
        "PATCH",
        &ietf,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "0"),
            ("upload-complete", "?1"),
            ("transfer-encoding", "chunked"),
        ],
    );
    let mut body = chunked(&data[..300], 100);
    body.truncate(body.len() - 5); // no last chunk: cut off
    request.extend_from_slice(&body);
    scene.cut_off(&request).await;
    offset_once_moved(&scene, &ietf, 0).await;
    assert_eq!(
        appended(&scene, &ietf).await,
        (300, false),
        "a cut-off completing request keeps its bytes and leaves the upload open"
    );
    ietf_append(&scene, &ietf, 300, &data[300..1300], false).await;
    ietf_append(&scene, &ietf, 1300, &data[1300..], true).await;
    assert_eq!(scene.server.blob(id_in(&ietf)), data);

    // The chunk is sent again, whole, and the file completes.
    let resp = scene
        .server
        .send(Method::PUT, &path, &[OCTET_STREAM], data.clone())
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        rest_complete(&scene, &id).await["sha256"],
        sha256_hex(&data)
    );
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_without_a_length_are_taken_within_the_limits() {
    let mut scene =
        bodies_scene("chunked_bodies_without_a_length_are_taken_within_the_limits").await;
    let data = source_bytes(3000, 23);
    let chunked_headers = |extra: &[(&'static str, &'static str)]| {
        let mut h = extra.to_vec();
        h.push(("transfer-encoding", "chunked"));
        h
    };

    // REST: exactly the chunk's length, or refused.
    let (id, _) = rest_open(&scene, 1000).await;
    let path = format!("/attachment/session/{id}/upload/0");
    for (len, status) in [(1001, 400), (999, 400), (20_000, 400), (1000, 201)] {
        let body: Vec<u8> = data.iter().cycle().take(len).copied().collect();
        let mut request = head(
            &scene.server,
            "PUT",
            &path,
            &chunked_headers(&[OCTET_STREAM]),
        );
        request.extend_from_slice(&chunked(&body, 256));
        let reply = scene.raw(&request).await.expect("a reply");
        assert_eq!(reply.status, status, "{len}: {reply:?}");
        if status == 400 {
            let status = rest_status(&scene, &id).await;
            assert_eq!(status["receivedChunks"], serde_json::json!([]), "{len}");
        }
    }
    assert_eq!(
        rest_complete(&scene, &id).await["sha256"],
        sha256_hex(&data[..1000])
    );

    // tus: within the upload's length, or 413 and nothing kept.
    let tus = tus_open(&scene, 1000).await;
    let patch =
        |offset: &'static str| chunked_headers(&[TUS, OFFSET_STREAM, ("upload-offset", offset)]);
    let mut request = head(&scene.server, "PATCH", &tus, &patch("0"));
    request.extend_from_slice(&chunked(&data[..600], 256));
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 204, "{reply:?}");
    let mut request = head(&scene.server, "PATCH", &tus, &patch("600"));
    request.extend_from_slice(&chunked(&data[600..1200], 256));
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(appended(&scene, &tus).await, (600, false));

    // IETF: within max-append-size, or 413 and nothing kept; a chunked
    // creation that completes.
    let ietf = ietf_open(&scene).await;
    let append = |offset: &'static str| {
        chunked_headers(&[
            PARTIAL_UPLOAD,
            ("upload-offset", offset),
            ("upload-complete", "?0"),
        ])
    };
    let mut request = head(&scene.server, "PATCH", &ietf, &append("0"));
    request.extend_from_slice(&chunked(&data[..800], 256));
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 204, "{reply:?}");
    let mut request = head(&scene.server, "PATCH", &ietf, &append("800"));
    request.extend_from_slice(&chunked(&data[800..2300], 256));
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 413, "over max-append-size: {reply:?}");
    assert_eq!(appended(&scene, &ietf).await, (800, false));
    let mut request = head(
        &scene.server,
        "POST",
        "/uploads",
        &chunked_headers(&[("upload-complete", "?1")]),
    );
    request.extend_from_slice(&chunked(&data[..900], 256));
    let reply = scene.raw(&request).await.expect("a reply");
    assert_eq!(reply.status, 201, "{reply:?}");
    let created = id_in(reply.header("location").expect("a Location")).to_owned();
    assert_eq!(scene.server.blob(&created), &data[..900]);

    // The uploads that refused bytes go on.
    let resp = scene
        .server
        .send(
            Method::PATCH,
            &tus,
            &[TUS, OFFSET_STREAM, ("upload-offset", "600")],
            data[600..1000].to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(scene.server.blob(id_in(&tus)), &data[..1000]);
    ietf_append(&scene, &ietf, 800, &data[800..1500], true).await;
    assert_eq!(scene.server.blob(id_in(&ietf)), &data[..1500]);
    scene.finish().await;
}
