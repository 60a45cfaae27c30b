//! Foreign awaits raced against durable tasks are reported (scope.rs), while `futures`'
//! combinators and the engine's own, which only wrap durable tasks, keep working. The cases that
//! cannot be told apart are pinned here too, as ARCHITECTURE.md describes them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use super::{failure, json, started, turn};
use crate::{
    completions, join2, join_all, select2, select_first, FailureDetails, HistoryBuilder,
    HistoryEvent, OrchestrationContext, OrchestrationError, Registry, TaskError, TurnOutcome,
    FOREIGN_AWAIT_ERROR_TYPE,
};

const MINUTE: Duration = Duration::from_secs(60);

/// Never ready; keeps the waker it is polled with, as a tokio timer or a channel receiver does.
#[derive(Default)]
struct KeepsWaker {
    waker: Option<Waker>,
}

impl Future for KeepsWaker {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Never ready, and asks to be polled again at once every time.
struct WakesItself;

impl Future for WakesItself {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

type Boxed = Pin<Box<dyn Future<Output = ()>>>;

type Echoed = Pin<Box<dyn Future<Output = Result<String, TaskError>>>>;

/// The activity `Echo` of `name`, awaited inside a `FuturesUnordered`: its completion reaches
/// the engine combinator around it through the branch's waker, which the set keeps.
fn through_unordered(ctx: &OrchestrationContext, name: &str) -> Echoed {
    let mut set: FuturesUnordered<_> = std::iter::once(ctx.call_activity(name, "x")).collect();
    Box::pin(async move { set.next().await.expect("one task in the set") })
}

fn timer(ctx: &OrchestrationContext) -> crate::DurableFuture<()> {
    ctx.create_timer_after(MINUTE)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator(
            "Select2KeepsWaker",
            |ctx: OrchestrationContext, (): ()| async move {
                select2(timer(&ctx), KeepsWaker::default()).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "Select2Pending",
            |ctx: OrchestrationContext, (): ()| async move {
                select2(timer(&ctx), std::future::pending::<()>()).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "Join2KeepsWaker",
            |ctx: OrchestrationContext, (): ()| async move {
                join2(KeepsWaker::default(), timer(&ctx)).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "SelectFirstPending",
            |ctx: OrchestrationContext, (): ()| async move {
                let racers: Vec<Boxed> = vec![
                    Box::pin(timer(&ctx)),
                    Box::pin(std::future::pending::<()>()),
                ];
                select_first(racers).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "JoinAllWakesItself",
            |ctx: OrchestrationContext, (): ()| async move {
                let all: Vec<Boxed> = vec![Box::pin(timer(&ctx)), Box::pin(WakesItself)];
                join_all(all).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "FuturesSelectKeepsWaker",
            |ctx: OrchestrationContext, (): ()| async move {
                futures::select! {
                    () = timer(&ctx).fuse() => {}
                    () = KeepsWaker::default().fuse() => {}
                }
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "FuturesSelectPending",
            |ctx: OrchestrationContext, (): ()| async move {
                let winner = match futures::future::select(
                    timer(&ctx),
                    Box::pin(std::future::pending::<()>()),
                )
                .await
                {
                    futures::future::Either::Left(_) => "timer",
                    futures::future::Either::Right(_) => "pending",
                };
                Ok::<_, OrchestrationError>(winner)
            },
        )
        .orchestrator(
            "ContinueAsNewRace",
            |ctx: OrchestrationContext, (): ()| async move {
                select2(ctx.continue_as_new::<()>(&1), KeepsWaker::default()).await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "Unordered",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut tasks: FuturesUnordered<_> = ["a", "b", "c"]
                    .into_iter()
                    .map(|name| ctx.call_activity::<String>("Echo", name))
                    .collect();
                let mut finished = Vec::new();
                while let Some(result) = tasks.next().await {
                    finished.push(result?);
                }
                // The drained set is still alive, and still keeps the body's waker.
                timer(&ctx).await;
                drop(tasks);
                Ok::<_, OrchestrationError>(finished)
            },
        )
        .orchestrator(
            "UnorderedBesideKeepsWaker",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut racers: FuturesUnordered<Boxed> = FuturesUnordered::new();
                racers.push(Box::pin(timer(&ctx)));
                racers.push(Box::pin(KeepsWaker::default()));
                racers.next().await;
                Ok::<_, OrchestrationError>("first finished")
            },
        )
        .orchestrator(
            "UnorderedOfPlainFutures",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut sums: FuturesUnordered<_> = (1..=3).map(|n| async move { n * 2 }).collect();
                let mut total = 0;
                while let Some(doubled) = sums.next().await {
                    total += doubled;
                }
                timer(&ctx).await;
                drop(sums);
                Ok::<_, OrchestrationError>(total)
            },
        )
        .orchestrator(
            "FuturesSelectDurable",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut slow = ctx.create_timer_after(2 * MINUTE).fuse();
                let mut fast = ctx.create_timer_after(MINUTE).fuse();
                let winner = futures::select! {
                    () = slow => "slow",
                    () = fast => "fast",
                };
                let loser = if winner == "fast" { slow } else { fast };
                let (event, ()) = futures::join!(ctx.wait_for_external_event::<String>("E"), loser);
                Ok::<_, OrchestrationError>(format!("{winner} {}", event?))
            },
        )
        .orchestrator(
            "NestedEngineCombinators",
            |ctx: OrchestrationContext, (): ()| async move {
                let waits = ["E", "F"].map(|name| {
                    Box::pin(ctx.wait_for_external_event_with_timeout::<String>(name, MINUTE))
                });
                let results = join_all(waits).await;
                Ok::<_, OrchestrationError>(
                    results
                        .into_iter()
                        .map(|result| result.unwrap_or_else(|error| error.to_string()))
                        .collect::<Vec<_>>(),
                )
            },
        )
        .orchestrator(
            "UnorderedInCompletions",
            |ctx: OrchestrationContext, (): ()| async move {
                let branches: Vec<Echoed> = vec![
                    through_unordered(&ctx, "A"),
                    Box::pin(ctx.call_activity("B", "x")),
                    Box::pin(ctx.call_activity("C", "x")),
                ];
                let mut done = completions(branches);
                let mut finished = Vec::new();
                if let Some((_, first)) = done.next_completed().await {
                    finished.push(first?);
                }
                // A and B both complete while the code awaits the timer.
                timer(&ctx).await;
                while let Some((_, next)) = done.next_completed().await {
                    finished.push(next?);
                }
                Ok::<_, OrchestrationError>(finished)
            },
        )
        .orchestrator(
            "UnorderedInNestedJoinAll",
            |ctx: OrchestrationContext, (): ()| async move {
                let inner: Vec<Echoed> = vec![
                    through_unordered(&ctx, "A"),
                    Box::pin(ctx.call_activity("B", "x")),
                ];
                let outer = vec![join_all(inner)];
                let results = join_all(outer).await.concat();
                Ok::<_, OrchestrationError>(results.into_iter().collect::<Result<Vec<_>, _>>()?)
            },
        )
        .build()
        .expect("valid registry")
}

/// The whole history replays to a completion with `output`.
fn assert_completes(history: &[HistoryEvent], output: &(impl serde::Serialize + ?Sized)) {
    let turn = turn(&registry(), history, &[]);
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json(output)
        }
    );
}

fn first_turn(name: &str) -> crate::Turn {
    turn(&registry(), &[], &started(name).build())
}

fn assert_foreign(details: &FailureDetails, name: &str, place: &str, detail: &str) {
    assert_eq!(details.error_type, FOREIGN_AWAIT_ERROR_TYPE);
    let message = &details.error_message;
    for part in [&format!("'{name}'"), place, detail] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
}

#[test]
fn select2_of_a_timer_and_a_future_that_keeps_its_waker_is_a_foreign_await() {
    let turn = first_turn("Select2KeepsWaker");
    assert_foreign(
        failure(&turn),
        "Select2KeepsWaker",
        "branch #1 of select2",
        "keeps its waker without being a durable task",
    );
    assert!(turn.actions.is_empty(), "a failed turn dispatches nothing");
}

#[test]
fn select2_of_a_timer_and_std_pending_is_a_foreign_await() {
    assert_foreign(
        failure(&first_turn("Select2Pending")),
        "Select2Pending",
        "branch #1 of select2",
        "nothing can wake",
    );
}

#[test]
fn join2_of_a_future_that_keeps_its_waker_and_a_timer_is_a_foreign_await() {
    assert_foreign(
        failure(&first_turn("Join2KeepsWaker")),
        "Join2KeepsWaker",
        "branch #0 of join2",
        "keeps its waker",
    );
}

#[test]
fn select_first_of_a_timer_and_std_pending_is_a_foreign_await() {
    assert_foreign(
        failure(&first_turn("SelectFirstPending")),
        "SelectFirstPending",
        "branch #1 of select_first",
        "nothing can wake",
    );
}

#[test]
fn a_future_that_wakes_itself_inside_join_all_is_reported_not_spun_on() {
    assert_foreign(
        failure(&first_turn("JoinAllWakesItself")),
        "JoinAllWakesItself",
        "branch #1 of join_all",
        "nothing can wake",
    );
}

#[test]
fn futures_select_of_a_timer_and_a_future_that_keeps_its_waker_is_a_foreign_await() {
    assert_foreign(
        failure(&first_turn("FuturesSelectKeepsWaker")),
        "FuturesSelectKeepsWaker",
        "the orchestrator's body",
        "keeps its waker",
    );
}

/// Not detected: `futures::future::select` passes its own waker to both sides, and a future that
/// ignores its waker leaves no trace of having been polled. It can never win the race either, so
/// the outcome is the timer's, on every replay.
#[test]
fn futures_select_of_a_timer_and_std_pending_cannot_be_told_from_the_timer_alone() {
    let opened = started("FuturesSelectPending");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .timer_created(0, fire_at)
        .timer_fired(0, fire_at)
        .build();
    assert_completes(&history, "timer");
}

#[test]
fn a_foreign_future_raced_after_continue_as_new_does_not_fail_the_execution() {
    let turn = first_turn("ContinueAsNewRace");
    assert!(
        matches!(turn.outcome, TurnOutcome::ContinuedAsNew { .. }),
        "{:?}",
        turn.outcome
    );
}

#[test]
fn futures_unordered_over_durable_tasks_completes_in_history_order() {
    let opened = started("Unordered");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .task_scheduled(0, "Echo", "a")
        .task_scheduled(1, "Echo", "b")
        .task_scheduled(2, "Echo", "c")
        .task_completed(2, "C")
        .task_completed(0, "A")
        .task_completed(1, "B")
        .timer_created(3, fire_at)
        .timer_fired(3, fire_at)
        .build();
    assert_completes(&history, &["C", "A", "B"]);
}

#[test]
fn futures_select_and_join_over_durable_tasks_pick_the_first_completion_in_history() {
    let opened = started("FuturesSelectDurable");
    let (fast_at, slow_at) = (opened.time() + MINUTE, opened.time() + 2 * MINUTE);
    let history = opened
        .timer_created(0, slow_at)
        .timer_created(1, fast_at)
        .timer_fired(1, fast_at)
        .event_raised("E", "e")
        .timer_fired(0, slow_at)
        .build();
    assert_completes(&history, "fast e");
}

#[test]
fn engine_combinators_nested_in_engine_combinators_keep_working() {
    let opened = started("NestedEngineCombinators");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .timer_created(0, fire_at)
        .timer_created(1, fire_at)
        .event_raised("F", "f")
        .timer_fired(0, fire_at)
        .build();
    assert_completes(&history, &["timed out waiting for external event 'E'", "f"]);
}

/// Branches woken through their wakers (by a `FuturesUnordered`) and by their tasks' completions
/// are taken in history order, whichever way each was woken.
#[test]
fn branches_woken_by_a_foreign_combinator_and_by_completions_keep_history_order() {
    for (first, second) in [((0, "A"), (1, "B")), ((1, "B"), (0, "A"))] {
        let opened = started("UnorderedInCompletions");
        let fire_at = opened.time() + MINUTE;
        let history = opened
            .task_scheduled(0, "A", "x")
            .task_scheduled(1, "B", "x")
            .task_scheduled(2, "C", "x")
            .task_completed(2, "c")
            .timer_created(3, fire_at)
            .task_completed(first.0, first.1)
            .task_completed(second.0, second.1)
            .timer_fired(3, fire_at)
            .build();
        assert_completes(&history, &["c", first.1, second.1]);
    }
}

/// A wake through a branch's waker reaches the engine combinators around it, which poll only
/// the branches that were woken.
#[test]
fn a_foreign_combinator_inside_nested_engine_combinators_wakes_them() {
    let history = started("UnorderedInNestedJoinAll")
        .task_scheduled(0, "A", "x")
        .task_scheduled(1, "B", "x")
        .task_completed(1, "b")
        .task_completed(0, "a")
        .build();
    assert_completes(&history, &["a", "b"]);
}

/// Not detected: the durable timer is polled with a waker `FuturesUnordered` made, so its clone of
/// the body's waker cannot be told from the foreign future's (it lives inside the set, and keeps
/// a waker of the set). The race itself still ends as history says.
#[test]
fn a_foreign_future_inside_futures_unordered_beside_durable_tasks_is_not_detected() {
    let opened = started("UnorderedBesideKeepsWaker");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .timer_created(0, fire_at)
        .timer_fired(0, fire_at)
        .build();
    assert_completes(&history, "first finished");
}

/// A false report: a `FuturesUnordered` that never drove a durable task, kept alive while the code
/// awaits a durable one, keeps the body's waker exactly like a foreign future would.
#[test]
fn a_foreign_combinator_over_plain_futures_kept_alive_is_reported() {
    let turn = first_turn("UnorderedOfPlainFutures");
    assert_foreign(
        failure(&turn),
        "UnorderedOfPlainFutures",
        "the orchestrator's body",
        "keeps its waker",
    );
}

#[test]
fn a_failed_foreign_await_replays_as_recorded() {
    let first = first_turn("Select2KeepsWaker");
    let mut history = started("Select2KeepsWaker").build();
    history.extend(first.history_delta.iter().skip(2).cloned());
    let replayed = turn(
        &registry(),
        &history,
        &HistoryBuilder::new(super::ID)
            .orchestrator_started()
            .build(),
    );
    assert_eq!(replayed.outcome, first.outcome);
    assert!(replayed.history_delta.is_empty());
}
