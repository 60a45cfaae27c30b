//! Recovers client starts that never reached a queue: a start processed in-process by the
//! worker that took it is queued only if that fails, so one lost with its worker is re-sent
//! here, from its Pending summary, once it is older than a grace period.

use std::sync::Arc;
use std::time::Duration;

use super::client::client_start;
use super::{Runtime, RuntimeError};
use durable_engine::OrchestrationStatus;
use durable_store::backend::Backend;
use durable_store::model::InstanceQuery;

/// Summaries read per page of a sweep.
const SWEEP_PAGE: usize = 100;
/// Pages read per sweep, so one sweep's cost is bounded however many starts are waiting; the
/// rest are found by the next sweep.
const SWEEP_PAGES: usize = 10;
/// How long a client start may stay Pending before a sweep re-sends it: as long as a held
/// queue message stays hidden, so a start lost with its worker waits no longer than a message
/// lost with one.
pub const UNSTARTED_GRACE: Duration = Duration::from_secs(30);
/// How often a worker sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

impl<B: Backend> Runtime<B> {
    /// Sweeps every [`SWEEP_EVERY`] with [`UNSTARTED_GRACE`], for as long as the process runs;
    /// a failed sweep is logged and the next one tries again.
    pub async fn sweep_forever(self: Arc<Self>) {
        // The first sweep waits a whole period: a worker that just started has lost nothing
        // younger than the grace, and its task hub may still be in the making.
        let first = tokio::time::Instant::now() + SWEEP_EVERY;
        let mut every = tokio::time::interval_at(first, SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.sweep_unstarted(UNSTARTED_GRACE).await {
                Ok(0) => {}
                Ok(resent) => tracing::info!("re-sent {resent} client starts left unstarted"),
                Err(error) => tracing::warn!("cannot sweep for unstarted client starts: {error}"),
            }
        }
    }

    /// Re-sends the start of every client-started instance still Pending after `grace`, at most
    /// a thousand per call, and returns how many. A re-sent start whose original was processed
    /// meanwhile is dropped as a duplicate, and that repairs a summary left Pending by a turn
    /// that crashed after its commit. Starts of other origins (sub-orchestrations) keep their
    /// message queued until processed and are not swept.
    pub async fn sweep_unstarted(&self, grace: Duration) -> Result<usize, RuntimeError> {
        let grace = chrono::Duration::from_std(grace)
            .map_err(|_| RuntimeError::Invalid(format!("a grace of {grace:?} is too long")))?;
        let cutoff = self.clock.now() - grace;
        let mut query = InstanceQuery {
            statuses: vec![OrchestrationStatus::Pending],
            created_to: Some(cutoff),
            page_size: SWEEP_PAGE,
            // Summaries left unsent (scheduled for later, or for a version no worker here runs)
            // must not hide those behind them: each sweep goes on where the last one stopped.
            continuation: self
                .sweep_from
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
            ..InstanceQuery::default()
        };
        let mut resent = 0;
        for _ in 0..SWEEP_PAGES {
            let page = self.backend.query(&query).await?;
            let starts: Vec<_> = page
                .items
                .iter()
                // A scheduled start is lost only once it is past its time by the grace.
                .filter(|summary| summary.scheduled_start_time.is_none_or(|at| at <= cutoff))
                // A start of a version this worker leaves to others is theirs to sweep: sent
                // from here it would only be rejected, one more copy each sweep.
                .filter(|summary| !self.leaves_to_others(summary.version.as_deref()))
                .filter_map(|summary| {
                    let id = summary.client_start_id.clone()?;
                    Some(client_start(summary, id))
                })
                .collect();
            if !starts.is_empty() {
                self.backend.send(&starts).await?;
                resent += starts.len();
            }
            match page.continuation {
                Some(continuation) => query.continuation = Some(continuation),
                None => {
                    query.continuation = None;
                    break;
                }
            }
        }
        *self.sweep_from.lock().unwrap_or_else(|e| e.into_inner()) = query.continuation;
        Ok(resent)
    }
}
