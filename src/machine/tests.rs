//! Unit tests of every rule of the pure machine.

use std::time::{Duration, SystemTime};

use super::*;
use crate::digest::Sha256Digest;
use crate::error::{BodyLength, Error, Operation};
use crate::ledger::{PartReceipt, PartRef};
use crate::session::{ExpiryReason, FileMeta, FileName, Owner, SessionId, SessionState, StateKind};
use crate::sink::{FinishedBlob, SinkCapabilities, UploadHandle};

/// Asserts that `$result` is an `Err` matching `$pattern`, showing what it
/// was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pattern),
                other
            ),
        }
    };
}

/// Asserts that `$result` is `Ok($value)` (the crate's errors have no `PartialEq`).
macro_rules! assert_ok {
    ($result:expr, $value:expr $(,)?) => {
        match $result {
            Ok(v) => assert_eq!(v, $value),
            Err(e) => panic!("expected Ok, got Err({e:?})"),
        }
    };
}

const NS: Duration = Duration::from_nanos(1);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn timeouts() -> Timeouts {
    Timeouts {
        session_timeout: secs(100),
        temporary_max_age: secs(50),
        tombstone_retention: secs(30),
        finalize_lease: secs(10),
    }
}

fn caps(min: u64, max: u64, max_parts: u64) -> SinkCapabilities {
    SinkCapabilities {
        min_part_size: min,
        max_part_size: max,
        max_parts,
        max_blob_size: u64::MAX,
    }
}

/// An open session of `size` bytes in chunks of `chunk_size`, created at `t0`.
fn session(size: u64, chunk_size: u64) -> Session {
    let file = FileMeta {
        name: FileName::parse("file.bin").unwrap(),
        size,
        content_type: None,
        sha256: None,
    };
    open(
        SessionId::random(),
        Owner::new("owner"),
        file,
        chunk_size,
        UploadHandle::new("upload"),
        t0(),
        &timeouts(),
    )
}

fn receipt(range: std::ops::Range<u64>, tag: &str) -> PartReceipt {
    PartReceipt {
        offset: range.start,
        len: range.end - range.start,
        sha256: Sha256Digest::of(tag.as_bytes()),
        part: PartRef::new(tag),
    }
}

/// Records chunk `index` with its exact range.
fn record(s: Session, index: u64, now: SystemTime, tag: &str) -> Session {
    let range = s.chunk_range(index).expect("index in range");
    record_chunk(s, index, receipt(range, tag), now, &timeouts())
        .expect("chunk recorded")
        .0
}

fn record_all(mut s: Session, now: SystemTime) -> Session {
    for i in 0..s.total_chunks() {
        s = record(s, i, now, &format!("p{i}"));
    }
    s
}

fn blob(size: u64) -> FinishedBlob {
    FinishedBlob {
        size,
        sha256: Sha256Digest::of(b"blob"),
    }
}

fn finalizing_at(s: Session, now: SystemTime) -> Session {
    match begin_complete(s, now, &timeouts()).expect("complete begins") {
        Completion::Finalize(s) => s,
        other => panic!("expected Finalize, got {other:?}"),
    }
}

/// A completed session of 10 bytes in chunks of 4, completed at `t0 + 1s`.
fn completed() -> Session {
    let now = t0() + secs(1);
    let s = finalizing_at(record_all(session(10, 4), now), now);
    finish_complete(s, blob(10), now, &timeouts()).unwrap()
}

fn aborted() -> Session {
    abort(session(10, 4), t0() + secs(1), &timeouts()).unwrap()
}

fn expired(reason: ExpiryReason) -> Session {
    expire(session(10, 4), reason, t0() + secs(1), &timeouts())
}

fn ledger_ranges(s: &Session) -> Vec<std::ops::Range<u64>> {
    s.state
        .ledger()
        .expect("a ledger")
        .parts()
        .map(PartReceipt::range)
        .collect()
}

// ---- plan_chunk_size ----

#[test]
fn plan_keeps_the_preferred_size_within_bounds() {
    assert_ok!(plan_chunk_size(1000, 64, &caps(1, 1 << 20, 10_000)), 64);
    assert_ok!(plan_chunk_size(1000, 64, &SinkCapabilities::UNLIMITED), 64);
}

#[test]
fn plan_clamps_the_preferred_size_to_the_sink_bounds() {
    assert_ok!(plan_chunk_size(1000, 2, &caps(16, 128, 10_000)), 16);
    assert_ok!(plan_chunk_size(1000, 4096, &caps(16, 128, 10_000)), 128);
    // A preferred size of 0 is raised to the smallest part (at least 1 byte).
    assert_ok!(plan_chunk_size(10, 0, &caps(0, 128, 10_000)), 1);
}

#[test]
fn plan_raises_the_size_so_the_file_fits_the_part_count() {
    // 1,000 bytes in at most 10 parts need 100-byte parts.
    let size = plan_chunk_size(1000, 8, &caps(1, 1 << 20, 10)).unwrap();
    assert_eq!(size, 100);
    assert!(1000u64.div_ceil(size) <= 10);
    // 1,001 bytes in at most 10 parts need 101-byte parts.
    let size = plan_chunk_size(1001, 8, &caps(1, 1 << 20, 10)).unwrap();
    assert_eq!(size, 101);
    assert_eq!(1001u64.div_ceil(size), 10);
}

#[test]
fn plan_refuses_a_file_no_chunk_size_fits() {
    // 10 parts of at most 100 bytes hold 1,000 bytes.
    assert_ok!(plan_chunk_size(1000, 8, &caps(1, 100, 10)), 100);
    assert_err!(
        plan_chunk_size(1001, 8, &caps(1, 100, 10)),
        Error::FileTooLarge {
            size: 1001,
            max: 1000
        }
    );
    // The blob limit applies too.
    let limited = SinkCapabilities {
        max_blob_size: 500,
        ..caps(1, 100, 10)
    };
    assert_err!(
        plan_chunk_size(501, 8, &limited),
        Error::FileTooLarge {
            size: 501,
            max: 500
        }
    );
    assert_ok!(plan_chunk_size(500, 8, &limited), 50);
}

#[test]
fn plan_for_an_empty_file_keeps_the_preferred_size() {
    assert_ok!(plan_chunk_size(0, 64, &caps(1, 1 << 20, 10)), 64);
    assert_ok!(plan_chunk_size(0, 64, &caps(1, 100, 1)), 64);
}

// ---- open and the chunk layout ----

#[test]
fn a_new_session_is_open_with_an_empty_ledger_and_a_timeout() {
    let s = session(10, 4);
    assert_eq!(s.created_at, t0());
    assert_eq!(s.expires_at, t0() + secs(100));
    assert_eq!(s.state.kind(), StateKind::Open);
    assert_eq!(s.state.ledger().unwrap().parts().len(), 0);
    assert_eq!(s.total_chunks(), 3);
    assert_eq!(s.chunk_range(0), Some(0..4));
    assert_eq!(s.chunk_range(2), Some(8..10));
    assert_eq!(s.chunk_range(3), None);
    // A chunk size of 0 is raised to 1 byte.
    assert_eq!(session(3, 0).chunk_size, 1);
}

#[test]
fn chunk_indices_past_the_last_are_out_of_range_with_the_total() {
    let s = session(10, 4);
    assert_ok!(chunk_target(&s, 0, t0()), 0..4);
    assert_ok!(chunk_target(&s, 2, t0()), 8..10);
    assert_err!(
        chunk_target(&s, 3, t0()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
    assert_err!(
        chunk_target(&s, u64::MAX, t0()),
        Error::ChunkOutOfRange {
            index: u64::MAX,
            total: 3
        }
    );
    assert_err!(
        record_chunk(s, 3, receipt(12..16, "x"), t0(), &timeouts()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
}

#[test]
fn a_file_that_divides_evenly_has_full_last_chunk() {
    let s = session(12, 4);
    assert_eq!(s.total_chunks(), 3);
    assert_ok!(chunk_target(&s, 2, t0()), 8..12);
    assert_err!(
        chunk_target(&s, 3, t0()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
}

// ---- exact chunk length ----

#[test]
fn every_chunk_but_the_last_has_exactly_the_chunk_size() {
    let s = session(10, 4);
    for (index, range) in [(0, 0..4), (1, 4..8), (2, 8..10)] {
        let (next, replaced) = record_chunk(
            s.clone(),
            index,
            receipt(range.clone(), "ok"),
            t0(),
            &timeouts(),
        )
        .unwrap();
        assert_eq!(replaced, None);
        assert_eq!(ledger_ranges(&next), [range]);
    }
}

#[test]
fn a_receipt_of_the_wrong_range_is_refused() {
    let s = session(10, 4);
    let cases = [
        (0, 0..3, 4, 3),  // short
        (0, 0..5, 4, 5),  // long
        (1, 0..4, 4, 4),  // right length, wrong offset
        (1, 5..9, 4, 4),  // right length, shifted
        (2, 8..12, 2, 4), // the last chunk padded to a full chunk
        (2, 8..9, 2, 1),  // the last chunk truncated
        (1, 4..4, 4, 0),  // empty
    ];
    for (index, range, expected, actual) in cases {
        let result = record_chunk(
            s.clone(),
            index,
            receipt(range.clone(), "bad"),
            t0(),
            &timeouts(),
        );
        match result {
            Err(Error::ChunkLength {
                index: i,
                expected: e,
                actual: BodyLength::Exactly(a),
            }) => assert_eq!((i, e, a), (index, expected, actual), "{range:?}"),
            other => panic!("chunk {index} with {range:?}: {other:?}"),
        }
    }
}

// ---- duplicates and retries ----

#[test]
fn a_retried_chunk_replaces_the_old_receipt_and_returns_it() {
    let s = record(session(10, 4), 1, t0(), "first");
    let (s, replaced) = record_chunk(s, 1, receipt(4..8, "second"), t0(), &timeouts()).unwrap();
    let replaced = replaced.expect("the first receipt is returned");
    assert_eq!(replaced.part.as_str(), "first");
    assert_eq!(replaced.range(), 4..8);
    let ledger = s.state.ledger().unwrap();
    assert_eq!(ledger.parts().len(), 1);
    assert_eq!(ledger.part_at(4).unwrap().part.as_str(), "second");
    assert_eq!(received_chunks(&s), [1]);
}

#[test]
fn a_retry_of_the_wrong_length_leaves_the_first_receipt() {
    let s = record(session(10, 4), 1, t0(), "first");
    assert_err!(
        record_chunk(s.clone(), 1, receipt(4..7, "short"), t0(), &timeouts()),
        Error::ChunkLength { index: 1, .. }
    );
    assert_eq!(
        s.state.ledger().unwrap().part_at(4).unwrap().part.as_str(),
        "first"
    );
}

// ---- completion ----

#[test]
fn complete_needs_every_byte_and_names_the_missing_chunks() {
    let s = session(10, 4);
    assert_err!(
        begin_complete(s.clone(), t0(), &timeouts()),
        Error::MissingChunks { missing, missing_count: 3 } if missing == [0, 1, 2]
    );
    let s = record(s, 1, t0(), "b");
    assert_err!(
        begin_complete(s.clone(), t0(), &timeouts()),
        Error::MissingChunks { missing, missing_count: 2 } if missing == [0, 2]
    );
    let s = record(record(s, 2, t0(), "c"), 0, t0(), "a");
    let s = finalizing_at(s, t0());
    match &s.state {
        SessionState::Finalizing {
            ledger,
            lease_until,
        } => {
            assert_eq!(*lease_until, t0() + secs(10));
            assert!(ledger.is_complete(10));
            assert_eq!(ledger.parts().len(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_missing_list_is_capped_but_the_count_is_not() {
    let s = session(MAX_LISTED_MISSING as u64 + 500, 1);
    assert_err!(
        begin_complete(s, t0(), &timeouts()),
        Error::MissingChunks { missing, missing_count }
            if missing.len() == MAX_LISTED_MISSING
                && missing_count == MAX_LISTED_MISSING as u64 + 500
                && missing[0] == 0
    );
}

#[test]
fn received_and_missing_chunks_partition_the_indices() {
    let s = record(record(session(10, 4), 2, t0(), "c"), 0, t0(), "a");
    assert_eq!(received_chunks(&s), [0, 2]);
    assert_eq!(missing_chunks(&s), [1]);
    let done = completed();
    assert_eq!(received_chunks(&done), [0, 1, 2]);
    assert!(missing_chunks(&done).is_empty());
    let gone = aborted();
    assert!(received_chunks(&gone).is_empty());
    assert_eq!(missing_chunks(&gone), [0, 1, 2]);
}

#[test]
fn finish_complete_makes_the_upload_temporary() {
    let now = t0() + secs(5);
    let s = finalizing_at(record_all(session(10, 4), now), now);
    let s = finish_complete(s, blob(10), now, &timeouts()).unwrap();
    assert_eq!(
        s.state,
        SessionState::Completed {
            at: now,
            reap_at: now + secs(50),
            blob: blob(10),
        }
    );
    assert_eq!(received_chunks(&s), [0, 1, 2]);
    assert!(!s.is_active(s.created_at));
    assert_eq!(s.due_at(), Some(now + secs(50)));
}

#[test]
fn finish_complete_and_reopen_need_a_finalizing_session() {
    let open = session(10, 4);
    assert_err!(
        finish_complete(open.clone(), blob(10), t0(), &timeouts()),
        Error::InvalidState {
            state: StateKind::Open,
            operation: Operation::Complete,
            ..
        }
    );
    assert_err!(
        reopen(open, t0(), &timeouts()),
        Error::InvalidState {
            state: StateKind::Open,
            ..
        }
    );
    assert_err!(
        reopen(completed(), t0(), &timeouts()),
        Error::InvalidState {
            state: StateKind::Completed,
            ..
        }
    );
    // A dead session is gone, as for every other operation.
    assert_err!(
        finish_complete(aborted(), blob(10), t0(), &timeouts()),
        Error::SessionGone {
            state: StateKind::Aborted,
            ..
        }
    );
}

#[test]
fn complete_of_a_completed_or_claimed_upload_returns_its_blob() {
    let done = completed();
    let now = t0() + secs(2);
    assert_ok!(
        begin_complete(done.clone(), now, &timeouts()),
        Completion::AlreadyCompleted(blob(10))
    );
    let claimed = claim(done, now).unwrap();
    assert_ok!(
        begin_complete(claimed, now, &timeouts()),
        Completion::AlreadyCompleted(blob(10))
    );
}

// ---- the empty file ----

#[test]
fn an_empty_file_has_no_chunks_and_completes_at_once() {
    let s = session(0, 4);
    assert_eq!(s.total_chunks(), 0);
    assert!(received_chunks(&s).is_empty());
    assert!(missing_chunks(&s).is_empty());
    assert_err!(
        chunk_target(&s, 0, t0()),
        Error::ChunkOutOfRange { index: 0, total: 0 }
    );
    let s = finalizing_at(s, t0());
    let s = finish_complete(s, blob(0), t0(), &timeouts()).unwrap();
    assert_eq!(s.state.kind(), StateKind::Completed);
}

// ---- final states ----

#[test]
fn an_aborted_session_refuses_everything_as_gone() {
    let s = aborted();
    let later = t0() + secs(2);
    let gone = |r: Result<(), Error>| {
        assert_err!(
            r,
            Error::SessionGone {
                state: StateKind::Aborted,
                ..
            }
        )
    };
    gone(chunk_target(&s, 0, later).map(drop));
    gone(record_chunk(s.clone(), 0, receipt(0..4, "x"), later, &timeouts()).map(drop));
    gone(begin_complete(s.clone(), later, &timeouts()).map(drop));
    gone(abort(s.clone(), later, &timeouts()).map(drop));
    gone(claim(s.clone(), later).map(drop));
    gone(readable_blob(&s, later).map(drop));
    gone(ensure_alive(&s, later));
    assert_eq!(s.state.kind(), StateKind::Aborted);
}

#[test]
fn an_expired_session_refuses_everything_as_gone() {
    for reason in [ExpiryReason::Abandoned, ExpiryReason::Unclaimed] {
        let s = expired(reason);
        let later = t0() + secs(2);
        let gone = |r: Result<(), Error>| {
            assert_err!(
                r,
                Error::SessionGone {
                    state: StateKind::Expired,
                    ..
                }
            )
        };
        gone(chunk_target(&s, 0, later).map(drop));
        gone(record_chunk(s.clone(), 0, receipt(0..4, "x"), later, &timeouts()).map(drop));
        gone(begin_complete(s.clone(), later, &timeouts()).map(drop));
        gone(abort(s.clone(), later, &timeouts()).map(drop));
        gone(claim(s.clone(), later).map(drop));
        gone(readable_blob(&s, later).map(drop));
        gone(ensure_alive(&s, later));
    }
}

#[test]
fn a_completed_or_claimed_upload_takes_no_chunk_and_no_abort() {
    let now = t0() + secs(2);
    for s in [completed(), claim(completed(), now).unwrap()] {
        let kind = s.state.kind();
        assert_err!(
            chunk_target(&s, 0, now),
            Error::InvalidState { state, operation: Operation::UploadChunk, .. } if state == kind
        );
        assert_err!(
            record_chunk(s.clone(), 0, receipt(0..4, "late"), now, &timeouts()),
            Error::InvalidState { state, operation: Operation::UploadChunk, .. } if state == kind
        );
        assert_err!(
            abort(s.clone(), now, &timeouts()),
            Error::InvalidState { state, operation: Operation::Abort, .. } if state == kind
        );
        assert_ok!(readable_blob(&s, now), blob(10));
    }
}

#[test]
fn a_finalizing_session_takes_no_chunk_no_abort_and_no_claim() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let now = t0() + secs(1);
    assert_err!(
        chunk_target(&s, 0, now),
        Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::UploadChunk,
            ..
        }
    );
    assert_err!(
        abort(s.clone(), now, &timeouts()),
        Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::Abort,
            ..
        }
    );
    assert_err!(
        claim(s.clone(), now),
        Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::Claim,
            ..
        }
    );
    assert_err!(
        readable_blob(&s, now),
        Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::Read,
            ..
        }
    );
}

#[test]
fn an_open_session_cannot_be_claimed_or_read() {
    let s = session(10, 4);
    assert_err!(
        claim(s.clone(), t0()),
        Error::InvalidState {
            state: StateKind::Open,
            operation: Operation::Claim,
            ..
        }
    );
    assert_err!(
        readable_blob(&s, t0()),
        Error::InvalidState {
            state: StateKind::Open,
            operation: Operation::Read,
            ..
        }
    );
}

#[test]
fn abort_of_an_open_session_sets_the_tombstone() {
    let now = t0() + secs(3);
    let s = abort(record(session(10, 4), 0, t0(), "a"), now, &timeouts()).unwrap();
    assert_eq!(
        s.state,
        SessionState::Aborted {
            at: now,
            purged: false,
            forget_at: now + secs(30),
        }
    );
    assert!(!s.is_active(s.created_at));
    assert_eq!(s.due_at(), Some(now));
}

// ---- expiry ----

#[test]
fn an_open_session_expires_at_exactly_its_deadline() {
    let s = session(10, 4);
    let deadline = s.expires_at;
    assert_ok!(ensure_alive(&s, deadline - NS), ());
    assert_ok!(chunk_target(&s, 0, deadline - NS), 0..4);
    assert!(record_chunk(s.clone(), 0, receipt(0..4, "a"), deadline - NS, &timeouts()).is_ok());
    assert_eq!(sweep_action(&s, deadline - NS), SweepAction::Keep);

    let expired_now = |r: Result<(), Error>| {
        assert_err!(
            r,
            Error::SessionGone {
                state: StateKind::Expired,
                ..
            }
        )
    };
    expired_now(ensure_alive(&s, deadline));
    expired_now(chunk_target(&s, 0, deadline).map(drop));
    expired_now(record_chunk(s.clone(), 0, receipt(0..4, "a"), deadline, &timeouts()).map(drop));
    expired_now(begin_complete(s.clone(), deadline, &timeouts()).map(drop));
    expired_now(abort(s.clone(), deadline, &timeouts()).map(drop));
    assert_eq!(
        sweep_action(&s, deadline),
        SweepAction::Expire(ExpiryReason::Abandoned)
    );
    // The record itself is still open: only time says it is gone.
    assert_eq!(s.state.kind(), StateKind::Open);
}

#[test]
fn a_recorded_chunk_extends_the_expiry() {
    let s = session(10, 4);
    let late = s.expires_at - NS;
    let (s, _) = record_chunk(s, 0, receipt(0..4, "a"), late, &timeouts()).unwrap();
    assert_eq!(s.expires_at, late + secs(100));
    assert_ok!(ensure_alive(&s, late + secs(50)), ());
    assert_eq!(sweep_action(&s, late + secs(50)), SweepAction::Keep);
    assert_err!(
        ensure_alive(&s, late + secs(100)),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
}

#[test]
fn a_recorded_chunk_never_shortens_the_expiry() {
    let s = session(10, 4);
    let pushed = Session {
        expires_at: t0() + secs(1000),
        ..s
    };
    let (s, _) = record_chunk(pushed, 0, receipt(0..4, "a"), t0() + secs(1), &timeouts()).unwrap();
    assert_eq!(s.expires_at, t0() + secs(1000));
}

#[test]
fn a_refused_chunk_does_not_extend_the_expiry() {
    let s = session(10, 4);
    let before = s.expires_at;
    assert!(
        record_chunk(
            s.clone(),
            0,
            receipt(0..3, "short"),
            t0() + secs(50),
            &timeouts()
        )
        .is_err()
    );
    assert_eq!(s.expires_at, before);
}

// ---- temporary uploads, claim and reaping ----

#[test]
fn an_unclaimed_upload_is_reaped_after_the_temporary_max_age() {
    let s = completed();
    let SessionState::Completed { reap_at, .. } = s.state else {
        panic!("{:?}", s.state)
    };
    assert_eq!(reap_at, t0() + secs(1) + secs(50));
    assert_eq!(sweep_action(&s, reap_at - NS), SweepAction::Keep);
    assert_ok!(readable_blob(&s, reap_at - NS), blob(10));
    assert_eq!(
        sweep_action(&s, reap_at),
        SweepAction::Expire(ExpiryReason::Unclaimed)
    );
    assert_err!(
        readable_blob(&s, reap_at),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    assert_err!(
        claim(s.clone(), reap_at),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    let e = expire(s, ExpiryReason::Unclaimed, reap_at, &timeouts());
    assert_eq!(
        e.state,
        SessionState::Expired {
            at: reap_at,
            reason: ExpiryReason::Unclaimed,
            purged: false,
            forget_at: reap_at + secs(30),
        }
    );
}

#[test]
fn the_session_timeout_does_not_reap_a_completed_upload() {
    // A completed upload lives by its reap time, not by the open expiry.
    let s = completed();
    let after_open_expiry = s.expires_at + NS;
    let reaped_by = match s.state {
        SessionState::Completed { reap_at, .. } => reap_at,
        _ => unreachable!(),
    };
    assert!(reaped_by < after_open_expiry);
    let long_lived = Session {
        state: SessionState::Completed {
            at: t0(),
            reap_at: after_open_expiry + secs(1),
            blob: blob(10),
        },
        ..s
    };
    assert_ok!(ensure_alive(&long_lived, after_open_expiry), ());
    assert_eq!(
        sweep_action(&long_lived, after_open_expiry),
        SweepAction::Keep
    );
}

#[test]
fn claim_makes_the_upload_permanent_and_is_idempotent() {
    let now = t0() + secs(2);
    let claimed = claim(completed(), now).unwrap();
    assert_eq!(
        claimed.state,
        SessionState::Claimed {
            at: now,
            blob: blob(10)
        }
    );
    let again = claim(claimed.clone(), now + secs(5)).unwrap();
    assert_eq!(again, claimed);
    let far = now + secs(1_000_000);
    assert_eq!(sweep_action(&claimed, far), SweepAction::Keep);
    assert_eq!(claimed.due_at(), None);
    assert_ok!(ensure_alive(&claimed, far), ());
    assert_ok!(readable_blob(&claimed, far), blob(10));
}

// ---- the finalizing lease ----

#[test]
fn a_second_complete_waits_for_the_lease_then_takes_over() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let lease_end = t0() + secs(10);
    assert_err!(
        begin_complete(s.clone(), lease_end - NS, &timeouts()),
        Error::InvalidState {
            state: StateKind::Finalizing,
            operation: Operation::Complete,
            ..
        }
    );
    match begin_complete(s, lease_end, &timeouts()) {
        Ok(Completion::Finalize(taken)) => match taken.state {
            SessionState::Finalizing {
                lease_until,
                ledger,
            } => {
                assert_eq!(lease_until, lease_end + secs(10));
                assert!(ledger.is_complete(10));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stuck_finalization_expires_once_lease_and_expiry_have_passed() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let expiry = s.expires_at;
    // Past the lease but before the session's expiry: kept, still alive.
    assert_eq!(sweep_action(&s, t0() + secs(50)), SweepAction::Keep);
    assert_ok!(ensure_alive(&s, t0() + secs(50)), ());
    assert_eq!(s.due_at(), Some(expiry));
    assert_eq!(sweep_action(&s, expiry - NS), SweepAction::Keep);
    assert_eq!(
        sweep_action(&s, expiry),
        SweepAction::Expire(ExpiryReason::Abandoned)
    );
    assert_err!(
        ensure_alive(&s, expiry),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
}

#[test]
fn a_finalizer_that_outlived_lease_and_expiry_cannot_revive_the_session() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let late = s.expires_at;
    let blob = FinishedBlob {
        size: 10,
        sha256: Sha256Digest::of(b"late"),
    };
    assert_err!(
        finish_complete(s.clone(), blob, late, &timeouts()),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    assert_err!(
        reopen(s.clone(), late, &timeouts()),
        Error::SessionGone {
            state: StateKind::Expired,
            ..
        }
    );
    // One nanosecond earlier the same finalizer still completes it.
    assert!(finish_complete(s, blob, late - NS, &timeouts()).is_ok());
}

#[test]
fn only_unexpired_open_and_finalizing_sessions_are_active() {
    let s = session(10, 4);
    assert!(s.is_active(t0()));
    assert!(s.is_active(s.expires_at - NS));
    assert!(!s.is_active(s.expires_at), "expired even before any sweep");
    let f = finalizing_at(record_all(session(10, 4), t0()), t0());
    assert!(f.is_active(f.expires_at - NS));
    assert!(!f.is_active(f.expires_at));
}

#[test]
fn reopen_returns_to_open_with_the_ledger_intact() {
    let s = record_all(session(10, 4), t0());
    let ledger = s.state.ledger().unwrap().clone();
    let s = finalizing_at(s, t0());
    let now = t0() + secs(99);
    let reopened = reopen(s, now, &timeouts()).unwrap();
    assert_eq!(reopened.state, SessionState::Open { ledger });
    assert_eq!(reopened.expires_at, now + secs(100));
    assert!(reopened.is_active(reopened.created_at));
    // And it can be repaired and completed again.
    let repaired = record(reopened, 1, now, "fixed");
    assert!(begin_complete(repaired, now, &timeouts()).is_ok());
}

// ---- the sweep ----

#[test]
fn sweep_action_for_every_state() {
    let t = timeouts();
    let now = t0() + secs(1);
    let open = session(10, 4);
    assert_eq!(sweep_action(&open, now), SweepAction::Keep);
    assert_eq!(
        sweep_action(&open, open.expires_at),
        SweepAction::Expire(ExpiryReason::Abandoned)
    );

    let fin = finalizing_at(record_all(session(10, 4), now), now);
    assert_eq!(sweep_action(&fin, now), SweepAction::Keep);

    let done = completed();
    assert_eq!(sweep_action(&done, now), SweepAction::Keep);

    let claimed = claim(completed(), now).unwrap();
    assert_eq!(sweep_action(&claimed, now), SweepAction::Keep);

    for dead in [aborted(), expired(ExpiryReason::Abandoned)] {
        // Not yet purged: purge now, whatever the time.
        assert_eq!(sweep_action(&dead, now), SweepAction::Purge);
        assert_eq!(dead.due_at(), Some(now));
        let purged = mark_purged(dead);
        let forget_at = now + t.tombstone_retention;
        assert_eq!(purged.due_at(), Some(forget_at));
        assert_eq!(sweep_action(&purged, forget_at - NS), SweepAction::Keep);
        assert_eq!(sweep_action(&purged, forget_at), SweepAction::Forget);
    }
}

#[test]
fn mark_purged_sets_only_the_flag() {
    let a = aborted();
    assert_eq!(
        mark_purged(a.clone()).state,
        SessionState::Aborted {
            at: t0() + secs(1),
            purged: true,
            forget_at: t0() + secs(31),
        }
    );
    let e = expired(ExpiryReason::Unclaimed);
    assert_eq!(
        mark_purged(e).state,
        SessionState::Expired {
            at: t0() + secs(1),
            reason: ExpiryReason::Unclaimed,
            purged: true,
            forget_at: t0() + secs(31),
        }
    );
    // Idempotent, and a no-op for live sessions.
    assert_eq!(mark_purged(mark_purged(a.clone())), mark_purged(a));
    let open = session(10, 4);
    assert_eq!(mark_purged(open.clone()), open);
    let done = completed();
    assert_eq!(mark_purged(done.clone()), done);
}

#[test]
fn due_at_agrees_with_sweep_action() {
    let now = t0() + secs(1);
    let samples = [
        session(10, 4),
        finalizing_at(record_all(session(10, 4), now), now),
        completed(),
        claim(completed(), now).unwrap(),
        aborted(),
        mark_purged(aborted()),
        expired(ExpiryReason::Abandoned),
        mark_purged(expired(ExpiryReason::Unclaimed)),
    ];
    for s in &samples {
        // From the last transition on (a sweep never runs before it).
        for offset in [1, 2, 11, 12, 31, 32, 51, 52, 100, 101, 1000] {
            for at in [t0() + secs(offset) - NS, t0() + secs(offset)] {
                if at < now {
                    continue;
                }
                let due = s.due_at().is_some_and(|d| d <= at);
                let work = sweep_action(s, at) != SweepAction::Keep;
                assert_eq!(due, work, "{:?} at +{offset}s", s.state.kind());
            }
        }
    }
}
