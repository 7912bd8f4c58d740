//! Where sessions live: the [`SessionStore`] trait and its implementations.
//!
//! A store keeps one record per session and updates it only by
//! compare-and-swap on a [`Version`], so that any number of server processes
//! can share it: two concurrent updates of one session never both succeed.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::session::{Owner, Session, SessionId};

pub(crate) mod fs;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use fs::FsStore;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// The version of a stored record, for compare-and-swap. Every successful
/// write yields a new version; stores compare versions for equality only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// The version of a freshly created record.
    pub const FIRST: Version = Version(1);

    /// A version from a store's own counter.
    pub const fn new(v: u64) -> Self {
        Version(v)
    }

    /// The counter.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version that follows this one.
    pub const fn next(self) -> Version {
        Version(self.0.wrapping_add(1))
    }
}

/// A session and the version it was loaded at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The session.
    pub session: Session,
    /// Its version, to pass to [`SessionStore::update`].
    pub version: Version,
}

/// Storage for session records.
///
/// # Contract
/// Implementations MUST:
/// - make `update` and `delete` atomic compare-and-swaps: they succeed only if
///   the stored version equals `expected`, else return
///   [`StoreError::Conflict`] (or [`StoreError::NotFound`] if the record is
///   gone) and change nothing;
/// - make `create` fail with [`StoreError::AlreadyExists`] if the id exists;
/// - make a successful write visible to every later `load`, from any
///   process sharing the store, and durable before returning;
/// - make `due` return (up to `limit`) ids of sessions whose
///   [`Session::due_at`] is at or before `now`, and never miss one that stays
///   due across calls;
/// - make `count_active` count the owner's sessions for which
///   [`Session::is_active`] holds at `now`.
///
/// `due` MAY return ids that are no longer due (the sweep re-checks), and
/// `count_active` MAY be momentarily stale under concurrent writes.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Stores a new session.
    async fn create(&self, session: &Session) -> Result<Version, StoreError>;

    /// Loads a session, or `None` if there is none with this id.
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError>;

    /// Replaces the record if its version is still `expected`.
    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError>;

    /// Deletes the record if its version is still `expected`.
    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError>;

    /// Ids of sessions the sweep has work on at `now`.
    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError>;

    /// How many sessions of the owner are open or finalizing, and not past
    /// their expiry, at `now`.
    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError>;
}

#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        (**self).create(session).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        (**self).load(id).await
    }
    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        (**self).update(session, expected).await
    }
    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        (**self).delete(id, expected).await
    }
    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        (**self).due(now, limit).await
    }
    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        (**self).count_active(owner, now).await
    }
}

/// Compile-time check that the trait stays object safe.
fn _object_safe(_: &dyn SessionStore) {}
