//! An entity's scheduler: its state with what keeps operations exactly once and in order (the
//! requests seen per sender, the lock and the requests waiting for it), and the pure processing
//! of a batch of incoming requests into the next state and the messages to send.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::function::{EntityAction, EntityContext};
use super::messages::{EntityRequest, EntityResponse, RequestKind, Sender, LOCK_ACQUIRED};
use super::EntityId;
use crate::{panic_message, FailureDetails, Registry};

/// How long a request is remembered after it was applied, so a redelivery within it is dropped
/// (Durable Functions keeps entity messages for de-duplication and ordering for 30 minutes by
/// default); a numbered request that overtook its predecessor waits at most this long for it.
pub const DEDUPLICATION_WINDOW: TimeDelta = TimeDelta::minutes(30);
/// At most this many client request ids are remembered, the newest kept: a bound on the state
/// of an entity that takes thousands of client signals a minute.
const MAX_REMEMBERED_IDS: usize = 10_000;
/// At most this many senders' sequence numbers are remembered, the most recently seen kept.
const MAX_SENDERS: usize = 1_000;

/// Everything stored for an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityScheduler {
    /// The state as JSON; `None` while the entity has none (never set, or deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Operations applied so far.
    #[serde(default)]
    pub operations: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation_at: Option<DateTime<Utc>>,
    /// Who holds the entity in a critical section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<Lock>,
    /// Requests of others than the lock holder, waiting for the lock to go, in arrival order.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    locked_out: VecDeque<Waiting>,
    /// Numbered requests that overtook an earlier request of their sender.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    early: Vec<Waiting>,
    /// The last applied request number of each sender execution.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    senders: BTreeMap<String, SenderRecord>,
    /// Ids of unnumbered requests (clients', entities') applied recently, oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    recent: VecDeque<Recent>,
    /// Lock requests let go of before they reached this entity (a lock set's later entity hears
    /// the release straight from the orchestration, the lock request only once the earlier
    /// entities are held, however late that is, if ever): such a lock request is dropped when
    /// it comes. Kept until then, the newest `MAX_REMEMBERED_IDS`.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    released: VecDeque<Recent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lock {
    owner: String,
    request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Waiting {
    message_id: String,
    request: EntityRequest,
    since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SenderRecord {
    last: i32,
    seen_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recent {
    id: String,
    at: DateTime<Utc>,
}

/// A request as it reaches the entity, with the id of the message that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub message_id: String,
    pub request: EntityRequest,
}

/// What became of one incoming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationOutcome {
    /// Applied (an operation run, a lock taken or released).
    Applied,
    /// Kept in the state until the lock is released or an earlier request arrives.
    Waiting,
    /// Seen before: dropped.
    Duplicate,
}

/// A message the batch sends once it has committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// The response to a call or a lock request, raised on the caller as event `request_id`.
    Respond {
        instance_id: String,
        execution_id: Option<String>,
        request_id: String,
        response: EntityResponse,
    },
    /// A request for another entity (a lock request passed on, an operation's signal).
    Request {
        entity_instance_id: String,
        request: EntityRequest,
    },
    /// A start of an orchestration that must not run over an id that ever existed.
    StartOrchestration {
        name: String,
        instance_id: String,
        input: Option<String>,
    },
}

/// What a batch did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// One per incoming request, in order.
    pub outcomes: Vec<OperationOutcome>,
    pub outgoing: Vec<Outgoing>,
    /// Operations run by this batch (applied ones, the failed included).
    pub operations_run: usize,
    /// Signalled operations that failed, with no caller to tell: the operation and why.
    pub failed_signals: Vec<(String, FailureDetails)>,
}

/// Where a batch's processing is.
struct Batch<'a> {
    registry: &'a Registry,
    entity: &'a EntityId,
    now: DateTime<Utc>,
    outgoing: Vec<Outgoing>,
    operations_run: usize,
    failed_signals: Vec<(String, FailureDetails)>,
    /// Counts the ids of requests this entity sends (lock passes, signals), so they are the
    /// same whenever the batch is run from the same state.
    sent: u64,
}

impl EntityScheduler {
    /// The scheduler stored as JSON (an instance's input).
    pub fn from_json(text: Option<&str>) -> Result<Self, String> {
        match text {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("the stored entity scheduler is not valid: {e}")),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an entity scheduler always serializes")
    }

    /// The instance holding the lock, if any.
    pub fn lock_owner(&self) -> Option<&str> {
        self.lock.as_ref().map(|lock| lock.owner.as_str())
    }

    /// Requests kept waiting (for the lock, or for an earlier request of their sender).
    pub fn waiting(&self) -> usize {
        self.locked_out.len() + self.early.len()
    }

    /// Applies `incoming` in order: each request at most once, a sender's numbered requests in
    /// their order, operations one at a time, each against the state the previous one left.
    pub fn run_batch(
        &mut self,
        registry: &Registry,
        entity: &EntityId,
        incoming: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> BatchOutcome {
        let mut batch = Batch {
            registry,
            entity,
            now,
            outgoing: Vec::new(),
            operations_run: 0,
            failed_signals: Vec::new(),
            sent: 0,
        };
        self.forget_old(now);
        self.release_overdue(&mut batch);
        let outcomes = incoming
            .into_iter()
            .map(|incoming| self.receive(&mut batch, incoming))
            .collect();
        BatchOutcome {
            outcomes,
            outgoing: batch.outgoing,
            operations_run: batch.operations_run,
            failed_signals: batch.failed_signals,
        }
    }

    fn receive(&mut self, batch: &mut Batch<'_>, incoming: Incoming) -> OperationOutcome {
        let Incoming {
            message_id,
            request,
        } = incoming;
        match numbered(&request) {
            Some((key, sequence)) => {
                let record = self.senders.get(&key);
                if record.is_some_and(|record| sequence <= record.last)
                    || self.early.iter().any(|w| w.message_id == message_id)
                {
                    return OperationOutcome::Duplicate;
                }
                if !self.follows(record, &request, batch.now) {
                    self.early.push(Waiting {
                        message_id,
                        request,
                        since: batch.now,
                    });
                    return OperationOutcome::Waiting;
                }
                self.apply_numbered(batch, key, sequence, request);
                self.drain_early(batch);
                OperationOutcome::Applied
            }
            None => {
                if self.recent.iter().any(|recent| recent.id == message_id) {
                    return OperationOutcome::Duplicate;
                }
                self.remember(message_id, batch.now);
                self.dispatch(batch, request);
                OperationOutcome::Applied
            }
        }
    }

    /// Whether a numbered request may be applied now: it follows the last one applied from its
    /// sender, or its predecessor is too old to be remembered (applied long ago).
    fn follows(
        &self,
        record: Option<&SenderRecord>,
        request: &EntityRequest,
        now: DateTime<Utc>,
    ) -> bool {
        let predecessor = request
            .sender
            .as_ref()
            .and_then(|sender| sender.predecessor);
        match (predecessor, record) {
            (None, _) => true,
            (Some(predecessor), Some(record)) => predecessor.sequence <= record.last,
            (Some(predecessor), None) => predecessor.sent_at < now - DEDUPLICATION_WINDOW,
        }
    }

    fn apply_numbered(
        &mut self,
        batch: &mut Batch<'_>,
        key: String,
        sequence: i32,
        request: EntityRequest,
    ) {
        self.senders.insert(
            key,
            SenderRecord {
                last: sequence,
                seen_at: batch.now,
            },
        );
        self.dispatch(batch, request);
    }

    /// Applies early requests whose predecessor has now been applied, until none is left.
    fn drain_early(&mut self, batch: &mut Batch<'_>) {
        loop {
            let ready = self.early.iter().position(|waiting| {
                numbered(&waiting.request).is_some_and(|(key, _)| {
                    self.follows(self.senders.get(&key), &waiting.request, batch.now)
                })
            });
            let Some(index) = ready else { return };
            let waiting = self.early.remove(index);
            if let Some((key, sequence)) = numbered(&waiting.request) {
                if self.senders.get(&key).is_some_and(|r| sequence <= r.last) {
                    continue;
                }
                self.apply_numbered(batch, key, sequence, waiting.request);
            }
        }
    }

    /// Early requests that waited the whole window for their predecessor are applied anyway:
    /// it was lost with a purged sender, or its record was forgotten.
    fn release_overdue(&mut self, batch: &mut Batch<'_>) {
        let cutoff = batch.now - DEDUPLICATION_WINDOW;
        let (overdue, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|waiting| waiting.since < cutoff);
        self.early = kept;
        for waiting in overdue {
            if let Some((key, sequence)) = numbered(&waiting.request) {
                if self.senders.get(&key).is_none_or(|r| sequence > r.last) {
                    self.apply_numbered(batch, key, sequence, waiting.request);
                }
            }
        }
        self.drain_early(batch);
    }

    fn remember(&mut self, id: String, now: DateTime<Utc>) {
        self.recent.push_back(Recent { id, at: now });
        while self.recent.len() > MAX_REMEMBERED_IDS {
            self.recent.pop_front();
        }
    }

    fn forget_old(&mut self, now: DateTime<Utc>) {
        let cutoff = now - DEDUPLICATION_WINDOW;
        while self.recent.front().is_some_and(|recent| recent.at < cutoff) {
            self.recent.pop_front();
        }
        self.senders.retain(|_, record| record.seen_at >= cutoff);
        while self.senders.len() > MAX_SENDERS {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, record)| record.seen_at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.senders.remove(&key),
                None => break,
            };
        }
    }

    /// Runs a request that is due: an operation, a lock request or a release.
    fn dispatch(&mut self, batch: &mut Batch<'_>, request: EntityRequest) {
        let owner = request.sender.as_ref().map(|s| s.instance_id.as_str());
        let locked_out = self
            .lock
            .as_ref()
            .is_some_and(|lock| Some(lock.owner.as_str()) != owner);
        match &request.kind {
            RequestKind::Release { lock_id } => self.release(batch, lock_id, owner),
            RequestKind::Lock { .. }
                if self
                    .lock
                    .as_ref()
                    .is_some_and(|l| l.request_id == request.id) => {}
            RequestKind::Lock { .. } if self.take_released(&request.id) => {}
            // A holder's other lock request (one it withdrew, or a new execution's while the
            // old one's release is on its way) waits for the lock like anyone's.
            RequestKind::Lock { .. } if self.lock.is_some() => {
                self.locked_out.push_back(Waiting {
                    message_id: request.id.clone(),
                    request,
                    since: batch.now,
                });
            }
            RequestKind::Operation { .. } if locked_out => {
                self.locked_out.push_back(Waiting {
                    message_id: request.id.clone(),
                    request,
                    since: batch.now,
                });
            }
            RequestKind::Lock { lockset, position } => {
                let Some(sender) = request.sender.clone() else {
                    return;
                };
                self.lock = Some(Lock {
                    owner: sender.instance_id.clone(),
                    request_id: request.id.clone(),
                });
                match lockset.get(position + 1) {
                    Some(next) => {
                        batch.sent += 1;
                        batch.outgoing.push(Outgoing::Request {
                            entity_instance_id: next.clone(),
                            request: EntityRequest {
                                id: request.id.clone(),
                                kind: RequestKind::Lock {
                                    lockset: lockset.clone(),
                                    position: position + 1,
                                },
                                // Passed on by an entity: not numbered by the orchestration.
                                sender: Some(Sender {
                                    sequence: None,
                                    predecessor: None,
                                    ..sender
                                }),
                            },
                        });
                    }
                    None => batch.outgoing.push(Outgoing::Respond {
                        instance_id: sender.instance_id,
                        execution_id: sender.execution_id,
                        request_id: request.id.clone(),
                        response: EntityResponse {
                            result: Some(LOCK_ACQUIRED.to_string()),
                            failure: None,
                        },
                    }),
                }
            }
            RequestKind::Operation { .. } => self.run_operation(batch, request),
        }
    }

    /// Lets go of lock request `lock_id` of `owner`: held, it admits the requests it held out;
    /// waiting, it is dropped; not come yet, it is remembered so it is dropped when it comes.
    fn release(&mut self, batch: &mut Batch<'_>, lock_id: &str, owner: Option<&str>) {
        let is_it = |id: &str, holder: Option<&str>| id == lock_id && holder == owner;
        if self
            .lock
            .as_ref()
            .is_some_and(|lock| is_it(&lock.request_id, Some(&lock.owner)))
        {
            self.lock = None;
            self.admit_locked_out(batch);
            return;
        }
        let waiting = self.locked_out.iter().position(|w| {
            matches!(w.request.kind, RequestKind::Lock { .. })
                && is_it(
                    &w.request.id,
                    w.request.sender.as_ref().map(|s| s.instance_id.as_str()),
                )
        });
        match waiting {
            Some(index) => {
                self.locked_out.remove(index);
            }
            None => {
                self.released.push_back(Recent {
                    id: lock_id.to_string(),
                    at: batch.now,
                });
                while self.released.len() > MAX_REMEMBERED_IDS {
                    self.released.pop_front();
                }
            }
        }
    }

    /// Whether lock request `id` was let go of before it came (and forgets that it was).
    fn take_released(&mut self, id: &str) -> bool {
        match self.released.iter().position(|r| r.id == id) {
            Some(index) => {
                self.released.remove(index);
                true
            }
            None => false,
        }
    }

    /// With the lock gone, lets waiting requests in, in order, until one of them takes the lock.
    fn admit_locked_out(&mut self, batch: &mut Batch<'_>) {
        while self.lock.is_none() {
            let Some(waiting) = self.locked_out.pop_front() else {
                return;
            };
            self.dispatch(batch, waiting.request);
        }
        // The new holder's requests may already wait behind others: they go first now.
        let owner = self.lock.as_ref().map(|lock| lock.owner.clone());
        let (mine, others): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.locked_out)
            .into_iter()
            .partition(|w| w.request.sender.as_ref().map(|s| &s.instance_id) == owner.as_ref());
        self.locked_out = others;
        for waiting in mine {
            self.dispatch(batch, waiting.request);
        }
    }

    fn run_operation(&mut self, batch: &mut Batch<'_>, request: EntityRequest) {
        let RequestKind::Operation { op, input, signal } = &request.kind else {
            return;
        };
        batch.operations_run += 1;
        self.operations += 1;
        self.last_operation_at = Some(batch.now);
        let outcome = run_function(batch, op, input.as_deref(), self.state.clone());
        let response = match outcome {
            Ok((state, result, actions)) => {
                self.state = state;
                for action in actions {
                    batch.sent += 1;
                    batch.outgoing.push(match action {
                        EntityAction::Signal {
                            entity,
                            operation,
                            input,
                        } => Outgoing::Request {
                            entity_instance_id: entity.instance_id(),
                            request: EntityRequest {
                                id: format!("{}:{}:{}", batch.entity, self.operations, batch.sent),
                                kind: RequestKind::Operation {
                                    op: operation,
                                    input,
                                    signal: true,
                                },
                                sender: Some(Sender {
                                    instance_id: batch.entity.instance_id(),
                                    execution_id: None,
                                    sequence: None,
                                    predecessor: None,
                                }),
                            },
                        },
                        EntityAction::StartOrchestration {
                            name,
                            instance_id,
                            input,
                        } => Outgoing::StartOrchestration {
                            name,
                            instance_id,
                            input,
                        },
                    });
                }
                EntityResponse {
                    result,
                    failure: None,
                }
            }
            Err(failure) => EntityResponse {
                result: None,
                failure: Some(failure),
            },
        };
        if *signal {
            if let Some(failure) = response.failure {
                batch.failed_signals.push((op.clone(), failure));
            }
            return;
        }
        if let Some(sender) = request.sender {
            batch.outgoing.push(Outgoing::Respond {
                instance_id: sender.instance_id,
                execution_id: sender.execution_id,
                request_id: request.id,
                response,
            });
        }
    }
}

type FunctionResult = Result<(Option<String>, Option<String>, Vec<EntityAction>), FailureDetails>;

/// Runs the entity function on a copy of the state; a failure or a panic leaves the state as
/// it was and sets nothing off.
fn run_function(
    batch: &Batch<'_>,
    operation: &str,
    input: Option<&str>,
    state: Option<String>,
) -> FunctionResult {
    let entity = batch.entity;
    let Some(function) = batch.registry.entity_function(entity.name()) else {
        return Err(FailureDetails::new(
            "EntityFunctionNotFound",
            format!("no entity function named '{}' is registered", entity.name()),
        ));
    };
    let mut ctx = EntityContext::new(entity, operation, input, state, batch.now);
    match catch_unwind(AssertUnwindSafe(|| function(&mut ctx))) {
        Ok(Ok(())) => Ok(ctx.finish()),
        Ok(Err(error)) => Err(error.into_details()),
        Err(panic) => Err(FailureDetails::new(
            "EntityOperationPanicked",
            format!(
                "operation '{operation}' of entity '{entity}' panicked: {}",
                panic_message(panic.as_ref())
            ),
        )),
    }
}

/// The sender key and number of a numbered request.
fn numbered(request: &EntityRequest) -> Option<(String, i32)> {
    let sender = request.sender.as_ref()?;
    let sequence = sender.sequence?;
    let key = format!(
        "{} {}",
        sender.instance_id,
        sender.execution_id.as_deref().unwrap_or_default()
    );
    Some((key, sequence))
}
