//! Operations on stored instances beyond sending them a message: purging one instance (with its
//! sub-orchestrations on request) or every ended instance a query matches, and rewinding a
//! failed instance (and its failed children).

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::ids::IdSource;
use super::outbox::{action_message, parent_notification};
use super::rewind::{pending_work, rewind};
use super::spans;
use super::storage_requests::commit_counted;
use super::{Runtime, RuntimeError};
use durable_engine::{
    Action, EventKind, HistoryEvent, OrchestrationInstance, OrchestrationStatus, ParentInstance,
    TurnOutcome,
};
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{
    Commit, Destination, InstanceQuery, InstanceState, LoadedInstance, Message,
};
use durable_store::names::{InstanceId, InstanceIdError};

/// The statuses of an instance that has ended: the only ones a purge touches.
const ENDED: [OrchestrationStatus; 4] = [
    OrchestrationStatus::Completed,
    OrchestrationStatus::Failed,
    OrchestrationStatus::Terminated,
    OrchestrationStatus::Canceled,
];
/// Instances purged at once by a purge over a query.
const PURGE_CONCURRENCY: usize = 8;
/// Page size of the query a purge walks.
const PURGE_PAGE: usize = 100;
/// A rewind that keeps losing the race for the instance's version gives up after this many tries.
const MAX_CONFLICT_RETRIES: usize = 16;
/// How deep a rewind or a recursive purge follows sub-orchestrations into their own children.
const MAX_NESTING: usize = 16;
/// Ids a purge over a query names in what it reports (its log line).
const PURGED_SAMPLE: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(
        "instance '{instance_id}' is {status:?}; only an instance that has ended can be purged"
    )]
    NotEnded {
        instance_id: String,
        status: OrchestrationStatus,
    },
    #[error("instance '{instance_id}' is {status:?}; only a failed instance can be rewound")]
    NotFailed {
        instance_id: String,
        status: OrchestrationStatus,
    },
}

impl From<StoreError> for ManageError {
    fn from(error: StoreError) -> Self {
        Self::Runtime(error.into())
    }
}

impl From<InstanceIdError> for ManageError {
    fn from(error: InstanceIdError) -> Self {
        Self::Runtime(error.into())
    }
}

impl ManageError {
    fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Runtime(RuntimeError::Store(StoreError::Conflict(_)))
        )
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, ManageError>> + Send + 'a>>;

/// What a purge over a query did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// How many instances it purged.
    pub count: usize,
    /// The ids of the first of them, for a log line.
    pub sample: Vec<String>,
    /// Whether it stopped at its limit with matches left over.
    pub more: bool,
}

impl<B: Backend> Runtime<B> {
    /// Deletes everything stored for an instance that has ended. Both its state and its summary
    /// must say so: a summary that is Pending over an ended state is a restart on its way.
    pub async fn purge(&self, instance_id: &str) -> Result<(), ManageError> {
        let instance_id = InstanceId::parse(instance_id)?.into_string();
        self.check_ended(&instance_id).await?;
        if !self.backend.purge(&instance_id).await? {
            // Purged by someone else between the reads and the delete.
            return Err(RuntimeError::NotFound(instance_id).into());
        }
        Ok(())
    }

    /// Refuses an instance that does not exist, or whose state or summary says it has not
    /// ended.
    async fn check_ended(&self, instance_id: &str) -> Result<(), ManageError> {
        let summary = self.backend.read_summary(instance_id).await?;
        let state = self.backend.read_state(instance_id).await?;
        if summary.is_none() && state.is_none() {
            return Err(RuntimeError::NotFound(instance_id.to_string()).into());
        }
        let statuses = [
            state.as_ref().map(|s| s.status),
            summary.as_ref().map(|s| s.status),
        ];
        match statuses.into_iter().flatten().find(|s| !s.is_terminal()) {
            Some(status) => Err(ManageError::NotEnded {
                instance_id: instance_id.to_string(),
                status,
            }),
            None => Ok(()),
        }
    }

    /// Purges each of `ids` that has ended, a few at a time, and returns those it purged;
    /// instances that have not ended, or that someone else purged meanwhile, are skipped.
    async fn purge_each(&self, ids: Vec<String>) -> Result<Vec<String>, ManageError> {
        let mut purged = Vec::new();
        let mut results = futures::stream::iter(ids)
            .map(|id| async move { self.purge(&id).await.map(|()| id) })
            .buffer_unordered(PURGE_CONCURRENCY);
        while let Some(result) = results.next().await {
            match result {
                Ok(id) => purged.push(id),
                Err(ManageError::NotEnded { .. })
                | Err(ManageError::Runtime(RuntimeError::NotFound(_))) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(purged)
    }

    /// Purges every ended instance `query` matches (its statuses, if any, must all be ended
    /// ones) and returns how many it purged. Instances that another client purged or restarted
    /// meanwhile are skipped.
    pub async fn purge_matching(&self, query: &InstanceQuery) -> Result<usize, ManageError> {
        if let Some(status) = query.statuses.iter().find(|s| !s.is_terminal()) {
            return Err(RuntimeError::Invalid(format!(
                "only instances that have ended can be purged, not {status:?} ones"
            ))
            .into());
        }
        let query = InstanceQuery {
            statuses: if query.statuses.is_empty() {
                ENDED.to_vec()
            } else {
                query.statuses.clone()
            },
            ..query.clone()
        };
        Ok(self.purge_pages(query, None).await?.count)
    }

    /// Purges what `query` (over ended statuses) matches, page by page, looking at no more than
    /// `limit` matches when one is given.
    pub(crate) async fn purge_pages(
        &self,
        mut query: InstanceQuery,
        limit: Option<usize>,
    ) -> Result<Purged, ManageError> {
        query.continuation = None;
        let mut purged = Purged::default();
        let mut seen = 0;
        loop {
            // A page of at least one: a limit of 0 still looks once, as 1 would.
            query.page_size = limit.map_or(PURGE_PAGE, |limit| {
                PURGE_PAGE.min(limit.saturating_sub(seen)).max(1)
            });
            let page = self.backend.query(&query).await?;
            seen += page.items.len();
            let ids = page.items.into_iter().map(|s| s.instance_id).collect();
            let done = self.purge_each(ids).await?;
            purged.count += done.len();
            let room = PURGED_SAMPLE - purged.sample.len();
            purged.sample.extend(done.into_iter().take(room));
            match page.continuation {
                Some(_) if limit.is_some_and(|limit| seen >= limit) => {
                    purged.more = true;
                    return Ok(purged);
                }
                Some(next) => query.continuation = Some(next),
                None => return Ok(purged),
            }
        }
    }

    /// Purges an instance that has ended and the sub-orchestrations below it (those its
    /// history started, theirs, and so on, at most 16 levels down), children before their
    /// parents, so a purge cut short can be run again. A sub-orchestration that has not ended
    /// is left as it is. Returns how many instances it purged.
    pub async fn purge_recursive(&self, instance_id: &str) -> Result<usize, ManageError> {
        let instance_id = InstanceId::parse(instance_id)?.into_string();
        self.check_ended(&instance_id).await?;
        let mut purged = 0;
        for level in self.descendants(&instance_id).await?.into_iter().rev() {
            purged += self.purge_each(level).await?.len();
        }
        self.purge(&instance_id).await?;
        Ok(purged + 1)
    }

    /// The sub-orchestrations below `root`, one list per level: those the current execution's
    /// history of each instance started.
    async fn descendants(&self, root: &str) -> Result<Vec<Vec<String>>, ManageError> {
        let mut levels: Vec<Vec<String>> = Vec::new();
        let mut level = vec![root.to_string()];
        for depth in 0..=MAX_NESTING {
            let mut next = Vec::new();
            let mut histories = futures::stream::iter(level)
                .map(|parent| async move { self.children(&parent).await })
                .buffer_unordered(PURGE_CONCURRENCY);
            while let Some(children) = histories.next().await {
                next.extend(children?);
            }
            if next.is_empty() {
                break;
            }
            if depth == MAX_NESTING {
                tracing::warn!(
                    "purge of '{root}': sub-orchestrations nested deeper than {MAX_NESTING} \
                     levels are left as they are"
                );
                break;
            }
            levels.push(next.clone());
            level = next;
        }
        Ok(levels)
    }

    /// The sub-orchestrations the current execution of `instance_id` started.
    async fn children(&self, instance_id: &str) -> Result<Vec<String>, ManageError> {
        let history = self
            .backend
            .load(instance_id)
            .await?
            .map(|loaded| loaded.history)
            .unwrap_or_default();
        Ok(history
            .into_iter()
            .filter_map(|event| match event.kind {
                EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => Some(instance_id),
                _ => None,
            })
            .collect())
    }

    /// Rewinds a failed instance: its execution goes back to before the failures that ended it
    /// (activities and sub-orchestrations whose failure it did not survive), the work that
    /// leaves open is sent again, failed sub-orchestrations among it are rewound too, and a
    /// wake-up message makes the instance replay (so one that failed on its own code runs
    /// again). The instance keeps its execution id; `reason` is recorded in its history.
    pub async fn rewind(&self, instance_id: &str, reason: &str) -> Result<(), ManageError> {
        let instance_id = InstanceId::parse(instance_id)?.into_string();
        self.rewind_at_depth(instance_id, reason, 0).await
    }

    fn rewind_at_depth<'a>(
        &'a self,
        instance_id: String,
        reason: &'a str,
        depth: usize,
    ) -> Boxed<'a, ()> {
        Box::pin(async move {
            for _ in 0..MAX_CONFLICT_RETRIES {
                let rewound = self.rewind_once(&instance_id, reason);
                let children = match self.on_behalf_of(&instance_id, rewound).await {
                    Err(error) if error.is_conflict() => continue,
                    other => other?,
                };
                for child in children {
                    if depth + 1 >= MAX_NESTING {
                        tracing::warn!(
                            "rewind of '{instance_id}': failed sub-orchestration '{child}' is \
                             nested too deep to be rewound with it"
                        );
                        continue;
                    }
                    match self.rewind_at_depth(child, reason, depth + 1).await {
                        // Already rewound or restarted by someone else: nothing left to do.
                        Ok(()) | Err(ManageError::NotFailed { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
                return Ok(());
            }
            Err(RuntimeError::Contention(instance_id).into())
        })
    }

    /// One attempt under the instance's version; returns the failed children to rewind next.
    async fn rewind_once(
        &self,
        instance_id: &str,
        reason: &str,
    ) -> Result<Vec<String>, ManageError> {
        let summary = self.backend.read_summary(instance_id).await?;
        let loaded = self.backend.load(instance_id).await?;
        let (summary, instance) = match (summary, loaded) {
            (None, None) => return Err(RuntimeError::NotFound(instance_id.to_string()).into()),
            (Some(summary), None) => {
                return Err(ManageError::NotFailed {
                    instance_id: instance_id.to_string(),
                    status: summary.status,
                })
            }
            (summary, Some(instance)) => (summary, instance),
        };
        let now = self.clock.now();
        if instance.state.status != OrchestrationStatus::Failed {
            // A rewind whose commit landed but whose wake-up or summary may not have: finish it.
            let unfinished = summary.as_ref().is_some_and(|summary| {
                summary.status == OrchestrationStatus::Failed
                    && summary.revision < instance.state.revision
            });
            if !unfinished {
                return Err(ManageError::NotFailed {
                    instance_id: instance_id.to_string(),
                    status: summary.map_or(instance.state.status, |s| s.status),
                });
            }
            let (_, children) = self
                .resume_pending(&instance.state, &instance.history, now)
                .await?;
            self.backend
                .send(&[wake_up(&instance.state, reason, now, &self.options.ids)])
                .await?;
            self.write_summary(instance.state.summary()).await?;
            return Ok(children);
        }
        let LoadedInstance {
            mut state,
            history,
            message_ids,
            version,
        } = instance;
        let rewound = rewind(&history, &message_ids);
        let kept: Vec<HistoryEvent> = rewound.events.iter().map(|e| e.event.clone()).collect();
        let (mut messages, children) = self.resume_pending(&state, &kept, now).await?;
        state.status = OrchestrationStatus::Running;
        state.output = None;
        state.failure = None;
        state.completed_at = None;
        state.updated_at = now;
        state.revision += 1;
        state.rewinds += 1;
        let run = spans::orchestration(&state);
        for message in &mut messages {
            spans::tag(message, run.as_ref());
        }
        state.earlier_message_ids.extend(rewound.forgotten);
        // The open work goes out through the outbox: the wake-up's turn sends it (or any turn
        // does, should this process stop before the wake-up is sent).
        state.outbox.extend(messages);
        let mut commit = Commit {
            state,
            events: rewound.events,
            new_execution: true,
        };
        commit_counted(&*self.backend, Some(&version), &mut commit).await?;
        self.backend
            .send(&[wake_up(&commit.state, reason, now, &self.options.ids)])
            .await?;
        self.write_summary(commit.state.summary()).await?;
        Ok(children)
    }

    /// The messages that get `history`'s open work going again, and the failed children to
    /// rewind. A child that already ended tells the parent again (its first word was dropped
    /// when it reached the failed parent); one that is missing is started again; one that is
    /// still running will report by itself.
    async fn resume_pending(
        &self,
        state: &InstanceState,
        history: &[HistoryEvent],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Message>, Vec<String>), ManageError> {
        let me = OrchestrationInstance {
            instance_id: state.instance_id.clone(),
            execution_id: state.execution_id.clone(),
        };
        let mut messages = Vec::new();
        let mut children = Vec::new();
        for action in pending_work(history) {
            let Action::CreateSubOrchestration {
                id, instance_id, ..
            } = &action
            else {
                messages.push(action_message(
                    &me,
                    &state.name,
                    state.version.as_deref(),
                    &action,
                    now,
                    &self.options.ids,
                ));
                continue;
            };
            let parent = ParentInstance {
                name: state.name.clone(),
                version: state.version.clone(),
                orchestration_instance: me.clone(),
                task_schedule_id: *id,
            };
            let Some(child) = self.backend.read_summary(instance_id).await? else {
                messages.push(action_message(
                    &me,
                    &state.name,
                    state.version.as_deref(),
                    &action,
                    now,
                    &self.options.ids,
                ));
                continue;
            };
            let outcome = match child.status {
                OrchestrationStatus::Failed => {
                    children.push(instance_id.clone());
                    continue;
                }
                OrchestrationStatus::Completed => TurnOutcome::Completed {
                    output: child.output,
                },
                OrchestrationStatus::Terminated | OrchestrationStatus::Canceled => {
                    TurnOutcome::Terminated {
                        reason: child.output,
                    }
                }
                OrchestrationStatus::Running
                | OrchestrationStatus::Pending
                | OrchestrationStatus::Suspended
                | OrchestrationStatus::ContinuedAsNew => continue,
            };
            messages.extend(parent_notification(
                &parent,
                &outcome,
                now,
                &self.options.ids,
            ));
        }
        Ok((messages, children))
    }
}

/// The message that makes a rewound instance replay; pinned to its execution, so it is dropped
/// if the instance was restarted meanwhile.
fn wake_up(state: &InstanceState, reason: &str, now: DateTime<Utc>, ids: &IdSource) -> Message {
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: ids.next_id(),
        destination: Destination::Instance {
            instance_id: state.instance_id.clone(),
            execution_id: Some(state.execution_id.clone()),
        },
        event: HistoryEvent::message(
            now,
            EventKind::GenericEvent {
                data: Some(format!("Rewound: {reason}")),
            },
        ),
        deliver_at: None,
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::Pump;
    use durable_engine::{
        join_all, ActivityContext, ActivityError, OrchestrationContext, OrchestrationError,
        Registry,
    };
    use durable_store::backend::ManualClock;
    use durable_store::memory::MemoryBackend;
    use durable_store::names::PartitionCount;

    /// Calls of `Flaky` so far; the first `failures` of them fail.
    struct Flaky {
        calls: AtomicUsize,
        failures: usize,
    }

    async fn single(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
        let first: String = ctx.call_activity("Steady", "a").await?;
        let second: String = ctx.call_activity("Flaky", "b").await?;
        Ok(format!("{first}+{second}"))
    }

    async fn fan_out(ctx: OrchestrationContext, (): ()) -> Result<usize, OrchestrationError> {
        let calls = (0..4).map(|i| {
            let name = if i == 2 { "Flaky" } else { "Steady" };
            ctx.call_activity::<String>(name, &i.to_string())
        });
        let results = join_all(calls).await;
        Ok(results.into_iter().collect::<Result<Vec<_>, _>>()?.len())
    }

    async fn parent(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
        let child: String = ctx.call_sub_orchestrator("Single", None, &()).await?;
        Ok(format!("child said {child}"))
    }

    struct Setup {
        runtime: Arc<Runtime<MemoryBackend>>,
        flaky: Arc<Flaky>,
        steady: Arc<AtomicUsize>,
    }

    fn setup(failures: usize) -> Setup {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let backend = Arc::new(MemoryBackend::new(clock.clone(), PartitionCount::default()));
        let flaky = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            failures,
        });
        let steady = Arc::new(AtomicUsize::new(0));
        let (f, s) = (flaky.clone(), steady.clone());
        let registry = Registry::builder()
            .orchestrator("Single", single)
            .orchestrator("FanOut", fan_out)
            .orchestrator("Parent", parent)
            .activity("Steady", move |_: ActivityContext, input: String| {
                s.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, ActivityError>(input) }
            })
            .activity("Flaky", move |_: ActivityContext, input: String| {
                let call = f.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let fail = call <= f.failures;
                async move {
                    if fail {
                        Err(ActivityError::with_type(
                            "Outage",
                            format!("call {call} failed"),
                        ))
                    } else {
                        Ok(input)
                    }
                }
            })
            .build()
            .unwrap();
        Setup {
            runtime: Arc::new(Runtime::new(backend, registry, clock)),
            flaky,
            steady,
        }
    }

    impl Setup {
        async fn drive(&self) {
            Pump::new(
                self.runtime.clone(),
                Duration::from_secs(60),
                Duration::ZERO,
            )
            .run_until_idle(1000)
            .await;
        }

        async fn status(&self, id: &str) -> OrchestrationStatus {
            self.runtime.status(id).await.unwrap().unwrap().status
        }

        async fn history(&self, id: &str) -> Vec<HistoryEvent> {
            self.runtime.history(id).await.unwrap().unwrap()
        }

        async fn run(&self, name: &str, id: &str) {
            self.runtime.start(name, Some(id), &()).await.unwrap();
            self.drive().await;
        }
    }

    fn count(history: &[HistoryEvent], wanted: &str) -> usize {
        history
            .iter()
            .filter(|e| format!("{:?}", e.event_type()) == wanted)
            .count()
    }

    #[tokio::test]
    async fn a_rewound_instance_retries_the_failed_activity_only_and_completes() {
        let t = setup(1);
        t.run("Single", "s").await;
        assert_eq!(t.status("s").await, OrchestrationStatus::Failed);
        assert_eq!(t.steady.load(Ordering::SeqCst), 1);

        t.runtime.rewind("s", "outage over").await.unwrap();
        t.drive().await;
        let summary = t.runtime.status("s").await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{summary:?}"
        );
        assert_eq!(summary.output.as_deref(), Some("\"a+b\""));
        assert_eq!(summary.failure, None);
        assert_eq!(
            t.flaky.calls.load(Ordering::SeqCst),
            2,
            "the failed call ran again"
        );
        assert_eq!(
            t.steady.load(Ordering::SeqCst),
            1,
            "the call that worked did not"
        );
        let history = t.history("s").await;
        assert_eq!(count(&history, "TaskFailed"), 0, "the failure is forgotten");
        assert_eq!(
            count(&history, "TaskScheduled"),
            2,
            "nothing was scheduled twice"
        );
        assert_eq!(count(&history, "TaskCompleted"), 2);
        assert_eq!(count(&history, "ExecutionCompleted"), 1);
        assert!(history.iter().any(|e| matches!(
            &e.kind,
            EventKind::GenericEvent { data: Some(data) } if data == "Rewound: outage over"
        )));
        assert!(t
            .runtime
            .backend()
            .queued(durable_store::model::QueueKind::WorkItems)
            .is_empty());
    }

    #[tokio::test]
    async fn a_rewind_that_fails_again_ends_failed_again() {
        let t = setup(2);
        t.run("Single", "s").await;
        t.runtime.rewind("s", "").await.unwrap();
        t.drive().await;
        assert_eq!(t.status("s").await, OrchestrationStatus::Failed);
        assert_eq!(t.flaky.calls.load(Ordering::SeqCst), 2);
        let history = t.history("s").await;
        assert_eq!(count(&history, "TaskFailed"), 1, "one failure, the latest");
        t.runtime.rewind("s", "").await.unwrap();
        t.drive().await;
        assert_eq!(t.status("s").await, OrchestrationStatus::Completed);
    }

    #[tokio::test]
    async fn a_fan_out_reruns_only_the_branch_that_failed() {
        let t = setup(1);
        t.run("FanOut", "f").await;
        assert_eq!(t.status("f").await, OrchestrationStatus::Failed);
        let steady_before = t.steady.load(Ordering::SeqCst);
        t.runtime.rewind("f", "again").await.unwrap();
        t.drive().await;
        let summary = t.runtime.status("f").await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{summary:?}"
        );
        assert_eq!(summary.output.as_deref(), Some("4"));
        assert_eq!(t.flaky.calls.load(Ordering::SeqCst), 2);
        let history = t.history("f").await;
        assert_eq!(count(&history, "TaskCompleted"), 4);
        assert_eq!(
            t.steady.load(Ordering::SeqCst),
            steady_before,
            "branches that finished keep their results"
        );
    }

    #[tokio::test]
    async fn a_parent_rewinds_its_failed_child_with_it() {
        let t = setup(1);
        t.run("Parent", "p").await;
        assert_eq!(t.status("p").await, OrchestrationStatus::Failed);
        let child = t
            .history("p")
            .await
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                    Some(instance_id.clone())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(t.status(&child).await, OrchestrationStatus::Failed);
        t.runtime.rewind("p", "fixed").await.unwrap();
        t.drive().await;
        assert_eq!(t.status(&child).await, OrchestrationStatus::Completed);
        let summary = t.runtime.status("p").await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{summary:?}"
        );
        assert_eq!(summary.output.as_deref(), Some("\"child said a+b\""));
    }

    #[tokio::test]
    async fn only_failed_instances_rewind() {
        let t = setup(0);
        t.run("Single", "done").await;
        assert!(matches!(
            t.runtime.rewind("done", "").await,
            Err(ManageError::NotFailed {
                status: OrchestrationStatus::Completed,
                ..
            })
        ));
        t.runtime
            .start("Single", Some("pending"), &())
            .await
            .unwrap();
        assert!(matches!(
            t.runtime.rewind("pending", "").await,
            Err(ManageError::NotFailed {
                status: OrchestrationStatus::Pending,
                ..
            })
        ));
        assert!(matches!(
            t.runtime.rewind("nobody", "").await,
            Err(ManageError::Runtime(RuntimeError::NotFound(_)))
        ));
        assert!(matches!(
            t.runtime.rewind("a/b", "").await,
            Err(ManageError::Runtime(RuntimeError::InvalidInstanceId(_)))
        ));
    }

    #[tokio::test]
    async fn purges_take_ended_instances_only() {
        let t = setup(0);
        t.run("Single", "keep-done").await;
        t.run("Single", "drop-done").await;
        t.runtime
            .start("Single", Some("drop-pending"), &())
            .await
            .unwrap();
        assert!(matches!(
            t.runtime.purge("drop-pending").await,
            Err(ManageError::NotEnded {
                status: OrchestrationStatus::Pending,
                ..
            })
        ));
        let prefix = InstanceQuery {
            instance_id_prefix: Some("drop-".to_string()),
            ..InstanceQuery::default()
        };
        assert_eq!(t.runtime.purge_matching(&prefix).await.unwrap(), 1);
        assert!(t.runtime.status("drop-done").await.unwrap().is_none());
        assert!(t
            .runtime
            .backend()
            .load("drop-done")
            .await
            .unwrap()
            .is_none());
        assert!(t.runtime.status("drop-pending").await.unwrap().is_some());
        assert!(t.runtime.status("keep-done").await.unwrap().is_some());
        t.runtime.purge("keep-done").await.unwrap();
        assert!(matches!(
            t.runtime.purge("keep-done").await,
            Err(ManageError::Runtime(RuntimeError::NotFound(_)))
        ));
        let running = InstanceQuery {
            statuses: vec![OrchestrationStatus::Running],
            ..InstanceQuery::default()
        };
        assert!(matches!(
            t.runtime.purge_matching(&running).await,
            Err(ManageError::Runtime(RuntimeError::Invalid(_)))
        ));
    }
}
