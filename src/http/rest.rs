//! The session REST API.
//!
//! | operation | request | success |
//! |---|---|---|
//! | initiate | `POST {base}/initiate`, JSON `{fileName, fileSize, contentType?, sha256?}` | `201`, `{sessionId, chunkSize, totalChunks, expiresAt}`, `Location` |
//! | upload chunk | `PUT {base}/session/{id}/upload/{chunkId}`, raw body | `201` (first receipt) or `200` (replaced), the chunk's receipt |
//! | complete | `POST {base}/session/{id}/complete`, optional `Repr-Digest: sha-256=:…:` | `200`, the attachment |
//! | abort | `POST {base}/session/{id}/abort` | `204` |
//! | status | `GET {base}/session/{id}` | `200`, state, chunks received and missing, expiry |
//!
//! `{base}` is `/attachment` unless set with [`RestApi::with_base_path`].
//! Chunk ids count from 0. A chunk body may carry `Content-Digest:
//! sha-256=:…:` (RFC 9530), verified before the chunk is recorded, and
//! `Content-Range`, which must be the chunk's range. A complete may carry
//! the whole file's SHA-256 as `Repr-Digest` (RFC 9530), for clients that
//! hash while they send: the blob is published only if it matches (`422`
//! otherwise, and the session is open again). Times are RFC 3339.
//! Errors are `application/problem+json` (see [`problem`](super::problem)).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, StatusCode, request::Parts};
use http_body::Body;
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::Reply;
use super::body::{DEFAULT_IDLE_TIMEOUT, data_stream};
use super::problem::{error_reply, problem};
use super::request::{
    collect_limited, content_digest_sha256, content_length, content_range, digest_sha256,
    parse_u64, require_media_type,
};
use crate::engine::{Attachment, ChunkOptions, ChunkReceipt, Engine, NewUpload, SessionStatus};
use crate::error::{BoxError, Error};
use crate::session::{Owner, SessionId};

/// The largest initiate body read, in bytes.
const MAX_JSON_BODY: usize = 64 << 10;

/// The session REST API over an [`Engine`].
#[derive(Debug, Clone)]
pub struct RestApi {
    engine: Arc<Engine>,
    base: String,
    body_idle_timeout: Duration,
}

/// A parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route<'a> {
    Initiate,
    Session(&'a str),
    Chunk(&'a str, &'a str),
    Complete(&'a str),
    Abort(&'a str),
}

impl Route<'_> {
    fn allowed(&self) -> Method {
        match self {
            Route::Initiate | Route::Complete(_) | Route::Abort(_) => Method::POST,
            Route::Session(_) => Method::GET,
            Route::Chunk(..) => Method::PUT,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InitiateBody {
    file_name: String,
    file_size: u64,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitiateReply {
    session_id: String,
    chunk_size: u64,
    total_chunks: u64,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChunkReply {
    session_id: String,
    chunk_id: u64,
    offset: u64,
    size: u64,
    /// Only for a chunk sent with `Content-Digest: sha-256` (checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReply {
    session_id: String,
    state: &'static str,
    file_name: String,
    file_size: u64,
    content_type: Option<String>,
    chunk_size: u64,
    total_chunks: u64,
    received_chunks: Vec<u64>,
    missing_chunks: Vec<u64>,
    received_bytes: u64,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttachmentReply {
    session_id: String,
    file_name: String,
    file_size: u64,
    content_type: Option<String>,
    sha256: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    temporary_until: Option<String>,
}

/// Formats a time as RFC 3339 in UTC, to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl RestApi {
    /// The API under `/attachment`.
    pub fn new(engine: Arc<Engine>) -> Self {
        RestApi {
            engine,
            base: "/attachment".to_owned(),
            body_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Serves the API under another path prefix (no trailing slash).
    pub fn with_base_path(mut self, base: impl Into<String>) -> Self {
        self.base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets how long a request body may send nothing before it is abandoned
    /// (60 s by default): see
    /// [`Endpoint::body_idle_timeout`](crate::http::Endpoint::body_idle_timeout).
    pub fn with_body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Whether a request path belongs to this API (the adapter routes
    /// everything under the base path here).
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.base.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    fn route<'p>(&self, path: &'p str) -> Option<Route<'p>> {
        let rest = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        Some(match segments.as_slice() {
            ["initiate"] => Route::Initiate,
            ["session", id] => Route::Session(id),
            ["session", id, "upload", chunk] => Route::Chunk(id, chunk),
            ["session", id, "complete"] => Route::Complete(id),
            ["session", id, "abort"] => Route::Abort(id),
            _ => return None,
        })
    }

    /// Handles one request for `owner` (the identity the application
    /// established). The body is read only by operations that take one, and
    /// chunk bodies are streamed to the sink, never collected.
    pub async fn handle<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let body = data_stream(body, None, self.body_idle_timeout);
        let path = parts.uri.path();
        let Some(route) = self.route(path) else {
            return problem(
                StatusCode::NOT_FOUND,
                "no-such-route",
                &format!("no upload operation at {path}"),
                Map::new(),
            );
        };
        let allowed = route.allowed();
        if parts.method != allowed {
            let mut reply = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                &format!("{path} takes {allowed}"),
                Map::new(),
            );
            reply.headers_mut().insert(
                ALLOW,
                HeaderValue::from_str(allowed.as_str()).unwrap_or(HeaderValue::from_static("GET")),
            );
            return reply;
        }
        let result = match route {
            Route::Initiate => self.initiate(parts, owner, body).await,
            Route::Session(id) => self.status(owner, id).await,
            Route::Chunk(id, chunk) => self.upload_chunk(parts, owner, id, chunk, body).await,
            Route::Complete(id) => self.complete(parts, owner, id).await,
            Route::Abort(id) => self.abort(owner, id).await,
        };
        result.unwrap_or_else(|e| error_reply(&e))
    }

    async fn initiate<S, E>(&self, parts: &Parts, owner: &Owner, body: S) -> Result<Reply, Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        require_media_type(&parts.headers, &["application/json"], "application/json")?;
        let bytes = collect_limited(body, MAX_JSON_BODY).await?;
        let req: InitiateBody = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid_request(format!("the initiate body is not valid: {e}")))?;
        let sha256 = req
            .sha256
            .map(|s| s.parse())
            .transpose()
            .map_err(|_| Error::invalid_request("sha256 must be 64 hex characters"))?;
        let info = self
            .engine
            .initiate(
                owner,
                NewUpload {
                    file_name: req.file_name,
                    file_size: req.file_size,
                    content_type: req.content_type,
                    sha256,
                },
            )
            .await?;
        let mut reply = json_reply(
            StatusCode::CREATED,
            &InitiateReply {
                session_id: info.id.to_string(),
                chunk_size: info.chunk_size,
                total_chunks: info.total_chunks,
                expires_at: rfc3339(info.expires_at),
            },
        );
        if let Ok(location) = HeaderValue::from_str(&format!("{}/session/{}", self.base, info.id)) {
            reply.headers_mut().insert(LOCATION, location);
        }
        Ok(reply)
    }

    async fn upload_chunk<S, E>(
        &self,
        parts: &Parts,
        owner: &Owner,
        id: &str,
        chunk: &str,
        body: S,
    ) -> Result<Reply, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let id: SessionId = id.parse()?;
        let index = parse_u64(chunk, "the chunk id")?;
        require_media_type(
            &parts.headers,
            &["application/octet-stream"],
            "application/octet-stream",
        )?;
        let options = ChunkOptions {
            declared_len: content_length(&parts.headers)?,
            sha256: content_digest_sha256(&parts.headers)?,
            range: content_range(&parts.headers)?,
        };
        let receipt = self
            .engine
            .upload_chunk(owner, id, index, body, options)
            .await?;
        let status = if receipt.replaced {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_reply(status, &chunk_reply(id, &receipt)))
    }

    async fn complete(&self, parts: &Parts, owner: &Owner, id: &str) -> Result<Reply, Error> {
        let id = id.parse()?;
        let stated = digest_sha256(&parts.headers, "repr-digest")?;
        let attachment = self.engine.complete_expecting(owner, id, stated).await?;
        Ok(json_reply(StatusCode::OK, &attachment_reply(&attachment)))
    }

    async fn abort(&self, owner: &Owner, id: &str) -> Result<Reply, Error> {
        self.engine.abort(owner, id.parse()?).await?;
        let mut reply = http::Response::new(Bytes::new());
        *reply.status_mut() = StatusCode::NO_CONTENT;
        Ok(reply)
    }

    async fn status(&self, owner: &Owner, id: &str) -> Result<Reply, Error> {
        let status = self.engine.status(owner, id.parse()?).await?;
        let mut reply = json_reply(StatusCode::OK, &status_reply(status));
        reply
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(reply)
    }
}

fn chunk_reply(id: SessionId, r: &ChunkReceipt) -> ChunkReply {
    ChunkReply {
        session_id: id.to_string(),
        chunk_id: r.index,
        offset: r.offset,
        size: r.len,
        sha256: r.sha256.map(|d| d.to_string()),
        expires_at: rfc3339(r.expires_at),
    }
}

fn status_reply(s: SessionStatus) -> StatusReply {
    StatusReply {
        session_id: s.id.to_string(),
        state: s.state.as_str(),
        file_name: s.file.name.map(String::from).unwrap_or_default(),
        file_size: s.file.size.unwrap_or(0),
        content_type: s.file.content_type,
        chunk_size: s.chunk_size,
        total_chunks: s.total_chunks,
        received_chunks: s.received_chunks,
        missing_chunks: s.missing_chunks,
        received_bytes: s.received_bytes,
        expires_at: rfc3339(s.expires_at),
    }
}

fn attachment_reply(a: &Attachment) -> AttachmentReply {
    AttachmentReply {
        session_id: a.id.to_string(),
        file_name: a
            .file
            .name
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        file_size: a.blob.size,
        content_type: a.file.content_type.clone(),
        sha256: a.blob.sha256.to_string(),
        state: a.state.as_str(),
        temporary_until: a.reap_at.map(rfc3339),
    }
}

fn json_reply<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut reply = http::Response::new(Bytes::from(bytes));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}
