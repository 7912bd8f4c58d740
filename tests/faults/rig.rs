//! What every fault case shares: an engine over a [`FaultyStore`] and a
//! [`FaultySink`] wrapping the memory or the filesystem backends, a manual
//! clock, test bytes, and the checks every case ends with.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use resumable::conformance::faults::{FaultySink, FaultyStore, Hold};
use resumable::http::problem::status_of;
use resumable::machine::Timeouts;
use resumable::{
    Attachment, BlobSink, ChunkOptions, ChunkReceipt, Engine, EngineConfig, Error, ErrorKind,
    ManualClock, NewUpload, Owner, SessionId, SessionInfo, SessionStatus, SessionStore, StateKind,
};
use tokio::task::JoinHandle;

/// Runs each named case of the calling module on the memory and on the
/// filesystem backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::rig::Backend::Memory).await
                }
            )*
        }
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::rig::Backend::Fs).await
                }
            )*
        }
    };
}

pub(crate) const CHUNK: u64 = 1000;
/// 10 full chunks and a last one of 500 bytes.
pub(crate) const SIZE: usize = 10_500;
/// How many chunks an upload of `SIZE` bytes has.
pub(crate) const CHUNKS: u64 = 11;
/// The engine's limit of compare-and-swap retries in these cases.
pub(crate) const MAX_RETRIES: u32 = 4;

pub(crate) fn timeouts() -> Timeouts {
    Timeouts {
        session_timeout: Duration::from_secs(60),
        temporary_max_age: Duration::from_secs(30),
        tombstone_retention: Duration::from_secs(20),
        finalize_lease: Duration::from_secs(10),
    }
}

pub(crate) fn config() -> EngineConfig {
    EngineConfig {
        chunk_size: CHUNK,
        timeouts: timeouts(),
        max_conflict_retries: MAX_RETRIES,
        ..EngineConfig::default()
    }
}

/// A body that hands over the first `after` bytes of `bytes`, then fails as
/// a client that went away.
pub(crate) fn failing_body(
    bytes: &[u8],
    after: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let head = Bytes::copy_from_slice(&bytes[..after]);
    let gone = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the client went away");
    futures::stream::iter([Ok(head), Err(gone)])
}

/// The byte range of chunk `index` in a file of `len` bytes.
pub(crate) fn chunk(index: u64, len: usize) -> Range<usize> {
    let start = (index * CHUNK) as usize;
    start..(start + CHUNK as usize).min(len)
}

/// Asserts what the caller of a failed operation is told: the error's
/// kind, its HTTP status, its stable code and whether a retry may help.
#[track_caller]
pub(crate) fn assert_fails<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    status: u16,
    code: &str,
    retryable: bool,
) -> Error {
    let error = match result {
        Ok(value) => panic!("expected a {kind:?} error, got Ok({value:?})"),
        Err(e) => e,
    };
    assert_eq!(error.kind(), kind, "the kind of {error:?}");
    assert_eq!(
        status_of(error.kind()).as_u16(),
        status,
        "the status of {error:?}"
    );
    assert_eq!(error.code(), code, "the code of {error:?}");
    assert_eq!(
        error.is_retryable(),
        retryable,
        "whether {error:?} is retryable"
    );
    error
}

/// Waits for a held call to arrive; a generous bound turns a hang into a
/// failure.
pub(crate) async fn reached(hold: &Hold) {
    tokio::time::timeout(Duration::from_secs(60), hold.reached())
        .await
        .expect("the held call arrives");
}

/// Awaits a spawned task.
pub(crate) async fn joined<T>(task: JoinHandle<T>) -> T {
    task.await.expect("the task finishes")
}

/// An engine over faulty wrappers of real backends.
pub(crate) struct Rig {
    pub(crate) engine: Arc<Engine>,
    pub(crate) store: Arc<FaultyStore<Arc<dyn SessionStore>>>,
    pub(crate) sink: Arc<FaultySink<Arc<dyn BlobSink>>>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) me: Owner,
    backing: Backing,
}

impl Rig {
    pub(crate) fn new(backend: Backend) -> Self {
        Self::with_config(backend, config())
    }

    pub(crate) fn with_config(backend: Backend, config: EngineConfig) -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let (store, sink, backing) = backends(backend);
        let store = Arc::new(FaultyStore::new(store));
        let sink = Arc::new(FaultySink::new(sink));
        let engine = Engine::builder(store.clone(), sink.clone())
            .config(config)
            .clock(clock.clone())
            .build();
        Rig {
            engine: Arc::new(engine),
            store,
            sink,
            clock,
            me: Owner::new("alice"),
            backing,
        }
    }

    /// A rig with an upload of `SIZE` bytes of `data(SIZE, seed)` started.
    pub(crate) async fn with_upload(backend: Backend, seed: u64) -> (Self, Vec<u8>, SessionInfo) {
        let rig = Rig::new(backend);
        let info = rig.start(SIZE).await;
        (rig, data(SIZE, seed), info)
    }

    pub(crate) async fn initiate(&self, len: usize) -> Result<SessionInfo, Error> {
        let upload = NewUpload {
            file_name: "data.bin".into(),
            file_size: len as u64,
            content_type: Some("application/octet-stream".into()),
            sha256: None,
        };
        self.engine.initiate(&self.me, upload).await
    }

    pub(crate) async fn start(&self, len: usize) -> SessionInfo {
        self.initiate(len).await.expect("initiate")
    }

    /// Sends chunk `index` of `source`.
    pub(crate) async fn send(
        &self,
        info: &SessionInfo,
        source: &[u8],
        index: u64,
    ) -> Result<ChunkReceipt, Error> {
        let bytes = &source[chunk(index, source.len())];
        self.engine
            .upload_chunk(
                &self.me,
                info.id,
                index,
                body(bytes),
                ChunkOptions::default(),
            )
            .await
    }

    /// Sends chunk `index` of `source`, which must be taken.
    pub(crate) async fn send_ok(&self, info: &SessionInfo, source: &[u8], index: u64) {
        if let Err(e) = self.send(info, source, index).await {
            panic!("chunk {index}: {e:?}");
        }
    }

    /// Sends chunk `index` of `source` from a task of its own.
    pub(crate) fn spawn_send(
        &self,
        info: &SessionInfo,
        source: &[u8],
        index: u64,
    ) -> JoinHandle<Result<ChunkReceipt, Error>> {
        let bytes = source[chunk(index, source.len())].to_vec();
        let (engine, me, id) = (self.engine.clone(), self.me.clone(), info.id);
        tokio::spawn(async move {
            engine
                .upload_chunk(&me, id, index, body(&bytes), ChunkOptions::default())
                .await
        })
    }

    /// Sends the chunks `indices` of `source`, each of which must be taken.
    pub(crate) async fn send_each(
        &self,
        info: &SessionInfo,
        source: &[u8],
        indices: impl IntoIterator<Item = u64>,
    ) {
        for index in indices {
            self.send_ok(info, source, index).await;
        }
    }

    pub(crate) async fn status(&self, id: SessionId) -> SessionStatus {
        self.engine.status(&self.me, id).await.expect("status")
    }

    pub(crate) async fn complete(&self, id: SessionId) -> Result<Attachment, Error> {
        self.engine.complete(&self.me, id).await
    }

    pub(crate) async fn read_back(&self, id: SessionId) -> Vec<u8> {
        let stream = self.engine.read(&self.me, id).await.expect("read");
        stream
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
            .expect("the blob streams")
    }

    /// Asserts that the session is open and holds exactly the chunks
    /// `received` (ascending), and no byte of any other.
    #[track_caller]
    pub(crate) fn assert_holds(&self, status: &SessionStatus, received: &[u64]) {
        assert_eq!(status.state, StateKind::Open, "the session stays open");
        assert_eq!(status.received_chunks, received, "the chunks received");
        let bytes: u64 = received.iter().map(|&i| chunk(i, SIZE).len() as u64).sum();
        assert_eq!(status.received_bytes, bytes, "the bytes received");
    }

    /// Sends every chunk the status says is missing, completes, and checks
    /// that the blob is exactly `source` and that nothing else is left.
    pub(crate) async fn resume_and_complete(&self, info: &SessionInfo, source: &[u8]) {
        let missing = self.status(info.id).await.missing_chunks;
        self.send_each(info, source, missing).await;
        let attachment = self.complete(info.id).await.expect("complete");
        assert_eq!(attachment.state, StateKind::Completed);
        self.assert_blob(info.id, source).await;
    }

    /// Checks that the finished blob is exactly `source`, and that the
    /// filesystem holds nothing but finished blobs.
    pub(crate) async fn assert_blob(&self, id: SessionId, source: &[u8]) {
        let status = self.status(id).await;
        let blob = status.blob.expect("a finished blob");
        assert_eq!(blob.size, source.len() as u64, "the blob's size");
        assert_eq!(blob.sha256, sha256(source), "the blob's SHA-256");
        assert!(self.read_back(id).await == source, "the blob is the source");
        self.assert_no_leftovers();
    }

    /// How many uploads the sink holds any data of.
    pub(crate) fn sink_uploads(&self) -> usize {
        match &self.backing {
            Backing::Memory(sink) => sink.upload_count(),
            Backing::Fs { root, .. } => std::fs::read_dir(root.join("uploads"))
                .expect("the uploads directory")
                .count(),
        }
    }

    /// How many part files the filesystem sink holds for an upload (`None`
    /// on the memory backends).
    pub(crate) fn part_files(&self, id: SessionId) -> Option<usize> {
        let upload = self.backing.root()?.join("uploads").join(id.to_string());
        Some(stored_attempts(&upload))
    }

    /// On the filesystem backends: no temporary file, part or parts
    /// directory anywhere, and every upload directory holds exactly a
    /// finished blob and its description.
    #[track_caller]
    pub(crate) fn assert_no_leftovers(&self) {
        let Some(root) = self.backing.root() else {
            return;
        };
        for path in walk(root) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                !name.starts_with('.')
                    && !name.ends_with(".tmp")
                    && !name.ends_with(".part")
                    && name != "parts",
                "left behind: {}",
                path.display()
            );
        }
        for upload in std::fs::read_dir(root.join("uploads")).unwrap() {
            let dir = upload.unwrap().path();
            assert_eq!(
                entries(&dir),
                ["blob", "blob.json"],
                "{} holds only a finished blob",
                dir.display()
            );
        }
    }
}

// Shared by the targets that include this file; each uses a subset.
#[allow(unused_imports)]
pub(crate) use crate::backends::{Backend, Backing, backends, body, data, sha256, t0};
pub(crate) use crate::files::{entries, stored_attempts, walk};
