//! `RedisStore` against a real `redis-server`, started by the tests on a
//! free port of 127.0.0.1 (one server per test function): the conformance
//! suite, two instances (two connections) on one server, the keys under the
//! prefix, the sorted indexes, the time to live, corrupt records and a
//! stopped server.

#[path = "support/services.rs"]
#[allow(unreachable_pub)]
mod services;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use resumable::conformance::store;
use resumable::digest::Sha256Digest;
use resumable::error::StoreError;
use resumable::machine::{self, Completion, Timeouts};
use resumable::session::{FileMeta, Owner, Session, SessionId};
use resumable::sink::{FinishedBlob, UploadHandle};
use resumable::store::{RedisStore, SessionStore, Version};

const TIMEOUTS: Timeouts = Timeouts {
    session_timeout: Duration::from_secs(24 * 3600),
    temporary_max_age: Duration::from_secs(6 * 3600),
    tombstone_retention: Duration::from_secs(24 * 3600),
    finalize_lease: Duration::from_secs(600),
};

async fn connect(server: &services::Service) -> RedisStore {
    RedisStore::connect(&server.redis_url())
        .await
        .expect("connect to the test server")
}

/// A plain connection to the test server, to look at what the store wrote.
async fn raw(server: &services::Service) -> MultiplexedConnection {
    redis::Client::open(server.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key on the test server.
async fn all_keys(con: &mut MultiplexedConnection) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(con).await.unwrap();
    keys.into_iter().collect()
}

async fn pttl(con: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(con).await.unwrap()
}

/// The PTTL of each key, read at one instant.
async fn pttls<const N: usize>(con: &mut MultiplexedConnection, keys: [String; N]) -> [i64; N] {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in &keys {
        pipe.cmd("PTTL").arg(key);
    }
    let left: Vec<i64> = pipe.query_async(con).await.unwrap();
    left.try_into().unwrap()
}

async fn zscore(con: &mut MultiplexedConnection, key: &str, member: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(con)
        .await
        .unwrap()
}

/// An open session of an empty file, created at `now` (due at
/// `now + session_timeout`).
fn open_at(owner: &Owner, now: SystemTime) -> Session {
    let file = FileMeta {
        size: Some(0),
        ..FileMeta::default()
    };
    let id = SessionId::random();
    let upload = UploadHandle::new(format!("upload-{id}"));
    machine::open(id, owner.clone(), file, 1000, upload, now, &TIMEOUTS)
}

/// A completed session, then claimed, at `now`.
fn completed_at(owner: &Owner, now: SystemTime) -> Session {
    let Completion::Finalize(finalizing) =
        machine::begin_complete(open_at(owner, now), now, &TIMEOUTS).unwrap()
    else {
        panic!("an empty upload finalizes at once")
    };
    let blob = FinishedBlob {
        size: 0,
        sha256: Sha256Digest::of(b""),
    };
    machine::finish_complete(finalizing, blob, now, &TIMEOUTS).unwrap()
}

fn claimed_at(owner: &Owner, now: SystemTime) -> Session {
    machine::claim(completed_at(owner, now), now).unwrap()
}

/// The index member of a session due at `due`.
fn member(session: &Session, due: SystemTime) -> String {
    let nanos = due.duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 1_000_000;
    format!("{nanos:06}:{}", session.id)
}

fn millis(t: SystemTime) -> f64 {
    (t.duration_since(UNIX_EPOCH).unwrap().as_nanos() / 1_000_000) as f64
}

/// 2001, with nanoseconds: before anything else is due.
fn past() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_000_000_000, 987_654_321)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms() {
    let server = services::redis();
    store::run_all(Arc::new(connect(&server).await)).await;
    assert_eq!(
        all_keys(&mut raw(&server).await).await,
        BTreeSet::new(),
        "the suite deletes every session, and no index key outlives them"
    );
}

/// Two stores connected on their own act as two server processes: their
/// compare-and-swaps never both win, and no recorded chunk is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_both_win() {
    let server = services::redis();
    let a: Arc<dyn SessionStore> = Arc::new(connect(&server).await);
    let b: Arc<dyn SessionStore> = Arc::new(connect(&server).await);
    let handles = [a, b];
    store::racing_writers(&handles).await;
    store::concurrent_updates(&handles).await;
    assert_eq!(all_keys(&mut raw(&server).await).await, BTreeSet::new());
}

/// Every key lives under the configured prefix, and once every session is
/// deleted none remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_under_the_prefix_and_none_outlives_the_sessions() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let prefix = "tenant 7/uploads*[x]:";
    let store = Arc::new(connect(&server).await.prefix(prefix));
    assert_eq!(store.key_prefix(), prefix);
    store::run_all(store.clone()).await;
    assert_eq!(all_keys(&mut con).await, BTreeSet::new());

    let now = SystemTime::now();
    let owner = Owner::new("someone: with / odd * chars");
    let open = open_at(&owner, now);
    let claimed = claimed_at(&owner, now);
    let v_open = store.create(&open).await.unwrap();
    let v_claimed = store.create(&claimed).await.unwrap();
    let expected: BTreeSet<String> = [
        format!("{prefix}session:{}", open.id),
        format!("{prefix}session:{}", claimed.id),
        format!("{prefix}due"),
        format!("{prefix}active:{}", owner.as_str()),
    ]
    .into();
    assert_eq!(all_keys(&mut con).await, expected);

    store.delete(&open.id, v_open).await.unwrap();
    store.delete(&claimed.id, v_claimed).await.unwrap();
    assert_eq!(
        all_keys(&mut con).await,
        BTreeSet::new(),
        "no key remains once every session is deleted"
    );
}

/// Stores with different prefixes on one server share nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_stores_apart() {
    let server = services::redis();
    let a = connect(&server).await.prefix("a:");
    let b = connect(&server).await.prefix("b:");
    let default = connect(&server).await;
    let owner = Owner::new("shared");
    let session = open_at(&owner, past());
    let version = a.create(&session).await.unwrap();
    let later = past() + Duration::from_secs(365 * 24 * 3600);
    for other in [&b, &default] {
        assert_eq!(other.load(&session.id).await.unwrap(), None);
        assert!(other.due(later, 100).await.unwrap().is_empty());
        assert_eq!(other.count_active(&owner, past()).await.unwrap(), 0);
        let created = other.create(&session).await;
        assert_eq!(created.unwrap(), Version::FIRST, "the id is free there");
    }
    assert_eq!(a.due(later, 100).await.unwrap(), [session.id]);
    assert_eq!(a.count_active(&owner, past()).await.unwrap(), 1);
    a.delete(&session.id, version).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());
    let keys = all_keys(&mut raw(&server).await).await;
    assert!(
        keys.iter()
            .all(|k| k.starts_with("b:") || k.starts_with("resumable:")),
        "the deleted session left keys under its prefix: {keys:?}"
    );
}

/// `due` reads `{prefix}due`: the session's entry is scored by its due
/// instant, it is returned from that instant (to the nanosecond) on, not
/// once its entry is gone, and the entry goes with the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_reads_the_sorted_index() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let store = connect(&server).await;
    let session = open_at(&Owner::new("due"), past());
    let due = session.due_at().unwrap();
    let version = store.create(&session).await.unwrap();

    let entry = member(&session, due);
    assert_eq!(
        zscore(&mut con, "resumable:due", &entry).await,
        Some(millis(due))
    );
    let nano = Duration::from_nanos(1);
    assert!(store.due(due - nano, 10).await.unwrap().is_empty());
    assert_eq!(store.due(due, 10).await.unwrap(), [session.id]);

    // Without its entry, the session is not found by `due`: no scan.
    let removed: i64 = redis::cmd("ZREM")
        .arg("resumable:due")
        .arg(&entry)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(store.due(due + nano, 10).await.unwrap().is_empty());

    // An update writes the entry again, at the new due instant (an
    // aborted session is due at once, to be purged).
    let later = past() + Duration::from_secs(60);
    let recorded = aborted(session.clone(), later);
    let version = store.update(&recorded, version).await.unwrap();
    let new_due = recorded.due_at().unwrap();
    assert_eq!(
        zscore(&mut con, "resumable:due", &member(&recorded, new_due)).await,
        Some(millis(new_due))
    );
    assert_eq!(store.due(new_due, 10).await.unwrap(), [session.id]);

    store.delete(&session.id, version).await.unwrap();
    assert!(store.due(new_due, 10).await.unwrap().is_empty());
    assert_eq!(all_keys(&mut con).await, BTreeSet::new());
}

fn aborted(session: Session, now: SystemTime) -> Session {
    machine::abort(session, now, &TIMEOUTS).unwrap()
}

/// `count_active` reads the owner's `{prefix}active:{owner}`: an open
/// session is in it until its due instant (to the nanosecond), and leaves it
/// when it stops being open or finalizing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_active_reads_the_owners_index() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let store = connect(&server).await;
    let owner = Owner::new("counted");
    let key = "resumable:active:counted";
    let session = open_at(&owner, past());
    let due = session.due_at().unwrap();
    let version = store.create(&session).await.unwrap();
    assert_eq!(
        zscore(&mut con, key, &member(&session, due)).await,
        Some(millis(due))
    );
    let nano = Duration::from_nanos(1);
    assert_eq!(store.count_active(&owner, due - nano).await.unwrap(), 1);
    assert_eq!(store.count_active(&owner, due).await.unwrap(), 0);

    let removed: i64 = redis::cmd("ZREM")
        .arg(key)
        .arg(member(&session, due))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        store.count_active(&owner, past()).await.unwrap(),
        0,
        "count_active counts the index, not the records"
    );

    let open_again = Session {
        expires_at: due + Duration::from_secs(1),
        ..session.clone()
    };
    let version = store.update(&open_again, version).await.unwrap();
    assert_eq!(store.count_active(&owner, due).await.unwrap(), 1);
    let version = store
        .update(&aborted(open_again, past()), version)
        .await
        .unwrap();
    assert_eq!(store.count_active(&owner, past()).await.unwrap(), 0);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "an aborted session leaves the owner's index");
    store.delete(&session.id, version).await.unwrap();
}

/// A record gone on its own (as when its time to live ran out) leaves the
/// due index at the next `due`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_drops_entries_of_vanished_records() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let store = connect(&server).await;
    let kept = open_at(&Owner::new("kept"), past());
    let gone = open_at(&Owner::new("gone"), past() - Duration::from_secs(1));
    store.create(&kept).await.unwrap();
    store.create(&gone).await.unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("resumable:session:{}", gone.id))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let later = past() + Duration::from_secs(365 * 24 * 3600);
    assert_eq!(store.due(later, 1).await.unwrap(), [kept.id]);
    let entries: Vec<String> = redis::cmd("ZRANGE")
        .arg("resumable:due")
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(entries, [member(&kept, kept.due_at().unwrap())]);
}

/// Session keys expire `ttl` after the later of their due instant and the
/// write; index keys never before the records they index; claimed sessions
/// only if asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keys_expire_a_ttl_after_they_are_due() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let ttl = Duration::from_secs(3600);
    let store = connect(&server).await.ttl(ttl);
    let ms = |d: Duration| d.as_millis() as i64;
    let owner = Owner::new("ttl");
    let key = |s: &Session| format!("resumable:session:{}", s.id);

    // Due in the future: the key outlives the due instant by `ttl`.
    let before = SystemTime::now();
    let live = open_at(&owner, before);
    let due = live.due_at().unwrap();
    let version = store.create(&live).await.unwrap();
    let left = pttl(&mut con, &key(&live)).await;
    let until_due = due.duration_since(before).unwrap();
    assert!(
        left > ms(ttl) && left <= ms(until_due + ttl) + 1,
        "a session due in {until_due:?} got {left} ms to live"
    );
    let [session_left, due_left, active_left] = pttls(
        &mut con,
        [
            key(&live),
            "resumable:due".into(),
            "resumable:active:ttl".into(),
        ],
    )
    .await;
    assert!(
        due_left >= session_left && active_left >= session_left,
        "the indexes ({due_left} ms, {active_left} ms) expire before the record \
         ({session_left} ms)"
    );

    // Activity that pushes the due instant pushes the expiry too.
    let extended = Session {
        expires_at: due + Duration::from_secs(10 * 24 * 3600),
        ..live.clone()
    };
    store.update(&extended, version).await.unwrap();
    let [left, due_left, active_left] = pttls(
        &mut con,
        [
            key(&live),
            "resumable:due".into(),
            "resumable:active:ttl".into(),
        ],
    )
    .await;
    assert!(
        left > ms(Duration::from_secs(10 * 24 * 3600) + ttl),
        "after the update, {left} ms to live"
    );
    assert!(
        due_left >= left && active_left >= left,
        "after the update, the indexes ({due_left} ms, {active_left} ms) expire before \
         the record ({left} ms)"
    );

    // Already due (or dated by a clock in the past): `ttl` after the write.
    let overdue = open_at(&owner, past());
    store.create(&overdue).await.unwrap();
    let [left, due_left, live_left] = pttls(
        &mut con,
        [key(&overdue), "resumable:due".into(), key(&live)],
    )
    .await;
    assert!(
        left > 0 && left <= ms(ttl),
        "an overdue session got {left} ms to live"
    );
    assert!(
        due_left >= live_left,
        "adding an entry that expires sooner shortened the due index's life to {due_left} ms"
    );

    // Claimed: no due instant, no expiry unless asked.
    let claimed = claimed_at(&owner, past());
    store.create(&claimed).await.unwrap();
    assert_eq!(pttl(&mut con, &key(&claimed)).await, -1);
    let claimed_ttl = 10 * ttl;
    let expiring = connect(&server).await.ttl(ttl).claimed_ttl(claimed_ttl);
    let claimed = claimed_at(&owner, past());
    expiring.create(&claimed).await.unwrap();
    let left = pttl(&mut con, &key(&claimed)).await;
    assert!(
        left > ms(ttl) && left <= ms(claimed_ttl),
        "a claimed session got {left} ms to live, not its own time to live"
    );

    // Claiming a completed session takes its expiry away.
    let completed = completed_at(&owner, past());
    let version = store.create(&completed).await.unwrap();
    assert!(pttl(&mut con, &key(&completed)).await > 0);
    let claimed = machine::claim(completed, past()).unwrap();
    store.update(&claimed, version).await.unwrap();
    assert_eq!(pttl(&mut con, &key(&claimed)).await, -1);
}

/// A record that does not decode, or a key of another type under the
/// prefix, is reported as corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_reported() {
    let server = services::redis();
    let mut con = raw(&server).await;
    let store = connect(&server).await;
    let session = open_at(&Owner::new("corrupt"), past());
    store.create(&session).await.unwrap();
    let key = format!("resumable:session:{}", session.id);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("session")
        .arg("{not json")
        .query_async(&mut con)
        .await
        .unwrap();
    let loaded = store.load(&session.id).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");

    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("version")
        .arg("one")
        .query_async(&mut con)
        .await
        .unwrap();
    let loaded = store.load(&session.id).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");

    let other = SessionId::random();
    let _: () = redis::cmd("SET")
        .arg(format!("resumable:session:{other}"))
        .arg("a string")
        .query_async(&mut con)
        .await
        .unwrap();
    let loaded = store.load(&other).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");
}

/// A store whose server went away answers every call with a retryable
/// `Unavailable`, as does connecting to a port nothing listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable() {
    let server = services::redis();
    let store = connect(&server).await;
    let owner = Owner::new("stopped");
    let session = open_at(&owner, past());
    let version = store.create(&session).await.unwrap();
    drop(server);

    let errors = [
        ("create", store.create(&open_at(&owner, past())).await.err()),
        ("load", store.load(&session.id).await.err()),
        ("update", store.update(&session, version).await.err()),
        ("delete", store.delete(&session.id, version).await.err()),
        ("due", store.due(past(), 10).await.err()),
        (
            "count_active",
            store.count_active(&owner, past()).await.err(),
        ),
    ];
    for (what, error) in errors {
        assert!(
            matches!(&error, Some(e @ StoreError::Unavailable(_)) if e.is_retryable()),
            "{what} on a stopped server must fail with Unavailable, got {error:?}"
        );
    }

    let nowhere = format!("redis://127.0.0.1:{}", services::free_port());
    let connected = RedisStore::connect(&nowhere).await;
    assert!(
        matches!(connected, Err(StoreError::Unavailable(_))),
        "{connected:?}"
    );
}
