//! Batched turns: messages for one instance processed at the same time are applied in one turn
//! and one commit, copies among them once, and a fault at any storage call of such turns loses
//! and duplicates nothing.

use durable_engine::EventKind;
use durable_runtime::Disposition;
use futures::future::join_all;

use crate::harness::{FaultMode, Harness};

const PARTS: u32 = 4;
const GATHERED: &str = "\"10 from 4 parts, 4 greetings\"";

async fn harness(queued: bool) -> Harness {
    if queued {
        Harness::queued().await
    } else {
        Harness::new().await
    }
}

/// Starts `Gather` and raises all its parts before anything is processed, so the start and the
/// parts arrive in one receive.
async fn start_gather(h: &Harness) -> String {
    let id = h
        .runtime
        .start("Gather", Some("gather"), &PARTS)
        .await
        .unwrap();
    for part in 1..=PARTS {
        h.runtime.raise_event(&id, "Part", &part).await.unwrap();
    }
    id
}

/// Turns `Gather` takes when every message has a turn of its own: the start, each part, and
/// with queued activities each greeting's result.
fn unbatched_turns(queued: bool) -> u64 {
    let parts = u64::from(PARTS);
    if queued {
        1 + parts + 2 * parts
    } else {
        1 + parts
    }
}

async fn run_with_fault(queued: bool, call: usize, mode: FaultMode) {
    let h = harness(queued).await;
    let id = start_gather(&h).await;
    h.backend.fail_call(call, mode);
    h.drive_concurrently(30).await;
    let context = format!("fault at call {call} ({mode:?})");
    let summary = h.summary(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some(GATHERED),
        "{context}: {summary:?}"
    );
    h.assert_settled(&id, &context).await;
}

/// A fault before and after each storage call of a clean run.
async fn fault_at_every_call_of_batched_turns(queued: bool) {
    let clean = harness(queued).await;
    let id = start_gather(&clean).await;
    let before = clean.backend.calls();
    clean.drive_concurrently(30).await;
    let total = clean.backend.calls() - before;
    clean.completed(&id).await;
    for call in 1..=total {
        for mode in [FaultMode::Before, FaultMode::After] {
            run_with_fault(queued, call, mode).await;
        }
    }
}

/// The runs above test batched turns only if the clean run batches.
async fn gather_shares_turns(queued: bool) {
    let h = harness(queued).await;
    let id = start_gather(&h).await;
    h.drive_concurrently(30).await;
    let summary = h.completed(&id).await;
    assert_eq!(summary.output.as_deref(), Some(GATHERED));
    let turns = h.runtime.turns_executed();
    assert!(
        turns < unbatched_turns(queued),
        "messages that arrived together shared turns: {turns} turns"
    );
}

#[tokio::test]
async fn parts_that_arrive_together_share_turns() {
    gather_shares_turns(false).await;
}

#[tokio::test]
async fn with_queued_activities_parts_and_results_that_arrive_together_share_turns() {
    gather_shares_turns(true).await;
}

#[tokio::test]
async fn a_fault_at_any_storage_call_of_batched_turns_loses_and_duplicates_nothing() {
    fault_at_every_call_of_batched_turns(false).await;
}

#[tokio::test]
async fn with_queued_activities_a_fault_at_any_call_of_batched_turns_loses_nothing() {
    fault_at_every_call_of_batched_turns(true).await;
}

#[tokio::test]
async fn results_of_a_fan_out_that_arrive_together_share_turns() {
    const N: u64 = 8;
    let h = Harness::queued().await;
    let id = h
        .runtime
        .start("GreetMany", Some("many"), &N)
        .await
        .unwrap();
    h.drive_concurrently(10).await;
    let summary = h.completed(&id).await;
    assert_eq!(summary.output.as_deref(), Some("8"));
    let result_turns = h.runtime.turns_executed() - 1;
    assert!(
        result_turns < N,
        "{N} results in {result_turns} turns after the start's"
    );
    let history = h.history(&id).await;
    let completions = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .count();
    assert_eq!(completions as u64, N, "each result once");
    h.assert_settled(&id, "fan-out").await;
}

#[tokio::test]
async fn copies_of_a_message_in_one_batch_are_applied_once() {
    let h = Harness::new().await;
    let id = h
        .runtime
        .start("Gather", Some("copies"), &3u32)
        .await
        .unwrap();
    h.drive(10).await;
    let mut parts = Vec::new();
    for part in 1..=3u32 {
        let queued = h
            .runtime
            .raise_event_message(&id, "Part", part.to_string(), None)
            .await
            .unwrap();
        parts.push(queued.message);
    }
    let turns = h.runtime.turns_executed();
    // The first part's turn waits on storage and on its greeting, which lets the others (a copy
    // of the last among them) reach the mailbox: they are the next turn's batch.
    let arrivals = [&parts[0], &parts[1], &parts[2], &parts[2]];
    let outcomes = join_all(arrivals.iter().map(|m| h.runtime.process(m))).await;
    let dispositions: Vec<Disposition> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        dispositions,
        [
            Disposition::Applied,
            Disposition::Applied,
            Disposition::Applied,
            Disposition::Dropped("duplicate message"),
        ]
    );
    assert_eq!(
        h.runtime.turns_executed() - turns,
        2,
        "the first part alone, then the other two in one turn"
    );
    // The queued originals of what was just processed turn out duplicates.
    h.drive(10).await;
    let summary = h.completed(&id).await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"6 from 3 parts, 3 greetings\"")
    );
    h.assert_settled(&id, "copies").await;
}
