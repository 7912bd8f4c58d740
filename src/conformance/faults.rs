//! Fault injection: [`FaultyStore`] and [`FaultySink`] wrap a real
//! [`SessionStore`] or [`BlobSink`], forward every call to it, and fail,
//! delay or hold the calls a test scripts.
//!
//! A script is a queue of rules per operation, consumed call by call, in the
//! order they were added; there is no randomness, so a test that scripts a
//! fault knows exactly which call gets it:
//!
//! - [`fail_next`](FaultyStore::fail_next): the next calls fail with a
//!   fault, and the inner backend never sees them;
//! - [`lose_reply_next`](FaultyStore::lose_reply_next): the next calls reach
//!   the inner backend and take effect, but the caller gets a fault (a reply
//!   lost on its way back, a timeout after the commit);
//! - [`skip_next`](FaultyStore::skip_next): the next calls pass untouched,
//!   before the rules queued after this one;
//! - [`delay`](FaultyStore::delay): every call of an operation waits first;
//! - [`hold_next`](FaultyStore::hold_next): the next call waits until the
//!   test [`release`](Hold::release)s it, to order events without timing;
//! - for the sink's bodies, [`fail_put_part_after_bytes`]
//!   (a short write: the inner sink receives the first bytes, then the body
//!   fails under it), [`disk_full_after_bytes`] and
//!   [`short_part_after_bytes`] (a sink that stops reading early and
//!   acknowledges a short part).
//!
//! [`calls`](FaultyStore::calls) and [`injected`](FaultyStore::injected)
//! count what each operation saw; the sink also keeps the digest argument of
//! every `finalize` ([`finalize_digests`](FaultySink::finalize_digests)) and
//! the receipt of every `read_part` ([`parts_read`](FaultySink::parts_read)). Both wrappers are meant to be shared with
//! the engine through an [`Arc`], which implements the traits:
//! ```
//! use std::sync::Arc;
//!
//! use resumable::Engine;
//! use resumable::conformance::faults::{FaultySink, FaultyStore, StoreFault, StoreOp};
//! use resumable::sink::MemorySink;
//! use resumable::store::MemoryStore;
//!
//! let store = Arc::new(FaultyStore::new(MemoryStore::new()));
//! let sink = Arc::new(FaultySink::new(MemorySink::new()));
//! let engine = Engine::builder(store.clone(), sink.clone()).build();
//! // The next chunk's record is refused as if the store were down.
//! store.fail_next(StoreOp::Update, StoreFault::Unavailable, 1);
//! sink.disk_full_after_bytes(512);
//! # drop(engine);
//! ```
//!
//! [`fail_put_part_after_bytes`]: FaultySink::fail_put_part_after_bytes
//! [`disk_full_after_bytes`]: FaultySink::disk_full_after_bytes
//! [`short_part_after_bytes`]: FaultySink::short_part_after_bytes

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use crate::digest::Sha256Digest;
use crate::error::{SinkError, StoreError};
use crate::ledger::{PartReceipt, PartRef};
use crate::session::{Owner, Session, SessionId};
use crate::sink::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, SinkCapabilities, UploadHandle,
};
use crate::store::{SessionStore, Version, Versioned};

/// An operation of [`SessionStore`], as a script names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// [`SessionStore::create`].
    Create,
    /// [`SessionStore::load`].
    Load,
    /// [`SessionStore::update`].
    Update,
    /// [`SessionStore::delete`].
    Delete,
    /// [`SessionStore::due`].
    Due,
    /// [`SessionStore::count_active`].
    CountActive,
}

/// An operation of [`BlobSink`], as a script names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkOp {
    /// [`BlobSink::begin`].
    Begin,
    /// [`BlobSink::put_part`].
    PutPart,
    /// [`BlobSink::discard_part`].
    DiscardPart,
    /// [`BlobSink::read_part`].
    ReadPart,
    /// [`BlobSink::finalize`].
    Finalize,
    /// [`BlobSink::concatenate`].
    Concatenate,
    /// [`BlobSink::read`].
    Read,
    /// [`BlobSink::purge`].
    Purge,
}

/// The [`StoreError`] a scripted store fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFault {
    /// [`StoreError::Conflict`]: a compare-and-swap lost to another writer.
    Conflict,
    /// [`StoreError::AlreadyExists`].
    AlreadyExists,
    /// [`StoreError::NotFound`].
    NotFound,
    /// [`StoreError::Corrupt`]: a record that does not decode.
    Corrupt,
    /// [`StoreError::Unavailable`]: the backend is unreachable for now.
    Unavailable,
    /// [`StoreError::Backend`]: any other backend failure.
    Backend,
}

impl StoreFault {
    /// A fresh error of this kind, its message saying it was injected.
    pub fn error(self) -> StoreError {
        match self {
            StoreFault::Conflict => StoreError::Conflict,
            StoreFault::AlreadyExists => StoreError::AlreadyExists,
            StoreFault::NotFound => StoreError::NotFound,
            StoreFault::Corrupt => StoreError::Corrupt("injected fault: corrupt record".into()),
            StoreFault::Unavailable => {
                StoreError::Unavailable("injected fault: store unavailable".into())
            }
            StoreFault::Backend => StoreError::Backend("injected fault: store failure".into()),
        }
    }
}

/// The [`SinkError`] a scripted sink fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkFault {
    /// [`SinkError::NotFound`]: the upload is not in the sink.
    NotFound,
    /// [`SinkError::Body`]: the part's body failed.
    Body,
    /// [`SinkError::StorageFull`]: no space left.
    StorageFull,
    /// [`SinkError::Unavailable`]: the backend is unreachable for now.
    Unavailable,
    /// [`SinkError::Io`]: a local I/O failure.
    Io,
    /// [`SinkError::Backend`]: any other backend failure.
    Backend,
}

impl SinkFault {
    /// A fresh error of this kind, its message saying it was injected.
    pub fn error(self) -> SinkError {
        match self {
            SinkFault::NotFound => SinkError::NotFound,
            SinkFault::Body => SinkError::Body(io::Error::other("injected fault: body failed")),
            SinkFault::StorageFull => SinkError::StorageFull,
            SinkFault::Unavailable => {
                SinkError::Unavailable("injected fault: sink unavailable".into())
            }
            SinkFault::Io => SinkError::Io(io::Error::other("injected fault: I/O failure")),
            SinkFault::Backend => SinkError::Backend("injected fault: sink failure".into()),
        }
    }

    /// The I/O error the inner sink's body yields when a short write of
    /// this kind cuts it.
    fn body_error(self) -> io::Error {
        match self {
            SinkFault::StorageFull => {
                io::Error::new(io::ErrorKind::StorageFull, "injected fault: no space left")
            }
            _ => io::Error::other("injected fault: the write failed"),
        }
    }
}

/// A call held at its start by [`FaultyStore::hold_next`] or
/// [`FaultySink::hold_next`] until the test releases it.
///
/// Dropping the `Hold` releases the call, so a failing test never leaves it
/// waiting.
#[derive(Debug)]
pub struct Hold {
    state: Arc<HoldState>,
}

#[derive(Debug)]
struct HoldState {
    reached: watch::Sender<bool>,
    released: watch::Sender<bool>,
}

impl HoldState {
    fn new() -> Self {
        HoldState {
            reached: watch::Sender::new(false),
            released: watch::Sender::new(false),
        }
    }

    /// Signals the arrival of the held call and waits for the release.
    async fn wait(&self) {
        self.reached.send_replace(true);
        let mut released = self.released.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = released.wait_for(|r| *r).await;
    }
}

impl Hold {
    /// Waits until the held call has arrived (and is waiting). Returns at
    /// once if it already has.
    pub async fn reached(&self) {
        let mut reached = self.state.reached.subscribe();
        let _ = reached.wait_for(|r| *r).await;
    }

    /// Whether the held call has arrived.
    pub fn is_reached(&self) -> bool {
        *self.state.reached.borrow()
    }

    /// Lets the held call proceed (at once if it has not arrived yet).
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// One queued rule: the next `times` calls of `op` get `action`.
#[derive(Debug)]
struct Rule<Op, A> {
    op: Op,
    times: u64,
    action: A,
}

/// What a store call does, by rule.
#[derive(Debug, Clone, Copy)]
enum StoreAction {
    Pass,
    Fail(StoreFault),
    LoseReply(StoreFault),
}

/// What a sink call does, by rule.
#[derive(Debug, Clone, Copy)]
enum SinkAction {
    Pass,
    Fail(SinkFault),
    LoseReply(SinkFault),
    /// `put_part` only: the inner sink receives the body's first `after`
    /// bytes, then the body fails with `fault` (or, if `None`, ends).
    Cut {
        after: u64,
        fault: Option<SinkFault>,
    },
}

/// What a call must do before its action: wait for a hold, then sleep.
struct Step<A> {
    hold: Option<Arc<HoldState>>,
    delay: Option<Duration>,
    action: Option<A>,
}

impl<A> Step<A> {
    async fn wait(&self) {
        if let Some(hold) = &self.hold {
            hold.wait().await;
        }
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
    }
}

/// The script and the counters of one wrapper.
#[derive(Debug)]
struct Script<Op, A> {
    rules: Vec<Rule<Op, A>>,
    delays: HashMap<Op, Duration>,
    holds: Vec<(Op, Arc<HoldState>)>,
    calls: HashMap<Op, u64>,
    injected: HashMap<Op, u64>,
}

impl<Op, A> Default for Script<Op, A> {
    fn default() -> Self {
        Script {
            rules: Vec::new(),
            delays: HashMap::new(),
            holds: Vec::new(),
            calls: HashMap::new(),
            injected: HashMap::new(),
        }
    }
}

impl<Op: Copy + Eq + Hash, A: Copy> Script<Op, A> {
    /// Delays every later call of `op` by `delay`; a zero delay removes it.
    fn set_delay(&mut self, op: Op, delay: Duration) {
        if delay.is_zero() {
            self.delays.remove(&op);
        } else {
            self.delays.insert(op, delay);
        }
    }

    /// How many calls of `op` arrived.
    fn calls_of(&self, op: Op) -> u64 {
        self.calls.get(&op).copied().unwrap_or(0)
    }

    /// How many calls of `op` were answered with an injected fault.
    fn injected_of(&self, op: Op) -> u64 {
        self.injected.get(&op).copied().unwrap_or(0)
    }

    fn push(&mut self, op: Op, action: A, times: u64) {
        if times > 0 {
            self.rules.push(Rule { op, times, action });
        }
    }

    fn hold(&mut self, op: Op) -> Hold {
        let state = Arc::new(HoldState::new());
        self.holds.push((op, state.clone()));
        Hold { state }
    }

    /// Counts a call of `op` and takes what the script has for it.
    fn step(&mut self, op: Op) -> Step<A> {
        *self.calls.entry(op).or_default() += 1;
        let hold = self
            .holds
            .iter()
            .position(|(o, _)| *o == op)
            .map(|i| self.holds.remove(i).1);
        let delay = self.delays.get(&op).copied();
        let action = self.rules.iter().position(|r| r.op == op).map(|i| {
            let rule = &mut self.rules[i];
            rule.times -= 1;
            let action = rule.action;
            if rule.times == 0 {
                self.rules.remove(i);
            }
            action
        });
        Step {
            hold,
            delay,
            action,
        }
    }

    fn count_injected(&mut self, op: Op) {
        *self.injected.entry(op).or_default() += 1;
    }

    fn pending(&self, op: Op) -> u64 {
        self.rules
            .iter()
            .filter(|r| r.op == op)
            .map(|r| r.times)
            .sum()
    }

    fn clear(&mut self) {
        self.rules.clear();
        self.delays.clear();
        for (_, hold) in self.holds.drain(..) {
            hold.released.send_replace(true);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`SessionStore`] that forwards to `S` and injects the faults its script
/// asks for. See the [module documentation](self).
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    script: Mutex<Script<StoreOp, StoreAction>>,
}

impl<S: SessionStore> FaultyStore<S> {
    /// Wraps `inner` with an empty script: every call is forwarded.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            script: Mutex::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Fails the next `times` calls of `op` (after the rules already queued
    /// for `op`) with `fault`, without calling the inner store.
    pub fn fail_next(&self, op: StoreOp, fault: StoreFault, times: u64) -> &Self {
        lock(&self.script).push(op, StoreAction::Fail(fault), times);
        self
    }

    /// Forwards the next `times` calls of `op` (after the rules already
    /// queued for `op`) to the inner store, where they take effect, and then
    /// answers each that succeeded with `fault`: a reply lost after the
    /// commit. A call the inner store failed keeps its own error.
    pub fn lose_reply_next(&self, op: StoreOp, fault: StoreFault, times: u64) -> &Self {
        lock(&self.script).push(op, StoreAction::LoseReply(fault), times);
        self
    }

    /// Lets the next `calls` calls of `op` (after the rules already queued
    /// for `op`) through untouched, so that the rules queued after this one
    /// hit a later call.
    pub fn skip_next(&self, op: StoreOp, calls: u64) -> &Self {
        lock(&self.script).push(op, StoreAction::Pass, calls);
        self
    }

    /// Delays every later call of `op` by `delay` before it is forwarded (or
    /// failed), until [`clear`](Self::clear)ed; a zero delay removes it.
    pub fn delay(&self, op: StoreOp, delay: Duration) -> &Self {
        lock(&self.script).set_delay(op, delay);
        self
    }

    /// Holds the next call of `op` at its start, before any delay or fault,
    /// until the returned [`Hold`] is released or dropped.
    pub fn hold_next(&self, op: StoreOp) -> Hold {
        lock(&self.script).hold(op)
    }

    /// Removes every queued rule and delay and releases every pending hold.
    /// The counters are kept.
    pub fn clear(&self) {
        lock(&self.script).clear();
    }

    /// How many calls of `op` this wrapper received, faulty or not.
    pub fn calls(&self, op: StoreOp) -> u64 {
        lock(&self.script).calls_of(op)
    }

    /// How many calls of `op` were answered with an injected fault.
    pub fn injected(&self, op: StoreOp) -> u64 {
        lock(&self.script).injected_of(op)
    }

    /// How many calls of `op` the queued rules still apply to.
    pub fn pending(&self, op: StoreOp) -> u64 {
        lock(&self.script).pending(op)
    }

    /// Runs one call of `op` under the script; `forward` is the inner call.
    async fn call<T, F>(&self, op: StoreOp, forward: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send,
    {
        let step = lock(&self.script).step(op);
        step.wait().await;
        match step.action {
            Some(StoreAction::Fail(fault)) => {
                lock(&self.script).count_injected(op);
                Err(fault.error())
            }
            Some(StoreAction::LoseReply(fault)) => {
                // The call took effect; only its reply is lost.
                forward.await?;
                lock(&self.script).count_injected(op);
                Err(fault.error())
            }
            Some(StoreAction::Pass) | None => forward.await,
        }
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for FaultyStore<S> {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        self.call(StoreOp::Create, self.inner.create(session)).await
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        self.call(StoreOp::Load, self.inner.load(id)).await
    }

    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        self.call(StoreOp::Update, self.inner.update(session, expected))
            .await
    }

    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        self.call(StoreOp::Delete, self.inner.delete(id, expected))
            .await
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.call(StoreOp::Due, self.inner.due(now, limit)).await
    }

    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        self.call(StoreOp::CountActive, self.inner.count_active(owner, now))
            .await
    }
}

/// A [`BlobSink`] that forwards to `K` and injects the faults its script
/// asks for. See the [module documentation](self).
#[derive(Debug)]
pub struct FaultySink<K> {
    inner: K,
    script: Mutex<Script<SinkOp, SinkAction>>,
    seen: Mutex<Seen>,
}

/// The arguments of the calls a test may want to look at.
#[derive(Debug, Default)]
struct Seen {
    digests: Vec<BlobDigest>,
    parts_read: Vec<PartReceipt>,
}

impl<K: BlobSink> FaultySink<K> {
    /// Wraps `inner` with an empty script: every call is forwarded.
    pub fn new(inner: K) -> Self {
        FaultySink {
            inner,
            script: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// Fails the next `times` calls of `op` (after the rules already queued
    /// for `op`) with `fault`, without calling the inner sink. A failed
    /// `put_part` does not read its body.
    pub fn fail_next(&self, op: SinkOp, fault: SinkFault, times: u64) -> &Self {
        lock(&self.script).push(op, SinkAction::Fail(fault), times);
        self
    }

    /// Forwards the next `times` calls of `op` (after the rules already
    /// queued for `op`) to the inner sink, where they take effect (a part is
    /// stored, a blob published, an upload purged), and then answers each
    /// that succeeded with `fault`. A call the inner sink failed keeps its
    /// own error.
    pub fn lose_reply_next(&self, op: SinkOp, fault: SinkFault, times: u64) -> &Self {
        lock(&self.script).push(op, SinkAction::LoseReply(fault), times);
        self
    }

    /// Lets the next `calls` calls of `op` (after the rules already queued
    /// for `op`) through untouched, so that the rules queued after this one
    /// hit a later call.
    pub fn skip_next(&self, op: SinkOp, calls: u64) -> &Self {
        lock(&self.script).push(op, SinkAction::Pass, calls);
        self
    }

    /// A short write at the next `put_part` (after the rules already queued
    /// for it): the inner sink receives the body's first `bytes` bytes, then
    /// the body fails under it, and the call answers `fault`, whatever the
    /// inner sink did with the bytes (a sink that keeps a half-written part
    /// keeps it). A body of at most `bytes` bytes passes untouched.
    pub fn fail_put_part_after_bytes(&self, bytes: u64, fault: SinkFault) -> &Self {
        let cut = SinkAction::Cut {
            after: bytes,
            fault: Some(fault),
        };
        lock(&self.script).push(SinkOp::PutPart, cut, 1);
        self
    }

    /// The disk fills up during the next `put_part`: a short write of
    /// `bytes` bytes answered with [`SinkError::StorageFull`].
    pub fn disk_full_after_bytes(&self, bytes: u64) -> &Self {
        self.fail_put_part_after_bytes(bytes, SinkFault::StorageFull)
    }

    /// The next `put_part` (after the rules already queued for it) stops
    /// reading its body after `bytes` bytes: the inner sink sees the body end
    /// there, stores a short part and acknowledges it, as a sink that lost
    /// the rest of a part would. A body of at most `bytes` bytes passes
    /// untouched.
    pub fn short_part_after_bytes(&self, bytes: u64) -> &Self {
        let cut = SinkAction::Cut {
            after: bytes,
            fault: None,
        };
        lock(&self.script).push(SinkOp::PutPart, cut, 1);
        self
    }

    /// Fails the next `finalize` with `fault`; nothing is assembled.
    pub fn fail_finalize(&self, fault: SinkFault) -> &Self {
        self.fail_next(SinkOp::Finalize, fault, 1)
    }

    /// Fails the next `purge` with `fault`; nothing is deleted.
    pub fn fail_purge(&self, fault: SinkFault) -> &Self {
        self.fail_next(SinkOp::Purge, fault, 1)
    }

    /// Delays every later call of `op` by `delay` before it is forwarded (or
    /// failed), until [`clear`](Self::clear)ed; a zero delay removes it.
    pub fn delay(&self, op: SinkOp, delay: Duration) -> &Self {
        lock(&self.script).set_delay(op, delay);
        self
    }

    /// Holds the next call of `op` at its start, before any delay or fault
    /// and before a `put_part` reads its body, until the returned [`Hold`]
    /// is released or dropped.
    pub fn hold_next(&self, op: SinkOp) -> Hold {
        lock(&self.script).hold(op)
    }

    /// Removes every queued rule and delay and releases every pending hold.
    /// The counters are kept.
    pub fn clear(&self) {
        lock(&self.script).clear();
    }

    /// How many calls of `op` this wrapper received, faulty or not.
    pub fn calls(&self, op: SinkOp) -> u64 {
        lock(&self.script).calls_of(op)
    }

    /// How many calls of `op` were answered with an injected fault, or (a
    /// short part) had their body cut.
    pub fn injected(&self, op: SinkOp) -> u64 {
        lock(&self.script).injected_of(op)
    }

    /// How many calls of `op` the queued rules still apply to.
    pub fn pending(&self, op: SinkOp) -> u64 {
        lock(&self.script).pending(op)
    }

    /// The `digest` argument of every `finalize` call so far, in order.
    pub fn finalize_digests(&self) -> Vec<BlobDigest> {
        lock(&self.seen).digests.clone()
    }

    /// The receipt of every `read_part` call so far, in order.
    pub fn parts_read(&self) -> Vec<PartReceipt> {
        lock(&self.seen).parts_read.clone()
    }

    /// Runs one call of `op` under the script; `forward` is the inner call.
    async fn call<T, F>(&self, op: SinkOp, forward: F) -> Result<T, SinkError>
    where
        F: Future<Output = Result<T, SinkError>> + Send,
    {
        let step = lock(&self.script).step(op);
        step.wait().await;
        self.apply(op, step.action, forward).await
    }

    async fn apply<T, F>(
        &self,
        op: SinkOp,
        action: Option<SinkAction>,
        forward: F,
    ) -> Result<T, SinkError>
    where
        F: Future<Output = Result<T, SinkError>> + Send,
    {
        match action {
            Some(SinkAction::Fail(fault)) => {
                lock(&self.script).count_injected(op);
                Err(fault.error())
            }
            Some(SinkAction::LoseReply(fault)) => {
                // The call took effect; only its reply is lost.
                forward.await?;
                lock(&self.script).count_injected(op);
                Err(fault.error())
            }
            Some(SinkAction::Pass | SinkAction::Cut { .. }) | None => forward.await,
        }
    }
}

#[async_trait]
impl<K: BlobSink> BlobSink for FaultySink<K> {
    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }

    async fn begin(&self, id: &SessionId, size: Option<u64>) -> Result<UploadHandle, SinkError> {
        self.call(SinkOp::Begin, self.inner.begin(id, size)).await
    }

    async fn put_part(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        let op = SinkOp::PutPart;
        let step = lock(&self.script).step(op);
        step.wait().await;
        let Some(SinkAction::Cut { after, fault }) = step.action else {
            let forward = self.inner.put_part(upload, spec, body);
            return self.apply(op, step.action, forward).await;
        };
        let cut = Arc::new(AtomicBool::new(false));
        let body = Cut {
            inner: body,
            left: after,
            fault,
            cut: cut.clone(),
            state: CutState::Passing,
        };
        let result = self.inner.put_part(upload, spec, body.boxed()).await;
        if !cut.load(Ordering::SeqCst) {
            return result;
        }
        lock(&self.script).count_injected(op);
        match fault {
            Some(fault) => Err(fault.error()),
            None => result,
        }
    }

    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        self.call(SinkOp::DiscardPart, self.inner.discard_part(upload, part))
            .await
    }

    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        lock(&self.seen).parts_read.push(part.clone());
        let forward = self.inner.read_part(upload, part);
        self.call(SinkOp::ReadPart, forward).await
    }

    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        lock(&self.seen).digests.push(digest);
        let forward = self.inner.finalize(upload, parts, digest);
        self.call(SinkOp::Finalize, forward).await
    }

    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError> {
        let forward = self.inner.concatenate(upload, sources, expected);
        self.call(SinkOp::Concatenate, forward).await
    }

    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        self.call(SinkOp::Read, self.inner.read(upload)).await
    }

    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
        self.call(SinkOp::Purge, self.inner.purge(upload)).await
    }
}

/// Where a [`Cut`] body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutState {
    /// Passing the body's bytes on.
    Passing,
    /// The limit is reached and more bytes came: fail or end next.
    Cutting,
    /// Ended.
    Done,
}

/// A body that passes its first `left` bytes and then, if more come, fails
/// with `fault`'s I/O error (or ends, if `fault` is `None`), never reading
/// the rest. Sets `cut` when it cuts.
struct Cut {
    inner: ByteStream,
    left: u64,
    fault: Option<SinkFault>,
    cut: Arc<AtomicBool>,
    state: CutState,
}

impl Cut {
    fn cut_now(&mut self) -> Poll<Option<io::Result<Bytes>>> {
        self.state = CutState::Done;
        Poll::Ready(self.fault.map(|f| Err(f.body_error())))
    }
}

impl Stream for Cut {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.state {
            CutState::Done => return Poll::Ready(None),
            CutState::Cutting => return this.cut_now(),
            CutState::Passing => {}
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.state = CutState::Done;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.state = CutState::Done;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(bytes))) => {
                let len = bytes.len() as u64;
                if len <= this.left {
                    this.left -= len;
                    return Poll::Ready(Some(Ok(bytes)));
                }
                this.cut.store(true, Ordering::SeqCst);
                // `left < len`, so it fits in a usize.
                let head = bytes.slice(..this.left as usize);
                this.left = 0;
                if head.is_empty() {
                    return this.cut_now();
                }
                this.state = CutState::Cutting;
                Poll::Ready(Some(Ok(head)))
            }
        }
    }
}
