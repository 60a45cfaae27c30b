//! The orchestration context: the API orchestrator code uses to schedule durable work, and the
//! execution's bookkeeping (actions by sequence number, result slots, event buffers) behind it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::action::Action;
use super::client_json::decode_client_json;
use super::combinators::{select2, Either};
use super::error::TaskError;
use super::future::{DurableFuture, MapFn};
use super::history::{FailureDetails, ParentInstance};
use super::scope::{KeptWaker, Session};

/// Namespace of the name-based (v5) UUIDs that `new_guid` derives.
const GUID_NAMESPACE: Uuid = Uuid::from_u128(0x9e95_2958_5e33_4daf_827f_2fa1_2937_b875);

/// What a slot was resolved with.
pub(crate) enum Completion {
    Value(Option<String>),
    /// Boxed as the task error holds it, which keeps every slot small.
    Failure(Box<FailureDetails>),
    Fired,
}

/// What a slot waits for, kept for error messages.
pub(crate) enum Label {
    Activity(String),
    SubOrchestration { name: String, instance_id: String },
    Timer,
    Event(String),
}

struct Slot {
    label: Label,
    state: SlotState,
}

/// Where a durable task's result is: waiting → resolved → settled, or waiting → abandoned →
/// settled when the future is dropped first (a select loser).
enum SlotState {
    /// No completion yet and a live future waits, with the waker it was last polled with.
    Waiting(Option<KeptWaker>),
    /// No completion yet and no future waits any more.
    Abandoned,
    /// Completed; the future has not taken the result yet.
    Resolved(Completion),
    /// Completed and done with: taken by its future, or completed after nobody waited. A further
    /// completion is a duplicate.
    Settled,
}

/// A command the code emitted at a sequence number.
pub(crate) struct ActionRecord {
    pub(crate) action: Action,
    /// The slot its result is delivered to; `None` for commands without a result (sent events).
    pub(crate) slot: Option<usize>,
    pub(crate) decision: Decision,
}

/// Whether history already holds a command's decision event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not in history yet: new work, dispatched at the end of the turn.
    Emitted,
    /// Matched by its decision event: completions for it are accepted, and it is not dispatched
    /// again.
    Recorded,
}

pub(crate) struct BufferedEvent {
    pub(crate) arrival: u64,
    pub(crate) name: String,
    pub(crate) input: Option<String>,
}

pub(crate) struct ContinueAsNewRequest {
    pub(crate) sequence: i32,
    pub(crate) input: Result<Option<String>, String>,
}

/// Mutable state of the execution, rebuilt from scratch by replaying history whenever a turn or a
/// session opens.
pub(crate) struct ContextState {
    pub(crate) current_time: DateTime<Utc>,
    pub(crate) is_replaying: bool,
    /// Indexed by sequence number; `None` for numbers used by continue-as-new.
    pub(crate) actions: Vec<Option<ActionRecord>>,
    slots: Vec<Slot>,
    /// Unresolved slots that a live future still waits on: zero while the orchestrator is
    /// pending means it awaits something the engine did not create.
    pub(crate) live_pending: usize,
    event_waiters: HashMap<String, VecDeque<usize>>,
    event_buffer: HashMap<String, VecDeque<BufferedEvent>>,
    next_arrival: u64,
    pub(crate) custom_status: Option<String>,
    pub(crate) continue_as_new: Option<ContinueAsNewRequest>,
    guid_counter: u64,
    /// The last request sent to each entity (by instance id): the next one names it as its
    /// predecessor, so the entity applies them in order.
    pub(crate) entity_requests: HashMap<String, crate::entity::Predecessor>,
    /// The code's critical sections (held or still being acquired) not let go of, by lock
    /// request id: at most one.
    pub(crate) locks: BTreeSet<String>,
    /// The critical sections the history holds: what an ending execution lets go of.
    pub(crate) recorded_locks: crate::entity::RecordedLocks,
    /// Set once the engine drops the code (a turn's end, a failure, a termination): what the
    /// code's values do when dropped then is no decision of the code's.
    pub(crate) code_dropped: bool,
}

impl ContextState {
    fn new(current_time: DateTime<Utc>) -> Self {
        Self {
            current_time,
            is_replaying: true,
            actions: Vec::new(),
            slots: Vec::new(),
            live_pending: 0,
            event_waiters: HashMap::new(),
            event_buffer: HashMap::new(),
            next_arrival: 0,
            custom_status: None,
            continue_as_new: None,
            guid_counter: 0,
            entity_requests: HashMap::new(),
            locks: BTreeSet::new(),
            recorded_locks: Default::default(),
            code_dropped: false,
        }
    }

    pub(crate) fn next_sequence(&self) -> i32 {
        // Sequence numbers are i32 on the wire; an orchestration cannot emit 2^31 actions in
        // practice, and saturating keeps a runaway loop a nondeterminism error, not a panic.
        i32::try_from(self.actions.len()).unwrap_or(i32::MAX)
    }

    fn new_slot(&mut self, label: Label) -> usize {
        self.slots.push(Slot {
            label,
            state: SlotState::Waiting(None),
        });
        self.live_pending += 1;
        self.slots.len() - 1
    }

    fn resolved_slot(&mut self, label: Label, completion: Completion) -> usize {
        self.slots.push(Slot {
            label,
            state: SlotState::Resolved(completion),
        });
        self.slots.len() - 1
    }

    /// Delivers a completion; returns `None` if the slot already had one (a duplicate),
    /// otherwise the waker to notify (if a live future registered one).
    pub(crate) fn resolve(
        &mut self,
        slot: usize,
        completion: Completion,
    ) -> Option<Option<KeptWaker>> {
        let slot_ref = self.slots.get_mut(slot)?;
        let waker = match &mut slot_ref.state {
            SlotState::Waiting(waker) => {
                let waker = waker.take();
                slot_ref.state = SlotState::Resolved(completion);
                self.live_pending -= 1;
                waker
            }
            SlotState::Abandoned => {
                slot_ref.state = SlotState::Settled;
                None
            }
            SlotState::Resolved(_) | SlotState::Settled => return None,
        };
        Some(waker)
    }

    /// The slot's completion if it has one; otherwise keeps `waker`, polled with in `session`,
    /// to wake when it arrives.
    pub(crate) fn take_result(
        &mut self,
        slot: usize,
        waker: &Waker,
        session: &Session,
    ) -> Option<(Completion, Label)> {
        let slot_ref = &mut self.slots[slot];
        // Checked in place: the pending path, the common one, moves no completion.
        if let SlotState::Waiting(kept) = &mut slot_ref.state {
            match kept {
                None => *kept = Some(KeptWaker::keep(waker, Some(session))),
                Some(kept) if !kept.will_wake(waker) => {
                    *kept = KeptWaker::keep(waker, Some(session))
                }
                Some(_) => {}
            }
            return None;
        }
        match std::mem::replace(&mut slot_ref.state, SlotState::Settled) {
            SlotState::Resolved(completion) => {
                let label = std::mem::replace(&mut slot_ref.label, Label::Timer);
                Some((completion, label))
            }
            // Only a live future polls its slot, and it stops once it has taken the result.
            other => {
                slot_ref.state = other;
                None
            }
        }
    }

    /// The slot's future was dropped: nobody waits for its result any more.
    pub(crate) fn abandon(&mut self, slot: usize) {
        let Some(slot_ref) = self.slots.get_mut(slot) else {
            return;
        };
        match slot_ref.state {
            SlotState::Waiting(_) => {
                slot_ref.state = SlotState::Abandoned;
                self.live_pending -= 1;
            }
            SlotState::Resolved(_) => slot_ref.state = SlotState::Settled,
            SlotState::Abandoned | SlotState::Settled => {}
        }
    }

    /// Hands an external event to the oldest live waiter, or buffers it until someone waits.
    /// Returns the waker of the waiter that received it.
    pub(crate) fn deliver_event(
        &mut self,
        name: &str,
        input: Option<String>,
    ) -> Option<Option<KeptWaker>> {
        let key = name.to_ascii_lowercase();
        if let Some(waiters) = self.event_waiters.get_mut(&key) {
            while let Some(slot) = waiters.pop_front() {
                if matches!(self.slots[slot].state, SlotState::Waiting(_)) {
                    return self.resolve(slot, Completion::Value(input));
                }
            }
        }
        self.buffer_event(name, input);
        None
    }

    /// Keeps an external event until a wait for its name takes it (or it carries over).
    pub(crate) fn buffer_event(&mut self, name: &str, input: Option<String>) {
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.event_buffer
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push_back(BufferedEvent {
                arrival,
                name: name.to_string(),
                input,
            });
    }

    /// Events that arrived but that no code consumed, in arrival order.
    pub(crate) fn take_unconsumed_events(&mut self) -> Vec<BufferedEvent> {
        let mut events: Vec<BufferedEvent> = self
            .event_buffer
            .drain()
            .flat_map(|(_, queue)| queue)
            .collect();
        events.sort_by_key(|event| event.arrival);
        events
    }

    pub(crate) fn push_action(&mut self, action: Action, slot: Option<usize>) {
        self.actions.push(Some(ActionRecord {
            action,
            slot,
            decision: Decision::Emitted,
        }));
    }
}

/// Identity of the running execution; fixed for the context's life.
pub(crate) struct InstanceInfo {
    pub(crate) instance_id: String,
    pub(crate) execution_id: String,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) parent: Option<ParentInstance>,
}

pub(crate) struct Shared {
    pub(crate) info: InstanceInfo,
    pub(crate) state: RefCell<ContextState>,
    /// Which scope the executor is polling: durable futures count themselves in it.
    pub(crate) session: Rc<Session>,
}

/// The handle an orchestrator uses for everything durable. Cheap to clone; valid while its
/// orchestrator runs (one turn, or the turns of a session).
///
/// Orchestrator code must be deterministic: it may only await futures created here (or
/// combinations of them), read time through [`current_utc_datetime`](Self::current_utc_datetime)
/// and make identifiers through [`new_guid`](Self::new_guid).
#[derive(Clone)]
pub struct OrchestrationContext {
    shared: Rc<Shared>,
}

impl OrchestrationContext {
    pub(crate) fn new(info: InstanceInfo, current_time: DateTime<Utc>) -> Self {
        Self {
            shared: Rc::new(Shared {
                info,
                state: RefCell::new(ContextState::new(current_time)),
                session: Rc::new(Session::new()),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Rc<Shared> {
        &self.shared
    }

    pub fn instance_id(&self) -> &str {
        &self.shared.info.instance_id
    }

    pub fn execution_id(&self) -> &str {
        &self.shared.info.execution_id
    }

    /// Name of the orchestrator function being run.
    pub fn name(&self) -> &str {
        &self.shared.info.name
    }

    /// The execution's version, set when it started (see [`crate::Versioning`]): code that
    /// changed under running instances can take the old path for old versions, comparing with
    /// [`crate::compare_versions`].
    pub fn version(&self) -> Option<&str> {
        self.shared.info.version.as_deref()
    }

    pub fn parent(&self) -> Option<&ParentInstance> {
        self.shared.info.parent.as_ref()
    }

    /// The time at which the current turn started, identical on every replay.
    pub fn current_utc_datetime(&self) -> DateTime<Utc> {
        self.shared.state.borrow().current_time
    }

    /// True while the code is re-running over history it already produced; use it to keep logs
    /// and other side effects from repeating.
    pub fn is_replaying(&self) -> bool {
        self.shared.state.borrow().is_replaying
    }

    /// A name-based UUID that is the same on every replay of this point in the orchestration.
    pub fn new_guid(&self) -> Uuid {
        let mut state = self.shared.state.borrow_mut();
        let name = format!(
            "{}_{}_{}",
            self.shared.info.instance_id,
            state
                .current_time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            state.guid_counter
        );
        state.guid_counter += 1;
        Uuid::new_v5(&GUID_NAMESPACE, name.as_bytes())
    }

    /// Sets the instance's custom status (any JSON-serializable value), visible to clients.
    pub fn set_custom_status<S: Serialize + ?Sized>(&self, status: &S) -> Result<(), TaskError> {
        let text = serde_json::to_string(status).map_err(|e| TaskError::InputSerialization {
            name: "custom status".to_string(),
            message: e.to_string(),
        })?;
        self.shared.state.borrow_mut().custom_status = Some(text);
        Ok(())
    }

    pub fn clear_custom_status(&self) {
        self.shared.state.borrow_mut().custom_status = None;
    }

    /// Schedules an activity and returns its typed result.
    pub fn call_activity<T: DeserializeOwned>(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> DurableFuture<Result<T, TaskError>> {
        let input = match serialize_input(name, input) {
            Ok(input) => input,
            Err(error) => return DurableFuture::ready(Err(error)),
        };
        self.schedule(
            |id| Action::ScheduleTask {
                id,
                name: name.to_string(),
                input,
            },
            Label::Activity(name.to_string()),
            map_task_result::<T>,
        )
    }

    /// Starts a sub-orchestration and returns its typed output. Without an explicit instance id
    /// the child gets `{parent instance id}:{parent execution id}:{sequence number, 4 hex digits}`:
    /// stable on replay, and distinct across continue-as-new generations, whose sequence numbers
    /// restart at 0.
    pub fn call_sub_orchestrator<T: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: &(impl Serialize + ?Sized),
    ) -> DurableFuture<Result<T, TaskError>> {
        let input = match serialize_input(name, input) {
            Ok(input) => input,
            Err(error) => return DurableFuture::ready(Err(error)),
        };
        let child_id = match instance_id {
            Some(id) => id.to_string(),
            None => format!(
                "{}:{}:{:04x}",
                self.instance_id(),
                self.execution_id(),
                self.shared.state.borrow().next_sequence()
            ),
        };
        self.schedule(
            |id| Action::CreateSubOrchestration {
                id,
                name: name.to_string(),
                instance_id: child_id.clone(),
                input,
            },
            Label::SubOrchestration {
                name: name.to_string(),
                instance_id: child_id.clone(),
            },
            map_task_result::<T>,
        )
    }

    /// A durable timer that fires at `fire_at` (any point in time; the runtime re-arms timers
    /// that are further out than its queue allows).
    pub fn create_timer(&self, fire_at: DateTime<Utc>) -> DurableFuture<()> {
        self.schedule(
            |id| Action::CreateTimer { id, fire_at },
            Label::Timer,
            |_, _| (),
        )
    }

    /// A durable timer that fires `delay` after the current orchestration time.
    pub fn create_timer_after(&self, delay: Duration) -> DurableFuture<()> {
        self.create_timer(add_saturating(self.current_utc_datetime(), delay))
    }

    /// Waits for the external event `name` (case-insensitive) and decodes its payload (a JSON
    /// string holding JSON, as Durable Functions' Python client sends, is decoded as that JSON
    /// when `T` does not take a string). An event raised before anyone waits is buffered and
    /// handed to the first wait for that name.
    pub fn wait_for_external_event<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> DurableFuture<Result<T, TaskError>> {
        let mut state = self.shared.state.borrow_mut();
        let key = name.to_ascii_lowercase();
        let buffered = state
            .event_buffer
            .get_mut(&key)
            .and_then(VecDeque::pop_front);
        let label = Label::Event(name.to_string());
        let slot = match buffered {
            Some(event) => state.resolved_slot(label, Completion::Value(event.input)),
            None => {
                let slot = state.new_slot(label);
                state.event_waiters.entry(key).or_default().push_back(slot);
                slot
            }
        };
        drop(state);
        DurableFuture::waiting(self.shared.clone(), slot, map_event_payload::<T>)
    }

    /// Waits for an external event for at most `timeout` of orchestration time; on expiry the
    /// result is [`TaskError::Timeout`]. Built from a durable timer raced against the wait.
    pub fn wait_for_external_event_with_timeout<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, TaskError>> + 'static {
        let event = self.wait_for_external_event::<T>(name);
        let timer = self.create_timer_after(timeout);
        let name = name.to_string();
        async move {
            match select2(event, timer).await {
                Either::Left((payload, _timer)) => payload,
                Either::Right(((), _event)) => Err(TaskError::Timeout { name }),
            }
        }
    }

    /// Sends an event to another instance (fire and forget).
    pub fn send_event(
        &self,
        instance_id: &str,
        name: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<(), TaskError> {
        let input = serialize_input(name, input)?;
        let mut state = self.shared.state.borrow_mut();
        let id = state.next_sequence();
        state.push_action(
            Action::SendEvent {
                id,
                instance_id: instance_id.to_string(),
                name: name.to_string(),
                input,
            },
            None,
        );
        Ok(())
    }

    /// Ends this execution and starts a fresh one of the same orchestrator with `input` and an
    /// empty history. External events that arrived but were not consumed carry over. The returned
    /// future never resolves, so `return ctx.continue_as_new(&next).await;` type-checks anywhere.
    ///
    /// It takes effect when called, not when awaited: whatever the code does afterwards, this
    /// execution ends with continue-as-new at the end of the turn. Work scheduled but not awaited
    /// before the call is still dispatched (fire and forget).
    pub fn continue_as_new<T>(&self, input: &(impl Serialize + ?Sized)) -> ContinueAsNew<T> {
        let input = serde_json::to_string(input)
            .map(Some)
            .map_err(|e| format!("could not serialize the continue-as-new input: {e}"));
        let mut state = self.shared.state.borrow_mut();
        let sequence = state.next_sequence();
        state.actions.push(None);
        state.continue_as_new = Some(ContinueAsNewRequest { sequence, input });
        ContinueAsNew {
            _output: PhantomData,
        }
    }

    fn schedule<T>(
        &self,
        make_action: impl FnOnce(i32) -> Action,
        label: Label,
        map: MapFn<T>,
    ) -> DurableFuture<T> {
        let mut state = self.shared.state.borrow_mut();
        let id = state.next_sequence();
        let slot = state.new_slot(label);
        state.push_action(make_action(id), Some(slot));
        drop(state);
        DurableFuture::waiting(self.shared.clone(), slot, map)
    }
}

/// The future returned by [`OrchestrationContext::continue_as_new`]; it never completes.
#[must_use = "await it (or return it) so the orchestrator stops here"]
pub struct ContinueAsNew<T> {
    _output: PhantomData<fn() -> T>,
}

impl<T> Future for ContinueAsNew<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        Poll::Pending
    }
}

fn serialize_input(
    name: &str,
    input: &(impl Serialize + ?Sized),
) -> Result<Option<String>, TaskError> {
    serde_json::to_string(input)
        .map(Some)
        .map_err(|e| TaskError::InputSerialization {
            name: name.to_string(),
            message: e.to_string(),
        })
}

pub fn add_saturating(time: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| time.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn decode<T: DeserializeOwned>(name: &str, text: Option<&str>) -> Result<T, TaskError> {
    serde_json::from_str(text.unwrap_or("null")).map_err(|e| TaskError::ResultDeserialization {
        name: name.to_string(),
        message: e.to_string(),
    })
}

fn map_task_result<T: DeserializeOwned>(
    completion: Completion,
    label: &Label,
) -> Result<T, TaskError> {
    match (completion, label) {
        (Completion::Value(text), Label::Activity(name))
        | (Completion::Value(text), Label::SubOrchestration { name, .. }) => {
            decode(name, text.as_deref())
        }
        (Completion::Failure(details), Label::Activity(name)) => Err(TaskError::ActivityFailed {
            name: name.clone(),
            attempts: 1,
            details,
        }),
        (Completion::Failure(details), Label::SubOrchestration { name, instance_id }) => {
            Err(TaskError::SubOrchestrationFailed {
                name: name.clone(),
                instance_id: instance_id.clone(),
                attempts: 1,
                details,
            })
        }
        (_, label) => Err(TaskError::ResultDeserialization {
            name: label_name(label),
            message: "completion of an unexpected kind".to_string(),
        }),
    }
}

fn map_event_payload<T: DeserializeOwned>(
    completion: Completion,
    label: &Label,
) -> Result<T, TaskError> {
    match completion {
        Completion::Value(text) => decode_client_json(text.as_deref()).map_err(|message| {
            TaskError::ResultDeserialization {
                name: label_name(label),
                message,
            }
        }),
        _ => Err(TaskError::ResultDeserialization {
            name: label_name(label),
            message: "completion of an unexpected kind".to_string(),
        }),
    }
}

fn label_name(label: &Label) -> String {
    match label {
        Label::Activity(name) | Label::Event(name) | Label::SubOrchestration { name, .. } => {
            name.clone()
        }
        Label::Timer => "timer".to_string(),
    }
}
