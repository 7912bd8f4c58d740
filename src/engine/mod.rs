//! The engine: the async orchestration of store, sink, policy and clock
//! around the pure [`machine`].
//!
//! Every operation loads the session, asks the machine, streams bytes into
//! the sink where there are any, and records the outcome with a
//! compare-and-swap, loading again on conflict. Nothing is cached between
//! requests, so any number of engines in any number of processes can share
//! one store and one sink.
//!
//! - `chunked`: the session REST flow (initiate, chunks by index);
//! - `appended`: the appending dialects (create, append at the offset,
//!   declare the length, concatenate);
//! - `hashing`: the running whole-file SHA-256 (below);
//! - `lifecycle`: complete, abort, status, claim, read;
//! - `sweep`: expiry and cleanup.
//!
//! # The whole-file digest, hashed once
//! Each byte is hashed as it streams in: by its part's SHA-256 (the
//! receipt's, checked against a digest the client declared) and, when the
//! part starts exactly where the ledger's
//! [`HashedPrefix`](crate::ledger::HashedPrefix) ends, by the whole file's
//! hasher resumed from that prefix, both from the same buffers. Recording
//! the part advances the prefix in the same compare-and-swap, unless another
//! writer moved it meanwhile (then the result is dropped). Chunks that
//! arrived ahead of the prefix (out of order, or in parallel) are hashed from
//! the sink ([`BlobSink::read_part`]) by a background task once the prefix
//! reaches them: one per session per process at a time, a bounded round per
//! compare-and-swap, its failures only logged. A chunk replaced by other
//! bytes inside the prefix resets it to nothing.
//!
//! At complete, a prefix that covers the whole file gives the blob's digest
//! without reading the data: it is checked against the expected digest (a
//! mismatch reopens the session without asking the sink) and handed to
//! [`BlobSink::finalize`] as [`BlobDigest::Known`](crate::sink::BlobDigest).
//! Otherwise complete hashes the rest from the sink (one read of what the
//! prefix misses) when the sink can read parts back, or lets the sink
//! compute the digest while it assembles.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::clock::{Clock, SystemClock};
use crate::error::{BoxError, Error, Operation, SinkError, StoreError};
use crate::ledger::PartRef;
use crate::machine::{self, Timeouts};
use crate::meter::{Expected, LengthRule, MeterOutcome, Metered};
use crate::policy::{DefaultPolicy, Policy};
use crate::session::{Owner, Session, SessionId};
use crate::sink::{BlobSink, FinishedBlob, PartSpec, UploadHandle};
use crate::store::SessionStore;

mod appended;
mod chunked;
mod hashing;
mod lifecycle;
mod sweep;
mod types;

pub use types::*;

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// The chunk size the server prefers; each session gets this size unless
    /// the sink's capabilities or the file's size call for another.
    pub chunk_size: u64,
    /// Session timings.
    pub timeouts: Timeouts,
    /// How many times one operation retries a compare-and-swap conflict
    /// before answering [`Error::Contention`].
    pub max_conflict_retries: u32,
    /// How many due sessions one [`Engine::sweep`] handles at most.
    pub sweep_batch: usize,
}

impl Default for EngineConfig {
    /// 8 MiB chunks, default [`Timeouts`], 64 retries, batches of 1,000.
    fn default() -> Self {
        EngineConfig {
            chunk_size: 8 << 20,
            timeouts: Timeouts::default(),
            max_conflict_retries: 64,
            sweep_batch: 1000,
        }
    }
}

/// The upload engine. Cheap to share: wrap it in an [`Arc`].
pub struct Engine {
    store: Arc<dyn SessionStore>,
    sink: Arc<dyn BlobSink>,
    policy: Arc<dyn Policy>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// The sessions this process is catching up on, shared by the handles
    /// the background tasks hold.
    catch_ups: Arc<hashing::CatchUps>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("sink", &self.sink)
            .field("policy", &self.policy)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn SessionStore>,
    sink: Arc<dyn BlobSink>,
    policy: Arc<dyn Policy>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
}

impl EngineBuilder {
    /// Sets the policy (default: [`DefaultPolicy`]).
    pub fn policy(mut self, policy: impl Policy + 'static) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Sets the clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the whole configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the preferred chunk size.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.config.chunk_size = bytes.max(1);
        self
    }

    /// Sets the session timeout (inactivity before expiry).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.session_timeout = timeout;
        self
    }

    /// Sets how long the record of an aborted or expired session is kept
    /// (so late requests are told it is gone) before it is forgotten.
    pub fn tombstone_retention(mut self, retention: Duration) -> Self {
        self.config.timeouts.tombstone_retention = retention;
        self
    }

    /// Sets how long a completed upload stays temporary.
    pub fn temporary_max_age(mut self, age: Duration) -> Self {
        self.config.timeouts.temporary_max_age = age;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            store: self.store,
            sink: self.sink,
            policy: self.policy,
            clock: self.clock,
            config: self.config,
            catch_ups: Arc::default(),
        }
    }
}

/// Which caller an internal update acts for: a client (authorized against the
/// policy) or the engine itself (a follow-up step or the sweep).
#[derive(Clone, Copy)]
enum Actor<'a> {
    Client(&'a Owner, Operation),
    Engine,
}

impl Engine {
    /// Starts building an engine over a store and a sink.
    pub fn builder(
        store: impl SessionStore + 'static,
        sink: impl BlobSink + 'static,
    ) -> EngineBuilder {
        EngineBuilder {
            store: Arc::new(store),
            sink: Arc::new(sink),
            policy: Arc::new(DefaultPolicy::default()),
            clock: Arc::new(SystemClock),
            config: EngineConfig::default(),
        }
    }

    /// Another handle on this engine, for a background task: the same
    /// store, sink, policy, clock, configuration and catch-up registry.
    fn handle(&self) -> Engine {
        Engine {
            store: self.store.clone(),
            sink: self.sink.clone(),
            policy: self.policy.clone(),
            clock: self.clock.clone(),
            config: self.config,
            catch_ups: self.catch_ups.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The blob sink.
    pub fn sink(&self) -> &Arc<dyn BlobSink> {
        &self.sink
    }

    /// The largest file `owner` may upload: the policy's limit within the
    /// sink's, if either has one.
    pub fn max_file_size(&self, owner: &Owner) -> Option<u64> {
        let sink = Some(self.sink.capabilities().max_blob_size).filter(|m| *m < u64::MAX);
        match (self.policy.max_file_size(owner), sink) {
            (Some(p), Some(s)) => Some(p.min(s)),
            (p, s) => p.or(s),
        }
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Asks the policy whether `caller` may start uploading `file`, and
    /// enforces the caller's limit of open sessions.
    async fn admit(&self, caller: &Owner, file: &crate::session::FileMeta) -> Result<(), Error> {
        self.policy.check_new_upload(caller, file).await?;
        if let Some(limit) = self.policy.open_session_limit(caller)
            && self.store.count_active(caller, self.clock.now()).await? >= limit
        {
            return Err(Error::QuotaExceeded { limit });
        }
        Ok(())
    }

    /// Begins the sink's upload of `size` bytes (if known: the sink may
    /// reserve the space) for a fresh id, builds the session with `build`
    /// and stores it; on failure, purges what the sink began.
    async fn create_session(
        &self,
        size: Option<u64>,
        build: impl FnOnce(SessionId, UploadHandle, SystemTime) -> Session,
    ) -> Result<Session, Error> {
        let id = SessionId::random();
        let handle = self.sink.begin(&id, size).await?;
        let session = build(id, handle, self.clock.now());
        let version = match self.store.create(&session).await {
            Ok(version) => version,
            Err(e) => {
                self.purge_quietly(&session).await;
                return Err(e.into());
            }
        };
        // `admit` counted the owner's sessions before this one existed, and
        // concurrent creations by the same owner may all have passed it.
        // Counting again now that this one is stored settles the race: a
        // creation that sees more than the limit withdraws. The last of the
        // survivors to count saw every other survivor, so the limit holds (a
        // burst may be refused a little more than it had to be).
        if let Some(limit) = self.policy.open_session_limit(&session.owner) {
            let count = self
                .store
                .count_active(&session.owner, self.clock.now())
                .await;
            if count.is_ok_and(|n| n > limit) && self.store.delete(&id, version).await.is_ok() {
                self.purge_quietly(&session).await;
                return Err(Error::QuotaExceeded { limit });
            }
        }
        tracing::debug!(session = %id, size = ?session.file.size, kind = ?session.kind, "upload created");
        Ok(session)
    }

    /// Deletes the bytes of an aborted session and records that; if either
    /// step fails the sweep finishes the work later.
    async fn purge_and_mark(&self, session: &Session) {
        if let Err(e) = self.sink.purge(&session.upload).await {
            tracing::warn!(session = %session.id, error = %e, "purge failed; the sweep retries");
            return;
        }
        let marked = self
            .update(session.id, Actor::Engine, |s, _| {
                Ok((Some(machine::mark_purged(s)), ()))
            })
            .await;
        if let Err(e) = marked {
            tracing::debug!(session = %session.id, error = %e, "could not mark purged; the sweep retries");
        }
    }

    async fn purge_quietly(&self, session: &Session) {
        if let Err(e) = self.sink.purge(&session.upload).await {
            tracing::warn!(session = %session.id, error = %e, "could not purge an unused upload");
        }
    }

    /// After a lost race to record completion: the upload may have been
    /// completed by another finalizer with the same blob.
    async fn completed_elsewhere(&self, id: SessionId, blob: FinishedBlob) -> Option<Attachment> {
        let loaded = self.store.load(&id).await.ok()??;
        (loaded.session.state.blob() == Some(&blob)).then(|| Attachment::of(&loaded.session, blob))
    }

    /// The error for a session whose sink upload vanished under a request.
    async fn gone_or_state(&self, id: SessionId, operation: Operation) -> Error {
        match self.store.load(&id).await {
            Ok(Some(v)) => match machine::ensure_alive(&v.session, self.clock.now()) {
                Err(e) => e,
                Ok(()) => Error::InvalidState {
                    id,
                    state: v.session.state.kind(),
                    operation,
                },
            },
            Ok(None) => Error::SessionNotFound { id: id.to_string() },
            Err(e) => e.into(),
        }
    }

    async fn load(
        &self,
        id: SessionId,
        actor: Actor<'_>,
    ) -> Result<crate::store::Versioned, Error> {
        let loaded = self
            .store
            .load(&id)
            .await?
            .ok_or_else(|| Error::SessionNotFound { id: id.to_string() })?;
        if let Actor::Client(caller, operation) = actor {
            self.policy
                .authorize(caller, &loaded.session, operation)
                .await?;
        }
        Ok(loaded)
    }

    /// Load, apply `change`, compare-and-swap; again on conflict. `change`
    /// returns the session to store (or `None` to store nothing) and a value.
    async fn update<T>(
        &self,
        id: SessionId,
        actor: Actor<'_>,
        change: impl Fn(Session, SystemTime) -> Result<(Option<Session>, T), Error>,
    ) -> Result<(Session, T), Error> {
        for attempt in 0..=self.config.max_conflict_retries {
            let loaded = self.load(id, actor).await?;
            let unchanged = loaded.session.clone();
            let (next, value) = change(loaded.session, self.clock.now())?;
            let Some(next) = next else {
                return Ok((unchanged, value));
            };
            match self.store.update(&next, loaded.version).await {
                Ok(_) => return Ok((next, value)),
                Err(StoreError::Conflict) => backoff(attempt).await,
                Err(StoreError::NotFound) => {
                    return Err(Error::SessionNotFound { id: id.to_string() });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contention { id })
    }
}

/// Whether a failed [`Engine::update`] may nonetheless have been written:
/// a store failure other than a conflict (a reply lost after the commit, a
/// timeout) leaves the outcome unknown. The parts such a record may
/// reference are kept (the sink removes unreferenced parts at finalize and
/// purge); every other error proves nothing was recorded.
fn outcome_unknown(error: &Error) -> bool {
    matches!(error, Error::Store(_))
}

/// A short, jittered pause before retrying a conflicting update.
async fn backoff(attempt: u32) {
    let cap_us = 200u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=cap_us))).await;
}

/// A body stored by [`Engine::store_body`]: where, how long, its SHA-256 if
/// a declared checksum needed it, the error that cut it off if a cut-off body
/// was kept, and the running whole-file hasher continued with its bytes if
/// one was given.
struct StoredBody {
    part: PartRef,
    len: u64,
    sha256: Option<crate::digest::Sha256Digest>,
    cut_off: Option<BoxError>,
    running: Option<sha2::Sha256>,
}

/// How storing a body failed: the meter's verdict on the body, or the sink's.
enum BodyFailure {
    Meter(MeterOutcome),
    Sink(SinkError),
}

impl Engine {
    /// Streams `body` through the meter into the sink as one part of
    /// `upload`. The part is stored only if the body passed the meter.
    /// `running` (the whole file's hasher, resumed where the body starts) is
    /// fed the same bytes.
    #[allow(clippy::too_many_arguments)]
    async fn store_body<S, E>(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        body: S,
        rule: LengthRule,
        keep_cut_off: bool,
        expected: Expected,
        running: Option<sha2::Sha256>,
    ) -> Result<StoredBody, BodyFailure>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let (metered, report) = Metered::new(
            body.map_err(Into::into).boxed(),
            rule,
            keep_cut_off,
            expected,
            running,
        );
        let stored = self.sink.put_part(upload, spec, metered.boxed()).await;
        match (stored, report.take()) {
            (
                Ok(part),
                Some(MeterOutcome::Complete {
                    len,
                    sha256,
                    cut_off,
                    running,
                }),
            ) => Ok(StoredBody {
                part,
                len,
                sha256,
                cut_off,
                running,
            }),
            (Ok(part), _) => {
                let _ = self.sink.discard_part(upload, &part).await;
                Err(BodyFailure::Sink(SinkError::Backend(
                    "the sink did not read the whole body".into(),
                )))
            }
            (Err(e), None | Some(MeterOutcome::Complete { .. })) => Err(BodyFailure::Sink(e)),
            (Err(_), Some(outcome)) => Err(BodyFailure::Meter(outcome)),
        }
    }
}
