//! A single-threaded in-memory runtime: instances, inboxes, an activity queue and timers on a
//! manual clock, driving the engine turn by turn. Deterministic, so its histories can be recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use durable_engine::{
    add_saturating, execute, panic_message, Action, ActivityContext, EventKind, ExecuteError,
    FailureDetails, HistoryEvent, OrchestrationInstance, OrchestrationStatus, ParentInstance,
    Registry, TurnOutcome,
};

const EXECUTION_ID_NAMESPACE: Uuid = Uuid::from_u128(0x2d0c_6a5e_8f1b_4c53_9a47_0b1e_3c5d_7f90);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("instance '{0}' already exists and is {1:?}")]
    AlreadyExists(String, OrchestrationStatus),
    #[error("no instance '{0}'")]
    NotFound(String),
    #[error("instance '{0}' has already ended ({1:?})")]
    Ended(String, OrchestrationStatus),
    #[error("no orchestrator named '{0}' is registered")]
    UnknownOrchestrator(String),
    #[error("could not serialize the payload: {0}")]
    Serialization(String),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

/// A snapshot of an instance, as a status query would show it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceState {
    pub name: String,
    pub execution_id: String,
    pub status: OrchestrationStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub failure: Option<FailureDetails>,
    pub custom_status: Option<String>,
}

impl InstanceState {
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.output.as_deref().unwrap_or("null"))
    }

    pub fn custom_status_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.custom_status.as_deref().unwrap_or("null"))
    }
}

struct Instance {
    state: InstanceState,
    parent: Option<ParentInstance>,
    history: Vec<HistoryEvent>,
    inbox: Vec<HistoryEvent>,
    queued: bool,
}

struct ActivityWork {
    instance: OrchestrationInstance,
    task_id: i32,
    name: String,
    input: Option<String>,
}

/// A message bound for an instance; `execution_id` pins it to one execution (completions), or
/// `None` for whatever execution is current (external events, client operations).
struct Delivery {
    instance_id: String,
    execution_id: Option<String>,
    event: HistoryEvent,
}

pub struct InMemoryRuntime {
    registry: Registry,
    now: DateTime<Utc>,
    instances: HashMap<String, Instance>,
    ready: VecDeque<String>,
    activities: VecDeque<ActivityWork>,
    timers: BTreeMap<(DateTime<Utc>, u64), Delivery>,
    counter: u64,
    duplicate_completions: bool,
    shuffle: Option<u64>,
    turns: u64,
}

impl InMemoryRuntime {
    /// A runtime whose clock starts at 2026-01-01T00:00:00Z.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            now: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            instances: HashMap::new(),
            ready: VecDeque::new(),
            activities: VecDeque::new(),
            timers: BTreeMap::new(),
            counter: 0,
            duplicate_completions: false,
            shuffle: None,
            turns: 0,
        }
    }

    /// Deliver every activity completion twice, as an at-least-once queue may.
    pub fn set_duplicate_completions(&mut self, duplicate: bool) {
        self.duplicate_completions = duplicate;
    }

    /// Run queued activities in a pseudo-random order drawn from `seed`, so completions arrive
    /// out of scheduling order.
    pub fn set_activity_shuffle(&mut self, seed: Option<u64>) {
        self.shuffle = seed.map(|s| s | 1);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Orchestration turns executed so far.
    pub fn turns_executed(&self) -> u64 {
        self.turns
    }

    /// Creates an instance and queues its ExecutionStarted. An id may be reused once its
    /// previous instance has ended.
    pub fn start<I: Serialize + ?Sized>(
        &mut self,
        name: &str,
        instance_id: &str,
        input: &I,
    ) -> Result<(), RuntimeError> {
        if !self.registry.has_orchestrator(name) {
            return Err(RuntimeError::UnknownOrchestrator(name.to_string()));
        }
        let input = to_json(input)?;
        self.create_instance(name, instance_id, input, None)
    }

    pub fn raise_event<T: Serialize + ?Sized>(
        &mut self,
        instance_id: &str,
        name: &str,
        data: &T,
    ) -> Result<(), RuntimeError> {
        let input = to_json(data)?;
        self.client_message(
            instance_id,
            EventKind::EventRaised {
                name: name.to_string(),
                input,
            },
        )
    }

    pub fn terminate(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let input = to_json(reason)?;
        self.client_message(instance_id, EventKind::ExecutionTerminated { input })
    }

    pub fn suspend(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let reason = Some(reason.to_string());
        self.client_message(instance_id, EventKind::ExecutionSuspended { reason })
    }

    pub fn resume(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let reason = Some(reason.to_string());
        self.client_message(instance_id, EventKind::ExecutionResumed { reason })
    }

    pub fn state(&self, instance_id: &str) -> Option<&InstanceState> {
        self.instances
            .get(instance_id)
            .map(|instance| &instance.state)
    }

    /// The history of the instance's current execution.
    pub fn history(&self, instance_id: &str) -> Option<&[HistoryEvent]> {
        self.instances
            .get(instance_id)
            .map(|instance| instance.history.as_slice())
    }

    pub fn instance_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.instances.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Runs turns and activities, and fires timers that are due, until nothing is left to do at
    /// the current time. Returns the number of turns executed.
    pub fn run_until_idle(&mut self) -> Result<u64, RuntimeError> {
        let before = self.turns;
        loop {
            if let Some(work) = self.next_activity() {
                self.run_activity(work);
            } else if let Some(instance_id) = self.ready.pop_front() {
                self.run_turn(&instance_id)?;
            } else if !self.fire_due_timers() {
                return Ok(self.turns - before);
            }
        }
    }

    /// Moves the clock forward by `by`, firing timers in time order (each at its own time).
    pub fn advance(&mut self, by: Duration) -> Result<u64, RuntimeError> {
        let target = add_saturating(self.now, by);
        let mut turns = self.run_until_idle()?;
        while let Some(at) = self.next_timer().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            turns += self.run_until_idle()?;
        }
        self.now = target;
        turns += self.run_until_idle()?;
        Ok(turns)
    }

    /// Advances the clock to each next timer until no work and no timers remain, or `limit`
    /// orchestration time has passed. Returns the turns executed.
    pub fn run_to_completion(&mut self, limit: Duration) -> Result<u64, RuntimeError> {
        let deadline = add_saturating(self.now, limit);
        let mut turns = self.run_until_idle()?;
        while let Some(at) = self.next_timer().filter(|at| *at <= deadline) {
            self.now = self.now.max(at);
            turns += self.run_until_idle()?;
        }
        Ok(turns)
    }

    fn create_instance(
        &mut self,
        name: &str,
        instance_id: &str,
        input: Option<String>,
        parent: Option<ParentInstance>,
    ) -> Result<(), RuntimeError> {
        if let Some(existing) = self.instances.get(instance_id) {
            if !existing.state.status.is_terminal() {
                return Err(RuntimeError::AlreadyExists(
                    instance_id.to_string(),
                    existing.state.status,
                ));
            }
        }
        let execution_id = self.new_execution_id(instance_id);
        let started = self.execution_started(
            instance_id,
            &execution_id,
            name,
            input.clone(),
            parent.clone(),
        );
        self.instances.insert(
            instance_id.to_string(),
            Instance {
                state: InstanceState {
                    name: name.to_string(),
                    execution_id,
                    status: OrchestrationStatus::Pending,
                    input,
                    output: None,
                    failure: None,
                    custom_status: None,
                },
                parent,
                history: Vec::new(),
                inbox: vec![started],
                queued: false,
            },
        );
        self.mark_ready(instance_id);
        Ok(())
    }

    fn execution_started(
        &self,
        instance_id: &str,
        execution_id: &str,
        name: &str,
        input: Option<String>,
        parent_instance: Option<ParentInstance>,
    ) -> HistoryEvent {
        HistoryEvent::message(
            self.now,
            EventKind::ExecutionStarted {
                name: name.to_string(),
                version: None,
                input,
                orchestration_instance: OrchestrationInstance {
                    instance_id: instance_id.to_string(),
                    execution_id: execution_id.to_string(),
                },
                parent_instance,
                scheduled_start_time: None,
            },
        )
    }

    fn new_execution_id(&mut self, instance_id: &str) -> String {
        self.counter += 1;
        let name = format!("{instance_id}#{}", self.counter);
        Uuid::new_v5(&EXECUTION_ID_NAMESPACE, name.as_bytes())
            .simple()
            .to_string()
    }

    fn client_message(&mut self, instance_id: &str, kind: EventKind) -> Result<(), RuntimeError> {
        let instance = self
            .instances
            .get(instance_id)
            .ok_or_else(|| RuntimeError::NotFound(instance_id.to_string()))?;
        if instance.state.status.is_terminal() {
            return Err(RuntimeError::Ended(
                instance_id.to_string(),
                instance.state.status,
            ));
        }
        let event = HistoryEvent::message(self.now, kind);
        self.deliver(Delivery {
            instance_id: instance_id.to_string(),
            execution_id: None,
            event,
        });
        Ok(())
    }

    /// Puts a message in an instance's inbox; messages to unknown or ended instances and to
    /// superseded executions are dropped, as a real task hub discards them.
    fn deliver(&mut self, delivery: Delivery) {
        let Some(instance) = self.instances.get_mut(&delivery.instance_id) else {
            return;
        };
        let stale = delivery
            .execution_id
            .as_ref()
            .is_some_and(|execution| *execution != instance.state.execution_id);
        if stale || instance.state.status.is_terminal() {
            return;
        }
        instance.inbox.push(delivery.event);
        self.mark_ready(&delivery.instance_id);
    }

    fn mark_ready(&mut self, instance_id: &str) {
        if let Some(instance) = self.instances.get_mut(instance_id) {
            if !instance.queued {
                instance.queued = true;
                self.ready.push_back(instance_id.to_string());
            }
        }
    }

    fn next_activity(&mut self) -> Option<ActivityWork> {
        let Some(seed) = self.shuffle.as_mut() else {
            return self.activities.pop_front();
        };
        if self.activities.is_empty() {
            return None;
        }
        // xorshift64: cheap, deterministic, good enough to vary completion order.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let index = usize::try_from(*seed % self.activities.len() as u64).unwrap_or(0);
        self.activities.remove(index)
    }

    fn fire_due_timers(&mut self) -> bool {
        let mut fired = false;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let mut delivery = entry.remove();
            delivery.event.timestamp = self.now;
            self.deliver(delivery);
            fired = true;
        }
        fired
    }

    fn run_activity(&mut self, work: ActivityWork) {
        let ctx = ActivityContext {
            instance_id: work.instance.instance_id.clone(),
            execution_id: work.instance.execution_id.clone(),
            task_id: work.task_id,
            name: work.name.clone(),
        };
        let result = match self.registry.start_activity(ctx, work.input) {
            None => Err(FailureDetails::new(
                "ActivityNotFound",
                format!("no activity named '{}' is registered", work.name),
            )),
            Some(running) => {
                match catch_unwind(AssertUnwindSafe(|| futures_executor::block_on(running))) {
                    Ok(result) => result.map_err(|error| error.into_details()),
                    Err(payload) => Err(FailureDetails::new(
                        "Panic",
                        format!(
                            "activity '{}' panicked: {}",
                            work.name,
                            panic_message(payload.as_ref())
                        ),
                    )),
                }
            }
        };
        let kind = match result {
            Ok(result) => EventKind::TaskCompleted {
                task_scheduled_id: work.task_id,
                result,
            },
            Err(details) => EventKind::TaskFailed {
                task_scheduled_id: work.task_id,
                reason: Some(details.error_message.clone()),
                details: None,
                failure_details: Some(details),
            },
        };
        let copies = if self.duplicate_completions { 2 } else { 1 };
        for _ in 0..copies {
            self.deliver(Delivery {
                instance_id: work.instance.instance_id.clone(),
                execution_id: Some(work.instance.execution_id.clone()),
                event: HistoryEvent::message(self.now, kind.clone()),
            });
        }
    }

    fn run_turn(&mut self, instance_id: &str) -> Result<(), RuntimeError> {
        let Some(instance) = self.instances.get_mut(instance_id) else {
            return Ok(());
        };
        instance.queued = false;
        if instance.inbox.is_empty() || instance.state.status.is_terminal() {
            instance.inbox.clear();
            return Ok(());
        }
        let mut new_events = Vec::with_capacity(instance.inbox.len() + 1);
        new_events.push(HistoryEvent::message(
            self.now,
            EventKind::OrchestratorStarted,
        ));
        new_events.append(&mut instance.inbox);
        let turn = execute(&self.registry, instance_id, &instance.history, &new_events)?;
        self.turns += 1;
        instance.history.extend(turn.history_delta);
        instance.state.custom_status = turn.custom_status;
        instance.state.status = turn.outcome.status();
        let me = OrchestrationInstance {
            instance_id: instance_id.to_string(),
            execution_id: instance.state.execution_id.clone(),
        };
        let name = instance.state.name.clone();
        let parent = instance.parent.clone();
        for action in turn.actions {
            self.dispatch(&me, &name, action);
        }
        match turn.outcome {
            TurnOutcome::Running | TurnOutcome::Suspended => {}
            TurnOutcome::Completed { output } => {
                self.finish(instance_id, output.clone(), None);
                self.notify_parent(
                    parent,
                    EventKind::SubOrchestrationInstanceCompleted {
                        task_scheduled_id: -1,
                        result: output,
                    },
                );
            }
            TurnOutcome::Failed { details } => {
                self.finish(instance_id, None, Some(details.clone()));
                self.notify_parent(parent, failed_child(details));
            }
            TurnOutcome::Terminated { reason } => {
                self.finish(instance_id, reason.clone(), None);
                // The reason is stored as JSON text; show a plain string without its quotes.
                let reason = reason.unwrap_or_default();
                let reason = serde_json::from_str::<String>(&reason).unwrap_or(reason);
                let details = FailureDetails::new(
                    "Terminated",
                    format!("the sub-orchestration was terminated: {reason}"),
                );
                self.notify_parent(parent, failed_child(details));
            }
            TurnOutcome::ContinuedAsNew {
                input,
                carryover_events,
            } => self.continue_as_new(instance_id, &name, input, carryover_events),
        }
        Ok(())
    }

    fn finish(
        &mut self,
        instance_id: &str,
        output: Option<String>,
        failure: Option<FailureDetails>,
    ) {
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.state.output = output;
            instance.state.failure = failure;
            instance.inbox.clear();
        }
    }

    fn continue_as_new(
        &mut self,
        instance_id: &str,
        name: &str,
        input: Option<String>,
        carryover_events: Vec<HistoryEvent>,
    ) {
        let execution_id = self.new_execution_id(instance_id);
        let parent = self
            .instances
            .get(instance_id)
            .and_then(|i| i.parent.clone());
        let started =
            self.execution_started(instance_id, &execution_id, name, input.clone(), parent);
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.state.execution_id = execution_id;
            instance.state.input = input;
            instance.history.clear();
            // Messages queued during the turn (an event the instance sent itself) outlive the
            // execution; completions addressed to the old execution do not.
            let queued = std::mem::take(&mut instance.inbox);
            instance.inbox.push(started);
            instance.inbox.extend(carryover_events);
            instance.inbox.extend(
                queued
                    .into_iter()
                    .filter(|event| matches!(event.kind, EventKind::EventRaised { .. })),
            );
        }
        self.mark_ready(instance_id);
    }

    fn notify_parent(&mut self, parent: Option<ParentInstance>, kind: EventKind) {
        let Some(parent) = parent else { return };
        let kind = match kind {
            EventKind::SubOrchestrationInstanceCompleted { result, .. } => {
                EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id: parent.task_schedule_id,
                    result,
                }
            }
            EventKind::SubOrchestrationInstanceFailed {
                reason,
                details,
                failure_details,
                ..
            } => EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id: parent.task_schedule_id,
                reason,
                details,
                failure_details,
            },
            other => other,
        };
        let event = HistoryEvent::message(self.now, kind);
        self.deliver(Delivery {
            instance_id: parent.orchestration_instance.instance_id,
            execution_id: Some(parent.orchestration_instance.execution_id),
            event,
        });
    }

    fn dispatch(&mut self, from: &OrchestrationInstance, from_name: &str, action: Action) {
        match action {
            Action::ScheduleTask { id, name, input } => self.activities.push_back(ActivityWork {
                instance: from.clone(),
                task_id: id,
                name,
                input,
            }),
            Action::CreateTimer { id, fire_at } => {
                self.counter += 1;
                let event = HistoryEvent::message(
                    self.now,
                    EventKind::TimerFired {
                        timer_id: id,
                        fire_at,
                    },
                );
                self.timers.insert(
                    (fire_at, self.counter),
                    Delivery {
                        instance_id: from.instance_id.clone(),
                        execution_id: Some(from.execution_id.clone()),
                        event,
                    },
                );
            }
            Action::CreateSubOrchestration {
                id,
                name,
                instance_id,
                input,
            } => {
                let parent = ParentInstance {
                    name: from_name.to_string(),
                    version: None,
                    orchestration_instance: from.clone(),
                    task_schedule_id: id,
                };
                let created = if self.registry.has_orchestrator(&name) {
                    self.create_instance(&name, &instance_id, input, Some(parent.clone()))
                } else {
                    Err(RuntimeError::UnknownOrchestrator(name))
                };
                if let Err(error) = created {
                    let details =
                        FailureDetails::new("SubOrchestrationNotStarted", error.to_string());
                    self.notify_parent(Some(parent), failed_child(details));
                }
            }
            Action::SendEvent {
                instance_id,
                name,
                input,
                ..
            } => {
                let event = HistoryEvent::message(self.now, EventKind::EventRaised { name, input });
                self.deliver(Delivery {
                    instance_id,
                    execution_id: None,
                    event,
                });
            }
        }
    }
}

fn failed_child(details: FailureDetails) -> EventKind {
    EventKind::SubOrchestrationInstanceFailed {
        task_scheduled_id: -1,
        reason: Some(details.error_message.clone()),
        details: None,
        failure_details: Some(details),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Option<String>, RuntimeError> {
    serde_json::to_string(value)
        .map(Some)
        .map_err(|e| RuntimeError::Serialization(e.to_string()))
}
