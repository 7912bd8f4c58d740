//! A server for the client to talk to: the example wiring behind the fault
//! layer, served with axum on `127.0.0.1:0` over a fresh data directory;
//! helpers for sources, stored blobs, sending and interrupting uploads, and
//! the events they tell.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt as _;
use resumable::client::{
    Client, ClientBuilder, Dialect, Error, Event, Operation, RestartReason, Resumption,
    RetryPolicy, Upload, Uploaded,
};
use resumable::sink::FsSink;
use resumable::store::FsStore;
use resumable::{DefaultPolicy, Engine, Owner, SessionId};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncSeek};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::faults::{Faults, Kind, inject};
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
    data: tempfile::TempDir,
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
        std::fs::create_dir(data.path().join("sources")).expect("the sources directory");
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
            data,
        }
    }

    /// The server's root URL.
    pub(crate) fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A source file of `len` deterministic bytes, in a directory that lives
    /// as long as the server; written again if it exists.
    pub(crate) fn file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let data = bytes(len, seed);
        let path = self.data.path().join("sources").join(name);
        std::fs::write(&path, &data).expect("write the source");
        (path, data)
    }

    /// A client builder for this server: no proxy, quick retries.
    pub(crate) fn client(&self) -> ClientBuilder {
        client_for(&self.root())
    }

    /// A tus client for this server, with appends of 1 MiB.
    pub(crate) fn tus_client(&self) -> Client {
        self.client()
            .dialect(Dialect::Tus)
            .tus_chunk_size(MIB as u64)
            .build()
            .unwrap()
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
    Client::builder(root)
        .http_client(http)
        .retry(quick_retries(4, Duration::from_millis(50)))
}

/// A retry policy for tests: `max_retries`, the first after at most 1 ms,
/// none more than `max_delay` apart.
pub(crate) fn quick_retries(max_retries: u32, max_delay: Duration) -> RetryPolicy {
    RetryPolicy::new()
        .max_retries(max_retries)
        .initial_delay(Duration::from_millis(1))
        .max_delay(max_delay)
}

/// Deterministic test bytes.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Where the state of an upload of `path` is kept: beside it.
pub(crate) fn state_path(path: &Path) -> PathBuf {
    let mut state = path.as_os_str().to_owned();
    state.push(".upload-state.json");
    state.into()
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

    /// The retries told, in order.
    pub(crate) fn retries(&self) -> Vec<Retry> {
        self.told()
            .into_iter()
            .filter_map(|e| match e {
                Event::Retrying {
                    operation,
                    attempt,
                    delay,
                    error,
                } => Some(Retry {
                    operation,
                    attempt,
                    delay,
                    error,
                }),
                _ => None,
            })
            .collect()
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

/// Sends `upload` within [`BOUND`].
pub(crate) async fn send<R>(upload: Upload<R>) -> Result<Uploaded, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    bounded("the upload", upload.send()).await
}

/// Sends `upload` within [`BOUND`], recording the events it tells.
pub(crate) async fn send_recorded<R>(upload: Upload<R>) -> (Result<Uploaded, Error>, Events)
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let events = Events::default();
    let result = send(upload.on_event(events.recorder())).await;
    (result, events)
}

/// What an [`Event::Retrying`] told.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    pub(crate) operation: Operation,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) error: String,
}

/// Starts an upload of `path` that lets `pass` chunks (or appends) of
/// `kind` through and holds the rest, cancels it once those are
/// acknowledged, and checks it ends `Cancelled`. Returns the session (id or
/// tus URL) it had started. The fault rules are cleared afterwards.
pub(crate) async fn interrupt(
    server: &Server,
    client: &Client,
    path: &Path,
    state: Option<&Path>,
    kind: Kind,
    pass: usize,
) -> String {
    server.faults.hold_after(kind, pass);
    let cancel = CancellationToken::new();
    let events = Events::default();
    let mut upload = client
        .upload_file(path)
        .cancel_token(cancel.clone())
        .on_event(events.recorder());
    if let Some(state) = state {
        upload = upload.state_file(state);
    }
    let mut progress = upload.progress();
    let task = tokio::spawn(upload.send());
    bounded(
        "the first acknowledgements",
        progress.wait_for(|p| p.bytes_acknowledged >= (pass * MIB) as u64),
    )
    .await
    .expect("the upload is still running");
    cancel.cancel();
    // The held requests never end by themselves: the upload returns only
    // if cancelling drops them.
    let result = bounded("the cancelled upload", task).await.unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    server.faults.clear();
    events
        .told()
        .into_iter()
        .find_map(|e| match e {
            Event::Started { session, .. } => Some(session),
            _ => None,
        })
        .expect("a session was started")
}

/// An upload of a file of [`SIZE`] bytes with a state file, interrupted
/// once `pass` chunks (tus: appends) of it were acknowledged.
pub(crate) struct Interrupted {
    pub(crate) server: Server,
    pub(crate) client: Client,
    pub(crate) path: PathBuf,
    pub(crate) data: Vec<u8>,
    pub(crate) state: PathBuf,
    /// The session it started (tus: the upload URL).
    pub(crate) session: String,
}

impl Interrupted {
    /// In the session REST API: chunks of 1 MiB, four at a time.
    pub(crate) async fn rest(seed: u64, pass: usize) -> Interrupted {
        let server = Server::start(MIB as u64).await;
        let client = server.client().concurrency(4).build().unwrap();
        Self::start(server, client, Kind::Chunk, seed, pass).await
    }

    /// In tus: appends of 1 MiB, to a server of 8 MiB chunks.
    pub(crate) async fn tus(seed: u64, pass: usize) -> Interrupted {
        let server = Server::start(8 * MIB as u64).await;
        let client = server.tus_client();
        Self::start(server, client, Kind::Patch, seed, pass).await
    }

    async fn start(server: Server, client: Client, kind: Kind, seed: u64, pass: usize) -> Self {
        let (path, data) = server.file("data.bin", SIZE, seed);
        let state = state_path(&path);
        let session = interrupt(&server, &client, &path, Some(&state), kind, pass).await;
        Interrupted {
            server,
            client,
            path,
            data,
            state,
            session,
        }
    }

    /// Runs the upload again with the state file, recording its events.
    pub(crate) async fn send_again(&self) -> (Result<Uploaded, Error>, Events) {
        send_recorded(self.client.upload_file(&self.path).state_file(&self.state)).await
    }
}

/// Checks that `done` resumed the interrupted session, whose server held
/// `from` bytes: only the rest was sent, the source is stored, and the
/// state file is gone.
pub(crate) async fn assert_resumed(up: &Interrupted, done: &Uploaded, from: u64) {
    assert_eq!(done.session, up.session);
    assert_eq!(done.resumption, Resumption::Resumed { from });
    assert_eq!(done.progress.bytes_sent, up.data.len() as u64 - from);
    assert_eq!(up.server.stored(&up.session).await, up.data);
    assert!(
        !up.state.exists(),
        "the state file is removed once complete"
    );
}

/// Checks that the problem details of `e` are for `status`, with `code`.
pub(crate) fn assert_problem(e: &Error, status: u16, code: &str) {
    assert_eq!(e.status(), Some(status), "{e}");
    assert_eq!(e.problem().and_then(|p| p.code()), Some(code), "{e}");
}

/// Why `done` started over in a new session; fails the test if it did
/// not.
pub(crate) fn restart_reason(done: &Uploaded) -> &RestartReason {
    match &done.resumption {
        Resumption::Restarted { reason } => reason,
        other => panic!("expected a new start, got {other:?}"),
    }
}
