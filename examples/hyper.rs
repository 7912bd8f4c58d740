//! The session REST API on bare hyper 1: the same engine as the axum example
//! server (filesystem store and sink, background sweep), showing that the
//! core needs no framework at all. An accept loop serves each connection with
//! a `service_fn` that splits the request into parts and a body stream, calls
//! [`RestApi::handle`] and sends the reply as a `Full<Bytes>`. Ctrl-C stops
//! accepting and lets in-flight connections finish.
//!
//! ```text
//! cargo run --example hyper -- --addr 127.0.0.1:8082 --data-dir ./data \
//!     [--chunk-size BYTES] [--expiry SECS] [--sweep-interval SECS]
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use resumable::http::Endpoint;
use tokio::net::TcpListener;

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::init();
    let (engine, sweeper) = args.engine().await?;
    let api = Arc::new(args.endpoint(engine));
    let listener = TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %args.data_dir.display(), "listening");

    let graceful = GracefulShutdown::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut ctrl_c => break,
        };
        let api = api.clone();
        let service = service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(handle(&api, req).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection error");
            }
        });
    }
    tracing::info!("shutting down");
    drop(listener);
    // In-flight requests finish; idle connections close (30 s at most).
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn handle(api: &Endpoint, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let owner = common::owner_of(&parts.headers);
    // `Incoming` is a `Send + 'static` body; the endpoint streams it.
    match api.handle(&parts, &owner, body).await {
        Some(reply) => reply.map(Full::new),
        None => {
            let mut reply = Response::new(Full::new(Bytes::new()));
            *reply.status_mut() = hyper::StatusCode::NOT_FOUND;
            reply
        }
    }
}
