//! Property tests of the pure machine: random command sequences applied both
//! to the machine and to a small reference model, with the invariants
//! checked after every step.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use resumable::error::{BodyLength, Operation};
use resumable::ledger::{PartReceipt, PartRef};
use resumable::machine::{self, Completion, SweepAction, Timeouts};
use resumable::session::{ExpiryReason, FileMeta, SessionState};
use resumable::sink::{FinishedBlob, SinkCapabilities, UploadHandle};
use resumable::{Error, FileName, Owner, Session, SessionId, Sha256Digest, StateKind};

const NS: Duration = Duration::from_nanos(1);

fn timeouts() -> Timeouts {
    Timeouts {
        session_timeout: Duration::from_secs(100),
        temporary_max_age: Duration::from_secs(50),
        tombstone_retention: Duration::from_secs(30),
        finalize_lease: Duration::from_secs(10),
    }
}

fn blob(size: u64) -> FinishedBlob {
    FinishedBlob {
        size,
        sha256: Sha256Digest::of(b"assembled"),
    }
}

/// How a chunk's receipt differs from the chunk's exact range.
#[derive(Debug, Clone, Copy)]
enum Receipt {
    Exact,
    /// `k` bytes too many.
    Longer(u64),
    /// `k` bytes too few (possibly none left).
    Truncated(u64),
    /// The right length at the wrong offset.
    Shifted(u64),
}

#[derive(Debug, Clone)]
enum Cmd {
    /// A chunk picked at random (index modulo `total + 2`, so sometimes out
    /// of range), with an exact or corrupted receipt.
    Chunk {
        pick: u64,
        receipt: Receipt,
    },
    /// The first missing chunk, exact (in-order sending).
    NextMissing,
    /// The most recently recorded chunk again, exact (a retry).
    Duplicate,
    /// Every missing chunk, exact, in order.
    FillAll,
    Complete,
    Finish,
    Reopen,
    Abort,
    Claim,
    Advance(Duration),
    /// To the next deadline of the session, shifted by -1, 0 or +1 ns.
    ToDeadline(i8),
    Sweep,
}

fn receipt_strategy() -> impl Strategy<Value = Receipt> {
    prop_oneof![
        6 => Just(Receipt::Exact),
        1 => (1u64..=3).prop_map(Receipt::Longer),
        1 => (1u64..=300).prop_map(Receipt::Truncated),
        1 => (1u64..=3).prop_map(Receipt::Shifted),
    ]
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        8 => (any::<u64>(), receipt_strategy()).prop_map(|(pick, receipt)| Cmd::Chunk { pick, receipt }),
        3 => Just(Cmd::NextMissing),
        2 => Just(Cmd::Duplicate),
        2 => Just(Cmd::FillAll),
        4 => Just(Cmd::Complete),
        3 => Just(Cmd::Finish),
        1 => Just(Cmd::Reopen),
        1 => Just(Cmd::Abort),
        2 => Just(Cmd::Claim),
        3 => (0u64..40).prop_map(|s| Cmd::Advance(Duration::from_secs(s))),
        2 => (-1i8..=1).prop_map(Cmd::ToDeadline),
        3 => Just(Cmd::Sweep),
    ]
}

/// An initiate: the file size and the sink's bounds the chunk size is planned in.
#[derive(Debug, Clone)]
struct Initiate {
    size: u64,
    preferred: u64,
    caps: SinkCapabilities,
}

fn initiate_strategy() -> impl Strategy<Value = Initiate> {
    let size = prop_oneof![Just(0u64), 1u64..=40, 0u64..=3000];
    let caps =
        (1u64..=8, 0u64..=600, 1u64..=300).prop_map(|(min, extra, max_parts)| SinkCapabilities {
            min_part_size: min,
            max_part_size: min + extra,
            max_parts,
            ..SinkCapabilities::UNLIMITED
        });
    (size, 0u64..=700, caps).prop_map(|(size, preferred, caps)| Initiate {
        size,
        preferred,
        caps,
    })
}

/// An error, reduced to what the model predicts about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Gone(StateKind),
    Invalid(StateKind, Operation),
    OutOfRange {
        index: u64,
        total: u64,
    },
    Length {
        index: u64,
        expected: u64,
        actual: u64,
    },
    Missing(Vec<u64>),
}

fn reduce(e: &Error) -> Expected {
    match e {
        Error::SessionGone { state, .. } => Expected::Gone(*state),
        Error::InvalidState {
            state, operation, ..
        } => Expected::Invalid(*state, *operation),
        Error::ChunkOutOfRange { index, total } => Expected::OutOfRange {
            index: *index,
            total: *total,
        },
        Error::ChunkLength {
            index,
            expected,
            actual: BodyLength::Exactly(actual),
        } => Expected::Length {
            index: *index,
            expected: *expected,
            actual: *actual,
        },
        Error::MissingChunks {
            missing,
            missing_count,
        } => {
            let listed = (*missing_count).min(machine::MAX_LISTED_MISSING as u64);
            assert_eq!(
                missing.len() as u64,
                listed,
                "the first 1000 missing chunks are listed"
            );
            Expected::Missing(missing.clone())
        }
        other => panic!("the machine answered an unexpected error: {other:?}"),
    }
}

/// The reference model: what the protocol says, written out plainly.
#[derive(Debug, Clone)]
struct Model {
    size: u64,
    chunk_size: u64,
    kind: StateKind,
    /// Chunk index -> the tag of the receipt that counts.
    parts: BTreeMap<u64, String>,
    expires_at: SystemTime,
    lease_until: SystemTime,
    completed_at: SystemTime,
    reap_at: SystemTime,
    claimed_at: SystemTime,
    dead_at: SystemTime,
    forget_at: SystemTime,
    reason: Option<ExpiryReason>,
    purged: bool,
}

impl Model {
    fn total(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    fn range(&self, index: u64) -> Range<u64> {
        let start = index * self.chunk_size;
        start..(start + self.chunk_size).min(self.size)
    }

    fn gone(&self, now: SystemTime) -> Option<StateKind> {
        match self.kind {
            StateKind::Aborted => Some(StateKind::Aborted),
            StateKind::Expired => Some(StateKind::Expired),
            StateKind::Open if now >= self.expires_at => Some(StateKind::Expired),
            StateKind::Finalizing if now >= self.lease_until && now >= self.expires_at => {
                Some(StateKind::Expired)
            }
            StateKind::Completed if now >= self.reap_at => Some(StateKind::Expired),
            _ => None,
        }
    }

    fn received(&self) -> Vec<u64> {
        match self.kind {
            StateKind::Open | StateKind::Finalizing => self.parts.keys().copied().collect(),
            StateKind::Completed | StateKind::Claimed => (0..self.total()).collect(),
            _ => Vec::new(),
        }
    }

    fn missing(&self) -> Vec<u64> {
        let received = self.received();
        (0..self.total())
            .filter(|i| !received.contains(i))
            .collect()
    }

    fn sweep_action(&self, now: SystemTime) -> SweepAction {
        match self.kind {
            StateKind::Open if now >= self.expires_at => {
                SweepAction::Expire(ExpiryReason::Abandoned)
            }
            StateKind::Finalizing if now >= self.lease_until && now >= self.expires_at => {
                SweepAction::Expire(ExpiryReason::Abandoned)
            }
            StateKind::Completed if now >= self.reap_at => {
                SweepAction::Expire(ExpiryReason::Unclaimed)
            }
            StateKind::Aborted | StateKind::Expired if !self.purged => SweepAction::Purge,
            StateKind::Aborted | StateKind::Expired if now >= self.forget_at => SweepAction::Forget,
            _ => SweepAction::Keep,
        }
    }

    /// The next instant at which something changes, if any.
    fn next_deadline(&self, now: SystemTime) -> Option<SystemTime> {
        let candidates = match self.kind {
            StateKind::Open => vec![self.expires_at],
            StateKind::Finalizing => vec![self.lease_until, self.expires_at],
            StateKind::Completed => vec![self.reap_at],
            StateKind::Aborted | StateKind::Expired => vec![self.forget_at],
            _ => vec![],
        };
        candidates.into_iter().filter(|&t| t >= now).min()
    }
}

/// Which state changes the protocol allows (besides staying in a state).
fn allowed(from: StateKind, to: StateKind) -> bool {
    use StateKind::*;
    from == to
        || matches!(
            (from, to),
            (Open, Finalizing)
                | (Finalizing, Completed)
                | (Completed, Claimed)
                | (Open, Aborted)
                | (Open, Expired)
                | (Finalizing, Open)
                | (Completed, Expired)
                // A finalizer that died: the sweep expires the session once
                // both its lease and its expiry have passed.
                | (Finalizing, Expired)
        )
}

/// The invariants that hold after every step, and the agreement of the
/// machine's session with the model.
fn check(s: &Session, before: &Session, m: &Model, now: SystemTime) -> Result<(), TestCaseError> {
    // Identity and layout never change.
    prop_assert_eq!(s.id, before.id);
    prop_assert_eq!(&s.owner, &before.owner);
    prop_assert_eq!(&s.file, &before.file);
    prop_assert_eq!(s.chunk_size, before.chunk_size);
    prop_assert_eq!(s.created_at, before.created_at);
    prop_assert_eq!(&s.upload, &before.upload);

    // The ledger: parts never overlap, lie inside [0, size), and each is
    // exactly one chunk.
    if let Some(ledger) = s.state.ledger() {
        let mut end = 0;
        for p in ledger.parts() {
            prop_assert!(p.len > 0);
            prop_assert!(p.offset >= end, "overlap at {}", p.offset);
            prop_assert!(Some(p.range().end) <= s.file.size);
            prop_assert_eq!(p.offset % s.chunk_size, 0);
            prop_assert_eq!(Some(p.range()), s.chunk_range(p.offset / s.chunk_size));
            end = p.range().end;
        }
        let tags: BTreeMap<u64, String> = ledger
            .parts()
            .map(|p| (p.offset / s.chunk_size, p.part.as_str().to_owned()))
            .collect();
        prop_assert_eq!(&tags, &m.parts, "the latest receipt of each chunk counts");
    }

    // Allowed transitions; nothing leaves aborted or expired except the
    // purge bookkeeping.
    let (from, to) = (before.state.kind(), s.state.kind());
    prop_assert!(allowed(from, to), "{:?} -> {:?}", from, to);
    match (&before.state, &s.state) {
        (
            SessionState::Aborted { at, forget_at, .. },
            SessionState::Aborted {
                at: at2,
                forget_at: forget_at2,
                ..
            },
        ) => prop_assert_eq!((at, forget_at), (at2, forget_at2)),
        (
            SessionState::Expired {
                at,
                reason,
                forget_at,
                ..
            },
            SessionState::Expired {
                at: at2,
                reason: reason2,
                forget_at: forget_at2,
                ..
            },
        ) => prop_assert_eq!((at, reason, forget_at), (at2, reason2, forget_at2)),
        _ => {}
    }
    if let (
        SessionState::Aborted { purged: true, .. } | SessionState::Expired { purged: true, .. },
        SessionState::Aborted { purged, .. } | SessionState::Expired { purged, .. },
    ) = (&before.state, &s.state)
    {
        prop_assert!(*purged, "a purged session is never unpurged");
    }

    // Received and missing chunks partition 0..total.
    let received = machine::received_chunks(s);
    let missing = machine::missing_chunks(s);
    prop_assert!(received.windows(2).all(|w| w[0] < w[1]));
    prop_assert!(missing.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = received.iter().chain(&missing).copied().collect();
    all.sort_unstable();
    prop_assert_eq!(all, (0..s.total_chunks()).collect::<Vec<_>>());

    // Agreement with the model.
    prop_assert_eq!(to, m.kind);
    prop_assert_eq!(s.total_chunks(), m.total());
    prop_assert_eq!(&received, &m.received());
    prop_assert_eq!(&missing, &m.missing());
    prop_assert_eq!(s.expires_at, m.expires_at);
    match &s.state {
        SessionState::Open { .. } => {}
        SessionState::Finalizing { lease_until, .. } => {
            prop_assert_eq!(*lease_until, m.lease_until)
        }
        SessionState::Completed { at, reap_at, blob } => {
            prop_assert_eq!((*at, *reap_at), (m.completed_at, m.reap_at));
            prop_assert_eq!(blob.size, m.size);
        }
        SessionState::Claimed { at, blob } => {
            prop_assert_eq!(*at, m.claimed_at);
            prop_assert_eq!(blob.size, m.size);
        }
        SessionState::Aborted {
            at,
            purged,
            forget_at,
        } => prop_assert_eq!(
            (*at, *purged, *forget_at),
            (m.dead_at, m.purged, m.forget_at)
        ),
        SessionState::Expired {
            at,
            reason,
            purged,
            forget_at,
        } => prop_assert_eq!(
            (*at, Some(*reason), *purged, *forget_at),
            (m.dead_at, m.reason, m.purged, m.forget_at)
        ),
        other => prop_assert!(false, "unknown state {:?}", other),
    }
    prop_assert_eq!(
        machine::ensure_alive(s, now).err().map(|e| reduce(&e)),
        m.gone(now).map(Expected::Gone)
    );

    // The sweep has work exactly when the session is due (stores find due
    // sessions by `due_at`).
    let action = machine::sweep_action(s, now);
    prop_assert_eq!(action, m.sweep_action(now));
    prop_assert_eq!(
        action != SweepAction::Keep,
        s.due_at().is_some_and(|d| d <= now)
    );
    Ok(())
}

/// Compares a machine answer with the model's prediction.
fn agree<T: std::fmt::Debug>(
    got: &Result<T, Error>,
    want: &Result<(), Expected>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(_), Ok(())) => Ok(()),
        (Err(e), Err(w)) => {
            prop_assert_eq!(&reduce(e), w);
            Ok(())
        }
        (got, want) => {
            prop_assert!(false, "machine {:?}, model {:?}", got, want);
            Ok(())
        }
    }
}

struct Run {
    session: Session,
    model: Model,
    now: SystemTime,
    step: usize,
    last_recorded: Option<u64>,
}

impl Run {
    fn record(&mut self, index: u64, receipt: Receipt) -> Result<(), TestCaseError> {
        let t = timeouts();
        let m = &mut self.model;
        let cs = m.chunk_size;
        let exact = index * cs..(index * cs + cs).min(m.size).max(index * cs);
        let range = match receipt {
            Receipt::Exact => exact.clone(),
            Receipt::Longer(k) => exact.start..exact.end + k,
            Receipt::Truncated(k) => exact.start..exact.end.saturating_sub(k).max(exact.start),
            Receipt::Shifted(k) => exact.start + k..exact.end + k,
        };
        let tag = format!("p{}", self.step);
        let receipt = PartReceipt {
            offset: range.start,
            len: range.end - range.start,
            sha256: Some(Sha256Digest::of(tag.as_bytes())),
            part: PartRef::new(tag.clone()),
        };

        let want = if let Some(kind) = m.gone(self.now) {
            Err(Expected::Gone(kind))
        } else if m.kind != StateKind::Open {
            Err(Expected::Invalid(m.kind, Operation::UploadChunk))
        } else if index >= m.total() {
            Err(Expected::OutOfRange {
                index,
                total: m.total(),
            })
        } else if range != m.range(index) {
            Err(Expected::Length {
                index,
                expected: m.range(index).end - m.range(index).start,
                actual: range.end - range.start,
            })
        } else {
            Ok(())
        };

        let got = machine::record_chunk(self.session.clone(), index, receipt, self.now, &t);
        agree(&got, &want)?;
        if let Ok((next, replaced)) = got {
            let previous = m.parts.insert(index, tag);
            prop_assert_eq!(replaced.map(|r| r.part.as_str().to_owned()), previous);
            m.expires_at = m.expires_at.max(self.now + t.session_timeout);
            self.session = next;
            self.last_recorded = Some(index);
        }
        Ok(())
    }

    /// Applies one command; returns `false` once the record is forgotten.
    fn apply(&mut self, cmd: &Cmd) -> Result<bool, TestCaseError> {
        let t = timeouts();
        let now = self.now;
        match cmd {
            Cmd::Chunk { pick, receipt } => {
                let index = pick % (self.model.total() + 2);
                self.record(index, *receipt)?;
            }
            Cmd::NextMissing => {
                let next = (0..self.model.total()).find(|i| !self.model.parts.contains_key(i));
                if let Some(index) = next {
                    self.record(index, Receipt::Exact)?;
                }
            }
            Cmd::Duplicate => {
                if let Some(index) = self.last_recorded {
                    self.record(index, Receipt::Exact)?;
                }
            }
            Cmd::FillAll => {
                for index in 0..self.model.total() {
                    if !self.model.parts.contains_key(&index) {
                        self.record(index, Receipt::Exact)?;
                    }
                }
            }
            Cmd::Complete => {
                let m = &mut self.model;
                let all_recorded = m.parts.len() as u64 == m.total();
                let want = match (m.gone(now), m.kind) {
                    (Some(kind), _) => Err(Expected::Gone(kind)),
                    (None, StateKind::Open) if !all_recorded => Err(Expected::Missing(
                        m.missing()
                            .into_iter()
                            .take(machine::MAX_LISTED_MISSING)
                            .collect(),
                    )),
                    (None, StateKind::Finalizing) if now < m.lease_until => Err(Expected::Invalid(
                        StateKind::Finalizing,
                        Operation::Complete,
                    )),
                    _ => Ok(()),
                };
                let open_and_alive = m.kind == StateKind::Open && m.gone(now).is_none();
                let got = machine::begin_complete(self.session.clone(), now, &t);
                agree(&got, &want)?;
                if open_and_alive {
                    prop_assert_eq!(got.is_ok(), all_recorded, "complete iff every chunk");
                }
                match got {
                    Ok(Completion::Finalize(next)) => {
                        prop_assert!(matches!(m.kind, StateKind::Open | StateKind::Finalizing));
                        m.kind = StateKind::Finalizing;
                        m.lease_until = now + t.finalize_lease;
                        self.session = next;
                    }
                    Ok(Completion::AlreadyCompleted(b)) => {
                        prop_assert!(matches!(m.kind, StateKind::Completed | StateKind::Claimed));
                        prop_assert_eq!(b, blob(m.size));
                    }
                    Err(_) => {}
                }
            }
            Cmd::Finish => {
                let m = &mut self.model;
                let want = match (m.gone(now), m.kind) {
                    (Some(kind), _) => Err(Expected::Gone(kind)),
                    (None, StateKind::Finalizing) => Ok(()),
                    (None, kind) => Err(Expected::Invalid(kind, Operation::Complete)),
                };
                let got = machine::finish_complete(self.session.clone(), blob(m.size), now, &t);
                agree(&got, &want)?;
                if let Ok(next) = got {
                    m.kind = StateKind::Completed;
                    m.completed_at = now;
                    m.reap_at = now + t.temporary_max_age;
                    m.parts.clear();
                    self.session = next;
                }
            }
            Cmd::Reopen => {
                let m = &mut self.model;
                let want = match (m.gone(now), m.kind) {
                    (Some(kind), _) => Err(Expected::Gone(kind)),
                    (None, StateKind::Finalizing) => Ok(()),
                    (None, kind) => Err(Expected::Invalid(kind, Operation::Complete)),
                };
                let got = machine::reopen(self.session.clone(), now, &t);
                agree(&got, &want)?;
                if let Ok(next) = got {
                    m.kind = StateKind::Open;
                    m.expires_at = m.expires_at.max(now + t.session_timeout);
                    self.session = next;
                }
            }
            Cmd::Abort => {
                let m = &mut self.model;
                let want = match (m.gone(now), m.kind) {
                    (Some(kind), _) => Err(Expected::Gone(kind)),
                    (None, StateKind::Open) => Ok(()),
                    (None, kind) => Err(Expected::Invalid(kind, Operation::Abort)),
                };
                let got = machine::abort(self.session.clone(), now, &t);
                agree(&got, &want)?;
                if let Ok(next) = got {
                    m.kind = StateKind::Aborted;
                    m.dead_at = now;
                    m.forget_at = now + t.tombstone_retention;
                    m.purged = false;
                    m.parts.clear();
                    self.session = next;
                }
            }
            Cmd::Claim => {
                let m = &mut self.model;
                let want = match (m.gone(now), m.kind) {
                    (Some(kind), _) => Err(Expected::Gone(kind)),
                    (None, StateKind::Completed | StateKind::Claimed) => Ok(()),
                    (None, kind) => Err(Expected::Invalid(kind, Operation::Claim)),
                };
                let got = machine::claim(self.session.clone(), now);
                agree(&got, &want)?;
                if let Ok(next) = got {
                    if m.kind == StateKind::Claimed {
                        prop_assert_eq!(&next, &self.session, "claiming again changes nothing");
                    } else {
                        m.kind = StateKind::Claimed;
                        m.claimed_at = now;
                    }
                    self.session = next;
                }
            }
            Cmd::Advance(by) => self.now += *by,
            Cmd::ToDeadline(shift) => {
                if let Some(deadline) = self.model.next_deadline(now) {
                    let target = match shift {
                        -1 => deadline - NS,
                        0 => deadline,
                        _ => deadline + NS,
                    };
                    self.now = self.now.max(target);
                }
            }
            Cmd::Sweep => {
                let m = &mut self.model;
                let action = machine::sweep_action(&self.session, now);
                prop_assert_eq!(action, m.sweep_action(now));
                match action {
                    SweepAction::Keep => {}
                    SweepAction::Expire(reason) => {
                        self.session = machine::expire(self.session.clone(), reason, now, &t);
                        m.kind = StateKind::Expired;
                        m.reason = Some(reason);
                        m.dead_at = now;
                        m.forget_at = now + t.tombstone_retention;
                        m.purged = false;
                        m.parts.clear();
                    }
                    SweepAction::Purge => {
                        self.session = machine::mark_purged(self.session.clone());
                        m.purged = true;
                    }
                    SweepAction::Forget => return Ok(false),
                }
            }
        }
        Ok(true)
    }
}

fn run(init: Initiate, cmds: Vec<Cmd>) -> Result<(), TestCaseError> {
    let t = timeouts();
    let caps = init.caps;
    let chunk_size = match machine::plan_chunk_size(init.size, init.preferred, &caps) {
        Ok(c) => {
            prop_assert!(c >= caps.min_part_size && c <= caps.max_part_size);
            prop_assert!(init.size.div_ceil(c) <= caps.max_parts);
            if init.size.div_ceil(caps.max_parts) <= init.preferred {
                prop_assert_eq!(
                    c,
                    init.preferred.clamp(caps.min_part_size, caps.max_part_size)
                );
            }
            c
        }
        Err(Error::FileTooLarge { size, max }) => {
            prop_assert_eq!(size, init.size);
            prop_assert_eq!(max, caps.max_part_size * caps.max_parts);
            prop_assert!(init.size > max);
            // Carry on with a layout that fits, to exercise the rest.
            init.preferred.max(1)
        }
        Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
    };
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let file = FileMeta {
        name: Some(FileName::parse("data.bin").unwrap()),
        size: Some(init.size),
        ..FileMeta::default()
    };
    let session = machine::open(
        SessionId::random(),
        Owner::new("owner"),
        file,
        chunk_size,
        UploadHandle::new("upload"),
        start,
        &t,
    );
    let model = Model {
        size: init.size,
        chunk_size,
        kind: StateKind::Open,
        parts: BTreeMap::new(),
        expires_at: start + t.session_timeout,
        lease_until: start,
        completed_at: start,
        reap_at: start,
        claimed_at: start,
        dead_at: start,
        forget_at: start,
        reason: None,
        purged: false,
    };
    let mut run = Run {
        session,
        model,
        now: start,
        step: 0,
        last_recorded: None,
    };
    check(&run.session, &run.session.clone(), &run.model, run.now)?;
    for (step, cmd) in cmds.iter().enumerate() {
        run.step = step;
        let before = run.session.clone();
        if !run.apply(cmd)? {
            return Ok(());
        }
        check(&run.session, &before, &run.model, run.now)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_machine_follows_the_model(
        init in initiate_strategy(),
        cmds in prop::collection::vec(cmd_strategy(), 1..48),
    ) {
        run(init, cmds)?;
    }
}
