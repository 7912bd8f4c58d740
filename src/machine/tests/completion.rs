//! Completion: missing chunks, finishing and reopening, the empty file, and
//! the finalizing lease.

use super::*;

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
    assert_invalid_state(
        finish_complete(open.clone(), blob(10), t0(), &timeouts()),
        StateKind::Open,
        Operation::Complete,
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
    assert_gone(
        finish_complete(aborted(), blob(10), t0(), &timeouts()),
        StateKind::Aborted,
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

// ---- the finalizing lease ----

#[test]
fn a_second_complete_waits_for_the_lease_then_takes_over() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let lease_end = t0() + secs(10);
    assert_invalid_state(
        begin_complete(s.clone(), lease_end - NS, &timeouts()),
        StateKind::Finalizing,
        Operation::Complete,
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
    assert_gone(ensure_alive(&s, expiry), StateKind::Expired);
}

#[test]
fn a_finalizer_that_outlived_lease_and_expiry_cannot_revive_the_session() {
    let s = finalizing_at(record_all(session(10, 4), t0()), t0());
    let late = s.expires_at;
    let blob = FinishedBlob {
        size: 10,
        sha256: Sha256Digest::of(b"late"),
    };
    assert_gone(
        finish_complete(s.clone(), blob, late, &timeouts()),
        StateKind::Expired,
    );
    assert_gone(reopen(s.clone(), late, &timeouts()), StateKind::Expired);
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
