//! Every dialect behind one handler, with CORS: what a web framework adapter
//! hands requests to.

use std::sync::Arc;

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
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    rest: Option<RestApi>,
    tus: Option<TusApi>,
    ietf: Option<IetfApi>,
    raw: Option<RawApi>,
    cors: Option<Cors>,
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
        self.rest = Some(api);
        self
    }

    /// Serves tus.
    pub fn tus(mut self, api: TusApi) -> Self {
        self.tus = Some(api);
        self
    }

    /// Serves the IETF draft.
    pub fn ietf(mut self, api: IetfApi) -> Self {
        self.ietf = Some(api);
        self
    }

    /// Serves the raw single-request upload.
    pub fn raw(mut self, api: RawApi) -> Self {
        self.raw = Some(api);
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
