//! The HTTP test harness shared by the `http_*` test targets: the example
//! wiring (or an endpoint a test builds) served with axum on `127.0.0.1:0`
//! over a fresh data directory with a manual clock, a client for it, a raw
//! HTTP/1.1 exchange over a TCP stream (for what reqwest cannot send:
//! trailers, bodies cut off mid-way), and assertions on replies.
//!
//! A target includes it as `#[path = "../support/http.rs"] mod support;`
//! next to the example modules `common` and `wiring`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response as AxumResponse};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use resumable::http::Endpoint;
use resumable::{Clock, Engine, ManualClock};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::common;
use crate::wiring;
use resumable::sink::FsSink;
use resumable::store::FsStore;

/// Where the manual clock starts: a whole second, so RFC 3339 times (to the
/// second) compare exactly.
pub(crate) const START: Duration = Duration::from_secs(1_750_000_000);

/// The session timeout every test server is configured with.
pub(crate) const EXPIRY: Duration = Duration::from_secs(3600);

/// The media type of problem replies.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// A running server and a client for it. Dropping it stops the server.
pub(crate) struct TestServer {
    addr: SocketAddr,
    pub(crate) chunk_size: usize,
    pub(crate) engine: Arc<Engine>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) client: reqwest::Client,
    task: JoinHandle<()>,
    data: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves the example wiring's router (every dialect, CORS for any
    /// origin) with sessions of `chunk_size`-byte chunks.
    pub(crate) async fn start(chunk_size: u64) -> TestServer {
        Self::serve(chunk_size, wiring::router).await
    }

    /// Serves the endpoint `build` makes on the engine, as the example
    /// wiring serves its own.
    pub(crate) async fn with_endpoint(build: impl FnOnce(Arc<Engine>) -> Endpoint) -> TestServer {
        Self::serve(8 << 20, |engine| {
            axum::Router::new()
                .fallback(handle)
                .with_state(Arc::new(build(engine)))
        })
        .await
    }

    async fn serve(
        chunk_size: u64,
        router: impl FnOnce(Arc<Engine>) -> axum::Router,
    ) -> TestServer {
        let data = tempfile::tempdir().expect("temporary data directory");
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + START));
        let store = FsStore::open(data.path().join("store")).expect("open the store");
        let sink = FsSink::open(data.path().join("blobs")).expect("open the sink");
        let engine = Arc::new(
            Engine::builder(store, sink)
                .chunk_size(chunk_size)
                .session_timeout(EXPIRY)
                .clock(clock.clone() as Arc<dyn Clock>)
                .build(),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let app = router(engine.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        TestServer {
            addr,
            chunk_size: chunk_size as usize,
            engine,
            clock,
            client,
            task,
            data,
        }
    }

    /// `host:port` of the server.
    pub(crate) fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
        builder.body(body).send().await.expect("request")
    }

    /// Writes `request` (head and body, as bytes, with `Connection: close`)
    /// to a new connection and reads the server's answer until it closes
    /// the connection. `None` if it closed without a reply.
    pub(crate) async fn raw_exchange(&self, request: &[u8]) -> Option<RawReply> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request).await.expect("write the request");
        read_reply(stream).await
    }

    /// Writes the first bytes of a request, then closes the sending side as
    /// a client whose connection breaks does, and reads whatever the server
    /// still answers (`None` if nothing).
    pub(crate) async fn raw_cut_off(&self, prefix: &[u8]) -> Option<RawReply> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(prefix).await.expect("write the request");
        stream.flush().await.expect("flush");
        stream.shutdown().await.expect("close the sending side");
        read_reply(stream).await
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

    /// The path of an absolute location of this server.
    pub(crate) fn path_of(&self, location: &str) -> String {
        location
            .strip_prefix(&self.url(""))
            .unwrap_or_else(|| panic!("{location:?} is not an absolute URL of this server"))
            .to_owned()
    }

    /// The manual clock's time now.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

/// Reads until the server closes the connection; a reset after a reply
/// still leaves what was read.
async fn read_reply(mut stream: TcpStream) -> Option<RawReply> {
    let mut answer = Vec::new();
    // A bound, so that a server that never closes fails the test instead of
    // hanging it.
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
    RawReply::parse(&answer)
}

/// The example wiring's handler, for an endpoint a test built.
async fn handle(State(endpoint): State<Arc<Endpoint>>, request: Request) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let owner = common::owner_of(&parts.headers);
    match endpoint.handle(&parts, &owner, body).await {
        Some(reply) => reply.map(Body::from),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A reply read off a raw connection.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawReply {
    /// Parses the last final (non-1xx) reply of an HTTP/1.1 answer.
    fn parse(mut bytes: &[u8]) -> Option<RawReply> {
        loop {
            let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
            let head = std::str::from_utf8(&bytes[..end]).ok()?;
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let rest = &bytes[end + 4..];
            if status < 200 {
                bytes = rest;
                continue;
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(rest.len())
                .min(rest.len());
            return Some(RawReply {
                status,
                headers,
                body: rest[..len].to_vec(),
            });
        }
    }

    /// The value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

/// Standard, padded base64.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An RFC 9530 `Content-Digest` (or `Repr-Digest`) of `bytes`.
pub(crate) fn content_digest(bytes: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&Sha256::digest(bytes)))
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

/// Asserts an RFC 9457 problem reply of `status` whose `type` is
/// `type_uri`; returns its body.
pub(crate) async fn typed_problem(resp: Response, status: StatusCode, type_uri: &str) -> Value {
    let got = resp.status();
    let content_type = header_str(&resp, CONTENT_TYPE.as_str());
    let text = resp.text().await.expect("problem body");
    assert_eq!(got, status, "unexpected reply: {text}");
    assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON), "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON problem");
    assert_eq!(body["type"], type_uri, "{text}");
    assert_eq!(body["status"], status.as_u16(), "{text}");
    assert!(body["title"].is_string(), "{text}");
    assert!(body["detail"].is_string(), "{text}");
    body
}

/// Asserts a problem reply of `status` with the crate's problem `code`
/// (`urn:resumable:problem:{code}`); returns its body.
pub(crate) async fn problem(resp: Response, status: StatusCode, code: &str) -> Value {
    typed_problem(resp, status, &format!("urn:resumable:problem:{code}")).await
}

pub(crate) fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("visible ASCII header").to_owned())
}

/// The reply's `Location`.
pub(crate) fn location(resp: &Response) -> String {
    header_str(resp, "location").expect("a Location header")
}

/// The reply's `Upload-Offset`, as a number.
pub(crate) fn upload_offset(resp: &Response) -> Option<u64> {
    header_str(resp, "upload-offset").map(|v| v.parse().expect("a numeric Upload-Offset"))
}

/// The id (last path segment) of an upload path.
pub(crate) fn id_in(path: &str) -> &str {
    path.rsplit('/').next().expect("an id")
}

/// The names of the files in a directory.
/// The attempts the filesystem sink keeps in an upload's directory: each
/// file in `parts/`, and each claim (`claims/{index}`, ten digits) of an
/// attempt written in place into `data`.
pub(crate) fn stored_attempts(upload: &Path) -> Vec<String> {
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(upload.join(sub)).map_or(Vec::new(), |entries| {
            entries
                .flatten()
                .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy()))
                .collect()
        })
    };
    let mut attempts = names("parts");
    attempts.extend(names("claims").into_iter().filter(|n| {
        let name = n.trim_start_matches("claims/");
        name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit())
    }));
    attempts
}

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
