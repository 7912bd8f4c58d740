//! What the example servers share: their command line, logging, the engine
//! (on the embedded filesystem store and sink unless `--store` / `--sink`
//! name another) with its background sweep, and the demo's notion of who
//! sends a request.

mod backends;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use resumable::http::{Cors, Endpoint, Locations, RawApi};
use resumable::{DefaultPolicy, Engine, Owner};
use tracing_subscriber::EnvFilter;

/// The example servers' command line.
#[derive(Debug, clap::Parser)]
#[command(
    about = "A resumable upload server: the session REST API, tus, the IETF draft, the raw upload"
)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Directory for session records and uploaded bytes.
    #[arg(long, default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// Preferred chunk size in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub(crate) chunk_size: u64,
    /// Seconds of inactivity after which an upload session expires.
    #[arg(long, default_value_t = 24 * 3600)]
    pub(crate) expiry: u64,
    /// Seconds between sweeps of expired sessions.
    #[arg(long, default_value_t = 60)]
    pub(crate) sweep_interval: u64,
    /// Seconds the record of an aborted or expired session is kept before
    /// the sweep forgets it.
    #[arg(long, default_value_t = 24 * 3600)]
    pub(crate) tombstone_retention: u64,
    /// Build `Location` from `Forwarded` / `X-Forwarded-*` (only behind a
    /// proxy that sets them).
    #[arg(long)]
    pub(crate) trust_forwarded: bool,
    /// Write `Location` as a path instead of an absolute URL.
    #[arg(long)]
    pub(crate) relative_locations: bool,
    /// Where sessions live: `fs` (under --data-dir), `redis://host:port`,
    /// `postgres://user@host/db`.
    #[arg(long, default_value = "fs")]
    pub(crate) store: String,
    /// Where bytes go: `fs` (under --data-dir) or `s3://bucket/prefix`.
    #[arg(long, default_value = "fs")]
    pub(crate) sink: String,
    /// The largest file accepted, in bytes (larger ones are refused at
    /// initiate with 413).
    #[arg(long, default_value_t = 10 << 30)]
    pub(crate) max_file_size: u64,
    /// Open sessions an owner may hold at once (403 beyond; 0: no limit).
    #[arg(long, default_value_t = 100)]
    pub(crate) max_open_sessions: u64,
}

impl Args {
    /// Parses the command line and starts logging to standard error.
    pub(crate) fn init() -> Self {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .init();
        <Args as clap::Parser>::parse()
    }

    /// Every dialect on `engine`, writing locations as these options say.
    pub(crate) fn endpoint(&self, engine: Arc<Engine>) -> Endpoint {
        let locations = Locations::new()
            .trust_forwarded(self.trust_forwarded)
            .relative(self.relative_locations);
        endpoint(engine).locations(locations)
    }

    /// The engine these options describe, on the system clock, with the
    /// sweep running in the background (abort the handle to stop it).
    pub(crate) async fn engine(
        &self,
    ) -> Result<(Arc<Engine>, tokio::task::JoinHandle<()>), Box<dyn std::error::Error>> {
        let store = backends::store(&self.store, &self.data_dir).await?;
        let sink = backends::sink(&self.sink, &self.data_dir).await?;
        let engine = Arc::new(
            Engine::builder(store, sink)
                .policy(
                    DefaultPolicy::new()
                        .max_file_size(self.max_file_size)
                        .max_open_sessions(Some(self.max_open_sessions).filter(|n| *n > 0)),
                )
                .chunk_size(self.chunk_size)
                .session_timeout(Duration::from_secs(self.expiry))
                .tombstone_retention(Duration::from_secs(self.tombstone_retention))
                .build(),
        );
        let sweeper = engine
            .clone()
            .spawn_sweeper(Duration::from_secs(self.sweep_interval.max(1)));
        Ok((engine, sweeper))
    }
}

/// Every dialect the example servers speak, on `engine`: the session REST
/// API, tus, the IETF draft, and the raw upload with one target, `default`
/// (files up to 1 GiB), with CORS for any origin.
pub(crate) fn endpoint(engine: Arc<Engine>) -> Endpoint {
    let raw =
        RawApi::new(engine.clone()).target("default", DefaultPolicy::new().max_file_size(1 << 30));
    Endpoint::all(engine).raw(raw).cors(Cors::any_origin())
}

/// The demo's notion of identity: the bearer token itself names the owner,
/// and a request without one is anonymous. A real application puts its own
/// authentication here.
pub(crate) fn owner_of(headers: &http::HeaderMap) -> Owner {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Owner::new(token.trim()))
        .unwrap_or_else(Owner::anonymous)
}
