//! The session REST API end to end: real HTTP on loopback against the axum
//! wiring of the example server, on the filesystem store and sink.
//!
//! Every test starts its own server on `127.0.0.1:0` over a fresh temporary
//! data directory, with a manual clock, and stops it when the test ends.

// The example servers' shared code; the tests use only part of it.
#[allow(dead_code)]
#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/server/wiring.rs"]
mod wiring;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use reqwest::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use resumable::{Clock, Engine, ManualClock};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use common::Settings;

/// Where the manual clock starts: a whole second, so RFC 3339 times (to the
/// second) compare exactly.
const START: Duration = Duration::from_secs(1_750_000_000);

/// The session timeout every test server is configured with.
const EXPIRY: Duration = Duration::from_secs(3600);

const PROBLEM_JSON: &str = "application/problem+json";

/// A running example server and a client for it.
struct Server {
    base: String,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    client: reqwest::Client,
    task: JoinHandle<()>,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves the wiring's router with sessions of `chunk_size`-byte chunks.
    async fn start(chunk_size: u64) -> Server {
        let data = tempfile::tempdir().expect("temporary data directory");
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + START));
        let settings = Settings {
            chunk_size,
            expiry: EXPIRY,
        };
        let engine = common::open_engine(data.path(), &settings, clock.clone() as Arc<dyn Clock>)
            .expect("open the engine");
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let app = wiring::router(engine.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        Server {
            base: format!("http://{addr}"),
            engine,
            clock,
            client,
            task,
            data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(t) => builder.header(AUTHORIZATION, format!("Bearer {t}")),
            None => builder,
        }
    }

    /// `POST /attachment/initiate` with a JSON body.
    async fn initiate(&self, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, "/attachment/initiate", token)
            .json(body)
            .send()
            .await
            .expect("initiate request")
    }

    /// Initiates an upload that must succeed; returns the reply's JSON.
    async fn open(&self, token: Option<&str>, name: &str, size: usize) -> Value {
        let resp = self
            .initiate(token, &json!({ "fileName": name, "fileSize": size }))
            .await;
        json_of(resp, StatusCode::CREATED).await
    }

    /// `PUT` one chunk, as `application/octet-stream`, optionally with a
    /// `Content-Digest` of the bytes.
    async fn put(
        &self,
        token: Option<&str>,
        id: &str,
        index: &str,
        bytes: &[u8],
        digest: bool,
    ) -> Response {
        let mut builder = self
            .request(
                Method::PUT,
                &format!("/attachment/session/{id}/upload/{index}"),
                token,
            )
            .header(CONTENT_TYPE, "application/octet-stream");
        if digest {
            builder = builder.header("content-digest", content_digest(bytes));
        }
        builder
            .body(bytes.to_vec())
            .send()
            .await
            .expect("chunk request")
    }

    /// `GET` the session's status.
    async fn status(&self, token: Option<&str>, id: &str) -> Response {
        self.request(Method::GET, &format!("/attachment/session/{id}"), token)
            .send()
            .await
            .expect("status request")
    }

    /// Reads the status, which must succeed.
    async fn status_ok(&self, token: Option<&str>, id: &str) -> Value {
        json_of(self.status(token, id).await, StatusCode::OK).await
    }

    async fn complete(&self, token: Option<&str>, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/attachment/session/{id}/complete"),
            token,
        )
        .send()
        .await
        .expect("complete request")
    }

    async fn abort(&self, token: Option<&str>, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/attachment/session/{id}/abort"),
            token,
        )
        .send()
        .await
        .expect("abort request")
    }

    /// The sink's directory of an upload.
    fn upload_dir(&self, id: &str) -> PathBuf {
        self.data.path().join("blobs").join("uploads").join(id)
    }
}

/// Deterministic test bytes.
fn source_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An RFC 9530 `Content-Digest` of `bytes`.
fn content_digest(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
    format!("sha-256=:{encoded}:")
}

/// The bytes of chunk `index` of `data`.
fn chunk_of(data: &[u8], chunk_size: usize, index: usize) -> &[u8] {
    let start = index * chunk_size;
    &data[start..(start + chunk_size).min(data.len())]
}

/// Asserts a JSON reply with `status` and returns its body.
async fn json_of(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let content_type = header_str(&resp, CONTENT_TYPE.as_str());
    let text = resp.text().await.expect("reply body");
    assert_eq!(got, status, "unexpected reply: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    serde_json::from_str(&text).expect("a JSON reply")
}

/// Asserts an RFC 9457 problem reply of `status` and `code`; returns its body.
async fn problem(resp: Response, status: StatusCode, code: &str) -> Value {
    let got = resp.status();
    let content_type = header_str(&resp, CONTENT_TYPE.as_str());
    let text = resp.text().await.expect("problem body");
    assert_eq!(got, status, "unexpected reply: {text}");
    assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON), "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON problem");
    assert_eq!(
        body["type"],
        format!("urn:resumable:problem:{code}"),
        "{text}"
    );
    assert_eq!(body["status"], status.as_u16(), "{text}");
    assert!(body["title"].is_string(), "{text}");
    assert!(body["detail"].is_string(), "{text}");
    body
}

fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("visible ASCII header").to_owned())
}

fn id_of(reply: &Value) -> String {
    reply["sessionId"]
        .as_str()
        .expect("sessionId is a string")
        .to_owned()
}

fn u64s(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an integer"))
        .collect()
}

/// The names of the files in a directory.
fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect()
}

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
            (index, bytes, json_of(resp, StatusCode::CREATED).await)
        }
    });
    for (index, bytes, receipt) in futures::future::join_all(uploads).await {
        assert_eq!(receipt["sessionId"], id);
        assert_eq!(receipt["chunkId"], index);
        assert_eq!(receipt["offset"], index * CHUNK);
        assert_eq!(receipt["size"], bytes.len());
        assert_eq!(receipt["sha256"], sha256_hex(bytes));
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

    let blob = std::fs::read(server.upload_dir(&id).join("blob")).expect("the finished blob");
    assert!(blob == data, "the blob on disk differs from the source");

    // Completing again answers the same attachment; the upload is closed.
    let again = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(again, done);
    assert_eq!(server.status_ok(None, &id).await["state"], "completed");
    let late = server
        .put(None, &id, "0", chunk_of(&data, CHUNK, 0), false)
        .await;
    problem(late, StatusCode::CONFLICT, "invalid-session-state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_reply_has_the_documented_shape() {
    let server = Server::start(1000).await;
    let resp = server
        .initiate(None, &json!({ "fileName": "report.pdf", "fileSize": 2500 }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = header_str(&resp, LOCATION.as_str()).expect("a Location header");
    let reply = json_of(resp, StatusCode::CREATED).await;

    let keys: BTreeSet<&str> = reply
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["sessionId", "chunkSize", "totalChunks", "expiresAt"])
    );
    let id = id_of(&reply);
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(location, format!("/attachment/session/{id}"));
    assert_eq!(reply["chunkSize"], 1000);
    assert_eq!(reply["totalChunks"], 3);

    let expires_at = humantime::parse_rfc3339(reply["expiresAt"].as_str().expect("a string"))
        .expect("expiresAt is RFC 3339");
    assert_eq!(expires_at, server.clock.now() + EXPIRY);

    // The Location names the session's status.
    let status = json_of(
        server
            .client
            .get(server.url(&location))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["sessionId"], id);
    assert_eq!(status["state"], "open");
    assert_eq!(status["fileName"], "report.pdf");
    assert_eq!(status["contentType"], Value::Null);
    assert_eq!(status["chunkSize"], 1000);
    assert_eq!(status["totalChunks"], 3);
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(u64s(&status["missingChunks"]), [0, 1, 2]);
    assert_eq!(status["receivedBytes"], 0);
    assert_eq!(status["expiresAt"], reply["expiresAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_chunk_is_replaced_and_the_file_stays_correct() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2500, 2);
    let id = id_of(&server.open(None, "retry.bin", data.len()).await);

    // Chunk 1 first arrives damaged (right length, wrong bytes), then again.
    let damaged = source_bytes(CHUNK, 99);
    let first = json_of(
        server.put(None, &id, "1", &damaged, false).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["sha256"], sha256_hex(&damaged));
    let retry = json_of(
        server
            .put(None, &id, "1", chunk_of(&data, CHUNK, 1), true)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(retry["chunkId"], 1);
    assert_eq!(retry["sha256"], sha256_hex(chunk_of(&data, CHUNK, 1)));

    for index in [2, 0] {
        let resp = server
            .put(
                None,
                &id,
                &index.to_string(),
                chunk_of(&data, CHUNK, index),
                false,
            )
            .await;
        json_of(resp, StatusCode::CREATED).await;
    }
    // An identical retry is answered 200 as well.
    let same = server
        .put(None, &id, "0", chunk_of(&data, CHUNK, 0), true)
        .await;
    json_of(same, StatusCode::OK).await;

    // Superseded attempts are discarded: one part file per chunk.
    let parts = file_names(&server.upload_dir(&id).join("parts"));
    assert_eq!(parts.len(), 3, "{parts:?}");

    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), [0, 1, 2]);
    assert_eq!(status["receivedBytes"], data.len());

    let done = json_of(server.complete(None, &id).await, StatusCode::OK).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
    let blob = std::fs::read(server.upload_dir(&id).join("blob")).expect("the finished blob");
    assert!(blob == data, "the blob on disk differs from the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_deletes_the_bytes_and_later_calls_are_gone() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(3000, 3);
    let id = id_of(&server.open(None, "abort.bin", data.len()).await);
    json_of(
        server
            .put(None, &id, "0", chunk_of(&data, CHUNK, 0), false)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(server.upload_dir(&id).is_dir());

    let resp = server.abort(None, &id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert!(
        !server.upload_dir(&id).exists(),
        "the aborted upload's directory is deleted"
    );

    let gone = problem(
        server.status(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    assert_eq!(gone["state"], "aborted");
    let upload = server
        .put(None, &id, "1", chunk_of(&data, CHUNK, 1), false)
        .await;
    problem(upload, StatusCode::GONE, "session-gone").await;
    problem(
        server.complete(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    problem(
        server.abort(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    assert!(!server.upload_dir(&id).exists(), "no chunk brought it back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_answers_gone_before_the_sweep_and_the_sweep_deletes_the_bytes() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2048, 4);
    let id = id_of(&server.open(None, "idle.bin", data.len()).await);

    // A chunk received late in the timeout extends the expiry.
    server.clock.advance(EXPIRY - Duration::from_secs(10));
    let receipt = json_of(
        server
            .put(None, &id, "0", chunk_of(&data, CHUNK, 0), false)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let extended = server.clock.now() + EXPIRY;
    assert_eq!(
        humantime::parse_rfc3339(receipt["expiresAt"].as_str().unwrap()).unwrap(),
        extended
    );
    server.clock.advance(EXPIRY - Duration::from_secs(1));
    assert_eq!(server.status_ok(None, &id).await["state"], "open");

    // Past the expiry: gone at once, although nothing has swept yet.
    server.clock.set(extended + Duration::from_secs(1));
    let gone = problem(
        server.status(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    assert_eq!(gone["state"], "expired");
    let upload = server
        .put(None, &id, "1", chunk_of(&data, CHUNK, 1), false)
        .await;
    problem(upload, StatusCode::GONE, "session-gone").await;
    problem(
        server.complete(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    assert!(
        server.upload_dir(&id).is_dir(),
        "the bytes are deleted by the sweep, not by a request"
    );

    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert!(
        !server.upload_dir(&id).exists(),
        "the sweep deleted the expired upload's bytes"
    );
    assert!(file_names(&server.data.path().join("blobs").join("uploads")).is_empty());
    problem(
        server.status(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_missing_chunks_lists_them() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(5 * CHUNK + 7, 5);
    let id = id_of(&server.open(None, "gaps.bin", data.len()).await);
    for index in [0, 2, 5] {
        let resp = server
            .put(
                None,
                &id,
                &index.to_string(),
                chunk_of(&data, CHUNK, index),
                false,
            )
            .await;
        json_of(resp, StatusCode::CREATED).await;
    }

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
async fn chunk_of_the_wrong_length_is_refused_and_not_recorded() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK + 100, 6);
    let id = id_of(&server.open(None, "length.bin", data.len()).await);

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
    let resp = server
        .put(None, &id, "0", chunk_of(&data, CHUNK, 0), false)
        .await;
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_range_must_be_the_chunks_range() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK + 100, 7);
    let id = id_of(&server.open(None, "range.bin", data.len()).await);
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
        let resp = server
            .request(Method::PUT, &path, None)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("content-range", &range)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());

    // The chunk's exact range is taken, with the file size or without.
    for (range, status) in [
        (format!("bytes 1024-2047/{size}"), StatusCode::CREATED),
        ("bytes 1024-2047/*".to_owned(), StatusCode::OK),
    ] {
        let resp = server
            .request(Method::PUT, &path, None)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("content-range", &range)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
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
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK + 100, 8);
    let id = id_of(&server.open(None, "index.bin", data.len()).await);
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
async fn unknown_or_malformed_session_id_is_not_found() {
    let server = Server::start(1024).await;
    // A real session exists, so "not found" is not just an empty store.
    server.open(None, "real.bin", 10).await;

    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let malformed = [
        "..%2F..%2Fetc",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "not-a-session",
        "0123456789abcdef0123456789abcdeg",
    ];
    for id in std::iter::once(unknown.as_str()).chain(malformed) {
        problem(
            server.status(None, id).await,
            StatusCode::NOT_FOUND,
            "session-not-found",
        )
        .await;
        problem(
            server.put(None, id, "0", b"0123456789", false).await,
            StatusCode::NOT_FOUND,
            "session-not-found",
        )
        .await;
        problem(
            server.complete(None, id).await,
            StatusCode::NOT_FOUND,
            "session-not-found",
        )
        .await;
        problem(
            server.abort(None, id).await,
            StatusCode::NOT_FOUND,
            "session-not-found",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owners_session_looks_unknown() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK, 9);
    let alice = Some("alice");
    let id = id_of(&server.open(alice, "private.bin", data.len()).await);
    json_of(
        server
            .put(alice, &id, "0", chunk_of(&data, CHUNK, 0), false)
            .await,
        StatusCode::CREATED,
    )
    .await;

    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let unknown_type = problem(
        server.status(Some("bob"), &unknown).await,
        StatusCode::NOT_FOUND,
        "session-not-found",
    )
    .await["type"]
        .clone();

    for intruder in [Some("bob"), None] {
        let replies = [
            server.status(intruder, &id).await,
            server
                .put(intruder, &id, "1", chunk_of(&data, CHUNK, 1), false)
                .await,
            server
                .put(intruder, &id, "0", chunk_of(&data, CHUNK, 1), false)
                .await,
            server.complete(intruder, &id).await,
            server.abort(intruder, &id).await,
        ];
        for resp in replies {
            let p = problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
            assert_eq!(p["type"], unknown_type);
        }
    }

    let status = server.status_ok(alice, &id).await;
    assert_eq!(status["state"], "open");
    assert_eq!(u64s(&status["receivedChunks"]), [0]);
    assert!(server.upload_dir(&id).is_dir());
    json_of(
        server
            .put(alice, &id, "1", chunk_of(&data, CHUNK, 1), false)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let done = json_of(server.complete(alice, &id).await, StatusCode::OK).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_names_are_stripped_or_refused() {
    let server = Server::start(1024).await;

    for (raw, stored) in [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/  spaced.txt  ", "spaced.txt"),
    ] {
        let id = id_of(&server.open(None, raw, 10).await);
        assert_eq!(server.status_ok(None, &id).await["fileName"], stored);
    }

    let long = "a".repeat(4096);
    let too_long_base = format!("{}.txt", "b".repeat(300));
    for raw in [
        "evil\u{0}.txt",
        "evil\u{7}.txt",
        "line\nbreak.txt",
        "del\u{7f}.txt",
        long.as_str(),
        too_long_base.as_str(),
        "",
        "   ",
        ".",
        "..",
        "../..",
        "dir/",
    ] {
        let resp = server
            .initiate(None, &json!({ "fileName": raw, "fileSize": 10 }))
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name").await;
    }
    // Only the three accepted names made upload directories.
    let uploads = file_names(&server.data.path().join("blobs").join("uploads"));
    assert_eq!(uploads.len(), 3, "{uploads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_initiate_bodies_are_refused() {
    let server = Server::start(1024).await;
    let good_hex = sha256_hex(b"x");
    let big = format!(
        r#"{{"fileName":"a.bin","fileSize":1,"contentType":"{}"}}"#,
        "x".repeat(70 << 10)
    );
    let bodies = [
        r#"{"fileName": "a.bin", "fileSize": "#.to_owned(),
        "not json at all".to_owned(),
        r#"{"fileName":"a.bin","fileSize":-1}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":18446744073709551616}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":"12"}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1.5}"#.to_owned(),
        r#"{"fileName":"a.bin"}"#.to_owned(),
        r#"{"fileSize":1}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1,"owner":"root"}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1,"sha256":"xyz"}"#.to_owned(),
        format!(
            r#"{{"fileName":"a.bin","fileSize":1,"sha256":"{}"}}"#,
            &good_hex[1..]
        ),
        format!(r#"{{"fileName":"a.bin","fileSize":1,"sha256":"{good_hex}00"}}"#),
        r#"{"fileName":7,"fileSize":1}"#.to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        String::new(),
        big,
    ];
    for body in bodies {
        let resp = server
            .request(Method::POST, "/attachment/initiate", None)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body:.80}");
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }

    let valid = r#"{"fileName":"a.bin","fileSize":1}"#;
    for media_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let resp = server
            .request(Method::POST, "/attachment/initiate", None)
            .header(CONTENT_TYPE, media_type)
            .body(valid)
            .send()
            .await
            .unwrap();
        problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    assert!(file_names(&server.data.path().join("blobs").join("uploads")).is_empty());

    // The same body with a JSON media type (parameters allowed) is taken.
    let resp = server
        .request(Method::POST, "/attachment/initiate", None)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_over_the_policy_max_is_too_large() {
    const GIB: u64 = 1 << 30;
    let server = Server::start(64 << 20).await;
    for size in [20 * GIB, 10 * GIB + 1, u64::MAX] {
        let resp = server
            .initiate(None, &json!({ "fileName": "huge.iso", "fileSize": size }))
            .await;
        let p = problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
        assert_eq!(p["maxFileSize"], 10 * GIB);
    }
    assert!(file_names(&server.data.path().join("blobs").join("uploads")).is_empty());

    // The limit itself is allowed.
    let reply = server.open(None, "limit.iso", (10 * GIB) as usize).await;
    assert_eq!(reply["totalChunks"], 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_with_a_form_media_type_is_unsupported() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(CHUNK + 10, 10);
    let id = id_of(&server.open(None, "form.bin", data.len()).await);
    let path = format!("/attachment/session/{id}/upload/0");

    for media_type in [
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
    ] {
        let resp = server
            .request(Method::PUT, &path, None)
            .header(CONTENT_TYPE, media_type)
            .body(chunk_of(&data, CHUNK, 0).to_vec())
            .send()
            .await
            .unwrap();
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
    let resp = server
        .request(Method::PUT, &path, None)
        .header(CONTENT_TYPE, "Application/Octet-Stream; x=y")
        .body(chunk_of(&data, CHUNK, 0).to_vec())
        .send()
        .await
        .unwrap();
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_with_a_wrong_content_digest_is_discarded() {
    const CHUNK: usize = 1024;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(CHUNK + 10, 11);
    let id = id_of(&server.open(None, "digest.bin", data.len()).await);
    let path = format!("/attachment/session/{id}/upload/0");
    let chunk = chunk_of(&data, CHUNK, 0);
    let other = source_bytes(CHUNK, 12);

    let resp = server
        .request(Method::PUT, &path, None)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header("content-digest", content_digest(&other))
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap();
    let p = problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "checksum-mismatch").await;
    assert_eq!(p["chunkId"], 0);
    assert_eq!(p["expectedSha256"], sha256_hex(&other));
    assert_eq!(p["actualSha256"], sha256_hex(chunk));

    let status = server.status_ok(None, &id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], 0);
    let parts = file_names(&server.upload_dir(&id).join("parts"));
    assert!(
        parts.is_empty(),
        "the refused chunk's bytes remain: {parts:?}"
    );

    // A Content-Digest that is not a SHA-256 byte sequence is malformed.
    for bad in ["sha-256=:AAAA:", "sha-256=abc", "(("] {
        let resp = server
            .request(Method::PUT, &path, None)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("content-digest", bad)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
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
    for index in 0..3 {
        let resp = server
            .put(
                None,
                &id,
                &index.to_string(),
                chunk_of(&data, CHUNK, index),
                true,
            )
            .await;
        json_of(resp, StatusCode::CREATED).await;
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_and_unknown_route() {
    let server = Server::start(1024).await;
    let id = id_of(&server.open(None, "m.bin", 10).await);

    let cases = [
        (Method::DELETE, format!("/attachment/session/{id}"), "GET"),
        (Method::PUT, format!("/attachment/session/{id}"), "GET"),
        (Method::GET, "/attachment/initiate".to_owned(), "POST"),
        (
            Method::GET,
            format!("/attachment/session/{id}/complete"),
            "POST",
        ),
        (
            Method::DELETE,
            format!("/attachment/session/{id}/abort"),
            "POST",
        ),
        (
            Method::POST,
            format!("/attachment/session/{id}/upload/0"),
            "PUT",
        ),
    ];
    for (method, path, allow) in cases {
        let resp = server.request(method, &path, None).send().await.unwrap();
        assert_eq!(
            header_str(&resp, ALLOW.as_str()).as_deref(),
            Some(allow),
            "{path}"
        );
        problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
    // The session survived the DELETE.
    assert_eq!(server.status_ok(None, &id).await["state"], "open");

    for path in [
        "/attachment/".to_owned(),
        "/attachment/nope".to_owned(),
        "/attachment/session".to_owned(),
        format!("/attachment/session/{id}/upload"),
        format!("/attachment/session/{id}/upload/0/extra"),
        format!("/attachment/session/{id}/claim"),
        "/attachment/initiate/".to_owned(),
    ] {
        let resp = server
            .request(Method::GET, &path, None)
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::NOT_FOUND, "no-such-route").await;
    }
    // Outside the API's base path the router answers a bare 404.
    for path in ["/", "/attachment", "/attachments/initiate", "/elsewhere"] {
        let resp = server
            .request(Method::POST, path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_chunk_keep_exactly_one() {
    const CHUNK: usize = 64 << 10;
    let server = Server::start(CHUNK as u64).await;
    let data = source_bytes(2 * CHUNK, 14);
    let id = id_of(&server.open(None, "race.bin", data.len()).await);
    let chunk = chunk_of(&data, CHUNK, 0);

    let attempts = (0..6).map(|n| {
        let server = &server;
        let id = id.as_str();
        async move { server.put(None, id, "0", chunk, n % 2 == 0).await }
    });
    let mut created = 0;
    for resp in futures::future::join_all(attempts).await {
        let status = resp.status();
        let receipt = json_of(resp, status).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {receipt}"
        );
        created += usize::from(status == StatusCode::CREATED);
        assert_eq!(receipt["sha256"], sha256_hex(chunk));
    }
    assert_eq!(created, 1, "exactly one attempt is the first receipt");
    let parts = file_names(&server.upload_dir(&id).join("parts"));
    assert_eq!(
        parts.len(),
        1,
        "superseded attempts are discarded: {parts:?}"
    );

    json_of(
        server
            .put(None, &id, "1", chunk_of(&data, CHUNK, 1), false)
            .await,
        StatusCode::CREATED,
    )
    .await;
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
    let blob = std::fs::read(server.upload_dir(&id).join("blob")).expect("the finished blob");
    assert!(blob.is_empty());
}
