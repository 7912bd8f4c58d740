//! What every hostile test shares: a [`Scene`] (the server, an upload in
//! progress beside the hostile requests, and the count of hostile inputs
//! tried), raw HTTP/1.1 requests, and the checks every test ends with.
//!
//! [`Scene::finish`] asserts, after the hostile requests of a test:
//! - the server still answers (a tus `OPTIONS` is `204`);
//! - the *bystander* uploads, begun before the hostile requests and fed
//!   while they run, complete with the SHA-256 of their bytes (a session
//!   REST upload and a tus upload, by an owner of their own);
//! - nothing was written outside the data directory, and inside it only the
//!   store's and the sink's own files exist: no file is named after a
//!   client's file name (every hostile name carries [`MARKER`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use resumable::http::Endpoint;
use resumable::{Engine, Owner, SessionId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub(crate) use crate::support::*;

/// Part of every hostile file name: no path under or around the data
/// directory may ever contain it.
pub(crate) const MARKER: &str = "hostile-marker-5b1e";

/// The header of every tus request.
pub(crate) const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

/// The media type of tus `PATCH` bodies.
pub(crate) const OFFSET_STREAM: (&str, &str) = ("content-type", "application/offset+octet-stream");

/// The media type of IETF appends (interop version 8).
pub(crate) const PARTIAL_UPLOAD: (&str, &str) = ("content-type", "application/partial-upload");

/// The media type of REST chunks and raw uploads.
pub(crate) const OCTET_STREAM: (&str, &str) = ("content-type", "application/octet-stream");

/// The example wiring's raw upload target.
pub(crate) const RAW: &str = "/file/upload/default";

/// Every hostile input tried by every test of this run.
static TRIED: AtomicUsize = AtomicUsize::new(0);

/// A test's server, the bystander uploads, and its count of hostile inputs.
pub(crate) struct Scene {
    pub(crate) server: TestServer,
    name: &'static str,
    tried: usize,
    bystander: Option<Bystander>,
}

impl Scene {
    /// The example wiring with `chunk_size`-byte chunks.
    pub(crate) async fn start(name: &'static str, chunk_size: u64) -> Scene {
        Self::around(name, TestServer::start(chunk_size).await).await
    }

    /// The endpoint `build` makes on the engine (8 MiB chunks).
    pub(crate) async fn with_endpoint(
        name: &'static str,
        build: impl FnOnce(Arc<Engine>) -> Endpoint,
    ) -> Scene {
        Self::around(name, TestServer::with_endpoint(build).await).await
    }

    async fn around(name: &'static str, server: TestServer) -> Scene {
        let bystander = Bystander::begin(&server).await;
        Scene {
            server,
            name,
            tried: 0,
            bystander: Some(bystander),
        }
    }

    /// Counts one hostile input.
    pub(crate) fn tried(&mut self) {
        self.tried += 1;
    }

    /// A request with `headers` and `body`, as the owner `token` names
    /// (anonymous if `None`); counted as a hostile input.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.tried();
        let mut builder = self.server.request(method, path, token);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body).send().await.expect("request")
    }

    /// Writes `request` on a connection of its own and reads the answer
    /// until the server closes it (bounded); counted as a hostile input.
    pub(crate) async fn raw(&mut self, request: &[u8]) -> Option<RawReply> {
        self.tried();
        let exchange = self.server.raw_exchange(request);
        tokio::time::timeout(Duration::from_secs(90), exchange)
            .await
            .expect("the server answers or closes a raw request")
    }

    /// Writes the first bytes of a request and closes the sending side;
    /// counted as a hostile input.
    pub(crate) async fn cut_off(&mut self, prefix: &[u8]) -> Option<RawReply> {
        self.tried();
        let exchange = self.server.raw_cut_off(prefix);
        tokio::time::timeout(Duration::from_secs(90), exchange)
            .await
            .expect("the server answers or closes a cut-off request")
    }

    /// The data directory of the server.
    pub(crate) fn data_dir(&self) -> PathBuf {
        data_root(&self.server)
    }

    /// The session ids of the bystander uploads (whose files change while
    /// the test runs).
    pub(crate) fn bystander_ids(&self) -> Vec<String> {
        let b = self.bystander.as_ref().expect("the bystander");
        vec![b.rest_id.clone(), id_in(&b.tus_path).to_owned()]
    }

    /// The checks every hostile test ends with (see the module's doc).
    pub(crate) async fn finish(mut self) {
        assert!(self.tried > 0, "{}: no hostile input was tried", self.name);
        let resp = self
            .server
            .request(Method::OPTIONS, "/files", None)
            .send()
            .await
            .expect("the server still answers");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "the server is up");
        let bystander = self.bystander.take().expect("the bystander");
        bystander.finish(&self.server).await;
        assert_clean(&self.data_dir());
        let total = TRIED.fetch_add(self.tried, Ordering::SeqCst) + self.tried;
        println!(
            "hostile inputs tried: {:>4} in {} ({total} so far in this run)",
            self.tried, self.name
        );
    }
}

/// The data directory of a test server (its store and its sink).
pub(crate) fn data_root(server: &TestServer) -> PathBuf {
    let upload = server.upload_dir("x");
    upload
        .ancestors()
        .nth(3)
        .expect("blobs/uploads/{id} under the data directory")
        .to_path_buf()
}

/// Every path under `root`, relative, sorted.
pub(crate) fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// The store's and the sink's own files only; no name a client chose,
/// inside the data directory or next to it.
fn assert_clean(root: &Path) {
    let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for path in walk(root) {
        let text = path.to_string_lossy().into_owned();
        assert!(!text.contains(MARKER), "a client's name on disk: {text}");
        let parts: Vec<&str> = text.split('/').collect();
        let known = match parts.as_slice() {
            ["store"] | ["store", "sessions" | "locks"] | ["blobs"] | ["blobs", "uploads"] => true,
            ["store", "sessions", file] => file
                .split('.')
                .next()
                .is_some_and(|stem| hex32(stem) || stem.is_empty()),
            ["store", "locks", file] => file.len() == 7 && file.ends_with(".lock"),
            ["blobs", "uploads", id, ..] => hex32(id),
            _ => false,
        };
        assert!(known, "a path the store and the sink do not make: {text}");
    }
    // Around the data directory: its parent (the temporary directory), the
    // system's temporary directory, and the working directory.
    let around = [
        root.parent().map(Path::to_path_buf),
        Some(std::env::temp_dir()),
        std::env::current_dir().ok(),
        Some(PathBuf::from("/")),
    ];
    for dir in around.into_iter().flatten() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(MARKER),
                "written outside the data directory: {}",
                entry.path().display()
            );
        }
    }
}

/// The owner of the bystander uploads.
const BYSTANDER: &str = "bystander";

/// Uploads in progress while a test sends hostile requests: a session REST
/// upload and a tus upload, each begun before and finished after.
struct Bystander {
    rest_id: String,
    rest_data: Vec<u8>,
    chunk_size: usize,
    tus_path: String,
    tus_data: Vec<u8>,
    feeding: JoinHandle<()>,
}

/// The piece size of the tus bystander.
const TUS_PIECE: usize = 4000;

impl Bystander {
    async fn begin(server: &TestServer) -> Bystander {
        let chunk_size = server.chunk_size;
        let rest_len = if chunk_size <= 64 << 10 {
            4 * chunk_size - 100
        } else {
            50_000
        };
        let rest_data = source_bytes(rest_len, 0xB1);
        let resp = server
            .request(Method::POST, "/attachment/initiate", Some(BYSTANDER))
            .json(&json!({ "fileName": "bystander.bin", "fileSize": rest_len }))
            .send()
            .await
            .expect("initiate");
        let reply = json_of(resp, StatusCode::CREATED).await;
        let rest_id = reply["sessionId"].as_str().unwrap().to_owned();
        let total = reply["totalChunks"].as_u64().unwrap() as usize;

        let tus_data = source_bytes(12 * TUS_PIECE, 0xB2);
        let len = tus_data.len().to_string();
        let resp = server
            .request(Method::POST, "/files", Some(BYSTANDER))
            .header(TUS.0, TUS.1)
            .header("upload-length", len)
            .header("upload-metadata", format!("filename {}", b64(b"b.bin")))
            .send()
            .await
            .expect("tus creation");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let tus_path = server.path_of(&location(&resp));
        tus_patch(
            &server.client,
            &server.url(&tus_path),
            0,
            &tus_data[..TUS_PIECE],
        )
        .await;

        // Fed while the hostile requests run: REST chunks 1.. (chunk 0 is
        // sent at the end) and the tus pieces but the last.
        let (client, base) = (server.client.clone(), server.url(""));
        let (rest, tus) = (rest_data.clone(), tus_data.clone());
        let (id, path) = (rest_id.clone(), tus_path.clone());
        let feeding = tokio::spawn(async move {
            let pieces = tus.len() / TUS_PIECE;
            for step in 1..pieces.max(total) {
                if step < total {
                    let range = step * chunk_size..((step + 1) * chunk_size).min(rest.len());
                    put_chunk(&client, &base, &id, step, &rest[range]).await;
                }
                if step < pieces - 1 {
                    let range = step * TUS_PIECE..(step + 1) * TUS_PIECE;
                    let url = format!("{base}{path}");
                    tus_patch(&client, &url, range.start, &tus[range]).await;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
        Bystander {
            rest_id,
            rest_data,
            chunk_size,
            tus_path,
            tus_data,
            feeding,
        }
    }

    async fn finish(self, server: &TestServer) {
        self.feeding.await.expect("the bystander's requests");
        let base = server.url("");
        let first = &self.rest_data[..self.chunk_size.min(self.rest_data.len())];
        put_chunk(&server.client, &base, &self.rest_id, 0, first).await;
        let resp = server
            .request(
                Method::POST,
                &format!("/attachment/session/{}/complete", self.rest_id),
                Some(BYSTANDER),
            )
            .send()
            .await
            .expect("complete");
        let done = json_of(resp, StatusCode::OK).await;
        assert_eq!(
            done["sha256"],
            sha256_hex(&self.rest_data),
            "REST bystander"
        );
        assert_eq!(server.blob(&self.rest_id), self.rest_data);

        let last = self.tus_data.len() - TUS_PIECE;
        let url = server.url(&self.tus_path);
        tus_patch(&server.client, &url, last, &self.tus_data[last..]).await;
        let id = id_in(&self.tus_path);
        let status = server
            .engine
            .status(&Owner::new(BYSTANDER), id.parse::<SessionId>().unwrap())
            .await
            .expect("the tus bystander's status");
        let blob = status.blob.expect("the tus bystander completed");
        assert_eq!(blob.sha256.to_string(), sha256_hex(&self.tus_data));
        assert_eq!(server.blob(id), self.tus_data, "tus bystander");
    }
}

async fn put_chunk(client: &reqwest::Client, base: &str, id: &str, index: usize, bytes: &[u8]) {
    let resp = client
        .put(format!("{base}/attachment/session/{id}/upload/{index}"))
        .header(AUTHORIZATION, format!("Bearer {BYSTANDER}"))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("a bystander chunk");
    let status = resp.status();
    assert_eq!(status, StatusCode::CREATED, "{:?}", resp.text().await);
}

async fn tus_patch(client: &reqwest::Client, url: &str, offset: usize, bytes: &[u8]) {
    let resp = client
        .patch(url)
        .header(AUTHORIZATION, format!("Bearer {BYSTANDER}"))
        .header(TUS.0, TUS.1)
        .header(OFFSET_STREAM.0, OFFSET_STREAM.1)
        .header("upload-offset", offset.to_string())
        .body(bytes.to_vec())
        .send()
        .await
        .expect("a bystander PATCH");
    let status = resp.status();
    assert_eq!(status, StatusCode::NO_CONTENT, "{:?}", resp.text().await);
}

/// The head of an HTTP/1.1 request to `server`: the request line, `Host`,
/// `headers` and `Connection: close`, then the blank line.
pub(crate) fn head(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
        server.authority()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// `bytes` as a chunked body, in chunks of at most `size` bytes, with the
/// last chunk and no trailer.
pub(crate) fn chunked(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in bytes.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Opens a connection, writes `prefix` and then nothing more, without
/// closing: a body that never finishes. Returns the stream.
pub(crate) async fn stall(server: &TestServer, prefix: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.authority())
        .await
        .expect("connect");
    stream.write_all(prefix).await.expect("write");
    stream.flush().await.expect("flush");
    stream
}

/// Reads what the server sends on a connection whose request is held back,
/// until it has sent a whole final reply or closed the connection, within
/// `bound`; `None` if neither happened in time. Returns the bytes read.
pub(crate) async fn read_answer(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if whole_reply(&answer) {
                break;
            }
        }
    };
    tokio::time::timeout(bound, read).await.ok()?;
    Some(answer)
}

/// Whether `bytes` hold a whole final reply (head and `Content-Length`
/// bytes of body).
fn whole_reply(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let body = &rest[end + 4..];
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            let len = head
                .split("\r\n")
                .filter_map(|l| l.strip_prefix("content-length:"))
                .find_map(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            return body.len() >= len;
        }
        rest = body;
    }
    false
}

/// The status of the first final reply in `bytes`, if any.
pub(crate) fn status_in(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n")
        .filter(|line| line.starts_with("HTTP/1.1 "))
        .filter_map(|line| line.split(' ').nth(1)?.parse().ok())
        .find(|status| *status >= 200)
}

/// The session id in the JSON reply of an initiate.
pub(crate) fn session_id(reply: &Value) -> String {
    reply["sessionId"].as_str().expect("a sessionId").to_owned()
}

/// The stored (cleaned) file name of a session.
pub(crate) async fn stored_name(server: &TestServer, owner: &Owner, id: &str) -> Option<String> {
    let id: SessionId = id.parse().expect("a session id");
    let status = server.engine.status(owner, id).await.expect("status");
    status.file.name.map(String::from)
}

/// The owner a bearer token names in the example wiring.
pub(crate) fn owner(token: Option<&str>) -> Owner {
    token.map_or_else(Owner::anonymous, Owner::new)
}

/// Asserts a problem reply of `status` and crate problem `code`.
pub(crate) async fn expect_problem(resp: Response, status: StatusCode, code: &str, what: &str) {
    let got = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
    assert_eq!(
        body["type"],
        format!("urn:resumable:problem:{code}"),
        "{what}: {text}"
    );
}
