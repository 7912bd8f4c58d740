//! Faults seen through the session REST API (`RestApi::handle`, no server):
//! the status, the problem `type`, `Retry-After` exactly on retryable 503s,
//! no internal detail in a 500, and the session resumable afterwards.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use resumable::conformance::faults::{SinkFault, StoreFault, StoreOp};
use resumable::http::{Reply, RestApi};
use serde_json::Value;

use crate::rig::*;

/// A rig with the REST API over its engine.
struct Api {
    rig: Rig,
    api: RestApi,
}

impl Api {
    fn new(backend: Backend) -> Self {
        let rig = Rig::new(backend);
        let api = RestApi::new(rig.engine.clone());
        Api { rig, api }
    }

    async fn send<B>(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: B,
    ) -> Reply
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<resumable::error::BoxError>,
    {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let (parts, ()) = request.body(()).expect("a request").into_parts();
        self.api.handle(&parts, &self.rig.me, body).await
    }

    /// Initiates an upload of `SIZE` bytes; its session id.
    async fn initiate(&self) -> String {
        let body = format!(r#"{{"fileName":"data.bin","fileSize":{SIZE}}}"#);
        let headers = [(CONTENT_TYPE.as_str(), "application/json".to_owned())];
        let reply = self
            .send(Method::POST, "/attachment/initiate", &headers, full(body))
            .await;
        assert_eq!(reply.status(), StatusCode::CREATED);
        json(&reply)["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned()
    }

    async fn put_chunk(&self, id: &str, source: &[u8], index: u64) -> Reply {
        let bytes = source[chunk(index, source.len())].to_vec();
        let headers = [
            (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
            (CONTENT_LENGTH.as_str(), bytes.len().to_string()),
        ];
        let path = format!("/attachment/session/{id}/upload/{index}");
        self.send(Method::PUT, &path, &headers, full(bytes)).await
    }

    async fn put_chunk_ok(&self, id: &str, source: &[u8], index: u64) {
        let reply = self.put_chunk(id, source, index).await;
        assert_eq!(reply.status(), StatusCode::CREATED, "chunk {index}");
    }

    async fn status(&self, id: &str) -> Value {
        let path = format!("/attachment/session/{id}");
        let reply = self.send(Method::GET, &path, &[], full("")).await;
        assert_eq!(reply.status(), StatusCode::OK);
        json(&reply)
    }

    async fn complete(&self, id: &str) -> Reply {
        let path = format!("/attachment/session/{id}/complete");
        self.send(Method::POST, &path, &[], full("")).await
    }

    /// Sends the missing chunks, completes, and checks the blob.
    async fn finish(&self, id: &str, source: &[u8]) {
        let status = self.status(id).await;
        for index in u64s(&status["missingChunks"]) {
            self.put_chunk_ok(id, source, index).await;
        }
        let reply = self.complete(id).await;
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(json(&reply)["sha256"], sha256(source).to_string());
        self.rig
            .assert_blob(id.parse().expect("a session id"), source)
            .await;
    }
}

fn full(bytes: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(bytes.into())
}

fn json(reply: &Reply) -> Value {
    serde_json::from_slice(reply.body()).expect("a JSON body")
}

fn u64s(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("a number"))
        .collect()
}

/// Checks a problem reply: its status, `type`, and `Retry-After` on a
/// retryable 503 only; returns its body.
#[track_caller]
fn problem(reply: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(reply.status(), status, "{:?}", reply.body());
    assert_eq!(
        reply.headers()[CONTENT_TYPE],
        "application/problem+json",
        "a problem reply"
    );
    let body = json(reply);
    assert_eq!(body["type"], format!("urn:resumable:problem:{code}"));
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(
        reply.headers().contains_key(RETRY_AFTER),
        status == StatusCode::SERVICE_UNAVAILABLE,
        "Retry-After on a retryable 503 only"
    );
    body
}

/// The store cannot record a chunk: 503 with `Retry-After`; the status
/// lists the chunk missing, and the retried PUT is a first receipt (201).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_store_unavailable_is_503_with_retry_after() {
    let api = Api::new(Backend::Fs);
    let source = data(SIZE, 60);
    let id = api.initiate().await;
    api.put_chunk_ok(&id, &source, 0).await;
    api.rig
        .store
        .fail_next(StoreOp::Update, StoreFault::Unavailable, 1);
    let reply = api.put_chunk(&id, &source, 1).await;
    let body = problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "store-failure");
    assert!(!body["detail"].as_str().unwrap().contains("injected"));
    let status = api.status(&id).await;
    assert_eq!(u64s(&status["receivedChunks"]), [0]);
    assert_eq!(status["state"], "open");
    api.finish(&id, &source).await;
}

/// The disk fills up mid-chunk: 503 `storage-full` with `Retry-After`;
/// nothing of the chunk is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_disk_full_is_503_storage_full() {
    let api = Api::new(Backend::Fs);
    let source = data(SIZE, 61);
    let id = api.initiate().await;
    api.put_chunk_ok(&id, &source, 0).await;
    api.rig.sink.disk_full_after_bytes(123);
    let reply = api.put_chunk(&id, &source, 1).await;
    problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "storage-full");
    let status = api.status(&id).await;
    assert_eq!(u64s(&status["receivedChunks"]), [0]);
    assert_eq!(status["receivedBytes"], CHUNK);
    api.finish(&id, &source).await;
}

/// A store failure a retry cannot fix: 500, no `Retry-After`, and none of
/// the backend's words in the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_store_backend_failure_is_500_without_details() {
    let api = Api::new(Backend::Memory);
    let source = data(SIZE, 62);
    let id = api.initiate().await;
    api.rig
        .store
        .fail_next(StoreOp::Update, StoreFault::Backend, 1);
    let reply = api.put_chunk(&id, &source, 0).await;
    let body = problem(&reply, StatusCode::INTERNAL_SERVER_ERROR, "store-failure");
    let detail = body["detail"].as_str().expect("a detail");
    assert!(!detail.contains("injected"), "{detail}");
    api.finish(&id, &source).await;
}

/// The request body fails mid-chunk: 400 `request-body-failed`; nothing is
/// counted and the chunk sent again is a first receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_body_failure_is_400() {
    let api = Api::new(Backend::Fs);
    let source = data(SIZE, 63);
    let id = api.initiate().await;
    let bytes = Bytes::copy_from_slice(&source[chunk(0, SIZE)]);
    let frames = futures::stream::iter([
        Ok(Frame::data(bytes.slice(..300))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        )),
    ]);
    let headers = [
        (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
        (CONTENT_LENGTH.as_str(), bytes.len().to_string()),
    ];
    let path = format!("/attachment/session/{id}/upload/0");
    let reply = api
        .send(Method::PUT, &path, &headers, StreamBody::new(frames))
        .await;
    problem(&reply, StatusCode::BAD_REQUEST, "request-body-failed");
    let status = api.status(&id).await;
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], 0);
    if let Some(parts) = api.rig.part_files(id.parse().unwrap()) {
        assert_eq!(parts, 0, "the cut-off body is not kept");
    }
    api.finish(&id, &source).await;
}

/// A conflict storm past the engine's limit: 503 `contention` with
/// `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_conflict_storm_is_503_contention() {
    let api = Api::new(Backend::Memory);
    let source = data(SIZE, 64);
    let id = api.initiate().await;
    api.rig.store.fail_next(
        StoreOp::Update,
        StoreFault::Conflict,
        u64::from(MAX_RETRIES) + 1,
    );
    let reply = api.put_chunk(&id, &source, 3).await;
    problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "contention");
    assert_eq!(
        u64s(&api.status(&id).await["receivedChunks"]),
        Vec::<u64>::new()
    );
    api.finish(&id, &source).await;
}

/// Finalize fails: complete answers 503, the status says open with every
/// chunk, and complete again answers 200 with the source's digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_failing_finalize_then_complete_is_200() {
    let api = Api::new(Backend::Fs);
    let source = data(SIZE, 65);
    let id = api.initiate().await;
    for index in 0..CHUNKS {
        api.put_chunk_ok(&id, &source, index).await;
    }
    api.rig.sink.fail_finalize(SinkFault::Unavailable);
    let reply = api.complete(&id).await;
    problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "sink-failure");
    let status = api.status(&id).await;
    assert_eq!(status["state"], "open");
    assert_eq!(u64s(&status["missingChunks"]), Vec::<u64>::new());
    assert_eq!(status["receivedBytes"], SIZE);
    api.finish(&id, &source).await;
}
