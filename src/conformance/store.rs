//! The conformance suite of [`SessionStore`] implementations.
//!
//! Every check takes a store that no one else writes to while it runs,
//! builds sessions with the pure functions of [`machine`], and panics with a
//! message naming the broken rule. A check that passes deletes the records
//! it created. Sessions are dated in 2033, except those of [`due_sessions`],
//! which are dated in 2001 so that no record of another check (or of a real
//! upload) is due at the instants it asks about.
//!
//! [`run_all`] runs every check; a store shared by processes should also run
//! [`racing_writers`] and [`concurrent_updates`] with several independently
//! opened handles on one backing store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Barrier;

use super::fixtures::{
    CHUNK, TIMEOUTS, due_epoch, epoch, far_after, in_every_state, open_session, receipt, record,
    unique_owner,
};
use super::join;
use crate::error::StoreError;
use crate::machine;
use crate::session::{Owner, Session, SessionId};
use crate::store::{SessionStore, Version, Versioned};
use StoreErrorCase::{Conflict, NotFound};

/// How many tasks race in the concurrent checks.
const RACERS: usize = 16;

/// How many chunks each task of [`concurrent_updates`] records.
const CHUNKS_PER_RACER: u64 = 4;

/// How often one update of [`concurrent_updates`] may meet a conflict before
/// the store is deemed to conflict spuriously (a correct store causes at
/// most one conflict per successful update of another task).
const MAX_ATTEMPTS: usize = 1000;

/// Runs every check of this suite on `store`, one after another.
///
/// `store` should be fresh and empty, and no one else should write to it
/// meanwhile. It is an `Arc` because the concurrent checks share it with the
/// tasks they spawn; the other checks take `&dyn SessionStore`. Run it on a multi-threaded tokio runtime so that the concurrent
/// checks run in parallel.
pub async fn run_all(store: Arc<dyn SessionStore>) {
    create_then_load_round_trips(&*store).await;
    create_existing_fails(&*store).await;
    load_unknown_is_none(&*store).await;
    update_compare_and_swap(&*store).await;
    delete_compare_and_swap(&*store).await;
    missing_records_are_not_found(&*store).await;
    due_sessions(&*store).await;
    count_active_sessions(&*store).await;
    racing_writers(std::slice::from_ref(&store)).await;
    concurrent_updates(std::slice::from_ref(&store)).await;
}

/// `create` then `load` returns the session exactly as created (every
/// state, every field, times to the nanosecond) with the version `create`
/// returned; records of different sessions do not bleed into each other.
pub async fn create_then_load_round_trips(store: &dyn SessionStore) {
    let owner = unique_owner("round-trip");
    let sessions = in_every_state(&owner, epoch());
    let mut versions = Vec::new();
    for (what, session) in &sessions {
        let version = ok(store.create(session).await, &format!("create of {what}"));
        expect_record(
            store,
            session,
            version,
            &format!("load right after create of {what}"),
        )
        .await;
        versions.push(version);
    }
    for ((what, session), version) in sessions.iter().zip(versions) {
        expect_record(store, session, version, &format!("load of {what}, later")).await;
    }
    forget(store, sessions.iter().map(|(_, s)| s.id)).await;
}

/// `create` of an id that exists fails with [`StoreError::AlreadyExists`]
/// and leaves the stored record as it was.
pub async fn create_existing_fails(store: &dyn SessionStore) {
    let session = open_session(&unique_owner("create-existing"), 3, epoch());
    let version = ok(store.create(&session).await, "create");
    let mut impostor = open_session(&unique_owner("impostor"), 5, epoch());
    impostor.id = session.id;
    for (what, attempt) in [
        ("the same session", &session),
        ("another session", &impostor),
    ] {
        match store.create(attempt).await {
            Err(StoreError::AlreadyExists) => {}
            other => panic!(
                "create of {what} under an existing id must fail with AlreadyExists, got {other:?}"
            ),
        }
        expect_record(store, &session, version, "load after a refused create").await;
    }
    forget(store, [session.id]).await;
}

/// `load` of an id that was never created returns `None`.
pub async fn load_unknown_is_none(store: &dyn SessionStore) {
    for _ in 0..3 {
        let id = SessionId::random();
        if let Some(found) = ok(store.load(&id).await, "load of an unknown id") {
            panic!("load of an unknown id must return None, got {found:?}");
        }
    }
}

/// `update` with the current version succeeds, returns a version never
/// returned before for the record, and is what `load` sees next; `update`
/// with a stale version fails with [`StoreError::Conflict`] and changes
/// nothing.
pub async fn update_compare_and_swap(store: &dyn SessionStore) {
    let t0 = epoch();
    let s0 = open_session(&unique_owner("update"), 3, t0);
    let v0 = ok(store.create(&s0).await, "create");

    let s1 = record(s0.clone(), 0, t0 + Duration::from_secs(1));
    let v1 = ok(
        store.update(&s1, v0).await,
        "update with the current version",
    );
    assert_ne!(v1, v0, "a successful update must return a new version");
    expect_record(store, &s1, v1, "load after update").await;

    let rival = record(s0.clone(), 2, t0 + Duration::from_secs(2));
    expect_store_err(
        store.update(&rival, v0).await,
        &[Conflict],
        "update with a stale version",
    );
    expect_record(store, &s1, v1, "load after a conflicting update").await;

    let s2 = record(s1.clone(), 1, t0 + Duration::from_secs(3));
    let v2 = ok(store.update(&s2, v1).await, "second update");
    assert!(
        v2 != v0 && v2 != v1,
        "every successful update must return a new version: got {v2:?} after {v0:?}, {v1:?}"
    );
    expect_record(store, &s2, v2, "load after the second update").await;
    for stale in [v0, v1] {
        expect_store_err(
            store.update(&s1, stale).await,
            &[Conflict],
            "update with an older version",
        );
    }
    expect_record(store, &s2, v2, "load after updates with older versions").await;

    let s3 = machine::abort(s2, t0 + Duration::from_secs(4), &TIMEOUTS).expect("abort");
    let v3 = ok(store.update(&s3, v2).await, "update to another state");
    expect_record(store, &s3, v3, "load after a change of state").await;
    forget(store, [s3.id]).await;
}

/// `delete` with a stale version fails with [`StoreError::Conflict`] and
/// keeps the record; with the current version it removes it, and `load`
/// returns `None`.
pub async fn delete_compare_and_swap(store: &dyn SessionStore) {
    let t0 = epoch();
    let s0 = open_session(&unique_owner("delete"), 3, t0);
    let v0 = ok(store.create(&s0).await, "create");
    let s1 = record(s0.clone(), 1, t0 + Duration::from_secs(1));
    let v1 = ok(store.update(&s1, v0).await, "update");
    expect_store_err(
        store.delete(&s0.id, v0).await,
        &[Conflict],
        "delete with a stale version",
    );
    expect_record(store, &s1, v1, "load after a conflicting delete").await;
    ok(
        store.delete(&s0.id, v1).await,
        "delete with the current version",
    );
    if let Some(found) = ok(store.load(&s0.id).await, "load after delete") {
        panic!("load after delete must return None, got {found:?}");
    }
}

/// `update` and `delete` of a record that does not exist (never created, or
/// deleted) fail with [`StoreError::NotFound`] and create nothing.
pub async fn missing_records_are_not_found(store: &dyn SessionStore) {
    let never = open_session(&unique_owner("missing"), 3, epoch());
    expect_store_err(
        store.update(&never, Version::FIRST).await,
        &[NotFound],
        "update of a record never created",
    );
    expect_store_err(
        store.delete(&never.id, Version::FIRST).await,
        &[NotFound],
        "delete of a record never created",
    );
    expect_absent(store, &never.id, "update of a missing record").await;

    let deleted = open_session(&unique_owner("missing"), 3, epoch());
    let version = ok(store.create(&deleted).await, "create");
    ok(store.delete(&deleted.id, version).await, "delete");
    expect_store_err(
        store.update(&deleted, version).await,
        &[NotFound],
        "update of a deleted record",
    );
    expect_store_err(
        store.delete(&deleted.id, version).await,
        &[NotFound],
        "delete of a deleted record",
    );
    expect_absent(store, &deleted.id, "update of a deleted record").await;
}

/// `due(now, limit)` returns exactly the sessions whose
/// [`Session::due_at`] is at or before `now` (probed at, just before and
/// just after every due instant, for sessions in every state), never the
/// same id twice, at most `limit` ids and at least one when any is due; a
/// sweep that calls it repeatedly and deletes what it returns sees every due
/// session.
///
/// No session other than this check's may be due at the instants it asks
/// about (in 2001).
pub async fn due_sessions(store: &dyn SessionStore) {
    const ALL: usize = 10_000;
    let t0 = due_epoch();
    let owner = unique_owner("due");
    let mut fleet = in_every_state(&owner, t0);
    fleet.extend(in_every_state(&owner, t0 + Duration::from_secs(700)));
    for (what, session) in &fleet {
        ok(store.create(session).await, &format!("create of {what}"));
    }
    let label: HashMap<SessionId, &str> = fleet.iter().map(|(w, s)| (s.id, *w)).collect();
    let due_by = |now: SystemTime| -> BTreeSet<SessionId> {
        fleet
            .iter()
            .filter(|(_, s)| s.due_at().is_some_and(|t| t <= now))
            .map(|(_, s)| s.id)
            .collect()
    };
    let name =
        |ids: &BTreeSet<SessionId>| -> Vec<&str> { ids.iter().map(|id| label[id]).collect() };

    let instants: BTreeSet<SystemTime> = fleet.iter().filter_map(|(_, s)| s.due_at()).collect();
    let nano = Duration::from_nanos(1);
    let mut probes = vec![t0 - Duration::from_secs(1), far_after(t0)];
    probes.extend(instants.iter().flat_map(|&t| [t - nano, t, t + nano]));
    for now in probes {
        let returned = ok(store.due(now, ALL).await, "due");
        let mine = own_ids(&returned, &label, "due");
        let expected = due_by(now);
        assert!(
            mine == expected,
            "due({now:?}) must return exactly the sessions due by then: missing {:?}, \
             not due but returned {:?}",
            name(&expected.difference(&mine).copied().collect()),
            name(&mine.difference(&expected).copied().collect()),
        );
    }

    let end = far_after(t0);
    let all_due = due_by(end);
    assert!(all_due.len() > 5, "the fixture has many due sessions");
    let none = ok(store.due(end, 0).await, "due with limit 0");
    assert!(
        none.is_empty(),
        "due with limit 0 must return nothing, got {none:?}"
    );
    for limit in [1, 2, 5] {
        let returned = ok(store.due(end, limit).await, "due with a limit");
        assert!(
            (1..=limit).contains(&returned.len()),
            "due with limit {limit} and {} sessions due must return between 1 and {limit} ids, \
             got {}",
            all_due.len(),
            returned.len()
        );
        let mine = own_ids(&returned, &label, "due with a limit");
        assert!(
            mine.is_subset(&all_due),
            "due with a limit returned sessions that are not due: {:?}",
            name(&mine.difference(&all_due).copied().collect())
        );
    }

    // A sweep: take a batch, delete it, ask again, until nothing is due.
    let mut swept = BTreeSet::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(
            rounds <= all_due.len() + 10,
            "due keeps returning ids after every due session was deleted; swept so far: {:?}",
            name(&swept)
        );
        let batch = ok(store.due(end, 3).await, "due, while sweeping");
        assert!(
            batch.len() <= 3,
            "due with limit 3 returned {} ids",
            batch.len()
        );
        if batch.is_empty() {
            break;
        }
        for id in own_ids(&batch, &label, "due, while sweeping") {
            if let Some(loaded) = ok(store.load(&id).await, "load, while sweeping") {
                ok(
                    store.delete(&id, loaded.version).await,
                    "delete, while sweeping",
                );
                swept.insert(id);
            }
        }
    }
    assert!(
        swept == all_due,
        "a sweep calling due until it returns nothing must see every due session: missed {:?}",
        name(&all_due.difference(&swept).copied().collect())
    );
    forget(store, fleet.iter().map(|(_, s)| s.id)).await;
}

/// `count_active` counts exactly the owner's open and finalizing sessions
/// that have not expired at `now` (those for which [`Session::is_active`]
/// holds), not other owners' (not even owners whose id extends this one),
/// none once they are past their expiry, and follows updates and deletes.
pub async fn count_active_sessions(store: &dyn SessionStore) {
    let owner = unique_owner("count");
    let longer = Owner::new(format!("{}0", owner.as_str()));
    let sessions = in_every_state(&owner, epoch());
    let others = [
        open_session(&longer, 3, epoch()),
        open_session(&longer, 2, epoch()),
    ];
    for (what, session) in &sessions {
        ok(store.create(session).await, &format!("create of {what}"));
    }
    for session in &others {
        ok(store.create(session).await, "create");
    }
    let active: Vec<&Session> = sessions
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.is_active(epoch()))
        .collect();
    assert!(active.len() >= 3, "the fixture has several active sessions");
    let mut expected = active.len() as u64;
    expect_count(store, &owner, expected, "sessions in every state").await;
    expect_count(store, &longer, 2, "another owner").await;
    let much_later = epoch() + std::time::Duration::from_secs(400 * 24 * 3600);
    let counted = ok(store.count_active(&owner, much_later).await, "count_active");
    assert_eq!(
        counted, 0,
        "count_active must not count sessions past their expiry, swept or not"
    );
    expect_count(
        store,
        &unique_owner("nobody"),
        0,
        "an owner with no session",
    )
    .await;

    let t = epoch() + Duration::from_secs(10);
    let aborted = machine::abort(active[0].clone(), t, &TIMEOUTS).expect("abort");
    let loaded = ok(store.load(&aborted.id).await, "load").expect("the session exists");
    ok(store.update(&aborted, loaded.version).await, "update");
    expected -= 1;
    expect_count(store, &owner, expected, "after aborting one").await;
    forget(store, [active[1].id]).await;
    expected -= 1;
    expect_count(store, &owner, expected, "after deleting one").await;

    forget(store, sessions.iter().map(|(_, s)| s.id)).await;
    forget(store, others.iter().map(|s| s.id)).await;
    expect_count(store, &owner, 0, "after deleting all").await;
}

/// Compare-and-swap under contention: 16 tasks update one record
/// with the same expected version at once, round after round, spread over
/// `handles` (handles on one backing store, as if from several processes;
/// one handle will do). Exactly one wins each round, the others get
/// [`StoreError::Conflict`], and every handle then loads the winner's
/// session and version. A last round races deletes against updates: again
/// exactly one wins.
///
/// # Panics
/// If `handles` is empty, or the store breaks the rule.
pub async fn racing_writers(handles: &[Arc<dyn SessionStore>]) {
    assert!(!handles.is_empty(), "racing_writers needs a store handle");
    const ROUNDS: usize = 6;
    let session = open_session(&unique_owner("race"), 3, epoch());
    let mut version = ok(handles[0].create(&session).await, "create");
    let mut current = session;
    for round in 0..=ROUNDS {
        let deleting = round == ROUNDS;
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = handles[i % handles.len()].clone();
                let barrier = barrier.clone();
                let mut next = current.clone();
                next.file.content_type = Some(format!("round {round}, writer {i}"));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let written = if deleting && i % 2 == 0 {
                        store.delete(&next.id, version).await.map(|()| None)
                    } else {
                        store.update(&next, version).await.map(Some)
                    };
                    (next, written)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match join(task).await {
                (next, Ok(v)) => winners.push((next, v)),
                (_, Err(e)) => losers.push(e),
            }
        }
        assert!(
            winners.len() == 1,
            "exactly one of {RACERS} compare-and-swaps from the same version must succeed, \
             {} did (round {round})",
            winners.len()
        );
        let (winner, written) = winners.pop().expect("one winner");
        let gone = written.is_none();
        for e in losers {
            let lost_as_it_should =
                matches!(e, StoreError::Conflict) || (gone && matches!(e, StoreError::NotFound));
            assert!(
                lost_as_it_should,
                "a compare-and-swap that lost the race must fail with Conflict{}, got {e:?}",
                if gone { " or NotFound" } else { "" }
            );
        }
        match written {
            Some(new) => {
                assert_ne!(
                    new, version,
                    "a successful update must return a new version"
                );
                for store in handles {
                    expect_record(&**store, &winner, new, "load after a race, from any handle")
                        .await;
                }
                version = new;
                current = winner;
            }
            None => {
                for store in handles {
                    expect_absent(&**store, &winner.id, "a race won by a delete").await;
                }
                return;
            }
        }
    }
    forget(&*handles[0], [current.id]).await;
}

/// No lost update: 16 tasks, spread over `handles` (handles on one
/// backing store, as if from several processes; one handle will do), each
/// record 4 different chunks of one session with
/// [`machine::record_chunk`], each by load, modify, update with the loaded
/// version, retrying on [`StoreError::Conflict`]. At the end every chunk is
/// in the ledger, and the successful updates form one chain of versions from
/// the created record's to the final one: no two succeeded from the same
/// version, none is missing, none repeats a version.
///
/// # Panics
/// If `handles` is empty, or the store breaks the rule.
pub async fn concurrent_updates(handles: &[Arc<dyn SessionStore>]) {
    assert!(
        !handles.is_empty(),
        "concurrent_updates needs a store handle"
    );
    let total = RACERS as u64 * CHUNKS_PER_RACER;
    let t0 = epoch();
    let session = open_session(&unique_owner("concurrent"), total, t0);
    let id = session.id;
    let created = ok(handles[0].create(&session).await, "create");
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|racer| {
            let store = handles[racer % handles.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut wins = Vec::new();
                for k in 0..CHUNKS_PER_RACER {
                    let index = k * RACERS as u64 + racer as u64;
                    wins.push(record_with_retries(&*store, id, index, t0).await);
                }
                wins
            })
        })
        .collect();
    let mut chain: HashMap<Version, Version> = HashMap::new();
    for task in tasks {
        for (from, to) in join(task).await {
            if let Some(other) = chain.insert(from, to) {
                panic!(
                    "two updates from version {from:?} both succeeded (they returned {other:?} \
                     and {to:?}): one of them was lost"
                );
            }
        }
    }
    let mut at = created;
    let mut seen = HashSet::from([created]);
    for step in 1..=total {
        at = chain.remove(&at).unwrap_or_else(|| {
            panic!(
                "after {} of {total} successful updates, no update started from version {at:?}: \
                 the versions returned do not form one history",
                step - 1
            )
        });
        assert!(
            seen.insert(at),
            "version {at:?} was returned twice for one record"
        );
    }
    assert!(
        chain.is_empty(),
        "updates from unknown versions succeeded: {chain:?}"
    );
    let last = ok(handles[0].load(&id).await, "load").expect("the session exists");
    assert_eq!(
        last.version, at,
        "the record's version must be the one returned by the last of {total} updates"
    );
    let received = machine::received_chunks(&last.session);
    assert!(
        received == (0..total).collect::<Vec<_>>(),
        "every recorded chunk must be in the ledger: missing {:?}",
        machine::missing_chunks(&last.session)
    );
    for part in last.session.state.ledger().expect("open").parts() {
        let expected = receipt(&session, part.offset / CHUNK);
        assert_eq!(
            *part, expected,
            "a recorded part must be stored as recorded"
        );
    }
    forget(&*handles[0], [id]).await;
}

/// Records chunk `index` by load, modify, compare-and-swap, retrying on
/// conflict; returns the versions the successful update went from and to.
async fn record_with_retries(
    store: &dyn SessionStore,
    id: SessionId,
    index: u64,
    now: SystemTime,
) -> (Version, Version) {
    for _ in 0..MAX_ATTEMPTS {
        let loaded = ok(store.load(&id).await, "load").expect("the session exists");
        // Let other tasks load the same version before this one writes.
        tokio::task::yield_now().await;
        let chunk = receipt(&loaded.session, index);
        let (next, replaced) = machine::record_chunk(loaded.session, index, chunk, now, &TIMEOUTS)
            .unwrap_or_else(|e| panic!("record_chunk of chunk {index} failed: {e}"));
        assert!(
            replaced.is_none(),
            "chunk {index} was already in the ledger before its only update"
        );
        match store.update(&next, loaded.version).await {
            Ok(version) => return (loaded.version, version),
            Err(StoreError::Conflict) => continue,
            Err(e) => panic!("a concurrent update must succeed or fail with Conflict, got {e:?}"),
        }
    }
    panic!("recording chunk {index} met {MAX_ATTEMPTS} conflicts: the store conflicts spuriously")
}

/// The error cases a check expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreErrorCase {
    Conflict,
    NotFound,
}

fn expect_store_err<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    cases: &[StoreErrorCase],
    what: &str,
) {
    let case = match &result {
        Err(StoreError::Conflict) => Some(Conflict),
        Err(StoreError::NotFound) => Some(NotFound),
        _ => None,
    };
    if !case.is_some_and(|c| cases.contains(&c)) {
        panic!("{what} must fail with {cases:?}, got {result:?}");
    }
}

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

async fn expect_record(store: &dyn SessionStore, session: &Session, version: Version, what: &str) {
    let expected = Versioned {
        session: session.clone(),
        version,
    };
    match ok(store.load(&session.id).await, what) {
        Some(found) => assert!(
            found == expected,
            "{what} must return the stored session and version exactly:\n  \
             expected {expected:?}\n  found {found:?}"
        ),
        None => panic!("{what} found no record for {:?}", session.id),
    }
}

async fn expect_absent(store: &dyn SessionStore, id: &SessionId, after: &str) {
    if let Some(found) = ok(store.load(id).await, "load") {
        panic!("after {after}, load must return None, got {found:?}");
    }
}

async fn expect_count(store: &dyn SessionStore, owner: &Owner, expected: u64, what: &str) {
    let counted = ok(store.count_active(owner, epoch()).await, "count_active");
    assert_eq!(
        counted, expected,
        "count_active for {what} must count the owner's open and finalizing sessions"
    );
}

/// Deletes the records of `ids` that exist.
async fn forget(store: &dyn SessionStore, ids: impl IntoIterator<Item = SessionId>) {
    for id in ids {
        if let Some(loaded) = ok(store.load(&id).await, "load, cleaning up") {
            ok(
                store.delete(&id, loaded.version).await,
                "delete, cleaning up",
            );
        }
    }
}

/// The ids of `returned` that belong to the check, with no duplicate.
fn own_ids(
    returned: &[SessionId],
    own: &HashMap<SessionId, &str>,
    what: &str,
) -> BTreeSet<SessionId> {
    let mut seen = HashSet::new();
    for id in returned {
        assert!(seen.insert(*id), "{what} returned {id:?} twice");
    }
    returned
        .iter()
        .filter(|id| own.contains_key(id))
        .copied()
        .collect()
}
