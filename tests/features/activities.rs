//! Activities: typed inputs and outputs, sequences, failures (returned, unknown, wrong result
//! type, panics) and the activity context's idempotency key.

use durable_engine::verify::verify_history;
use durable_engine::{
    ActivityContext, ActivityError, EventKind, EventType, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry,
};
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::RuntimeOptions;
use serde::{Deserialize, Serialize};

use crate::common::{events_of, history, run, scheduled_activities, unserializable, Outcome, ID};
use crate::failure_details::assert_failure;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    sku: String,
    quantity: u32,
    unit_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    sku: String,
    total_cents: u64,
}

async fn price(_: ActivityContext, order: Order) -> Result<Quote, ActivityError> {
    Ok(Quote {
        sku: order.sku,
        total_cents: u64::from(order.quantity) * order.unit_cents,
    })
}

async fn quote_order(ctx: OrchestrationContext, order: Order) -> Result<Quote, OrchestrationError> {
    Ok(ctx.call_activity("Price", &order).await?)
}

#[test]
fn struct_input_and_output_round_trip_through_serde() {
    let registry = Registry::builder()
        .orchestrator("QuoteOrder", quote_order)
        .activity("Price", price)
        .build()
        .unwrap();
    let order = Order {
        sku: "widget".to_string(),
        quantity: 3,
        unit_cents: 250,
    };
    let (rt, state) = run(registry, "QuoteOrder", &order);

    assert_eq!(state.status, OrchestrationStatus::Completed);
    let quote: Quote = state.output_as().unwrap();
    assert_eq!(
        quote,
        Quote {
            sku: "widget".to_string(),
            total_cents: 750
        }
    );
    let history = history(&rt, ID);
    let scheduled = events_of(&history, EventType::TaskScheduled);
    assert_eq!(scheduled.len(), 1);
    let EventKind::TaskScheduled { input, .. } = &scheduled[0].kind else {
        unreachable!()
    };
    let sent: Order = serde_json::from_str(input.as_deref().unwrap()).unwrap();
    assert_eq!(sent, order);
}

async fn greeting(_: ActivityContext, (): ()) -> Result<String, ActivityError> {
    Ok("hello".to_string())
}

async fn greet(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity::<String>("Greeting", &()).await?)
}

#[test]
fn unit_input_activity_and_orchestrator() {
    let registry = Registry::builder()
        .orchestrator("Greet", greet)
        .activity("Greeting", greeting)
        .build()
        .unwrap();
    let (_, state) = run(registry, "Greet", &());
    assert_eq!(state.status, OrchestrationStatus::Completed);
    assert_eq!(state.output_as::<String>().unwrap(), "hello");
}

async fn greet_lowercase(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity::<String>("GREETING", &()).await?)
}

#[test]
fn activity_names_are_case_insensitive() {
    let registry = Registry::builder()
        .orchestrator("GreetLowercase", greet_lowercase)
        .activity("Greeting", greeting)
        .build()
        .unwrap();
    let (rt, state) = run(registry, "GreetLowercase", &());
    assert_eq!(state.output_as::<String>().unwrap(), "hello");
    assert_eq!(scheduled_activities(&history(&rt, ID)), vec!["GREETING"]);
}

async fn append(
    _: ActivityContext,
    (text, suffix): (String, String),
) -> Result<String, ActivityError> {
    Ok(text + &suffix)
}

async fn build_word(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let mut word = String::new();
    for letter in ["d", "u", "r", "a", "b", "l", "e"] {
        word = ctx.call_activity("Append", &(word, letter)).await?;
    }
    Ok(word)
}

#[test]
fn sequence_of_activities_chains_outputs_in_order() {
    let registry = Registry::builder()
        .orchestrator("BuildWord", build_word)
        .activity("Append", append)
        .build()
        .unwrap();
    let (rt, state) = run(registry, "BuildWord", &());

    assert_eq!(state.output_as::<String>().unwrap(), "durable");
    let history = history(&rt, ID);
    let ids: Vec<i32> = events_of(&history, EventType::TaskScheduled)
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, (0..7).collect::<Vec<_>>());
    // One turn to start plus one per completion: each activity waits for the previous one.
    assert_eq!(events_of(&history, EventType::OrchestratorStarted).len(), 8);
}

#[test]
fn activities_run_in_the_turn_make_the_same_history_in_one_committed_turn() {
    let registry = Registry::builder()
        .orchestrator("BuildWord", build_word)
        .activity("Append", append)
        .build()
        .unwrap();
    let mut rt = InMemoryRuntime::with_options(registry.clone(), RuntimeOptions::default());
    rt.start("BuildWord", ID, &()).unwrap();
    let turns = rt.run_until_idle().unwrap();

    let done = rt.state(ID).unwrap();
    assert_eq!(done.output_as::<String>().unwrap(), "durable");
    // Each result is fed straight back: the engine still records a turn per completion, but
    // the runtime commits them all at once, without a message per activity.
    assert_eq!(turns, 1);
    let history = history(&rt, ID);
    assert_eq!(events_of(&history, EventType::OrchestratorStarted).len(), 8);
    assert_eq!(verify_history(&registry, ID, &history), Ok(8));
}

async fn charge(_: ActivityContext, amount: u32) -> Result<u32, ActivityError> {
    if amount > 100 {
        Err(ActivityError::with_type("CardDeclined", "card declined"))
    } else {
        Ok(amount)
    }
}

async fn try_charge(
    ctx: OrchestrationContext,
    amount: u32,
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx.call_activity::<u32>("Charge", &amount).await.into())
}

async fn charge_or_fail(ctx: OrchestrationContext, amount: u32) -> Result<u32, OrchestrationError> {
    let charged = ctx.call_activity("Charge", &amount).await?;
    Ok(charged)
}

fn charge_registry() -> Registry {
    Registry::builder()
        .orchestrator("TryCharge", try_charge)
        .orchestrator("ChargeOrFail", charge_or_fail)
        .activity("Charge", charge)
        .build()
        .unwrap()
}

#[test]
fn successful_activity_is_ok() {
    let (_, state) = run(charge_registry(), "TryCharge", &40);
    assert_eq!(state.output_as::<Outcome<u32>>().unwrap(), Outcome::Ok(40));
}

#[test]
fn activity_failure_is_activity_failed_naming_the_activity() {
    let (_, state) = run(charge_registry(), "TryCharge", &500);

    assert_eq!(state.status, OrchestrationStatus::Completed);
    let Outcome::ActivityFailed {
        name,
        attempts,
        details,
        message,
    } = state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(name, "Charge");
    assert_eq!(attempts, 1);
    assert_eq!(details.error_type, "CardDeclined");
    assert_eq!(details.error_message, "card declined");
    assert_eq!(message, "activity 'Charge' failed: card declined");
}

#[test]
fn activity_failure_propagated_with_question_mark_fails_the_instance() {
    let (_, state) = run(charge_registry(), "ChargeOrFail", &500);

    assert_eq!(state.status, OrchestrationStatus::Failed);
    assert_eq!(state.output, None);
    let failure = state.failure.expect("failure details");
    assert_eq!(failure.error_type, "TaskFailed");
    assert_eq!(
        failure.error_message,
        "activity 'Charge' failed: card declined"
    );
    let inner = failure
        .inner_failure
        .expect("the activity's failure is kept");
    assert_eq!(inner.error_type, "CardDeclined");
    assert_eq!(inner.error_message, "card declined");
}

async fn call_missing(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx.call_activity::<u32>("DoesNotExist", &1).await.into())
}

#[test]
fn unknown_activity_fails_the_task() {
    let registry = Registry::builder()
        .orchestrator("CallMissing", call_missing)
        .build()
        .unwrap();
    let (_, state) = run(registry, "CallMissing", &());

    let Outcome::ActivityFailed { name, details, .. } = state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(name, "DoesNotExist");
    assert_failure(&details, "ActivityNotFound", &["'DoesNotExist'"]);
}

async fn expect_number(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx.call_activity::<u32>("Greeting", &()).await.into())
}

#[test]
fn result_of_the_wrong_type_is_result_deserialization() {
    let registry = Registry::builder()
        .orchestrator("ExpectNumber", expect_number)
        .activity("Greeting", greeting)
        .build()
        .unwrap();
    let (_, state) = run(registry, "ExpectNumber", &());

    let Outcome::ResultDeserialization { name, message } =
        state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected ResultDeserialization, got {:?}", state.output);
    };
    assert_eq!(name, "Greeting");
    assert!(
        message.starts_with("the result of 'Greeting' is not of the expected type"),
        "{message}"
    );
}

async fn wrong_input(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<Quote>, OrchestrationError> {
    Ok(ctx
        .call_activity::<Quote>("Price", &"not an order")
        .await
        .into())
}

#[test]
fn activity_input_of_the_wrong_type_fails_the_task_with_invalid_input() {
    let registry = Registry::builder()
        .orchestrator("WrongInput", wrong_input)
        .activity("Price", price)
        .build()
        .unwrap();
    let (_, state) = run(registry, "WrongInput", &());

    let Outcome::ActivityFailed { details, .. } = state.output_as::<Outcome<Quote>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_failure(
        &details,
        "InvalidInput",
        &["the input of activity 'Price' is not valid"],
    );
}

async fn explode(_: ActivityContext, (): ()) -> Result<u32, ActivityError> {
    panic!("disk on fire")
}

async fn survive_panic(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(Outcome<u32>, String), OrchestrationError> {
    let exploded = ctx.call_activity::<u32>("Explode", &()).await.into();
    let after = ctx.call_activity("Greeting", &()).await?;
    Ok((exploded, after))
}

#[test]
fn activity_panic_fails_the_task_and_the_runtime_carries_on() {
    let registry = Registry::builder()
        .orchestrator("SurvivePanic", survive_panic)
        .activity("Explode", explode)
        .activity("Greeting", greeting)
        .build()
        .unwrap();
    let (_, state) = run(registry, "SurvivePanic", &());

    assert_eq!(state.status, OrchestrationStatus::Completed);
    let (exploded, after): (Outcome<u32>, String) = state.output_as().unwrap();
    let Outcome::ActivityFailed { name, details, .. } = exploded else {
        panic!("expected ActivityFailed, got {exploded:?}");
    };
    assert_eq!(name, "Explode");
    assert_eq!(details.error_type, "Panic");
    assert_eq!(
        details.error_message,
        "activity 'Explode' panicked: disk on fire"
    );
    assert_eq!(after, "hello");
}

async fn send_unserializable(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx
        .call_activity::<u32>("Charge", &unserializable())
        .await
        .into())
}

#[test]
fn input_that_cannot_be_serialized_fails_without_scheduling_anything() {
    let registry = Registry::builder()
        .orchestrator("SendUnserializable", send_unserializable)
        .activity("Charge", charge)
        .build()
        .unwrap();
    let (rt, state) = run(registry, "SendUnserializable", &());

    let Outcome::InputSerialization { name, message } = state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected InputSerialization, got {:?}", state.output);
    };
    assert_eq!(name, "Charge");
    assert!(message.contains("key must be a string"), "{message}");
    assert!(scheduled_activities(&history(&rt, ID)).is_empty());
}

async fn return_unserializable(
    _: ActivityContext,
    (): (),
) -> Result<impl Serialize, ActivityError> {
    Ok(unserializable())
}

async fn receive_unserializable(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<u32>, OrchestrationError> {
    Ok(ctx
        .call_activity::<u32>("ReturnUnserializable", &())
        .await
        .into())
}

#[test]
fn activity_output_that_cannot_be_serialized_fails_the_task() {
    let registry = Registry::builder()
        .orchestrator("ReceiveUnserializable", receive_unserializable)
        .activity("ReturnUnserializable", return_unserializable)
        .build()
        .unwrap();
    let (_, state) = run(registry, "ReceiveUnserializable", &());

    let Outcome::ActivityFailed { details, .. } = state.output_as::<Outcome<u32>>().unwrap() else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(details.error_type, "OutputSerialization");
}

async fn key(ctx: ActivityContext, (): ()) -> Result<(String, String), ActivityError> {
    Ok((ctx.idempotency_key(), ctx.idempotency_key()))
}

async fn collect_keys(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<(String, String)>, OrchestrationError> {
    let first = ctx.call_activity("Key", &()).await?;
    let second = ctx.call_activity("Key", &()).await?;
    Ok(vec![first, second])
}

#[test]
fn idempotency_key_is_stable_and_names_instance_execution_and_task() {
    let registry = Registry::builder()
        .orchestrator("CollectKeys", collect_keys)
        .activity("Key", key)
        .build()
        .unwrap();
    let (rt, state) = run(registry, "CollectKeys", &());

    let keys: Vec<(String, String)> = state.output_as().unwrap();
    let execution = &state.execution_id;
    for (task_id, (key, again)) in keys.iter().enumerate() {
        assert_eq!(key, again, "the key is stable for one call");
        assert_eq!(*key, format!("{ID}:{execution}:{task_id}"));
    }
    assert_ne!(keys[0].0, keys[1].0);
    // The ids in the key are the ones the history records for those calls.
    let history = history(&rt, ID);
    let ids: Vec<i32> = events_of(&history, EventType::TaskScheduled)
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(scheduled_activities(&history), vec!["Key", "Key"]);
}

#[test]
fn idempotency_key_differs_between_executions_with_the_same_task_id() {
    let context = |execution: &str| ActivityContext {
        instance_id: "order-7".to_string(),
        execution_id: execution.to_string(),
        task_id: 0,
        name: "Charge".to_string(),
    };
    assert_eq!(
        context("e1").idempotency_key(),
        context("e1").idempotency_key()
    );
    assert_ne!(
        context("e1").idempotency_key(),
        context("e2").idempotency_key()
    );
}
