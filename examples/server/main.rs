//! The example upload server: the session REST API with axum, on the
//! embedded filesystem store and sink, with the sweep in the background.
//!
//! ```text
//! cargo run --example server -- --addr 127.0.0.1:8080 --data-dir ./data \
//!     [--chunk-size BYTES] [--expiry SECS] [--sweep-interval SECS]
//! ```

mod wiring;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use resumable::SystemClock;
use tracing_subscriber::EnvFilter;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "A resumable upload server (session REST API on the filesystem)")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let settings = wiring::Settings {
        chunk_size: args.chunk_size,
        expiry: Duration::from_secs(args.expiry),
    };
    let engine = wiring::open_engine(&args.data_dir, &settings, Arc::new(SystemClock))?;
    let sweeper = engine
        .clone()
        .spawn_sweeper(Duration::from_secs(args.sweep_interval.max(1)));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        chunk_size = args.chunk_size,
        "listening"
    );
    axum::serve(listener, wiring::router(engine))
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
