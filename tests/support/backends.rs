//! The memory and filesystem backends the engine, fault and race tests run
//! on, the instant their clocks start at, and their test bytes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use resumable::Sha256Digest;
use resumable::sink::{BlobSink, FsSink, MemorySink};
use resumable::store::{FsStore, MemoryStore, SessionStore};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// Which backends a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Memory,
    Fs,
}

/// What keeps a backend (its temporary directory) or lets a test look
/// inside it.
pub(crate) enum Backing {
    Memory(Arc<MemorySink>),
    Fs { _dir: TempDir, root: PathBuf },
}

impl Backing {
    /// The data directory of the filesystem backends.
    pub(crate) fn root(&self) -> Option<&PathBuf> {
        match self {
            Backing::Fs { root, .. } => Some(root),
            Backing::Memory(_) => None,
        }
    }
}

/// The store and the sink of `backend`, and their [`Backing`].
pub(crate) fn backends(backend: Backend) -> (Arc<dyn SessionStore>, Arc<dyn BlobSink>, Backing) {
    match backend {
        Backend::Memory => {
            let sink = Arc::new(MemorySink::new());
            (
                Arc::new(MemoryStore::new()),
                sink.clone(),
                Backing::Memory(sink),
            )
        }
        Backend::Fs => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let root = dir.path().join("data");
            (
                Arc::new(FsStore::open(&root).expect("the store opens")),
                Arc::new(FsSink::open(&root).expect("the sink opens")),
                Backing::Fs { _dir: dir, root },
            )
        }
    }
}

/// The instant the tests' manual clocks start at.
pub(crate) fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Deterministic bytes that differ from seed to seed.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// SHA-256 computed here, independently of the crate.
pub(crate) fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::from_slice(&Sha256::digest(bytes)).expect("32 bytes")
}

/// A body stream that hands `bytes` over in three pieces.
pub(crate) fn body(
    bytes: &[u8],
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let all = Bytes::copy_from_slice(bytes);
    let (a, b) = (all.len() / 3, 2 * all.len() / 3);
    let pieces = [all.slice(..a), all.slice(a..b), all.slice(b..)];
    futures::stream::iter(pieces.into_iter().filter(|p| !p.is_empty()).map(Ok))
}
