//! The engine: the async orchestration of store, sink, policy and clock
//! around the pure [`machine`].
//!
//! Every operation loads the session, asks the machine, streams bytes into
//! the sink where there are any, and records the outcome with a
//! compare-and-swap, loading again on conflict. Nothing is cached between
//! requests, so any number of engines in any number of processes can share
//! one store and one sink.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::clock::{Clock, SystemClock};
use crate::digest::Sha256Digest;
use crate::error::{BoxError, DigestScope, Error, Operation, SinkError, StoreError};
use crate::ledger::PartReceipt;
use crate::machine::{self, Completion, SweepAction, Timeouts};
use crate::meter::{MeterOutcome, Metered};
use crate::policy::{DefaultPolicy, Policy};
use crate::session::{FileMeta, FileName, Owner, Session, SessionId, StateKind};
use crate::sink::{BlobSink, ByteStream, FinishedBlob, PartSpec};
use crate::store::{SessionStore, Version};

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

/// A request to start an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The file's name; any path is removed.
    pub file_name: String,
    /// Its exact size in bytes.
    pub file_size: u64,
    /// Its media type, if known.
    pub content_type: Option<String>,
    /// Its expected SHA-256, verified at complete.
    pub sha256: Option<Sha256Digest>,
}

/// What initiate tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The new session's id.
    pub id: SessionId,
    /// The size of every chunk but the last.
    pub chunk_size: u64,
    /// How many chunks to send, indexed from 0.
    pub total_chunks: u64,
    /// When the session expires unless chunks keep arriving.
    pub expires_at: SystemTime,
}

/// Options of one chunk upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOptions {
    /// The length the request declared (`Content-Length`); a declared length
    /// other than the chunk's is refused before any byte is read.
    pub declared_len: Option<u64>,
    /// The chunk's SHA-256 as the client computed it; the chunk is discarded
    /// if the bytes received differ.
    pub sha256: Option<Sha256Digest>,
    /// The byte range (and file size) the request declared
    /// (`Content-Range`); refused before any byte is read unless it is the
    /// chunk's exact range.
    pub range: Option<DeclaredRange>,
}

/// A byte range a request declared for its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRange {
    /// The bytes, end exclusive.
    pub bytes: std::ops::Range<u64>,
    /// The whole file's size, if declared.
    pub total: Option<u64>,
}

/// The receipt of a stored chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReceipt {
    /// The chunk index.
    pub index: u64,
    /// Its first byte in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The SHA-256 of the bytes received.
    pub sha256: Sha256Digest,
    /// Whether it replaced an earlier upload of the same chunk.
    pub replaced: bool,
    /// The session's expiry, extended by this chunk.
    pub expires_at: SystemTime,
}

/// What a status read tells a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The session.
    pub id: SessionId,
    /// Its state.
    pub state: StateKind,
    /// The file as declared.
    pub file: FileMeta,
    /// The chunk size.
    pub chunk_size: u64,
    /// How many chunks there are.
    pub total_chunks: u64,
    /// The chunks stored, ascending.
    pub received_chunks: Vec<u64>,
    /// The chunks still to send, ascending.
    pub missing_chunks: Vec<u64>,
    /// How many bytes are stored.
    pub received_bytes: u64,
    /// When an open session expires.
    pub expires_at: SystemTime,
}

/// A completed upload: what the application gets at complete and claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The session it came from.
    pub id: SessionId,
    /// The file as declared.
    pub file: FileMeta,
    /// The stored blob.
    pub blob: FinishedBlob,
    /// `completed` (temporary) or `claimed` (permanent).
    pub state: StateKind,
    /// When a temporary upload is reaped unless claimed.
    pub reap_at: Option<SystemTime>,
}

impl Attachment {
    fn of(session: &Session, blob: FinishedBlob) -> Self {
        let reap_at = match session.state {
            crate::session::SessionState::Completed { reap_at, .. } => Some(reap_at),
            _ => None,
        };
        Attachment {
            id: session.id,
            file: session.file.clone(),
            blob,
            state: session.state.kind(),
            reap_at,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions marked expired (abandoned or unclaimed).
    pub expired: u64,
    /// Sessions whose bytes were deleted.
    pub purged: u64,
    /// Records deleted after their retention.
    pub forgotten: u64,
    /// Sessions that failed and will be retried by a later sweep.
    pub failed: u64,
}

/// The upload engine. Cheap to share: wrap it in an [`Arc`].
pub struct Engine {
    store: Arc<dyn SessionStore>,
    sink: Arc<dyn BlobSink>,
    policy: Arc<dyn Policy>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
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

    /// Now, by the injected clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Starts an upload: validates the file against the policy, picks the
    /// chunk size and the expiry, and creates the session.
    pub async fn initiate(&self, caller: &Owner, upload: NewUpload) -> Result<SessionInfo, Error> {
        let file = FileMeta {
            name: FileName::parse(&upload.file_name)?,
            size: upload.file_size,
            content_type: upload.content_type,
            sha256: upload.sha256,
        };
        self.policy.check_new_upload(caller, &file).await?;
        if let Some(limit) = self.policy.open_session_limit(caller)
            && self.store.count_active(caller, self.clock.now()).await? >= limit
        {
            return Err(Error::QuotaExceeded { limit });
        }
        let chunk_size =
            machine::plan_chunk_size(file.size, self.config.chunk_size, &self.sink.capabilities())?;
        let id = SessionId::random();
        let handle = self.sink.begin(&id, file.size).await?;
        let now = self.clock.now();
        let session = machine::open(
            id,
            caller.clone(),
            file,
            chunk_size,
            handle,
            now,
            &self.config.timeouts,
        );
        if let Err(e) = self.store.create(&session).await {
            self.purge_quietly(&session).await;
            return Err(e.into());
        }
        tracing::debug!(session = %id, size = session.file.size, chunk_size, "upload initiated");
        Ok(SessionInfo {
            id,
            chunk_size,
            total_chunks: session.total_chunks(),
            expires_at: session.expires_at,
        })
    }

    /// Streams chunk `index` into the sink and records it. The body must have
    /// exactly the chunk's length; it is hashed on the way through. Any chunk
    /// may be sent in any order, concurrently with others, and again (the
    /// latest recorded upload of a chunk wins).
    pub async fn upload_chunk<S, E>(
        &self,
        caller: &Owner,
        id: SessionId,
        index: u64,
        body: S,
        options: ChunkOptions,
    ) -> Result<ChunkReceipt, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::UploadChunk))
            .await?;
        let range = machine::chunk_target(&loaded.session, index, self.clock.now())?;
        let len = range.end - range.start;
        if let Some(declared) = options.declared_len.filter(|&d| d != len) {
            return Err(Error::ChunkLength {
                index,
                expected: len,
                actual: crate::error::BodyLength::Exactly(declared),
            });
        }
        if let Some(declared) = &options.range {
            let total = loaded.session.file.size;
            if declared.bytes != range || declared.total.is_some_and(|t| t != total) {
                return Err(Error::invalid_request(format!(
                    "the declared range {:?} of {:?} is not chunk {index}'s range {range:?} of {total}",
                    declared.bytes, declared.total
                )));
            }
        }
        let (metered, report) = Metered::new(body.map_err(Into::into).boxed(), len, options.sha256);
        let spec = PartSpec {
            index,
            offset: range.start,
            len,
        };
        let upload = loaded.session.upload.clone();
        let stored = self.sink.put_part(&upload, spec, metered.boxed()).await;
        let (part, sha256) = match (stored, report.take()) {
            (Ok(part), Some(MeterOutcome::Complete(digest))) => (part, digest),
            (Ok(part), _) => {
                let _ = self.sink.discard_part(&upload, &part).await;
                return Err(
                    SinkError::Backend("the sink did not read the whole body".into()).into(),
                );
            }
            (Err(SinkError::NotFound), None | Some(MeterOutcome::Complete(_))) => {
                return Err(self.gone_or_state(id, Operation::UploadChunk).await);
            }
            (Err(e), None | Some(MeterOutcome::Complete(_))) => return Err(e.into()),
            (Err(_), Some(outcome)) => return Err(chunk_error(outcome, index, len, &options)),
        };
        let receipt = PartReceipt {
            offset: range.start,
            len,
            sha256,
            part: part.clone(),
        };
        let timeouts = self.config.timeouts;
        let recorded = self
            .update(
                id,
                Actor::Client(caller, Operation::UploadChunk),
                |s, now| {
                    let (s, replaced) =
                        machine::record_chunk(s, index, receipt.clone(), now, &timeouts)?;
                    Ok((Some(s), replaced))
                },
            )
            .await;
        match recorded {
            Ok((session, replaced)) => {
                if let Some(old) = &replaced
                    && let Err(e) = self.sink.discard_part(&upload, &old.part).await
                {
                    tracing::warn!(session = %id, index, error = %e, "could not discard a superseded chunk");
                }
                Ok(ChunkReceipt {
                    index,
                    offset: range.start,
                    len,
                    sha256,
                    replaced: replaced.is_some(),
                    expires_at: session.expires_at,
                })
            }
            Err(e) => {
                let _ = self.sink.discard_part(&upload, &part).await;
                Err(e)
            }
        }
    }

    /// Completes an upload: checks every byte arrived, assembles the blob,
    /// verifies the expected whole-file SHA-256 if one was given, and leaves
    /// the upload *temporary* until [`claim`](Engine::claim)ed. Completing a
    /// completed upload returns the same attachment.
    pub async fn complete(&self, caller: &Owner, id: SessionId) -> Result<Attachment, Error> {
        let timeouts = self.config.timeouts;
        let (session, done) = self
            .update(id, Actor::Client(caller, Operation::Complete), |s, now| {
                Ok(match machine::begin_complete(s, now, &timeouts)? {
                    Completion::Finalize(s) => (Some(s), None),
                    Completion::AlreadyCompleted(blob) => (None, Some(blob)),
                })
            })
            .await?;
        if let Some(blob) = done {
            return Ok(Attachment::of(&session, blob));
        }
        let parts: Vec<PartReceipt> = session
            .state
            .ledger()
            .map(|l| l.parts().cloned().collect())
            .unwrap_or_default();
        let assembled = self
            .sink
            .finalize(&session.upload, &parts, session.file.sha256)
            .await;
        match assembled {
            Ok(blob) => {
                let finished = self
                    .update(id, Actor::Engine, |s, now| {
                        Ok((Some(machine::finish_complete(s, blob, now, &timeouts)?), ()))
                    })
                    .await;
                match finished {
                    Ok((session, ())) => {
                        tracing::info!(session = %id, size = blob.size, sha256 = %blob.sha256, "upload completed");
                        Ok(Attachment::of(&session, blob))
                    }
                    Err(e) => self.completed_elsewhere(id, blob).await.ok_or(e),
                }
            }
            Err(failure) => {
                let reopened = self
                    .update(id, Actor::Engine, |s, now| {
                        Ok((Some(machine::reopen(s, now, &timeouts)?), ()))
                    })
                    .await;
                if let Err(e) = reopened {
                    tracing::warn!(session = %id, error = %e, "could not reopen after a failed finalize");
                }
                Err(match failure {
                    SinkError::DigestMismatch { expected, actual } => Error::ChecksumMismatch {
                        scope: DigestScope::File,
                        expected,
                        actual,
                    },
                    other => other.into(),
                })
            }
        }
    }

    /// Aborts an open upload and deletes every byte it holds.
    pub async fn abort(&self, caller: &Owner, id: SessionId) -> Result<(), Error> {
        let timeouts = self.config.timeouts;
        let (session, ()) = self
            .update(id, Actor::Client(caller, Operation::Abort), |s, now| {
                Ok((Some(machine::abort(s, now, &timeouts)?), ()))
            })
            .await?;
        self.purge_and_mark(&session).await;
        tracing::debug!(session = %id, "upload aborted");
        Ok(())
    }

    /// What a client needs to resume: state, chunks received, expiry.
    pub async fn status(&self, caller: &Owner, id: SessionId) -> Result<SessionStatus, Error> {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::Status))
            .await?;
        let s = loaded.session;
        machine::ensure_alive(&s, self.clock.now())?;
        Ok(SessionStatus {
            id: s.id,
            state: s.state.kind(),
            chunk_size: s.chunk_size,
            total_chunks: s.total_chunks(),
            received_chunks: machine::received_chunks(&s),
            missing_chunks: machine::missing_chunks(&s),
            received_bytes: match (s.state.ledger(), s.state.blob()) {
                (Some(l), _) => l.received_bytes(),
                (None, Some(b)) => b.size,
                (None, None) => 0,
            },
            expires_at: s.expires_at,
            file: s.file,
        })
    }

    /// Claims a completed upload for the application: it becomes permanent
    /// and the sweep no longer reaps it.
    pub async fn claim(&self, caller: &Owner, id: SessionId) -> Result<Attachment, Error> {
        let (session, ()) = self
            .update(id, Actor::Client(caller, Operation::Claim), |s, now| {
                Ok((Some(machine::claim(s, now)?), ()))
            })
            .await?;
        let blob = machine::readable_blob(&session, self.clock.now())?;
        Ok(Attachment::of(&session, blob))
    }

    /// Streams back the blob of a completed or claimed upload.
    pub async fn read(&self, caller: &Owner, id: SessionId) -> Result<ByteStream, Error> {
        let loaded = self
            .load(id, Actor::Client(caller, Operation::Read))
            .await?;
        machine::readable_blob(&loaded.session, self.clock.now())?;
        Ok(self.sink.read(&loaded.session.upload).await?)
    }

    /// Does the sweep's work that is due now: expires abandoned sessions and
    /// unclaimed temporary uploads, deletes every byte they held, and forgets
    /// old records. Safe to run from every instance at once.
    pub async fn sweep(&self) -> Result<SweepReport, Error> {
        let now = self.clock.now();
        let due = self.store.due(now, self.config.sweep_batch).await?;
        let mut report = SweepReport::default();
        for id in due {
            if let Err(e) = self.sweep_one(id, now, &mut report).await {
                report.failed += 1;
                tracing::warn!(session = %id, error = %e, "sweep failed; a later sweep retries");
            }
        }
        if report != SweepReport::default() {
            tracing::info!(?report, "sweep");
        }
        Ok(report)
    }

    /// Runs [`sweep`](Engine::sweep) every `interval` on the current tokio
    /// runtime until the returned handle is aborted or dropped with the
    /// runtime.
    pub fn spawn_sweeper(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        })
    }

    async fn sweep_one(
        &self,
        id: SessionId,
        now: SystemTime,
        report: &mut SweepReport,
    ) -> Result<(), Error> {
        let timeouts = self.config.timeouts;
        for _ in 0..=self.config.max_conflict_retries {
            let Some(loaded) = self.store.load(&id).await? else {
                return Ok(());
            };
            let result = match machine::sweep_action(&loaded.session, now) {
                SweepAction::Keep => return Ok(()),
                SweepAction::Expire(reason) => {
                    let expired = machine::expire(loaded.session, reason, now, &timeouts);
                    match self.store.update(&expired, loaded.version).await {
                        Ok(version) => {
                            report.expired += 1;
                            tracing::debug!(session = %id, ?reason, "session expired");
                            self.purge_and_count(expired, version, report).await
                        }
                        Err(e) => Err(e),
                    }
                }
                SweepAction::Purge => {
                    self.purge_and_count(loaded.session, loaded.version, report)
                        .await
                }
                SweepAction::Forget => {
                    let r = self.store.delete(&id, loaded.version).await;
                    if r.is_ok() {
                        report.forgotten += 1;
                    }
                    r
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contention { id })
    }

    async fn purge_and_count(
        &self,
        session: Session,
        version: Version,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        if let Err(e) = self.sink.purge(&session.upload).await {
            tracing::warn!(session = %session.id, error = %e, "purge failed; a later sweep retries");
            report.failed += 1;
            return Ok(());
        }
        report.purged += 1;
        self.store
            .update(&machine::mark_purged(session), version)
            .await
            .map(|_| ())
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

/// A short, jittered pause before retrying a conflicting update.
async fn backoff(attempt: u32) {
    let cap_us = 200u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=cap_us))).await;
}

fn chunk_error(outcome: MeterOutcome, index: u64, len: u64, options: &ChunkOptions) -> Error {
    match outcome {
        MeterOutcome::Failed(source) => Error::Body { source },
        MeterOutcome::DigestMismatch(actual) => Error::ChecksumMismatch {
            scope: DigestScope::Chunk(index),
            expected: options.sha256.unwrap_or(actual),
            actual,
        },
        other => Error::ChunkLength {
            index,
            expected: len,
            actual: other.body_length(len),
        },
    }
}
