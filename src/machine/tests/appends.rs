//! The appending rules: the target of an append, recording appended bytes,
//! declaring the length, completion of appended and concatenated uploads,
//! and termination.

use super::*;
use crate::session::UploadKind;

/// The range of the first append in several tests.
const FIRST: std::ops::Range<u64> = 0..4;

/// An open upload of `kind` that receives its bytes by appending, created at
/// `t0`, of `size` bytes if known.
fn appended(size: Option<u64>, kind: UploadKind) -> Session {
    let file = FileMeta {
        size,
        ..FileMeta::default()
    };
    open_appended(
        SessionId::random(),
        Owner::new("owner"),
        file,
        kind,
        UploadHandle::new("upload"),
        t0(),
        &timeouts(),
    )
}

fn final_of_two(size: Option<u64>) -> Session {
    let parts = vec![SessionId::random(), SessionId::random()];
    appended(size, UploadKind::Final { parts })
}

/// Appends the bytes of `range` at `now`.
fn append(s: Session, range: std::ops::Range<u64>, now: SystemTime) -> Session {
    let tag = format!("a{}", range.start);
    record_append(s, receipt(range, &tag), now, &timeouts()).expect("append recorded")
}

/// A completed appended upload of 10 bytes, completed at `t0 + 1s`.
fn completed_appended() -> Session {
    let now = t0() + secs(1);
    let s = finalizing_at(
        append(appended(Some(10), UploadKind::Appended), 0..10, now),
        now,
    );
    finish_complete(s, blob(10), now, &timeouts()).unwrap()
}

// ---- the target of an append ----

#[test]
fn an_appended_upload_takes_no_indexed_chunk() {
    for kind in [
        UploadKind::Appended,
        UploadKind::Partial,
        UploadKind::Final {
            parts: vec![SessionId::random()],
        },
    ] {
        let s = appended(Some(10), kind);
        let now = t0() + secs(1);
        assert_invalid_state(
            chunk_target(&s, 0, now),
            StateKind::Open,
            Operation::UploadChunk,
        );
        assert_invalid_state(
            record_chunk(s.clone(), 0, receipt(0..10, "c"), now, &timeouts()),
            StateKind::Open,
            Operation::UploadChunk,
        );
        assert!(ledger_ranges(&s).is_empty(), "nothing recorded");
    }
}

#[test]
fn an_appended_upload_starts_open_at_offset_0() {
    let s = appended(None, UploadKind::Partial);
    assert_eq!(s.kind, UploadKind::Partial);
    assert_eq!(
        s.state,
        SessionState::Open {
            ledger: crate::ledger::Ledger::new()
        }
    );
    assert_eq!(s.expires_at, t0() + secs(100));
    assert_eq!(s.total_chunks(), 0, "no chunks while the length is unknown");
    assert_eq!(appended(Some(10), UploadKind::Appended).total_chunks(), 1);
}

#[test]
fn only_appended_and_partial_uploads_take_appends() {
    let now = t0() + secs(1);
    assert_invalid_state(
        append_target(&session(10, 4), 0, now),
        StateKind::Open,
        Operation::Append,
    );
    assert_invalid_state(
        append_target(&final_of_two(Some(10)), 0, now),
        StateKind::Open,
        Operation::Append,
    );
    assert_invalid_state(
        record_append(final_of_two(Some(10)), receipt(0..4, "x"), now, &timeouts()),
        StateKind::Open,
        Operation::Append,
    );
    for kind in [UploadKind::Appended, UploadKind::Partial] {
        assert_ok!(append_target(&appended(Some(10), kind), 0, now), Some(10));
    }
    let done = completed_appended();
    assert_invalid_state(
        append_target(&done, 10, now),
        StateKind::Completed,
        Operation::Append,
    );
    let gone = abort(appended(None, UploadKind::Appended), now, &timeouts()).unwrap();
    assert_gone(append_target(&gone, 0, now), StateKind::Aborted);
}

#[test]
fn an_append_must_start_at_the_current_offset() {
    let s = appended(Some(10), UploadKind::Appended);
    assert_err!(
        append_target(&s, 3, t0()),
        Error::OffsetMismatch {
            expected: 0,
            provided: 3
        }
    );
    let s = append(s, 0..4, t0());
    for provided in [0, 3, 5] {
        assert_err!(
            append_target(&s, provided, t0()),
            Error::OffsetMismatch { expected: 4, provided: p } if p == provided
        );
    }
    // Recording checks the offset again: a receipt for a stale offset.
    assert_err!(
        record_append(s.clone(), receipt(0..4, "stale"), t0(), &timeouts()),
        Error::OffsetMismatch {
            expected: 4,
            provided: 0
        }
    );
    assert_eq!(ledger_ranges(&s), [FIRST]);
}

#[test]
fn the_room_left_is_known_only_with_the_length() {
    let known = append(appended(Some(10), UploadKind::Appended), 0..4, t0());
    assert_ok!(append_target(&known, 4, t0()), Some(6));
    let unknown = append(appended(None, UploadKind::Partial), 0..4, t0());
    assert_ok!(append_target(&unknown, 4, t0()), None);
}

// ---- recording appended bytes ----

#[test]
fn recording_an_append_extends_the_expiry() {
    let s = appended(None, UploadKind::Appended);
    let s = append(s, 0..4, t0() + secs(30));
    assert_eq!(s.expires_at, t0() + secs(130));
    assert_eq!(ledger_ranges(&s), [FIRST]);
    let s = append(s, 4..9, t0() + secs(40));
    assert_eq!(s.expires_at, t0() + secs(140));
    assert_eq!(ledger_ranges(&s), [0..4, 4..9]);
    assert_ok!(append_target(&s, 9, t0() + secs(40)), None);
}

#[test]
fn bytes_beyond_the_length_are_refused_and_not_recorded() {
    let s = append(appended(Some(10), UploadKind::Appended), 0..4, t0());
    assert_err!(
        record_append(s.clone(), receipt(4..11, "long"), t0(), &timeouts()),
        Error::BeyondLength { length: 10 }
    );
    assert_eq!(ledger_ranges(&s), [FIRST]);
    let s = append(s, 4..10, t0());
    assert!(is_fully_received(&s));
}

#[test]
fn a_zero_length_append_records_nothing_but_counts_as_activity() {
    let s = append(appended(Some(10), UploadKind::Appended), 0..4, t0());
    let now = t0() + secs(60);
    let s = record_append(s, receipt(4..4, "empty"), now, &timeouts()).unwrap();
    assert_eq!(ledger_ranges(&s), [FIRST]);
    assert_eq!(s.expires_at, now + secs(100));
    // At the wrong offset it is still refused.
    assert_err!(
        record_append(s, receipt(7..7, "empty"), now, &timeouts()),
        Error::OffsetMismatch {
            expected: 4,
            provided: 7
        }
    );
}

// ---- declaring the length ----

#[test]
fn an_unknown_length_is_declared_once() {
    let s = append(appended(None, UploadKind::Appended), 0..4, t0());
    let s = declare_length(s, 10, t0()).unwrap();
    assert_eq!(s.file.size, Some(10));
    assert_ok!(append_target(&s, 4, t0()), Some(6));
    // The same length again changes nothing.
    assert_ok!(declare_length(s.clone(), 10, t0()), s.clone());
    // Another one is refused.
    for other in [9, 11, 0] {
        assert_err!(
            declare_length(s.clone(), other, t0()),
            Error::InconsistentLength { .. }
        );
    }
}

#[test]
fn a_length_shorter_than_the_bytes_received_is_refused() {
    let s = append(appended(None, UploadKind::Partial), 0..4, t0());
    assert_err!(
        declare_length(s.clone(), 3, t0()),
        Error::InconsistentLength { .. }
    );
    // Exactly the bytes received: the upload is then fully received.
    let s = declare_length(s, 4, t0()).unwrap();
    assert_eq!(s.file.size, Some(4));
    assert!(is_fully_received(&s));
}

#[test]
fn the_length_of_an_upload_no_longer_open_cannot_be_declared() {
    let now = t0() + secs(2);
    assert_invalid_state(
        declare_length(completed_appended(), 10, now),
        StateKind::Completed,
        Operation::DeclareLength,
    );
    let gone = abort(appended(None, UploadKind::Appended), now, &timeouts()).unwrap();
    assert_gone(declare_length(gone, 10, now), StateKind::Aborted);
}

// ---- completion ----

#[test]
fn complete_needs_the_length() {
    for s in [
        appended(None, UploadKind::Appended),
        append(appended(None, UploadKind::Partial), 0..4, t0()),
        final_of_two(None),
    ] {
        assert_err!(begin_complete(s, t0(), &timeouts()), Error::LengthUnknown);
    }
}

#[test]
fn complete_of_an_incomplete_appended_upload_is_inconsistent() {
    for kind in [UploadKind::Appended, UploadKind::Partial] {
        let s = append(appended(Some(10), kind), 0..4, t0());
        assert_err!(
            begin_complete(s.clone(), t0(), &timeouts()),
            Error::InconsistentLength { .. }
        );
        let s = finalizing_at(append(s, 4..10, t0()), t0());
        assert_eq!(s.state.ledger().map(|l| l.parts().len()), Some(2));
    }
}

#[test]
fn complete_of_a_concatenation_skips_the_ledger() {
    // A final upload receives no bytes of its own: its partial uploads make
    // its blob, so its empty ledger does not hold it back.
    let s = finalizing_at(final_of_two(Some(10)), t0());
    assert_eq!(s.state.ledger().map(|l| l.parts().len()), Some(0));
    let s = finish_complete(s, blob(10), t0(), &timeouts()).unwrap();
    assert_eq!(s.state.blob(), Some(&blob(10)));
}

#[test]
fn fully_received_needs_an_open_upload_of_known_length_with_every_byte() {
    let s = appended(None, UploadKind::Appended);
    assert!(!is_fully_received(&s));
    let s = append(s, 0..4, t0());
    assert!(!is_fully_received(&s));
    let s = declare_length(s, 10, t0()).unwrap();
    assert!(!is_fully_received(&s));
    let s = append(s, 4..10, t0());
    assert!(is_fully_received(&s));
    assert!(!is_fully_received(&finalizing_at(s, t0())));
    assert!(!is_fully_received(&completed_appended()));
    assert!(is_fully_received(&appended(Some(0), UploadKind::Appended)));
    assert!(!is_fully_received(&final_of_two(Some(10))));
    assert!(is_fully_received(&record_all(session(10, 4), t0())));
}

// ---- termination ----

#[test]
fn terminate_aborts_an_open_upload() {
    let now = t0() + secs(3);
    let s = append(appended(Some(10), UploadKind::Appended), 0..4, t0());
    let s = terminate(s, now, &timeouts()).unwrap();
    assert_eq!(
        s.state,
        SessionState::Aborted {
            at: now,
            purged: false,
            forget_at: now + secs(30),
        }
    );
    assert_eq!(sweep_action(&s, now), SweepAction::Purge);
}

#[test]
fn terminate_aborts_a_completed_temporary_upload() {
    let now = t0() + secs(3);
    let s = terminate(completed_appended(), now, &timeouts()).unwrap();
    assert_eq!(
        s.state,
        SessionState::Aborted {
            at: now,
            purged: false,
            forget_at: now + secs(30),
        }
    );
    assert_gone(readable_blob(&s, now), StateKind::Aborted);
}

#[test]
fn terminate_refuses_claimed_and_finalizing_uploads_and_dead_ones_are_gone() {
    let now = t0() + secs(3);
    let claimed = claim(completed_appended(), now).unwrap();
    assert_invalid_state(
        terminate(claimed, now, &timeouts()),
        StateKind::Claimed,
        Operation::Abort,
    );
    let full = append(appended(Some(10), UploadKind::Appended), 0..10, t0());
    assert_invalid_state(
        terminate(finalizing_at(full, t0()), now, &timeouts()),
        StateKind::Finalizing,
        Operation::Abort,
    );
    let aborted = terminate(appended(None, UploadKind::Appended), now, &timeouts()).unwrap();
    assert_gone(terminate(aborted, now, &timeouts()), StateKind::Aborted);
    // A completed upload past its reap time is expired, not terminable.
    let done = completed_appended();
    let SessionState::Completed { reap_at, .. } = done.state else {
        panic!("{:?}", done.state)
    };
    assert_gone(terminate(done, reap_at, &timeouts()), StateKind::Expired);
}
