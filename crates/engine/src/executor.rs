//! The executor: replays an instance's past events and applies its new events to the orchestrator
//! code, one completion at a time, and returns the turn (new actions, history delta, outcome); a
//! session keeps it for the next turn's new events.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};

use super::action::Action;
use super::context::{
    Completion, ContextState, Decision, InstanceInfo, OrchestrationContext, Shared,
};
use super::error::{panic_message, ExecuteError};
use super::history::{EventKind, FailureDetails, HistoryEvent, OrchestrationStatus};
use super::registry::{OrchestratorFuture, Registry};
use super::scope::KeptWaker;

/// The result of running one orchestration turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// New work to dispatch, in sequence order.
    pub actions: Vec<Action>,
    /// Events to append to the history after `past_events`: the new events, the decision events
    /// of `actions`, the completion event if the execution ended, and OrchestratorCompleted.
    pub history_delta: Vec<HistoryEvent>,
    /// The latest custom status (JSON text) set by the code.
    pub custom_status: Option<String>,
    pub outcome: TurnOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// Waiting for more events.
    Running,
    /// Suspended by a client: events are held until it is resumed.
    Suspended,
    Completed {
        output: Option<String>,
    },
    Failed {
        details: FailureDetails,
    },
    Terminated {
        reason: Option<String>,
    },
    /// The runtime starts a new execution with `input`, then appends `carryover_events`.
    ContinuedAsNew {
        input: Option<String>,
        carryover_events: Vec<HistoryEvent>,
    },
}

impl TurnOutcome {
    pub fn status(&self) -> OrchestrationStatus {
        match self {
            Self::Running => OrchestrationStatus::Running,
            Self::Suspended => OrchestrationStatus::Suspended,
            Self::Completed { .. } => OrchestrationStatus::Completed,
            Self::Failed { .. } => OrchestrationStatus::Failed,
            Self::Terminated { .. } => OrchestrationStatus::Terminated,
            Self::ContinuedAsNew { .. } => OrchestrationStatus::ContinuedAsNew,
        }
    }
}

/// Error type recorded for orchestrations whose code no longer matches their history.
pub const NONDETERMINISM_ERROR_TYPE: &str = "NonDeterministicOrchestration";

/// Error type recorded for orchestrations that await something the context did not create.
pub const FOREIGN_AWAIT_ERROR_TYPE: &str = "ForeignAwait";

/// Runs one turn of `instance_id`. `past_events` are replayed (`is_replaying() == true`),
/// then `new_events` are applied. A valid history starts with OrchestratorStarted followed by
/// ExecutionStarted; callers open each turn's `new_events` with an OrchestratorStarted that
/// carries the turn's time.
pub fn execute(
    registry: &Registry,
    instance_id: &str,
    past_events: &[HistoryEvent],
    new_events: &[HistoryEvent],
) -> Result<Turn, ExecuteError> {
    Executor::open(
        registry,
        instance_id,
        past_events,
        new_events,
        Lifetime::Turn,
    )
    .map(|(_, turn)| turn)
}

/// How long the orchestrator code lives when a turn leaves its execution running.
pub(crate) enum Lifetime {
    /// Dropped at the end of the turn: the next turn replays it from history (`execute`).
    Turn,
    /// Kept for the next turn of a `Session`.
    Session,
}

/// The orchestrator code's life within the turn, or across the turns of a session.
enum Root {
    /// No OrchestratorStarted yet: the turn has no clock, so the code may not start.
    Unclocked,
    /// The clock is set; ExecutionStarted has not arrived.
    NotStarted,
    /// Started and not returned: polled after each delivered completion.
    Running(OrchestratorFuture),
    /// The code returned; its completion takes sequence number `sequence`.
    Returned {
        sequence: i32,
        result: Result<Option<String>, FailureDetails>,
    },
    /// Started but gone without returning: no such orchestrator, or dropped after an engine
    /// failure, a termination, a recorded end or at the end of the turn.
    Stopped,
}

/// What ended the execution other than its code (the code's own end is `Root::Returned` or a
/// continue-as-new request in the context).
enum End {
    /// Nothing has.
    Open,
    /// The engine failed it: nondeterminism, a panic, a foreign await, no such orchestrator.
    FailedByEngine(FailureDetails),
    /// A client terminated it before the code returned.
    Terminated(Option<String>),
    /// History already records its end.
    Recorded(RecordedCompletion),
}

/// How an execution's end was recorded in history.
enum RecordedCompletion {
    /// Matched the code's own completion.
    Code,
    /// Written by the engine or a client (failure, termination): replays as recorded.
    Engine(TurnOutcome),
}

/// Whether completions and events reach the code or wait for a resume.
enum Delivery {
    Flowing,
    /// Suspended by the event `by`; `held` arrived since, in order, and are applied on resume.
    /// Copies, as a session keeps them past the turn whose events they are.
    Suspended {
        by: Box<HistoryEvent>,
        held: Vec<HistoryEvent>,
    },
}

pub(crate) struct Executor {
    registry: Registry,
    ctx: OrchestrationContext,
    root: Root,
    end: End,
    delivery: Delivery,
    lifetime: Lifetime,
    /// Every action below this sequence number has its decision event in history, so a turn
    /// looks for new work from here on: its cost does not grow with the actions of past turns.
    dispatched: usize,
}

impl Executor {
    /// Replays `past_events` and applies `new_events` to a new executor of `instance_id`: its
    /// first turn. A valid history starts with OrchestratorStarted followed by ExecutionStarted.
    pub(crate) fn open(
        registry: &Registry,
        instance_id: &str,
        past_events: &[HistoryEvent],
        new_events: &[HistoryEvent],
        lifetime: Lifetime,
    ) -> Result<(Self, Turn), ExecuteError> {
        let (started_at, name, version, orchestration_instance, parent_instance) = past_events
            .iter()
            .chain(new_events)
            .find_map(|event| match &event.kind {
                EventKind::ExecutionStarted {
                    name,
                    version,
                    orchestration_instance,
                    parent_instance,
                    ..
                } => Some((
                    event.timestamp,
                    name,
                    version,
                    orchestration_instance,
                    parent_instance,
                )),
                _ => None,
            })
            .ok_or_else(|| ExecuteError::MissingExecutionStarted(instance_id.to_string()))?;
        if orchestration_instance.instance_id != instance_id {
            return Err(ExecuteError::InstanceMismatch {
                requested: instance_id.to_string(),
                found: orchestration_instance.instance_id.clone(),
            });
        }
        let ctx = OrchestrationContext::new(
            InstanceInfo {
                instance_id: instance_id.to_string(),
                execution_id: orchestration_instance.execution_id.clone(),
                name: name.clone(),
                version: version.clone(),
                parent: parent_instance.clone(),
            },
            started_at,
        );
        let mut executor = Executor {
            registry: registry.clone(),
            ctx,
            root: Root::Unclocked,
            end: End::Open,
            delivery: Delivery::Flowing,
            lifetime,
            dispatched: 0,
        };
        let turn = executor.turn(past_events, new_events)?;
        Ok((executor, turn))
    }

    /// Applies the next turn's `new_events` to the code a `Session` kept alive.
    pub(crate) fn next_turn(&mut self, new_events: &[HistoryEvent]) -> Result<Turn, ExecuteError> {
        self.turn(&[], new_events)
    }

    fn turn(
        &mut self,
        past_events: &[HistoryEvent],
        new_events: &[HistoryEvent],
    ) -> Result<Turn, ExecuteError> {
        // Engine combinators polled in this turn find its session through the thread.
        let _session = self.shared().session.install();
        // All of the history, even past where the code stops matching it: what it holds is
        // let go of if the execution ends here.
        for event in past_events {
            self.shared()
                .state
                .borrow_mut()
                .recorded_locks
                .record(&event.kind);
        }
        for (index, event) in past_events.iter().chain(new_events).enumerate() {
            self.shared().state.borrow_mut().is_replaying = index < past_events.len();
            self.apply(event)?;
            if self.stopped() {
                break;
            }
        }
        // A history that already records its end gets nothing appended and dispatches nothing.
        let past_ended = past_events.iter().any(|event| {
            matches!(
                event.kind,
                EventKind::ExecutionCompleted { .. } | EventKind::ContinueAsNew { .. }
            )
        });
        Ok(self.finish(new_events, past_ended))
    }

    /// Whether the execution goes on: nothing ended it, and the code is alive and has not asked
    /// to continue as new. A turn that leaves it so has the outcome Running or Suspended.
    pub(crate) fn goes_on(&self) -> bool {
        matches!((&self.end, &self.root), (End::Open, Root::Running(_))) && !self.continuing()
    }

    fn shared(&self) -> &Rc<Shared> {
        self.ctx.shared()
    }

    fn stopped(&self) -> bool {
        !matches!(self.end, End::Open)
    }

    /// Ends the execution with a failure the engine decided, replacing an earlier one: callers
    /// drop the code before failing, and that drop may already have failed it with a panic that
    /// the failure at hand explains better. An end written in history stays.
    fn fail(&mut self, details: FailureDetails) {
        if !matches!(self.end, End::Recorded(RecordedCompletion::Engine(_))) {
            self.end = End::FailedByEngine(details);
        }
    }

    fn apply(&mut self, event: &HistoryEvent) -> Result<(), ExecuteError> {
        match &event.kind {
            EventKind::OrchestratorStarted => {
                if matches!(self.root, Root::Unclocked) {
                    self.root = Root::NotStarted;
                }
                self.shared().state.borrow_mut().current_time = event.timestamp;
            }
            EventKind::OrchestratorCompleted | EventKind::GenericEvent { .. } => {}
            EventKind::ExecutionStarted { input, .. } => self.start(input.clone())?,
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. }
            | EventKind::EventSent { .. } => self.match_decision(event),
            EventKind::ExecutionCompleted { .. } | EventKind::ContinueAsNew { .. } => {
                self.match_completion(event)
            }
            // A terminate that arrives after the code returned changes nothing; one that arrives
            // after a continue-as-new request still stops the instance (eternal orchestrations).
            EventKind::ExecutionTerminated { input, .. } => {
                if !matches!(self.root, Root::Returned { .. }) {
                    self.end = End::Terminated(input.clone());
                }
            }
            EventKind::ExecutionSuspended { .. } => match &mut self.delivery {
                Delivery::Suspended { by, .. } => **by = event.clone(),
                Delivery::Flowing => {
                    self.delivery = Delivery::Suspended {
                        by: Box::new(event.clone()),
                        held: Vec::new(),
                    }
                }
            },
            EventKind::ExecutionResumed { .. } => {
                if let Delivery::Suspended { held, .. } =
                    std::mem::replace(&mut self.delivery, Delivery::Flowing)
                {
                    for held in held {
                        self.apply_message(&held);
                        if self.stopped() {
                            break;
                        }
                    }
                }
            }
            EventKind::TaskCompleted { .. }
            | EventKind::TaskFailed { .. }
            | EventKind::SubOrchestrationInstanceCompleted { .. }
            | EventKind::SubOrchestrationInstanceFailed { .. }
            | EventKind::TimerFired { .. }
            | EventKind::EventRaised { .. } => match &mut self.delivery {
                Delivery::Suspended { held, .. } => held.push(event.clone()),
                Delivery::Flowing => self.apply_message(event),
            },
        }
        Ok(())
    }

    fn start(&mut self, input: Option<String>) -> Result<(), ExecuteError> {
        let instance_id = &self.shared().info.instance_id;
        match self.root {
            Root::NotStarted => {}
            Root::Unclocked => {
                return Err(ExecuteError::MissingOrchestratorStarted(
                    instance_id.clone(),
                ))
            }
            Root::Running(_) | Root::Returned { .. } | Root::Stopped => {
                return Err(ExecuteError::CorruptHistory {
                    instance_id: instance_id.clone(),
                    message: "more than one ExecutionStarted event".to_string(),
                })
            }
        }
        let name = self.shared().info.name.clone();
        match self
            .registry
            .start_orchestrator(&name, self.ctx.clone(), input)
        {
            Some(root) => {
                self.root = Root::Running(root);
                self.poll_root();
            }
            None => {
                self.root = Root::Stopped;
                self.fail(FailureDetails::new(
                    "OrchestratorNotFound",
                    format!("no orchestrator named '{name}' is registered"),
                ));
            }
        }
        Ok(())
    }

    /// A completion or external event: resolve the waiting task and let the code run on.
    fn apply_message(&mut self, event: &HistoryEvent) {
        let (task_id, completion) = match &event.kind {
            EventKind::EventRaised { name, input } => {
                // Once the code has ended (or asked to continue as new), no waiter may take an
                // event: it stays buffered and carries over to the next execution.
                let code_ended = matches!(self.root, Root::Returned { .. });
                let mut state = self.shared().state.borrow_mut();
                let delivered = if code_ended || state.continue_as_new.is_some() {
                    state.buffer_event(name, input.clone());
                    None
                } else {
                    state.deliver_event(name, input.clone())
                };
                drop(state);
                if let Some(waker) = delivered {
                    self.wake_and_poll(waker);
                }
                return;
            }
            EventKind::TaskCompleted {
                task_scheduled_id,
                result,
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id,
                result,
            } => (*task_scheduled_id, Completion::Value(result.clone())),
            EventKind::TaskFailed {
                task_scheduled_id,
                reason,
                details,
                failure_details,
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id,
                reason,
                details,
                failure_details,
            } => (
                *task_scheduled_id,
                Completion::Failure(Box::new(failure_from(reason, details, failure_details))),
            ),
            EventKind::TimerFired { timer_id, .. } => (*timer_id, Completion::Fired),
            _ => return,
        };
        let mut state = self.shared().state.borrow_mut();
        // Completions for sequence numbers this code never recorded are stale or duplicated
        // deliveries (the queue is at-least-once): ignored, as DurableTask.Core does.
        let Some(record) = usize::try_from(task_id)
            .ok()
            .and_then(|index| state.actions.get(index))
            .and_then(Option::as_ref)
            .filter(|record| record.decision == Decision::Recorded)
        else {
            return;
        };
        if !record.action.accepts_completion(&event.kind) {
            let actual = format!("scheduled {} there", record.action.describe());
            drop(state);
            self.nondeterminism(task_id, format!("a {:?} event", event.event_type()), actual);
            return;
        }
        let Some(slot) = record.slot else { return };
        let delivered = state.resolve(slot, completion);
        drop(state);
        if let Some(waker) = delivered {
            self.wake_and_poll(waker);
        }
    }

    fn wake_and_poll(&mut self, waker: Option<KeptWaker>) {
        if let Some(waker) = waker {
            waker.wake();
        }
        self.poll_root();
    }

    fn poll_root(&mut self) {
        let Root::Running(root) = &mut self.root else {
            return;
        };
        let session = &self.ctx.shared().session;
        let waker = session.enter_body();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            root.as_mut().poll(&mut Context::from_waker(waker))
        }));
        let foreign = session.leave_body(matches!(polled, Ok(Poll::Pending)));
        let polled = match polled {
            Ok(polled) => polled,
            Err(payload) => {
                self.drop_root();
                let details = FailureDetails::new(
                    "Panic",
                    format!(
                        "orchestrator '{}' panicked: {}",
                        self.shared().info.name,
                        panic_message(payload.as_ref())
                    ),
                );
                self.fail(details);
                return;
            }
        };
        // Even when the code went on to return: a race it ran against a foreign future would
        // not replay the same way. Continue-as-new ends the execution at the end of the turn,
        // whatever the code awaits.
        if let Some(found) = foreign.filter(|_| !self.continuing()) {
            self.drop_root();
            self.fail(self.foreign_await(&found.to_string()));
            return;
        }
        match polled {
            Poll::Ready(result) => {
                self.drop_root();
                let mut state = self.shared().state.borrow_mut();
                let sequence = state.next_sequence();
                state.actions.push(None);
                drop(state);
                self.root = Root::Returned {
                    sequence,
                    result: result.map_err(|error| error.into_details()),
                };
            }
            Poll::Pending => {
                if self.shared().state.borrow().live_pending == 0 && !self.continuing() {
                    self.drop_root();
                    self.fail(self.foreign_await("no durable task it created is still waiting"));
                }
            }
        }
    }

    fn continuing(&self) -> bool {
        self.shared().state.borrow().continue_as_new.is_some()
    }

    fn foreign_await(&self, detail: &str) -> FailureDetails {
        FailureDetails::new(
            FOREIGN_AWAIT_ERROR_TYPE,
            format!(
                "orchestrator '{}' is waiting on something the orchestration context did not \
                 create (for example a tokio timer, a channel or a socket): {detail}; \
                 orchestrators may only await durable tasks from the context",
                self.shared().info.name
            ),
        )
    }

    /// Drops the orchestrator future if it is running. User drop code may panic; that must fail
    /// the instance (unless the engine already failed it), not escape the engine.
    fn drop_root(&mut self) {
        let root = match std::mem::replace(&mut self.root, Root::Stopped) {
            Root::Running(root) => root,
            other => {
                self.root = other;
                return;
            }
        };
        self.shared().state.borrow_mut().code_dropped = true;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(root))) {
            if !matches!(self.end, End::FailedByEngine(_)) {
                let details = FailureDetails::new(
                    "Panic",
                    format!(
                        "orchestrator '{}' panicked while being dropped: {}",
                        self.ctx.name(),
                        panic_message(payload.as_ref())
                    ),
                );
                self.fail(details);
            }
        }
    }

    fn match_decision(&mut self, event: &HistoryEvent) {
        let sequence = event.event_id;
        let actual = {
            let mut state = self.shared().state.borrow_mut();
            let record = usize::try_from(sequence)
                .ok()
                .and_then(|index| state.actions.get_mut(index))
                .and_then(Option::as_mut);
            match record {
                Some(record)
                    if record.decision == Decision::Emitted
                        && record.action.matches_decision(&event.kind) =>
                {
                    record.decision = Decision::Recorded;
                    return;
                }
                Some(record) if record.decision == Decision::Recorded => Some(
                    "already matched that sequence number to an earlier history event".to_string(),
                ),
                Some(record) => Some(format!("scheduled {} there", record.action.describe())),
                None => None,
            }
        };
        let actual = actual.unwrap_or_else(|| self.code_position(sequence));
        self.nondeterminism(sequence, describe_event(&event.kind), actual);
    }

    fn match_completion(&mut self, event: &HistoryEvent) {
        let recorded_status = match &event.kind {
            EventKind::ExecutionCompleted {
                orchestration_status,
                ..
            } => *orchestration_status,
            _ => OrchestrationStatus::ContinuedAsNew,
        };
        // Endings the engine or a client decided carry no sequence number: they replay as written.
        if event.event_id < 0 {
            self.end = End::Recorded(RecordedCompletion::Engine(recorded_outcome(event)));
            return;
        }
        let code_sequence = match (&self.root, &self.shared().state.borrow().continue_as_new) {
            (_, Some(request)) => Some((request.sequence, OrchestrationStatus::ContinuedAsNew)),
            (Root::Returned { sequence, result }, None) => Some((
                *sequence,
                match result {
                    Ok(_) => OrchestrationStatus::Completed,
                    Err(_) => OrchestrationStatus::Failed,
                },
            )),
            _ => None,
        };
        match code_sequence {
            Some((sequence, status)) if sequence == event.event_id && status == recorded_status => {
                self.end = End::Recorded(RecordedCompletion::Code);
            }
            Some((sequence, status)) if sequence == event.event_id => self.nondeterminism(
                sequence,
                describe_event(&event.kind),
                format!("ended with status {status:?}"),
            ),
            _ => {
                let actual = self.code_position(event.event_id);
                self.nondeterminism(event.event_id, describe_event(&event.kind), actual);
            }
        }
    }

    /// What the code did at `sequence`, for a history event it has no action for.
    fn code_position(&self, sequence: i32) -> String {
        let state = self.shared().state.borrow();
        let scheduled = usize::try_from(sequence)
            .ok()
            .and_then(|index| state.actions.get(index))
            .and_then(Option::as_ref);
        if let Some(record) = scheduled {
            return format!("scheduled {} there", record.action.describe());
        }
        if let Some(request) = &state.continue_as_new {
            return format!("continued as new at sequence #{}", request.sequence);
        }
        match self.root {
            Root::Returned { sequence: done, .. } if done == sequence => {
                "completed the orchestration there".to_string()
            }
            Root::Returned { sequence: done, .. } => {
                format!("completed the orchestration at sequence #{done}")
            }
            _ => format!(
                "has not scheduled anything there (it scheduled {} action(s) and is waiting)",
                state.actions.len()
            ),
        }
    }

    fn nondeterminism(&mut self, sequence: i32, expected: String, actual: String) {
        let info = &self.shared().info;
        let message = format!(
            "non-deterministic orchestration '{}' (instance '{}'): at sequence #{sequence} the \
             history has {expected}, but the orchestrator code {actual}; was the orchestrator code \
             changed while this instance was running?",
            info.name, info.instance_id
        );
        self.drop_root();
        self.fail(FailureDetails::new(NONDETERMINISM_ERROR_TYPE, message));
    }

    fn outcome(&mut self) -> (TurnOutcome, bool) {
        match &self.end {
            End::Recorded(RecordedCompletion::Engine(outcome)) => return (outcome.clone(), false),
            End::FailedByEngine(details) => {
                return (
                    TurnOutcome::Failed {
                        details: details.clone(),
                    },
                    false,
                )
            }
            End::Terminated(reason) => {
                return (
                    TurnOutcome::Terminated {
                        reason: reason.clone(),
                    },
                    false,
                )
            }
            End::Open | End::Recorded(RecordedCompletion::Code) => {}
        }
        let mut state = self.shared().state.borrow_mut();
        if let Some(request) = state.continue_as_new.as_ref() {
            let input = match &request.input {
                Ok(input) => input.clone(),
                Err(message) => {
                    let details = FailureDetails::new("InputSerialization", message.clone());
                    drop(state);
                    self.fail(details.clone());
                    return (TurnOutcome::Failed { details }, false);
                }
            };
            let now = state.current_time;
            let mut carryover_events: Vec<HistoryEvent> = state
                .take_unconsumed_events()
                .into_iter()
                .map(|event| {
                    HistoryEvent::message(
                        now,
                        EventKind::EventRaised {
                            name: event.name,
                            input: event.input,
                        },
                    )
                })
                .collect();
            // A suspension that arrived after the request applies to the next execution, with
            // the external events it held; held completions belong to this execution and end here.
            if let Delivery::Suspended { by, held } = &self.delivery {
                carryover_events.push(by.as_ref().clone());
                carryover_events.extend(
                    held.iter()
                        .filter(|event| matches!(event.kind, EventKind::EventRaised { .. }))
                        .cloned(),
                );
            }
            return (
                TurnOutcome::ContinuedAsNew {
                    input,
                    carryover_events,
                },
                true,
            );
        }
        drop(state);
        match (&self.root, &self.delivery) {
            (
                Root::Returned {
                    result: Ok(output), ..
                },
                _,
            ) => (
                TurnOutcome::Completed {
                    output: output.clone(),
                },
                true,
            ),
            (
                Root::Returned {
                    result: Err(details),
                    ..
                },
                _,
            ) => (
                TurnOutcome::Failed {
                    details: details.clone(),
                },
                false,
            ),
            (_, Delivery::Suspended { .. }) => (TurnOutcome::Suspended, true),
            (_, Delivery::Flowing) => (TurnOutcome::Running, true),
        }
    }

    fn finish(&mut self, new_events: &[HistoryEvent], past_ended: bool) -> Turn {
        // Read before the drop below, which may turn a recorded end into a failure.
        let ended_earlier = past_ended || matches!(self.end, End::Recorded(_));
        // Drop the orchestrator before reading the outcome: its futures release their slots,
        // and a panic in user drop code still becomes this turn's failure. A session keeps it
        // while the execution goes on, for the next turn to resume where this one stopped.
        if !(matches!(self.lifetime, Lifetime::Session) && self.goes_on()) {
            self.drop_root();
        }
        let (outcome, dispatch) = self.outcome();
        let mut state = self.ctx.shared().state.borrow_mut();
        let now = state.current_time;
        let custom_status = state.custom_status.clone();
        let mut history_delta = if past_ended {
            Vec::new()
        } else {
            new_events.to_vec()
        };
        let mut actions = Vec::new();
        if dispatch && !ended_earlier {
            // The delta records their decision events, so from here on they stand as a replay
            // of those events (`match_decision`) leaves them.
            for record in state.actions[self.dispatched..]
                .iter_mut()
                .flatten()
                .filter(|r| r.decision == Decision::Emitted)
            {
                history_delta.push(record.action.to_history_event(now));
                actions.push(record.action.clone());
                record.decision = Decision::Recorded;
            }
            self.dispatched = state.actions.len();
        }
        let recorded: Vec<EventKind> = history_delta
            .iter()
            .filter(|event| matches!(event.kind, EventKind::EventSent { .. }))
            .map(|event| event.kind.clone())
            .collect();
        for kind in &recorded {
            state.recorded_locks.record(kind);
        }
        if !ended_earlier && !matches!(outcome, TurnOutcome::Running | TurnOutcome::Suspended) {
            let info = &self.ctx.shared().info;
            let me = crate::entity::Sender {
                instance_id: info.instance_id.clone(),
                execution_id: Some(info.execution_id.clone()),
                sequence: None,
                predecessor: None,
            };
            actions.extend(state.recorded_locks.releases(&me));
        }
        if !ended_earlier {
            if let Some(event) = completion_event(&outcome, self.completion_sequence(&state), now) {
                history_delta.push(event);
            }
        }
        drop(state);
        if !history_delta.is_empty() {
            history_delta.push(HistoryEvent::message(now, EventKind::OrchestratorCompleted));
        }
        Turn {
            actions,
            history_delta,
            custom_status,
            outcome,
        }
    }

    /// The sequence number of a completion the code itself produced; `-1` otherwise.
    fn completion_sequence(&self, state: &ContextState) -> i32 {
        if matches!(self.end, End::FailedByEngine(_) | End::Terminated(_)) {
            return -1;
        }
        if let Some(request) = &state.continue_as_new {
            return request.sequence;
        }
        match self.root {
            Root::Returned { sequence, .. } => sequence,
            _ => -1,
        }
    }
}

// Code still alive here belongs to a turn that returned an error or to a session let go while
// its execution runs on: a panic in its drop code must not unwind into the caller either, and
// there is no turn left to report it in.
impl Drop for Executor {
    fn drop(&mut self) {
        self.drop_root();
    }
}

/// The history event that records the end of an execution, if the outcome is an end.
fn completion_event(
    outcome: &TurnOutcome,
    sequence: i32,
    now: DateTime<Utc>,
) -> Option<HistoryEvent> {
    let kind = match outcome {
        TurnOutcome::Running | TurnOutcome::Suspended => return None,
        TurnOutcome::Completed { output } => EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Completed,
            result: output.clone(),
            failure_details: None,
        },
        TurnOutcome::Failed { details } => EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Failed,
            result: None,
            failure_details: Some(details.clone()),
        },
        TurnOutcome::Terminated { reason } => EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Terminated,
            result: reason.clone(),
            failure_details: None,
        },
        TurnOutcome::ContinuedAsNew { input, .. } => EventKind::ContinueAsNew {
            result: input.clone(),
        },
    };
    Some(HistoryEvent::new(sequence, now, kind))
}

/// The outcome an engine-written completion event stands for.
fn recorded_outcome(event: &HistoryEvent) -> TurnOutcome {
    match &event.kind {
        EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Completed,
            result,
            ..
        } => TurnOutcome::Completed {
            output: result.clone(),
        },
        EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Terminated,
            result,
            ..
        } => TurnOutcome::Terminated {
            reason: result.clone(),
        },
        EventKind::ExecutionCompleted {
            failure_details,
            result,
            ..
        } => TurnOutcome::Failed {
            details: failure_details.clone().unwrap_or_else(|| {
                FailureDetails::new("Failed", result.clone().unwrap_or_default())
            }),
        },
        EventKind::ContinueAsNew { result } => TurnOutcome::ContinuedAsNew {
            input: result.clone(),
            carryover_events: Vec::new(),
        },
        _ => TurnOutcome::Running,
    }
}

fn failure_from(
    reason: &Option<String>,
    details: &Option<String>,
    failure_details: &Option<FailureDetails>,
) -> FailureDetails {
    failure_details.clone().unwrap_or_else(|| {
        let mut failure = FailureDetails::new(
            "TaskFailed",
            reason.clone().unwrap_or_else(|| "task failed".to_string()),
        );
        failure.stack_trace = details.clone();
        failure
    })
}

fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled { name, .. } => format!("TaskScheduled for activity '{name}'"),
        EventKind::TimerCreated { .. } => "TimerCreated".to_string(),
        EventKind::SubOrchestrationInstanceCreated { name, .. } => {
            format!("SubOrchestrationInstanceCreated for sub-orchestration '{name}'")
        }
        EventKind::EventSent {
            name, instance_id, ..
        } => format!("EventSent of event '{name}' to '{instance_id}'"),
        EventKind::ExecutionCompleted {
            orchestration_status,
            ..
        } => format!("ExecutionCompleted with status {orchestration_status:?}"),
        EventKind::ContinueAsNew { .. } => "ContinueAsNew".to_string(),
        other => format!("{:?}", other.event_type()),
    }
}
