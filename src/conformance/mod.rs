//! Public conformance suites for [`SessionStore`](crate::SessionStore) and
//! [`BlobSink`](crate::BlobSink) implementations (feature `conformance`).
//!
//! The traits' documentation says what every implementation MUST do; these
//! suites check it. Every store and sink of this crate runs them, and so
//! should any third-party backend: a store or sink that passes can be handed
//! to an [`Engine`](crate::Engine) with confidence that several server
//! processes sharing it never lose or double-count a chunk, and that a late
//! chunk never alters a finished blob or resurrects a purged upload.
//!
//! - [`store`]: one `pub async fn` per rule of [`SessionStore`]
//!   (round trips, compare-and-swap, missing records, `due`,
//!   `count_active`, racing and concurrent writers), and
//!   [`store::run_all`].
//! - [`sink`]: one `pub async fn` per rule of [`BlobSink`](crate::BlobSink)
//!   (assembly and digests, parts in any order and concurrently, failing
//!   bodies, digest mismatches, known digests, parts read back, idempotent
//!   finalize and purge, late parts, empty uploads, capabilities), and
//!   [`sink::run_all`].
//!
//! Each check panics with a message naming the rule it found broken, so it
//! is meant to be called from a test. Checks clean up what they create when
//! they pass, so they can run one after another on one store or sink; the
//! concurrent checks spawn tokio tasks and therefore take an `Arc`.
//!
//! # Running the suites on a backend
//! Enable the feature for your tests only:
//! ```toml
//! [dev-dependencies]
//! resumable = { version = "0.1", features = ["conformance"] }
//! ```
//! and run every check from a test on a multi-threaded runtime (so the
//! concurrent checks really run in parallel), each on a fresh, empty backend:
//! ```
//! use std::sync::Arc;
//!
//! use resumable::conformance;
//! use resumable::sink::MemorySink;
//! use resumable::store::MemoryStore;
//!
//! // In a test: #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! conformance::store::run_all(Arc::new(MemoryStore::new())).await;
//! conformance::sink::run_all(Arc::new(MemorySink::new())).await;
//! # }
//! ```
//! A backend shared by processes (a database, a directory) should also run
//! [`store::racing_writers`] and [`store::concurrent_updates`] with two or
//! more independently opened handles on the same backing store, as if from
//! two processes.
//!
//! [`SessionStore`]: crate::SessionStore

pub mod faults;
pub mod sink;
pub mod store;

/// Awaits a spawned task, re-raising its panic so that the check's own
/// message reaches the test.
async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("a conformance task did not finish: {e}"),
        },
    }
}

/// The sessions the store suite builds, with the pure functions of
/// [`machine`](crate::machine), and the times it builds them at.
mod fixtures {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use crate::digest::Sha256Digest;
    use crate::ledger::{HashedPrefix, PartReceipt, PartRef};
    use crate::machine::{self, Completion, Timeouts};
    use crate::session::{ExpiryReason, FileMeta, FileName, Owner, Session, SessionId};
    use crate::sink::{FinishedBlob, UploadHandle};

    /// The timings of every session the suite builds.
    pub(super) const TIMEOUTS: Timeouts = Timeouts {
        session_timeout: Duration::from_secs(1000),
        temporary_max_age: Duration::from_secs(2000),
        tombstone_retention: Duration::from_secs(3000),
        finalize_lease: Duration::from_secs(500),
    };

    /// The chunk size of every session the suite builds.
    pub(super) const CHUNK: u64 = 1000;

    /// The time base of most checks: 2033, with nanoseconds, so a store that
    /// rounds times is caught.
    pub(super) fn epoch() -> SystemTime {
        UNIX_EPOCH + Duration::new(2_000_000_000, 123_456_789)
    }

    /// The time base of [`due_sessions`](super::store::due_sessions): 2001,
    /// before anything else the suite stores is due.
    pub(super) fn due_epoch() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_000_000_000, 987_654_321)
    }

    /// An instant after every due instant of sessions built at `t0`.
    pub(super) fn far_after(t0: SystemTime) -> SystemTime {
        t0 + Duration::from_secs(100_000)
    }

    /// An owner no other check or run uses.
    pub(super) fn unique_owner(tag: &str) -> Owner {
        Owner::new(format!("conformance-{tag}-{}", SessionId::random()))
    }

    /// A new open session of `chunks` chunks, the last one a byte short.
    pub(super) fn open_session(owner: &Owner, chunks: u64, now: SystemTime) -> Session {
        let id = SessionId::random();
        let mut metadata = crate::session::Metadata::new();
        metadata.insert("filename", "conformance ü 🚀.bin");
        metadata.insert("empty", "");
        let file = FileMeta {
            name: Some(FileName::parse("conformance ü 🚀.bin").expect("a valid file name")),
            size: Some((chunks * CHUNK).saturating_sub(1)),
            content_type: Some("application/octet-stream".into()),
            sha256: Some(Sha256Digest::of(id.to_string().as_bytes())),
            metadata,
        };
        let upload = UploadHandle::new(format!("conformance-{id}"));
        machine::open(id, owner.clone(), file, CHUNK, upload, now, &TIMEOUTS)
    }

    /// The receipt the suite records for chunk `index`.
    pub(super) fn receipt(session: &Session, index: u64) -> PartReceipt {
        let range = session.chunk_range(index).expect("a chunk in range");
        PartReceipt {
            offset: range.start,
            len: range.end - range.start,
            sha256: Some(Sha256Digest::of(&index.to_le_bytes())),
            part: PartRef::new(format!("{:010}.part", index)),
        }
    }

    /// Records chunk `index` with the suite's receipt.
    pub(super) fn record(session: Session, index: u64, now: SystemTime) -> Session {
        let chunk = receipt(&session, index);
        machine::record_chunk(session, index, chunk, now, &TIMEOUTS)
            .expect("record_chunk")
            .0
    }

    /// Sessions of `owner` in every state the machine produces, from `t0`, each
    /// with its own id and a label.
    pub(super) fn in_every_state(owner: &Owner, t0: SystemTime) -> Vec<(&'static str, Session)> {
        let at = |secs| t0 + Duration::from_secs(secs);
        let partial = || record(record(open_session(owner, 3, t0), 2, at(1)), 0, at(1));
        let finalizing = || {
            let full = record(partial(), 1, at(2));
            match machine::begin_complete(full, at(3), &TIMEOUTS).expect("begin_complete") {
                Completion::Finalize(s) => s,
                other => panic!("a full open session must finalize, got {other:?}"),
            }
        };
        let completed = || {
            let s = finalizing();
            let blob = FinishedBlob {
                size: s.file.size.unwrap_or(0),
                sha256: Sha256Digest::of(s.id.to_string().as_bytes()),
            };
            machine::finish_complete(s, blob, at(5), &TIMEOUTS).expect("finish_complete")
        };
        let hashed = || {
            let s = partial();
            let first = receipt(&s, 0);
            let mut hasher = sha2::Sha256::default();
            sha2::Digest::update(&mut hasher, s.id.to_string().as_bytes());
            let next = HashedPrefix::new(first.range().end, &hasher);
            let (s, moved) = machine::advance_hashed(s, &HashedPrefix::default(), &[first], next);
            assert!(moved, "the suite's hashed prefix must fit its receipts");
            s
        };
        let aborted = || machine::abort(partial(), at(7), &TIMEOUTS).expect("abort");
        let expired = || machine::expire(partial(), ExpiryReason::Abandoned, at(8), &TIMEOUTS);
        let unclaimed = || machine::expire(completed(), ExpiryReason::Unclaimed, at(9), &TIMEOUTS);
        vec![
            ("an open session", open_session(owner, 3, t0)),
            (
                "an open session of an empty file",
                open_session(owner, 0, t0),
            ),
            ("an open session with chunks", partial()),
            ("an open session with a hashed prefix", hashed()),
            ("a finalizing session", finalizing()),
            (
                "a reopened session",
                machine::reopen(finalizing(), at(4), &TIMEOUTS).expect("reopen"),
            ),
            ("a completed session", completed()),
            (
                "a claimed session",
                machine::claim(completed(), at(6)).expect("claim"),
            ),
            ("an aborted session", aborted()),
            (
                "an aborted, purged session",
                machine::mark_purged(aborted()),
            ),
            ("an expired session", expired()),
            (
                "an expired, unclaimed, purged session",
                machine::mark_purged(unclaimed()),
            ),
        ]
    }
}
