//! The pure state machine under an arbitrary sequence of commands: chunks
//! (exact, corrupted or anywhere), appends, length declarations, complete,
//! finish, fail, reopen, abort, terminate, claim, purge, time passing and
//! the sweep, on chunked, appended, partial and final uploads of any size
//! (up to 2^64 - 1) and any timeouts (zero included).
//!
//! Invariants, after every step:
//! - nothing panics;
//! - identity and layout never change; the length only goes from unknown to
//!   known;
//! - the ledger's parts are non-empty, never overlap and stay within the
//!   size; a chunked upload's parts are exactly its chunks, an appended
//!   upload's parts are gap-free from byte 0;
//! - only the protocol's transitions happen, and nothing leaves aborted or
//!   expired: their time, reason and tombstone stay, only `purged` goes
//!   from false to true, and every other operation answers "gone";
//! - complete succeeds only when every byte is present (a final upload's
//!   come from its parts), and always does then; a finalizing upload has
//!   every byte; a completed one has a blob of its size;
//! - received and missing chunks partition the chunks, and a refused
//!   complete lists the first 1,000 missing ones and counts them all;
//! - the expiry never moves back, the sweep has work exactly when the
//!   session is due, and a live session is gone exactly when the sweep would
//!   expire it;
//! - each operation's answer matches what its preconditions say: an exact
//!   chunk or an append at the offset within the length is recorded on an
//!   open, live upload, a declared length is kept when it is consistent,
//!   and so on.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use resumable::ledger::{Ledger, PartReceipt, PartRef};
use resumable::machine::{self, Completion, SweepAction, Timeouts};
use resumable::session::{ExpiryReason, FileMeta, SessionState, UploadKind};
use resumable::sink::{FinishedBlob, SinkCapabilities, UploadHandle};
use resumable::{Error, FileName, Owner, Session, Sha256Digest, StateKind};

/// At most this many chunks (more than the 1,000 a refused complete lists).
const MAX_PARTS: u64 = 1200;
/// At most this many commands per input.
const MAX_COMMANDS: usize = 64;
/// At most this many chunks recorded by one `FillAll`.
const FILL_AT_ONCE: u64 = 64;
const NS: Duration = Duration::from_nanos(1);

/// A size as the fuzzer picks it.
#[derive(Debug, Clone, Copy)]
enum Size {
    Unknown,
    Small(u8),
    Medium(u16),
    Any(u64),
    /// 2^64 - 1 - k.
    NearMax(u8),
}

impl Size {
    fn value(self) -> Option<u64> {
        match self {
            Size::Unknown => None,
            Size::Small(n) => Some(n.into()),
            Size::Medium(n) => Some(n.into()),
            Size::Any(n) => Some(n),
            Size::NearMax(k) => Some(u64::MAX - u64::from(k)),
        }
    }
}

impl<'a> Arbitrary<'a> for Size {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 5 {
            0 => Size::Unknown,
            1 => Size::Small(u.arbitrary()?),
            2 => Size::Medium(u.arbitrary()?),
            3 => Size::Any(u.arbitrary()?),
            _ => Size::NearMax(u.arbitrary()?),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Chunked,
    Appended,
    Partial,
    Final,
}

/// The upload and the sink it is planned for.
#[derive(Debug)]
struct Setup {
    kind: Kind,
    size: Size,
    preferred: u32,
    min_part: u8,
    /// `u32::MAX`: no largest part (like the memory sink).
    extra_part: u32,
    /// 1 to 64 parts; `u16::MAX`: `MAX_PARTS`.
    max_parts: u16,
    /// Seconds: session, temporary, tombstone, lease.
    timeouts: [u8; 4],
}

impl<'a> Arbitrary<'a> for Setup {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let kind = match u8::arbitrary(u)? % 4 {
            0 => Kind::Chunked,
            1 => Kind::Appended,
            2 => Kind::Partial,
            _ => Kind::Final,
        };
        Ok(Setup {
            kind,
            size: u.arbitrary()?,
            preferred: u.arbitrary()?,
            min_part: u.arbitrary()?,
            extra_part: u.arbitrary()?,
            max_parts: u.arbitrary()?,
            timeouts: u.arbitrary()?,
        })
    }
}

/// How a chunk's receipt differs from the chunk's exact range.
#[derive(Debug, Clone, Copy)]
enum Receipt {
    Exact,
    Longer(u8),
    Truncated(u16),
    Shifted(u8),
    /// Any range, for any (raw) index.
    Anywhere {
        offset: u64,
        len: u64,
    },
}

impl<'a> Arbitrary<'a> for Receipt {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 5 {
            0 => Receipt::Exact,
            1 => Receipt::Longer(u.arbitrary()?),
            2 => Receipt::Truncated(u.arbitrary()?),
            3 => Receipt::Shifted(u.arbitrary()?),
            _ => Receipt::Anywhere {
                offset: u.arbitrary()?,
                len: u.arbitrary()?,
            },
        })
    }
}

/// How many bytes an append carries.
#[derive(Debug, Clone, Copy)]
enum AppendLen {
    /// All that is left (one byte if the length is unknown).
    Rest,
    Small(u8),
    Medium(u16),
    Any(u64),
}

impl<'a> Arbitrary<'a> for AppendLen {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 4 {
            0 => AppendLen::Rest,
            1 => AppendLen::Small(u.arbitrary()?),
            2 => AppendLen::Medium(u.arbitrary()?),
            _ => AppendLen::Any(u.arbitrary()?),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    /// Chunk `pick % (total + 2)` (a raw index for `Anywhere`).
    Chunk {
        pick: u64,
        receipt: Receipt,
    },
    NextMissing,
    /// The last recorded chunk again (a retry).
    Duplicate,
    FillAll,
    /// An append at the current offset moved by `shift`.
    Append {
        len: AppendLen,
        shift: i8,
    },
    /// `Unknown` declares the bytes received so far.
    DeclareLength(Size),
    Complete,
    Finish,
    FailFinalize,
    Reopen,
    Abort,
    Terminate,
    Claim,
    Purge,
    Advance(u16),
    /// To the next deadline, shifted by -1 ns, 0 or +1 ns.
    ToDeadline(u8),
    Sweep,
}

impl<'a> Arbitrary<'a> for Cmd {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 17 {
            0 => Cmd::Chunk {
                pick: u.arbitrary()?,
                receipt: u.arbitrary()?,
            },
            1 => Cmd::NextMissing,
            2 => Cmd::Duplicate,
            3 => Cmd::FillAll,
            4 => Cmd::Append {
                len: u.arbitrary()?,
                shift: u.arbitrary()?,
            },
            5 => Cmd::DeclareLength(u.arbitrary()?),
            6 => Cmd::Complete,
            7 => Cmd::Finish,
            8 => Cmd::FailFinalize,
            9 => Cmd::Reopen,
            10 => Cmd::Abort,
            11 => Cmd::Terminate,
            12 => Cmd::Claim,
            13 => Cmd::Purge,
            14 => Cmd::Advance(u.arbitrary()?),
            15 => Cmd::ToDeadline(u.arbitrary()?),
            _ => Cmd::Sweep,
        })
    }
}

#[derive(Debug)]
struct Input {
    setup: Setup,
    cmds: Vec<Cmd>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let setup = u.arbitrary()?;
        let mut cmds = Vec::new();
        while !u.is_empty() && cmds.len() < MAX_COMMANDS {
            cmds.push(u.arbitrary()?);
        }
        Ok(Input { setup, cmds })
    }
}

fn is_dead(s: &Session) -> bool {
    matches!(
        s.state,
        SessionState::Aborted { .. } | SessionState::Expired { .. }
    )
}

fn is_gone(e: &Error) -> bool {
    matches!(e, Error::SessionGone { .. })
}

/// Which state changes the protocol allows (besides staying in a state).
fn allowed(from: StateKind, to: StateKind) -> bool {
    use StateKind::*;
    from == to
        || matches!(
            (from, to),
            (Open, Finalizing)
                | (Open, Aborted)
                | (Open, Expired)
                | (Finalizing, Open)
                | (Finalizing, Completed)
                | (Finalizing, Aborted)
                | (Finalizing, Expired)
                | (Completed, Claimed)
                | (Completed, Aborted)
                | (Completed, Expired)
        )
}

fn blob(size: u64) -> FinishedBlob {
    FinishedBlob {
        size,
        sha256: Sha256Digest::of(b"assembled"),
    }
}

fn ledger(s: &Session) -> Option<&Ledger> {
    s.state.ledger()
}

struct Run {
    s: Session,
    now: SystemTime,
    t: Timeouts,
    step: u64,
    last_chunk: Option<u64>,
}

impl Run {
    fn receipt(&self, offset: u64, len: u64) -> PartReceipt {
        let mut digest = [0; 32];
        digest[..8].copy_from_slice(&self.step.to_le_bytes());
        PartReceipt {
            offset,
            // A receipt names bytes below 2^64.
            len: len.min(u64::MAX - offset),
            // A chunk's own digest is there only when its request declared
            // one: every other receipt has none.
            sha256: (self.step % 2 == 0).then(|| Sha256Digest::from_bytes(digest)),
            part: PartRef::new(format!("p{}", self.step)),
        }
    }

    fn alive(&self, s: &Session) -> bool {
        machine::ensure_alive(s, self.now).is_ok()
    }

    /// Records chunk `index` with a receipt shaped by `r`.
    fn chunk(&mut self, index: u64, r: Receipt) {
        let before = self.s.clone();
        let exact = before.chunk_range(index);
        let (start, len) = match &exact {
            Some(range) => {
                assert!(range.start < range.end, "chunk {index}: {range:?}");
                (range.start, range.end - range.start)
            }
            None => (index.saturating_mul(before.chunk_size), before.chunk_size),
        };
        let (offset, len) = match r {
            Receipt::Exact => (start, len),
            Receipt::Longer(k) => (start, len.saturating_add(k.into())),
            Receipt::Truncated(k) => (start, len.saturating_sub(k.into())),
            Receipt::Shifted(k) => (start.saturating_add(k.into()), len),
            Receipt::Anywhere { offset, len } => (offset, len),
        };
        let receipt = self.receipt(offset, len);
        let open = matches!(before.state, SessionState::Open { .. }) && self.alive(&before);
        let got = machine::record_chunk(before.clone(), index, receipt.clone(), self.now, &self.t);
        match got {
            Ok((next, replaced)) => {
                assert!(open, "a chunk recorded on {:?}", before.state.kind());
                assert_eq!(exact, Some(receipt.range()), "chunk {index}");
                let previous = ledger(&before).unwrap().part_at(receipt.offset).cloned();
                assert_eq!(replaced, previous);
                assert_eq!(ledger(&next).unwrap().part_at(offset), Some(&receipt));
                assert_eq!(
                    next.expires_at,
                    before.expires_at.max(self.now + self.t.session_timeout)
                );
                self.s = next;
                self.last_chunk = Some(index);
            }
            Err(e) => {
                let should = open
                    && matches!(before.kind, UploadKind::Chunked)
                    && exact.is_some_and(|x| x == receipt.range());
                assert!(!should, "exact chunk {index} refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(&e), "{e:?}");
                }
            }
        }
    }

    fn missing(&self) -> Vec<u64> {
        machine::missing_chunks(&self.s)
    }

    fn append(&mut self, len: AppendLen, shift: i8) {
        let before = self.s.clone();
        let at = ledger(&before).map_or(0, Ledger::contiguous_end);
        let offset = if shift >= 0 {
            at.saturating_add(shift as u64)
        } else {
            at.saturating_sub(u64::from(shift.unsigned_abs()))
        };
        let room = before.file.size.map(|size| size.saturating_sub(at));
        let len = match len {
            AppendLen::Rest => room.unwrap_or(1),
            AppendLen::Small(n) => n.into(),
            AppendLen::Medium(n) => n.into(),
            AppendLen::Any(n) => n,
        };
        let receipt = self.receipt(offset, len);
        let appendable = matches!(before.kind, UploadKind::Appended | UploadKind::Partial);
        let open = matches!(before.state, SessionState::Open { .. }) && self.alive(&before);
        let target = machine::append_target(&before, offset, self.now);
        match &target {
            Ok(r) => {
                assert!(open && appendable && offset == at);
                assert_eq!(*r, room);
            }
            Err(e) => {
                assert!(!(open && appendable && offset == at), "{e:?}");
                if is_dead(&before) {
                    assert!(is_gone(e), "{e:?}");
                }
            }
        }
        let fits = room.is_none_or(|room| receipt.len <= room);
        match machine::record_append(before.clone(), receipt.clone(), self.now, &self.t) {
            Ok(next) => {
                assert!(target.is_ok() && fits);
                let l = ledger(&next).unwrap();
                assert_eq!(l.contiguous_end(), at + receipt.len);
                assert_eq!(
                    l.received_bytes(),
                    ledger(&before).unwrap().received_bytes() + receipt.len
                );
                assert_eq!(
                    next.expires_at,
                    before.expires_at.max(self.now + self.t.session_timeout)
                );
                self.s = next;
            }
            Err(e) => {
                assert!(!(target.is_ok() && fits), "append refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(&e), "{e:?}");
                }
            }
        }
    }

    fn declare(&mut self, size: Size) {
        let before = self.s.clone();
        let received = ledger(&before).map(|l| l.contiguous_end().max(l.received_bytes()));
        let length = size.value().unwrap_or(received.unwrap_or(0));
        let open = matches!(before.state, SessionState::Open { .. }) && self.alive(&before);
        let consistent = match before.file.size {
            Some(known) => known == length,
            None => received.is_some_and(|r| length >= r),
        };
        match machine::declare_length(before.clone(), length, self.now) {
            Ok(next) => {
                assert!(open && consistent);
                assert_eq!(next.file.size, Some(length));
                self.s = next;
            }
            Err(e) => {
                assert!(!(open && consistent), "length {length} refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(&e), "{e:?}");
                }
            }
        }
    }

    fn complete(&mut self) {
        let before = self.s.clone();
        let now = self.now;
        let alive = self.alive(&before);
        let is_final = matches!(before.kind, UploadKind::Final { .. });
        let all_bytes = match (ledger(&before), before.file.size) {
            (Some(l), Some(size)) => is_final || l.is_complete(size),
            _ => false,
        };
        let got = machine::begin_complete(before.clone(), now, &self.t);
        match &got {
            Ok(Completion::Finalize(next)) => {
                assert!(alive);
                match &before.state {
                    SessionState::Open { .. } => assert!(all_bytes, "complete without every byte"),
                    SessionState::Finalizing { lease_until, .. } => assert!(now >= *lease_until),
                    other => panic!("complete from {other:?}"),
                }
                let SessionState::Finalizing {
                    ledger: l,
                    lease_until,
                } = &next.state
                else {
                    panic!("complete led to {:?}", next.state.kind());
                };
                assert_eq!(Some(l), ledger(&before));
                assert_eq!(*lease_until, now + self.t.finalize_lease);
            }
            Ok(Completion::AlreadyCompleted(b)) => {
                assert!(alive);
                assert_eq!(Some(b), before.state.blob());
            }
            Err(Error::MissingChunks {
                missing,
                missing_count,
            }) => {
                assert!(matches!(before.kind, UploadKind::Chunked) && !all_bytes);
                let all = machine::missing_chunks(&before);
                assert!(*missing_count > 0);
                assert_eq!(*missing_count, all.len() as u64);
                let listed = all.len().min(machine::MAX_LISTED_MISSING);
                assert_eq!(missing[..], all[..listed]);
            }
            Err(e) => {
                let open = matches!(before.state, SessionState::Open { .. });
                assert!(!(alive && open && all_bytes), "complete refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(e), "{e:?}");
                }
            }
        }
        if alive && matches!(before.state, SessionState::Open { .. }) && all_bytes {
            assert!(matches!(got, Ok(Completion::Finalize(_))));
        }
        if let Ok(Completion::Finalize(next)) = got {
            self.s = next;
        }
    }

    /// finish, reopen and fail: from a live finalizing session only.
    fn leave_finalizing(&mut self, op: Cmd) {
        let before = self.s.clone();
        let (now, t) = (self.now, &self.t);
        let finalizing =
            matches!(before.state, SessionState::Finalizing { .. }) && self.alive(&before);
        let got = match op {
            Cmd::Finish => {
                let size = before.file.size.unwrap_or(0);
                machine::finish_complete(before.clone(), blob(size), now, t)
            }
            Cmd::Reopen => machine::reopen(before.clone(), now, t),
            _ => machine::fail_finalize(before.clone(), now, t),
        };
        match got {
            Ok(next) => {
                assert!(finalizing, "{op:?} from {:?}", before.state.kind());
                match (op, &next.state) {
                    (Cmd::Finish, SessionState::Completed { at, reap_at, .. }) => {
                        assert_eq!((*at, *reap_at), (now, now + t.temporary_max_age));
                    }
                    (Cmd::Reopen, SessionState::Open { ledger: l }) => {
                        assert_eq!(Some(l), ledger(&before));
                        assert_eq!(
                            next.expires_at,
                            before.expires_at.max(now + t.session_timeout)
                        );
                    }
                    (
                        Cmd::FailFinalize,
                        SessionState::Aborted {
                            at,
                            purged: false,
                            forget_at,
                        },
                    ) => assert_eq!((*at, *forget_at), (now, now + t.tombstone_retention)),
                    (op, state) => panic!("{op:?} led to {state:?}"),
                }
                self.s = next;
            }
            Err(e) => {
                assert!(!finalizing, "{op:?} refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(&e), "{e:?}");
                }
            }
        }
    }

    fn end(&mut self, op: Cmd) {
        let before = self.s.clone();
        let (now, t) = (self.now, &self.t);
        let alive = self.alive(&before);
        let kind = before.state.kind();
        let (got, may) = match op {
            Cmd::Abort => (
                machine::abort(before.clone(), now, t),
                kind == StateKind::Open,
            ),
            Cmd::Terminate => (
                machine::terminate(before.clone(), now, t),
                matches!(kind, StateKind::Open | StateKind::Completed),
            ),
            _ => (
                machine::claim(before.clone(), now),
                matches!(kind, StateKind::Completed | StateKind::Claimed),
            ),
        };
        match got {
            Ok(next) => {
                assert!(alive && may, "{op:?} from {kind:?}");
                match &next.state {
                    SessionState::Aborted {
                        at,
                        purged: false,
                        forget_at,
                    } => assert_eq!((*at, *forget_at), (now, now + t.tombstone_retention)),
                    SessionState::Claimed { .. } if kind == StateKind::Claimed => {
                        assert_eq!(next, before, "claiming again changes nothing");
                    }
                    SessionState::Claimed { at, blob: b } => {
                        assert_eq!(*at, now);
                        assert_eq!(Some(b), before.state.blob());
                    }
                    other => panic!("{op:?} led to {other:?}"),
                }
                self.s = next;
            }
            Err(e) => {
                assert!(!(alive && may), "{op:?} refused: {e:?}");
                if is_dead(&before) {
                    assert!(is_gone(&e), "{e:?}");
                }
            }
        }
    }

    fn purge(&mut self) {
        let before = self.s.clone();
        let next = machine::mark_purged(before.clone());
        match (&before.state, &next.state) {
            (
                SessionState::Aborted { at, forget_at, .. },
                SessionState::Aborted {
                    at: at2,
                    purged: true,
                    forget_at: forget_at2,
                },
            ) => assert_eq!((at, forget_at), (at2, forget_at2)),
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
                    purged: true,
                    forget_at: forget_at2,
                },
            ) => assert_eq!((at, reason, forget_at), (at2, reason2, forget_at2)),
            _ => assert_eq!(next, before, "purging a live session changes nothing"),
        }
        self.s = next;
    }

    fn next_deadline(&self) -> Option<SystemTime> {
        let s = &self.s;
        let candidates = match &s.state {
            SessionState::Open { .. } => vec![s.expires_at],
            SessionState::Finalizing { lease_until, .. } => vec![*lease_until, s.expires_at],
            SessionState::Completed { reap_at, .. } => vec![*reap_at],
            SessionState::Aborted { forget_at, .. } | SessionState::Expired { forget_at, .. } => {
                vec![*forget_at]
            }
            _ => vec![],
        };
        candidates.into_iter().filter(|&d| d >= self.now).min()
    }

    /// The sweep; `false` once the record is forgotten.
    fn sweep(&mut self) -> bool {
        let before = self.s.clone();
        match machine::sweep_action(&before, self.now) {
            SweepAction::Keep => {}
            SweepAction::Expire(reason) => {
                let want = match before.state.kind() {
                    StateKind::Open | StateKind::Finalizing => ExpiryReason::Abandoned,
                    StateKind::Completed => ExpiryReason::Unclaimed,
                    other => panic!("expiring a {other:?} session"),
                };
                assert_eq!(reason, want);
                self.s = machine::expire(before, reason, self.now, &self.t);
            }
            SweepAction::Purge => {
                assert!(is_dead(&before));
                self.purge();
            }
            SweepAction::Forget => {
                assert!(is_dead(&before));
                return false;
            }
        }
        true
    }

    /// Applies one command; `false` once the record is forgotten.
    fn apply(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Chunk { pick, receipt } => {
                let index = match receipt {
                    Receipt::Anywhere { .. } => pick,
                    _ => pick % (self.s.total_chunks() + 2),
                };
                self.chunk(index, receipt);
            }
            Cmd::NextMissing => {
                if let Some(&index) = self.missing().first() {
                    self.chunk(index, Receipt::Exact);
                }
            }
            Cmd::Duplicate => {
                if let Some(index) = self.last_chunk {
                    self.chunk(index, Receipt::Exact);
                }
            }
            Cmd::FillAll => {
                let missing = self.missing();
                for &index in missing.iter().take(FILL_AT_ONCE as usize) {
                    self.chunk(index, Receipt::Exact);
                }
            }
            Cmd::Append { len, shift } => self.append(len, shift),
            Cmd::DeclareLength(size) => self.declare(size),
            Cmd::Complete => self.complete(),
            Cmd::Finish | Cmd::Reopen | Cmd::FailFinalize => self.leave_finalizing(cmd),
            Cmd::Abort | Cmd::Terminate | Cmd::Claim => self.end(cmd),
            Cmd::Purge => self.purge(),
            Cmd::Advance(secs) => self.now += Duration::from_secs(secs.into()),
            Cmd::ToDeadline(shift) => {
                if let Some(deadline) = self.next_deadline() {
                    let target = match shift % 3 {
                        0 => deadline - NS,
                        1 => deadline,
                        _ => deadline + NS,
                    };
                    self.now = self.now.max(target);
                }
            }
            Cmd::Sweep => return self.sweep(),
        }
        true
    }
}

/// The invariants that hold after every step.
fn check(before: &Session, s: &Session, now: SystemTime) {
    // Identity and layout.
    assert_eq!(s.id, before.id);
    assert_eq!(s.owner, before.owner);
    assert_eq!(s.chunk_size, before.chunk_size);
    assert_eq!(s.kind, before.kind);
    assert_eq!(s.created_at, before.created_at);
    assert_eq!(s.upload, before.upload);
    assert_eq!(s.file.name, before.file.name);
    assert_eq!(s.file.content_type, before.file.content_type);
    assert_eq!(s.file.sha256, before.file.sha256);
    assert_eq!(s.file.metadata, before.file.metadata);
    if before.file.size.is_some() {
        assert_eq!(s.file.size, before.file.size, "a known length changed");
    }
    assert!(s.expires_at >= before.expires_at, "the expiry moved back");

    // The ledger.
    if let Some(l) = ledger(s) {
        let mut end = 0;
        for p in l.parts() {
            assert!(p.len > 0);
            let stop = p.offset.checked_add(p.len).expect("a part past 2^64");
            assert!(p.offset >= end, "overlap at {}", p.offset);
            if let Some(size) = s.file.size {
                assert!(stop <= size, "part {:?} past the size {size}", p.range());
            }
            if matches!(s.kind, UploadKind::Chunked) {
                assert_eq!(p.offset % s.chunk_size, 0);
                assert_eq!(Some(p.range()), s.chunk_range(p.offset / s.chunk_size));
            }
            end = stop;
        }
        if matches!(s.kind, UploadKind::Appended | UploadKind::Partial) {
            assert_eq!(l.contiguous_end(), l.received_bytes(), "a gap in an append");
        }
    }

    // Transitions; nothing leaves aborted or expired but purge bookkeeping.
    let (from, to) = (before.state.kind(), s.state.kind());
    assert!(allowed(from, to), "{from:?} -> {to:?}");
    match (&before.state, &s.state) {
        (
            SessionState::Aborted {
                at,
                purged,
                forget_at,
            },
            SessionState::Aborted {
                at: at2,
                purged: purged2,
                forget_at: forget_at2,
            },
        ) => {
            assert_eq!((at, forget_at), (at2, forget_at2));
            assert!(*purged2 || !*purged, "unpurged");
        }
        (
            SessionState::Expired {
                at,
                reason,
                purged,
                forget_at,
            },
            SessionState::Expired {
                at: at2,
                reason: reason2,
                purged: purged2,
                forget_at: forget_at2,
            },
        ) => {
            assert_eq!((at, reason, forget_at), (at2, reason2, forget_at2));
            assert!(*purged2 || !*purged, "unpurged");
        }
        _ => {}
    }

    // Complete only with every byte.
    let is_final = matches!(s.kind, UploadKind::Final { .. });
    match &s.state {
        SessionState::Finalizing { ledger: l, .. } => {
            let size = s.file.size.expect("finalizing without a length");
            assert!(
                is_final || l.is_complete(size),
                "finalizing without every byte"
            );
        }
        SessionState::Completed { blob: b, .. } | SessionState::Claimed { blob: b, .. } => {
            assert_eq!(Some(b.size), s.file.size);
        }
        _ => {}
    }
    let fully = match (&s.state, s.file.size) {
        (SessionState::Open { ledger: l }, Some(size)) => l.is_complete(size),
        _ => false,
    };
    assert_eq!(machine::is_fully_received(s), fully);

    // Received and missing chunks partition 0..total.
    let received = machine::received_chunks(s);
    let missing = machine::missing_chunks(s);
    assert!(received.windows(2).all(|w| w[0] < w[1]));
    assert!(missing.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(received.len() + missing.len(), s.total_chunks() as usize);
    let mut all: Vec<u64> = received.iter().chain(&missing).copied().collect();
    all.sort_unstable();
    assert!(all.iter().copied().eq(0..s.total_chunks()));

    // The sweep and the liveness check agree with the deadlines.
    let action = machine::sweep_action(s, now);
    assert_eq!(
        action != SweepAction::Keep,
        s.due_at().is_some_and(|d| d <= now),
        "{action:?} at {now:?}, due {:?}",
        s.due_at()
    );
    let gone = machine::ensure_alive(s, now).is_err();
    assert_eq!(gone, is_dead(s) || matches!(action, SweepAction::Expire(_)));
    assert_eq!(
        machine::readable_blob(s, now).is_ok(),
        !gone && s.state.blob().is_some()
    );
}

fn run(input: Input) {
    let Setup {
        kind,
        size,
        preferred,
        min_part,
        extra_part,
        max_parts,
        timeouts: [session, temporary, tombstone, lease],
    } = input.setup;
    let secs = |n: u8| Duration::from_secs(n.into());
    let t = Timeouts {
        session_timeout: secs(session),
        temporary_max_age: secs(temporary),
        tombstone_retention: secs(tombstone),
        finalize_lease: secs(lease),
    };
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let owner = Owner::new("owner");
    let upload = UploadHandle::new("upload");
    let id = resumable::__fuzz::session_id(&"1".repeat(32)).unwrap();
    let session = match kind {
        Kind::Chunked => {
            let size = size.value().unwrap_or(0);
            let min = u64::from(min_part.max(1));
            let caps = SinkCapabilities {
                min_part_size: min,
                max_part_size: if extra_part == u32::MAX {
                    u64::MAX
                } else {
                    min + u64::from(extra_part)
                },
                // Mostly a few chunks (fast runs); 0xffff: up to `MAX_PARTS`.
                max_parts: match max_parts {
                    u16::MAX => MAX_PARTS,
                    n => u64::from(n % 64) + 1,
                },
                ..SinkCapabilities::UNLIMITED
            };
            let chunk_size = match machine::plan_chunk_size(size, preferred.into(), &caps) {
                Ok(c) => {
                    assert!(c >= caps.min_part_size && c <= caps.max_part_size);
                    assert!(size.div_ceil(c) <= caps.max_parts);
                    c
                }
                Err(Error::FileTooLarge { size: s, max }) => {
                    assert_eq!(s, size);
                    assert!(size > max);
                    // Carry on with a layout that fits, to exercise the rest.
                    size.div_ceil(caps.max_parts.max(2)).max(1)
                }
                Err(other) => panic!("planning answered {other:?}"),
            };
            let file = FileMeta {
                name: Some(FileName::parse("data.bin").unwrap()),
                size: Some(size),
                ..FileMeta::default()
            };
            machine::open(id, owner, file, chunk_size, upload, start, &t)
        }
        Kind::Appended | Kind::Partial | Kind::Final => {
            let kind = match kind {
                Kind::Appended => UploadKind::Appended,
                Kind::Partial => UploadKind::Partial,
                _ => UploadKind::Final {
                    parts: vec![resumable::__fuzz::session_id(&"2".repeat(32)).unwrap()],
                },
            };
            let file = FileMeta {
                size: size.value(),
                ..FileMeta::default()
            };
            machine::open_appended(id, owner, file, kind, upload, start, &t)
        }
    };
    assert!(session.total_chunks() <= MAX_PARTS);
    let mut run = Run {
        s: session,
        now: start,
        t,
        step: 0,
        last_chunk: None,
    };
    check(&run.s.clone(), &run.s, run.now);
    // `MACHINE_TRACE=1` prints each step (to read what a seed or a crash does).
    let trace = std::env::var_os("MACHINE_TRACE").is_some();
    if trace {
        eprintln!(
            "{kind:?}, size {:?}, chunk size {}, {t:?}",
            run.s.file.size, run.s.chunk_size
        );
    }
    for (step, cmd) in input.cmds.into_iter().enumerate() {
        run.step = step as u64;
        let before = run.s.clone();
        let alive = run.apply(cmd);
        if trace {
            let received = ledger(&run.s).map(Ledger::received_bytes);
            let at = run.now.duration_since(start).unwrap_or_default();
            eprintln!(
                "{cmd:?} at +{at:?}: {:?}, received {received:?}",
                run.s.state.kind()
            );
        }
        if !alive {
            return;
        }
        check(&before, &run.s, run.now);
    }
}

fuzz_target!(|input: Input| {
    run(input);
});
