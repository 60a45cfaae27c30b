//! End to end through the Functions-host path: Azurite, the dev host serving this repository's
//! `host.json` and `functions/`, and the worker under it, driven only over HTTP as a user (or
//! the sync and retention timers) would. Each test owns its app, so they run in parallel.

#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::App;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starter_and_status_speak_the_durable_functions_http_api() {
    let app = App::start(&[]).await;

    let started = app
        .post("/api/orchestrators/HelloSequence5/hello-1", &json!(null))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let status_uri = started.body["statusQueryGetUri"].as_str().unwrap();
    assert!(
        status_uri.starts_with(&format!(
            "{}/api/instances/hello-1?taskHub=e2ehub",
            app.base
        )) || status_uri.contains("/api/instances/hello-1?taskHub=e2ehub"),
        "{status_uri}"
    );
    assert_eq!(
        started.headers["location"].to_str().unwrap(),
        status_uri,
        "Location is the status URL"
    );
    assert_eq!(started.headers["retry-after"], "10");
    for key in [
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ] {
        assert!(
            started.body[key].is_string(),
            "{key} missing: {}",
            started.body
        );
    }

    let done = app.wait_for_end("hello-1", LONG).await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["name"], "HelloSequence5");
    assert_eq!(done["output"].as_array().map(Vec::len), Some(5), "{done}");
    let final_status = app.get("/api/instances/hello-1").await;
    assert_eq!(final_status.status, StatusCode::OK);

    // Starting with wait-for-completion answers with the output itself.
    let waited = app
        .post(
            "/api/orchestrators/FanOut10?timeout=30&pollingInterval=0.05",
            &json!(null),
        )
        .await;
    assert_eq!(waited.status, StatusCode::OK, "{}", waited.body);
    assert_eq!(
        waited.body.as_array().map(Vec::len),
        Some(10),
        "{}",
        waited.body
    );

    // A running id cannot be started again; bad requests are JSON 4xx with a message.
    let claim = json!({"ClaimId": "C-9", "Claimant": "Ann", "Amount": 10.0, "Description": "x"});
    let first = app
        .post("/api/orchestrators/ClaimApprovalWorkflow/claim-9", &claim)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let again = app
        .post("/api/orchestrators/ClaimApprovalWorkflow/claim-9", &claim)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let unknown = app
        .post("/api/orchestrators/NoSuchWorkflow", &json!({}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body["error"]
        .as_str()
        .unwrap()
        .contains("NoSuchWorkflow"));
    let not_json = app
        .http
        .post(format!("{}/api/orchestrators/HelloSequence5", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let missing = app.get("/api/instances/no-such-instance").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["error"].is_string());

    // Running instances answer 202 with Location and Retry-After.
    let running = app.get("/api/instances/claim-9").await;
    assert_eq!(running.status, StatusCode::ACCEPTED, "{}", running.body);
    assert_eq!(running.headers["retry-after"], "5");
    assert!(running.headers.contains_key("location"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_timer_produces_workflows_that_complete_and_fail() {
    let app = App::start(&[("AzureWebJobs.Function1.Disabled", "false")]).await;
    let started = Instant::now();
    let mut first_seen = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (completed, failed) = loop {
        let listed = app
            .get("/api/instances?instanceIdPrefix=Workflow-&top=100")
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        let instances = listed.body.as_array().cloned().unwrap_or_default();
        if !instances.is_empty() && first_seen.is_none() {
            first_seen = Some(started.elapsed());
        }
        let ended = |prefix: &str, status: &str| {
            instances
                .iter()
                .find(|i| {
                    i["instanceId"].as_str().unwrap_or("").starts_with(prefix)
                        && i["runtimeStatus"] == status
                })
                .cloned()
        };
        if let (Some(done), Some(failed)) = (
            ended("Workflow-1-", "Completed"),
            ended("Workflow-2-", "Failed"),
        ) {
            break (done, failed);
        }
        assert!(
            Instant::now() < deadline,
            "no completed Workflow-1 and failed Workflow-2 yet: {}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let first_seen = first_seen.expect("instances were listed");
    assert!(
        first_seen <= Duration::from_secs(30),
        "the first sync instance appeared after {first_seen:?}"
    );
    let id = completed["instanceId"].as_str().unwrap();
    let suffix = id.rsplit('-').next().unwrap();
    assert_eq!(suffix.len(), 14, "yyyyMMddHHmmss in {id}");
    assert!(suffix.bytes().all(|b| b.is_ascii_digit()), "{id}");
    let output = completed["output"].to_string();
    assert!(
        output.contains("WorkflowItem1") && output.contains("WorkflowItem2"),
        "{output}"
    );
    let error = failed["output"].as_str().unwrap_or_default();
    assert!(error.contains("WorkflowItem1"), "{failed}");
    assert!(
        error.contains('3'),
        "the error names the attempts made: {failed}"
    );
    // The input is the MySyncItem the timer wrote.
    let detail = app
        .get(&format!(
            "/api/instances/{}",
            failed["instanceId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail.body["input"]["Id"], 2, "{}", detail.body);
    assert!(detail.body["input"]["SyncName"].is_string());
    assert!(detail.body["input"]["TriggerDateUtc"].is_string());
}

/// A sync item put on `output-queue` by the newest Azure Storage Queues SDK for Python
/// (`scripts/queue-sdk.sh`, pinned in `tests/queue_sdk/requirements.txt`) reaches
/// `SyncQueueProcessor`, which runs it as the timer's items run: the app's Azurite takes the
/// storage API version that SDK speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_storage_sdk_puts_a_sync_item_the_app_runs() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let app = App::start(&[]).await;
    let item = json!({"Id": 1, "SyncName": "SdkSync", "TriggerDateUtc": "2026-01-02T03:04:05Z"});
    let connection = app.connection_string().expect("the app owns its Azurite");
    let message = item.to_string();
    let sent = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root.join("scripts/queue-sdk.sh"))
            .args(["--connection-string", &connection])
            .args(["--queue", "output-queue"])
            .args(["--message", &message])
            .output()
            .expect("run scripts/queue-sdk.sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.contains("sent message"),
        "the SDK could not put the message:\n{stdout}\n{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let done = app
        .wait_for_end("Workflow-1-SdkSync-20260102030405", LONG)
        .await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["input"], item, "{done}");
    assert!(
        done["output"]
            .as_str()
            .is_some_and(|output| output.contains("WorkflowItem2 processed item 1 of SdkSync")),
        "{done}"
    );
}

async fn wait_for_stage(app: &App, id: &str, stage: &str) {
    app.wait_for(id, LONG, |s| s["customStatus"]["Stage"] == stage)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_approved_rejected_escalated_and_expire() {
    let app = App::start(&[("CLAIM_APPROVAL_TIMEOUT_SECONDS", "4")]).await;
    let claim = |id: &str| json!({"ClaimId": id, "Claimant": "Ann Lee", "Amount": 1234.5, "Description": "Water damage"});
    let decide = |approved: bool, approver: &str, comment: &str| json!({"Approved": approved, "Approver": approver, "Comment": comment});
    let raise = |id: String, body: Value| {
        let app = &app;
        async move {
            let answer = app
                .post(
                    &format!("/api/instances/{id}/raiseEvent/ApprovalDecision"),
                    &body,
                )
                .await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        }
    };

    let approve = app
        .post(
            "/api/orchestrators/ClaimApprovalWorkflow/claim-approve",
            &claim("C-1"),
        )
        .await;
    assert_eq!(approve.status, StatusCode::ACCEPTED);
    let reject = app
        .start_instance("ClaimApprovalWorkflow", &claim("C-2"))
        .await;
    let invalid = app
        .start_instance(
            "ClaimApprovalWorkflow",
            &json!({"ClaimId": "C-3", "Claimant": "Bo", "Amount": 0, "Description": "nothing"}),
        )
        .await;
    let escalate = app
        .start_instance("ClaimApprovalWorkflow", &claim("C-4"))
        .await;
    let expire = app
        .start_instance("ClaimApprovalWorkflow", &claim("C-5"))
        .await;

    wait_for_stage(&app, "claim-approve", "AwaitingApproval").await;
    raise("claim-approve".into(), decide(true, "alice", "fine")).await;
    wait_for_stage(&app, &reject, "AwaitingApproval").await;
    raise(reject.clone(), decide(false, "bob", "not covered")).await;
    wait_for_stage(&app, &escalate, "Escalated").await;
    raise(escalate.clone(), decide(true, "carol", "after escalation")).await;

    let approved = app.wait_for_end("claim-approve", LONG).await;
    assert_eq!(
        approved["output"],
        json!({"ClaimId": "C-1", "Status": "Approved", "Approver": "alice"}),
        "{approved}"
    );
    let rejected = app.wait_for_end(&reject, LONG).await;
    assert_eq!(
        rejected["output"],
        json!({"ClaimId": "C-2", "Status": "Rejected", "Approver": "bob", "Reason": "not covered"}),
        "{rejected}"
    );
    let invalid = app.wait_for_end(&invalid, LONG).await;
    assert_eq!(invalid["output"]["ClaimId"], "C-3", "{invalid}");
    assert_eq!(invalid["output"]["Status"], "Rejected", "{invalid}");
    assert!(invalid["output"]["Reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let escalated = app.wait_for_end(&escalate, LONG).await;
    assert_eq!(
        escalated["output"],
        json!({"ClaimId": "C-4", "Status": "Approved", "Approver": "carol"}),
        "{escalated}"
    );
    let expired = app.wait_for_end(&expire, LONG).await;
    assert_eq!(expired["output"]["Status"], "Expired", "{expired}");

    // An ended instance takes no more events.
    let late = app
        .post(
            "/api/instances/claim-approve/raiseEvent/ApprovalDecision",
            &decide(false, "x", "late"),
        )
        .await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.body);
}

fn order(id: &str, simulate: Value) -> Value {
    json!({
        "OrderId": id,
        "CustomerId": "cust-7",
        "Items": [
            {"Sku": "A", "Quantity": 2, "UnitPrice": 9.5},
            {"Sku": "B", "Quantity": 1, "UnitPrice": 3.25}
        ],
        "Simulate": simulate
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_complete_retry_decline_refund_and_reject_bad_input() {
    let app = App::start(&[]).await;
    let success = app
        .start_instance("OrderWorkflow", &order("O-1", json!(null)))
        .await;
    let transient = app
        .start_instance(
            "OrderWorkflow",
            &order("O-2", json!({"PaymentTransientFailures": 2})),
        )
        .await;
    let declined = app
        .start_instance(
            "OrderWorkflow",
            &order("O-3", json!({"PaymentDeclined": true})),
        )
        .await;
    let refunded = app
        .start_instance(
            "OrderWorkflow",
            &order("O-4", json!({"ShippingFailure": true})),
        )
        .await;
    let invalid = app
        .start_instance(
            "OrderWorkflow",
            &json!({"OrderId": "O-5", "CustomerId": "c", "Items": [{"Sku": "A", "Quantity": 0, "UnitPrice": 1.0}]}),
        )
        .await;

    let done = app.wait_for_end(&success, LONG).await;
    let output = &done["output"];
    assert_eq!(output["OrderId"], "O-1", "{done}");
    assert_eq!(output["Status"], "Completed", "{done}");
    assert_eq!(output["Total"], 22.25, "{done}");
    assert!(output["PaymentId"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(output["TrackingNumber"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));

    let retried = app.wait_for_end(&transient, LONG).await;
    assert_eq!(retried["output"]["Status"], "Completed", "{retried}");
    assert_eq!(retried["output"]["OrderId"], "O-2");

    let declined = app.wait_for_end(&declined, LONG).await;
    assert_eq!(
        declined["output"]["Status"], "PaymentDeclined",
        "{declined}"
    );

    let refunded = app.wait_for_end(&refunded, LONG).await;
    assert_eq!(refunded["output"]["Status"], "Refunded", "{refunded}");
    assert_eq!(refunded["output"]["OrderId"], "O-4");

    let invalid = app.wait_for_end(&invalid, LONG).await;
    assert_eq!(invalid["output"]["Status"], "Invalid", "{invalid}");
}

/// The gold figures the pipeline should produce, computed here from the rules in the issue.
fn expected_gold(records: &[Value]) -> (usize, BTreeMap<String, (u64, f64)>) {
    let mut seen = std::collections::HashSet::new();
    let mut gold = BTreeMap::new();
    let mut kept = 0;
    for record in records {
        let id = record["Id"].as_str().unwrap_or("");
        let category = record["Category"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_lowercase();
        let amount = record["Amount"].as_f64();
        let time_ok = record["Timestamp"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        let valid = !id.is_empty()
            && !category.is_empty()
            && amount.is_some_and(|a| a.is_finite() && a >= 0.0)
            && time_ok;
        if !valid || !seen.insert(id.to_string()) {
            continue;
        }
        kept += 1;
        let entry = gold.entry(category).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += amount.unwrap();
    }
    (kept, gold)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_medallion_pipeline_refines_records_to_gold() {
    let app = App::start(&[]).await;
    let mut records = Vec::new();
    let categories = ["Books", " books ", "TOYS", "garden", ""];
    for i in 0..120 {
        records.push(json!({
            "Id": format!("r{}", i % 100),
            "Category": categories[i % categories.len()],
            "Amount": (i as f64) * 1.25 - if i % 17 == 0 { 500.0 } else { 0.0 },
            "Timestamp": if i % 23 == 0 { "not a time".to_string() } else { format!("2026-03-{:02}T10:00:00Z", 1 + i % 28) },
        }));
    }
    records.push(json!({"Category": "books", "Amount": 1.0, "Timestamp": "2026-03-01T00:00:00Z"}));
    records.push(json!({"Id": "x1", "Category": "books", "Amount": "12", "Timestamp": "2026-03-01T00:00:00Z"}));
    let (kept, gold) = expected_gold(&records);

    let given = app
        .start_instance(
            "MedallionPipeline",
            &json!({"Records": records, "Partitions": 3}),
        )
        .await;
    let generated = app
        .start_instance(
            "MedallionPipeline",
            &json!({"Generate": {"Partitions": 4, "RecordsPerPartition": 1000, "Seed": 42}}),
        )
        .await;

    let done = app.wait_for_end(&given, LONG).await;
    let output = &done["output"];
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(output["Bronze"], records.len(), "{output}");
    assert_eq!(output["Silver"], kept, "{output}");
    assert_eq!(output["Rejected"], records.len() - kept, "{output}");
    let actual = output["Gold"].as_object().expect("Gold is an object");
    assert_eq!(
        actual.keys().cloned().collect::<Vec<_>>(),
        gold.keys().cloned().collect::<Vec<_>>(),
        "{output}"
    );
    for (category, (count, sum)) in &gold {
        assert_eq!(actual[category]["Count"], *count, "{category}: {output}");
        let got = actual[category]["Sum"].as_f64().unwrap();
        assert!((got - sum).abs() < 1e-6, "{category}: {got} vs {sum}");
    }

    let big = app.wait_for_end(&generated, Duration::from_secs(120)).await;
    assert_eq!(big["runtimeStatus"], "Completed", "{big}");
    let output = &big["output"];
    assert_eq!(output["Bronze"], 4000, "{output}");
    assert_eq!(
        output["Silver"].as_u64().unwrap() + output["Rejected"].as_u64().unwrap(),
        4000,
        "{output}"
    );
    let counted: u64 = output["Gold"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["Count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, output["Silver"].as_u64().unwrap(), "{output}");
}

/// Starts a claim, sends a decision its code skips as malformed (a line logged by the
/// orchestration code, in a turn), approves it, and returns the app's log: the dev host's and
/// the worker's stdout, a file here as it is a pipe under the Functions host.
async fn claim_logged(app: &App, id: &str) -> String {
    let claim =
        json!({"ClaimId": "C-LOG", "Claimant": "Ann Lee", "Amount": 5, "Description": "logs"});
    let started = app
        .post(
            &format!("/api/orchestrators/ClaimApprovalWorkflow/{id}"),
            &claim,
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    wait_for_stage(app, id, "AwaitingApproval").await;
    for decision in [
        json!({"Approved": "maybe"}),
        json!({"Approved": true, "Approver": "al"}),
    ] {
        let raised = app
            .post(
                &format!("/api/instances/{id}/raiseEvent/ApprovalDecision"),
                &decision,
            )
            .await;
        assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    }
    let done = app.wait_for_end(id, LONG).await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    app.log_text()
}

/// `DURABLE_LOG_FORMAT=json`: every line is a JSON object, none holds an escape code, and the
/// lines logged in a turn (by the orchestration code, on an engine thread) or in an activity
/// carry the instance id, the execution id and the function's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_instance_execution_and_function_without_colour() {
    let app = App::start(&[("DURABLE_LOG_FORMAT", "json")]).await;
    let log = claim_logged(&app, "c-json").await;
    assert!(!log.contains('\x1b'), "an escape code in:\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message))
            })
            .unwrap_or_else(|| panic!("no line '{message}' in:\n{log}"))
            .clone()
    };
    let turn = line("ignored a malformed ApprovalDecision");
    let notified = line("approval requested");
    let paid = line("claim paid out");
    for (line, function) in [
        (&turn, "ClaimApprovalWorkflow"),
        (&notified, "NotifyApprover"),
        (&paid, "ProcessClaim"),
    ] {
        assert_eq!(line["instance_id"], "c-json", "{line}");
        assert_eq!(line["function"], function, "{line}");
        assert_eq!(line["execution_id"], turn["execution_id"], "{line}");
    }
    let execution_id = turn["execution_id"].as_str().unwrap_or_default();
    assert_eq!(execution_id.len(), 32, "{turn}");
    assert!(lines.iter().all(|line| line["level"].is_string()));
}

/// The default text format, piped: no escape codes; spans still name the instance and function.
/// An unknown format stops the worker and the dev host at start with the setting named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_when_piped_and_unknown_formats_are_refused() {
    let app = App::start(&[]).await;
    let log = claim_logged(&app, "c-text").await;
    assert!(!log.contains('\x1b'), "an escape code in:\n{log}");
    let paid = log
        .lines()
        .find(|line| line.contains("claim paid out"))
        .unwrap_or_else(|| panic!("no paid-out line in:\n{log}"));
    assert!(
        paid.contains("instance_id=c-text") && paid.contains("function=ProcessClaim"),
        "{paid}"
    );

    for program in [env!("CARGO_BIN_EXE_worker").into(), binaries::devhost()] {
        let refused = std::process::Command::new(&program)
            .env("DURABLE_LOG_FORMAT", "xml")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", "1")
            .output()
            .expect("run the program");
        let stdout = String::from_utf8_lossy(&refused.stdout);
        assert_eq!(refused.status.code(), Some(1), "{program:?}: {stdout}");
        assert!(
            stdout.contains("DURABLE_LOG_FORMAT='xml' is not a log format: use 'text' or 'json'"),
            "{program:?}: {stdout}"
        );
    }
}

/// Retention as an operator runs it: the dev host fires the engine's `DurableRetention` timer
/// on the schedule the settings give, and the worker purges the instances ended longer ago than
/// their status keeps them; the others stay, and the log says what went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_timer_purges_what_has_ended_long_enough() {
    let app = App::start(&[
        ("DURABLE_RETENTION_SCHEDULE", "*/2 * * * * *"),
        ("DURABLE_RETENTION_COMPLETED", "3s"),
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600"),
    ])
    .await;
    let completed = app.start_instance("HelloSequence5", &json!(null)).await;
    // Failed instances have no retention here; a negative count fails the orchestration.
    let failed = app
        .start_instance("FanOutFanIn", &json!({"Count": -1}))
        .await;
    let waiting = app
        .start_instance(
            "ClaimApprovalWorkflow",
            &json!({"ClaimId": "C-1", "Claimant": "Ann Lee", "Amount": 12.5, "Description": "Hail"}),
        )
        .await;
    assert_eq!(
        app.wait_for_end(&completed, LONG).await["runtimeStatus"],
        "Completed"
    );
    assert_eq!(
        app.wait_for_end(&failed, LONG).await["runtimeStatus"],
        "Failed"
    );

    let deadline = Instant::now() + LONG;
    while app.get(&format!("/api/instances/{completed}")).await.status != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "the completed instance was never purged; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        app.log_text().contains(&completed),
        "the log names what was purged:\n{}",
        app.log_text()
    );

    // Two more runs later, what has no retention, or has not ended, is still there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        app.get(&format!("/api/instances/{failed}")).await.body["runtimeStatus"],
        "Failed"
    );
    assert_eq!(
        app.get(&format!("/api/instances/{waiting}")).await.body["runtimeStatus"],
        "Running"
    );
}
