//! The axum wiring of the example server, shared with the integration tests:
//! open the embedded filesystem store and sink, build the engine, route
//! every request under the API's base path to the REST dialect.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use resumable::http::RestApi;
use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{Clock, Engine, Owner};

/// What the example server is configured with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The preferred chunk size in bytes.
    pub(crate) chunk_size: u64,
    /// Session inactivity timeout.
    pub(crate) expiry: Duration,
}

/// The engine over `<data_dir>/store` and `<data_dir>/blobs`.
pub(crate) fn open_engine(
    data_dir: &Path,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> std::io::Result<Arc<Engine>> {
    let store = FsStore::open(data_dir.join("store"))?;
    let sink = FsSink::open(data_dir.join("blobs"))?;
    Ok(Arc::new(
        Engine::builder(store, sink)
            .chunk_size(settings.chunk_size)
            .session_timeout(settings.expiry)
            .clock(clock)
            .build(),
    ))
}

/// The demo's notion of identity: the bearer token itself names the owner,
/// and a request without one is anonymous. A real application puts its own
/// authentication here.
pub(crate) fn owner_of(headers: &HeaderMap) -> Owner {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Owner::new(token.trim()))
        .unwrap_or_else(Owner::anonymous)
}

/// The router: the REST dialect under `/attachment`, 404 elsewhere.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(RestApi::new(engine)))
}

async fn handle(State(api): State<Arc<RestApi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !api.matches(parts.uri.path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let owner = owner_of(&parts.headers);
    api.handle(&parts, &owner, body.into_data_stream())
        .await
        .map(Body::from)
}
