//! A [`SessionStore`] in Redis (feature `redis`), for many server processes
//! behind a load balancer: see [`RedisStore`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};
use async_trait::async_trait;

use super::{SessionStore, Version, Versioned};
use crate::error::StoreError;
use crate::session::{Owner, Session, SessionId, SessionState};

/// The default key prefix.
const DEFAULT_PREFIX: &str = "resumable:";

/// The default time to live past a record's due instant.
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most ids one call of `due` returns, whatever its limit, so that one
/// script never blocks the server for long.
const MAX_DUE_BATCH: usize = 100_000;

/// How many entries of expired records one call of `due` removes at most.
const MAX_STALE_REMOVALS: usize = 10_000;

/// The largest score: 2^53 - 1 ms, the last integer a double holds exactly.
const MAX_SCORE_MS: i128 = (1 << 53) - 1;

/// The longest time to live given to a key: about 1,000 years.
const MAX_PTTL_MS: u128 = 1000 * 366 * 24 * 3600 * 1000;

/// Nanoseconds per millisecond.
const NANOS_PER_MS: i128 = 1_000_000;

/// Helpers shared by the write scripts. `KEYS[1]` is the session key,
/// `KEYS[2]` the due set, `KEYS[3]` (for writes) the owner's active set.
const COMMON: &str = r#"
-- Adds an index entry, keeping the set alive at least as long as the record
-- it indexes: a new set gets the record's time to live, an existing one is
-- only ever extended, and one without expiry keeps none.
local function add(key, score, member, pttl)
  local fresh = redis.call('EXISTS', key) == 0
  redis.call('ZADD', key, score, member)
  if fresh then
    redis.call('PEXPIRE', key, pttl)
  else
    local left = redis.call('PTTL', key)
    if left >= 0 and left < tonumber(pttl) then
      redis.call('PEXPIRE', key, pttl)
    end
  end
end

-- Writes the record and its index entries from ARGV[first ..]: version,
-- session JSON, owner, member ('' for none), score, active ('1' or '0'),
-- time to live in ms ('' for none).
local function write(first)
  local version, json, owner = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local member, score, active = ARGV[first + 3], ARGV[first + 4], ARGV[first + 5]
  local pttl = ARGV[first + 6]
  redis.call('HSET', KEYS[1], 'version', version, 'session', json,
    'owner', owner, 'member', member)
  if pttl == '' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], pttl)
  end
  if member ~= '' then
    add(KEYS[2], score, member, pttl)
    if active == '1' then
      add(KEYS[3], score, member, pttl)
    end
  end
end

-- Removes the stored record's index entries; `prefix` is the key prefix.
local function unindex(prefix)
  local old = redis.call('HMGET', KEYS[1], 'owner', 'member')
  local owner, member = old[1] or '', old[2]
  if member and member ~= '' then
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', prefix .. 'active:' .. owner, member)
  end
end

-- 1 if the stored version is ARGV[1], 0 if it is another, -1 if none.
local function check()
  local current = redis.call('HGET', KEYS[1], 'version')
  if not current then
    return -1
  end
  if current ~= ARGV[1] then
    return 0
  end
  return 1
end
"#;

/// ARGV: the write's fields (see `write`). Returns 1, or 0 if the key exists.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
write(1)
return 1
"#;

/// ARGV: expected version, key prefix, the write's fields. Returns `check`.
const UPDATE: &str = r#"
local found = check()
if found ~= 1 then
  return found
end
unindex(ARGV[2])
write(3)
return 1
"#;

/// ARGV: expected version, key prefix. Returns `check`.
const DELETE: &str = r#"
local found = check()
if found ~= 1 then
  return found
end
unindex(ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"#;

/// KEYS[1]: the due set. ARGV: the highest score, the limit, the prefix of
/// session keys, how many entries of vanished records to remove at most.
/// Returns the first `limit` entries up to the score whose record exists, as
/// member, score, member, score ...; removes the others it meets.
const DUE: &str = r#"
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[4])
local out, kept = {}, 0
while kept < limit do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
    'WITHSCORES', 'LIMIT', kept, limit - kept)
  if #batch == 0 then
    break
  end
  local removed = 0
  for i = 1, #batch, 2 do
    local member = batch[i]
    if redis.call('EXISTS', ARGV[3] .. string.sub(member, 8)) == 1 then
      kept = kept + 1
      out[#out + 1] = member
      out[#out + 1] = batch[i + 1]
    else
      redis.call('ZREM', KEYS[1], member)
      removed = removed + 1
    end
  end
  budget = budget - removed
  if removed == 0 or budget <= 0 then
    break
  end
end
return out
"#;

/// Sessions in Redis, shared by any number of server processes behind a
/// load balancer (feature `redis`).
///
/// Cloning is cheap and shares the connection; each
/// [`connect`](RedisStore::connect) opens a connection of its own.
///
/// # Keys
/// Every key starts with a configurable prefix (`resumable:` unless
/// [`RedisStore::prefix`] says otherwise), so that several stores, or other
/// applications, can share one server:
/// - `{prefix}session:{id}`: a hash, one per session, with the fields
///   `version` (the compare-and-swap counter, in decimal), `session` (the
///   [`Session`] as JSON), `owner` (the owner's id) and `member` (the
///   session's entry in the indexes below, empty when it has none);
/// - `{prefix}due`: a sorted set of the sessions that have a
///   [`Session::due_at`], so that [`due`](SessionStore::due) reads a range of
///   it (`ZRANGEBYSCORE`) instead of scanning every key;
/// - `{prefix}active:{owner}`: a sorted set per owner of their open and
///   finalizing sessions, so that [`count_active`](SessionStore::count_active)
///   counts a range of it (`ZCOUNT`).
///
/// Both sorted sets score an entry by its `due_at` in whole milliseconds since
/// the Unix epoch (rounded down; a score is a double, exact to the
/// millisecond for the next 280,000 years but not to the nanosecond). The
/// member is `{ns}:{id}`, where `{ns}` is the six-digit count of nanoseconds
/// past that millisecond: members of one score sort byte by byte, so the
/// sets are ordered by the exact instant, and the store filters the one
/// millisecond at the edge of a query to the nanosecond. In the per-owner
/// set, `due_at` is the instant the session stops being active
/// ([`Session::is_active`]).
///
/// # Scripts
/// Every write is one Lua script, which Redis runs atomically: no other
/// command runs between its check and its writes.
/// - create: writes the record and its index entries only if the key does
///   not exist (else [`StoreError::AlreadyExists`]);
/// - update: compares the stored `version` with the expected one and, only if
///   equal, removes the old index entries, writes the new record with the
///   next version and adds the new entries (else [`StoreError::Conflict`],
///   or [`StoreError::NotFound`] if there is no record), so of several
///   instances recording different chunks from one version exactly one
///   succeeds and the others reload and retry: no chunk is lost;
/// - delete: the same comparison, then removes the index entries and the key;
/// - due: reads the first entries of `{prefix}due` up to `now` and drops
///   those whose record is gone (expired by its time to live, below).
///
/// The record and its index entries thus always change together. `load`
/// reads the hash (`HMGET`); `count_active` counts with `ZCOUNT` and reads
/// the one millisecond at the edge, in one `MULTI`.
///
/// # Time to live
/// So that nothing lives forever when no sweep runs, every session key gets
/// a time to live (`PEXPIRE`) at each write: it expires
/// [`ttl`](RedisStore::ttl) after the later of its [`Session::due_at`] and
/// the write itself, both read on the writing process's system clock (the
/// time to live is relative, so the Redis server's clock does not matter).
/// A session is active only before its `due_at`, so the time to live never
/// removes a live session; and the sweep has work on a session from its
/// `due_at` on and rewrites (or deletes) it when it does, which sets a new
/// time to live; so as long as a sweep runs, and succeeds, more often than
/// every `ttl`, the sweep always gets there first. The time to live is a
/// last resort: a record it removes was never swept, so the bytes it held
/// stay in the sink. Choose `ttl` far longer than the sweep interval and
/// any outage of the sweep or the sink you mean to ride out (the default is
/// seven days).
///
/// A claimed session has no `due_at`: the sweep never deletes it, so neither
/// does the time to live, unless [`RedisStore::claimed_ttl`] asks for it.
///
/// The index sets get a time to live too, never shorter than that of any
/// record they index (each addition may only extend it), so they disappear
/// once every record in them has. `due` removes the entries of records that
/// expired; an entry in a per-owner set outlives its expired record until
/// the set expires, but it is not counted by then (it was due `ttl` ago).
///
/// # Durability and deployment
/// A write is acknowledged once Redis has applied it; it is durable as far
/// as the server's persistence makes it so (append-only file with
/// `appendfsync always` for no loss on a crash). A call that fails with
/// [`StoreError::Unavailable`] after its command was sent (a timeout, a
/// dropped connection) may or may not have been applied: a retry then meets
/// [`StoreError::Conflict`] (or [`StoreError::AlreadyExists`]), as after a
/// concurrent write, and reloads. Use a single server (or a
/// primary with replicas); Redis Cluster is not supported, since a script
/// touches keys that do not share a hash slot.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    ttl: Duration,
    claimed_ttl: Option<Duration>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    create: Script,
    update: Script,
    delete: Script,
    due: Script,
}

impl Scripts {
    fn new() -> Self {
        let write = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Scripts {
            create: write(CREATE),
            update: write(UPDATE),
            delete: write(DELETE),
            due: Script::new(DUE),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("conn", &self.conn)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("claimed_ttl", &self.claimed_ttl)
            .finish_non_exhaustive()
    }
}

/// A session's entry in the index sets.
struct Entry {
    member: String,
    score: i64,
    active: bool,
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://host:port/db`, or any
    /// other form the `redis` crate accepts), with the default prefix and
    /// time to live.
    ///
    /// The connection is a [`ConnectionManager`]: one multiplexed connection
    /// that reconnects after a failure. Here it waits at most 2 s for a
    /// connection and 5 s for a reply, and retries connecting twice before a
    /// call fails with [`StoreError::Unavailable`]; build the manager
    /// yourself and use [`from_manager`](RedisStore::from_manager) for other
    /// settings.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the server cannot be reached;
    /// [`StoreError::Backend`] if the URL is invalid or the server refuses
    /// the connection (authentication).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url).map_err(classify)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(classify)?;
        Ok(Self::from_manager(conn))
    }

    /// A store on a connection manager you built, with the default prefix
    /// and time to live.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        RedisStore {
            conn,
            prefix: DEFAULT_PREFIX.into(),
            ttl: DEFAULT_TTL,
            claimed_ttl: None,
            scripts: Arc::new(Scripts::new()),
        }
    }

    /// Uses `prefix` for every key (default `resumable:`). Stores with
    /// different prefixes on one server never see each other's sessions;
    /// every process sharing sessions must use the same prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// Lets a session key expire `ttl` after the later of its
    /// [`Session::due_at`] and its last write (default seven days): see
    /// [Time to live](RedisStore#time-to-live). Make it far longer than the
    /// sweep interval; it is rounded up to whole milliseconds, at least one.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Lets the key of a claimed session (which has no due instant and which
    /// the sweep never deletes) expire `ttl` after the write that claimed it.
    /// By default it never expires, as in the other stores; once it has
    /// expired, the application can no longer read the blob through the
    /// engine (the blob itself stays in the sink).
    pub fn claimed_ttl(mut self, ttl: Duration) -> Self {
        self.claimed_ttl = Some(ttl);
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}session:{id}", self.prefix)
    }

    fn due_key(&self) -> String {
        format!("{}due", self.prefix)
    }

    fn active_key(&self, owner: &Owner) -> String {
        format!("{}active:{}", self.prefix, owner.as_str())
    }

    /// The time to live of the session's key in ms, `None` for none.
    fn pttl(&self, session: &Session) -> Option<u128> {
        let life = match session.due_at() {
            Some(due) => due
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_add(self.ttl),
            None => self.claimed_ttl?,
        };
        Some(life.as_nanos().div_ceil(1_000_000).clamp(1, MAX_PTTL_MS))
    }

    /// The write arguments of the scripts' `write`.
    fn write_args(
        &self,
        invocation: &mut ::redis::ScriptInvocation<'_>,
        session: &Session,
        version: Version,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(session).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let entry = entry(session);
        invocation
            .key(self.session_key(&session.id))
            .key(self.due_key())
            .key(self.active_key(&session.owner))
            .arg(version.get().to_string())
            .arg(json)
            .arg(session.owner.as_str())
            .arg(entry.as_ref().map_or("", |e| e.member.as_str()))
            .arg(entry.as_ref().map_or(0, |e| e.score).to_string())
            .arg(if entry.as_ref().is_some_and(|e| e.active) {
                "1"
            } else {
                "0"
            })
            .arg(
                self.pttl(session)
                    .map_or(String::new(), |ms| ms.to_string()),
            );
        Ok(())
    }
}

/// The session's index entry, if it has a due instant.
fn entry(session: &Session) -> Option<Entry> {
    let due = session.due_at()?;
    let (score, nanos) = split(due);
    Some(Entry {
        member: format!("{nanos:06}:{}", session.id),
        score,
        active: matches!(
            session.state,
            SessionState::Open { .. } | SessionState::Finalizing { .. }
        ),
    })
}

/// An instant as whole milliseconds since the epoch (rounded down, clamped
/// to what a double holds exactly) and the nanoseconds past them.
fn split(t: SystemTime) -> (i64, u32) {
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let ms = nanos
        .div_euclid(NANOS_PER_MS)
        .clamp(-MAX_SCORE_MS, MAX_SCORE_MS);
    (ms as i64, nanos.rem_euclid(NANOS_PER_MS) as u32)
}

/// Parses an index member, `{ns}:{id}`, into its nanoseconds and id.
fn parse_member(member: &str) -> Result<(u32, SessionId), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("malformed index entry {member:?}").into());
    let (nanos, id) = member.split_once(':').ok_or_else(corrupt)?;
    let nanos = nanos.parse().map_err(|_| corrupt())?;
    let id = id.parse().map_err(|_| corrupt())?;
    Ok((nanos, id))
}

/// Parses a score as Redis prints it (an integer here).
fn parse_score(score: &str) -> Result<i64, StoreError> {
    score
        .parse::<i64>()
        .or_else(|_| score.parse::<f64>().map(|f| f as i64))
        .map_err(|_| StoreError::Corrupt(format!("malformed index score {score:?}").into()))
}

/// Classifies a Redis failure: lost or refused connections, timeouts and a
/// server that cannot serve for now are retryable; replies of the wrong
/// shape, or keys of the wrong type under the prefix, are corrupt records.
fn classify(e: RedisError) -> StoreError {
    let unavailable = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
        || matches!(e.code(), Some("BUSY" | "NOREPLICAS"));
    if unavailable {
        StoreError::Unavailable(Box::new(e))
    } else if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE")
    {
        StoreError::Corrupt(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Maps a compare-and-swap script's answer.
fn checked(found: i64) -> Result<(), StoreError> {
    match found {
        1 => Ok(()),
        0 => Err(StoreError::Conflict),
        -1 => Err(StoreError::NotFound),
        other => Err(StoreError::Backend(
            format!("unexpected script reply {other}").into(),
        )),
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        let mut invocation = self.scripts.create.prepare_invoke();
        self.write_args(&mut invocation, session, Version::FIRST)?;
        let created: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        match created {
            1 => Ok(Version::FIRST),
            _ => Err(StoreError::AlreadyExists),
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        let (version, json): (Option<String>, Option<Vec<u8>>) = ::redis::cmd("HMGET")
            .arg(self.session_key(id))
            .arg("version")
            .arg("session")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        let (version, json) = match (version, json) {
            (None, None) => return Ok(None),
            (Some(version), Some(json)) => (version, json),
            _ => {
                return Err(StoreError::Corrupt(
                    format!("the record of {id} lacks its version or session").into(),
                ));
            }
        };
        let version = version.parse::<u64>().map_err(|e| {
            StoreError::Corrupt(format!("the version {version:?} of {id}: {e}").into())
        })?;
        let session: Session =
            serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
        if session.id != *id {
            return Err(StoreError::Corrupt(
                format!("the record of {id} holds session {}", session.id).into(),
            ));
        }
        Ok(Some(Versioned {
            session,
            version: Version::new(version),
        }))
    }

    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        let next = expected.next();
        let mut invocation = self.scripts.update.prepare_invoke();
        invocation
            .arg(expected.get().to_string())
            .arg(&*self.prefix);
        self.write_args(&mut invocation, session, next)?;
        let found: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        checked(found).map(|()| next)
    }

    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        let found: i64 = self
            .scripts
            .delete
            .key(self.session_key(id))
            .key(self.due_key())
            .arg(expected.get().to_string())
            .arg(&*self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        checked(found)
    }

    /// Reads `{prefix}due` from its start up to `now`, in order of due
    /// instant, returning at most 100,000 ids per call. Entries of records
    /// that expired on their own are removed on the way (at most 10,000 per
    /// call; a call that meets more may return fewer ids than are due, and
    /// the next continues).
    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let limit = limit.min(MAX_DUE_BATCH);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now_ms, now_nanos) = split(now);
        let found: Vec<(String, String)> = self
            .scripts
            .due
            .key(self.due_key())
            .arg(now_ms.to_string())
            .arg(limit)
            .arg(format!("{}session:", self.prefix))
            .arg(MAX_STALE_REMOVALS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        // The entries come in order of due instant, so those due by `now`
        // come first; only the last millisecond may hold some that are not.
        let mut ids = Vec::with_capacity(found.len());
        for (member, score) in found {
            let (nanos, id) = parse_member(&member)?;
            if (parse_score(&score)?, nanos) <= (now_ms, now_nanos) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        let (now_ms, now_nanos) = split(now);
        let key = self.active_key(owner);
        let (later, edge): (u64, Vec<String>) = ::redis::pipe()
            .atomic()
            .cmd("ZCOUNT")
            .arg(&key)
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(now_ms)
            .arg(now_ms)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(classify)?;
        let mut active = later;
        for member in edge {
            if parse_member(&member)?.0 > now_nanos {
                active += 1;
            }
        }
        Ok(active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_split_into_ordered_milliseconds_and_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(2_000_000_000, 123_456_789);
        assert_eq!(split(t), (2_000_000_000_123, 456_789));
        assert_eq!(split(UNIX_EPOCH), (0, 0));
        let before = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(split(before), (-1, 999_999));
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(split(far).0, (1 << 53) - 1);
    }

    #[test]
    fn members_parse_back() {
        let id = SessionId::random();
        let (nanos, parsed) = parse_member(&format!("000042:{id}")).unwrap();
        assert_eq!((nanos, parsed), (42, id));
        assert!(matches!(parse_member("42"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            parse_member("000042:not-an-id"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
