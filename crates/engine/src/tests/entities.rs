//! Entities in the engine: the scheduler's batches (operations in order, once, a failed one
//! undone, locks holding others out) and what orchestrations send and receive to signal, call
//! and lock entities.

use chrono::{DateTime, TimeDelta, Utc};

use super::{json, started, turn, ID};
use crate::entity::{
    EntityRequest, EntityResponse, EntityScheduler, Incoming, OperationOutcome, Outgoing,
    Predecessor, RequestKind, Sender,
};
use crate::{
    Action, EntityContext, EntityError, EntityId, HistoryEvent, OrchestrationContext,
    OrchestrationError, Registry, TurnOutcome,
};

fn registry() -> Registry {
    Registry::builder()
        .entity("Log", |ctx: &mut EntityContext| {
            let mut entries: Vec<String> = ctx.state_or_default()?;
            match ctx.operation() {
                "append" => entries.push(ctx.input()?),
                "get" => ctx.set_result(&entries)?,
                "fail" => {
                    entries.push("never kept".to_string());
                    ctx.set_state(&entries)?;
                    let me = ctx.entity_id().clone();
                    ctx.signal_entity(&me, "append", "never sent")?;
                    return Err(EntityError::new("asked to fail"));
                }
                "panic" => panic!("asked to panic"),
                "delete" => {
                    ctx.delete_state();
                    return Ok(());
                }
                other => return Err(EntityError::new(format!("no operation '{other}'"))),
            }
            ctx.set_state(&entries)
        })
        .orchestrator("CallLog", |ctx: OrchestrationContext, (): ()| async move {
            let log = EntityId::new("Log", "k").expect("a valid id");
            ctx.signal_entity(&log, "append", "from orchestration")?;
            let entries: Vec<String> = ctx.call_entity(&log, "get", &()).await?;
            Ok::<_, OrchestrationError>(entries)
        })
        .orchestrator("LockTwo", |ctx: OrchestrationContext, (): ()| async move {
            let a = EntityId::new("Log", "b").expect("a valid id");
            let b = EntityId::new("Log", "a").expect("a valid id");
            let guard = ctx.lock_entities(&[a.clone(), b]).await?;
            ctx.signal_entity(&a, "append", "locked")?;
            guard.release();
            Ok::<_, OrchestrationError>(())
        })
        .orchestrator(
            "LockThenFail",
            |ctx: OrchestrationContext, (): ()| async move {
                let a = EntityId::new("Log", "a").expect("a valid id");
                let b = EntityId::new("Log", "b").expect("a valid id");
                let guard = ctx.lock_entities(&[a, b]).await?;
                assert_eq!(guard.entities().len(), 2);
                ctx.call_activity::<()>("Work", &()).await?;
                drop(guard);
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "LockOrGiveUp",
            |ctx: OrchestrationContext, (): ()| async move {
                let a = EntityId::new("Log", "a").expect("a valid id");
                let b = EntityId::new("Log", "b").expect("a valid id");
                let lock = Box::pin(ctx.lock_entities(&[a.clone(), b]));
                let timeout = Box::pin(
                    ctx.create_timer(ctx.current_utc_datetime() + chrono::TimeDelta::seconds(60)),
                );
                if let crate::Either::Right(((), lost)) = crate::select2(lock, timeout).await {
                    // The lock request lost the race: its guard goes with it.
                    drop(lost);
                    let guard = ctx.lock_entities(&[a]).await?;
                    guard.release();
                    return Ok::<_, OrchestrationError>("second lock".to_string());
                }
                Ok("first lock".to_string())
            },
        )
        .orchestrator(
            "LockUnpolled",
            |ctx: OrchestrationContext, (): ()| async move {
                let a = EntityId::new("Log", "a").expect("a valid id");
                // Asked for and dropped unpolled: withdrawn, so the next lock is no nesting.
                drop(ctx.lock_entities(std::slice::from_ref(&a)));
                let guard = ctx.lock_entities(&[a]).await?;
                guard.release();
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "LockThenContinue",
            |ctx: OrchestrationContext, round: u32| async move {
                let a = EntityId::new("Log", "a").expect("a valid id");
                let _guard = ctx.lock_entities(&[a]).await?;
                if round == 0 {
                    return ctx.continue_as_new(&1).await;
                }
                Ok::<_, OrchestrationError>(())
            },
        )
        .build()
        .expect("a valid registry")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn log() -> EntityId {
    EntityId::new("Log", "k").expect("a valid id")
}

fn operation(id: &str, op: &str, input: &str, sender: Option<Sender>) -> Incoming {
    Incoming {
        message_id: format!("m-{id}"),
        request: EntityRequest {
            id: id.to_string(),
            kind: RequestKind::Operation {
                op: op.to_string(),
                input: json(input),
                signal: sender.is_none(),
            },
            sender,
        },
    }
}

fn numbered(instance: &str, sequence: i32, predecessor: Option<i32>) -> Sender {
    Sender {
        instance_id: instance.to_string(),
        execution_id: Some("e".to_string()),
        sequence: Some(sequence),
        predecessor: predecessor.map(|sequence| Predecessor {
            sequence,
            sent_at: now(),
        }),
    }
}

fn entries(scheduler: &EntityScheduler) -> Vec<String> {
    serde_json::from_str(scheduler.state.as_deref().unwrap_or("[]")).expect("a log")
}

#[test]
fn a_batch_runs_its_operations_in_order_and_each_message_once() {
    let mut scheduler = EntityScheduler::default();
    let batch = vec![
        operation("1", "append", "a", None),
        operation("2", "append", "b", None),
        operation("1", "append", "a", None),
    ];
    let outcome = scheduler.run_batch(&registry(), &log(), batch, now());
    assert_eq!(
        outcome.outcomes,
        [
            OperationOutcome::Applied,
            OperationOutcome::Applied,
            OperationOutcome::Duplicate
        ]
    );
    // Redelivered in a later batch, after the state went through storage.
    let mut scheduler = EntityScheduler::from_json(Some(&scheduler.to_json())).unwrap();
    let again = scheduler.run_batch(
        &registry(),
        &log(),
        vec![operation("2", "append", "b", None)],
        now() + TimeDelta::minutes(5),
    );
    assert_eq!(again.outcomes, [OperationOutcome::Duplicate]);
    assert_eq!(entries(&scheduler), ["a", "b"]);
    assert_eq!(scheduler.operations, 2);
}

#[test]
fn a_failed_or_panicking_operation_is_undone_and_its_caller_told() {
    let mut scheduler = EntityScheduler::default();
    let caller = numbered("o", 0, None);
    let batch = vec![
        operation("1", "append", "kept", None),
        operation("2", "fail", "", Some(caller)),
        operation("3", "panic", "", Some(numbered("o", 1, Some(0)))),
    ];
    let outcome = scheduler.run_batch(&registry(), &log(), batch, now());
    assert_eq!(entries(&scheduler), ["kept"]);
    let failures: Vec<&str> = outcome
        .outgoing
        .iter()
        .map(|outgoing| match outgoing {
            Outgoing::Respond { response, .. } => response
                .failure
                .as_ref()
                .map(|f| f.error_type.as_str())
                .expect("a failure"),
            other => panic!("a failed operation sent {other:?}"),
        })
        .collect();
    assert_eq!(
        failures,
        ["EntityOperationFailed", "EntityOperationPanicked"]
    );
}

#[test]
fn a_senders_requests_apply_in_its_order_even_when_they_arrive_out_of_it() {
    let mut scheduler = EntityScheduler::default();
    let second = operation("2", "append", "second", Some(numbered("o", 5, Some(2))));
    let first = operation("1", "append", "first", Some(numbered("o", 2, None)));
    let early = scheduler.run_batch(&registry(), &log(), vec![second.clone()], now());
    assert_eq!(early.outcomes, [OperationOutcome::Waiting]);
    assert_eq!(scheduler.waiting(), 1);
    let outcome = scheduler.run_batch(&registry(), &log(), vec![first.clone(), second], now());
    assert_eq!(
        outcome.outcomes,
        [OperationOutcome::Applied, OperationOutcome::Duplicate]
    );
    assert_eq!(entries(&scheduler), ["first", "second"]);
    let repeated = scheduler.run_batch(&registry(), &log(), vec![first], now());
    assert_eq!(repeated.outcomes, [OperationOutcome::Duplicate]);
    assert_eq!(scheduler.waiting(), 0);
}

#[test]
fn a_lock_holds_others_out_until_its_release() {
    let mut scheduler = EntityScheduler::default();
    let lock = Incoming {
        message_id: "m-lock".to_string(),
        request: EntityRequest {
            id: "lock-1".to_string(),
            kind: RequestKind::Lock {
                lockset: vec!["@log@k".to_string(), "@log@z".to_string()],
                position: 0,
            },
            sender: Some(numbered("holder", 0, None)),
        },
    };
    let outcome = scheduler.run_batch(&registry(), &log(), vec![lock], now());
    assert!(matches!(
        &outcome.outgoing[..],
        [Outgoing::Request { entity_instance_id, request }]
            if entity_instance_id == "@log@z"
                && matches!(request.kind, RequestKind::Lock { position: 1, .. })
    ));
    assert_eq!(scheduler.lock_owner(), Some("holder"));
    let batch = vec![
        operation("o1", "append", "other", None),
        operation(
            "h1",
            "append",
            "holder",
            Some(numbered("holder", 1, Some(0))),
        ),
    ];
    scheduler.run_batch(&registry(), &log(), batch, now());
    assert_eq!(entries(&scheduler), ["holder"]);
    let release = Incoming {
        message_id: "m-release".to_string(),
        request: EntityRequest {
            id: "lock-1:release".to_string(),
            kind: RequestKind::Release {
                lock_id: "lock-1".to_string(),
            },
            sender: Some(numbered("holder", 2, Some(1))),
        },
    };
    scheduler.run_batch(&registry(), &log(), vec![release], now());
    assert_eq!(entries(&scheduler), ["holder", "other"]);
    assert_eq!(scheduler.lock_owner(), None);
}

/// The entity requests a turn sends, by target.
fn requests(turn: &crate::Turn) -> Vec<(String, EntityRequest)> {
    turn.actions
        .iter()
        .filter_map(|action| match action {
            Action::SendEvent {
                instance_id, input, ..
            } => Some((
                instance_id.clone(),
                EntityRequest::from_json(input.as_deref().unwrap_or_default()).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn an_orchestration_signals_then_calls_an_entity_in_order_and_gets_the_result() {
    let registry = registry();
    let history = started("CallLog").build();
    let first = turn(&registry, &[], &history);
    let sent = requests(&first);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(target, _)| target == "@log@k"));
    let (signal, call) = (&sent[0].1, &sent[1].1);
    let sender = call.sender.as_ref().expect("numbered");
    assert_eq!(sender.instance_id, ID);
    assert_eq!(
        sender.predecessor.map(|p| p.sequence),
        signal.sender.as_ref().and_then(|s| s.sequence)
    );
    let response = EntityResponse {
        result: json(&["from orchestration"]),
        failure: None,
    };
    // The delta holds the turn's new events too.
    let past = first.history_delta.clone();
    let answer: Vec<HistoryEvent> = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .event_raised(&call.id, &response)
        .build();
    let second = turn(&registry, &past, &answer);
    assert_eq!(
        second.outcome,
        TurnOutcome::Completed {
            output: json(&["from orchestration"])
        }
    );
}

#[test]
fn a_critical_section_locks_in_a_fixed_order_and_releases_every_entity() {
    let registry = registry();
    let history = started("LockTwo").build();
    let first = turn(&registry, &[], &history);
    let sent = requests(&first);
    let [(target, lock)] = &sent[..] else {
        panic!("one lock request, got {sent:?}");
    };
    assert_eq!(target, "@log@a", "the first of the sorted lock set");
    let RequestKind::Lock { lockset, .. } = &lock.kind else {
        panic!("a lock request, got {lock:?}");
    };
    assert_eq!(lockset, &["@log@a", "@log@b"]);
    // The delta holds the turn's new events too.
    let past = first.history_delta.clone();
    let acquired = EntityResponse {
        result: Some(crate::entity::LOCK_ACQUIRED.to_string()),
        failure: None,
    };
    let answer = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .event_raised(&lock.id, &acquired)
        .build();
    let second = turn(&registry, &past, &answer);
    assert!(matches!(second.outcome, TurnOutcome::Completed { .. }));
    let kinds: Vec<(String, &'static str)> = requests(&second)
        .into_iter()
        .map(|(target, request)| {
            let kind = match request.kind {
                RequestKind::Operation { .. } => "operation",
                RequestKind::Release { .. } => "release",
                RequestKind::Lock { .. } => "lock",
            };
            (target, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("@log@b".to_string(), "operation"),
            ("@log@a".to_string(), "release"),
            ("@log@b".to_string(), "release"),
        ]
    );
}

fn acquired() -> EntityResponse {
    EntityResponse {
        result: Some(crate::entity::LOCK_ACQUIRED.to_string()),
        failure: None,
    }
}

/// The releases among a turn's requests: (entity, lock id, whether numbered).
fn releases(turn: &crate::Turn) -> Vec<(String, String, bool)> {
    requests(turn)
        .into_iter()
        .filter_map(|(target, request)| match request.kind {
            RequestKind::Release { lock_id } => Some((
                target,
                lock_id,
                request.sender.and_then(|s| s.sequence).is_some(),
            )),
            _ => None,
        })
        .collect()
}

/// Starts an orchestration whose first turn asks for one lock, and grants it: the lock request,
/// the history before the grant, and the turn the grant ran.
fn locked(
    registry: &Registry,
    start: &[HistoryEvent],
) -> (EntityRequest, Vec<HistoryEvent>, crate::Turn) {
    let first = turn(registry, &[], start);
    let [(_, lock)] = &requests(&first)[..] else {
        panic!("one lock request");
    };
    let past = first.history_delta.clone();
    let answer = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .event_raised(&lock.id, &acquired())
        .build();
    let second = turn(registry, &past, &answer);
    (lock.clone(), past, second)
}

#[test]
fn an_orchestration_that_fails_or_is_terminated_in_a_critical_section_lets_go() {
    let registry = registry();
    let (lock, past, second) = locked(&registry, &started("LockThenFail").build());
    assert!(releases(&second).is_empty(), "held while the activity runs");
    let past: Vec<HistoryEvent> = past.into_iter().chain(second.history_delta).collect();
    let activity = second
        .actions
        .iter()
        .find_map(|a| match a {
            Action::ScheduleTask { id, .. } => Some(*id),
            _ => None,
        })
        .expect("the activity");

    let failed = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .task_failed(activity, "boom")
        .build();
    let third = turn(&registry, &past, &failed);
    assert!(matches!(third.outcome, TurnOutcome::Failed { .. }));
    let expected = vec![
        ("@log@a".to_string(), lock.id.clone(), false),
        ("@log@b".to_string(), lock.id.clone(), false),
    ];
    assert_eq!(releases(&third), expected, "{:?}", third.actions);
    assert!(
        !third
            .history_delta
            .iter()
            .any(|e| matches!(e.kind, crate::EventKind::EventSent { .. })),
        "the releases are not recorded"
    );

    let terminated = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .terminated("stop")
        .build();
    let fourth = turn(&registry, &past, &terminated);
    assert!(matches!(fourth.outcome, TurnOutcome::Terminated { .. }));
    assert_eq!(releases(&fourth), expected);
}

#[test]
fn a_lock_request_that_loses_a_race_lets_go_and_the_next_one_may_lock() {
    let registry = registry();
    let first = turn(&registry, &[], &started("LockOrGiveUp").build());
    let (lock, timer) = (
        requests(&first),
        first.actions.iter().find_map(|a| match a {
            Action::CreateTimer { id, fire_at } => Some((*id, *fire_at)),
            _ => None,
        }),
    );
    let [(_, lock)] = &lock[..] else {
        panic!("one lock request");
    };
    let (timer, fire_at) = timer.expect("the timeout");
    let past = first.history_delta.clone();
    let fired = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .timer_fired(timer, fire_at)
        .build();
    let second = turn(&registry, &past, &fired);
    let sent = requests(&second);
    let kinds: Vec<(&str, &str)> = sent
        .iter()
        .map(|(target, request)| {
            let kind = match &request.kind {
                RequestKind::Release { lock_id } if *lock_id == lock.id => "release",
                RequestKind::Lock { .. } => "lock",
                other => panic!("unexpected {other:?}"),
            };
            (target.as_str(), kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("@log@a", "release"),
            ("@log@b", "release"),
            ("@log@a", "lock")
        ]
    );
    let second_lock = &sent[2].1;
    let past: Vec<HistoryEvent> = past.into_iter().chain(second.history_delta).collect();
    let answer = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .event_raised(&second_lock.id, &acquired())
        .build();
    let third = turn(&registry, &past, &answer);
    assert_eq!(
        third.outcome,
        TurnOutcome::Completed {
            output: json("second lock")
        }
    );
    assert_eq!(
        releases(&third),
        [("@log@a".to_string(), second_lock.id.clone(), true)]
    );
}

fn lock_request(id: &str, owner: &str, lockset: &[&str], position: usize) -> Incoming {
    Incoming {
        message_id: format!("m-{id}-{position}"),
        request: EntityRequest {
            id: id.to_string(),
            kind: RequestKind::Lock {
                lockset: lockset.iter().map(|s| s.to_string()).collect(),
                position,
            },
            sender: Some(Sender {
                instance_id: owner.to_string(),
                execution_id: Some("e".to_string()),
                sequence: None,
                predecessor: None,
            }),
        },
    }
}

fn unnumbered_release(lock_id: &str, owner: &str) -> Incoming {
    Incoming {
        message_id: format!("m-{lock_id}:release"),
        request: EntityRequest {
            id: format!("{lock_id}:release"),
            kind: RequestKind::Release {
                lock_id: lock_id.to_string(),
            },
            sender: Some(Sender {
                instance_id: owner.to_string(),
                execution_id: Some("e".to_string()),
                sequence: None,
                predecessor: None,
            }),
        },
    }
}

#[test]
fn a_lock_request_let_go_of_while_waiting_or_before_it_came_never_takes_the_entity() {
    let registry = registry();
    let mut scheduler = EntityScheduler::default();
    let lockset = ["@log@k"];
    scheduler.run_batch(
        &registry,
        &log(),
        vec![lock_request("first", "one", &lockset, 0)],
        now(),
    );
    assert_eq!(scheduler.lock_owner(), Some("one"));
    // "two" waits behind "one", then gives up; a release of "three", whose lock request is
    // still on its way, comes before it.
    let batch = vec![
        lock_request("second", "two", &lockset, 0),
        unnumbered_release("second", "two"),
        unnumbered_release("third", "three"),
        unnumbered_release("first", "one"),
        lock_request("third", "three", &lockset, 0),
        operation("o1", "append", "free", None),
    ];
    let outcome = scheduler.run_batch(&registry, &log(), batch, now());
    assert_eq!(scheduler.lock_owner(), None, "{outcome:?}");
    assert_eq!(scheduler.waiting(), 0);
    assert_eq!(entries(&scheduler), ["free"]);
    assert!(
        outcome.outgoing.is_empty(),
        "no lock was granted: {:?}",
        outcome.outgoing
    );
}

#[test]
fn a_lock_request_dropped_unpolled_is_withdrawn() {
    let registry = registry();
    let first = turn(&registry, &[], &started("LockUnpolled").build());
    assert!(
        !matches!(first.outcome, TurnOutcome::Failed { .. }),
        "{:?}",
        first.outcome
    );
    let sent = requests(&first);
    let kinds: Vec<&str> = sent
        .iter()
        .map(|(_, request)| match request.kind {
            RequestKind::Lock { .. } => "lock",
            RequestKind::Release { .. } => "release",
            RequestKind::Operation { .. } => "operation",
        })
        .collect();
    assert_eq!(kinds, ["lock", "release", "lock"]);
    assert_eq!(sent[0].1.id, {
        let RequestKind::Release { lock_id } = &sent[1].1.kind else {
            unreachable!()
        };
        lock_id.clone()
    });
}

#[test]
fn an_execution_that_continues_as_new_in_a_critical_section_lets_go() {
    let registry = registry();
    let history = crate::HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("LockThenContinue", &0)
        .build();
    let (lock, _, second) = locked(&registry, &history);
    assert!(
        matches!(second.outcome, TurnOutcome::ContinuedAsNew { .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(
        releases(&second),
        [("@log@a".to_string(), lock.id.clone(), false)]
    );
}

#[test]
fn a_holders_other_lock_request_waits_and_a_late_one_is_dropped_however_late() {
    let registry = registry();
    let mut scheduler = EntityScheduler::default();
    let lockset = ["@log@k"];
    // "one" holds the entity with its new lock; its withdrawn one comes after, and then its
    // release: the withdrawn lock never takes over.
    let batch = vec![
        lock_request("new", "one", &lockset, 0),
        lock_request("withdrawn", "one", &lockset, 0),
        unnumbered_release("withdrawn", "one"),
    ];
    let outcome = scheduler.run_batch(&registry, &log(), batch, now());
    assert_eq!(outcome.outgoing.len(), 1, "only the new lock is granted");
    assert_eq!(scheduler.waiting(), 0);
    let later = now() + TimeDelta::hours(2);
    let batch = vec![
        unnumbered_release("late", "two"),
        unnumbered_release("new", "one"),
    ];
    scheduler.run_batch(&registry, &log(), batch, later);
    assert_eq!(scheduler.lock_owner(), None);
    // Hours after its release, the lock request it withdrew arrives: dropped.
    let much_later = later + TimeDelta::hours(5);
    let outcome = scheduler.run_batch(
        &registry,
        &log(),
        vec![lock_request("late", "two", &lockset, 0)],
        much_later,
    );
    assert_eq!(scheduler.lock_owner(), None, "{outcome:?}");
    assert!(outcome.outgoing.is_empty());
}
