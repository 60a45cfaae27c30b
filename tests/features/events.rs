//! External events: typed payloads, buffering of early events, case-insensitive names, FIFO
//! delivery, wrong payload types, and waits with a timeout (built in and by hand).

use durable_engine::verify::verify_history;
use durable_engine::{
    join2, select2, Either, OrchestrationContext, OrchestrationError, OrchestrationStatus,
    Registry, TaskError,
};
use durable_runtime::testkit::InMemoryRuntime;
use serde::{Deserialize, Serialize};

use crate::common::{start, state, Outcome, HOUR, ID};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Approval {
    approver: String,
    approved: bool,
}

async fn await_approval(ctx: OrchestrationContext, (): ()) -> Result<Approval, OrchestrationError> {
    Ok(ctx.wait_for_external_event("Approval").await?)
}

async fn timer_then_approval(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Approval, OrchestrationError> {
    ctx.create_timer_after(HOUR).await;
    Ok(ctx.wait_for_external_event("Approval").await?)
}

async fn two_in_sequence(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<String>, OrchestrationError> {
    let first = ctx.wait_for_external_event("Item").await?;
    let second = ctx.wait_for_external_event("Item").await?;
    Ok(vec![first, second])
}

async fn two_at_once(ctx: OrchestrationContext, (): ()) -> Result<Vec<String>, OrchestrationError> {
    let first = ctx.wait_for_external_event::<String>("Item");
    let second = ctx.wait_for_external_event::<String>("Item");
    let (first, second) = join2(first, second).await;
    Ok(vec![first?, second?])
}

async fn expect_number(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx.wait_for_external_event::<u32>("Count").await.into())
}

async fn approval_within_an_hour(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<Approval>, OrchestrationError> {
    let result = ctx
        .wait_for_external_event_with_timeout::<Approval>("Approval", HOUR)
        .await;
    Ok(result.into())
}

/// Times out once, then waits again for the same event name without a timeout.
async fn retry_after_timeout(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(Outcome<String>, String), OrchestrationError> {
    let first = ctx
        .wait_for_external_event_with_timeout::<String>("Go", HOUR)
        .await
        .into();
    let second = ctx.wait_for_external_event("Go").await?;
    Ok((first, second))
}

/// The same timeout by hand: on expiry, keep the losing wait and await it after all.
async fn select_by_hand(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(bool, String), OrchestrationError> {
    let event = ctx.wait_for_external_event::<String>("Go");
    let timer = ctx.create_timer_after(HOUR);
    match select2(event, timer).await {
        Either::Left((payload, _timer)) => Ok((false, payload?)),
        Either::Right(((), event)) => Ok((true, event.await?)),
    }
}

async fn notify(ctx: OrchestrationContext, target: String) -> Result<(), OrchestrationError> {
    ctx.send_event(&target, "Approval", &approval())?;
    Ok(())
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("AwaitApproval", await_approval)
        .orchestrator("TimerThenApproval", timer_then_approval)
        .orchestrator("TwoInSequence", two_in_sequence)
        .orchestrator("TwoAtOnce", two_at_once)
        .orchestrator("ExpectNumber", expect_number)
        .orchestrator("ApprovalWithinAnHour", approval_within_an_hour)
        .orchestrator("RetryAfterTimeout", retry_after_timeout)
        .orchestrator("SelectByHand", select_by_hand)
        .orchestrator("Notify", notify)
        .build()
        .unwrap()
}

fn approval() -> Approval {
    Approval {
        approver: "ada".to_string(),
        approved: true,
    }
}

fn status(rt: &InMemoryRuntime) -> OrchestrationStatus {
    state(rt, ID).status
}

#[test]
fn waits_until_the_event_arrives_and_decodes_its_payload() {
    let mut rt = start(registry(), "AwaitApproval", &());
    assert_eq!(status(&rt), OrchestrationStatus::Running);

    rt.raise_event(ID, "Approval", &approval()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Completed);
    assert_eq!(state(&rt, ID).output_as::<Approval>().unwrap(), approval());
}

#[test]
fn event_raised_before_the_wait_is_buffered_and_delivered() {
    let mut rt = start(registry(), "TimerThenApproval", &());
    rt.raise_event(ID, "Approval", &approval()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(
        status(&rt),
        OrchestrationStatus::Running,
        "still in the timer"
    );

    rt.advance(HOUR).unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Completed);
    assert_eq!(state(&rt, ID).output_as::<Approval>().unwrap(), approval());
}

#[test]
fn event_raised_before_the_first_turn_is_delivered() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("AwaitApproval", ID, &()).unwrap();
    rt.raise_event(ID, "Approval", &approval()).unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(status(&rt), OrchestrationStatus::Completed);
    assert_eq!(state(&rt, ID).output_as::<Approval>().unwrap(), approval());
    // One message per turn: the start's turn, then the event's, which the wait receives.
    assert_eq!(rt.turns_executed(), 2);
}

#[test]
fn event_names_are_case_insensitive() {
    let mut rt = start(registry(), "AwaitApproval", &());
    rt.raise_event(ID, "APPROVAL", &approval()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Completed);
}

#[test]
fn event_with_another_name_is_not_delivered() {
    let mut rt = start(registry(), "AwaitApproval", &());
    rt.raise_event(ID, "Approvals", &approval()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Running);
}

#[test]
fn sequential_waits_receive_events_in_fifo_order_even_when_buffered() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("TwoInSequence", ID, &()).unwrap();
    rt.raise_event(ID, "Item", "first").unwrap();
    rt.raise_event(ID, "item", "second").unwrap();
    rt.run_until_idle().unwrap();

    let output: Vec<String> = state(&rt, ID).output_as().unwrap();
    assert_eq!(output, vec!["first", "second"]);
}

#[test]
fn concurrent_waits_receive_events_in_fifo_order() {
    let mut rt = start(registry(), "TwoAtOnce", &());
    rt.raise_event(ID, "Item", "first").unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Running);
    rt.raise_event(ID, "Item", "second").unwrap();
    rt.run_until_idle().unwrap();

    let output: Vec<String> = state(&rt, ID).output_as().unwrap();
    assert_eq!(output, vec!["first", "second"]);
}

#[test]
fn concurrent_waits_receive_events_raised_together_in_fifo_order() {
    let mut rt = start(registry(), "TwoAtOnce", &());
    rt.raise_event(ID, "Item", "first").unwrap();
    rt.raise_event(ID, "Item", "second").unwrap();
    rt.run_until_idle().unwrap();

    let output: Vec<String> = state(&rt, ID).output_as().unwrap();
    assert_eq!(output, vec!["first", "second"]);
}

#[test]
fn payload_of_the_wrong_type_is_a_task_error() {
    let mut rt = start(registry(), "ExpectNumber", &());
    rt.raise_event(ID, "Count", "seven").unwrap();
    rt.run_until_idle().unwrap();

    let Outcome::ResultDeserialization { name, message } =
        state(&rt, ID).output_as::<Outcome<u32>>().unwrap()
    else {
        panic!(
            "expected ResultDeserialization, got {:?}",
            state(&rt, ID).output
        );
    };
    assert_eq!(name, "Count");
    assert!(message.contains("'Count'"), "{message}");
}

#[test]
fn payload_of_the_right_type_is_decoded() {
    let mut rt = start(registry(), "ExpectNumber", &());
    rt.raise_event(ID, "Count", &7).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(
        state(&rt, ID).output_as::<Outcome<u32>>().unwrap(),
        Outcome::Ok(7)
    );
}

#[test]
fn wait_with_timeout_returns_the_event_when_it_comes_first() {
    let mut rt = start(registry(), "ApprovalWithinAnHour", &());
    rt.advance(HOUR / 2).unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Running);
    rt.raise_event(ID, "Approval", &approval()).unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(
        state(&rt, ID).output_as::<Outcome<Approval>>().unwrap(),
        Outcome::Ok(approval())
    );
    // The timer that lost still fires later; it must not disturb the completed instance.
    rt.advance(HOUR).unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Completed);
}

#[test]
fn wait_with_timeout_times_out_when_the_timer_comes_first() {
    let mut rt = start(registry(), "ApprovalWithinAnHour", &());
    rt.advance(HOUR).unwrap();

    assert_eq!(status(&rt), OrchestrationStatus::Completed);
    assert_eq!(
        state(&rt, ID).output_as::<Outcome<Approval>>().unwrap(),
        Outcome::Timeout {
            name: "Approval".to_string(),
            message: "timed out waiting for external event 'Approval'".to_string(),
        }
    );
    let timeout = TaskError::Timeout {
        name: "Approval".to_string(),
    };
    assert!(timeout.failure_details().is_none());
}

#[test]
fn event_after_a_timed_out_wait_reaches_the_next_wait() {
    let mut rt = start(registry(), "RetryAfterTimeout", &());
    rt.advance(HOUR).unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Running);

    rt.raise_event(ID, "Go", "late but welcome").unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(status(&rt), OrchestrationStatus::Completed);
    let (first, second): (Outcome<String>, String) = state(&rt, ID).output_as().unwrap();
    assert!(matches!(first, Outcome::Timeout { .. }), "{first:?}");
    assert_eq!(second, "late but welcome");
    let history = rt.history(ID).unwrap();
    assert_eq!(verify_history(&registry(), ID, &history), Ok(3));
}

#[test]
fn select_by_hand_returns_the_event_when_it_wins() {
    let mut rt = start(registry(), "SelectByHand", &());
    rt.raise_event(ID, "Go", "on time").unwrap();
    rt.run_until_idle().unwrap();

    let output: (bool, String) = state(&rt, ID).output_as().unwrap();
    assert_eq!(output, (false, "on time".to_string()));
}

#[test]
fn select_by_hand_hands_back_the_losing_wait_which_still_receives_the_event() {
    let mut rt = start(registry(), "SelectByHand", &());
    rt.advance(HOUR).unwrap();
    assert_eq!(status(&rt), OrchestrationStatus::Running);

    rt.raise_event(ID, "Go", "after the timer").unwrap();
    rt.run_until_idle().unwrap();
    let output: (bool, String) = state(&rt, ID).output_as().unwrap();
    assert_eq!(output, (true, "after the timer".to_string()));
}

#[test]
fn event_sent_by_another_orchestration_is_received() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("AwaitApproval", "receiver", &()).unwrap();
    rt.start("Notify", "sender", "receiver").unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(
        rt.state("sender").unwrap().status,
        OrchestrationStatus::Completed
    );
    let receiver = state(&rt, "receiver");
    assert_eq!(receiver.status, OrchestrationStatus::Completed);
    assert_eq!(receiver.output_as::<Approval>().unwrap(), approval());
}

#[test]
fn event_sent_to_a_missing_instance_is_dropped_and_the_sender_completes() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("Notify", "sender", "nobody").unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(
        rt.state("sender").unwrap().status,
        OrchestrationStatus::Completed
    );
    assert_eq!(rt.instance_ids(), vec!["sender"]);
}
