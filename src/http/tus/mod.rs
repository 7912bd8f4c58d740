//! tus 1.0.x, core protocol and every extension: creation,
//! creation-with-upload, creation-defer-length, expiration, checksum
//! (`sha1`, `sha256`, `md5`), checksum-trailer, termination, concatenation
//! and concatenation-unfinished.
//!
//! | request | on | success |
//! |---|---|---|
//! | `OPTIONS` | `{base}` or an upload | `204`, `Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm` |
//! | `POST` | `{base}` | `201`, `Location`, `Upload-Expires` (+ `Upload-Offset` with a body) |
//! | `HEAD` | `{base}/{id}` | `200`, `Upload-Offset`, `Upload-Length` or `Upload-Defer-Length: 1`, `Upload-Metadata`, `Upload-Concat`, `Cache-Control: no-store` |
//! | `PATCH` | `{base}/{id}` | `204`, `Upload-Offset`, `Upload-Expires` |
//! | `DELETE` | `{base}/{id}` | `204` |
//!
//! Every reply carries `Tus-Resumable: 1.0.0`; a request without it (but
//! `OPTIONS`) gets `412` with `Tus-Version`. `X-HTTP-Method-Override` is
//! honoured. Errors: `400` malformed headers, `403` a `PATCH` to a final
//! upload, `404`/`410` unknown or terminated/expired uploads, `409` a wrong
//! offset, `413` too large, `415` a wrong `PATCH` media type, `460` a
//! checksum mismatch (the bytes are discarded and the offset stays).

mod handlers;
pub(crate) mod headers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode, request::Parts};
use http_body::Body;

use super::Reply;
use super::body::DEFAULT_IDLE_TIMEOUT;
use super::location::Locations;
use super::problem::{error_reply, error_reply_as, method_not_allowed, no_such_route, problem};
use crate::engine::Engine;
use crate::error::{BoxError, Error, Operation};
use crate::session::{Owner, SessionId, StateKind};

pub(crate) use headers::{TUS_VERSION, parse_metadata};

/// The status of a checksum mismatch, which tus defines.
const CHECKSUM_MISMATCH: u16 = 460;

/// The tus dialect over an [`Engine`].
#[derive(Debug, Clone)]
pub struct TusApi {
    engine: Arc<Engine>,
    base: String,
    locations: Locations,
    body_idle_timeout: Duration,
}

/// What a request addresses.
enum Target<'p> {
    /// The creation endpoint.
    Collection,
    /// One upload, by the id in its URL.
    Upload(&'p str),
}

impl TusApi {
    /// The dialect under `/files`, with absolute locations.
    pub fn new(engine: Arc<Engine>) -> Self {
        TusApi {
            engine,
            base: "/files".to_owned(),
            locations: Locations::new(),
            body_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Serves the dialect under another path prefix (no trailing slash).
    pub fn with_base_path(mut self, base: impl Into<String>) -> Self {
        self.base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets how `Location` headers are written (behind a proxy, relative).
    pub fn with_locations(mut self, locations: Locations) -> Self {
        self.locations = locations;
        self
    }

    /// Sets how long a request body may send nothing before it is abandoned
    /// (60 s by default): see
    /// [`Endpoint::body_idle_timeout`](crate::http::Endpoint::body_idle_timeout).
    pub fn with_body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// Whether a request path belongs to this dialect.
    pub fn matches(&self, path: &str) -> bool {
        self.target(path).is_some()
    }

    fn target<'p>(&self, path: &'p str) -> Option<Target<'p>> {
        let rest = path.strip_prefix(self.base.as_str())?;
        match rest {
            "" | "/" => Some(Target::Collection),
            _ => {
                let id = rest.strip_prefix('/')?;
                (!id.is_empty() && !id.contains('/')).then_some(Target::Upload(id))
            }
        }
    }

    /// The path of an upload.
    fn path_of(&self, id: SessionId) -> String {
        format!("{}/{id}", self.base)
    }

    /// The id of an upload from a URL or path a client sent back.
    fn id_in(&self, url: &str) -> Result<SessionId, Error> {
        let path = Locations::path_of(url)
            .ok_or_else(|| Error::invalid_request(format!("{url:?} is not an upload URL")))?;
        match self.target(&path) {
            Some(Target::Upload(id)) => id.parse(),
            _ => Err(Error::invalid_request(format!(
                "{url:?} is not an upload of this server"
            ))),
        }
    }

    /// Handles one tus request for `owner`. Bodies are streamed into the
    /// sink; trailers (checksum-trailer) are read from the body.
    pub async fn handle<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut reply = self.dispatch(parts, owner, body).await;
        reply.headers_mut().insert(
            HeaderName::from_static("tus-resumable"),
            HeaderValue::from_static(TUS_VERSION),
        );
        if method_of(parts) == Method::HEAD {
            *reply.body_mut() = Bytes::new();
        }
        reply
    }

    async fn dispatch<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = parts.uri.path();
        let Some(target) = self.target(path) else {
            return no_such_route(path);
        };
        let method = method_of(parts);
        if method == Method::OPTIONS {
            return self.options(owner);
        }
        if let Some(reply) = unsupported_version(parts) {
            return reply;
        }
        let result = match (target, method) {
            (Target::Collection, Method::POST) => self.create(parts, owner, body).await,
            (Target::Upload(id), Method::HEAD) => self.head(parts, owner, id).await,
            (Target::Upload(id), Method::PATCH) => self.patch(parts, owner, id, body).await,
            (Target::Upload(id), Method::DELETE) => self.delete(owner, id).await,
            (Target::Collection, _) => return method_not_allowed(path, "OPTIONS, POST"),
            (Target::Upload(_), _) => {
                return method_not_allowed(path, "OPTIONS, HEAD, PATCH, DELETE");
            }
        };
        result.unwrap_or_else(|e| tus_error(&e))
    }
}

/// The method, or `X-HTTP-Method-Override` when present (tus: it "MUST be
/// interpreted as the request's method").
fn method_of(parts: &Parts) -> Method {
    parts
        .headers
        .get("x-http-method-override")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Method::from_bytes(v.trim().to_ascii_uppercase().as_bytes()).ok())
        .unwrap_or_else(|| parts.method.clone())
}

/// `412` with `Tus-Version` unless the request speaks tus 1.0.0.
fn unsupported_version(parts: &Parts) -> Option<Reply> {
    let version = parts
        .headers
        .get("tus-resumable")
        .and_then(|v| v.to_str().ok());
    if version == Some(TUS_VERSION) {
        return None;
    }
    let detail = match version {
        Some(v) => format!("tus version {v:?} is not supported; this server speaks {TUS_VERSION}"),
        None => "a tus request must carry Tus-Resumable: 1.0.0".to_owned(),
    };
    let mut reply = problem(
        StatusCode::PRECONDITION_FAILED,
        "unsupported-tus-version",
        &detail,
        serde_json::Map::new(),
    );
    reply.headers_mut().insert(
        HeaderName::from_static("tus-version"),
        HeaderValue::from_static(TUS_VERSION),
    );
    Some(reply)
}

/// The reply to an engine error, with the statuses tus names: `460` for a
/// checksum mismatch, `403` for bytes sent to a final upload.
fn tus_error(error: &Error) -> Reply {
    let status = match error {
        Error::ChecksumMismatch { .. } => StatusCode::from_u16(CHECKSUM_MISMATCH).ok(),
        Error::InvalidState {
            state: StateKind::Open,
            operation: Operation::Append,
            ..
        } => Some(StatusCode::FORBIDDEN),
        _ => None,
    };
    match status {
        Some(status) => error_reply_as(error, status),
        None => error_reply(error),
    }
}
