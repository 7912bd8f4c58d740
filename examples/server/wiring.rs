//! The axum wiring of the example server, shared with the integration tests:
//! the session REST API under `/attachment`, tus under `/files`, the IETF
//! resumable-upload draft under `/uploads`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use resumable::Engine;
use resumable::http::{IetfApi, RestApi, TusApi};

use crate::common::owner_of;

/// The dialects the server speaks.
#[derive(Debug)]
struct Dialects {
    rest: RestApi,
    tus: TusApi,
    ietf: IetfApi,
}

/// The router: every dialect under its base path, 404 elsewhere.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    let dialects = Dialects {
        rest: RestApi::new(engine.clone()),
        tus: TusApi::new(engine.clone()),
        ietf: IetfApi::new(engine),
    };
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(dialects))
}

async fn handle(State(dialects): State<Arc<Dialects>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let owner = owner_of(&parts.headers);
    let path = parts.uri.path();
    let reply = if dialects.rest.matches(path) {
        dialects
            .rest
            .handle(&parts, &owner, body.into_data_stream())
            .await
    } else if dialects.tus.matches(path) {
        dialects.tus.handle(&parts, &owner, body).await
    } else if dialects.ietf.matches(path) {
        dialects.ietf.handle(&parts, &owner, body).await
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    reply.map(Body::from)
}
