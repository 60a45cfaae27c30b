//! The Durable Functions management API over HTTP through the dev host: every route with the
//! status codes the extension answers, history and paging in its shapes, purge, rewind,
//! restart, suspend and terminate, the storage requests each instance spent, hostile input
//! refused with JSON errors, an event that arrives before its instance shown by the stuck view
//! until it applies; and an unmodified official Durable Functions client (the Python one from
//! PyPI) driving the app.
//! Each test owns its app, so they run in parallel.

#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use app::{Answer, App};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

/// Any request: `path` goes on the wire as written (already percent-encoded).
async fn request(
    app: &App,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut builder = app.http.request(method, format!("{}{path}", app.base));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    App::answer(builder.send().await.expect("request through the dev host")).await
}

/// A request that must be refused: method, path, headers, body, the status and words the error
/// must contain.
type BadRequest<'a> = (
    Method,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<Vec<u8>>,
    StatusCode,
    &'a str,
);

async fn post_empty(app: &App, path: &str) -> Answer {
    request(app, Method::POST, path, &[], None).await
}

async fn delete(app: &App, path: &str) -> Answer {
    request(app, Method::DELETE, path, &[], None).await
}

/// Asserts a JSON error answer with `status` whose message mentions `needle`.
fn assert_error(answer: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let message = answer.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {} {}", answer.status, answer.body));
    assert!(
        message.contains(needle),
        "'{message}' does not mention '{needle}'"
    );
    assert_eq!(
        answer.headers["content-type"], "application/json",
        "errors are JSON"
    );
}

/// Polls `path` until it answers 2xx with a body `done` accepts; returns that body.
async fn wait_until(app: &App, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    app.wait_until(path, LONG, done).await
}

fn has_event(status: &Value, event_type: &str) -> bool {
    status["historyEvents"]
        .as_array()
        .is_some_and(|h| h.iter().any(|e| e["EventType"] == event_type))
}

async fn start(app: &App, name: &str, id: &str, input: &Value) {
    let started = app
        .post(&format!("/api/orchestrators/{name}/{id}"), input)
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
}

fn order(id: &str, simulate: Value) -> Value {
    json!({
        "OrderId": id,
        "CustomerId": "K-9",
        "Items": [{"Sku": "A", "Quantity": 2, "UnitPrice": 9.5}],
        "Simulate": simulate,
    })
}

fn claim(id: &str) -> Value {
    json!({"ClaimId": id, "Claimant": "Ann Lee", "Amount": 12.5, "Description": "Hail"})
}

fn ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn events<'a>(status: &'a Value, event_type: &str) -> Vec<&'a Value> {
    status["historyEvents"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {status}"))
        .iter()
        .filter(|e| e["EventType"] == event_type)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_history_in_the_extensions_shape_and_codes() {
    let app = App::start(&[("ORDER_PAYMENT_RETRY_MAX_ATTEMPTS", "1")]).await;
    start(&app, "HelloSequence5", "h-1", &json!({"Who": "me"})).await;
    start(
        &app,
        "OrderWorkflow",
        "o-1",
        &order("O-1", json!({"PaymentTransientFailures": 1})),
    )
    .await;
    app.wait_for_end("h-1", LONG).await;

    let full = app
        .get("/api/instances/h-1?showHistory=true&showHistoryOutput=true")
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert_eq!(
        full.body["input"],
        json!({"Who": "me"}),
        "showInput defaults to true"
    );
    let history = full.body["historyEvents"].as_array().unwrap();
    assert_eq!(history[0]["EventType"], "ExecutionStarted");
    assert_eq!(history[0]["FunctionName"], "HelloSequence5");
    assert!(history[0].get("Input").is_none(), "{}", history[0]);
    let completed = events(&full.body, "TaskCompleted");
    assert_eq!(completed.len(), 5, "{}", full.body);
    assert_eq!(completed[0]["FunctionName"], "SayHello");
    assert_eq!(completed[0]["Result"], "Hello Tokyo!");
    assert!(completed[0]["ScheduledTime"].is_string());
    let last = history.last().unwrap();
    assert_eq!(last["EventType"], "ExecutionCompleted");
    assert_eq!(last["OrchestrationStatus"], "Completed");
    assert_eq!(last["Result"].as_array().map(Vec::len), Some(5));
    for event in history {
        assert!(event.get("EventId").is_none(), "{event}");
        let kind = event["EventType"].as_str().unwrap();
        assert!(
            !matches!(
                kind,
                "OrchestratorStarted" | "OrchestratorCompleted" | "TaskScheduled"
            ),
            "{kind} rows are folded away"
        );
        let timestamp = event["Timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2018-02-28T05:18:49.3452372Z".len(),
            "{timestamp}"
        );
    }

    let quiet = app
        .get("/api/instances/h-1?showHistory=true&showInput=false")
        .await;
    assert_eq!(quiet.body["input"], Value::Null);
    assert!(events(&quiet.body, "TaskCompleted")[0]
        .get("Result")
        .is_none());
    let plain = app.get("/api/instances/h-1").await;
    assert!(plain.body.get("historyEvents").is_none());
    assert_eq!(
        plain.body["createdTime"].as_str().unwrap().len(),
        20,
        "seconds, Z"
    );

    let failed = app.wait_for_end("o-1", LONG).await;
    assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
    let as_500 = app
        .get("/api/instances/o-1?returnInternalServerErrorOnFailure=true")
        .await;
    assert_eq!(as_500.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(as_500.body["runtimeStatus"], "Failed");
    assert_eq!(app.get("/api/instances/o-1").await.status, StatusCode::OK);

    assert_error(
        &app.get("/api/instances/nobody").await,
        StatusCode::NOT_FOUND,
        "nobody",
    );
    for (path, needle) in [
        ("/api/instances/a%2Fb", "forbidden character"),
        ("/api/instances/a%01b", "control character"),
        // '@' starts an entity's id, `@name@key`, which this is not.
        ("/api/instances/%40entity", "@name@key"),
        ("/api/instances/h-1?showHistory=yes", "showHistory"),
        ("/api/instances/h-1?taskHub=otherhub", "otherhub"),
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, needle);
    }
    let long = "x".repeat(300);
    assert_error(
        &app.get(&format!("/api/instances/{long}")).await,
        StatusCode::BAD_REQUEST,
        "maximum",
    );
    // An OData expression in an id is only an id: it names no instance.
    let injected = app
        .get("/api/instances/h-1'%20or%20PartitionKey%20ne%20'")
        .await;
    assert_eq!(injected.status, StatusCode::NOT_FOUND, "{}", injected.body);
    // Paths and methods no route takes (within the routes the host forwards).
    assert_error(
        &app.get("/api/instances/h-1/a/b/c").await,
        StatusCode::NOT_FOUND,
        "/api/instances/h-1/a/b/c",
    );
    assert_error(
        &post_empty(&app, "/api/instances/h-1").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "POST",
    );
    assert_error(
        &app.get("/api/instances/h-1/terminate").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_in_storage_and_page_with_continuation_tokens() {
    let app = App::start(&[]).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    for id in ["q-1", "q-2", "q-3", "q'4", "q'5"] {
        start(&app, "HelloSequence5", id, &json!({"Id": id})).await;
    }
    // A generated id: 32 hex digits, so never under the "q" prefixes below.
    let other = app.start_instance("HelloSequence5", &json!(null)).await;
    start(&app, "ClaimApprovalWorkflow", "q-claim", &claim("C-1")).await;
    for id in ["q-1", "q-2", "q-3", "q'4", "q'5", &other] {
        app.wait_for_end(id, LONG).await;
    }

    // Pages of two under a prefix, the token passed back in the header.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let headers: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| vec![("x-ms-continuation-token", t)])
            .unwrap_or_default();
        let page = request(
            &app,
            Method::GET,
            "/api/instances?instanceIdPrefix=q-&top=2",
            &headers,
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body.as_array().unwrap();
        assert!(items.len() <= 2);
        assert!(
            items.iter().all(|i| i["input"].is_null()),
            "showInput defaults to false"
        );
        seen.extend(ids(&page.body));
        pages += 1;
        match page.headers.get("x-ms-continuation-token") {
            Some(next) => token = Some(next.to_str().unwrap().to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    seen.sort();
    assert_eq!(seen, ["q-1", "q-2", "q-3", "q-claim"]);
    assert!(pages >= 2);

    let completed = app
        .get("/api/instances/?instanceIdPrefix=q-&runtimeStatus=Completed&showInput=true")
        .await;
    assert_eq!(ids(&completed.body), ["q-1", "q-2", "q-3"]);
    assert_eq!(completed.body[0]["input"]["Id"], "q-1");
    let running = app
        .get("/api/instances?runtimeStatus=Running,Pending")
        .await;
    assert_eq!(ids(&running.body), ["q-claim"]);
    let everything = app.get("/api/instances").await;
    assert_eq!(everything.body.as_array().unwrap().len(), 7);

    // Quotes are id characters: matched literally, never as OData.
    let quoted = app.get("/api/instances?instanceIdPrefix=q'").await;
    assert_eq!(ids(&quoted.body), ["q'4", "q'5"]);
    let injected = app
        .get("/api/instances?instanceIdPrefix=zz'%20or%20PartitionKey%20ne%20'")
        .await;
    assert_eq!(injected.status, StatusCode::OK);
    assert_eq!(injected.body, json!([]));

    let from = before.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string();
    let in_range = app
        .get(&format!(
            "/api/instances?createdTimeFrom={from}&instanceIdPrefix=q"
        ))
        .await;
    assert_eq!(in_range.body.as_array().unwrap().len(), 6);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let none = app
        .get(&format!("/api/instances?createdTimeFrom={later}"))
        .await;
    assert_eq!(none.body, json!([]));
    let until_before = app
        .get(&format!(
            "/api/instances?createdTimeTo={}",
            before.format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .await;
    assert_eq!(until_before.body, json!([]));

    for (path, needle) in [
        ("/api/instances?runtimeStatus=Done", "'Done'"),
        (
            "/api/instances?runtimeStatus=Running'%20or%20'1",
            "runtime status",
        ),
        (
            "/api/instances?createdTimeFrom=yesterday",
            "createdTimeFrom",
        ),
        (
            "/api/instances?createdTimeFrom=2026-02-01&createdTimeTo=2026-01-01",
            "before",
        ),
        ("/api/instances?top=0", "top"),
        ("/api/instances?top=many", "top"),
        ("/api/instances?instanceIdPrefix=q%00", "control character"),
        ("/api/instances?instanceIdPrefix=q%2F", "'/'"),
        ("/api/instances?showInput=1", "showInput"),
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, needle);
    }
    let forged = request(
        &app,
        Method::GET,
        "/api/instances",
        &[("x-ms-continuation-token", "PartitionKey gt ''")],
        None,
    )
    .await;
    assert_error(&forged, StatusCode::BAD_REQUEST, "x-ms-continuation-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_held_while_suspended_and_bad_requests_are_refused() {
    let app = App::start(&[("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600")]).await;
    start(&app, "ClaimApprovalWorkflow", "c-1", &claim("C-1")).await;
    app.wait_for("c-1", LONG, |s| {
        s["customStatus"]["Stage"] == "AwaitingApproval"
    })
    .await;

    let suspended = post_empty(&app, "/api/instances/c-1/suspend?reason=audit").await;
    assert_eq!(suspended.status, StatusCode::ACCEPTED, "{}", suspended.body);
    app.wait_for("c-1", LONG, |s| s["runtimeStatus"] == "Suspended")
        .await;
    let decision = json!({"Approved": true, "Approver": "a", "Comment": "c"});
    let raised = app
        .post("/api/instances/c-1/RAISEEVENT/ApprovalDecision", &decision)
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    // The event is recorded, and held: the code has not seen it.
    let held = wait_until(&app, "/api/instances/c-1?showHistory=true", |s| {
        has_event(s, "EventRaised")
    })
    .await;
    assert_eq!(held["runtimeStatus"], "Suspended", "{held}");
    assert_eq!(held["customStatus"]["Stage"], "AwaitingApproval");
    assert_eq!(events(&held, "ExecutionSuspended")[0]["Reason"], "audit");
    let resumed = post_empty(&app, "/api/instances/c-1/resume?reason=done").await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED);
    let done = app.wait_for_end("c-1", LONG).await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"]["Status"], "Approved", "{done}");

    // Ended: every operation but restart answers 410 Gone.
    for op in ["terminate", "suspend", "resume"] {
        let gone = post_empty(&app, &format!("/api/instances/c-1/{op}?reason=x")).await;
        assert_error(&gone, StatusCode::GONE, "ended");
    }
    assert_error(
        &app.post("/api/instances/c-1/raiseEvent/ApprovalDecision", &decision)
            .await,
        StatusCode::GONE,
        "ended",
    );
    // Unknown instances: 404 for every operation.
    for op in ["terminate", "suspend", "resume", "rewind", "restart"] {
        let missing = post_empty(&app, &format!("/api/instances/nobody/{op}")).await;
        assert_error(&missing, StatusCode::NOT_FOUND, "nobody");
    }
    assert_error(
        &app.post("/api/instances/nobody/raiseEvent/Go", &json!(1))
            .await,
        StatusCode::NOT_FOUND,
        "nobody",
    );

    start(&app, "ClaimApprovalWorkflow", "c-2", &claim("C-2")).await;
    let json_header = [("content-type", "application/json")];
    let cases: Vec<BadRequest> = vec![
        (
            Method::POST,
            "/api/instances/c-2/raiseEvent/ApprovalDecision",
            &[("content-type", "text/plain")],
            Some(b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
            "application/json",
        ),
        (
            Method::POST,
            "/api/instances/c-2/raiseEvent/ApprovalDecision",
            &[],
            Some(b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
            "application/json",
        ),
        (
            Method::POST,
            "/api/instances/c-2/raiseEvent/ApprovalDecision",
            &json_header,
            Some(b"{\"Approved\":".to_vec()),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            Method::POST,
            "/api/instances/c-2/raiseEvent/Bad%01Name",
            &json_header,
            Some(b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
            "control characters",
        ),
        (
            Method::POST,
            "/api/instances/c-2/raiseEvent/ApprovalDecision",
            &json_header,
            Some(vec![b' '; 17 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            Method::POST,
            "/api/orchestrators/HelloSequence5",
            &json_header,
            Some(vec![b'1'; 17 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            Method::POST,
            "/api/orchestrators/HelloSequence5/bad%0Aid",
            &json_header,
            None,
            StatusCode::BAD_REQUEST,
            "control character",
        ),
    ];
    for (index, (method, path, headers, body, status, needle)) in cases.into_iter().enumerate() {
        let answer = request(&app, method, path, headers, body).await;
        assert_eq!(answer.status, status, "case {index}: {}", answer.body);
        assert_error(&answer, status, needle);
    }
    // None of that touched c-2: it still waits, and takes a well-formed decision.
    app.wait_for("c-2", LONG, |s| {
        s["customStatus"]["Stage"] == "AwaitingApproval"
    })
    .await;
    let history = app.get("/api/instances/c-2?showHistory=true").await;
    assert!(
        events(&history.body, "EventRaised").is_empty(),
        "{}",
        history.body
    );
    let reject = json!({"Approved": false, "Approver": "b", "Comment": "no"});
    let raised = app
        .post("/api/instances/c-2/raiseEvent/ApprovalDecision", &reject)
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED);
    let done = app.wait_for_end("c-2", LONG).await;
    assert_eq!(done["output"]["Status"], "Rejected", "{done}");
}

/// The count of storage requests in a status answer.
fn storage_requests(status: &Value) -> u64 {
    status["storageRequests"]
        .as_u64()
        .unwrap_or_else(|| panic!("no storage requests counted: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_the_storage_requests_each_instance_spent() {
    let app = App::start(&[("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600")]).await;
    // Started over HTTP, its activities in its one turn: the summary insert, the commit and the
    // summary update, as `scripts/bench.sh` counts them at Azurite (README, "Performance"); a
    // retried request, or a start that found no free eager turn, costs a little more.
    start(&app, "HelloSequence5", "counted", &Value::Null).await;
    let done = app.wait_for_end("counted", LONG).await;
    let spent = storage_requests(&done);
    assert!((3..=5).contains(&spent), "{spent} storage requests: {done}");

    // A claim waits for its decision: the event's turn adds what it and the raise spent.
    start(
        &app,
        "ClaimApprovalWorkflow",
        "counted-claim",
        &claim("C-9"),
    )
    .await;
    let waiting = app
        .wait_for("counted-claim", LONG, |s| {
            s["customStatus"]["Stage"] == "AwaitingApproval"
        })
        .await;
    let before = storage_requests(&waiting);
    let decision = json!({"Approved": true, "Approver": "a", "Comment": "c"});
    let raised = app
        .post(
            "/api/instances/counted-claim/raiseEvent/ApprovalDecision",
            &decision,
        )
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    let approved = app.wait_for_end("counted-claim", LONG).await;
    let after = storage_requests(&approved);
    // At least the raise's summary read and send, and the turn's commit and summary write.
    assert!(
        after >= before + 4,
        "{before} before the decision, {after} after"
    );
    // With the history, the state is read as well: it never counts less than the summary.
    let detailed = app
        .get("/api/instances/counted-claim?showHistory=true")
        .await;
    assert!(
        storage_requests(&detailed.body) >= after,
        "{}",
        detailed.body
    );
}

/// The item `GET /api/stuck` lists for message `id` waiting for its instance's start, if any.
fn waiting_item(list: &Value, id: &str) -> Option<Value> {
    list.as_array()?
        .iter()
        .find(|i| i["reason"] == "waitingForStart" && i["messageId"] == id)
        .cloned()
}

/// An approval that arrives before its claim exists waits for the claim's start (the stuck
/// view shows it, at once with the threshold set to 0), and is applied once the claim starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_overtakes_its_start_is_shown_waiting_then_applied() {
    let app = App::start(&[
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600"),
        ("DURABLE_RECORD_DEFERRAL_SECONDS", "0"),
    ])
    .await;
    let decision = json!({"Approved": true, "Approver": "bo", "Comment": "early"});
    // The API refuses an event for an instance that does not exist; queues can still carry one.
    assert_error(
        &app.post(
            "/api/instances/early/raiseEvent/ApprovalDecision",
            &decision,
        )
        .await,
        StatusCode::NOT_FOUND,
        "no instance",
    );
    let id = app
        .send_event_unchecked("early", "ApprovalDecision", &decision)
        .await;
    let listed = wait_until(&app, "/api/stuck?idleSeconds=0", |list| {
        waiting_item(list, &id).is_some()
    })
    .await;
    let item = waiting_item(&listed, &id).unwrap();
    assert_eq!(item["instanceId"], "early", "{item}");
    assert_eq!(item["eventType"], "EventRaised", "{item}");
    assert_eq!(item["eventName"], "ApprovalDecision", "{item}");
    assert!(
        item["queue"].as_str().unwrap().starts_with("control-"),
        "{item}"
    );
    assert!(item["waitedSeconds"].as_u64().is_some(), "{item}");
    let time = |field: &str| chrono::DateTime::parse_from_rfc3339(item[field].as_str().unwrap());
    let waits = time("parksAt").unwrap() - time("sentTime").unwrap();
    assert_eq!(
        waits.num_seconds(),
        600,
        "DURABLE_MAX_DEFERRAL_SECONDS' default: {item}"
    );
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .contains("EventRaised 'ApprovalDecision'"),
        "{item}"
    );
    let later = app.get("/api/stuck?idleSeconds=3600").await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert!(waiting_item(&later.body, &id).is_none(), "not an hour yet");

    start(&app, "ClaimApprovalWorkflow", "early", &claim("C-7")).await;
    let done = app.wait_for_end("early", LONG).await;
    assert_eq!(done["output"]["Status"], "Approved", "{done}");
    assert_eq!(done["output"]["Approver"], "bo", "{done}");
    let after = app.get("/api/stuck?idleSeconds=0").await;
    assert!(waiting_item(&after.body, &id).is_none(), "{}", after.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_stops_the_instance_for_good() {
    let app = App::start(&[
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "4"),
        ("ACTIVITY_WORK_DELAY_MS", "3000"),
    ])
    .await;
    // A pipeline whose twenty-four cleansing activities (more than run in-process) are out on
    // the work-item queue, running, when it is terminated.
    let pipeline = json!({"Generate": {"Partitions": 24, "RecordsPerPartition": 5, "Seed": 1}});
    start(&app, "MedallionPipeline", "t-pipe", &pipeline).await;
    // A claim waiting for a decision, its timeout timer queued.
    start(&app, "ClaimApprovalWorkflow", "t-claim", &claim("C-1")).await;
    wait_until(&app, "/api/instances/t-pipe?showHistory=true", |s| {
        s["runtimeStatus"] == "Running" && has_event(s, "TaskScheduled")
    })
    .await;
    let stopped = post_empty(&app, "/api/instances/t-pipe/terminate?reason=cancelled").await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);
    app.wait_for("t-claim", LONG, |s| {
        s["customStatus"]["Stage"] == "AwaitingApproval"
    })
    .await;
    let stopped = post_empty(
        &app,
        "/api/instances/t-claim/terminate?reason=fraud%20suspected",
    )
    .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);

    let mut ended = Vec::new();
    for (id, reason) in [("t-pipe", "cancelled"), ("t-claim", "fraud suspected")] {
        let end = app.wait_for_end(id, LONG).await;
        assert_eq!(end["runtimeStatus"], "Terminated", "{end}");
        assert_eq!(end["output"], reason);
        let history = app
            .get(&format!("/api/instances/{id}?showHistory=true"))
            .await;
        ended.push((id, history.body));
    }
    let terminated = &ended[0].1;
    assert!(
        events(terminated, "TaskScheduled").len() >= 24,
        "the activities were still out when it ended: {terminated}"
    );
    // The activities finish and report, the claim's timer fires: all of it is dropped.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for (id, before) in &ended {
        let after = app
            .get(&format!("/api/instances/{id}?showHistory=true"))
            .await;
        assert_eq!(after.body["runtimeStatus"], "Terminated", "{}", after.body);
        assert_eq!(
            after.body["historyEvents"], before["historyEvents"],
            "nothing was applied after the end"
        );
        let last = after.body["historyEvents"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["EventType"], "ExecutionCompleted", "{last}");
        assert_eq!(last["OrchestrationStatus"], "Terminated");
        let again = post_empty(&app, &format!("/api/instances/{id}/terminate")).await;
        assert_error(&again, StatusCode::GONE, "ended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_reruns_failed_work_and_restart_starts_again() {
    let app = App::start(&[
        ("ORDER_PAYMENT_RETRY_MAX_ATTEMPTS", "1"),
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600"),
    ])
    .await;
    start(
        &app,
        "OrderWorkflow",
        "r-order",
        &order("O-1", json!({"PaymentTransientFailures": 1})),
    )
    .await;
    start(&app, "HelloSequence5", "r-hello", &json!({"Who": "again"})).await;
    let failed = app.wait_for_end("r-order", LONG).await;
    assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
    assert!(
        failed["output"].as_str().unwrap().contains("attempt 1"),
        "{failed}"
    );
    let first_failure = app.get("/api/instances/r-order?showHistory=true").await;
    let first_failed_at = events(&first_failure.body, "TaskFailed")[0]["Timestamp"].clone();

    // The payment runs again, under the same execution and task id: for the simulated gateway
    // it is the same attempt (the idempotency key a real gateway dedupes charges by), so it
    // fails the same way. Rewind re-ran it; it did not forge a second attempt.
    let rewound = post_empty(&app, "/api/instances/r-order/rewind?reason=gateway%20back").await;
    assert_eq!(rewound.status, StatusCode::ACCEPTED, "{}", rewound.body);
    let again = wait_until(&app, "/api/instances/r-order?showHistory=true", |s| {
        s["runtimeStatus"] == "Failed" && has_event(s, "GenericEvent")
    })
    .await;
    let failures = events(&again, "TaskFailed");
    assert_eq!(failures.len(), 1, "the old failure was replaced: {again}");
    assert_eq!(failures[0]["FunctionName"], "ProcessPayment");
    assert_ne!(failures[0]["Timestamp"], first_failed_at, "it ran again");
    assert_eq!(
        events(&again, "GenericEvent")[0]["Data"],
        "Rewound: gateway back"
    );
    assert_eq!(
        events(&again, "TaskCompleted").len(),
        1,
        "validation did not rerun"
    );
    assert!(
        again["output"].as_str().unwrap().contains("attempt 1"),
        "{again}"
    );

    // Only failed instances rewind.
    app.wait_for_end("r-hello", LONG).await;
    assert_error(
        &post_empty(&app, "/api/instances/r-hello/rewind").await,
        StatusCode::PRECONDITION_FAILED,
        "Completed",
    );

    // Restart: a new id by default, with the same input.
    let restarted = post_empty(&app, "/api/instances/r-hello/restart").await;
    assert_eq!(restarted.status, StatusCode::ACCEPTED, "{}", restarted.body);
    let new_id = restarted.body["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, "r-hello");
    assert!(restarted.headers["location"]
        .to_str()
        .unwrap()
        .contains(&format!("/api/instances/{new_id}")));
    let second = app.wait_for_end(&new_id, LONG).await;
    assert_eq!(second["runtimeStatus"], "Completed");
    assert_eq!(second["input"], json!({"Who": "again"}));
    // The same id, waiting for the end: 200 with the output.
    let same = post_empty(
        &app,
        "/api/instances/r-hello/restart?restartWithNewInstanceId=false&timeout=30&pollingInterval=0.1",
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.body.as_array().map(Vec::len), Some(5), "{}", same.body);
    // A failed instance restarts from its input, failure and all.
    let from_failed = post_empty(
        &app,
        "/api/instances/r-order/restart?restartWithNewInstanceId=false",
    )
    .await;
    assert_eq!(
        from_failed.status,
        StatusCode::ACCEPTED,
        "{}",
        from_failed.body
    );
    assert_eq!(from_failed.body["id"], "r-order");
    wait_until(&app, "/api/instances/r-order?showHistory=true", |s| {
        s["runtimeStatus"] == "Failed" && !has_event(s, "GenericEvent")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_ended_instances_one_or_by_filter() {
    let app = App::start(&[("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600")]).await;
    let from = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for id in ["p-1", "p-2", "p-3", "keep-1"] {
        start(&app, "HelloSequence5", id, &json!(null)).await;
    }
    start(&app, "ClaimApprovalWorkflow", "p-claim", &claim("C-1")).await;
    for id in ["p-1", "p-2", "p-3", "keep-1"] {
        app.wait_for_end(id, LONG).await;
    }

    assert_error(
        &delete(&app, "/api/instances/p-claim").await,
        StatusCode::PRECONDITION_FAILED,
        "has ended",
    );
    let one = delete(&app, "/api/instances/p-1").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body, json!({"instancesDeleted": 1}));
    assert_error(
        &app.get("/api/instances/p-1").await,
        StatusCode::NOT_FOUND,
        "p-1",
    );
    assert_error(
        &delete(&app, "/api/instances/p-1").await,
        StatusCode::NOT_FOUND,
        "p-1",
    );
    assert_error(
        &delete(&app, "/api/instances/p%2F1").await,
        StatusCode::BAD_REQUEST,
        "'/'",
    );

    for (path, needle) in [
        ("/api/instances", "createdTimeFrom"),
        ("/api/instances?runtimeStatus=Completed", "createdTimeFrom"),
        ("/api/instances?createdTimeFrom=soon", "createdTimeFrom"),
        (
            &format!("/api/instances?createdTimeFrom={from}&runtimeStatus=Running"),
            "ended",
        ),
        // The list narrows by name after its query; a purge refuses it rather than ignore it.
        (
            &format!("/api/instances?createdTimeFrom={from}&name=HelloSequence5"),
            "'name'",
        ),
    ] {
        assert_error(&delete(&app, path).await, StatusCode::BAD_REQUEST, needle);
    }
    let by_filter = delete(
        &app,
        &format!("/api/instances/?createdTimeFrom={from}&runtimeStatus=Completed,Failed&instanceIdPrefix=p-"),
    )
    .await;
    assert_eq!(by_filter.status, StatusCode::OK, "{}", by_filter.body);
    assert_eq!(by_filter.body, json!({"instancesDeleted": 2}));
    let left = app.get("/api/instances").await;
    assert_eq!(
        ids(&left.body),
        ["keep-1", "p-claim"],
        "running and unmatched stay"
    );
    let nothing = delete(
        &app,
        &format!("/api/instances?createdTimeFrom={from}&instanceIdPrefix=p-"),
    )
    .await;
    assert_error(&nothing, StatusCode::NOT_FOUND, "matches");

    // A purged id starts afresh.
    start(&app, "HelloSequence5", "p-2", &json!(null)).await;
    let fresh = app.wait_for_end("p-2", LONG).await;
    assert_eq!(fresh["runtimeStatus"], "Completed");
    let history = app.get("/api/instances/p-2?showHistory=true").await;
    assert_eq!(events(&history.body, "ExecutionStarted").len(), 1);
}

/// `?recursive=true`: an order terminated while its shipping sub-orchestration runs ends with
/// that child terminated too, before the order could hear of it (no refund), and a recursive
/// purge deletes both; a flag that is neither true nor false is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_terminate_and_purge_reach_the_sub_orchestrations() {
    // Slow activities, each committed before the next: the child runs for seconds.
    let app = App::start(&[
        ("ACTIVITY_WORK_DELAY_MS", "5000"),
        ("DURABLE_CHECKPOINT_INTERVAL_MS", "0"),
    ])
    .await;
    start(&app, "OrderWorkflow", "r-order", &order("O-1", json!(null))).await;
    // The child's default id starts with its parent's.
    let children = wait_until(&app, "/api/instances?instanceIdPrefix=r-order:", |list| {
        list.as_array().is_some_and(|list| !list.is_empty())
    })
    .await;
    let child = ids(&children).remove(0);

    for (method, path) in [
        (
            Method::POST,
            "/api/instances/r-order/terminate?recursive=yes",
        ),
        (Method::DELETE, "/api/instances/r-order?recursive=1"),
    ] {
        let refused = request(&app, method, path, &[], None).await;
        assert_error(&refused, StatusCode::BAD_REQUEST, "'recursive'");
    }
    let stopped = post_empty(
        &app,
        "/api/instances/r-order/terminate?reason=cancelled&recursive=true",
    )
    .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);
    for id in ["r-order", child.as_str()] {
        let end = app.wait_for_end(id, LONG).await;
        assert_eq!(end["runtimeStatus"], "Terminated", "{id}: {end}");
        assert_eq!(end["output"], "cancelled", "{id}");
    }
    let order_history = app.get("/api/instances/r-order?showHistory=true").await;
    assert!(
        events(&order_history.body, "SubOrchestrationInstanceFailed").is_empty()
            && !events(&order_history.body, "TaskCompleted")
                .iter()
                .any(|e| e["Name"] == "RefundPayment"),
        "the order never saw its child fail: {}",
        order_history.body
    );

    let from = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_error(
        &delete(
            &app,
            &format!("/api/instances?createdTimeFrom={from}&recursive=true"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "'recursive'",
    );
    let purged = delete(&app, "/api/instances/r-order?recursive=true").await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.body);
    assert_eq!(purged.body, json!({"instancesDeleted": 2}));
    for id in ["r-order", child.as_str()] {
        assert_eq!(
            app.get(&format!("/api/instances/{id}")).await.status,
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
}

/// `scripts/df-client.sh` installs the client from `tests/df_client/requirements.txt` (hashes
/// pinned) into a venv under `target/` and runs `tests/df_client/drive.py` against the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_drives_the_app() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let install = Command::new(root.join("scripts/df-client.sh"))
        .arg("--install-only")
        .output()
        .expect("run scripts/df-client.sh");
    assert!(
        install.status.success(),
        "the Durable Functions client could not be installed:\n{}\n{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    // The client sends inputs and event data JSON-encoded twice, as against the extension; the
    // typed claim approval takes them (drive.py starts, approves and reads claims).
    let app = App::start(&[("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600")]).await;
    let base = app.base.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(root.join("scripts/df-client.sh"))
            .args([
                "--base-url",
                &format!("{base}/api/"),
                "--task-hub",
                "e2ehub",
            ])
            .output()
            .expect("run the client script")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the client script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// Versions, tags and scheduled starts over HTTP: the start's parameters, the status fields,
/// the query filters, the default version from an app setting overriding host.json, and bad
/// input refused with JSON 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_carry_versions_tags_and_schedules_that_queries_filter_by() {
    let app = App::start(&[
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600"),
        (
            "AzureFunctionsJobHost__extensions__durableTask__defaultVersion",
            "1.5",
        ),
    ])
    .await;
    let started = app
        .post(
            "/api/orchestrators/ClaimApprovalWorkflow/tagged?version=1.2&tag.team=data&tag.env=prod",
            &claim("C-1"),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    start(&app, "ClaimApprovalWorkflow", "plain", &claim("C-2")).await;
    let status = app
        .wait_for("tagged", LONG, |s| s["runtimeStatus"] == "Running")
        .await;
    assert_eq!(status["version"], "1.2", "{status}");
    assert_eq!(status["tags"], json!({"team": "data", "env": "prod"}));
    let plain = app
        .wait_for("plain", LONG, |s| s["runtimeStatus"] == "Running")
        .await;
    assert_eq!(
        plain["version"], "1.5",
        "the app setting's default: {plain}"
    );
    assert!(plain.get("tags").is_none(), "{plain}");

    for (query, expected) in [
        ("version=1.2", vec!["tagged"]),
        ("version=1.5", vec!["plain"]),
        ("tag.team=data", vec!["tagged"]),
        ("tag.team", vec!["tagged"]),
        ("tag.team=ops", vec![]),
        ("tag.team=data&tag.env=prod&version=1.2", vec!["tagged"]),
        ("tag.owner", vec![]),
    ] {
        let list = app.get(&format!("/api/instances?{query}")).await;
        assert_eq!(list.status, StatusCode::OK, "{query}: {}", list.body);
        assert_eq!(ids(&list.body), expected, "{query}");
    }

    // Scheduled two seconds ahead: Pending until then, then it runs.
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let scheduled = app
        .post(
            &format!(
                "/api/orchestrators/HelloSequence5/scheduled?scheduledStartTime={}",
                at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            ),
            &Value::Null,
        )
        .await;
    assert_eq!(scheduled.status, StatusCode::ACCEPTED, "{}", scheduled.body);
    let pending = app.get("/api/instances/scheduled").await;
    assert_eq!(pending.body["runtimeStatus"], "Pending", "{}", pending.body);
    let done = app.wait_for_end("scheduled", LONG).await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    let history = app
        .get("/api/instances/scheduled?showHistory=true")
        .await
        .body;
    // The start keeps the time it was made; everything the execution did is from its time on.
    let events = history["historyEvents"].as_array().unwrap();
    assert!(events.len() > 2, "{history}");
    for event in events
        .iter()
        .filter(|e| e["EventType"] != "ExecutionStarted")
    {
        let time = event["Timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("no time: {event}"));
        assert!(time >= at, "{event} before {at}");
    }

    let big = "x".repeat(1000);
    for (path, needle) in [
        (
            format!("/api/orchestrators/HelloSequence5?tag.big={big}"),
            "at most 1000",
        ),
        (
            "/api/orchestrators/HelloSequence5?tag.=1".to_string(),
            "names no tag",
        ),
        (
            "/api/orchestrators/HelloSequence5?scheduledStartTime=soon".to_string(),
            "scheduledStartTime",
        ),
        (
            format!(
                "/api/orchestrators/HelloSequence5?version={}",
                "9".repeat(101)
            ),
            "at most 100",
        ),
    ] {
        assert_error(
            &app.post(&path, &Value::Null).await,
            StatusCode::BAD_REQUEST,
            needle,
        );
    }
    assert_error(
        &app.get("/api/instances?tag.=x").await,
        StatusCode::BAD_REQUEST,
        "names no tag",
    );
}
