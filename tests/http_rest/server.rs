//! The REST requests of the tests, on the shared test server: every route,
//! and the helpers of chunked uploads.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub(crate) use crate::support::{
    EXPIRY, TestServer, content_digest, header_str, json_of, problem, sha256_hex, source_bytes,
    stored_attempts,
};

/// The path that initiates an upload.
pub(crate) const INITIATE: &str = "/attachment/initiate";

/// The `Content-Type` header of a chunk.
pub(crate) const OCTET_STREAM: (&str, &str) = ("content-type", "application/octet-stream");

/// The example server on loopback (see [`TestServer`]).
pub(crate) type Server = TestServer;

impl TestServer {
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
}

/// The bytes of chunk `index` of `data`.
pub(crate) fn chunk_of(data: &[u8], chunk_size: usize, index: usize) -> &[u8] {
    let start = index * chunk_size;
    &data[start..(start + chunk_size).min(data.len())]
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
