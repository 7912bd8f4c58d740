//! What each state refuses (aborted, expired, completed, claimed,
//! finalizing, open), abort, and expiry by the clock.

use super::*;

// ---- final states ----

/// Asserts that every operation on `s` at `now` answers that it is gone, in
/// state `kind`.
fn assert_refuses_everything_as_gone(s: &Session, now: SystemTime, kind: StateKind) {
    assert_gone(chunk_target(s, 0, now), kind);
    assert_gone(
        record_chunk(s.clone(), 0, receipt(0..4, "x"), now, &timeouts()),
        kind,
    );
    assert_gone(begin_complete(s.clone(), now, &timeouts()), kind);
    assert_gone(abort(s.clone(), now, &timeouts()), kind);
    assert_gone(claim(s.clone(), now), kind);
    assert_gone(readable_blob(s, now), kind);
    assert_gone(ensure_alive(s, now), kind);
}

#[test]
fn an_aborted_session_refuses_everything_as_gone() {
    let s = aborted();
    assert_refuses_everything_as_gone(&s, t0() + secs(2), StateKind::Aborted);
    assert_eq!(s.state.kind(), StateKind::Aborted);
}

#[test]
fn an_expired_session_refuses_everything_as_gone() {
    for reason in [ExpiryReason::Abandoned, ExpiryReason::Unclaimed] {
        assert_refuses_everything_as_gone(&expired(reason), t0() + secs(2), StateKind::Expired);
    }
}

#[test]
fn a_completed_or_claimed_upload_takes_no_chunk_and_no_abort() {
    let now = t0() + secs(2);
    for s in [completed(), claim(completed(), now).unwrap()] {
        let kind = s.state.kind();
        assert_invalid_state(chunk_target(&s, 0, now), kind, Operation::UploadChunk);
        assert_invalid_state(
            record_chunk(s.clone(), 0, receipt(0..4, "late"), now, &timeouts()),
            kind,
            Operation::UploadChunk,
        );
        assert_invalid_state(abort(s.clone(), now, &timeouts()), kind, Operation::Abort);
        assert_ok!(readable_blob(&s, now), blob(10));
    }
}

#[test]
fn a_finalizing_session_takes_no_chunk_no_abort_and_no_claim() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let now = t0() + secs(1);
    let finalizing = StateKind::Finalizing;
    assert_invalid_state(chunk_target(&s, 0, now), finalizing, Operation::UploadChunk);
    assert_invalid_state(
        abort(s.clone(), now, &timeouts()),
        finalizing,
        Operation::Abort,
    );
    assert_invalid_state(claim(s.clone(), now), finalizing, Operation::Claim);
    assert_invalid_state(readable_blob(&s, now), finalizing, Operation::Read);
}

#[test]
fn an_open_session_cannot_be_claimed_or_read() {
    let s = session(10, 4);
    assert_invalid_state(claim(s.clone(), t0()), StateKind::Open, Operation::Claim);
    assert_invalid_state(readable_blob(&s, t0()), StateKind::Open, Operation::Read);
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

    let expired = StateKind::Expired;
    assert_gone(ensure_alive(&s, deadline), expired);
    assert_gone(chunk_target(&s, 0, deadline), expired);
    assert_gone(
        record_chunk(s.clone(), 0, receipt(0..4, "a"), deadline, &timeouts()),
        expired,
    );
    assert_gone(begin_complete(s.clone(), deadline, &timeouts()), expired);
    assert_gone(abort(s.clone(), deadline, &timeouts()), expired);
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
    assert_gone(ensure_alive(&s, late + secs(100)), StateKind::Expired);
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
