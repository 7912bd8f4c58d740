//! `PostgresStore` against a real PostgreSQL, started by the tests on a free
//! port of 127.0.0.1 (one server per test function): the conformance suite,
//! two instances (two pools) on one table, the embedded migrations (at
//! once, again, by a role that may not create tables), the indexes, and the
//! errors of a stopped or silent server and of bad configurations.

#[path = "support/services.rs"]
#[allow(unreachable_pub)]
mod services;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use resumable::conformance::store;
use resumable::error::StoreError;
use resumable::machine::{self, Timeouts};
use resumable::session::{FileMeta, Owner, Session, SessionId};
use resumable::sink::UploadHandle;
use resumable::store::{PostgresStore, SessionStore, Version};
use tokio_postgres::NoTls;

/// Connects a store, waiting while the fresh server still starts up (it
/// accepts connections a moment before it serves them).
async fn connect_when_ready(url: &str) -> PostgresStore {
    let mut attempts = 0;
    loop {
        match PostgresStore::connect(url).await {
            Ok(store) => return store,
            Err(StoreError::Unavailable(e)) if attempts < 200 => {
                attempts += 1;
                if attempts == 1 {
                    eprintln!("waiting for PostgreSQL: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect to {url}: {e:?}"),
        }
    }
}

/// A plain client, to look at the database behind the store's back.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("a direct connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Waits for the fresh server with a plain client.
async fn sql_when_ready(url: &str) -> tokio_postgres::Client {
    for _ in 0..200 {
        if let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            if client.simple_query("SELECT 1").await.is_ok() {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("PostgreSQL at {url} never became ready")
}

/// Guards against a hang (not a timing assertion: the bound is far above
/// any pool timeout the tests set).
async fn unhung<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung instead of failing"))
}

fn session(owner: &Owner, now: SystemTime) -> Session {
    let file = FileMeta {
        size: Some(10),
        ..FileMeta::default()
    };
    machine::open(
        SessionId::random(),
        owner.clone(),
        file,
        4,
        UploadHandle::new("postgres-test"),
        now,
        &Timeouts::default(),
    )
}

async fn row_count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// The whole conformance suite, on the default table and on a table with an
/// awkward name in its own schema (quoting), and an owner holding NUL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_conforms() {
    let pg = services::postgres();
    let url = pg.postgres_url();
    let default = connect_when_ready(&url).await;
    store::run_all(Arc::new(default.clone())).await;

    let awkward = PostgresStore::builder(&url)
        .schema("upload \"store\"")
        .table("Sessions; DROP TABLE x")
        .pool_size(3)
        .connect()
        .await
        .expect("connect with a schema and a table name that need quoting");
    store::run_all(Arc::new(awkward.clone())).await;

    // An owner PostgreSQL's text type could not hold.
    let owner = Owner::new("nul\0owner");
    let now = UNIX_EPOCH + Duration::new(2_000_000_000, 1);
    let s = session(&owner, now);
    let v = default.create(&s).await.expect("create, owner with NUL");
    let loaded = default.load(&s.id).await.expect("load").expect("stored");
    assert_eq!((loaded.session, loaded.version), (s.clone(), v));
    assert_eq!(default.count_active(&owner, now).await.expect("count"), 1);
    assert_eq!(
        default
            .count_active(&Owner::new("nul"), now)
            .await
            .expect("count"),
        0,
        "an owner is compared whole, not up to a NUL"
    );
    default.delete(&s.id, v).await.expect("delete");

    let client = sql(&url).await;
    assert_eq!(
        row_count(&client, "resumable_sessions").await,
        0,
        "the suite leaves no row behind"
    );
    assert_eq!(
        row_count(&client, r#""upload ""store"""."Sessions; DROP TABLE x""#).await,
        0,
        "the suite leaves no row in the quoted table either"
    );
}

/// Two stores, each with its own pool, act as two server processes on one
/// table: their compare-and-swaps never both win, no update is lost, and
/// what one writes the other reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_both_win() {
    let pg = services::postgres();
    let url = pg.postgres_url();
    let a = connect_when_ready(&url).await;
    let b = PostgresStore::builder(&url)
        .pool_size(4)
        .connect()
        .await
        .expect("a second instance");
    let handles: [Arc<dyn SessionStore>; 2] = [Arc::new(a.clone()), Arc::new(b.clone())];
    store::racing_writers(&handles).await;
    store::concurrent_updates(&handles).await;

    // Cross-instance compare-and-swap, by hand.
    let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let s = session(&Owner::new("cross"), now);
    let v1 = a.create(&s).await.expect("create on a");
    assert!(matches!(b.create(&s).await, Err(StoreError::AlreadyExists)));
    let mut changed = s.clone();
    changed.file.content_type = Some("text/plain".into());
    let v2 = b.update(&changed, v1).await.expect("update on b");
    assert_ne!(v2, v1);
    assert!(
        matches!(a.update(&s, v1).await, Err(StoreError::Conflict)),
        "a stale update on the other instance conflicts"
    );
    assert!(
        matches!(a.delete(&s.id, v1).await, Err(StoreError::Conflict)),
        "a stale delete on the other instance conflicts"
    );
    assert!(
        matches!(
            a.update(&changed, Version::new(u64::MAX)).await,
            Err(StoreError::Conflict)
        ),
        "a version the column cannot hold conflicts"
    );
    let seen = a.load(&s.id).await.expect("load on a").expect("stored");
    assert_eq!((seen.session, seen.version), (changed.clone(), v2));
    b.delete(&s.id, v2).await.expect("delete on b");
    assert!(matches!(
        a.update(&changed, v2).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        a.delete(&s.id, v2).await,
        Err(StoreError::NotFound)
    ));

    let client = sql(&url).await;
    assert_eq!(row_count(&client, "resumable_sessions").await, 0);
}

/// Instances starting at once on a fresh database all succeed and apply the
/// migration exactly once; migrating again changes nothing; the indexes
/// exist, are partial, and serve the sweep's and the quota's queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_at_once() {
    let pg = services::postgres();
    let url = pg.postgres_url();
    let client = sql_when_ready(&url).await;

    // Several rounds on fresh tables (and a fresh schema), eight instances
    // each, so that unserialized DDL would collide.
    for round in 0..4 {
        let table = format!("sessions_{round}");
        let schema = (round % 2 == 1).then(|| format!("schema_{round}"));
        let connects = (0..8).map(|_| {
            let mut builder = PostgresStore::builder(&url).table(&table).pool_size(1);
            if let Some(schema) = &schema {
                builder = builder.schema(schema);
            }
            builder.connect()
        });
        let stores: Vec<PostgresStore> = futures::future::join_all(connects)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| {
                panic!("concurrent connects on a fresh table (round {round}): {e:?}")
            });
        let qualified = match &schema {
            Some(schema) => format!("{schema}.{table}_migrations"),
            None => format!("{table}_migrations"),
        };
        let rows = client
            .query(&format!("SELECT version FROM {qualified}"), &[])
            .await
            .expect("the migrations table");
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            versions,
            [PostgresStore::SCHEMA_VERSION as i32],
            "each migration step is recorded exactly once (round {round})"
        );
        // Every instance works on the table.
        let now = SystemTime::now();
        for store in &stores {
            let s = session(&Owner::new("migrated"), now);
            let v = store.create(&s).await.expect("create after migrate");
            store.delete(&s.id, v).await.expect("delete after migrate");
        }
    }

    // Idempotent: connect and migrate again, keeping the data.
    let store = PostgresStore::connect(&url).await.expect("connect");
    let now = SystemTime::now();
    let kept = session(&Owner::new("kept"), now);
    let v = store.create(&kept).await.expect("create");
    store.migrate().await.expect("migrate again");
    PostgresStore::connect(&url)
        .await
        .expect("connect again")
        .migrate()
        .await
        .expect("migrate once more");
    assert_eq!(
        store.load(&kept.id).await.expect("load").map(|l| l.version),
        Some(v),
        "migrating again keeps the records"
    );
    let versions: Vec<i32> = client
        .query("SELECT version FROM resumable_sessions_migrations", &[])
        .await
        .expect("the migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [PostgresStore::SCHEMA_VERSION as i32]);

    // The indexes, partial where not null.
    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT indexname, indexdef FROM pg_indexes \
             WHERE tablename = 'resumable_sessions' ORDER BY indexname",
            &[],
        )
        .await
        .expect("pg_indexes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let def = |name: &str| {
        indexes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no index {name}: {indexes:?}"))
    };
    let due = def("resumable_sessions_due_idx");
    assert!(
        due.contains("(due_at)") && due.contains("WHERE (due_at IS NOT NULL)"),
        "{due}"
    );
    let active = def("resumable_sessions_active_idx");
    assert!(
        active.contains("(owner, active_until)")
            && active.contains("WHERE (active_until IS NOT NULL)"),
        "{active}"
    );

    // The planner can answer the store's queries (prepared, generic plans)
    // from them. Sequential scans are disabled so that the tiny table does
    // not make a scan cheaper.
    client
        .batch_execute(
            "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan;
             PREPARE due_q(bigint, bigint) AS
                 SELECT id FROM resumable_sessions WHERE due_at <= $1 ORDER BY due_at LIMIT $2;
             PREPARE count_q(bytea, bigint) AS
                 SELECT count(*) FROM resumable_sessions WHERE owner = $1 AND active_until > $2;",
        )
        .await
        .expect("prepare");
    for (query, index) in [
        ("EXPLAIN EXECUTE due_q(0, 10)", "resumable_sessions_due_idx"),
        (
            "EXPLAIN EXECUTE count_q('\\x00', 0)",
            "resumable_sessions_active_idx",
        ),
    ] {
        let plan: Vec<String> = client
            .query(query, &[])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|line| line.contains(index)),
            "{query} must use {index}: {plan:#?}"
        );
    }

    // A role that may not create tables connects to an up-to-date schema
    // (nothing is created), and fails cleanly where it would have to create.
    client
        .batch_execute(
            "CREATE ROLE app LOGIN;
             GRANT SELECT, INSERT, UPDATE, DELETE ON resumable_sessions TO app;
             GRANT SELECT ON resumable_sessions_migrations TO app;",
        )
        .await
        .expect("a role without CREATE");
    let app_url = url.replacen("postgres@", "app@", 1);
    let app = PostgresStore::connect(&app_url)
        .await
        .expect("a role without CREATE connects to a migrated schema");
    let s = session(&Owner::new("app"), now);
    let v = app.create(&s).await.expect("create as app");
    app.delete(&s.id, v).await.expect("delete as app");
    let refused = PostgresStore::builder(&app_url)
        .table("not_yet_created")
        .connect()
        .await;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "a role that may not create the tables gets Backend, got {refused:?}"
    );

    // A database migrated by a newer release is used as it is.
    client
        .execute(
            "INSERT INTO resumable_sessions_migrations (version, description) \
             VALUES (1000, 'from the future')",
            &[],
        )
        .await
        .expect("a future migration");
    let store = PostgresStore::connect(&url)
        .await
        .expect("connect to a newer schema");
    assert!(store.load(&kept.id).await.expect("load").is_some());
}

/// A server that goes away: every operation fails with `Unavailable`, as
/// does connecting anew, and nothing panics or hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_is_unavailable() {
    let pg = services::postgres();
    let url = pg.postgres_url();
    let store = connect_when_ready(&url).await;
    let now = SystemTime::now();
    let owner = Owner::new("stopped");
    let s = session(&owner, now);
    let v = store.create(&s).await.expect("create while up");
    assert!(store.load(&s.id).await.expect("load while up").is_some());

    drop(pg);

    let unavailable = |what: &str, e: Option<StoreError>| match e {
        Some(StoreError::Unavailable(_)) => {}
        other => panic!("{what} on a stopped server must fail with Unavailable, got {other:?}"),
    };
    // Twice each: the first failures leave nothing behind that panics or
    // answers otherwise.
    for _ in 0..2 {
        unavailable("load", unhung("load", store.load(&s.id)).await.err());
        unavailable(
            "create",
            unhung("create", store.create(&session(&owner, now)))
                .await
                .err(),
        );
        unavailable("update", unhung("update", store.update(&s, v)).await.err());
        unavailable(
            "delete",
            unhung("delete", store.delete(&s.id, v)).await.err(),
        );
        unavailable("due", unhung("due", store.due(now, 10)).await.err());
        unavailable(
            "count_active",
            unhung("count_active", store.count_active(&owner, now))
                .await
                .err(),
        );
        unavailable("migrate", unhung("migrate", store.migrate()).await.err());
    }
    unavailable(
        "connect",
        unhung("connect", PostgresStore::connect(&url)).await.err(),
    );
}

/// A server that accepts connections and never answers fails with
/// `Unavailable` once the pool timeout passes; bad configurations fail with
/// `Backend` before any connection. Needs no PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_and_bad_configuration_fail_cleanly() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = silent.local_addr().expect("its address").port();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let connected = unhung(
        "connect to a silent server",
        PostgresStore::builder(&url)
            .pool_timeout(Duration::from_millis(300))
            .connect(),
    )
    .await;
    assert!(
        matches!(connected, Err(StoreError::Unavailable(_))),
        "a silent server must be Unavailable, got {connected:?}"
    );
    let lazy = PostgresStore::builder(&url)
        .pool_timeout(Duration::from_millis(300))
        .migrate(false)
        .connect()
        .await
        .expect("no connection is made without migrating");
    let loaded = unhung("load from a silent server", lazy.load(&SessionId::random())).await;
    assert!(
        matches!(loaded, Err(StoreError::Unavailable(_))),
        "a silent server must be Unavailable, got {loaded:?}"
    );

    for (what, builder) in [
        ("a malformed URL", PostgresStore::builder("postgres://[::1")),
        ("a pool of 0", PostgresStore::builder(&url).pool_size(0)),
        (
            "an empty table name",
            PostgresStore::builder(&url).table(""),
        ),
        (
            "a table name PostgreSQL would truncate",
            PostgresStore::builder(&url).table("t".repeat(60)),
        ),
        (
            "a schema name with NUL",
            PostgresStore::builder(&url).schema("a\0b"),
        ),
    ] {
        let result = builder.migrate(false).connect().await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "{what} must fail with Backend, got {result:?}"
        );
    }
}
