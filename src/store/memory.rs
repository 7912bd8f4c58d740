//! An in-memory [`SessionStore`] for tests and single-process servers that
//! need no durability.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{SessionStore, Version, Versioned};
use crate::error::StoreError;
use crate::session::{Owner, Session, SessionId};

/// Sessions in a map behind a mutex. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<SessionId, Versioned>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Versioned>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, session: &Session) -> Result<Version, StoreError> {
        let mut records = self.records();
        if records.contains_key(&session.id) {
            return Err(StoreError::AlreadyExists);
        }
        records.insert(
            session.id,
            Versioned {
                session: session.clone(),
                version: Version::FIRST,
            },
        );
        Ok(Version::FIRST)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
        Ok(self.records().get(id).cloned())
    }

    async fn update(&self, session: &Session, expected: Version) -> Result<Version, StoreError> {
        let mut records = self.records();
        let record = records.get_mut(&session.id).ok_or(StoreError::NotFound)?;
        if record.version != expected {
            return Err(StoreError::Conflict);
        }
        record.version = expected.next();
        record.session = session.clone();
        Ok(record.version)
    }

    async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
        let mut records = self.records();
        match records.get(id) {
            None => Err(StoreError::NotFound),
            Some(r) if r.version != expected => Err(StoreError::Conflict),
            Some(_) => {
                records.remove(id);
                Ok(())
            }
        }
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        Ok(self
            .records()
            .values()
            .filter(|r| r.session.due_at().is_some_and(|t| t <= now))
            .take(limit)
            .map(|r| r.session.id)
            .collect())
    }

    async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
        Ok(self
            .records()
            .values()
            .filter(|r| &r.session.owner == owner && r.session.is_active(now))
            .count() as u64)
    }
}
