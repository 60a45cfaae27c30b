//! Processing one control message: load, recover an unsent outbox, de-duplicate, run the engine
//! turn, commit under the instance's version, then send and clear the outbox and update the
//! summary (ARCHITECTURE.md, "A turn, crash by crash").

use chrono::{DateTime, Utc};

use super::ids::IdSource;
use super::outbox::{action_message, child_not_started, parent_notification, timer_hop};
use super::{Disposition, Runtime, RuntimeError};
use durable_engine::{
    execute, Action, ActivityContext, EventKind, HistoryEvent, OrchestrationInstance,
    OrchestrationStatus, ParentInstance, TurnOutcome,
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
/// A start that has not been processed this long after a message was sent is not coming (it
/// went to the poison queue, say): stop deferring the message and drop it.
const MAX_DEFERRAL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
const MAX_DEFER_DELAY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
/// How many consumed message ids and execution ids an instance remembers across executions.
const EARLIER_MESSAGE_IDS: usize = 128;
const EARLIER_EXECUTION_IDS: usize = 16;

/// What to do with the message, decided from the instance as loaded.
enum Plan {
    /// Start a new execution (a new instance, or a new one over an ended instance).
    NewExecution(Option<LoadedInstance>),
    Apply(LoadedInstance),
    Drop(&'static str, Option<LoadedInstance>),
    Defer,
}

impl<B: Backend> Runtime<B> {
    /// Processes a control message; with `known_absent`, the first attempt takes the instance
    /// not to exist without loading it (see [`Runtime::process_queued`]).
    pub(crate) async fn process_control(
        &self,
        message: &Message,
        known_absent: bool,
    ) -> Result<Disposition, RuntimeError> {
        let _turn = self.locks.lock(message.destination.instance_id()).await;
        for attempt in 0..MAX_CONFLICT_RETRIES {
            match self
                .control_once(message, known_absent && attempt == 0)
                .await
            {
                Err(RuntimeError::Store(StoreError::Conflict(_))) => continue,
                other => return other,
            }
        }
        Err(RuntimeError::Contention(
            message.destination.instance_id().to_string(),
        ))
    }

    async fn control_once(
        &self,
        message: &Message,
        assume_absent: bool,
    ) -> Result<Disposition, RuntimeError> {
        let now = self.clock.now();
        let instance_id = message.destination.instance_id();
        let loaded = if assume_absent {
            None
        } else {
            match self.backend.load(instance_id).await? {
                Some(instance) => Some(self.flush_outbox(instance).await?),
                None => None,
            }
        };
        match self.plan(message, loaded, now).await? {
            Plan::Drop(reason, loaded) => {
                // A duplicate may be the redelivery of a turn that crashed before its summary.
                if let Some(instance) = loaded {
                    self.backend
                        .write_summary(&instance.state.summary())
                        .await?;
                }
                Ok(Disposition::Dropped(reason))
            }
            Plan::Defer => {
                // Back off as the wait grows: a start usually follows within a second.
                let waited = (now - message.event.timestamp).max(DEFER_DELAY);
                let mut later = message.clone();
                later.deliver_at = Some(now + waited.min(MAX_DEFER_DELAY));
                self.backend.send(&[later]).await?;
                Ok(Disposition::Deferred)
            }
            Plan::NewExecution(previous) => {
                if previous.is_none() && !assume_absent {
                    // An instance's state never exists without its summary (a start that finds
                    // no summary may then take the id for new without loading; see
                    // `Runtime::process_queued`). A client's start usually created it already.
                    let revision = message.revision.unwrap_or(0) + 1;
                    let pending = start_state(instance_id, &message.event, revision, now)?;
                    self.backend.create_summary(&pending.summary()).await?;
                }
                self.run_turn(message, previous, true, now).await
            }
            Plan::Apply(instance) => match early_timer(message, now) {
                // A hop of a timer longer than the queue's delay limit, still awaited by a live
                // execution (the plan checked): send the next hop.
                Some(fire_at) => {
                    let mut hop = message.clone();
                    hop.deliver_at = Some(timer_hop(fire_at, now));
                    self.backend.send(&[hop]).await?;
                    Ok(Disposition::Rearmed)
                }
                None => self.run_turn(message, Some(instance), false, now).await,
            },
        }
    }

    async fn plan(
        &self,
        message: &Message,
        loaded: Option<LoadedInstance>,
        now: DateTime<Utc>,
    ) -> Result<Plan, RuntimeError> {
        let Some(instance) = loaded else {
            if matches!(message.event.kind, EventKind::ExecutionStarted { .. }) {
                return Ok(Plan::NewExecution(None));
            }
            // Queues are not FIFO: a message can overtake the start of its instance (a client's
            // raise right after its start, an event to a child started in the same turn). It
            // waits for the start, with back-off, for a bounded time; then it is dropped.
            let waited_too_long = now - message.event.timestamp > MAX_DEFERRAL;
            return Ok(if waited_too_long {
                Plan::Drop("no such instance", None)
            } else {
                Plan::Defer
            });
        };
        if let EventKind::ExecutionStarted {
            orchestration_instance,
            parent_instance,
            ..
        } = &message.event.kind
        {
            let state = &instance.state;
            if orchestration_instance.execution_id == state.execution_id
                || state
                    .earlier_execution_ids
                    .contains(&orchestration_instance.execution_id)
                || state.earlier_message_ids.contains(&message.id)
            {
                return Ok(Plan::Drop("duplicate start", Some(instance)));
            }
            // Numbered 1, the start comes from a client that saw nothing of this id: another
            // start won the race to create it, and this one must not run over it, not even once
            // it has ended. (Its client was told the start failed, or raced one it could not
            // see; either way the id's one instance stays the winner's.)
            if message.revision == Some(1) {
                return Ok(Plan::Drop(
                    "instance created by another start",
                    Some(instance),
                ));
            }
            if instance.state.status.is_terminal() {
                return Ok(Plan::NewExecution(Some(instance)));
            }
            if let Some(parent) = parent_instance {
                let reason = format!(
                    "instance '{}' already exists and is {:?}",
                    instance.state.instance_id, instance.state.status
                );
                self.backend
                    .send(&[child_not_started(parent, reason, now, &self.options.ids)])
                    .await?;
            }
            return Ok(Plan::Drop("instance already running", Some(instance)));
        }
        let reason = if let Destination::Instance {
            execution_id: Some(execution),
            ..
        } = &message.destination
        {
            (*execution != instance.state.execution_id).then_some("message for another execution")
        } else {
            None
        };
        let duplicate = instance.message_ids.contains(&message.id)
            || instance.state.earlier_message_ids.contains(&message.id);
        let reason = reason
            .or_else(|| duplicate.then_some("duplicate message"))
            .or_else(|| completion_problem(&message.event.kind, &instance.history));
        if reason.is_none() && instance.state.status.is_terminal() {
            // A client that restarts an ended id and raises an event at once: the event may
            // overtake the new start, whose Pending summary names a new execution. Wait for it.
            let restarting = self
                .backend
                .read_summary(&instance.state.instance_id)
                .await?
                .is_some_and(|summary| {
                    summary.status == OrchestrationStatus::Pending
                        && summary.execution_id != instance.state.execution_id
                });
            let waited_too_long = now - message.event.timestamp > MAX_DEFERRAL;
            if restarting && !waited_too_long {
                return Ok(Plan::Defer);
            }
            return Ok(Plan::Drop("instance has ended", Some(instance)));
        }
        Ok(match reason {
            Some(reason) => Plan::Drop(reason, Some(instance)),
            None => Plan::Apply(instance),
        })
    }

    async fn run_turn(
        &self,
        message: &Message,
        previous: Option<LoadedInstance>,
        new_execution: bool,
        now: DateTime<Utc>,
    ) -> Result<Disposition, RuntimeError> {
        let instance_id = message.destination.instance_id().to_string();
        let expected = previous.as_ref().map(|p| p.version.clone());
        // Message ids consumed by this execution so far (its history's) plus this one: kept in
        // the state if the execution ends by continuing as new.
        let mut consumed: Vec<String> = match &previous {
            Some(previous) if !new_execution => previous.message_ids.iter().cloned().collect(),
            _ => Vec::new(),
        };
        consumed.push(message.id.clone());
        let (mut state, mut history) = match previous {
            Some(previous) if !new_execution => (previous.state, previous.history),
            previous => {
                // Above both the previous execution and the client's Pending summary.
                let revision = previous
                    .as_ref()
                    .map_or(0, |p| p.state.revision)
                    .max(message.revision.unwrap_or(0))
                    + 1;
                let mut state = start_state(&instance_id, &message.event, revision, now)?;
                if let Some(previous) = previous {
                    let ids = previous.message_ids.into_iter().collect();
                    remember_execution(&mut state, &previous.state, ids);
                }
                (state, Vec::new())
            }
        };
        let summary_before = state.summary();
        let mut new_events = vec![
            HistoryEvent::message(now, EventKind::OrchestratorStarted),
            message.event.clone(),
        ];
        let mut new_event_ids = vec![None, Some(message.id.clone())];
        let mut stored = Vec::new();
        let mut outbox = Vec::new();
        let mut fresh_history = new_execution;
        let mut generations = 0;
        let mut inline_budget = self.options.max_inline_activities_per_turn;
        loop {
            let turn = execute(&self.registry, &instance_id, &history, &new_events)?;
            let me = OrchestrationInstance {
                instance_id: instance_id.clone(),
                execution_id: state.execution_id.clone(),
            };
            let activities: Vec<&Action> = turn
                .actions
                .iter()
                .filter(|action| matches!(action, Action::ScheduleTask { .. }))
                .collect();
            let run_inline = self.options.inline_activities
                && turn.outcome == TurnOutcome::Running
                && !activities.is_empty()
                && activities.len() <= self.options.max_inline_fan_out
                && activities.len() <= inline_budget;
            for action in turn
                .actions
                .iter()
                .filter(|action| !(run_inline && matches!(action, Action::ScheduleTask { .. })))
            {
                outbox.extend(outbound(&me, &state.name, action, now, &self.options.ids));
            }
            if run_inline {
                history.extend(turn.history_delta.iter().cloned());
            }
            stored.extend(
                turn.history_delta
                    .into_iter()
                    .enumerate()
                    .map(|(i, event)| StoredEvent {
                        event,
                        message_id: new_event_ids.get(i).cloned().flatten(),
                    }),
            );
            state.custom_status = turn.custom_status;
            state.status = turn.outcome.status();
            state.updated_at = now;
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
                                execution_id: state.execution_id.clone(),
                                task_id: *id,
                                name: name.clone(),
                            },
                            input.clone(),
                        )),
                        _ => None,
                    })
                    .collect();
                let results = self.run_activities(calls).await;
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
                record_end(&mut state, &turn.outcome, now);
                if let Some(parent) = &state.parent {
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
                return Err(RuntimeError::RunawayContinueAsNew(instance_id));
            }
            // The next execution starts at once, in this same commit, over a fresh history; the
            // ending one's message ids and id are remembered so redeliveries stay duplicates.
            let ending = state.clone();
            remember_execution(&mut state, &ending, std::mem::take(&mut consumed));
            state.execution_id = self.options.ids.next_id();
            state.input = input.clone();
            history.clear();
            stored.clear();
            fresh_history = true;
            new_events = vec![
                HistoryEvent::message(now, EventKind::OrchestratorStarted),
                HistoryEvent::message(
                    now,
                    EventKind::ExecutionStarted {
                        name: state.name.clone(),
                        version: None,
                        input,
                        orchestration_instance: OrchestrationInstance {
                            instance_id: instance_id.clone(),
                            execution_id: state.execution_id.clone(),
                        },
                        parent_instance: state.parent.clone(),
                        scheduled_start_time: None,
                    },
                ),
            ];
            new_events.extend(carryover_events);
            new_event_ids = vec![None; new_events.len()];
        }
        state.revision += 1;
        state.outbox = outbox;
        let commit = Commit {
            state,
            events: stored,
            new_execution: fresh_history,
        };
        let version = self.backend.commit(expected.as_ref(), &commit).await?;
        self.turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state = commit.state;
        let summary_changed = new_execution || summary_fields_differ(&summary_before, &state);
        let (state, _) = self.send_and_clear(state, version).await?;
        if summary_changed {
            self.backend.write_summary(&state.summary()).await?;
        }
        Ok(Disposition::Applied)
    }

    /// Sends an outbox left by a turn that committed but may have crashed before sending.
    async fn flush_outbox(&self, instance: LoadedInstance) -> Result<LoadedInstance, RuntimeError> {
        let LoadedInstance {
            state,
            history,
            message_ids,
            version,
        } = instance;
        let (state, version) = self.send_and_clear(state, version).await?;
        Ok(LoadedInstance {
            state,
            history,
            message_ids,
            version,
        })
    }

    /// Sends the state's outbox, then commits the state without it (nothing to do when empty).
    async fn send_and_clear(
        &self,
        mut state: InstanceState,
        version: Version,
    ) -> Result<(InstanceState, Version), RuntimeError> {
        if state.outbox.is_empty() {
            return Ok((state, version));
        }
        self.backend.send(&state.outbox).await?;
        state.outbox.clear();
        let clear = Commit {
            state,
            events: Vec::new(),
            new_execution: false,
        };
        let version = self.backend.commit(Some(&version), &clear).await?;
        Ok((clear.state, version))
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
        if let Err(error) = InstanceId::parse(target) {
            let parent = ParentInstance {
                name: name.to_string(),
                version: None,
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
    Some(action_message(me, name, action, now, ids))
}

/// Why a completion cannot be applied: it completes a task history already completed, or one
/// history never scheduled (both are duplicates or strays of an at-least-once queue).
fn completion_problem(kind: &EventKind, history: &[HistoryEvent]) -> Option<&'static str> {
    let task_id = kind.completed_task_id()?;
    let mut scheduled = false;
    for event in history {
        if event.kind.completed_task_id() == Some(task_id) {
            return Some("task already completed");
        }
        if event.kind.is_turn_output() && event.event_id == task_id {
            scheduled = true;
        }
    }
    (!scheduled).then_some("task was never scheduled")
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
        input,
        orchestration_instance,
        parent_instance,
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
