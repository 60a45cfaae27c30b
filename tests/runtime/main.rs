//! Runtime tests over the in-memory backend: orchestrations driven through queues by pumps,
//! duplicates absorbed, a fault before and after every storage call, several pumps or processes
//! on one task hub, batched turns, the instance cache and the checkpoint interval, poison
//! messages, deferred messages as the stuck view shows them, trace context across processes, and
//! the storage requests each instance records.

mod batching;
mod cache;
mod checkpoint;
mod deferred;
mod entities;
#[path = "../common/faulty.rs"]
mod faulty;
mod harness;
#[path = "../common/invariants.rs"]
mod invariants;
mod redelivery;
#[path = "../common/slow_chain.rs"]
mod slow_chain;
mod storage_requests;
mod trace_context;
mod two_processes;
mod versioning;
#[path = "../common/workflows.rs"]
mod workflows;

use durable_engine::{EventKind, OrchestrationStatus};
use durable_runtime::{
    Delivered, Delivery, PoisonError, RuntimeError, StartDelivery, StartOptions, UNSTARTED_GRACE,
};
use durable_store::backend::Backend;
use durable_store::model::{Destination, PoisonQuery, QueueKind};
use std::time::Duration;

use harness::{assert_no_duplicates, FaultMode, Harness};

#[tokio::test]
async fn a_sequence_of_activities_completes_through_the_queues() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("HelloSequence", Some("seq-1"), &())
        .await
        .unwrap();
    assert_eq!(h.summary(&id).await.status, OrchestrationStatus::Pending);

    h.drive(10).await;

    let summary = h.summary(&id).await;
    assert_eq!(summary.status, OrchestrationStatus::Completed);
    let output: Vec<String> = serde_json::from_str(summary.output.as_deref().unwrap()).unwrap();
    assert_eq!(output[0], "Hello Tokyo!");
    assert_eq!(output.len(), 5);
    assert_no_duplicates(&h.history(&id).await);
}

#[tokio::test]
async fn fan_out_timer_event_and_child_complete() {
    let h = Harness::new().await;
    let id = h.runtime.start("Mixed", Some("mixed-1"), &4).await.unwrap();
    h.drive(10).await;
    assert_eq!(h.summary(&id).await.status, OrchestrationStatus::Running);

    h.runtime.raise_event(&id, "Go", "go!").await.unwrap();
    h.drive(10).await;

    let summary = h.completed(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"4 greetings, go!, child said 5\"")
    );
    assert_no_duplicates(&h.history(&id).await);
}

#[tokio::test]
async fn continue_as_new_runs_each_execution_in_one_commit() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("Counter", Some("counter-1"), &0)
        .await
        .unwrap();
    h.drive(20).await;
    let summary = h.completed(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some("8"),
        "the length of \"Hello 3!\""
    );
    let history = h.history(&id).await;
    assert_no_duplicates(&history);
    assert_eq!(
        h.backend.counts().get("commit").copied(),
        Some(1),
        "four executions, their in-process activities included, in one commit"
    );
}

#[tokio::test]
async fn a_timer_beyond_the_queue_delay_limit_fires_once_at_its_time() {
    let h = Harness::new().await;
    let id = h.runtime.start("LongNap", Some("nap"), &()).await.unwrap();
    h.drive(1).await;
    let sends_before = h
        .backend
        .counts()
        .get("send (messages)")
        .copied()
        .unwrap_or(0);
    h.drive(10).await;

    let summary = h.completed(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"2026-01-21T00:00:00+00:00\""),
        "woke exactly twenty days after the start"
    );
    let history = h.history(&id).await;
    let fired = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .count();
    assert_eq!(fired, 1, "the intermediate hops never reach the history");
    let hops = h
        .backend
        .counts()
        .get("send (messages)")
        .copied()
        .unwrap_or(0)
        - sends_before;
    assert_eq!(hops, 3, "re-armed at days 6, 12 and 18");
}

#[tokio::test]
async fn an_event_raised_right_after_start_is_not_lost() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("Mixed", Some("early-event"), &1)
        .await
        .unwrap();
    h.runtime.raise_event(&id, "Go", "early").await.unwrap();
    h.drive(20).await;
    let summary = h.completed(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"1 greetings, early, child said 5\"")
    );
}

#[tokio::test]
async fn an_event_for_a_start_that_never_gets_processed_is_deferred_then_parked() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("HelloSequence", Some("never"), &())
        .await
        .unwrap();
    h.runtime.raise_event(&id, "Go", "early").await.unwrap();
    // The start message is lost (poisoned, say): only the event is left to process.
    let queue = h.backend.queue_for(&Destination::Instance {
        instance_id: id.clone(),
        execution_id: None,
    });
    let received = h.backend.receive(queue, 32, Duration::ZERO).await.unwrap();
    let start = received
        .iter()
        .find(|r| matches!(r.message.event.kind, EventKind::ExecutionStarted { .. }))
        .unwrap();
    h.backend.delete(&start.receipt).await.unwrap();

    h.drive(1_000).await;

    let summary = h.summary(&id).await;
    assert_eq!(summary.status, OrchestrationStatus::Pending);
    for queue in h.backend.queues() {
        assert!(
            h.backend.inner().queued(queue).is_empty(),
            "deferral stopped"
        );
    }
    // Not dropped: parked, with why, and counted on the instance.
    assert_eq!(summary.poison_messages, 1);
    let parked = h
        .runtime
        .poison_messages(&PoisonQuery {
            instance_id: Some(id.clone()),
            ..PoisonQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0].reason.contains("its start never came"),
        "{parked:?}"
    );
    let event = parked[0].message.as_ref().expect("the message is kept");
    assert!(matches!(&event.event.kind, EventKind::EventRaised { name, .. } if name == "Go"));

    // Requeued while there is still no instance, it is parked again at once; discarded, it is
    // gone and the instance no longer counts it.
    h.runtime.requeue_poison(&parked[0].id).await.unwrap();
    h.drive(10).await;
    assert_eq!(h.summary(&id).await.poison_messages, 1);
    h.runtime.discard_poison(&parked[0].id).await.unwrap();
    assert_eq!(h.summary(&id).await.poison_messages, 0);
    assert!(matches!(
        h.runtime.discard_poison(&parked[0].id).await,
        Err(PoisonError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_delivery_that_fails_is_retried_until_the_last_which_parks_it() {
    let h = Harness::new().await;
    let id = h.runtime.start("Mixed", Some("failing"), &1).await.unwrap();
    h.drive(20).await;
    h.runtime.raise_event(&id, "Go", "late").await.unwrap();
    let queue = h.backend.queue_for(&Destination::Instance {
        instance_id: id.clone(),
        execution_id: None,
    });
    let received = h.backend.receive(queue, 32, Duration::ZERO).await.unwrap();
    assert_eq!(received.len(), 1);
    let text = serde_json::to_string(&received[0].message).unwrap();
    let max = h.runtime.options().max_dequeue_count;
    for attempt in 1..=max {
        // Every delivery fails at its first storage call of processing; the last one makes a
        // record (a worker dying during it leaves that) before it processes.
        let first_of_processing = if attempt == max { 2 } else { 1 };
        h.backend.fail_call(first_of_processing, FaultMode::Before);
        let delivered = h
            .runtime
            .deliver(Delivery {
                queue,
                text: &text,
                queue_message_id: Some("queue-message-1"),
                attempt,
            })
            .await;
        if attempt < max {
            assert!(delivered.is_err(), "attempt {attempt}: {delivered:?}");
        } else {
            let id = received[0].message.id.clone();
            assert_eq!(delivered.unwrap(), Delivered::Parked(id));
        }
    }
    let parked = h
        .runtime
        .poison_message(&received[0].message.id)
        .await
        .unwrap();
    assert_eq!(parked.attempts, max);
    assert!(
        parked.reason.contains("injected fault"),
        "{}",
        parked.reason
    );
    assert_eq!(parked.instance_id.as_deref(), Some(id.as_str()));

    // Requeued, it is processed like any message.
    h.backend.delete(&received[0].receipt).await.unwrap();
    h.runtime.requeue_poison(&parked.id).await.unwrap();
    h.drive(20).await;
    let summary = h.completed(&id).await;
    assert_eq!(summary.poison_messages, 0);
    assert_no_duplicates(&h.history(&id).await);

    // A last delivery that goes through takes its record back.
    let again = h
        .runtime
        .deliver(Delivery {
            queue,
            text: &text,
            queue_message_id: None,
            attempt: max,
        })
        .await
        .unwrap();
    assert!(matches!(again, Delivered::Processed(_)), "{again:?}");
    let parked = h.runtime.poison_messages(&PoisonQuery::default()).await;
    assert!(parked.unwrap().items.is_empty());
}

#[tokio::test]
async fn redelivered_messages_write_nothing_twice() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("HelloSequence", Some("dup-1"), &())
        .await
        .unwrap();
    // Deliver every message twice by re-sending each one the pump receives.
    for _ in 0..20 {
        let mut any = false;
        for queue in h.backend.queues() {
            for received in h
                .backend
                .receive(queue, 32, std::time::Duration::ZERO)
                .await
                .unwrap()
            {
                any = true;
                h.runtime.process(&received.message).await.unwrap();
                h.runtime.process(&received.message).await.unwrap();
                h.backend.delete(&received.receipt).await.unwrap();
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(h.summary(&id).await.status, OrchestrationStatus::Completed);
    assert_no_duplicates(&h.history(&id).await);
}

#[tokio::test]
async fn client_operations_validate_their_input() {
    let h = Harness::new().await;
    let error = h.runtime.start("Nope", None, &()).await.unwrap_err();
    assert!(
        error.to_string().contains("no orchestrator named 'Nope'"),
        "{error}"
    );
    let error = h
        .runtime
        .start("HelloSequence", Some("bad/id"), &())
        .await
        .unwrap_err();
    assert!(error.to_string().contains('/'), "{error}");
    let error = h
        .runtime
        .raise_event("missing", "Go", &())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no instance 'missing'"),
        "{error}"
    );

    let id = h
        .runtime
        .start("HelloSequence", Some("once"), &())
        .await
        .unwrap();
    let error = h
        .runtime
        .start("HelloSequence", Some(&id), &())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    h.drive(10).await;
    let error = h.runtime.terminate(&id, "late").await.unwrap_err();
    assert!(error.to_string().contains("already ended"), "{error}");
}

async fn harness(queued: bool) -> Harness {
    if queued {
        Harness::queued().await
    } else {
        Harness::new().await
    }
}

/// Runs `Mixed` with one fault injected at `call` (counted from after the start), then checks
/// the invariant: completed with the right output, no duplicate history, queues empty.
async fn run_with_fault(queued: bool, call: usize, mode: FaultMode) {
    let h = harness(queued).await;
    let id = h.runtime.start("Mixed", Some("faulty"), &3).await.unwrap();
    h.runtime.raise_event(&id, "Go", "go").await.unwrap();
    h.backend.fail_call(call, mode);
    h.drive(30).await;
    let summary = h.summary(&id).await;
    assert_eq!(
        summary.status,
        OrchestrationStatus::Completed,
        "fault at call {call} ({mode:?}): {summary:?}"
    );
    assert_eq!(
        summary.output.as_deref(),
        Some("\"3 greetings, go, child said 5\""),
        "fault at call {call} ({mode:?})"
    );
    h.assert_settled(&id, &format!("fault at call {call} ({mode:?})"))
        .await;
}

/// A client start that fails at any storage call of its own or of its processing, and is
/// retried when the caller saw the failure, as a caller retries a failed HTTP request, leaves
/// one instance that completes and no duplicate history: a queued start, and a start processed
/// here at once (the eager path), which is queued only if its processing fails and otherwise
/// re-sent by the sweep.
#[tokio::test]
async fn a_fault_during_a_client_start_then_a_retry_leaves_one_completed_instance() {
    for delivery in [StartDelivery::Queue, StartDelivery::Here] {
        let start = |h: &Harness| {
            let runtime = h.runtime.clone();
            async move {
                let started = runtime
                    .start_message(
                        "HelloSequence",
                        Some("started"),
                        "null".to_string(),
                        &StartOptions::default(),
                        delivery,
                    )
                    .await?;
                if delivery == StartDelivery::Here {
                    // The worker processes it in the background: its caller sees no failure.
                    let _ = runtime.process_started(&started).await;
                }
                Ok::<_, RuntimeError>(())
            }
        };
        let clean = Harness::new().await;
        let before = clean.backend.calls();
        start(&clean).await.unwrap();
        let start_calls = clean.backend.calls() - before;
        for call in 1..=start_calls {
            for mode in [FaultMode::Before, FaultMode::After] {
                let context = format!("{delivery:?}: fault at call {call} ({mode:?})");
                let h = Harness::new().await;
                h.backend.fail_call(call, mode);
                if start(&h).await.is_err() {
                    match start(&h).await {
                        // The failed attempt may have got far enough to create it.
                        Ok(_) | Err(RuntimeError::AlreadyExists { .. }) => {}
                        Err(error) => panic!("{context}: retry failed: {error}"),
                    }
                }
                h.drive_with_sweeps(10).await;
                let summary = h.summary("started").await;
                assert_eq!(
                    summary.status,
                    OrchestrationStatus::Completed,
                    "{context}: {summary:?}"
                );
                assert_eq!(starts(&h, "started").await, 1, "{context}");
                h.assert_settled("started", &context).await;
            }
        }
    }
}

/// How many executions the instance's current history starts (one, unless it was started over).
async fn starts(h: &Harness, instance_id: &str) -> usize {
    h.history(instance_id)
        .await
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))
        .count()
}

/// A start processed here whose worker dies before its first commit: nothing was queued, and
/// the sweep re-sends it from its Pending summary once the grace has passed, not before.
#[tokio::test]
async fn a_start_lost_with_its_worker_is_re_sent_by_the_sweep_after_the_grace() {
    let h = Harness::new().await;
    let started = h
        .runtime
        .start_message(
            "HelloSequence",
            Some("lost"),
            "null".to_string(),
            &StartOptions::default(),
            StartDelivery::Here,
        )
        .await
        .unwrap();
    h.drive(10).await;
    assert_eq!(h.summary("lost").await.status, OrchestrationStatus::Pending);
    let early = h.runtime.sweep_unstarted(UNSTARTED_GRACE).await.unwrap();
    assert_eq!(
        early, 0,
        "a start younger than the grace is left to its worker"
    );

    h.drive_with_sweeps(10).await;
    let summary = h.completed("lost").await;
    let EventKind::ExecutionStarted {
        orchestration_instance,
        ..
    } = &started.message.event.kind
    else {
        panic!("not a start: {:?}", started.message);
    };
    assert_eq!(summary.execution_id, orchestration_instance.execution_id);
    assert_eq!(starts(&h, "lost").await, 1);
    h.assert_settled("lost", "swept start").await;
}

/// A start whose turn committed but whose summary write failed leaves the summary Pending: the
/// start it then queues (or the sweep's) is a duplicate, never a second run, and its
/// processing repairs the summary.
#[tokio::test]
async fn a_start_re_sent_after_its_commit_repairs_the_summary_and_runs_nothing_again() {
    async fn start(h: &Harness) -> Result<durable_runtime::Queued, RuntimeError> {
        let id = Some("ran");
        let delivery = StartDelivery::Here;
        (h.runtime)
            .start_message(
                "HelloSequence",
                id,
                "null".to_string(),
                &StartOptions::default(),
                delivery,
            )
            .await
    }
    let clean = Harness::new().await;
    let started = start(&clean).await.unwrap();
    let before = clean.backend.calls();
    clean.runtime.process_started(&started).await.unwrap();
    // The last call of the turn is its summary write.
    let summary_write = clean.backend.calls() - before;

    let h = Harness::new().await;
    let started = start(&h).await.unwrap();
    h.backend.fail_call(summary_write, FaultMode::Before);
    assert!(h.runtime.process_started(&started).await.is_err());
    let pending = h.summary("ran").await;
    assert_eq!(pending.status, OrchestrationStatus::Pending);
    assert!(pending.client_start_id.is_some());
    assert_eq!(
        h.history("ran").await.len(),
        clean.history("ran").await.len()
    );

    h.drive_with_sweeps(10).await;
    let summary = h.completed("ran").await;
    assert_eq!(summary.client_start_id, None);
    assert_eq!(starts(&h, "ran").await, 1);
    assert_eq!(
        h.history("ran").await.len(),
        clean.history("ran").await.len()
    );
    h.assert_settled("ran", "repaired summary").await;
}

/// Two starts of one new id before either is processed: the second is refused and queues
/// nothing, so the instance runs once, as the first start's execution.
#[tokio::test]
async fn a_second_start_of_a_new_id_is_refused_and_queues_nothing() {
    let h = Harness::new().await;
    let first = h
        .runtime
        .start_message(
            "HelloSequence",
            Some("twice"),
            "null".to_string(),
            &StartOptions::default(),
            StartDelivery::Here,
        )
        .await
        .unwrap();
    let second = h
        .runtime
        .start_message(
            "HelloSequence",
            Some("twice"),
            "null".to_string(),
            &StartOptions::default(),
            StartDelivery::Here,
        )
        .await;
    assert!(
        matches!(
            second,
            Err(RuntimeError::AlreadyExists {
                status: OrchestrationStatus::Pending,
                ..
            })
        ),
        "{second:?}"
    );
    for queue in h.backend.queues() {
        assert!(h.backend.inner().queued(queue).is_empty(), "{queue:?}");
    }
    h.runtime.process_started(&first).await.unwrap();
    h.drive(10).await;
    let summary = h.completed("twice").await;
    let EventKind::ExecutionStarted {
        orchestration_instance,
        ..
    } = &first.message.event.kind
    else {
        panic!("not a start: {:?}", first.message);
    };
    assert_eq!(summary.execution_id, orchestration_instance.execution_id);
    assert_eq!(starts(&h, "twice").await, 1);
    h.assert_settled("twice", "second start refused").await;
}

#[tokio::test]
async fn a_fault_during_a_terminate_then_a_retry_terminates_the_instance() {
    for call in 1..=2 {
        for mode in [FaultMode::Before, FaultMode::After] {
            let h = Harness::new().await;
            let id = h.runtime.start("Mixed", Some("stopped"), &2).await.unwrap();
            h.drive(1).await;
            h.backend.fail_call(call, mode);
            if h.runtime.terminate(&id, "stop").await.is_err() {
                h.runtime.terminate(&id, "stop").await.unwrap();
            }
            h.drive(10).await;
            let summary = h.summary(&id).await;
            assert_eq!(
                summary.status,
                OrchestrationStatus::Terminated,
                "fault at call {call} ({mode:?}): {summary:?}"
            );
            assert_eq!(summary.output.as_deref(), Some("\"stop\""));
            assert_no_duplicates(&h.history(&id).await);
        }
    }
}

/// Counts the storage calls of a clean run, then injects a fault at each of them in turn.
async fn fault_at_every_call(queued: bool) {
    let clean = harness(queued).await;
    let id = clean
        .runtime
        .start("Mixed", Some("faulty"), &3)
        .await
        .unwrap();
    clean.runtime.raise_event(&id, "Go", "go").await.unwrap();
    let before = clean.backend.calls();
    clean.drive(30).await;
    let total = clean.backend.calls() - before;
    assert!(
        total > 20,
        "the scenario exercises many storage calls ({total})"
    );
    // The cache mode comes from the environment; the suite exercises whichever it is.
    let cache_on = clean.runtime.options().instance_cache.max_instances > 0;
    assert_eq!(clean.runtime.cached_instances() > 0, cache_on);
    for call in 1..=total {
        for mode in [FaultMode::Before, FaultMode::After] {
            run_with_fault(queued, call, mode).await;
        }
    }
}

#[tokio::test]
async fn a_fault_at_any_storage_call_loses_nothing_and_duplicates_nothing() {
    fault_at_every_call(false).await;
}

#[tokio::test]
async fn with_queued_activities_a_fault_at_any_storage_call_loses_nothing() {
    fault_at_every_call(true).await;
}

/// Storage requests of one orchestration as Azure would serve them, the pump's receives and
/// deletes included (they stand for the Functions host's dequeue and delete of each trigger
/// message).
async fn operations_for(queued: bool, name: &str) -> usize {
    let h = harness(queued).await;
    let id = h.runtime.start(name, Some("counted"), &()).await.unwrap();
    h.drive(30).await;
    assert_eq!(h.summary(&id).await.status, OrchestrationStatus::Completed);
    let counts = h.backend.counts();
    let count = |operation: &str| counts.get(operation).copied().unwrap_or(0);
    // A queue put costs one operation per message however the runtime batches its sends, and
    // the host receives each trigger message once; the empty receives that end each pump round
    // are idle polling, which the real host spaces out, not work.
    let messages = count("send (messages)");
    // On Azure a summary write reads the row first (it only replaces an older revision) unless
    // the process just read or wrote that row: counted as two requests, the worst case.
    count("load")
        + count("read_state")
        + count("commit")
        + count("read_summary")
        + count("create_summary")
        + 2 * count("write_summary")
        + messages // puts
        + messages // receives
        + count("delete")
        + count("abandon")
}

#[tokio::test]
async fn storage_operations_per_activity_are_counted() {
    let inline = operations_for(false, "HelloSequence").await;
    let queued = operations_for(true, "HelloSequence").await;
    println!("storage_ops_hello_sequence5_inline={inline}");
    println!("storage_ops_hello_sequence5_queued={queued}");
    println!("storage_ops_per_activity_inline={:.1}", inline as f64 / 5.0);
    println!("storage_ops_per_activity_queued={:.1}", queued as f64 / 5.0);
    assert!(
        inline * 3 <= queued,
        "running activities in the turn saves most round-trips: {inline} vs {queued}"
    );
    assert!(
        inline <= 25,
        "at most 5 storage operations per activity round-trip: {inline} for 5 activities"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pumps_on_one_task_hub_complete_every_instance() {
    three_pumps(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pumps_with_queued_activities_complete_every_instance() {
    three_pumps(true).await;
}

async fn three_pumps(queued: bool) {
    let h = harness(queued).await;
    let mut ids = Vec::new();
    for i in 0..150 {
        let id = format!("many-{i}");
        h.runtime
            .start("Mixed", Some(&id), &(i % 7 + 1))
            .await
            .unwrap();
        h.runtime.raise_event(&id, "Go", "go").await.unwrap();
        ids.push(id);
    }
    let mut pumps = Vec::new();
    for _ in 0..3 {
        let runtime = h.runtime.clone();
        pumps.push(tokio::spawn(async move {
            let pump = durable_runtime::Pump::new(
                runtime,
                std::time::Duration::from_secs(300),
                std::time::Duration::ZERO,
            );
            pump.run_until_idle(1_000_000).await
        }));
    }
    for pump in pumps {
        pump.await.unwrap();
    }
    h.drive(30).await;
    for (i, id) in ids.iter().enumerate() {
        let summary = h.summary(id).await;
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{id}: {summary:?}"
        );
        let expected = format!("\"{} greetings, go, child said 5\"", i % 7 + 1);
        assert_eq!(summary.output.as_deref(), Some(expected.as_str()));
        assert_no_duplicates(&h.history(id).await);
    }
    assert!(h.backend.inner().queued(QueueKind::WorkItems).is_empty());
}
