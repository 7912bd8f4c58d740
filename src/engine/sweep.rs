//! The sweep: expire abandoned sessions and unclaimed uploads, delete every
//! byte they held, forget old records.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Engine;
use super::types::SweepReport;
use crate::error::{Error, StoreError};
use crate::machine::{self, SweepAction};
use crate::session::{Session, SessionId};
use crate::store::Version;

impl Engine {
    /// Does the sweep's work that is due now: expires abandoned sessions and
    /// unclaimed temporary uploads, deletes every byte they held, and forgets
    /// old records. Safe to run from every instance at once.
    pub async fn sweep(&self) -> Result<SweepReport, Error> {
        let now = self.clock.now();
        let due = self.store.due(now, self.config.sweep_batch).await?;
        let mut report = SweepReport::default();
        for id in due {
            if let Err(e) = self.sweep_one(id, now, &mut report).await {
                report.failed += 1;
                tracing::warn!(session = %id, error = %e, "sweep failed; a later sweep retries");
            }
        }
        if report != SweepReport::default() {
            tracing::info!(?report, "sweep");
        }
        Ok(report)
    }

    /// Runs [`sweep`](Engine::sweep) every `interval` on the current tokio
    /// runtime until the returned handle is aborted or dropped with the
    /// runtime.
    pub fn spawn_sweeper(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        })
    }

    async fn sweep_one(
        &self,
        id: SessionId,
        now: SystemTime,
        report: &mut SweepReport,
    ) -> Result<(), Error> {
        let timeouts = self.config.timeouts;
        for _ in 0..=self.config.max_conflict_retries {
            let Some(loaded) = self.store.load(&id).await? else {
                return Ok(());
            };
            let result = match machine::sweep_action(&loaded.session, now) {
                SweepAction::Keep => return Ok(()),
                SweepAction::Expire(reason) => {
                    let expired = machine::expire(loaded.session, reason, now, &timeouts);
                    match self.store.update(&expired, loaded.version).await {
                        Ok(version) => {
                            report.expired += 1;
                            tracing::debug!(session = %id, ?reason, "session expired");
                            self.purge_and_count(expired, version, report).await
                        }
                        Err(e) => Err(e),
                    }
                }
                SweepAction::Purge => {
                    self.purge_and_count(loaded.session, loaded.version, report)
                        .await
                }
                SweepAction::Forget => {
                    let r = self.store.delete(&id, loaded.version).await;
                    if r.is_ok() {
                        report.forgotten += 1;
                    }
                    r
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contention { id })
    }

    async fn purge_and_count(
        &self,
        session: Session,
        version: Version,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        if let Err(e) = self.sink.purge(&session.upload).await {
            tracing::warn!(session = %session.id, error = %e, "purge failed; a later sweep retries");
            report.failed += 1;
            return Ok(());
        }
        report.purged += 1;
        self.store
            .update(&machine::mark_purged(session), version)
            .await
            .map(|_| ())
    }
}
