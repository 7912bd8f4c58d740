//! What every engine scenario shares: the configuration and clock, test
//! bytes and digests, and a [`Harness`] over the memory or the filesystem
//! backends.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use resumable::checksum::{Checksum, ChecksumAlgorithm};
use resumable::machine::Timeouts;
use resumable::{
    AppendOptions, AppendReceipt, ChunkOptions, ChunkReceipt, Engine, EngineBuilder, EngineConfig,
    Error, ManualClock, NewAppendUpload, NewUpload, Owner, SessionId, SessionInfo, SessionStatus,
    Sha256Digest, StateKind, SweepReport,
};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

/// Asserts that `$result` is an `Err` matching `$pattern`, showing what it
/// was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            Err(other) => panic!("expected {}, got Err({other:?})", stringify!($pattern)),
            Ok(_) => panic!("expected {}, got Ok", stringify!($pattern)),
        }
    };
}

/// Runs each named scenario of the calling module on the memory and on the
/// filesystem backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Memory).await
                }
            )*
        }
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Fs).await
                }
            )*
        }
    };
}

pub(crate) const NS: Duration = Duration::from_nanos(1);
pub(crate) const CHUNK: u64 = 1000;
/// 10 full chunks and a last one of 500 bytes.
pub(crate) const SIZE: usize = 10_500;

/// What a sweep reports when one session expired and its bytes were purged.
pub(crate) const ONE_EXPIRED_AND_PURGED: SweepReport = SweepReport {
    expired: 1,
    purged: 1,
    forgotten: 0,
    failed: 0,
};

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
        ..EngineConfig::default()
    }
}

/// The checksum of `bytes` in `algorithm`, computed here.
pub(crate) fn checksum(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Checksum {
    let value = match algorithm {
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
        ChecksumAlgorithm::Md5 => md5::Md5::digest(bytes).to_vec(),
        _ => Sha256::digest(bytes).to_vec(),
    };
    Checksum::new(algorithm, value).expect("a checksum of the algorithm's length")
}

/// Collects a stream of bytes.
pub(crate) async fn concat(stream: resumable::sink::ByteStream) -> std::io::Result<Vec<u8>> {
    stream
        .try_fold(Vec::new(), |mut all, piece| async move {
            all.extend_from_slice(&piece);
            Ok(all)
        })
        .await
}

pub(crate) fn chunk(info: &SessionInfo, len: usize, index: u64) -> Range<usize> {
    let start = (index * info.chunk_size) as usize;
    start..(start + info.chunk_size as usize).min(len)
}

pub(crate) fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[0] ^= 0xff;
    out
}

pub(crate) fn with_sha(sha256: Sha256Digest) -> ChunkOptions {
    ChunkOptions {
        sha256: Some(sha256),
        ..ChunkOptions::default()
    }
}

/// A new upload with no content type.
pub(crate) fn new_upload(
    name: impl Into<String>,
    size: u64,
    sha256: Option<Sha256Digest>,
) -> NewUpload {
    NewUpload {
        file_name: name.into(),
        file_size: size,
        content_type: None,
        sha256,
    }
}

/// Asserts that `result` says the session is gone, in state `kind`.
#[track_caller]
pub(crate) fn assert_gone<T>(result: Result<T, Error>, kind: StateKind) {
    assert_err!(result, Error::SessionGone { state, .. } if state == kind);
}

/// Sends chunk `index` of `source` to `engine`, without a checksum.
pub(crate) async fn send_chunk(
    engine: &Engine,
    owner: &Owner,
    info: &SessionInfo,
    source: &[u8],
    index: u64,
) -> Result<ChunkReceipt, Error> {
    let bytes = &source[chunk(info, source.len(), index)];
    engine
        .upload_chunk(owner, info.id, index, body(bytes), ChunkOptions::default())
        .await
}

pub(crate) struct Harness {
    pub(crate) engine: Arc<Engine>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) backing: Backing,
}

impl Harness {
    pub(crate) fn new(backend: Backend) -> Self {
        Self::with(backend, |b| b)
    }

    pub(crate) fn with(
        backend: Backend,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let (store, sink, backing) = backends(backend);
        let builder = Engine::builder(store, sink);
        let engine = configure(builder.config(config()).clock(clock.clone())).build();
        Harness {
            engine: Arc::new(engine),
            clock,
            backing,
        }
    }

    /// A harness where "alice" has started an upload of `SIZE` bytes of
    /// `data(SIZE, seed)`, without a file checksum.
    pub(crate) async fn with_upload(
        backend: Backend,
        seed: u64,
    ) -> (Self, Owner, Vec<u8>, SessionInfo) {
        let h = Harness::new(backend);
        let me = Owner::new("alice");
        let source = data(SIZE, seed);
        let info = h.start(&me, SIZE, None).await;
        (h, me, source, info)
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

    /// The filesystem sink's directory of an upload.
    pub(crate) fn upload_dir(&self, id: SessionId) -> Option<PathBuf> {
        match &self.backing {
            Backing::Memory(_) => None,
            Backing::Fs { root, .. } => Some(root.join("uploads").join(id.to_string())),
        }
    }

    /// How many stored attempts the filesystem sink holds for an upload:
    /// files in `parts/`, and claims of attempts written in place.
    pub(crate) fn part_files(&self, id: SessionId) -> Option<usize> {
        Some(stored_attempts(&self.upload_dir(id)?))
    }

    pub(crate) async fn start(
        &self,
        owner: &Owner,
        len: usize,
        sha256: Option<Sha256Digest>,
    ) -> SessionInfo {
        self.engine
            .initiate(
                owner,
                NewUpload {
                    file_name: "data.bin".into(),
                    file_size: len as u64,
                    content_type: Some("application/octet-stream".into()),
                    sha256,
                },
            )
            .await
            .expect("initiate")
    }

    pub(crate) async fn send(
        &self,
        owner: &Owner,
        info: &SessionInfo,
        source: &[u8],
        index: u64,
    ) -> Result<ChunkReceipt, Error> {
        send_chunk(&self.engine, owner, info, source, index).await
    }

    /// Sends chunk `index` of `source` from a task of its own.
    pub(crate) fn spawn_send(
        &self,
        owner: &Owner,
        info: &SessionInfo,
        source: &[u8],
        index: u64,
        options: ChunkOptions,
    ) -> JoinHandle<Result<ChunkReceipt, Error>> {
        let bytes = source[chunk(info, source.len(), index)].to_vec();
        let (engine, owner, id) = (self.engine.clone(), owner.clone(), info.id);
        tokio::spawn(async move {
            engine
                .upload_chunk(&owner, id, index, body(&bytes), options)
                .await
        })
    }

    pub(crate) async fn send_all(&self, owner: &Owner, info: &SessionInfo, source: &[u8]) {
        for index in 0..info.total_chunks {
            self.send(owner, info, source, index).await.expect("chunk");
        }
    }

    pub(crate) async fn read_back(&self, owner: &Owner, id: SessionId) -> Vec<u8> {
        let stream = self.engine.read(owner, id).await.expect("read");
        concat(stream).await.expect("the blob streams")
    }
}

// Shared by the targets that include this file; each uses a subset.
#[allow(unused_imports)]
pub(crate) use crate::backends::{Backend, Backing, backends, body, data, sha256, t0};
#[allow(unused_imports)]
pub(crate) use crate::files::{entries, stored_attempts, walk};

pub(crate) fn shard_lock(id: SessionId) -> PathBuf {
    PathBuf::from(format!("locks/{:02x}.lock", id.as_uuid().as_bytes()[0]))
}

/// A request for an appended upload of `size` bytes (unknown if `None`),
/// partial or not, with no name and no metadata.
pub(crate) fn new_append(size: Option<u64>, partial: bool) -> NewAppendUpload {
    NewAppendUpload {
        size,
        partial,
        ..NewAppendUpload::default()
    }
}

impl Harness {
    /// Creates an appended upload of `size` bytes (unknown if `None`).
    pub(crate) async fn create(
        &self,
        owner: &Owner,
        size: Option<u64>,
        partial: bool,
    ) -> SessionStatus {
        self.engine
            .create(owner, new_append(size, partial))
            .await
            .expect("create")
    }

    /// Appends `bytes` at `offset`, the body in three pieces.
    pub(crate) async fn append(
        &self,
        owner: &Owner,
        id: SessionId,
        offset: u64,
        bytes: &[u8],
        options: AppendOptions,
    ) -> Result<AppendReceipt, Error> {
        self.engine
            .append(owner, id, offset, body(bytes), options)
            .await
    }

    /// The offset at which an appending client continues.
    pub(crate) async fn offset(&self, owner: &Owner, id: SessionId) -> u64 {
        self.engine.status(owner, id).await.expect("status").offset
    }

    /// Appends `bytes` at `offset` with no option, which must succeed.
    pub(crate) async fn append_ok(
        &self,
        owner: &Owner,
        id: SessionId,
        offset: u64,
        bytes: &[u8],
    ) -> AppendReceipt {
        let body = body(bytes);
        let options = AppendOptions::default();
        (self.engine.append(owner, id, offset, body, options).await)
            .unwrap_or_else(|e| panic!("append at {offset}: {e:?}"))
    }
}
