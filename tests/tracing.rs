//! Distributed tracing end to end: the worker under the dev host exports its spans over OTLP/HTTP
//! to a receiver in this test, which decodes them (protobuf) and checks that a start made with a
//! W3C `traceparent` is traced in the caller's trace: start → orchestration → activities, a
//! sub-orchestration's spans under its parent's, timers; and a raised event in its caller's.

#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use app::{Answer, App};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One received span: the hex ids and the name.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i32,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    status: i32,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    links: span
                        .links
                        .iter()
                        .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                        .collect(),
                    status: span.status.map_or(0, |status| status.code),
                });
            }
        }
    }
    StatusCode::OK
}

/// A receiver of OTLP/HTTP trace exports on a free port: its base URL and what it received.
async fn receiver() -> (String, Spans) {
    let spans = Spans::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, spans)
}

/// Waits until a span of each name has arrived; returns them all.
async fn wait_for_spans(spans: &Spans, names: &[&str]) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = spans.lock().unwrap().clone();
        if names
            .iter()
            .all(|name| received.iter().any(|span| span.name == *name))
        {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "spans {names:?} did not all arrive; received {received:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn one<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let named: Vec<&Received> = spans.iter().filter(|span| span.name == name).collect();
    assert_eq!(named.len(), 1, "one span '{name}' expected: {spans:#?}");
    named[0]
}

/// POSTs `body` to `path` with a W3C trace context whose parent is span `span` of `trace`.
async fn post_traced(app: &App, path: &str, body: &Value, trace: &str, span: &str) -> Answer {
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header("traceparent", format!("00-{trace}-{span}-01"))
        .header("tracestate", "caller=1")
        .json(body)
        .send()
        .await
        .unwrap();
    App::answer(response).await
}

async fn traced_app() -> (App, Spans) {
    let (endpoint, spans) = receiver().await;
    let app = App::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_SERVICE_NAME", "traced-worker"),
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    (app, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_a_traceparent_is_traced_through_activities_and_sub_orchestrations() {
    let (app, spans) = traced_app().await;
    let order = json!({
        "OrderId": "T-1",
        "CustomerId": "cust-7",
        "Items": [{"Sku": "A", "Quantity": 2, "UnitPrice": 9.5}],
        "Simulate": {"PaymentTransientFailures": 1},
    });
    let started = post_traced(
        &app,
        "/api/orchestrators/OrderWorkflow",
        &order,
        CALLER_TRACE,
        CALLER_SPAN,
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert!(started.headers.contains_key("location"));
    let id = started.body["id"].as_str().unwrap().to_string();
    // Started without a trace context: a trace of its own.
    let untraced = app.start_instance("HelloSequence5", &json!(null)).await;
    for id in [&id, &untraced] {
        let done = app.wait_for_end(id, Duration::from_secs(60)).await;
        assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    }

    let received = wait_for_spans(
        &spans,
        &[
            "create_orchestration:OrderWorkflow",
            "orchestration:OrderWorkflow",
            "activity:ValidateOrder",
            "activity:ProcessPayment",
            "orchestration:OrderWorkflow:timer",
            "orchestration:ShippingWorkflow",
            "activity:ReserveInventory",
            "activity:CreateShipment",
            "create_orchestration:HelloSequence5",
            "orchestration:HelloSequence5",
            "activity:SayHello",
        ],
    )
    .await;
    let start = one(&received, "create_orchestration:OrderWorkflow");
    assert_eq!(start.parent_span_id, CALLER_SPAN);
    assert_eq!(start.kind, 3, "a client span");
    let orchestration = one(&received, "orchestration:OrderWorkflow");
    assert_eq!(orchestration.parent_span_id, start.span_id);
    assert_eq!(orchestration.kind, 2, "a server span");
    let shipping = one(&received, "orchestration:ShippingWorkflow");
    assert_eq!(shipping.parent_span_id, orchestration.span_id);
    // The payment fails once, waits for its retry on a timer, then succeeds.
    let payments: Vec<&Received> = received
        .iter()
        .filter(|span| span.name == "activity:ProcessPayment")
        .collect();
    assert_eq!(payments.len(), 2, "{received:#?}");
    assert!(payments
        .iter()
        .all(|span| span.parent_span_id == orchestration.span_id));
    let mut statuses: Vec<i32> = payments.iter().map(|span| span.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [0, 2],
        "the failed attempt is an error: {payments:#?}"
    );
    let retry_timer = one(&received, "orchestration:OrderWorkflow:timer");
    assert_eq!(retry_timer.parent_span_id, orchestration.span_id);
    for (activity, parent) in [
        ("activity:ValidateOrder", orchestration),
        ("activity:ReserveInventory", shipping),
        ("activity:CreateShipment", shipping),
    ] {
        assert_eq!(
            one(&received, activity).parent_span_id,
            parent.span_id,
            "{activity} under {}",
            parent.name
        );
    }
    let hello: Vec<&Received> = received
        .iter()
        .filter(|span| span.name.ends_with("HelloSequence5") || span.name == "activity:SayHello")
        .collect();
    for span in &received {
        let in_callers = !hello.iter().any(|h| h.span_id == span.span_id);
        assert_eq!(
            span.trace_id == CALLER_TRACE,
            in_callers,
            "only the traced start's spans are in the caller's trace: {span:?}"
        );
    }
    let hello_start = one(&received, "create_orchestration:HelloSequence5");
    assert_eq!(hello_start.parent_span_id, "", "a root span");
    let hello_orchestration = one(&received, "orchestration:HelloSequence5");
    assert_eq!(hello_orchestration.parent_span_id, hello_start.span_id);
    assert!(hello
        .iter()
        .all(|span| span.trace_id == hello_start.trace_id));
    // Turns, invocations and log events are not exported: only the spans above.
    assert!(
        received.iter().all(|span| span.name.contains(':')),
        "{received:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_are_spans_of_their_orchestration_and_a_raised_event_joins_its_callers_trace() {
    let (app, spans) = traced_app().await;
    let claim = json!({"ClaimId": "C-1", "Claimant": "Ann Lee", "Amount": 1234.5, "Description": "Water damage"});
    let started = post_traced(
        &app,
        "/api/orchestrators/ClaimApprovalWorkflow/claim-1",
        &claim,
        CALLER_TRACE,
        CALLER_SPAN,
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    // The approval times out once (its timer fires) and escalates before the decision comes.
    app.wait_for("claim-1", Duration::from_secs(60), |status| {
        status["customStatus"]["Stage"] == "Escalated"
    })
    .await;
    let (event_trace, event_span) = ("5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8");
    let decision = json!({"Approved": true, "Approver": "carol", "Comment": "after escalation"});
    let raised = post_traced(
        &app,
        "/api/instances/claim-1/raiseEvent/ApprovalDecision",
        &decision,
        event_trace,
        event_span,
    )
    .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    let done = app.wait_for_end("claim-1", Duration::from_secs(60)).await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    // An ended instance takes no event; the refusal is the caller's to see, over HTTP.
    let late = app
        .post(
            "/api/instances/claim-1/raiseEvent/ApprovalDecision",
            &decision,
        )
        .await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.body);

    let received = wait_for_spans(
        &spans,
        &[
            "orchestration:ClaimApprovalWorkflow",
            "orchestration:ClaimApprovalWorkflow:timer",
            "raise_event:ApprovalDecision",
            "orchestration_event:ApprovalDecision",
        ],
    )
    .await;
    let orchestration = one(&received, "orchestration:ClaimApprovalWorkflow");
    assert_eq!(orchestration.trace_id, CALLER_TRACE);
    let timer = one(&received, "orchestration:ClaimApprovalWorkflow:timer");
    assert_eq!(timer.trace_id, CALLER_TRACE);
    assert_eq!(timer.parent_span_id, orchestration.span_id);
    let raise = received
        .iter()
        .find(|span| span.name == "raise_event:ApprovalDecision" && span.trace_id == event_trace)
        .expect("the raise in the caller's trace");
    assert_eq!(raise.parent_span_id, event_span);
    assert_eq!(raise.kind, 4, "a producer span");
    let delivered = one(&received, "orchestration_event:ApprovalDecision");
    assert_eq!(delivered.trace_id, event_trace);
    assert_eq!(delivered.parent_span_id, raise.span_id);
    assert_eq!(
        delivered.links,
        vec![(CALLER_TRACE.to_string(), orchestration.span_id.clone())],
        "linked to the orchestration that received it"
    );
}

/// A start made by a trigger function (the sync queue processor's `start_once`) is traced too:
/// the invocation's span, the start under it, the orchestration under the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_made_by_a_trigger_function_is_traced_under_its_invocation() {
    let (app, spans) = traced_app().await;
    let (_, clients) = app.storage();
    let item = json!({"Id": 1, "SyncName": "Traced", "TriggerDateUtc": "2026-12-02T10:00:00Z"});
    clients
        .queues
        .queue_client("output-queue")
        .put_message(BASE64.encode(item.to_string()))
        .await
        .unwrap();
    let done = app
        .wait_for_end("Workflow-1-Traced-20261202100000", Duration::from_secs(60))
        .await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");

    let received = wait_for_spans(
        &spans,
        &[
            "function:SyncQueueProcessor",
            "create_orchestration:MainWorkflow",
            "orchestration:MainWorkflow",
        ],
    )
    .await;
    let function = one(&received, "function:SyncQueueProcessor");
    assert_eq!(
        function.parent_span_id, "",
        "the dev host sends no traceparent"
    );
    assert_eq!(function.kind, 5, "a consumer span");
    let start = one(&received, "create_orchestration:MainWorkflow");
    assert_eq!(start.parent_span_id, function.span_id);
    let orchestration = one(&received, "orchestration:MainWorkflow");
    assert_eq!(orchestration.parent_span_id, start.span_id);
    assert_eq!(orchestration.trace_id, function.trace_id);
}
