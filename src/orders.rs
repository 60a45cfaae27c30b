//! Order processing: `OrderWorkflow` validates an order, takes payment (retried with back-off,
//! charged at most once), ships it through the `ShippingWorkflow` sub-orchestration, and refunds
//! the payment when shipping fails.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{json_blobs, simulate_work, WorkflowSettings};
use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, RegistryBuilder,
    RetryPolicy, TaskError,
};
use durable_store::artifacts::ArtifactStore;

const WORKFLOW: &str = "OrderWorkflow";
const SHIPPING: &str = "ShippingWorkflow";
const VALIDATE: &str = "ValidateOrder";
const PAY: &str = "ProcessPayment";
const RESERVE: &str = "ReserveInventory";
const SHIP: &str = "CreateShipment";
const REFUND: &str = "RefundPayment";
/// Error type of a declined payment: a business answer, not an outage, so never retried.
const DECLINED: &str = "PaymentDeclined";
/// Names the references (reservations, tracking numbers) derived from idempotency keys.
const REFERENCE_NAMESPACE: Uuid = Uuid::from_u128(0x5b1f_0c4e_7d2a_4e8b_9c3f_61a0_d2e4_f817);

/// `{"OrderId":"O-1","CustomerId":"…","Items":[…],"Simulate":{…}}`. Missing fields decode as
/// empty so that validation, not input decoding, reports them.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Order {
    order_id: Option<String>,
    customer_id: Option<String>,
    items: Vec<OrderItem>,
    /// Optional: absent or `null` means nothing is simulated.
    #[serde(deserialize_with = "null_as_default")]
    simulate: Simulate,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct OrderItem {
    sku: Option<String>,
    quantity: i64,
    unit_price: Option<f64>,
}

/// Failures to act out, for demos and tests.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Simulate {
    payment_transient_failures: u32,
    payment_declined: bool,
    shipping_failure: bool,
}

impl Order {
    /// Sum of Quantity × UnitPrice, rounded to cents so float noise never shows in amounts.
    fn total(&self) -> f64 {
        let total: f64 = self
            .items
            .iter()
            .map(|item| item.quantity as f64 * item.unit_price.unwrap_or(0.0))
            .sum();
        (total * 100.0).round() / 100.0
    }
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Validation {
    reason: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct PaymentRequest {
    order_id: String,
    customer_id: String,
    amount: f64,
    transient_failures: u32,
    declined: bool,
}

/// What the charge blob holds; its PaymentId is what every redelivery of the call returns.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Charge {
    payment_id: String,
    order_id: String,
    customer_id: String,
    amount: f64,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct RefundRequest {
    order_id: String,
    payment_id: String,
    amount: f64,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Refund {
    refund_id: String,
    payment_id: String,
    amount: f64,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct ShippingRequest {
    order_id: String,
    items: Vec<OrderItem>,
    fail: bool,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct ShipmentRequest {
    order_id: String,
    reservation_id: String,
    fail: bool,
}

pub(super) fn register(
    builder: RegistryBuilder,
    settings: &WorkflowSettings,
    artifacts: &Arc<dyn ArtifactStore>,
) -> RegistryBuilder {
    let retry = RetryPolicy::new(
        settings.payment_retry_max_attempts,
        settings.payment_retry_first_interval,
    )
    .with_backoff_coefficient(settings.payment_retry_backoff_coefficient);
    let work = settings.activity_work_delay;
    let (pay_store, refund_store) = (artifacts.clone(), artifacts.clone());
    builder
        .orchestrator(WORKFLOW, move |ctx, order| {
            order_workflow(ctx, order, retry.clone())
        })
        .orchestrator(SHIPPING, shipping_workflow)
        .activity(VALIDATE, move |_: ActivityContext, order| {
            validate_order(order, work)
        })
        .activity(PAY, move |ctx, request| {
            process_payment(ctx, request, pay_store.clone(), work)
        })
        .activity(REFUND, move |_: ActivityContext, request| {
            refund_payment(request, refund_store.clone(), work)
        })
        .activity(RESERVE, move |ctx, items| {
            reserve_inventory(ctx, items, work)
        })
        .activity(SHIP, move |ctx, request| {
            create_shipment(ctx, request, work)
        })
}

async fn order_workflow(
    ctx: OrchestrationContext,
    order: Order,
    retry: RetryPolicy,
) -> Result<Value, OrchestrationError> {
    let validation: Validation = ctx.call_activity(VALIDATE, &order).await?;
    let (Some(order_id), Some(customer_id), None) = (
        order.order_id.clone(),
        order.customer_id.clone(),
        validation.reason.as_ref(),
    ) else {
        return Ok(
            json!({"OrderId": order.order_id, "Status": "Invalid", "Reason": validation.reason}),
        );
    };
    let total = order.total();

    let payment = PaymentRequest {
        order_id: order_id.clone(),
        customer_id,
        amount: total,
        transient_failures: order.simulate.payment_transient_failures,
        declined: order.simulate.payment_declined,
    };
    let pay_retry = retry
        .clone()
        .with_handle(|failure| failure.error_type != DECLINED);
    let payment_id: String = match ctx
        .call_activity_with_retry(PAY, &payment, &pay_retry)
        .await
    {
        Ok(payment_id) => payment_id,
        Err(error) if failure_type(&error) == Some(DECLINED) => {
            return Ok(json!({
                "OrderId": order_id,
                "Status": "PaymentDeclined",
                "Reason": failure_message(&error),
            }));
        }
        Err(error) => return Err(error.into()),
    };

    let shipping = ShippingRequest {
        order_id: order_id.clone(),
        items: order.items,
        fail: order.simulate.shipping_failure,
    };
    match ctx
        .call_sub_orchestrator::<String>(SHIPPING, None, &shipping)
        .await
    {
        Ok(tracking_number) => Ok(json!({
            "OrderId": order_id,
            "Status": "Completed",
            "Total": total,
            "PaymentId": payment_id,
            "TrackingNumber": tracking_number,
        })),
        Err(shipping_error) => {
            // Compensation: the customer paid for an order that will not ship.
            let refund = RefundRequest {
                order_id: order_id.clone(),
                payment_id: payment_id.clone(),
                amount: total,
            };
            let refund_id: String = ctx
                .call_activity_with_retry(REFUND, &refund, &retry)
                .await?;
            Ok(json!({
                "OrderId": order_id,
                "Status": "Refunded",
                "Total": total,
                "PaymentId": payment_id,
                "RefundId": refund_id,
                "Reason": failure_message(&shipping_error),
            }))
        }
    }
}

/// Reserves the items, then books the shipment; its output is the tracking number.
async fn shipping_workflow(
    ctx: OrchestrationContext,
    request: ShippingRequest,
) -> Result<String, OrchestrationError> {
    let reservation_id: String = ctx.call_activity(RESERVE, &request.items).await?;
    let shipment = ShipmentRequest {
        order_id: request.order_id,
        reservation_id,
        fail: request.fail,
    };
    Ok(ctx.call_activity(SHIP, &shipment).await?)
}

/// The remote failure's type, when the task failed remotely.
fn failure_type(error: &TaskError) -> Option<&str> {
    error
        .failure_details()
        .map(|details| details.error_type.as_str())
}

/// The remote failure's own message (the innermost one for a failed sub-orchestration), or the
/// error itself.
fn failure_message(error: &TaskError) -> String {
    let Some(mut details) = error.failure_details() else {
        return error.to_string();
    };
    while let Some(inner) = details.inner_failure.as_deref() {
        details = inner;
    }
    details.error_message.clone()
}

async fn validate_order(order: Order, work: Duration) -> Result<Validation, ActivityError> {
    simulate_work(work).await;
    let blank = |field: &Option<String>| field.as_deref().is_none_or(|text| text.trim().is_empty());
    let reason = if blank(&order.order_id) {
        Some("OrderId is missing".to_string())
    } else if blank(&order.customer_id) {
        Some("CustomerId is missing".to_string())
    } else if order.items.is_empty() {
        Some("the order has no items".to_string())
    } else {
        order.items.iter().enumerate().find_map(|(index, item)| {
            let number = index + 1;
            if blank(&item.sku) {
                Some(format!("item {number} has no Sku"))
            } else if item.quantity <= 0 {
                Some(format!("item {number}: Quantity must be greater than 0"))
            } else if !item
                .unit_price
                .is_some_and(|price| price.is_finite() && price >= 0.0)
            {
                Some(format!(
                    "item {number}: UnitPrice must be a number of at least 0"
                ))
            } else {
                None
            }
        })
    };
    Ok(Validation { reason })
}

/// Charges the order once per call, however often the call is delivered: the charge is created
/// only if absent under the call's idempotency key. Before that, it acts out the simulated
/// gateway: each distinct attempt is recorded (a redelivered attempt rewrites its own record),
/// and the first `TransientFailures` attempts fail.
async fn process_payment(
    ctx: ActivityContext,
    request: PaymentRequest,
    artifacts: Arc<dyn ArtifactStore>,
    work: Duration,
) -> Result<String, ActivityError> {
    simulate_work(work).await;
    let store = artifacts.as_ref();
    let attempts_prefix = attempts_prefix(&ctx);
    json_blobs::put(
        store,
        &format!("{attempts_prefix}{}", ctx.task_id),
        &request.order_id,
    )
    .await?;
    let attempts = store.list(&attempts_prefix).await?.len();
    if attempts <= request.transient_failures as usize {
        return Err(ActivityError::with_type(
            "PaymentGatewayUnavailable",
            format!(
                "the payment gateway is unavailable (attempt {attempts} for order {})",
                request.order_id
            ),
        ));
    }
    if request.declined {
        return Err(ActivityError::with_type(
            DECLINED,
            format!("the card of customer {} was declined", request.customer_id),
        ));
    }
    let charge = Charge {
        // The gateway's own id: random, so only the stored charge can make it stable.
        payment_id: format!("PAY-{}", Uuid::new_v4()),
        order_id: request.order_id,
        customer_id: request.customer_id,
        amount: request.amount,
    };
    let charge = json_blobs::put_if_absent(store, &charge_name(&ctx), charge).await?;
    Ok(charge.payment_id)
}

/// Refunds a payment at most once, whoever asks how often.
async fn refund_payment(
    request: RefundRequest,
    artifacts: Arc<dyn ArtifactStore>,
    work: Duration,
) -> Result<String, ActivityError> {
    simulate_work(work).await;
    let refund = Refund {
        refund_id: format!("REF-{}", Uuid::new_v4()),
        payment_id: request.payment_id,
        amount: request.amount,
    };
    let name = refund_name(&refund.payment_id);
    let refund = json_blobs::put_if_absent(artifacts.as_ref(), &name, refund).await?;
    tracing::info!(
        order_id = request.order_id,
        payment_id = refund.payment_id,
        refund.amount,
        "payment refunded"
    );
    Ok(refund.refund_id)
}

async fn reserve_inventory(
    ctx: ActivityContext,
    items: Vec<OrderItem>,
    work: Duration,
) -> Result<String, ActivityError> {
    simulate_work(work).await;
    tracing::debug!(items = items.len(), "inventory reserved");
    Ok(reference("RES", &ctx))
}

async fn create_shipment(
    ctx: ActivityContext,
    request: ShipmentRequest,
    work: Duration,
) -> Result<String, ActivityError> {
    simulate_work(work).await;
    if request.fail {
        return Err(ActivityError::with_type(
            "ShippingFailed",
            format!(
                "the carrier refused the shipment of order {}",
                request.order_id
            ),
        ));
    }
    Ok(reference("TRK", &ctx))
}

/// A reference that is the same on every delivery of the call, so a redelivered reservation or
/// shipment names the same thing.
fn reference(kind: &str, ctx: &ActivityContext) -> String {
    let id = Uuid::new_v5(&REFERENCE_NAMESPACE, ctx.idempotency_key().as_bytes());
    format!("{kind}-{}", id.simple())
}

/// Where the attempts of one execution's payment are counted: retries are new tasks of the
/// same execution, so they land here; a redelivered attempt has the same task id.
fn attempts_prefix(ctx: &ActivityContext) -> String {
    format!(
        "payments/attempts/{}:{}/",
        ctx.instance_id, ctx.execution_id
    )
}

fn charge_name(ctx: &ActivityContext) -> String {
    format!("payments/charges/{}", ctx.idempotency_key())
}

fn refund_name(payment_id: &str) -> String {
    format!("payments/refunds/{payment_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn simulate_may_be_null_or_absent() {
        for text in [
            r#"{"OrderId":"O-1","Items":[],"Simulate":null}"#,
            r#"{"OrderId":"O-1","Items":[]}"#,
        ] {
            let order: Order = serde_json::from_str(text).unwrap();
            assert_eq!(order.simulate.payment_transient_failures, 0);
            assert!(!order.simulate.payment_declined && !order.simulate.shipping_failure);
        }
        let with: Order = serde_json::from_str(r#"{"Simulate":{"PaymentDeclined":true}}"#).unwrap();
        assert!(with.simulate.payment_declined);
    }

    use futures_executor::block_on;

    use super::*;
    use crate::testing::{registry_and_store, runtime, scheduled, settings};
    use durable_engine::{EventKind, OrchestrationStatus};
    use durable_runtime::testkit::InMemoryRuntime;
    use durable_store::artifacts::MemoryArtifactStore;

    const ID: &str = "order";

    fn order(simulate: Value) -> Value {
        json!({
            "OrderId": "O-1",
            "CustomerId": "K-9",
            "Items": [
                {"Sku": "A", "Quantity": 2, "UnitPrice": 9.5},
                {"Sku": "B", "Quantity": 3, "UnitPrice": 0.1},
            ],
            "Simulate": simulate,
        })
    }

    fn run(input: &Value) -> (InMemoryRuntime, Arc<MemoryArtifactStore>, Value) {
        let (mut rt, store) = runtime();
        rt.start(WORKFLOW, ID, input).unwrap();
        rt.run_to_completion(Duration::from_secs(3600)).unwrap();
        let state = rt.state(ID).unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed, "{state:?}");
        let output = state.output_as().unwrap();
        (rt, store, output)
    }

    fn listed(store: &MemoryArtifactStore, prefix: &str) -> Vec<String> {
        block_on(store.list(prefix)).unwrap()
    }

    fn field<'a>(output: &'a Value, name: &str) -> &'a str {
        output[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing in {output}"))
    }

    #[test]
    fn a_good_order_is_paid_and_shipped() {
        let (rt, store, output) = run(&order(json!({})));

        assert_eq!(output["Status"], "Completed");
        assert_eq!(output["OrderId"], "O-1");
        // 2 × 9.5 + 3 × 0.1, with the float noise of 0.30000000000000004 rounded away.
        assert_eq!(output["Total"], json!(19.3));
        assert!(field(&output, "PaymentId").starts_with("PAY-"));
        assert!(field(&output, "TrackingNumber").starts_with("TRK-"));
        assert_eq!(scheduled(&rt, ID), [VALIDATE, PAY].map(String::from));
        assert_shipping_ran(&rt);
        let charges = listed(&store, "payments/charges/");
        assert_eq!(charges.len(), 1);
        let charge: Charge =
            serde_json::from_slice(&block_on(store.get(&charges[0])).unwrap().unwrap()).unwrap();
        assert_eq!(charge.payment_id, field(&output, "PaymentId"));
        assert_eq!(charge.amount, 19.3);
        assert!(listed(&store, "payments/refunds/").is_empty());
    }

    #[test]
    fn transient_payment_failures_are_retried_with_back_off() {
        let (rt, store, output) = run(&order(json!({"PaymentTransientFailures": 2})));

        assert_eq!(output["Status"], "Completed");
        assert_eq!(
            scheduled(&rt, ID),
            [VALIDATE, PAY, PAY, PAY].map(String::from)
        );
        assert_eq!(listed(&store, "payments/attempts/").len(), 3);
        assert_eq!(listed(&store, "payments/charges/").len(), 1);
        let waits: Vec<Duration> = timer_waits(&rt);
        let first = settings().payment_retry_first_interval;
        assert_eq!(waits, [first, first * 2]);
    }

    #[test]
    fn payment_fails_the_order_once_attempts_run_out() {
        let (mut rt, _) = runtime();
        rt.start(
            WORKFLOW,
            ID,
            &order(json!({"PaymentTransientFailures": 99})),
        )
        .unwrap();
        rt.run_to_completion(Duration::from_secs(3600)).unwrap();
        let state = rt.state(ID).unwrap();
        assert_eq!(state.status, OrchestrationStatus::Failed);
        let message = &state.failure.as_ref().unwrap().error_message;
        assert!(
            message.starts_with("activity 'ProcessPayment' failed after 5 attempts: "),
            "{message}"
        );
    }

    #[test]
    fn a_declined_payment_is_not_retried() {
        let (rt, store, output) = run(&order(json!({"PaymentDeclined": true})));

        assert_eq!(
            output,
            json!({
                "OrderId": "O-1",
                "Status": "PaymentDeclined",
                "Reason": "the card of customer K-9 was declined",
            })
        );
        assert_eq!(scheduled(&rt, ID), [VALIDATE, PAY].map(String::from));
        assert_eq!(listed(&store, "payments/attempts/").len(), 1);
        assert!(listed(&store, "payments/charges/").is_empty());
    }

    #[test]
    fn a_shipping_failure_refunds_the_payment() {
        let (rt, store, output) = run(&order(json!({"ShippingFailure": true})));

        assert_eq!(output["Status"], "Refunded");
        assert_eq!(
            output["Reason"],
            "the carrier refused the shipment of order O-1"
        );
        assert_eq!(
            scheduled(&rt, ID),
            [VALIDATE, PAY, REFUND].map(String::from)
        );
        assert_shipping_ran(&rt);
        let refunds = listed(&store, "payments/refunds/");
        assert_eq!(
            refunds,
            [format!("payments/refunds/{}", field(&output, "PaymentId"))]
        );
        let refund: Refund =
            serde_json::from_slice(&block_on(store.get(&refunds[0])).unwrap().unwrap()).unwrap();
        assert_eq!(refund.refund_id, field(&output, "RefundId"));
        assert_eq!(refund.amount, 19.3);
    }

    #[test]
    fn invalid_orders_stop_before_payment() {
        let cases = [
            (
                json!({"CustomerId":"K","Items":[{"Sku":"A","Quantity":1,"UnitPrice":1}]}),
                "OrderId is missing",
            ),
            (
                json!({"OrderId":"O-2","CustomerId":"K","Items":[]}),
                "the order has no items",
            ),
            (
                json!({"OrderId":"O-2","CustomerId":"K","Items":[
                    {"Sku":"A","Quantity":0,"UnitPrice":1},
                ]}),
                "item 1: Quantity must be greater than 0",
            ),
            (
                json!({"OrderId":"O-2","CustomerId":"K","Items":[
                    {"Sku":"A","Quantity":1,"UnitPrice":1},
                    {"Sku":"B","Quantity":1,"UnitPrice":-0.5},
                ]}),
                "item 2: UnitPrice must be a number of at least 0",
            ),
        ];
        for (input, reason) in cases {
            let (rt, store, output) = run(&input);
            assert_eq!(
                output,
                json!({"OrderId": input.get("OrderId"), "Status":"Invalid","Reason":reason})
            );
            assert_eq!(scheduled(&rt, ID), [VALIDATE.to_string()]);
            assert!(listed(&store, "payments/").is_empty());
        }
    }

    #[test]
    fn a_redelivered_payment_charges_once() {
        let (registry, store) = registry_and_store();
        let ctx = ActivityContext {
            instance_id: "o".to_string(),
            execution_id: "e".to_string(),
            task_id: 1,
            name: PAY.to_string(),
        };
        let input = serde_json::to_string(&PaymentRequest {
            order_id: "O-1".to_string(),
            customer_id: "K-9".to_string(),
            amount: 10.0,
            transient_failures: 0,
            declined: false,
        })
        .unwrap();
        let mut payment_ids = Vec::new();
        for _ in 0..2 {
            let running = registry
                .start_activity(ctx.clone(), Some(input.clone()))
                .unwrap();
            payment_ids.push(block_on(running).unwrap());
        }
        assert_eq!(payment_ids[0], payment_ids[1]);
        assert_eq!(
            listed(&store, "payments/charges/"),
            ["payments/charges/o:e:1"]
        );
        // The redelivery counts as the same attempt.
        assert_eq!(listed(&store, "payments/attempts/").len(), 1);
    }

    #[test]
    fn a_repeated_refund_refunds_once() {
        let (registry, store) = registry_and_store();
        let input = serde_json::to_string(&RefundRequest {
            order_id: "O-1".to_string(),
            payment_id: "PAY-1".to_string(),
            amount: 10.0,
        })
        .unwrap();
        let refund_ids: Vec<_> = (1..=2)
            .map(|task_id| {
                let ctx = ActivityContext {
                    instance_id: "o".to_string(),
                    execution_id: "e".to_string(),
                    task_id,
                    name: REFUND.to_string(),
                };
                block_on(registry.start_activity(ctx, Some(input.clone())).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(refund_ids[0], refund_ids[1]);
        assert_eq!(
            listed(&store, "payments/refunds/"),
            ["payments/refunds/PAY-1"]
        );
    }

    /// How long each durable timer of instance [`ID`] waited, from the start of its turn.
    fn timer_waits(rt: &InMemoryRuntime) -> Vec<Duration> {
        let mut turn_start = None;
        let mut waits = Vec::new();
        for event in rt.history(ID).unwrap() {
            match &event.kind {
                EventKind::OrchestratorStarted => turn_start = Some(event.timestamp),
                EventKind::TimerCreated { fire_at } => {
                    waits.push((*fire_at - turn_start.unwrap()).to_std().unwrap());
                }
                _ => {}
            }
        }
        waits
    }

    /// The shipping child of instance [`ID`], checked to have run both of its steps.
    fn assert_shipping_ran(rt: &InMemoryRuntime) {
        let children: Vec<String> = rt
            .instance_ids()
            .into_iter()
            .filter(|id| rt.state(id).unwrap().name == SHIPPING)
            .collect();
        assert_eq!(children.len(), 1, "{:?}", rt.instance_ids());
        assert_eq!(
            scheduled(rt, &children[0]),
            [RESERVE, SHIP].map(String::from)
        );
    }
}
