//! The checkpoint interval: a turn that has run activities in-process for that long commits, and
//! what it schedules next goes to the work-item queue, so a crash after that commit re-runs only
//! the activities after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_runtime::RuntimeOptions;

use crate::harness::{FaultMode, Harness};
use crate::slow_chain::{chain_registry, StepRuns, STEP_TIME};

const STEPS: usize = 6;
/// With steps of two seconds, those started at 0, 2 and 4 seconds run in the first turn; the
/// fourth, at 6, goes to the work-item queue.
const INTERVAL: Duration = Duration::from_secs(5);
/// The steps of the first turn, committed at its checkpoint.
const BEFORE_CHECKPOINT: usize = 3;

/// A run of `Chain`: how many times each step ran, the storage calls after the start (where a
/// fault is counted from), and the turns committed.
struct Run {
    runs: Vec<usize>,
    operations: Vec<&'static str>,
    turns: u64,
}

impl Run {
    /// The number [`Harness::fail_call`] gives the first commit: the checkpoint's.
    fn first_commit(&self) -> usize {
        self.operations
            .iter()
            .position(|op| *op == "commit")
            .unwrap()
            + 1
    }
}

/// Runs `Chain` with a fault at `call` (counted from after the start).
async fn chain(fault: Option<(usize, FaultMode)>) -> Run {
    // The cache mode comes from the environment; the interval is what this file tests.
    let options = RuntimeOptions {
        checkpoint_interval: INTERVAL,
        ..RuntimeOptions::default().with_env().unwrap()
    };
    let runs: StepRuns = Arc::new(Mutex::new(vec![0; STEPS]));
    let for_registry = runs.clone();
    let h = Harness::build(options, move |clock| chain_registry(clock, for_registry)).await;
    h.runtime
        .start("Chain", Some("chain"), &STEPS)
        .await
        .unwrap();
    let from = h.backend.calls();
    if let Some((call, mode)) = fault {
        h.backend.fail_call(call, mode);
    }
    h.drive(30).await;
    let summary = h.completed("chain").await;
    assert_eq!(
        summary.output.as_deref(),
        Some("[0,1,2,3,4,5]"),
        "{fault:?}"
    );
    h.assert_settled("chain", &format!("{fault:?}")).await;
    let runs = runs.lock().unwrap().clone();
    Run {
        runs,
        operations: h.backend.operations_since(from),
        turns: h.runtime.turns_executed(),
    }
}

#[tokio::test]
async fn a_long_turn_commits_at_the_checkpoint_and_queues_what_comes_next() {
    let within = STEP_TIME * (BEFORE_CHECKPOINT as u32 - 1);
    assert!(within < INTERVAL && INTERVAL <= STEP_TIME * BEFORE_CHECKPOINT as u32);
    let clean = chain(None).await;
    assert_eq!(clean.runs, [1; STEPS]);
    assert_eq!(
        clean.turns, 2,
        "steps 1-3 in the start's turn; step 4 from the queue, then 5-6 in its result's turn"
    );
}

#[tokio::test]
async fn a_crash_right_after_the_checkpoint_commit_reruns_only_the_later_activities() {
    let commit = chain(None).await.first_commit();
    // The commit landed but its process died before learning so; or it died right after.
    for (call, mode) in [(commit, FaultMode::After), (commit + 1, FaultMode::Before)] {
        let runs = chain(Some((call, mode))).await.runs;
        assert_eq!(
            runs[..BEFORE_CHECKPOINT],
            [1; BEFORE_CHECKPOINT],
            "{call} {mode:?}: committed, so never run again"
        );
        assert!(
            runs[BEFORE_CHECKPOINT..].iter().all(|&n| n >= 1),
            "{call} {mode:?}: {runs:?}"
        );
    }
}

/// A fault before the checkpoint commit is made re-runs the steps before it, once; a fault
/// anywhere else re-runs none of them; a later step runs once or twice.
#[tokio::test]
async fn a_fault_at_any_storage_call_of_a_long_turn_reruns_at_most_one_stretch() {
    let clean = chain(None).await;
    let commit = clean.first_commit();
    for call in 1..=clean.operations.len() {
        for mode in [FaultMode::Before, FaultMode::After] {
            let runs = chain(Some((call, mode))).await.runs;
            let before = if call == commit && mode == FaultMode::Before {
                2
            } else {
                1
            };
            assert_eq!(
                runs[..BEFORE_CHECKPOINT],
                [before; BEFORE_CHECKPOINT],
                "fault at call {call} ({mode:?})"
            );
            assert!(
                runs[BEFORE_CHECKPOINT..]
                    .iter()
                    .all(|&n| (1..=2).contains(&n)),
                "fault at call {call} ({mode:?}): {runs:?}"
            );
        }
    }
}
