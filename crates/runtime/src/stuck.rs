//! Instances that look stuck, for operators: a summary that disagrees with the instance's state
//! (or has none behind it), and a Running instance with nothing in flight (no activity, timer or
//! sub-orchestration open, nothing unsent), which waits for an event or for nothing at all.

use std::time::Duration;

use durable_engine::{EntityId, OrchestrationStatus};
use durable_store::backend::Backend;
use durable_store::model::{InstanceQuery, InstanceSummary};

use crate::rewind::pending_work;
use crate::{Runtime, RuntimeError};

/// Pages of Pending and Running summaries one look for stuck instances reads at most.
const MAX_STUCK_PAGES: usize = 10;
/// Summaries read per query page.
const STUCK_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StuckReason {
    /// The summary says Pending or Running, but no state exists: the start was never processed.
    NoState,
    /// The state has moved on (another status or execution) and the summary never followed.
    SummaryDisagrees { state: OrchestrationStatus },
    /// Running with no work open and nothing unsent.
    NothingPending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StuckInstance {
    pub summary: InstanceSummary,
    pub reason: StuckReason,
}

impl<B: Backend> Runtime<B> {
    /// The Pending and Running instances whose summary has not changed for `idle` that look
    /// stuck, looking at about `limit` of them at most (one state and history read each).
    pub async fn stuck(
        &self,
        idle: Duration,
        limit: usize,
    ) -> Result<Vec<StuckInstance>, RuntimeError> {
        let idle = chrono::Duration::from_std(idle)
            .map_err(|_| RuntimeError::Invalid(format!("an idle time of {idle:?} is too long")))?;
        let before = self.clock.now() - idle;
        let mut query = InstanceQuery {
            statuses: vec![OrchestrationStatus::Pending, OrchestrationStatus::Running],
            created_to: Some(before),
            page_size: STUCK_PAGE.min(limit.max(1)),
            ..InstanceQuery::default()
        };
        let mut found = Vec::new();
        let mut examined = 0;
        // Instances created long ago but active since are skipped without counting: bound the
        // pages too, so one request never walks a whole large table.
        for _ in 0..MAX_STUCK_PAGES {
            let page = self.backend.query(&query).await?;
            // A scheduled start waits for its time, not for a lost start; an entity waits for
            // operations, which is no sign of anything.
            let idle = |s: &InstanceSummary| {
                s.updated_at <= before
                    && s.scheduled_start_time.is_none_or(|at| at <= before)
                    && !EntityId::is_entity_instance(&s.instance_id)
            };
            for summary in page.items.into_iter().filter(idle) {
                examined += 1;
                if let Some(reason) = self.why_stuck(&summary).await? {
                    found.push(StuckInstance { summary, reason });
                }
            }
            match page.continuation {
                Some(continuation) if examined < limit => query.continuation = Some(continuation),
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    async fn why_stuck(
        &self,
        summary: &InstanceSummary,
    ) -> Result<Option<StuckReason>, RuntimeError> {
        let Some(loaded) = self.backend.load(&summary.instance_id).await? else {
            return Ok(Some(StuckReason::NoState));
        };
        let state = &loaded.state;
        if state.status != summary.status || state.execution_id != summary.execution_id {
            return Ok(Some(StuckReason::SummaryDisagrees {
                state: state.status,
            }));
        }
        let idle = state.status == OrchestrationStatus::Running
            && state.outbox.is_empty()
            && pending_work(&loaded.history).is_empty();
        Ok(idle.then_some(StuckReason::NothingPending))
    }
}
