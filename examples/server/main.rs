//! The example upload server: the session REST API with axum, on the
//! embedded filesystem store and sink, with the sweep in the background and
//! a graceful shutdown on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example server -- --addr 127.0.0.1:8080 --data-dir ./data \
//!     [--chunk-size BYTES] [--expiry SECS] [--sweep-interval SECS]
//! ```

#[path = "../common/mod.rs"]
mod common;
mod wiring;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::init();
    let (engine, sweeper) = args.engine().await?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        chunk_size = args.chunk_size,
        "listening"
    );
    axum::serve(listener, wiring::router_for(args.endpoint(engine)))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
