//! A [`SessionStore`] in PostgreSQL (feature `postgres`): see
//! [`PostgresStore`] for the schema, the migrations, the compare-and-swap
//! and how errors are reported.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{SessionStore, Version, Versioned};
use crate::error::{BoxError, StoreError};
use crate::session::{Owner, Session, SessionId, StateKind};

/// The default table name.
const DEFAULT_TABLE: &str = "resumable_sessions";

/// The default number of pooled connections.
const DEFAULT_POOL_SIZE: usize = 16;

/// The default bound on getting a connection.
const DEFAULT_POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// The longest suffix appended to the table's name for the names derived
/// from it (`_migrations`, `_active_idx`).
const LONGEST_SUFFIX: usize = 11;

/// Sessions in a PostgreSQL table (feature `postgres`), shared by any number
/// of server processes on any number of machines, through a connection
/// pool. Cheap to clone: clones share the pool.
///
/// ```no_run
/// use resumable::store::PostgresStore;
/// # async fn run() -> Result<(), resumable::error::StoreError> {
/// // Defaults: table `resumable_sessions` on the search path, 16 pooled
/// // connections, 5 s to get one; the schema is migrated at connect.
/// let store = PostgresStore::connect("postgres://app@db.internal/uploads").await?;
///
/// // Or configured:
/// let store = PostgresStore::builder("postgres://app@db.internal/uploads")
///     .schema("uploads")
///     .table("sessions")
///     .pool_size(32)
///     .pool_timeout(std::time::Duration::from_secs(2))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// # Schema
/// One table (default `resumable_sessions`), one row per session:
///
/// | column | type | what |
/// |---|---|---|
/// | `id` | `uuid` primary key | the session id |
/// | `version` | `bigint` | the [`Version`]: 1 at create, +1 on every update |
/// | `owner` | `bytea` | the owner id's UTF-8 bytes (`bytea` because `text` cannot hold NUL, which an [`Owner`] may) |
/// | `state` | `text` | the state's name (`open`, `completed`, ...), for operators |
/// | `due_at` | `bigint`, nullable | [`Session::due_at`] |
/// | `active_until` | `bigint`, nullable | `due_at` of open and finalizing sessions, `NULL` otherwise |
/// | `record` | `text` | the whole [`Session`] as JSON: the only column that is read back |
///
/// The other columns are derived from the record on every write and exist
/// to be indexed: `due` reads the partial index on `due_at` (where not
/// null), `count_active` the index on `(owner, active_until)` (where not
/// null). The record is kept as `text` rather than `jsonb` so that it reads
/// back exactly as written (`jsonb` also refuses the escaped NUL that a
/// string of the record may hold).
///
/// # Times
/// `due_at` and `active_until` are **nanoseconds since the Unix epoch**
/// (`bigint`), not `timestamptz` (microseconds) nor milliseconds: sessions
/// carry [`SystemTime`]s to the nanosecond, and a rounded column would make
/// `due` and `count_active` wrong within a microsecond of a boundary, where
/// the contract wants them exact (`due_at <= now`, `now < active_until`).
/// A `bigint` of nanoseconds spans the years 1677 to 2262; instants outside
/// that span are clamped to it. Every comparison stays exact inside the
/// span; only with a clock past 2262 could `due` return an id early (which
/// the contract allows) or `count_active` miss a session. The record
/// itself keeps every time exactly.
///
/// # Migrations
/// The crate creates its schema: [`PostgresStore::connect`] (unless told
/// not to) and [`PostgresStore::migrate`] apply every step not yet applied,
/// in order, and record each in a table named after the sessions table with
/// `_migrations` appended (`version`, `description`, `applied_at`). All of
/// it runs in one transaction that first takes a transaction-scoped
/// advisory lock (`pg_advisory_xact_lock`) keyed by the table's name, so
/// instances starting at once apply each step exactly once and the others
/// wait for it; every statement is also idempotent (`IF NOT EXISTS`). On
/// an up-to-date database nothing is created, so a role without the
/// privilege to create tables can connect to a schema migrated by another
/// (or skip migrating with
/// [`PostgresStoreBuilder::migrate`]`(false)`). A database migrated by a
/// newer release (a recorded version above
/// [`PostgresStore::SCHEMA_VERSION`]) is used as it is, with a warning:
/// steps only ever add to the schema, so that instances of two releases can
/// share a database during a rolling upgrade.
///
/// # Compare-and-swap
/// `update` is one statement,
/// `UPDATE … SET version = version + 1, … WHERE id = $1 AND version = $2
/// RETURNING version`; PostgreSQL's row lock makes it atomic against any
/// other writer. When it changes no row, a second query tells
/// [`StoreError::NotFound`] (no row) from [`StoreError::Conflict`] (another
/// version). `delete` is the same with `DELETE`. `create` is an
/// `INSERT … ON CONFLICT (id) DO NOTHING`: no row inserted means
/// [`StoreError::AlreadyExists`]. Every write is a single autocommitted
/// statement, durable when it returns (as durable as the server's
/// `synchronous_commit` makes it).
///
/// # Connections and errors
/// Connections come from a pool ([`deadpool_postgres`]) of
/// [`pool_size`](PostgresStoreBuilder::pool_size) connections, made
/// without TLS: reach the server over a private network, loopback or a Unix
/// socket (`postgres://user@%2Frun%2Fpostgresql/db`). Waiting for a free
/// connection, opening one and checking one are each bounded by
/// [`pool_timeout`](PostgresStoreBuilder::pool_timeout). Statements are
/// prepared once per connection and cached (behind PgBouncer, use session
/// pooling, or a release that supports prepared statements in transaction
/// pooling).
///
/// Errors map to [`StoreError`]: a server that cannot be reached, a broken
/// connection, a pool timeout, a server shutting down or out of
/// connections, a serialization failure or deadlock reported by the server
/// are [`StoreError::Unavailable`] (a retry may succeed); a record that
/// does not decode (or does not encode) is [`StoreError::Corrupt`]; a
/// malformed URL or configuration, a refused login, a missing privilege
/// and anything else are [`StoreError::Backend`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    names: Names,
    sql: Sql,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.names.table)
            .field("pool", &self.inner.pool.status())
            .finish()
    }
}

/// The configuration of a [`PostgresStore`], from
/// [`PostgresStore::builder`]; [`connect`](Self::connect) makes the store.
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: Option<String>,
    table: String,
    pool_size: usize,
    pool_timeout: Duration,
    migrate: bool,
}

impl fmt::Debug for PostgresStoreBuilder {
    /// Leaves out the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The schema that holds the tables, created if missing. By default
    /// none is named: the tables are found and created on the connection's
    /// `search_path` (usually `public`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The sessions table's name (default `resumable_sessions`); the
    /// migrations table and the indexes are named after it. At most 52
    /// bytes, so that the derived names fit PostgreSQL's 63.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How many connections the pool holds at most (default 16, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long an operation may wait for a free connection, and how long
    /// opening or checking a connection may take (default 5 s). Past it the
    /// operation fails with [`StoreError::Unavailable`]. Also the TCP
    /// connect timeout, unless the URL sets `connect_timeout`.
    pub fn pool_timeout(mut self, timeout: Duration) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// Whether [`connect`](Self::connect) applies the migrations (default
    /// `true`). Without, the pool connects lazily and
    /// [`PostgresStore::migrate`] can be called later, or never (if the
    /// schema is managed elsewhere).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Makes the store: checks the configuration, sets up the pool and,
    /// unless disabled, applies the migrations (which needs a connection).
    ///
    /// A malformed URL, schema or table name, or a pool size of 0 is
    /// [`StoreError::Backend`]; a server that cannot be reached is
    /// [`StoreError::Unavailable`].
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let names = Names::new(self.schema.as_deref(), &self.table)?;
        if self.pool_size == 0 {
            return Err(config_error("the pool size must be at least 1"));
        }
        let mut pg: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(self.pool_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("resumable");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(self.pool_timeout);
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql: Sql::new(&names),
                names,
            }),
        };
        if self.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

impl PostgresStore {
    /// The schema version this release creates: the number of the last
    /// migration step it knows.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version as u32;

    /// Connects with the default configuration and applies the migrations.
    /// `url` is a `postgres://` URL or a `key=value` connection string, as
    /// [`tokio_postgres::Config`] parses them. Same as
    /// `PostgresStore::builder(url).connect()`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// A configuration with the defaults, to adjust before
    /// [`connect`](PostgresStoreBuilder::connect).
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            pool_timeout: DEFAULT_POOL_TIMEOUT,
            migrate: true,
        }
    }

    /// Applies the migration steps the database lacks, in one transaction
    /// under an advisory lock, so that any number of instances may call it
    /// at once. Does nothing on an up-to-date database.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let names = &self.inner.names;
        let mut client = self.inner.pool.get().await.map_err(pool_error)?;
        let txn = client.transaction().await.map_err(pg_error)?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&names.lock_key()])
            .await
            .map_err(pg_error)?;
        // Looked up before anything is created, so that an up-to-date
        // database needs no privilege to create tables.
        let recorded: bool = txn
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&names.migrations])
            .await
            .map_err(pg_error)?
            .get(0);
        let applied: i32 = if recorded {
            txn.query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {}", names.migrations),
                &[],
            )
            .await
            .map_err(pg_error)?
            .get(0)
        } else {
            if let Some(schema) = &names.schema {
                let exists: bool = txn
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                        &[schema],
                    )
                    .await
                    .map_err(pg_error)?
                    .get(0);
                if !exists {
                    txn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
                        .await
                        .map_err(pg_error)?;
                }
            }
            txn.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                     version integer PRIMARY KEY,
                     description text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
                names.migrations
            ))
            .await
            .map_err(pg_error)?;
            0
        };
        let latest = MIGRATIONS[MIGRATIONS.len() - 1].version;
        if applied > latest {
            tracing::warn!(
                table = %names.table,
                applied,
                known = latest,
                "the session table was migrated by a newer release; using it as it is"
            );
        }
        for step in MIGRATIONS.iter().filter(|m| m.version > applied) {
            txn.batch_execute(&(step.sql)(names))
                .await
                .map_err(pg_error)?;
            txn.execute(
                &format!(
                    "INSERT INTO {} (version, description) VALUES ($1, $2)",
                    names.migrations
                ),
                &[&step.version, &step.description],
            )
            .await
            .map_err(pg_error)?;
            tracing::info!(
                table = %names.table,
                version = step.version,
                "applied a session table migration"
            );
        }
        txn.commit().await.map_err(pg_error)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// After a compare-and-swap changed no row: why not.
    async fn cas_failure(&self, client: &deadpool_postgres::Object, id: &SessionId) -> StoreError {
        let probe = async {
            let statement = client
                .prepare_cached(&self.inner.sql.exists)
                .await
                .map_err(pg_error)?;
            client
                .query_opt(&statement, &[id.as_uuid()])
                .await
                .map_err(pg_error)
        };
        match probe.await {
            Ok(Some(_)) => StoreError::Conflict,
            Ok(None) => StoreError::NotFound,
            Err(e) => e,
        }
    }
}

/// A session's columns, derived from it.
struct Row {
    owner: Vec<u8>,
    state: &'static str,
    due_at: Option<i64>,
    active_until: Option<i64>,
    record: String,
}

impl Row {
    fn of(session: &Session) -> Result<Self, StoreError> {
        let due_at = session.due_at().map(nanos);
        let active = matches!(
            session.state.kind(),
            StateKind::Open | StateKind::Finalizing
        );
        Ok(Row {
            owner: session.owner.as_str().as_bytes().to_vec(),
            state: session.state.kind().as_str(),
            due_at,
            active_until: due_at.filter(|_| active),
            record: serde_json::to_string(session).map_err(|e| StoreError::Corrupt(Box::new(e)))?,
        })
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        let row = Row::of(session)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.insert)
            .await
            .map_err(pg_error)?;
        let inserted = client
            .execute(
                &statement,
                &[
                    session.id.as_uuid(),
                    &version_param(Version::FIRST),
                    &row.owner,
                    &row.state,
                    &row.due_at,
                    &row.active_until,
                    &row.record,
                ],
            )
            .await
            .map_err(|e| match e.code() {
                Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                    StoreError::AlreadyExists
                }
                _ => pg_error(e),
            })?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(Version::FIRST)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.select)
            .await
            .map_err(pg_error)?;
        let Some(row) = client
            .query_opt(&statement, &[id.as_uuid()])
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let version: i64 = row.try_get(0).map_err(pg_error)?;
        let record: &str = row.try_get(1).map_err(pg_error)?;
        let session: Session =
            serde_json::from_str(record).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
        if session.id != *id {
            return Err(corrupt(format!(
                "the row of session {id} holds the record of session {}",
                session.id
            )));
        }
        Ok(Some(Versioned {
            session,
            version: version_of(version)?,
        }))
    }

    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        let row = Row::of(session)?;
        let client = self.client().await?;
        // A version that does not fit the column matches no row.
        if let Ok(expected) = i64::try_from(expected.get()) {
            let statement = client
                .prepare_cached(&self.inner.sql.update)
                .await
                .map_err(pg_error)?;
            let updated = client
                .query_opt(
                    &statement,
                    &[
                        session.id.as_uuid(),
                        &expected,
                        &row.owner,
                        &row.state,
                        &row.due_at,
                        &row.active_until,
                        &row.record,
                    ],
                )
                .await
                .map_err(pg_error)?;
            if let Some(updated) = updated {
                return version_of(updated.try_get(0).map_err(pg_error)?);
            }
        }
        Err(self.cas_failure(&client, &session.id).await)
    }

    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        let client = self.client().await?;
        if let Ok(expected) = i64::try_from(expected.get()) {
            let statement = client
                .prepare_cached(&self.inner.sql.delete)
                .await
                .map_err(pg_error)?;
            let deleted = client
                .execute(&statement, &[id.as_uuid(), &expected])
                .await
                .map_err(pg_error)?;
            if deleted > 0 {
                return Ok(());
            }
        }
        Err(self.cas_failure(&client, id).await)
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.due)
            .await
            .map_err(pg_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        client
            .query(&statement, &[&nanos(now), &limit])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| {
                row.try_get::<_, uuid::Uuid>(0)
                    .map(SessionId::from)
                    .map_err(pg_error)
            })
            .collect()
    }

    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.count_active)
            .await
            .map_err(pg_error)?;
        let count: i64 = client
            .query_one(&statement, &[&owner.as_str().as_bytes(), &nanos(now)])
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        u64::try_from(count).map_err(|_| corrupt(format!("a negative count: {count}")))
    }
}

/// One migration step: statements that are idempotent on their own.
struct Migration {
    version: i32,
    description: &'static str,
    sql: fn(&Names) -> String,
}

/// Every migration step, in order. A new release appends steps, and a step
/// only adds to the schema (see the module documentation).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "sessions table, with indexes for the sweep and the quota",
    sql: sessions_table,
}];

/// Migration 1: the sessions table and its two indexes.
fn sessions_table(names: &Names) -> String {
    let Names {
        table,
        due_index,
        active_index,
        ..
    } = names;
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             id uuid PRIMARY KEY,
             version bigint NOT NULL CHECK (version > 0),
             owner bytea NOT NULL,
             state text NOT NULL,
             due_at bigint,
             active_until bigint,
             record text NOT NULL
         );
         CREATE INDEX IF NOT EXISTS {due_index}
             ON {table} (due_at) WHERE due_at IS NOT NULL;
         CREATE INDEX IF NOT EXISTS {active_index}
             ON {table} (owner, active_until) WHERE active_until IS NOT NULL;
         COMMENT ON TABLE {table} IS
             'Upload sessions of the resumable crate: one JSON record per session, \
              updated by compare-and-swap on version.';
         COMMENT ON COLUMN {table}.due_at IS
             'When the sweep has work on the session: nanoseconds since the Unix epoch.';
         COMMENT ON COLUMN {table}.active_until IS
             'due_at of open and finalizing sessions (they count against the owner''s \
              quota until then), NULL otherwise: nanoseconds since the Unix epoch.';"
    )
}

/// The quoted names of the tables and indexes.
struct Names {
    /// The sessions table, schema-qualified if a schema is configured.
    table: String,
    /// The migrations table, likewise.
    migrations: String,
    /// The index of `due_at` (index names are never qualified).
    due_index: String,
    /// The index of `(owner, active_until)`.
    active_index: String,
    /// The schema, unquoted, if configured.
    schema: Option<String>,
}

impl Names {
    fn new(schema: Option<&str>, table: &str) -> Result<Self, StoreError> {
        if let Some(schema) = schema {
            check_identifier(schema, MAX_IDENTIFIER, "schema")?;
        }
        check_identifier(table, MAX_IDENTIFIER - LONGEST_SUFFIX, "table")?;
        let qualified = |name: &str| match schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(name)),
            None => quote(name),
        };
        Ok(Names {
            table: qualified(table),
            migrations: qualified(&format!("{table}_migrations")),
            due_index: quote(&format!("{table}_due_idx")),
            active_index: quote(&format!("{table}_active_idx")),
            schema: schema.map(str::to_owned),
        })
    }

    /// The advisory lock of the migrations: the same in every instance and
    /// release for one table (FNV-1a of its qualified name).
    fn lock_key(&self) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in "resumable migrations of ".bytes().chain(self.table.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

/// The statements, prepared once per connection.
struct Sql {
    insert: String,
    select: String,
    exists: String,
    update: String,
    delete: String,
    due: String,
    count_active: String,
}

impl Sql {
    fn new(names: &Names) -> Self {
        let t = &names.table;
        Sql {
            insert: format!(
                "INSERT INTO {t} (id, version, owner, state, due_at, active_until, record) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING"
            ),
            select: format!("SELECT version, record FROM {t} WHERE id = $1"),
            exists: format!("SELECT 1 FROM {t} WHERE id = $1"),
            update: format!(
                "UPDATE {t} SET version = version + 1, owner = $3, state = $4, due_at = $5, \
                 active_until = $6, record = $7 WHERE id = $1 AND version = $2 RETURNING version"
            ),
            delete: format!("DELETE FROM {t} WHERE id = $1 AND version = $2"),
            due: format!("SELECT id FROM {t} WHERE due_at <= $1 ORDER BY due_at LIMIT $2"),
            count_active: format!(
                "SELECT count(*) FROM {t} WHERE owner = $1 AND active_until > $2"
            ),
        }
    }
}

/// Refuses names PostgreSQL would truncate or cannot hold.
fn check_identifier(name: &str, max: usize, what: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > max || name.contains('\0') {
        return Err(config_error(format!(
            "the {what} name must be 1 to {max} bytes without NUL, got {name:?}"
        )));
    }
    Ok(())
}

/// A quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Nanoseconds since the Unix epoch, clamped to what an `i64` holds.
fn nanos(t: SystemTime) -> i64 {
    let n = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i128::MIN),
    };
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

fn version_param(v: Version) -> i64 {
    i64::try_from(v.get()).unwrap_or(i64::MAX)
}

fn version_of(v: i64) -> Result<Version, StoreError> {
    u64::try_from(v)
        .map(Version::new)
        .map_err(|_| corrupt(format!("a negative version: {v}")))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt(message.into())
}

fn config_error(message: impl Into<String>) -> StoreError {
    let message: BoxError = format!("PostgreSQL store configuration: {}", message.into()).into();
    StoreError::Backend(message)
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(Box::new(e)),
        e => StoreError::Backend(Box::new(e)),
    }
}

/// Transient failures are [`StoreError::Unavailable`], the rest
/// [`StoreError::Backend`].
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let transient = match e.code() {
        Some(code) => {
            let code = code.code();
            // 08: connection exceptions; 53: insufficient resources (too
            // many connections, out of memory or disk); 57P01..57P03: the
            // server is shutting down or starting up; 57014: statement
            // timeout; 40001, 40P01: serialization failure, deadlock;
            // 55P03: lock not available; 25006: a read-only server (a
            // standby, before or during a failover).
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01" | "55P03" | "25006"
                )
        }
        None => {
            e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        }
    };
    if transient {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_are_exact_and_clamped() {
        let t = UNIX_EPOCH + Duration::new(2_000_000_000, 123_456_789);
        assert_eq!(nanos(t), 2_000_000_000_123_456_789);
        assert_eq!(nanos(t + Duration::from_nanos(1)), nanos(t) + 1);
        assert_eq!(nanos(UNIX_EPOCH - Duration::from_nanos(5)), -5);
        assert_eq!(
            nanos(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            i64::MAX
        );
        assert_eq!(nanos(UNIX_EPOCH - Duration::from_secs(1 << 40)), i64::MIN);
    }

    #[test]
    fn names_are_quoted_and_checked() {
        let n = Names::new(Some("up\"loads"), "sessions").unwrap();
        assert_eq!(n.table, "\"up\"\"loads\".\"sessions\"");
        assert_eq!(n.migrations, "\"up\"\"loads\".\"sessions_migrations\"");
        assert_eq!(n.due_index, "\"sessions_due_idx\"");
        assert!(Names::new(None, "").is_err());
        assert!(Names::new(None, &"x".repeat(53)).is_err());
        assert!(Names::new(None, &"x".repeat(52)).is_ok());
        assert!(Names::new(Some("a\0b"), "t").is_err());
        assert_ne!(
            Names::new(None, "a").unwrap().lock_key(),
            Names::new(None, "b").unwrap().lock_key()
        );
    }
}
