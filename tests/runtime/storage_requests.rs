//! The storage requests each instance records, over the in-memory backend, which counts one
//! request per backend call: the count, call by call, of orchestrations whose turns and
//! activities are known, and how it grows with each turn.

use durable_runtime::RuntimeOptions;
use durable_store::backend::Backend;

use crate::harness::Harness;
use crate::workflows::registry;

/// Exactly these options, whatever the environment sets: the instance cache decides whether a
/// turn loads the instance.
async fn harness(inline_activities: bool) -> Harness {
    let options = RuntimeOptions {
        inline_activities,
        ..RuntimeOptions::default()
    };
    Harness::build(options, |_| registry()).await
}

/// What the instance's state records.
async fn recorded(h: &Harness, instance_id: &str) -> u64 {
    let loaded = h.backend.inner().load(instance_id).await.unwrap();
    loaded
        .expect("the instance has state")
        .state
        .storage_requests
}

#[tokio::test]
async fn a_sequence_records_each_request_of_its_turns() {
    // Five activities in the one turn of a queued start.
    let h = harness(true).await;
    let id = h
        .runtime
        .start("HelloSequence", Some("inline"), &())
        .await
        .unwrap();
    h.drive(10).await;
    // The client: summary create, start sent. The turn: load (nothing there yet), summary
    // create (there already), its commit.
    assert_eq!(recorded(&h, &id).await, 2 + 3);
    // The summary write after the commit counts itself too.
    assert_eq!(h.completed(&id).await.storage_requests, 2 + 3 + 1);

    // The same sequence with each activity on the work-item queue: six turns.
    let h = harness(false).await;
    let id = h
        .runtime
        .start("HelloSequence", Some("queued"), &())
        .await
        .unwrap();
    h.drive(10).await;
    let start = 2;
    // Load, summary create, commit, work item sent, outbox cleared, then its summary.
    let first_turn = 3 + 2 + 1;
    // Four activities whose turns (from the cache) commit, send the next work item and clear.
    let next_turns = 4 * 3;
    // The last turn only commits, then writes the Completed summary.
    let last_turn = 1;
    assert_eq!(
        recorded(&h, &id).await,
        start + first_turn + next_turns + last_turn
    );
    assert_eq!(
        h.completed(&id).await.storage_requests,
        start + first_turn + next_turns + last_turn + 1
    );
}

#[tokio::test]
async fn each_turn_adds_what_it_and_its_event_spent() {
    let h = harness(true).await;
    let id = h.runtime.start("Gather", Some("gather"), &2).await.unwrap();
    h.drive(10).await;
    // Start, load, summary create, commit; the Running summary write waits for the next commit.
    let mut expected = 2 + 3;
    assert_eq!(recorded(&h, &id).await, expected);
    let running = h.summary(&id).await.storage_requests;
    assert_eq!(running, expected + 1);

    for part in [1u32, 2] {
        h.runtime.raise_event(&id, "Part", &part).await.unwrap();
        h.drive(10).await;
        // The earlier summary write carried over, on the first part; the client's summary read
        // and send; a read of the state, as the cached copy runs activities in-process; the
        // commit.
        expected += u64::from(part == 1) + 2 + 1 + 1;
        assert_eq!(recorded(&h, &id).await, expected, "after part {part}");
    }
    // No summary was written for the turn that went on running; the last one's counts itself.
    let done = h.completed(&id).await;
    assert_eq!(
        done.output.as_deref(),
        Some("\"3 from 2 parts, 2 greetings\"")
    );
    assert_eq!(done.storage_requests, expected + 1);
    assert!(done.storage_requests > running);
}
