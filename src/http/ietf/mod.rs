//! The IETF "Resumable Uploads for HTTP" draft (draft-ietf-httpbis-resumable-upload
//! -11/-12, interop version 8), and the earlier interop versions 3 to 7 that
//! shipping clients still send (tus-js-client's `ietf-draft-03` and
//! `ietf-draft-05` send 5 and 6).
//!
//! | request | on | success |
//! |---|---|---|
//! | `OPTIONS` | `{base}` or an upload | `204`, `Accept-Patch: application/partial-upload`, `Upload-Limit` |
//! | `POST` with `Upload-Complete` | `{base}` | `201`, `Location`, `Upload-Offset`, `Upload-Complete`, `Upload-Limit` |
//! | `HEAD` | `{base}/{id}` | `204`, `Upload-Offset`, `Upload-Complete`, `Upload-Length`, `Upload-Limit`, `Cache-Control: no-store` |
//! | `PATCH` (`application/partial-upload` from version 6) | `{base}/{id}` | `204`, `Upload-Offset`, `Upload-Complete` |
//! | `DELETE` | `{base}/{id}` | `204` |
//!
//! Version 3 says `Upload-Incomplete` (inverted) where later versions say
//! `Upload-Complete`; version 6 names the upload's lifetime `expires` in
//! `Upload-Limit` where later versions say `max-age`. A request without
//! `Upload-Draft-Interop-Version` is read as version 8. Per-request
//! `Content-Digest` (sha-256) is verified before bytes are appended;
//! `Repr-Digest` at creation is verified at completion, and completion
//! replies carry `Repr-Digest`.
//!
//! Errors use the draft's problem types (`mismatching-upload-offset` with
//! `expected-offset`/`provided-offset` and `Upload-Offset`,
//! `completed-upload`, `inconsistent-upload-length`), else the crate's.
//!
//! `104 (Upload Resumption Supported)` is not sent: the `http` crate's
//! request/reply model (and hyper's server) have no way to send an
//! informational response other than `100 Continue`. Clients learn the
//! location from the final `201`, which every draft version also sends.

pub(crate) mod handlers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, request::Parts};
use http_body::Body;

use super::Reply;
use super::body::DEFAULT_IDLE_TIMEOUT;
use super::location::Locations;
use super::problem::{method_not_allowed, no_such_route};
use crate::engine::Engine;
use crate::error::{BoxError, Error};
use crate::session::Owner;

/// The media type of appends from interop version 6 on.
const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// The oldest and newest interop versions served.
const VERSIONS: std::ops::RangeInclusive<u8> = 3..=8;

/// The IETF resumable-upload dialect over an [`Engine`].
#[derive(Debug, Clone)]
pub struct IetfApi {
    engine: Arc<Engine>,
    base: String,
    locations: Locations,
    max_append_size: Option<u64>,
    body_idle_timeout: Duration,
}

/// The interop version a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interop(pub(crate) u8);

impl Interop {
    /// The version of a request: its `Upload-Draft-Interop-Version`, or 8.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Interop, Error> {
        let Some(value) = headers.get("upload-draft-interop-version") else {
            return Ok(Interop(*VERSIONS.end()));
        };
        let version = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .filter(|v| VERSIONS.contains(v));
        version.map(Interop).ok_or_else(|| {
            Error::invalid_request(format!(
                "Upload-Draft-Interop-Version {value:?} is not served; this server speaks {} to {}",
                VERSIONS.start(),
                VERSIONS.end()
            ))
        })
    }

    /// Whether the request says it carries the upload's last bytes.
    pub(crate) fn complete(self, headers: &HeaderMap) -> Option<bool> {
        if self.0 == 3 {
            sf_bool(headers, "upload-incomplete").map(|incomplete| !incomplete)
        } else {
            sf_bool(headers, "upload-complete")
        }
    }

    /// Writes the completeness state as this version names it.
    pub(crate) fn set_complete(self, headers: &mut HeaderMap, complete: bool) {
        let (name, value) = if self.0 == 3 {
            ("upload-incomplete", !complete)
        } else {
            ("upload-complete", complete)
        };
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(if value { "?1" } else { "?0" }),
        );
    }

    /// Whether appends must be `application/partial-upload`.
    fn requires_media_type(self) -> bool {
        self.0 >= 6
    }

    /// The `Upload-Limit` key of the upload's remaining lifetime.
    fn age_key(self) -> &'static str {
        if self.0 == 6 { "expires" } else { "max-age" }
    }
}

/// A Structured Field Item that must be an Integer `>= 0`; any other value
/// makes the field count as absent, as the draft says.
pub(crate) fn sf_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    let item: sfv::Item = sfv::Parser::new(headers.get(name)?.as_bytes())
        .parse()
        .ok()?;
    u64::try_from(item.bare_item.as_integer()?).ok()
}

/// A Structured Field Item that must be a Boolean.
pub(crate) fn sf_bool(headers: &HeaderMap, name: &str) -> Option<bool> {
    let item: sfv::Item = sfv::Parser::new(headers.get(name)?.as_bytes())
        .parse()
        .ok()?;
    item.bare_item.as_boolean()
}

/// What a request addresses.
enum Target<'p> {
    Collection,
    Upload(&'p str),
}

impl IetfApi {
    /// The dialect under `/uploads`, with absolute locations and no limit on
    /// the size of one append.
    pub fn new(engine: Arc<Engine>) -> Self {
        IetfApi {
            engine,
            base: "/uploads".to_owned(),
            locations: Locations::new(),
            max_append_size: None,
            body_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Serves the dialect under another path prefix (no trailing slash).
    pub fn with_base_path(mut self, base: impl Into<String>) -> Self {
        self.base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets how `Location` headers are written.
    pub fn with_locations(mut self, locations: Locations) -> Self {
        self.locations = locations;
        self
    }

    /// Limits the bytes of one request (announced as `max-append-size` in
    /// `Upload-Limit`, so clients can fit a proxy's body limit; larger
    /// requests get `413`).
    pub fn with_max_append_size(mut self, bytes: u64) -> Self {
        self.max_append_size = Some(bytes);
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
        match path.strip_prefix(self.base.as_str())? {
            "" | "/" => Some(Target::Collection),
            rest => {
                let id = rest.strip_prefix('/')?;
                (!id.is_empty() && !id.contains('/')).then_some(Target::Upload(id))
            }
        }
    }

    /// Handles one request for `owner`. Bodies are streamed into the sink.
    pub async fn handle<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut reply = self.dispatch(parts, owner, body).await;
        if let Some(v) = parts.headers.get("upload-draft-interop-version") {
            reply.headers_mut().insert(
                HeaderName::from_static("upload-draft-interop-version"),
                v.clone(),
            );
        }
        if parts.method == Method::HEAD {
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
        let interop = match Interop::of(&parts.headers) {
            Ok(v) => v,
            Err(e) => return super::problem::error_reply(&e),
        };
        let result = match (target, &parts.method) {
            (_, &Method::OPTIONS) => Ok(self.options(owner, interop)),
            (Target::Collection, &Method::POST) => self.create(parts, owner, interop, body).await,
            (Target::Upload(id), &Method::HEAD) => self.head(owner, interop, id).await,
            (Target::Upload(id), &Method::PATCH) => {
                self.append(parts, owner, interop, id, body).await
            }
            (Target::Upload(id), &Method::DELETE) => self.delete(owner, id).await,
            (Target::Collection, _) => return method_not_allowed(path, "OPTIONS, POST"),
            (Target::Upload(_), _) => {
                return method_not_allowed(path, "OPTIONS, HEAD, PATCH, DELETE");
            }
        };
        result.unwrap_or_else(|e| self.error(&e, interop, owner))
    }
}
