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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use resumable::http::RestApi;
use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{Engine, Owner};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "A resumable upload server on hyper")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Directory for session records and uploaded bytes.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Preferred chunk size in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    chunk_size: u64,
    /// Seconds of inactivity after which an upload session expires.
    #[arg(long, default_value_t = 24 * 3600)]
    expiry: u64,
    /// Seconds between sweeps of expired sessions.
    #[arg(long, default_value_t = 60)]
    sweep_interval: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let engine = Arc::new(
        Engine::builder(
            FsStore::open(args.data_dir.join("store"))?,
            FsSink::open(args.data_dir.join("blobs"))?,
        )
        .chunk_size(args.chunk_size)
        .session_timeout(Duration::from_secs(args.expiry))
        .build(),
    );
    let sweeper = engine
        .clone()
        .spawn_sweeper(Duration::from_secs(args.sweep_interval.max(1)));
    let api = Arc::new(RestApi::new(engine));
    let listener = TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %args.data_dir.display(), "listening");

    // Graceful shutdown (hyper-util's `GracefulShutdown` needs its
    // `server-graceful` feature; this is the same idea): each connection
    // holds a receiver of `stop`; on Ctrl-C the accept loop ends, `stop` is
    // sent, each connection finishes its current request and closes, and
    // `stop.closed()` resolves when the last receiver is gone (or in 30 s).
    let (stop, _) = watch::channel(());
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
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection error");
            }
        });
    }
    tracing::info!("shutting down");
    drop(listener);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), stop.closed()).await;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn handle(api: &RestApi, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let owner = owner_of(&parts.headers);
    // `Incoming` is `Send + 'static`; its data frames are the body stream.
    api.handle(&parts, &owner, body.into_data_stream())
        .await
        .map(Full::new)
}

/// The demo's notion of identity, as in the axum example: the bearer token
/// names the owner, and a request without one is anonymous.
fn owner_of(headers: &http::HeaderMap) -> Owner {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Owner::new(token.trim()))
        .unwrap_or_else(Owner::anonymous)
}
