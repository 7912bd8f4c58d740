//! A body that never finishes: the client sends the head and part of the
//! body, then nothing, without closing. With the endpoint's idle timeout
//! set to 300 ms, every dialect ends the request within a generous bound
//! (a reply, then the connection closes), records nothing of a chunk or a
//! raw upload, keeps what arrived of a tus or IETF append (which then
//! resumes from there), and leaves every upload resumable.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use resumable::http::{Endpoint, RawApi};
use resumable::{DefaultPolicy, SessionId};
use serde_json::Value;

use crate::scene::*;

/// The idle timeout of the stalled scenes.
const IDLE: Duration = Duration::from_millis(300);

/// How long a stalled request may take to end, at most: generous, so that
/// only a server that waits for the body (60 s by default, or for ever)
/// misses it.
const BOUND: Duration = Duration::from_secs(20);

/// Every dialect, with a 300 ms idle timeout (set between the dialects
/// added before it and the raw upload added after).
async fn stalled_scene(name: &'static str) -> Scene {
    Scene::with_endpoint(name, |engine| {
        Endpoint::all(engine.clone())
            .body_idle_timeout(IDLE)
            .raw(RawApi::new(engine).target("default", DefaultPolicy::new()))
    })
    .await
}

/// Sends `prefix` and stalls; returns the reply's status (`None` if the
/// server closed without one) once the server ended the request, and
/// asserts it did so within [`BOUND`] and not before the idle timeout.
async fn stalled(scene: &mut Scene, prefix: &[u8]) -> Option<u16> {
    scene.tried();
    let started = Instant::now();
    let mut stream = stall(&scene.server, prefix).await;
    let answer = read_answer(&mut stream, BOUND)
        .await
        .expect("the server ends a stalled request in time");
    let took = started.elapsed();
    assert!(
        took >= IDLE,
        "ended after {took:?}, before the idle timeout"
    );
    status_in(&answer)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_rest_bodies_end_in_400_and_record_nothing() {
    let mut scene = stalled_scene("stalled_rest_bodies_end_in_400_and_record_nothing").await;
    let data = source_bytes(3000, 31);

    // An initiate whose JSON never ends creates nothing.
    let before = scene.server.uploads().len();
    let mut request = head(
        &scene.server,
        "POST",
        "/attachment/initiate",
        &[
            ("content-type", "application/json"),
            ("content-length", "200"),
        ],
    );
    request.extend_from_slice(br#"{"fileName":"stall.bin","#);
    assert_eq!(stalled(&mut scene, &request).await, Some(400));
    assert_eq!(scene.server.uploads().len(), before);

    let resp = scene
        .server
        .request(Method::POST, "/attachment/initiate", None)
        .json(&serde_json::json!({ "fileName": "stall.bin", "fileSize": data.len() }))
        .send()
        .await
        .unwrap();
    let id = session_id(&json_of(resp, StatusCode::CREATED).await);
    let path = format!("/attachment/session/{id}/upload/0");
    // Half a chunk, and a head with no body byte at all.
    for sent in [1500, 0] {
        let mut request = head(
            &scene.server,
            "PUT",
            &path,
            &[OCTET_STREAM, ("content-length", "3000")],
        );
        request.extend_from_slice(&data[..sent]);
        assert_eq!(stalled(&mut scene, &request).await, Some(400), "{sent}");
        let resp = scene
            .server
            .request(Method::GET, &format!("/attachment/session/{id}"), None)
            .send()
            .await
            .unwrap();
        let status: Value = json_of(resp, StatusCode::OK).await;
        assert_eq!(status["receivedChunks"], serde_json::json!([]));
        assert_eq!(status["receivedBytes"], 0);
    }
    // The session is resumable: the chunk again, whole, and complete.
    let resp = scene
        .server
        .send(Method::PUT, &path, &[OCTET_STREAM], data.clone())
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = scene
        .server
        .send(
            Method::POST,
            &format!("/attachment/session/{id}/complete"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        json_of(resp, StatusCode::OK).await["sha256"],
        sha256_hex(&data)
    );
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tus_bodies_keep_what_arrived_unless_a_checksum_covers_them() {
    let mut scene =
        stalled_scene("stalled_tus_bodies_keep_what_arrived_unless_a_checksum_covers_them").await;
    let data = source_bytes(3000, 32);
    let len = data.len().to_string();

    // Creation with upload: the upload is made, with the bytes that came.
    let mut request = head(
        &scene.server,
        "POST",
        "/files",
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-length", &len),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[..400]);
    scene.tried();
    let mut stream = stall(&scene.server, &request).await;
    let answer = read_answer(&mut stream, BOUND)
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert_eq!(status_in(&answer), Some(201), "{text}");
    assert!(text.contains("upload-offset: 400\r\n"), "{text}");
    let upload = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("location: "))
        .map(|l| scene.server.path_of(l))
        .expect("a Location");
    assert_eq!(appended(&scene, &upload).await, (400, false));

    // A PATCH that stalls keeps what arrived, and says so.
    let mut request = head(
        &scene.server,
        "PATCH",
        &upload,
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-offset", "400"),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[400..1000]);
    assert_eq!(stalled(&mut scene, &request).await, Some(204));
    assert_eq!(appended(&scene, &upload).await, (1000, false));

    // One with a checksum cannot be verified: nothing is kept.
    let checksum = format!("sha1 {}", b64(&sha1_of(&data[1000..2000])));
    let mut request = head(
        &scene.server,
        "PATCH",
        &upload,
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-offset", "1000"),
            ("upload-checksum", &checksum),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[1000..1500]);
    assert_eq!(stalled(&mut scene, &request).await, Some(400));
    assert_eq!(appended(&scene, &upload).await, (1000, false));

    // The upload resumes from what was kept.
    let resp = scene
        .server
        .send(
            Method::PATCH,
            &upload,
            &[TUS, OFFSET_STREAM, ("upload-offset", "1000")],
            data[1000..].to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(scene.server.blob(id_in(&upload)), data);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_ietf_bodies_keep_what_arrived_and_never_complete() {
    let mut scene = stalled_scene("stalled_ietf_bodies_keep_what_arrived_and_never_complete").await;
    let data = source_bytes(3000, 33);
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
    let upload = scene.server.path_of(&location(&resp));

    let mut request = head(
        &scene.server,
        "PATCH",
        &upload,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "0"),
            ("upload-complete", "?0"),
            ("content-length", "1000"),
        ],
    );
    request.extend_from_slice(&data[..700]);
    assert_eq!(stalled(&mut scene, &request).await, Some(204));
    assert_eq!(appended(&scene, &upload).await, (700, false));

    // A completing request that stalls, chunked (its end unknown): the
    // bytes stay, the upload stays open.
    let mut request = head(
        &scene.server,
        "PATCH",
        &upload,
        &[
            PARTIAL_UPLOAD,
            ("upload-offset", "700"),
            ("upload-complete", "?1"),
            ("transfer-encoding", "chunked"),
        ],
    );
    let mut body = chunked(&data[700..1200], 250);
    body.truncate(body.len() - 5);
    request.extend_from_slice(&body);
    assert_eq!(stalled(&mut scene, &request).await, Some(204));
    assert_eq!(
        appended(&scene, &upload).await,
        (1200, false),
        "a stalled completing request does not complete the upload"
    );

    let resp = scene
        .server
        .send(
            Method::PATCH,
            &upload,
            &[
                ("upload-draft-interop-version", "8"),
                PARTIAL_UPLOAD,
                ("upload-offset", "1200"),
                ("upload-complete", "?1"),
            ],
            data[1200..].to_vec(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(scene.server.blob(id_in(&upload)), data);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_raw_uploads_end_in_400_and_leave_nothing() {
    let mut scene = stalled_scene("stalled_raw_uploads_end_in_400_and_leave_nothing").await;
    let data = source_bytes(3000, 34);
    let before = scene.server.uploads().len();
    for (framing, body) in [
        (("content-length", "3000"), data[..1200].to_vec()),
        (("transfer-encoding", "chunked"), {
            let mut b = chunked(&data[..1200], 400);
            b.truncate(b.len() - 5);
            b
        }),
    ] {
        let mut request = head(
            &scene.server,
            "POST",
            RAW,
            &[
                OCTET_STREAM,
                ("content-disposition", "file; filename=\"stall.bin\""),
                framing,
            ],
        );
        request.extend_from_slice(&body);
        assert_eq!(
            stalled(&mut scene, &request).await,
            Some(400),
            "{framing:?}"
        );
        assert_eq!(
            scene.server.uploads().len(),
            before,
            "{framing:?}: left bytes"
        );
    }
    let resp = scene
        .server
        .send(
            Method::POST,
            RAW,
            &[
                OCTET_STREAM,
                ("content-disposition", "file; filename=\"ok.bin\""),
            ],
            data.clone(),
        )
        .await;
    let stored = json_of(resp, StatusCode::CREATED).await;
    assert_eq!(stored["sha256"], sha256_hex(&data));
    scene.finish().await;
}

/// The SHA-1 of `bytes` (for tus `Upload-Checksum`).
fn sha1_of(bytes: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes).to_vec()
}
