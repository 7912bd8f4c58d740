//! The axum wiring of the example server, shared with the integration tests:
//! the session REST API under `/attachment`, tus under `/files`, the IETF
//! resumable-upload draft under `/uploads`, the raw upload under
//! `/file/upload/default`, CORS for any origin, and the browser upload page
//! at `/`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use resumable::Engine;
use resumable::http::Endpoint;

use crate::common::{endpoint, owner_of};

// By path, so that the module is found the same way when the integration
// tests include this file.
#[path = "page.rs"]
mod page;

/// The router: the upload page at `/`, every dialect under its base path,
/// 404 elsewhere.
#[allow(dead_code)] // The integration tests use it; the server uses `router_for`.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    router_for(endpoint(engine))
}

/// The router of a configured endpoint.
pub(crate) fn router_for(endpoint: Endpoint) -> Router {
    Router::new()
        .merge(page::routes())
        .fallback(handle)
        .with_state(Arc::new(endpoint))
}

async fn handle(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let owner = owner_of(&parts.headers);
    match endpoint.handle(&parts, &owner, body).await {
        Some(reply) => reply.map(Body::from),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
