//! Every dialect behind one handler, with CORS: what a web framework adapter
//! hands requests to.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body::Body;

use super::cors::Cors;
use super::{IetfApi, Locations, RawApi, Reply, RestApi, TusApi};
use crate::engine::Engine;
use crate::error::BoxError;
use crate::session::Owner;

/// The dialects an application serves, each under its own base path.
///
/// ```
/// # use std::sync::Arc;
/// use resumable::http::{Cors, Endpoint, RawApi};
/// use resumable::{DefaultPolicy, Engine};
/// use resumable::{sink::MemorySink, store::MemoryStore};
///
/// let engine = Arc::new(Engine::builder(MemoryStore::new(), MemorySink::new()).build());
/// let endpoint = Endpoint::all(engine.clone())
///     .raw(RawApi::new(engine).target("avatars", DefaultPolicy::new().max_file_size(1 << 20)))
///     .cors(Cors::any_origin());
/// assert!(endpoint.matches("/files/"));
/// assert!(endpoint.matches("/file/upload/avatars"));
/// ```
///
/// Every dialect abandons a request body that sends nothing for 60 seconds
/// (see [`body_idle_timeout`](Endpoint::body_idle_timeout)).
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    rest: Option<RestApi>,
    tus: Option<TusApi>,
    ietf: Option<IetfApi>,
    raw: Option<RawApi>,
    cors: Option<Cors>,
    body_idle_timeout: Option<Duration>,
}

impl Endpoint {
    /// No dialect yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session REST API, tus and the IETF draft with their defaults
    /// (`/attachment`, `/files`, `/uploads`).
    pub fn all(engine: Arc<Engine>) -> Self {
        Endpoint::new()
            .rest(RestApi::new(engine.clone()))
            .tus(TusApi::new(engine.clone()))
            .ietf(IetfApi::new(engine))
    }

    /// Serves the session REST API.
    pub fn rest(mut self, api: RestApi) -> Self {
        self.rest = Some(match self.body_idle_timeout {
            Some(t) => api.with_body_idle_timeout(t),
            None => api,
        });
        self
    }

    /// Serves tus.
    pub fn tus(mut self, api: TusApi) -> Self {
        self.tus = Some(match self.body_idle_timeout {
            Some(t) => api.with_body_idle_timeout(t),
            None => api,
        });
        self
    }

    /// Serves the IETF draft.
    pub fn ietf(mut self, api: IetfApi) -> Self {
        self.ietf = Some(match self.body_idle_timeout {
            Some(t) => api.with_body_idle_timeout(t),
            None => api,
        });
        self
    }

    /// Serves the raw single-request upload.
    pub fn raw(mut self, api: RawApi) -> Self {
        self.raw = Some(match self.body_idle_timeout {
            Some(t) => api.with_body_idle_timeout(t),
            None => api,
        });
        self
    }

    /// Sets how long a request body may send nothing before every dialect
    /// abandons it: 60 seconds unless set. It applies to the dialects
    /// added before and after this call.
    ///
    /// Each frame of a body must arrive within `timeout` of the previous one
    /// (of the start of the read, for the first). When one does not, the
    /// body counts as broken, exactly like a connection cut at that point.
    /// A chunk of the session REST API is discarded and not recorded, and a
    /// raw upload leaves nothing: both are answered `400`
    /// (`request-body-failed`, which a client may retry). tus and the IETF
    /// draft keep the bytes that arrived before the stall and answer with
    /// the offset reached, so the client resumes from there; a request
    /// covered by a checksum keeps nothing and is answered `400`.
    ///
    /// It bounds the silence between frames, not the request's duration: a
    /// client trickling bytes faster than the timeout is not cut off. Limit
    /// total request time or minimum rates in the server or proxy in front.
    /// The timer is Tokio's: the endpoint must run on a Tokio runtime with
    /// its time driver enabled.
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = Some(timeout);
        self.rest = self.rest.map(|a| a.with_body_idle_timeout(timeout));
        self.tus = self.tus.map(|a| a.with_body_idle_timeout(timeout));
        self.ietf = self.ietf.map(|a| a.with_body_idle_timeout(timeout));
        self.raw = self.raw.map(|a| a.with_body_idle_timeout(timeout));
        self
    }

    /// Sets how the tus and IETF dialects write `Location` (behind a proxy,
    /// relative). Call after adding them.
    pub fn locations(mut self, locations: Locations) -> Self {
        self.tus = self.tus.map(|api| api.with_locations(locations));
        self.ietf = self.ietf.map(|api| api.with_locations(locations));
        self
    }

    /// Answers CORS preflights and adds CORS headers for browsers.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Whether a request path belongs to one of the dialects.
    pub fn matches(&self, path: &str) -> bool {
        self.rest.as_ref().is_some_and(|a| a.matches(path))
            || self.tus.as_ref().is_some_and(|a| a.matches(path))
            || self.ietf.as_ref().is_some_and(|a| a.matches(path))
            || self.raw.as_ref().is_some_and(|a| a.matches(path))
    }

    /// Handles a request for `owner`, or returns `None` if its path belongs
    /// to no dialect (the application's own routes).
    pub async fn handle<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Option<Reply>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = parts.uri.path();
        if !self.matches(path) {
            return None;
        }
        if let Some(reply) = self.cors.as_ref().and_then(|c| c.preflight(parts)) {
            return Some(reply);
        }
        let mut reply = if let Some(api) = self.rest.as_ref().filter(|a| a.matches(path)) {
            api.handle(parts, owner, body).await
        } else if let Some(api) = self.tus.as_ref().filter(|a| a.matches(path)) {
            api.handle(parts, owner, body).await
        } else if let Some(api) = self.ietf.as_ref().filter(|a| a.matches(path)) {
            api.handle(parts, owner, body).await
        } else {
            self.raw.as_ref()?.handle(parts, owner, body).await
        };
        if let Some(cors) = &self.cors {
            cors.decorate(parts, &mut reply);
        }
        Some(reply)
    }
}
