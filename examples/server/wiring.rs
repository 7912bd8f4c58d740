//! The axum wiring of the example server, shared with the integration tests:
//! every request under the API's base path goes to the REST dialect.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use resumable::Engine;
use resumable::http::RestApi;

use crate::common::owner_of;

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
