//! The test server and client: the example wiring served on loopback over a
//! fresh data directory with a manual clock, requests for every route, and
//! assertions on JSON and problem replies.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use resumable::{Clock, Engine, ManualClock};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::common::{self, Settings};
use crate::wiring;

/// Where the manual clock starts: a whole second, so RFC 3339 times (to the
/// second) compare exactly.
const START: Duration = Duration::from_secs(1_750_000_000);

/// The session timeout every test server is configured with.
pub(crate) const EXPIRY: Duration = Duration::from_secs(3600);

const PROBLEM_JSON: &str = "application/problem+json";

/// The path that initiates an upload.
pub(crate) const INITIATE: &str = "/attachment/initiate";

/// The `Content-Type` header of a chunk.
pub(crate) const OCTET_STREAM: (&str, &str) = ("content-type", "application/octet-stream");

/// A running example server and a client for it.
pub(crate) struct Server {
    base: String,
    chunk_size: usize,
    pub(crate) engine: Arc<Engine>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) client: reqwest::Client,
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
    pub(crate) async fn start(chunk_size: u64) -> Server {
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
            chunk_size: chunk_size as usize,
            engine,
            clock,
            client,
            task,
            data,
        }
    }

    /// A server with `chunk_size`-byte chunks where an upload of `len`
    /// bytes of `source_bytes(len, seed)` named `name` has been initiated.
    pub(crate) async fn with_upload(
        chunk_size: usize,
        len: usize,
        seed: u64,
        name: &str,
    ) -> (Server, Vec<u8>, String) {
        let server = Server::start(chunk_size as u64).await;
        let data = source_bytes(len, seed);
        let id = id_of(&server.open(None, name, data.len()).await);
        (server, data, id)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(t) => builder.header(AUTHORIZATION, format!("Bearer {t}")),
            None => builder,
        }
    }

    /// Sends `body` with `headers` and no token.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut builder = self.request(method, path, None);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body).send().await.unwrap()
    }

    /// `POST /attachment/initiate` with a JSON body.
    pub(crate) async fn initiate(&self, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, INITIATE, token)
            .json(body)
            .send()
            .await
            .expect("initiate request")
    }

    /// Initiates an upload that must succeed; returns the reply's JSON.
    pub(crate) async fn open(&self, token: Option<&str>, name: &str, size: usize) -> Value {
        let resp = self
            .initiate(token, &json!({ "fileName": name, "fileSize": size }))
            .await;
        json_of(resp, StatusCode::CREATED).await
    }

    /// `PUT` one chunk, as `application/octet-stream`, optionally with a
    /// `Content-Digest` of the bytes.
    pub(crate) async fn put(
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

    /// `PUT` chunk `index` of `data`, in the server's chunk size.
    pub(crate) async fn put_chunk(
        &self,
        token: Option<&str>,
        id: &str,
        data: &[u8],
        index: usize,
        digest: bool,
    ) -> Response {
        let bytes = chunk_of(data, self.chunk_size, index);
        self.put(token, id, &index.to_string(), bytes, digest).await
    }

    /// `PUT` chunk `index` of `data`, which must be taken as a first receipt
    /// (201); returns the receipt.
    pub(crate) async fn put_new_chunk(
        &self,
        token: Option<&str>,
        id: &str,
        data: &[u8],
        index: usize,
        digest: bool,
    ) -> Value {
        let resp = self.put_chunk(token, id, data, index, digest).await;
        json_of(resp, StatusCode::CREATED).await
    }

    /// `PUT` the chunks `indices` of `data` in turn, each of which must be
    /// taken as a first receipt (201).
    pub(crate) async fn put_new_chunks(
        &self,
        id: &str,
        data: &[u8],
        indices: impl IntoIterator<Item = usize>,
        digest: bool,
    ) {
        for index in indices {
            self.put_new_chunk(None, id, data, index, digest).await;
        }
    }

    /// `GET` the session's status.
    pub(crate) async fn status(&self, token: Option<&str>, id: &str) -> Response {
        self.request(Method::GET, &format!("/attachment/session/{id}"), token)
            .send()
            .await
            .expect("status request")
    }

    /// Reads the status, which must succeed.
    pub(crate) async fn status_ok(&self, token: Option<&str>, id: &str) -> Value {
        json_of(self.status(token, id).await, StatusCode::OK).await
    }

    pub(crate) async fn complete(&self, token: Option<&str>, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/attachment/session/{id}/complete"),
            token,
        )
        .send()
        .await
        .expect("complete request")
    }

    pub(crate) async fn abort(&self, token: Option<&str>, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/attachment/session/{id}/abort"),
            token,
        )
        .send()
        .await
        .expect("abort request")
    }

    /// Asserts that the status (naming `state`), a chunk of `data` and
    /// complete are all answered 410 Gone.
    pub(crate) async fn assert_gone(&self, id: &str, data: &[u8], state: &str) {
        let gone = problem(
            self.status(None, id).await,
            StatusCode::GONE,
            "session-gone",
        )
        .await;
        assert_eq!(gone["state"], state);
        let upload = self.put_chunk(None, id, data, 1, false).await;
        problem(upload, StatusCode::GONE, "session-gone").await;
        problem(
            self.complete(None, id).await,
            StatusCode::GONE,
            "session-gone",
        )
        .await;
    }

    /// The sink's directory of uploads.
    fn uploads_dir(&self) -> PathBuf {
        self.data.path().join("blobs").join("uploads")
    }

    /// The names of the uploads the sink holds bytes of.
    pub(crate) fn uploads(&self) -> Vec<String> {
        file_names(&self.uploads_dir())
    }

    /// The sink's directory of an upload.
    pub(crate) fn upload_dir(&self, id: &str) -> PathBuf {
        self.uploads_dir().join(id)
    }

    /// The finished blob of an upload, read from disk.
    pub(crate) fn blob(&self, id: &str) -> Vec<u8> {
        std::fs::read(self.upload_dir(id).join("blob")).expect("the finished blob")
    }
}

/// Deterministic test bytes.
pub(crate) fn source_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An RFC 9530 `Content-Digest` of `bytes`.
pub(crate) fn content_digest(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
    format!("sha-256=:{encoded}:")
}

/// The bytes of chunk `index` of `data`.
pub(crate) fn chunk_of(data: &[u8], chunk_size: usize, index: usize) -> &[u8] {
    let start = index * chunk_size;
    &data[start..(start + chunk_size).min(data.len())]
}

/// Asserts a JSON reply with `status` and returns its body.
pub(crate) async fn json_of(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let content_type = header_str(&resp, CONTENT_TYPE.as_str());
    let text = resp.text().await.expect("reply body");
    assert_eq!(got, status, "unexpected reply: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    serde_json::from_str(&text).expect("a JSON reply")
}

/// Asserts an RFC 9457 problem reply of `status` and `code`; returns its body.
pub(crate) async fn problem(resp: Response, status: StatusCode, code: &str) -> Value {
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

pub(crate) fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("visible ASCII header").to_owned())
}

pub(crate) fn id_of(reply: &Value) -> String {
    reply["sessionId"]
        .as_str()
        .expect("sessionId is a string")
        .to_owned()
}

pub(crate) fn u64s(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an integer"))
        .collect()
}

/// The names of the files in a directory.
pub(crate) fn file_names(dir: &Path) -> Vec<String> {
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
