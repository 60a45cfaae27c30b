//! Processing control messages: one instance's waiting messages as a batch, the instance from
//! the cache or the store, de-duplication, the turn on an engine thread, the commit under the
//! instance's version, then outbox and summary (ARCHITECTURE.md, "A turn, crash by crash").

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tracing::field::display;

use super::ids::IdSource;
use super::mailbox::{Claim, Ticket};
use super::outbox::{
    action_message, child_not_started, child_termination, parent_notification, timer_hop,
    work_items,
};
use super::resident::{Code, Known};
use super::sessions::{Sessions, Token};
use super::storage_requests::commit_counted;
use super::{spans, Disposition, Runtime, RuntimeError};
use durable_engine::{
    Action, ActivityContext, EntityId, EventKind, FailureDetails, HistoryEvent,
    OrchestrationInstance, OrchestrationStatus, ParentInstance, Turn, TurnOutcome, VersionFailure,
};
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{
    Commit, Destination, InstanceState, LoadedInstance, Message, StoredEvent, Version,
};
use durable_store::names::InstanceId;

/// Ordinary contention (another worker committed first) is retried inside the invocation.
const MAX_CONFLICT_RETRIES: usize = 16;
/// An orchestration that continues as new this often within one turn never waits for anything.
const MAX_GENERATIONS_PER_TURN: usize = 1000;
/// How long a message for an instance whose start has not been processed yet is deferred.
const DEFER_DELAY: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
const MAX_DEFER_DELAY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
/// How long a message this worker may not run (its instance's version) waits before a worker
/// tries it again: long enough not to spin, short enough for a deployment's swap.
const REJECT_DELAY: chrono::TimeDelta = chrono::TimeDelta::seconds(15);
/// How many consumed message ids and execution ids an instance remembers across executions.
const EARLIER_MESSAGE_IDS: usize = 128;
const EARLIER_EXECUTION_IDS: usize = 16;

/// What a message's processing came to, as handed to every caller waiting on a batch.
pub(crate) type Shared = Result<Disposition, Arc<RuntimeError>>;

/// What to do with one message, decided from the instance as this processing knows it.
enum Plan {
    /// Start a new execution (a new instance, or a new one over an ended instance).
    NewExecution,
    /// Apply it in the instance's next turn.
    Apply,
    /// Nothing to apply; `notice` (if any) tells a parent that its child was not started.
    Drop(&'static str, Option<Box<Message>>),
    /// No instance to apply it to after waiting for one: park it as a poison message.
    Park(String),
    /// A copy of a message, or a completion of a task, that an earlier message of the same
    /// batch brings: dropped whatever the instance's state.
    Repeat(&'static str),
    /// Re-send it later: the instance's start has not been processed yet.
    Defer,
    /// A hop of a timer longer than the queue's delay limit, still awaited, or a start
    /// scheduled for later: send the next hop.
    Rearm(DateTime<Utc>),
    /// Re-send it later, for a worker that may run its version: why this one may not.
    Reject(String),
}

impl Plan {
    /// A drop, a deferral or a re-arm commits nothing, so no version check would catch a
    /// decision made on a stale copy of the instance: it must be made on the stored one.
    fn needs_stored_instance(&self) -> bool {
        matches!(
            self,
            Self::Drop(..) | Self::Park(_) | Self::Defer | Self::Rearm(_) | Self::Reject(_)
        )
    }
}

impl<B: Backend> Runtime<B> {
    /// Processes a control message; with `known_absent`, the first attempt takes the instance
    /// not to exist without loading it (see [`Runtime::process_queued`]). Messages for the same
    /// instance that arrive while one of its turns runs are applied together in the next turn.
    pub(crate) async fn process_control(
        &self,
        message: &Message,
        known_absent: bool,
    ) -> Result<Disposition, RuntimeError> {
        let ticket = self.mailboxes.post(message.clone());
        self.redeem(ticket, known_absent).await
    }

    /// Processes control messages for one instance together: all are posted before any is
    /// claimed, so one turn usually takes them all (another caller's turn may take some).
    pub(crate) async fn process_controls(
        &self,
        messages: &[Message],
    ) -> Vec<Result<Disposition, RuntimeError>> {
        let tickets: Vec<_> = messages
            .iter()
            .map(|message| self.mailboxes.post(message.clone()))
            .collect();
        join_all(tickets.into_iter().map(|ticket| self.redeem(ticket, false))).await
    }

    /// Waits for the posted message's outcome, or for the instance's turn to produce it.
    async fn redeem(
        &self,
        ticket: Ticket<Shared>,
        known_absent: bool,
    ) -> Result<Disposition, RuntimeError> {
        let own_id = ticket.message_id().to_string();
        match ticket.claim().await {
            Claim::Settled(Some(outcome)) => unshare(outcome),
            Claim::Settled(None) => Err(RuntimeError::Abandoned),
            Claim::Turn { batch, guard, own } => {
                let outcomes = {
                    let messages: Vec<&Message> =
                        batch.iter().map(|posted| &posted.message).collect();
                    // Only the caller's own start is known to be of a new id.
                    let assume_absent =
                        known_absent && matches!(messages.as_slice(), [only] if only.id == own_id);
                    self.process_batch(&messages, assume_absent).await
                };
                for (posted, outcome) in batch.into_iter().zip(outcomes) {
                    posted.settle(outcome);
                }
                drop(guard);
                own.await
                    .map_err(|_| RuntimeError::Abandoned)
                    .and_then(unshare)
            }
        }
    }

    /// Processes messages for one instance, in order; ordinary contention (another worker
    /// committed first) is retried inside the invocation.
    async fn process_batch(&self, messages: &[&Message], assume_absent: bool) -> Vec<Shared> {
        let Some(first) = messages.first() else {
            return Vec::new();
        };
        let instance_id = first.destination.instance_id();
        let mut failure = RuntimeError::Contention(instance_id.to_string());
        for attempt in 0..MAX_CONFLICT_RETRIES {
            match self
                .batch_once(instance_id, messages, assume_absent && attempt == 0)
                .await
            {
                Ok(dispositions) => return dispositions.into_iter().map(Ok).collect(),
                Err(RuntimeError::Store(StoreError::Conflict(_)) | RuntimeError::SessionLost) => {
                    self.counters.conflict();
                }
                Err(error) => {
                    failure = error;
                    break;
                }
            }
        }
        let failure = Arc::new(failure);
        messages.iter().map(|_| Err(failure.clone())).collect()
    }

    async fn batch_once(
        &self,
        instance_id: &str,
        messages: &[&Message],
        assume_absent: bool,
    ) -> Result<Vec<Disposition>, RuntimeError> {
        if EntityId::is_entity_instance(instance_id) {
            return self.entity_batch(instance_id, messages).await;
        }
        let mut known = match self.resident.take(instance_id) {
            Some(known) => Some(known),
            None if assume_absent => None,
            None => self.load(instance_id).await?,
        };
        let processed = self.apply_batch(&mut known, messages, assume_absent).await;
        match (processed, known) {
            (Ok(dispositions), Some(known)) => {
                self.keep(known);
                Ok(dispositions)
            }
            (Ok(dispositions), None) => Ok(dispositions),
            (Err(error), known) => {
                if let Some(known) = known {
                    self.forget(&known);
                }
                Err(error)
            }
        }
    }

    /// Loads the instance and sends an outbox left by a turn that crashed before sending it.
    pub(crate) async fn load(&self, instance_id: &str) -> Result<Option<Known>, RuntimeError> {
        Ok(match self.backend.load(instance_id).await? {
            Some(instance) => Some(Known::loaded(self.flush_outbox(instance).await?)),
            None => None,
        })
    }

    /// Keeps the instance for its next message; closes the sessions of what no longer fits.
    pub(crate) fn keep(&self, known: Known) {
        for (instance_id, evicted) in self.resident.put(known) {
            if let Some(token) = evicted.token() {
                self.sessions.close(&instance_id, token);
            }
        }
    }

    pub(crate) fn forget(&self, known: &Known) {
        if let Some(token) = known.token() {
            self.sessions.close(&known.state.instance_id, token);
        }
    }

    /// Runs of ordinary messages share a turn; a start is applied on its own, since it decides
    /// which execution the messages after it belong to.
    async fn apply_batch(
        &self,
        known: &mut Option<Known>,
        messages: &[&Message],
        assume_absent: bool,
    ) -> Result<Vec<Disposition>, RuntimeError> {
        let mut dispositions = Vec::with_capacity(messages.len());
        let mut run = Vec::new();
        for message in messages {
            if matches!(message.event.kind, EventKind::ExecutionStarted { .. }) {
                if !run.is_empty() {
                    dispositions.extend(self.segment(known, &run, false).await?);
                    run.clear();
                }
                dispositions.extend(self.segment(known, &[message], assume_absent).await?);
            } else {
                run.push(*message);
            }
        }
        if !run.is_empty() {
            dispositions.extend(self.segment(known, &run, false).await?);
        }
        Ok(dispositions)
    }

    async fn segment(
        &self,
        known: &mut Option<Known>,
        messages: &[&Message],
        assume_absent: bool,
    ) -> Result<Vec<Disposition>, RuntimeError> {
        let now = self.clock.now();
        let mut plans = self.plans(known.as_ref(), messages, now).await?;
        let stale = known.as_ref().is_some_and(|known| !known.verified);
        if stale && plans.iter().any(Plan::needs_stored_instance) {
            if let Some(stale) = known.take() {
                self.forget(&stale);
            }
            *known = self.load(messages[0].destination.instance_id()).await?;
            plans = self.plans(known.as_ref(), messages, now).await?;
        }
        let mut dispositions = Vec::with_capacity(messages.len());
        let mut apply = Vec::new();
        let mut dropped = false;
        // Messages that wait no more: the record of one that was recorded goes once this is done.
        let mut settled = Vec::new();
        for (message, plan) in messages.iter().zip(plans) {
            if !matches!(plan, Plan::Defer) {
                settled.push(*message);
            }
            dispositions.push(match plan {
                Plan::NewExecution => {
                    if known.is_none() && !assume_absent {
                        // An instance's state never exists without its summary (a start that
                        // finds no summary may then take the id for new without loading; see
                        // `Runtime::process_queued`). A client's start usually created it already.
                        let revision = message.revision.unwrap_or(0) + 1;
                        let instance_id = message.destination.instance_id();
                        let pending = start_state(instance_id, &message.event, revision, now)?;
                        self.backend.create_summary(&pending.summary()).await?;
                    }
                    self.run_turn(known, &[message], true, now).await?;
                    Disposition::Applied
                }
                Plan::Apply => {
                    apply.push(*message);
                    Disposition::Applied
                }
                Plan::Drop(reason, notice) => {
                    if let Some(notice) = notice {
                        self.backend.send(&[*notice]).await?;
                    }
                    dropped = true;
                    Disposition::Dropped(reason)
                }
                Plan::Repeat(reason) => Disposition::Dropped(reason),
                Plan::Park(reason) => {
                    self.park_message(message, reason, 1).await?;
                    Disposition::Parked
                }
                Plan::Defer => {
                    // Back off as the wait grows: a start usually follows within a second.
                    let waited = (now - message.event.timestamp).max(DEFER_DELAY);
                    let mut later = (*message).clone();
                    later.deliver_at = Some(now + waited.min(MAX_DEFER_DELAY));
                    // Recorded before the copy is sent, so a copy flagged as recorded is.
                    later.deferral_recorded = self.note_deferral(message, now).await;
                    self.backend.send(&[later]).await?;
                    Disposition::Deferred
                }
                Plan::Rearm(fire_at) => {
                    let mut hop = (*message).clone();
                    hop.deliver_at = Some(timer_hop(fire_at, now));
                    self.backend.send(&[hop]).await?;
                    Disposition::Rearmed
                }
                Plan::Reject(reason) => {
                    tracing::info!(
                        "'{}': {reason} It waits for a worker that may run it.",
                        message.destination.instance_id()
                    );
                    let mut later = (*message).clone();
                    later.deliver_at = Some(now + REJECT_DELAY);
                    self.backend.send(&[later]).await?;
                    Disposition::Rejected
                }
            });
        }
        if !apply.is_empty() {
            self.run_turn(known, &apply, false, now).await?;
        }
        // A duplicate may be the redelivery of a turn that crashed before its summary.
        if let Some(known) = known
            .as_mut()
            .filter(|known| dropped && !known.summary_current)
        {
            self.write_summary(known.state.summary()).await?;
            known.summary_current = true;
        }
        for message in settled {
            self.forget_deferral(message).await;
        }
        Ok(dispositions)
    }

    /// Plans each message; a message id or a completed task that an earlier message of the same
    /// batch already brings is a duplicate.
    async fn plans(
        &self,
        known: Option<&Known>,
        messages: &[&Message],
        now: DateTime<Utc>,
    ) -> Result<Vec<Plan>, RuntimeError> {
        let mut ids = HashSet::new();
        let mut tasks = HashSet::new();
        let mut plans = Vec::with_capacity(messages.len());
        for message in messages {
            let mut plan = self.plan(message, known, now).await?;
            if matches!(plan, Plan::Apply) {
                if !ids.insert(message.id.as_str()) {
                    plan = Plan::Repeat("duplicate message");
                } else if let Some(task_id) = message.event.kind.completed_task_id() {
                    if !tasks.insert(task_id) {
                        plan = Plan::Repeat("task already completed");
                    }
                }
            }
            plans.push(plan);
        }
        Ok(plans)
    }

    fn max_deferral(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.options.max_deferral).unwrap_or(chrono::TimeDelta::MAX)
    }

    async fn plan(
        &self,
        message: &Message,
        known: Option<&Known>,
        now: DateTime<Utc>,
    ) -> Result<Plan, RuntimeError> {
        if let EventKind::ExecutionStarted {
            scheduled_start_time: Some(at),
            ..
        } = &message.event.kind
        {
            if *at > now {
                return Ok(Plan::Rearm(*at));
            }
        }
        let Some(instance) = known else {
            if let EventKind::ExecutionStarted { version, .. } = &message.event.kind {
                return Ok(self
                    .rejected(version.as_deref())
                    .unwrap_or(Plan::NewExecution));
            }
            // Queues are not FIFO: a message can overtake the start of its instance (a client's
            // raise right after its start, an event to a child started in the same turn). It
            // waits for the start, with back-off, for a bounded time; then it is dropped.
            let waited = now - message.event.timestamp;
            return Ok(if waited > self.max_deferral() {
                Plan::Park(format!(
                    "no instance '{}' after waiting {} s for its start: it was purged, or its \
                     start never came",
                    message.destination.instance_id(),
                    waited.num_seconds()
                ))
            } else {
                Plan::Defer
            });
        };
        let state = &instance.state;
        if let EventKind::ExecutionStarted {
            orchestration_instance,
            parent_instance,
            ..
        } = &message.event.kind
        {
            if orchestration_instance.execution_id == state.execution_id
                || state
                    .earlier_execution_ids
                    .contains(&orchestration_instance.execution_id)
                || state.earlier_message_ids.contains(&message.id)
            {
                return Ok(Plan::Drop("duplicate start", None));
            }
            // Numbered 1, the start comes from a client that saw nothing of this id: another
            // start won the race to create it, and this one must not run over it, not even once
            // it has ended. (Its client was told the start failed, or raced one it could not
            // see; either way the id's one instance stays the winner's.)
            if message.revision == Some(1) {
                return Ok(Plan::Drop("instance created by another start", None));
            }
            if state.status.is_terminal() {
                let EventKind::ExecutionStarted { version, .. } = &message.event.kind else {
                    unreachable!("matched as a start above");
                };
                return Ok(self
                    .rejected(version.as_deref())
                    .unwrap_or(Plan::NewExecution));
            }
            let notice = parent_instance.as_ref().map(|parent| {
                let reason = format!(
                    "instance '{}' already exists and is {:?}",
                    state.instance_id, state.status
                );
                Box::new(child_not_started(parent, reason, now, &self.options.ids))
            });
            return Ok(Plan::Drop("instance already running", notice));
        }
        let reason = if let Destination::Instance {
            execution_id: Some(execution),
            ..
        } = &message.destination
        {
            (*execution != state.execution_id).then_some("message for another execution")
        } else {
            None
        };
        let duplicate = instance.message_ids.contains(&message.id)
            || state.earlier_message_ids.contains(&message.id);
        let reason = reason
            .or_else(|| duplicate.then_some("duplicate message"))
            .or_else(|| instance.tasks.completion_problem(&message.event.kind));
        if reason.is_none() && state.status.is_terminal() {
            // A client that restarts an ended id and raises an event at once: the event may
            // overtake the new start, whose Pending summary names a new execution. Wait for it.
            let restarting = self
                .backend
                .read_summary(&state.instance_id)
                .await?
                .is_some_and(|summary| {
                    summary.status == OrchestrationStatus::Pending
                        && summary.execution_id != state.execution_id
                });
            let waited_too_long = now - message.event.timestamp > self.max_deferral();
            if restarting && !waited_too_long {
                return Ok(Plan::Defer);
            }
            return Ok(Plan::Drop("instance has ended", None));
        }
        Ok(match (reason, early_timer(message, now)) {
            (Some(reason), _) => Plan::Drop(reason, None),
            (None, Some(fire_at)) => Plan::Rearm(fire_at),
            (None, None) => self
                .rejected(state.version.as_deref())
                .unwrap_or(Plan::Apply),
        })
    }

    /// Why the execution of `state` fails here: this worker may not run its version, and such
    /// executions fail rather than wait.
    fn version_failure(&self, state: &InstanceState) -> Option<FailureDetails> {
        let versioning = &self.options.versioning;
        if versioning.failure_strategy != VersionFailure::Fail {
            return None;
        }
        let message = versioning.mismatch(state.version.as_deref())?;
        Some(FailureDetails::new(VERSION_MISMATCH_ERROR_TYPE, message))
    }

    /// Whether this worker leaves the messages of an execution of `version` to other workers.
    pub(crate) fn leaves_to_others(&self, version: Option<&str>) -> bool {
        self.rejected(version).is_some()
    }

    /// The plan for a message of an execution of `version` that this worker may not run, when
    /// such messages wait for another worker; `None` if it may run it, or if the execution is
    /// to fail instead (see `run_turn`).
    fn rejected(&self, version: Option<&str>) -> Option<Plan> {
        let versioning = &self.options.versioning;
        if versioning.failure_strategy != VersionFailure::Reject {
            return None;
        }
        versioning.mismatch(version).map(Plan::Reject)
    }

    /// Runs one turn over `messages` and commits it; on success `known` is the instance as
    /// committed (its session live if the execution still runs). What it logs, the orchestration
    /// code's lines included, carries the instance id, execution id and orchestrator name.
    #[tracing::instrument(name = "turn", skip_all, fields(
        instance_id = %messages[0].destination.instance_id(),
        execution_id,
        function,
    ))]
    async fn run_turn(
        &self,
        known: &mut Option<Known>,
        messages: &[&Message],
        new_execution: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RuntimeError> {
        let instance_id = messages[0].destination.instance_id().to_string();
        let previous = known.take();
        let mut expected = previous.as_ref().map(|p| p.version.clone());
        // What a copy from the cache must still match in storage before activities run here.
        let taken = previous
            .as_ref()
            .map(|p| (p.state.revision, p.state.execution_id.clone()));
        let mut session = LiveSession {
            sessions: &self.sessions,
            instance_id: &instance_id,
            token: previous.as_ref().and_then(Known::token),
        };
        let mut work = match previous {
            Some(previous) if !new_execution => previous,
            previous => {
                // Above both the previous execution and the client's Pending summary.
                let revision = previous
                    .as_ref()
                    .map_or(0, |p| p.state.revision)
                    .max(messages[0].revision.unwrap_or(0))
                    + 1;
                let mut state = start_state(&instance_id, &messages[0].event, revision, now)?;
                if let Some(previous) = &previous {
                    let ids = previous.message_ids.iter().cloned().collect();
                    remember_execution(&mut state, &previous.state, ids);
                }
                session.close();
                let verified = previous.as_ref().is_none_or(|p| p.verified);
                let mut fresh = Known::new_execution(state, previous.map(|p| p.version));
                fresh.verified = verified;
                fresh
            }
        };
        let span = tracing::Span::current();
        span.record("execution_id", display(&work.state.execution_id));
        span.record("function", display(&work.state.name));
        let summary_before = work.state.summary();
        let delivered = spans::Delivered::of(&work.state, messages, now);
        // Executions this turn ends, whose spans are reported once it has committed.
        let mut ended: Vec<spans::Ended> = Vec::new();
        let mut new_events: Vec<HistoryEvent> =
            std::iter::once(HistoryEvent::message(now, EventKind::OrchestratorStarted))
                .chain(messages.iter().map(|message| message.event.clone()))
                .collect();
        let mut new_event_ids: Vec<Option<String>> = std::iter::once(None)
            .chain(messages.iter().map(|message| Some(message.id.clone())))
            .collect();
        let mut stored: Vec<StoredEvent> = Vec::new();
        let mut outbox = Vec::new();
        let mut fresh_history = new_execution;
        let mut generations = 0;
        let mut inline_budget = self.options.max_inline_activities_per_turn;
        loop {
            let new_count = new_events.len();
            let mut turn = match self.version_failure(&work.state) {
                // The code does not run: this worker's may not be the code the execution began
                // with.
                Some(details) => {
                    session.close();
                    work.code = Code::Ended;
                    failed_turn(std::mem::take(&mut new_events), details, now)
                }
                None => {
                    session
                        .step(&mut work.code, std::mem::take(&mut new_events))
                        .await?
                }
            };
            let cap = self.options.max_history_events;
            let still_running =
                matches!(turn.outcome, TurnOutcome::Running | TurnOutcome::Suspended);
            // An execution that is ending (completing, continuing as new) is let through.
            if still_running && work.history_len + stored.len() + turn.history_delta.len() > cap {
                session.close();
                work.code = Code::Ended;
                turn = history_too_large(turn, new_count, cap, now);
            }
            let me = OrchestrationInstance {
                instance_id: instance_id.clone(),
                execution_id: work.state.execution_id.clone(),
            };
            let orchestration_trace = spans::orchestration(&work.state);
            let activities: Vec<&Action> = turn
                .actions
                .iter()
                .filter(|action| matches!(action, Action::ScheduleTask { .. }))
                .collect();
            // Past the checkpoint interval the turn commits, and what it schedules next goes to
            // the work-item queue: a crash then re-runs only what ran after the commit, and no
            // processing holds its message much longer than the interval.
            let within_checkpoint = (self.clock.now() - now)
                .to_std()
                .map_or(true, |ran| ran < self.options.checkpoint_interval);
            let run_inline = self.options.inline_activities
                && within_checkpoint
                && turn.outcome == TurnOutcome::Running
                && !activities.is_empty()
                && activities.len() <= self.options.max_inline_fan_out
                && activities.len() <= inline_budget;
            let mut calls = Vec::new();
            let sent_before = outbox.len();
            for action in turn.actions.iter() {
                match action {
                    Action::ScheduleTask { .. } if run_inline => {}
                    Action::ScheduleTask { .. } => calls.extend(outbound(
                        &me,
                        &work.state.name,
                        work.state.version.as_deref(),
                        action,
                        now,
                        &self.options.ids,
                    )),
                    _ => outbox.extend(outbound(
                        &me,
                        &work.state.name,
                        work.state.version.as_deref(),
                        action,
                        now,
                        &self.options.ids,
                    )),
                }
            }
            for message in calls.iter_mut().chain(&mut outbox[sent_before..]) {
                spans::tag(message, orchestration_trace.as_ref());
            }
            outbox.extend(work_items(calls));
            stored.extend(
                turn.history_delta
                    .into_iter()
                    .enumerate()
                    .map(|(i, event)| StoredEvent {
                        event,
                        message_id: new_event_ids.get(i).cloned().flatten(),
                    }),
            );
            work.state.custom_status = turn.custom_status;
            work.state.status = turn.outcome.status();
            work.state.updated_at = now;
            if run_inline && !work.verified {
                // A cached copy may be stale, and its commit would fail only after the
                // activities ran: make sure it is current before running them.
                self.confirm_current(&instance_id, taken.as_ref()).await?;
                work.verified = true;
            }
            if run_inline {
                // Run the turn's activities here and feed their results straight back: no
                // queue round-trip, one commit. A crash before the commit re-runs them, which
                // the at-least-once contract of activities allows.
                inline_budget -= activities.len();
                let calls: Vec<(ActivityContext, Option<String>)> = activities
                    .iter()
                    .filter_map(|action| match action {
                        Action::ScheduleTask { id, name, input } => Some((
                            ActivityContext {
                                instance_id: instance_id.clone(),
                                execution_id: work.state.execution_id.clone(),
                                task_id: *id,
                                name: name.clone(),
                            },
                            input.clone(),
                        )),
                        _ => None,
                    })
                    .collect();
                let results = self
                    .run_activities(calls, orchestration_trace.as_ref())
                    .await;
                let resumed_at = self.clock.now();
                new_events = std::iter::once(HistoryEvent::message(
                    resumed_at,
                    EventKind::OrchestratorStarted,
                ))
                .chain(
                    results
                        .into_iter()
                        .map(|result| HistoryEvent::message(resumed_at, result)),
                )
                .collect();
                new_event_ids = vec![None; new_events.len()];
                continue;
            }
            let TurnOutcome::ContinuedAsNew {
                input,
                carryover_events,
            } = turn.outcome
            else {
                record_end(&mut work.state, &turn.outcome, now);
                if work.state.status.is_terminal() {
                    ended.extend(spans::Ended::of(&work.state, work.state.status));
                }
                if let (TurnOutcome::Terminated { .. }, Some(reason)) =
                    (&turn.outcome, recursive_termination(messages))
                {
                    // Only children of earlier commits: what this turn decided is not sent.
                    outbox.extend(work.tasks.open_children().map(|child| {
                        child_termination(child, reason.clone(), now, &self.options.ids)
                    }));
                }
                if let Some(parent) = &work.state.parent {
                    outbox.extend(parent_notification(
                        parent,
                        &turn.outcome,
                        now,
                        &self.options.ids,
                    ));
                }
                break;
            };
            generations += 1;
            if generations >= MAX_GENERATIONS_PER_TURN {
                return Err(RuntimeError::RunawayContinueAsNew(instance_id.clone()));
            }
            // The next execution starts at once, in this same commit, over a fresh history; the
            // ending one's message ids and id are remembered so redeliveries stay duplicates.
            let consumed = work
                .message_ids
                .iter()
                .cloned()
                .chain(stored.iter().filter_map(|event| event.message_id.clone()))
                .collect();
            let ending = work.state.clone();
            ended.extend(spans::Ended::of(
                &ending,
                OrchestrationStatus::ContinuedAsNew,
            ));
            remember_execution(&mut work.state, &ending, consumed);
            work.state.execution_id = self.options.ids.next_id();
            work.state.rewinds = 0;
            span.record("execution_id", display(&work.state.execution_id));
            work.state.input = input.clone();
            work.restart_history();
            work.code = Code::Stored(Vec::new());
            stored.clear();
            fresh_history = true;
            new_events = vec![
                HistoryEvent::message(now, EventKind::OrchestratorStarted),
                HistoryEvent::message(
                    now,
                    EventKind::ExecutionStarted {
                        name: work.state.name.clone(),
                        // Durable Functions keeps both across continue-as-new.
                        version: work.state.version.clone(),
                        input,
                        orchestration_instance: OrchestrationInstance {
                            instance_id: instance_id.clone(),
                            execution_id: work.state.execution_id.clone(),
                        },
                        parent_instance: work.state.parent.clone(),
                        scheduled_start_time: None,
                        parent_trace_context: work.state.trace_context.clone(),
                        tags: work.state.tags.clone(),
                    },
                ),
            ];
            new_events.extend(carryover_events);
            new_event_ids = vec![None; new_events.len()];
        }
        let committed = self
            .commit_turn(&mut work, expected.take(), stored, outbox, fresh_history)
            .await;
        if let Err(RuntimeError::Store(StoreError::Conflict(_))) = &committed {
            self.counters.turn_refused();
        }
        committed?;
        self.counters.turn_committed();
        if let Some(delivered) = &delivered {
            delivered.report();
        }
        for execution in &ended {
            execution.report(self.clock.now());
        }
        if new_execution || summary_fields_differ(&summary_before, &work.state) {
            self.write_summary(work.state.summary()).await?;
            work.summary_current = true;
        }
        session.keep();
        *known = Some(work);
        Ok(())
    }

    /// Fails with a conflict unless the stored instance is still at `taken` (revision, execution
    /// id) of the cached copy: every commit raises the revision, and a recreated instance has a
    /// new execution id.
    async fn confirm_current(
        &self,
        instance_id: &str,
        taken: Option<&(u64, String)>,
    ) -> Result<(), RuntimeError> {
        let stored = self.backend.read_state(instance_id).await?;
        match (stored, taken) {
            (Some(state), Some((revision, execution_id)))
                if state.revision == *revision && state.execution_id == *execution_id =>
            {
                Ok(())
            }
            _ => Err(RuntimeError::Store(StoreError::Conflict(format!(
                "instance '{instance_id}' changed since this process cached it"
            )))),
        }
    }

    /// Commits the turn's events and state (with its outbox) under `expected`, then sends and
    /// clears the outbox; `work` becomes the instance as committed.
    async fn commit_turn(
        &self,
        work: &mut Known,
        expected: Option<Version>,
        events: Vec<StoredEvent>,
        outbox: Vec<Message>,
        fresh_history: bool,
    ) -> Result<(), RuntimeError> {
        let mut state = work.state.clone();
        state.revision += 1;
        state.outbox = outbox;
        let mut commit = Commit {
            state,
            events,
            new_execution: fresh_history,
        };
        let version = commit_counted(&*self.backend, expected.as_ref(), &mut commit).await?;
        let Commit { state, events, .. } = commit;
        if fresh_history {
            work.restart_history();
        }
        work.record(events);
        let (state, version) = self.send_and_clear(state, version).await?;
        work.state = state;
        work.version = version;
        work.verified = true;
        Ok(())
    }

    /// Sends an outbox left by a turn that committed but may have crashed before sending.
    async fn flush_outbox(&self, instance: LoadedInstance) -> Result<LoadedInstance, RuntimeError> {
        let (state, version) = self
            .send_and_clear(instance.state, instance.version)
            .await?;
        Ok(LoadedInstance {
            state,
            version,
            ..instance
        })
    }

    /// Sends the state's outbox, then commits the state without it (nothing to do when empty).
    pub(crate) async fn send_and_clear(
        &self,
        mut state: InstanceState,
        version: Version,
    ) -> Result<(InstanceState, Version), RuntimeError> {
        if state.outbox.is_empty() {
            return Ok((state, version));
        }
        self.backend.send(&state.outbox).await?;
        state.outbox.clear();
        let mut clear = Commit {
            state,
            events: Vec::new(),
            new_execution: false,
        };
        let version = commit_counted(&*self.backend, Some(&version), &mut clear).await?;
        Ok((clear.state, version))
    }
}

/// The caller's own error when it alone holds it; otherwise the shared one.
fn unshare(outcome: Shared) -> Result<Disposition, RuntimeError> {
    outcome.map_err(|shared| Arc::try_unwrap(shared).unwrap_or_else(RuntimeError::Batch))
}

/// The orchestration code of one turn, run in an engine thread: a session opened in this turn
/// or kept from an earlier one. Dropped without [`LiveSession::keep`] (the turn failed, or was
/// cancelled), it closes the session, whose code has run past what was committed.
struct LiveSession<'a> {
    sessions: &'a Sessions,
    instance_id: &'a str,
    token: Option<Token>,
}

impl LiveSession<'_> {
    async fn step(
        &mut self,
        code: &mut Code,
        new_events: Vec<HistoryEvent>,
    ) -> Result<Turn, RuntimeError> {
        let (token, turn) = match std::mem::replace(code, Code::Ended) {
            Code::Live(token) => {
                let turn = self
                    .sessions
                    .next(self.instance_id, token, new_events)
                    .await?;
                (token, turn.ok_or(RuntimeError::SessionLost)?)
            }
            Code::Stored(past) => {
                let (token, turn) = self
                    .sessions
                    .open(self.instance_id, past, new_events)
                    .await?;
                self.token = Some(token);
                (token, turn)
            }
            Code::Ended => return Err(RuntimeError::NoTurn(self.instance_id.to_string())),
        };
        if matches!(turn.outcome, TurnOutcome::Running | TurnOutcome::Suspended) {
            *code = Code::Live(token);
        } else {
            // The engine thread dropped the session with the execution's end.
            self.token = None;
        }
        Ok(turn)
    }

    fn close(&mut self) {
        if let Some(token) = self.token.take() {
            self.sessions.close(self.instance_id, token);
        }
    }

    fn keep(mut self) {
        self.token = None;
    }
}

impl Drop for LiveSession<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Error type recorded for an execution whose history passed
/// [`crate::RuntimeOptions::max_history_events`].
pub const HISTORY_TOO_LARGE_ERROR_TYPE: &str = "HistoryTooLarge";
/// The error type of an execution failed by a worker that may not run its version (with
/// [`VersionFailure::Fail`]), as Durable Functions names it.
pub const VERSION_MISMATCH_ERROR_TYPE: &str = "VersionMismatch";

/// The turn that fails the execution instead: the new events are recorded (their messages are
/// consumed), the code's decisions are not, and nothing is dispatched.
fn history_too_large(turn: Turn, new_count: usize, cap: usize, now: DateTime<Utc>) -> Turn {
    let details = FailureDetails::new(
        HISTORY_TOO_LARGE_ERROR_TYPE,
        format!(
            "the history of this execution would pass {cap} events; an orchestration that \
             grows this large should continue as new (`continue_as_new`) to start over with an \
             empty history, or hand work to sub-orchestrations"
        ),
    );
    let new_events = turn.history_delta.into_iter().take(new_count).collect();
    Turn {
        custom_status: turn.custom_status,
        ..failed_turn(new_events, details, now)
    }
}

/// A turn that records `new_events` and ends the execution Failed with `details`, without
/// running its code.
fn failed_turn(
    mut history_delta: Vec<HistoryEvent>,
    details: FailureDetails,
    now: DateTime<Utc>,
) -> Turn {
    history_delta.push(HistoryEvent::message(
        now,
        EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Failed,
            result: None,
            failure_details: Some(details.clone()),
        },
    ));
    history_delta.push(HistoryEvent::message(now, EventKind::OrchestratorCompleted));
    Turn {
        actions: Vec::new(),
        history_delta,
        custom_status: None,
        outcome: TurnOutcome::Failed { details },
    }
}

/// The fire time of a timer message that arrived before it (an intermediate hop).
fn early_timer(message: &Message, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &message.event.kind {
        EventKind::TimerFired { fire_at, .. } if *fire_at > now => Some(*fire_at),
        _ => None,
    }
}

/// Records an execution that is ending (restart or continue-as-new) in the state that follows.
fn remember_execution(state: &mut InstanceState, ending: &InstanceState, consumed: Vec<String>) {
    state.earlier_message_ids = ending.earlier_message_ids.clone();
    state.earlier_message_ids.extend(consumed);
    let excess = state
        .earlier_message_ids
        .len()
        .saturating_sub(EARLIER_MESSAGE_IDS);
    state.earlier_message_ids.drain(..excess);
    state.earlier_execution_ids = ending.earlier_execution_ids.clone();
    state
        .earlier_execution_ids
        .push(ending.execution_id.clone());
    let excess = state
        .earlier_execution_ids
        .len()
        .saturating_sub(EARLIER_EXECUTION_IDS);
    state.earlier_execution_ids.drain(..excess);
}

/// The message an action sends. A sub-orchestration aimed at an id the store cannot hold fails
/// the parent's task at once, and such an event is dropped, rather than sending a message that
/// could never be stored.
fn outbound(
    me: &OrchestrationInstance,
    name: &str,
    version: Option<&str>,
    action: &Action,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Option<Message> {
    let target = match action {
        Action::CreateSubOrchestration {
            id, instance_id, ..
        } => Some((Some(*id), instance_id)),
        Action::SendEvent { instance_id, .. } => Some((None, instance_id)),
        _ => None,
    };
    if let Some((task, target)) = target {
        // An event may go to an entity (`@name@key`, whose key obeys the instance id rules).
        let addressable = match (task, target.strip_prefix('@')) {
            (None, Some(entity)) if EntityId::from_instance_id(target).is_ok() => {
                InstanceId::parse(entity).map(drop)
            }
            _ => InstanceId::parse(target).map(drop),
        };
        if let Err(error) = addressable {
            let parent = ParentInstance {
                name: name.to_string(),
                version: version.map(str::to_string),
                orchestration_instance: me.clone(),
                task_schedule_id: task.unwrap_or(-1),
            };
            let reason = format!("cannot address instance '{target}': {error}");
            if task.is_some() {
                return Some(child_not_started(&parent, reason, now, ids));
            }
            tracing::warn!("{reason}; the event is dropped");
            return None;
        }
    }
    Some(action_message(me, name, version, action, now, ids))
}

/// The state of a new execution, from its ExecutionStarted event.
fn start_state(
    instance_id: &str,
    started: &HistoryEvent,
    revision: u64,
    now: DateTime<Utc>,
) -> Result<InstanceState, RuntimeError> {
    let EventKind::ExecutionStarted {
        name,
        version,
        input,
        orchestration_instance,
        parent_instance,
        parent_trace_context,
        tags,
        ..
    } = &started.kind
    else {
        return Err(RuntimeError::Invalid(format!(
            "instance '{instance_id}' has no state and the message is not a start"
        )));
    };
    Ok(InstanceState {
        instance_id: instance_id.to_string(),
        name: name.clone(),
        version: version.clone(),
        tags: tags.clone(),
        execution_id: orchestration_instance.execution_id.clone(),
        status: OrchestrationStatus::Pending,
        input: input.clone(),
        output: None,
        failure: None,
        custom_status: None,
        parent: parent_instance.clone(),
        created_at: started.timestamp,
        updated_at: now,
        completed_at: None,
        // One below what the first commit writes, which the client's Pending summary may hold.
        revision,
        outbox: Vec::new(),
        earlier_message_ids: Vec::new(),
        earlier_execution_ids: Vec::new(),
        trace_context: parent_trace_context.clone(),
        rewinds: 0,
        storage_requests: 0,
    })
}

/// The reason of a recursive termination among a turn's messages, if one asks for it.
fn recursive_termination(messages: &[&Message]) -> Option<Option<String>> {
    messages
        .iter()
        .find_map(|message| match &message.event.kind {
            EventKind::ExecutionTerminated {
                input,
                recurse: true,
            } => Some(input.clone()),
            _ => None,
        })
}

fn record_end(state: &mut InstanceState, outcome: &TurnOutcome, now: DateTime<Utc>) {
    match outcome {
        TurnOutcome::Completed { output } => {
            state.output = output.clone();
            state.completed_at = Some(now);
        }
        TurnOutcome::Failed { details } => {
            state.failure = Some(details.clone());
            state.completed_at = Some(now);
        }
        TurnOutcome::Terminated { reason } => {
            state.output = reason.clone();
            state.completed_at = Some(now);
        }
        TurnOutcome::Running | TurnOutcome::Suspended | TurnOutcome::ContinuedAsNew { .. } => {}
    }
}

fn summary_fields_differ(
    before: &durable_store::model::InstanceSummary,
    after: &InstanceState,
) -> bool {
    before.status != after.status
        || before.custom_status != after.custom_status
        || before.output != after.output
        || before.failure != after.failure
        || before.execution_id != after.execution_id
}
