//! Redeliveries and races the queues can produce: a message processed again after its instance
//! continued as new, restarted or finished, messages that overtake their instance's start, and
//! long timers nobody waits for any more.

use std::time::Duration;

use durable_engine::{EventKind, OrchestrationStatus};
use durable_store::backend::Backend;
use durable_store::model::{Destination, Message};

use crate::harness::{assert_no_duplicates, Harness};

/// Receives, processes and deletes every visible message once; returns what it processed.
async fn step(h: &Harness) -> Vec<Message> {
    let mut processed = Vec::new();
    for queue in h.backend.queues() {
        for received in h
            .backend
            .receive(queue, 32, Duration::from_secs(300))
            .await
            .unwrap()
        {
            h.runtime.process(&received.message).await.unwrap();
            h.backend.delete(&received.receipt).await.unwrap();
            processed.push(received.message);
        }
    }
    processed
}

async fn drain(h: &Harness) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let processed = step(h).await;
        if processed.is_empty() {
            return all;
        }
        all.extend(processed);
    }
}

fn is_start(message: &Message) -> bool {
    matches!(message.event.kind, EventKind::ExecutionStarted { .. })
}

/// Processes and deletes the messages visible on `instance_id`'s queue except its start, which
/// stays queued: what is processed overtakes the start.
async fn process_all_but_the_start(h: &Harness, instance_id: &str) {
    let queue = h.backend.queue_for(&Destination::Instance {
        instance_id: instance_id.to_string(),
        execution_id: None,
    });
    let received = h.backend.receive(queue, 32, Duration::ZERO).await.unwrap();
    for r in received.iter().filter(|r| !is_start(&r.message)) {
        h.runtime.process(&r.message).await.unwrap();
        h.backend.delete(&r.receipt).await.unwrap();
    }
}

#[tokio::test]
async fn an_event_redelivered_after_continue_as_new_is_not_applied_again() {
    let h = Harness::new().await;
    h.runtime
        .start("Accumulate", Some("acc"), &0u32)
        .await
        .unwrap();
    drain(&h).await;
    h.runtime.raise_event("acc", "Add", &60u32).await.unwrap();
    let add = drain(&h).await.into_iter().find(|m| !is_start(m)).unwrap();

    h.runtime.process(&add).await.unwrap();

    let summary = h.summary("acc").await;
    assert_eq!(
        summary.status,
        OrchestrationStatus::Running,
        "one Add of 60 is not 100"
    );
}

#[tokio::test]
async fn a_start_redelivered_after_continue_as_new_does_not_restart_the_instance() {
    let h = Harness::queued().await;
    h.runtime.start("Counter", Some("c"), &0u32).await.unwrap();
    let start = drain(&h).await.into_iter().find(is_start).unwrap();
    let finished = h.summary("c").await;
    assert_eq!(finished.status, OrchestrationStatus::Completed);

    h.runtime.process(&start).await.unwrap();
    drain(&h).await;

    assert_eq!(h.summary("c").await, finished);
}

#[tokio::test]
async fn a_child_start_redelivered_after_the_child_continued_as_new_does_not_fail_the_parent() {
    let h = Harness::queued().await;
    h.runtime
        .start("CounterParent", Some("p"), &())
        .await
        .unwrap();
    let mut child_start = None;
    for _ in 0..20 {
        for message in step(&h).await {
            if is_start(&message) && message.destination.instance_id() == "the-child" {
                child_start = Some(message);
            }
        }
        let moved_on = match (
            &child_start,
            h.backend.inner().load("the-child").await.unwrap(),
        ) {
            (Some(start), Some(child)) => match &start.event.kind {
                EventKind::ExecutionStarted {
                    orchestration_instance,
                    ..
                } => {
                    child.state.execution_id != orchestration_instance.execution_id
                        && !child.state.status.is_terminal()
                }
                _ => false,
            },
            _ => false,
        };
        if moved_on {
            break;
        }
    }

    h.runtime.process(&child_start.unwrap()).await.unwrap();
    drain(&h).await;

    h.completed("p").await;
}

#[tokio::test]
async fn an_event_sent_to_a_child_started_in_the_same_turn_reaches_it() {
    // Wherever the event lands relative to the child's start, the child hears it once.
    for shuffle in [false, true] {
        let h = Harness::new().await;
        h.runtime
            .start("WakeChild", Some("parent"), &())
            .await
            .unwrap();
        if shuffle {
            // Process the parent's turn, then hand the child its event before its start.
            step(&h).await;
            process_all_but_the_start(&h, "kid").await;
        }
        h.drive(100).await;
        let parent = h.completed("parent").await;
        assert_eq!(parent.output.as_deref(), Some("\"hello, kid\""));
        assert_no_duplicates(&h.history("kid").await);
    }
}

#[tokio::test]
async fn an_event_raised_right_after_restarting_an_ended_id_is_not_lost() {
    let h = Harness::new().await;
    h.runtime.start("Sleeper", Some("s"), &()).await.unwrap();
    drain(&h).await;
    h.runtime.raise_event("s", "Wake", "one").await.unwrap();
    drain(&h).await;
    assert_eq!(h.summary("s").await.status, OrchestrationStatus::Completed);

    h.runtime.start("Sleeper", Some("s"), &()).await.unwrap();
    h.runtime.raise_event("s", "Wake", "two").await.unwrap();
    // The event overtakes the new start.
    process_all_but_the_start(&h, "s").await;
    h.drive(100).await;

    let summary = h.completed("s").await;
    assert_eq!(summary.output.as_deref(), Some("\"two\""));
}

#[tokio::test]
async fn a_child_id_no_store_can_hold_fails_the_parents_task() {
    let h = Harness::new().await;
    h.runtime.start("BadChild", Some("b"), &()).await.unwrap();
    h.drive(10).await;
    let summary = h.summary("b").await;
    assert_eq!(summary.status, OrchestrationStatus::Completed);
    let message: String = serde_json::from_str(summary.output.as_deref().unwrap()).unwrap();
    assert!(message.contains("cannot address instance"), "{message}");
    assert_eq!(
        h.backend.inner().instance_count(),
        1,
        "no child was created"
    );
}

#[tokio::test]
async fn a_long_timer_of_a_terminated_instance_stops_hopping() {
    let h = Harness::new().await;
    h.runtime.start("LongNap", Some("nap"), &()).await.unwrap();
    h.drive(1).await;
    h.runtime.terminate("nap", "no more naps").await.unwrap();
    h.drive(10).await;
    assert_eq!(
        h.summary("nap").await.status,
        OrchestrationStatus::Terminated
    );
    for queue in h.backend.queues() {
        assert!(
            h.backend.inner().queued(queue).is_empty(),
            "the timer was not re-armed"
        );
    }
}
