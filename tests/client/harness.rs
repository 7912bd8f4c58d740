//! A server for the client to talk to: the example wiring behind the fault
//! layer, served with axum on `127.0.0.1:0` over a fresh data directory;
//! helpers for sources, stored blobs and waiting on uploads.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt as _;
use resumable::client::{Client, ClientBuilder, Event, RetryPolicy};
use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{DefaultPolicy, Engine, Owner, SessionId};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::faults::{Faults, inject};
use crate::wiring;

/// 1 MiB.
pub(crate) const MIB: usize = 1 << 20;

/// A file of five and a bit chunks of 1 MiB: six chunks, the last short.
pub(crate) const SIZE: usize = 5 * MIB + 12_345;

/// A bound on anything a test waits for, so that a bug fails the test
/// instead of hanging it (never a measure of speed).
pub(crate) const BOUND: Duration = Duration::from_secs(60);

/// A running server. Dropping it stops the server.
pub(crate) struct Server {
    addr: SocketAddr,
    pub(crate) engine: Arc<Engine>,
    pub(crate) faults: Arc<Faults>,
    task: JoinHandle<()>,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A server whose sessions have chunks of `chunk_size` bytes.
    pub(crate) async fn start(chunk_size: u64) -> Server {
        Self::with_policy(chunk_size, DefaultPolicy::new()).await
    }

    /// A server with `policy` (file size limits...).
    pub(crate) async fn with_policy(chunk_size: u64, policy: DefaultPolicy) -> Server {
        let data = tempfile::tempdir().expect("temporary data directory");
        let store = FsStore::open(data.path().join("store")).expect("open the store");
        let sink = FsSink::open(data.path().join("blobs")).expect("open the sink");
        let engine = Arc::new(
            Engine::builder(store, sink)
                .chunk_size(chunk_size)
                .session_timeout(Duration::from_secs(3600))
                .policy(policy)
                .build(),
        );
        let faults = Arc::new(Faults::default());
        let app = wiring::router(engine.clone())
            .layer(axum::middleware::from_fn_with_state(faults.clone(), inject));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Server {
            addr,
            engine,
            faults,
            task,
            _data: data,
        }
    }

    /// The server's root URL.
    pub(crate) fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client builder for this server: no proxy, quick retries.
    pub(crate) fn client(&self) -> ClientBuilder {
        client_for(&self.root())
    }

    /// The bytes the server stored for a completed upload (a session id or
    /// a tus upload URL).
    pub(crate) async fn stored(&self, session: &str) -> Vec<u8> {
        let id: SessionId = session
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .expect("a session id");
        let stream = self
            .engine
            .read(&Owner::anonymous(), id)
            .await
            .expect("the stored upload");
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("read the blob");
        chunks.concat()
    }

    /// The chunks the server holds of a session.
    pub(crate) async fn received(&self, session: &str) -> Vec<u64> {
        let id: SessionId = session.parse().expect("a session id");
        self.engine
            .status(&Owner::anonymous(), id)
            .await
            .expect("the session's status")
            .received_chunks
    }

    /// The offset of a tus upload.
    pub(crate) async fn offset(&self, url: &str) -> u64 {
        let id: SessionId = url.rsplit('/').next().unwrap().parse().unwrap();
        self.engine
            .upload_status(&Owner::anonymous(), id)
            .await
            .expect("the upload's status")
            .offset
    }
}

/// A client builder for `root`: no proxy, and retries quick enough for
/// tests (at most 50 ms apart).
pub(crate) fn client_for(root: &str) -> ClientBuilder {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    Client::builder(root).http_client(http).retry(
        RetryPolicy::new()
            .max_retries(4)
            .initial_delay(Duration::from_millis(1))
            .max_delay(Duration::from_millis(50)),
    )
}

/// Deterministic test bytes.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// A file of `len` deterministic bytes in `dir`.
pub(crate) fn file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let data = bytes(len, seed);
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write the source");
    (path, data)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every event an upload told, for a test to look at afterwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    /// A callback recording into this list.
    pub(crate) fn recorder(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let list = self.0.clone();
        move |e: &Event| list.lock().unwrap().push(e.clone())
    }

    /// The events other than progress.
    pub(crate) fn told(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| !matches!(e, Event::Progress(_)))
            .cloned()
            .collect()
    }
}

/// Awaits `future` within [`BOUND`].
pub(crate) async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}
