//! Temporary uploads, claim and reaping, and what the sweep does in every
//! state.

use super::*;

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
    assert_gone(readable_blob(&s, reap_at), StateKind::Expired);
    assert_gone(claim(s.clone(), reap_at), StateKind::Expired);
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
