//! A [`SessionStore`] in a directory: the embedded default. Survives
//! restarts, and may be shared by several processes on one machine.
//!
//! Layout under the root:
//! - `sessions/{id}.json`: one record per session, `{"version", "session"}`,
//!   replaced atomically (write a temporary file `.{id}.{random}.tmp`, fsync,
//!   rename, fsync the directory);
//! - `locks/{00..ff}.lock`: 256 lock files; a compare-and-swap holds the
//!   exclusive `flock` of the session's shard while it reads, compares and
//!   renames, so writers in different processes serialize per shard.
//!
//! A temporary file is made and renamed only under its session's shard lock,
//! so one a crash left behind is known by the lock being free: the sweep
//! removes it at once. (Temporary files without the session in their name,
//! from older versions, are removed once older than ten minutes.)
//!
//! All file I/O runs on tokio's blocking pool, never on the async workers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{SessionStore, Version, Versioned};
use crate::error::StoreError;
use crate::session::{Owner, Session, SessionId};

/// Temporary files that do not name their session, left by a crash, are
/// removed by `due` once older than this.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// Sessions as JSON files in a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    inner: Arc<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    sessions: PathBuf,
    locks: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Record {
    version: u64,
    session: Session,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        let sessions = root.join("sessions");
        let locks = root.join("locks");
        fs::create_dir_all(&sessions)?;
        fs::create_dir_all(&locks)?;
        sync_dir(root)?;
        Ok(FsStore {
            inner: Arc::new(Dirs { sessions, locks }),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Dirs) -> Result<T, StoreError> + Send + 'static,
    {
        let dirs = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&dirs))
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}

impl Dirs {
    fn record_path(&self, id: &SessionId) -> PathBuf {
        self.sessions.join(format!("{id}.json"))
    }

    /// Holds the exclusive lock of the session's shard until dropped.
    fn lock(&self, id: &SessionId) -> Result<File, StoreError> {
        let shard = id.as_uuid().as_bytes()[0];
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.locks.join(format!("{shard:02x}.lock")))
            .map_err(backend)?;
        file.lock().map_err(backend)?;
        Ok(file)
    }

    fn read(&self, id: &SessionId) -> Result<Option<Record>, StoreError> {
        match fs::read(self.record_path(id)) {
            Ok(bytes) => decode(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// Replaces the record; the caller holds the session's shard lock.
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", record.session.id))
            .suffix(".tmp")
            .tempfile_in(&self.sessions)
            .map_err(backend)?;
        temp.write_all(&bytes).map_err(backend)?;
        temp.as_file().sync_all().map_err(backend)?;
        temp.persist(self.record_path(&record.session.id))
            .map_err(|e| backend(e.error))?;
        sync_dir(&self.sessions).map_err(backend)
    }

    /// Every record, skipping (and logging) unreadable ones; with
    /// `remove_stale`, removes temporary files a crash left behind.
    fn scan(&self, remove_stale: bool) -> Result<Vec<Record>, StoreError> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.sessions).map_err(backend)? {
            let entry = entry.map_err(backend)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                if remove_stale {
                    self.remove_stale_temp(&entry, &name, now);
                }
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match fs::read(entry.path()) {
                Ok(bytes) => match decode(&bytes) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "skipping a corrupt session record")
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(out)
    }

    /// Removes a temporary file no writer is using. One named for its
    /// session is taken under the session's shard lock: its writer held that
    /// lock from creating it to renaming it, so once the lock is had the file
    /// is either renamed already or left by a crash. Any other is removed
    /// once older than [`STALE_TEMP_AGE`], judged by the file system's own
    /// time, never by the engine's (possibly virtual) clock.
    fn remove_stale_temp(&self, entry: &fs::DirEntry, name: &str, now: SystemTime) {
        if let Some(id) = temp_owner(name) {
            if let Ok(_lock) = self.lock(&id) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::debug!(file = %name, "removed a temporary file left by a crash")
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "could not remove a temporary file")
                    }
                }
            }
            return;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > STALE_TEMP_AGE));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The session a temporary record file (`.{id}.{random}.tmp`) belongs to.
fn temp_owner(name: &str) -> Option<SessionId> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (id, _random) = rest.split_once('.')?;
    id.parse().ok()
}

#[async_trait]
impl SessionStore for FsStore {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        let session = session.clone();
        self.blocking(move |d| {
            let _lock = d.lock(&session.id)?;
            if d.record_path(&session.id).exists() {
                return Err(StoreError::AlreadyExists);
            }
            d.write(&Record {
                version: Version::FIRST.get(),
                session,
            })?;
            Ok(Version::FIRST)
        })
        .await
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        let id = *id;
        self.blocking(move |d| {
            Ok(d.read(&id)?.map(|r| Versioned {
                session: r.session,
                version: Version::new(r.version),
            }))
        })
        .await
    }

    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        let session = session.clone();
        self.blocking(move |d| {
            let _lock = d.lock(&session.id)?;
            let current = d.read(&session.id)?.ok_or(StoreError::NotFound)?;
            if current.version != expected.get() {
                return Err(StoreError::Conflict);
            }
            let next = expected.next();
            d.write(&Record {
                version: next.get(),
                session,
            })?;
            Ok(next)
        })
        .await
    }

    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        let id = *id;
        self.blocking(move |d| {
            let _lock = d.lock(&id)?;
            let current = d.read(&id)?.ok_or(StoreError::NotFound)?;
            if current.version != expected.get() {
                return Err(StoreError::Conflict);
            }
            fs::remove_file(d.record_path(&id)).map_err(backend)?;
            sync_dir(&d.sessions).map_err(backend)
        })
        .await
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.blocking(move |d| {
            Ok(d.scan(true)?
                .into_iter()
                .filter(|r| r.session.due_at().is_some_and(|t| t <= now))
                .take(limit)
                .map(|r| r.session.id)
                .collect())
        })
        .await
    }

    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        let owner = owner.clone();
        self.blocking(move |d| {
            Ok(d.scan(false)?
                .iter()
                .filter(|r| r.session.owner == owner && r.session.is_active(now))
                .count() as u64)
        })
        .await
    }
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(Box::new(e)))
}

fn backend(e: io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_temporary_file_names_its_session() {
        let id = SessionId::random();
        assert_eq!(temp_owner(&format!(".{id}.Ab12Cd.tmp")), Some(id));
        assert_eq!(temp_owner(".tmpAb12Cd"), None);
        assert_eq!(temp_owner(&format!(".{id}.Ab12Cd")), None);
        assert_eq!(temp_owner(".not-an-id.Ab12Cd.tmp"), None);
    }

    #[tokio::test]
    async fn the_sweep_removes_a_temporary_file_left_by_a_crash_at_once() {
        let root = tempfile::tempdir().unwrap();
        let store = FsStore::open(root.path()).unwrap();
        let sessions = root.path().join("sessions");
        let id = SessionId::random();
        let crashed = format!(".{id}.Ab12Cd.tmp");
        fs::write(sessions.join(&crashed), b"{\"version\":").unwrap();
        // Without the session in its name, a fresh one may be another
        // process's: it stays until it is old.
        fs::write(sessions.join(".tmpAb12Cd"), b"{").unwrap();

        store.due(SystemTime::now(), 10).await.unwrap();
        assert_eq!(names(&sessions), vec![".tmpAb12Cd".to_string()]);
    }

    #[tokio::test]
    async fn the_sweep_leaves_a_temporary_file_whose_writer_holds_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let store = FsStore::open(root.path()).unwrap();
        let sessions = root.path().join("sessions");
        let id = SessionId::random();
        let writing = sessions.join(format!(".{id}.Ab12Cd.tmp"));
        let lock = store.inner.lock(&id).unwrap();
        fs::write(&writing, b"{").unwrap();
        let sweep = tokio::spawn({
            let store = store.clone();
            async move { store.due(SystemTime::now(), 10).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(writing.exists(), "removed while its writer held the lock");
        // The writer renames it into place, then lets go.
        fs::rename(&writing, sessions.join(format!("{id}.json.renamed"))).unwrap();
        drop(lock);
        sweep.await.unwrap().unwrap();
        assert_eq!(names(&sessions), vec![format!("{id}.json.renamed")]);
    }
}
