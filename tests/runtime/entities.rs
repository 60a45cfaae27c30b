//! Entities through the queues: operations from clients and orchestrations applied once each
//! and in each sender's order, calls answered, critical sections, and all of it exactly once
//! with a fault before or after any storage call.

use std::time::Duration;

use durable_engine::{EntityId, OrchestrationStatus};
use durable_runtime::EntityStatus;
use durable_store::backend::Backend;
use durable_store::model::InstanceQuery;

use crate::harness::{FaultMode, Harness};

fn tally(key: &str) -> EntityId {
    EntityId::new("Tally", key).unwrap()
}

/// The amounts the tally took, in the order it applied them.
async fn added(h: &Harness, key: &str) -> Vec<i64> {
    let status: EntityStatus = h
        .runtime
        .entity(&tally(key))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("tally '{key}' has state"));
    serde_json::from_str(&status.state).unwrap()
}

/// A client's signal and an orchestration's signals, call and critical section.
async fn scenario(h: &Harness) -> String {
    let id = h
        .runtime
        .start("TallyWork", Some("work"), &())
        .await
        .unwrap();
    h.runtime
        .signal_entity(&tally("c"), "add", Some("100".to_string()), None)
        .await
        .unwrap();
    id
}

/// What every run of the scenario must come to, whatever failed on the way.
async fn assert_outcome(h: &Harness, id: &str, context: &str) {
    let summary = h.summary(id).await;
    assert_eq!(
        summary.status,
        OrchestrationStatus::Completed,
        "{context}: {summary:?}"
    );
    let output: String = serde_json::from_str(summary.output.as_deref().unwrap()).unwrap();
    assert!(
        output == "3 10" || output == "103 10",
        "{context}: the call reads the tally after both signals: {output}"
    );
    let mut c = added(h, "c").await;
    let client_first = c.first() == Some(&100);
    c.retain(|amount| *amount != 100);
    assert_eq!(
        c,
        [1, 2],
        "{context}: the orchestration's signals once each, in order"
    );
    assert_eq!(
        added(h, "c").await.len(),
        3,
        "{context}: the client's signal once"
    );
    assert!(client_first || output == "3 10", "{context}");
    assert_eq!(added(h, "d").await, [10], "{context}");
    // Also: no message left on any queue.
    h.assert_settled(id, context).await;
    for entity in [tally("c"), tally("d")] {
        let loaded = h.backend.inner().load(&entity.instance_id()).await.unwrap();
        let state = loaded.expect("the entity is stored").state;
        assert!(
            state.outbox.is_empty(),
            "{context}: {entity} left {:?}",
            state.outbox
        );
    }
    let status = h.runtime.entity(&tally("c")).await.unwrap().unwrap();
    assert_eq!(
        status.lock_owner, None,
        "{context}: the critical section released it"
    );
    assert_eq!(status.waiting, 0, "{context}");
}

#[tokio::test]
async fn clients_and_orchestrations_signal_call_and_lock_entities() {
    let h = Harness::new().await;
    let id = scenario(&h).await;
    h.drive(30).await;
    assert_outcome(&h, &id, "no fault").await;
    // Entities are instances `@name@key`, listed by instance queries like any other.
    let page = h
        .backend
        .query(&InstanceQuery {
            instance_id_prefix: Some("@tally@".to_string()),
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|s| s.instance_id.as_str()).collect();
    assert_eq!(ids, ["@tally@c", "@tally@d"]);
    assert_eq!(page.items[1].input.as_deref(), Some("[10]"));
    let stuck = h.runtime.stuck(Duration::ZERO, 100).await.unwrap();
    assert!(stuck.is_empty(), "an idle entity is not stuck: {stuck:?}");
    let listed = h.runtime.entities("tally", 10, None).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(
        listed.items[0].operations, 4,
        "three adds and a get; locks are no operations"
    );
}

#[tokio::test]
async fn an_orchestration_that_fails_or_is_terminated_holding_entities_lets_go_of_them() {
    let h = Harness::new().await;
    let failing = h
        .runtime
        .start("TallyLockedEnd", Some("failing"), &(["e", "f"], "fail"))
        .await
        .unwrap();
    let waiting = h
        .runtime
        .start("TallyLockedEnd", Some("waiting"), &(["g"], "wait"))
        .await
        .unwrap();
    h.drive(30).await;
    assert_eq!(
        h.summary(&failing).await.status,
        OrchestrationStatus::Failed
    );
    assert_eq!(
        h.runtime
            .entity(&tally("g"))
            .await
            .unwrap()
            .unwrap()
            .lock_owner
            .as_deref(),
        Some(waiting.as_str())
    );
    h.runtime.terminate(&waiting, "stop").await.unwrap();
    h.drive(30).await;
    for key in ["e", "f", "g"] {
        h.runtime
            .signal_entity(&tally(key), "add", Some("7".to_string()), None)
            .await
            .unwrap();
    }
    h.drive(30).await;
    assert_eq!(
        h.summary(&waiting).await.status,
        OrchestrationStatus::Terminated
    );
    assert_eq!(added(&h, "e").await, [5, 7], "e was let go of");
    assert_eq!(added(&h, "f").await, [7], "f was let go of");
    assert_eq!(added(&h, "g").await, [5, 7], "g was let go of");
    for key in ["e", "f", "g"] {
        let status = h.runtime.entity(&tally(key)).await.unwrap().unwrap();
        assert_eq!((status.lock_owner, status.waiting), (None, 0), "{key}");
    }
}

#[tokio::test]
async fn a_fault_at_any_storage_call_applies_every_entity_operation_exactly_once() {
    let clean = Harness::new().await;
    scenario(&clean).await;
    let before = clean.backend.calls();
    clean.drive(30).await;
    let total = clean.backend.calls() - before;
    assert!(
        total > 20,
        "the scenario exercises many storage calls ({total})"
    );
    for call in 1..=total {
        for mode in [FaultMode::Before, FaultMode::After] {
            let context = format!("fault at call {call} ({mode:?})");
            let h = Harness::new().await;
            let id = scenario(&h).await;
            h.backend.fail_call(call, mode);
            h.drive(30).await;
            assert_outcome(&h, &id, &context).await;
        }
    }
}

#[tokio::test]
async fn a_signal_redelivered_to_another_process_is_applied_once() {
    let h = Harness::new().await;
    let queued = h
        .runtime
        .signal_entity(&tally("r"), "add", Some("5".to_string()), None)
        .await
        .unwrap();
    h.drive(5).await;
    let other = h.another_process();
    other.process(&queued.message).await.unwrap();
    h.runtime.process(&queued.message).await.unwrap();
    assert_eq!(added(&h, "r").await, [5]);
}

#[tokio::test]
async fn a_failed_operation_leaves_the_state_and_deleted_state_reads_as_no_entity() {
    let h = Harness::new().await;
    for (operation, input) in [("add", Some("4")), ("fail", None), ("bogus", None)] {
        h.runtime
            .signal_entity(&tally("f"), operation, input.map(str::to_string), None)
            .await
            .unwrap();
    }
    h.drive(5).await;
    assert_eq!(added(&h, "f").await, [4]);
    h.runtime
        .signal_entity(&tally("f"), "delete", None, None)
        .await
        .unwrap();
    h.drive(5).await;
    assert_eq!(h.runtime.entity(&tally("f")).await.unwrap(), None);
    assert!(h
        .runtime
        .entities("Tally", 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn bad_signals_are_refused_before_anything_is_queued() {
    let h = Harness::new().await;
    let unknown = EntityId::new("Nobody", "k").unwrap();
    let refused = [
        h.runtime.signal_entity(&unknown, "add", None, None).await,
        h.runtime.signal_entity(&tally("k"), " ", None, None).await,
        h.runtime
            .signal_entity(&tally("k"), "add", Some("not json".to_string()), None)
            .await,
        h.runtime
            .signal_entity(&tally("a/b"), "add", None, None)
            .await,
    ];
    for outcome in refused {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    for queue in h.backend.queues() {
        assert!(h.backend.inner().queued(queue).is_empty());
    }
}
