//! Poison messages end to end: Azurite, the dev host and the worker, an app whose `host.json`
//! gives up on a message after 3 deliveries. A message whose handling fails every time, a
//! malformed message and a message for a purged instance are each parked with why, shown on the
//! instance's status, and requeued or discarded through the API; none reaches a `-poison` queue.

// Shared with the other end-to-end tests; this one starts its own app directory.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::App;
use azure_data_tables::prelude::IfMatchCondition;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Utc;
use durable_engine::{EventKind, HistoryEvent};
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::model::{Destination, Message};
use durable_store::names::TaskHub;
use reqwest::StatusCode;
use serde_json::{json, Value};

const HUB: &str = "e2ehub";
const LONG: Duration = Duration::from_secs(60);
const MAX_DEQUEUE_COUNT: u64 = 3;

/// This repository's app with a `host.json` that retries a failed message at once, 3 times.
fn app_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("poison-app-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut host: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("host.json")).unwrap()).unwrap();
    host["extensions"]["queues"]["visibilityTimeout"] = json!("00:00:00");
    host["extensions"]["queues"]["maxDequeueCount"] = json!(MAX_DEQUEUE_COUNT);
    std::fs::write(dir.join("host.json"), host.to_string()).unwrap();
    for shared in ["functions", "local.settings.json"] {
        std::os::unix::fs::symlink(root.join(shared), dir.join(shared)).unwrap();
    }
    dir
}

async fn poison_of(app: &App, instance_id: &str) -> Vec<Value> {
    let answer = app
        .get(&format!("/api/poisonMessages?instanceId={instance_id}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body.as_array().cloned().unwrap_or_default()
}

async fn wait_for_poison(app: &App, instance_id: &str) -> Value {
    app.wait_until(
        &format!("/api/poisonMessages?instanceId={instance_id}"),
        LONG,
        |list| list.as_array().is_some_and(|list| !list.is_empty()),
    )
    .await[0]
        .clone()
}

async fn delete(app: &App, path: &str) -> app::Answer {
    let response = app
        .http
        .delete(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    App::answer(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_parked_shown_requeued_and_discarded() {
    let dir = app_dir();
    let app = App::start_in(&dir, &[("DURABLE_MAX_DEFERRAL_SECONDS", "2")]).await;
    let (connection, clients) = app.storage();

    // 1. A message whose handling fails every time: the instance's state is unreadable.
    let claim = json!({"ClaimId": "C-1", "Claimant": "Ann Lee", "Amount": 1234.5, "Description": "Water damage"});
    let started = app
        .post("/api/orchestrators/ClaimApprovalWorkflow/stuck-1", &claim)
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    app.wait_for("stuck-1", LONG, |s| {
        s["customStatus"]["Stage"] == "AwaitingApproval"
    })
    .await;
    let sentinel = clients
        .tables
        .table_client(format!("{HUB}History"))
        .partition_key_client("stuck-1")
        .entity_client("sentinel");
    let state = sentinel.get::<Value>().await.unwrap().entity["State"].clone();
    assert!(state.is_string(), "the state is inline: {state}");
    sentinel
        .merge(
            json!({"State": "{ this is not state"}),
            IfMatchCondition::Any,
        )
        .unwrap()
        .await
        .unwrap();
    let raised = app
        .post(
            "/api/instances/stuck-1/raiseEvent/ApprovalDecision",
            &json!({"Approved": true, "Approver": "alice", "Comment": "ok"}),
        )
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    // Recorded before the last delivery runs (should its worker die), then with why it failed.
    let parked = app
        .wait_until("/api/poisonMessages?instanceId=stuck-1", LONG, |list| {
            list[0]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("failed"))
        })
        .await[0]
        .clone();
    assert_eq!(parked["attempts"], MAX_DEQUEUE_COUNT, "{parked}");
    let reason = parked["reason"].as_str().unwrap();
    assert!(reason.contains("failed on all 3 deliveries"), "{parked}");
    assert!(reason.contains("read instance state"), "{parked}");
    assert!(parked["queue"].as_str().unwrap().starts_with("control-"));
    assert_eq!(
        parked["message"]["Event"]["Name"], "ApprovalDecision",
        "{parked}"
    );
    let status = app.get("/api/instances/stuck-1").await.body;
    assert_eq!(status["runtimeStatus"], "Running", "{status}");
    assert_eq!(status["poisonMessages"], 1, "{status}");

    // Repaired, the requeued message goes through and the status no longer mentions it.
    sentinel
        .merge(json!({ "State": state }), IfMatchCondition::Any)
        .unwrap()
        .await
        .unwrap();
    let id = parked["id"].as_str().unwrap();
    let requeued = app
        .post(&format!("/api/poisonMessages/{id}/requeue"), &json!(null))
        .await;
    assert_eq!(requeued.status, StatusCode::OK, "{}", requeued.body);
    assert_eq!(requeued.body["instanceId"], "stuck-1");
    let done = app.wait_for_end("stuck-1", LONG).await;
    assert_eq!(
        done["output"],
        json!({"ClaimId": "C-1", "Status": "Approved", "Approver": "alice"}),
        "{done}"
    );
    assert!(done.get("poisonMessages").is_none(), "{done}");
    assert!(poison_of(&app, "stuck-1").await.is_empty());
    let gone = app
        .post(&format!("/api/poisonMessages/{id}/requeue"), &json!(null))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);

    // 2. A malformed message is parked at its first delivery, with its text.
    let control = clients.queues.queue_client(format!("{HUB}-control-00"));
    control
        .put_message(BASE64.encode("this is not a message"))
        .await
        .unwrap();
    let all = app
        .wait_until("/api/poisonMessages", LONG, |list| {
            list.as_array()
                .is_some_and(|list| list.iter().any(|p| p["text"] == "this is not a message"))
        })
        .await;
    let malformed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["text"] == "this is not a message")
        .unwrap()
        .clone();
    assert_eq!(malformed["attempts"], 1, "{malformed}");
    assert_eq!(malformed["queue"], "control-00", "{malformed}");
    assert!(malformed.get("instanceId").is_none(), "{malformed}");
    let id = malformed["id"].as_str().unwrap();
    let one = app.get(&format!("/api/poisonMessages/{id}")).await;
    assert_eq!(one.body, malformed);
    let refused = app
        .post(&format!("/api/poisonMessages/{id}/requeue"), &json!(null))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("discard it"));
    let discarded = delete(&app, &format!("/api/poisonMessages/{id}")).await;
    assert_eq!(discarded.status, StatusCode::OK, "{}", discarded.body);
    let again = delete(&app, &format!("/api/poisonMessages/{id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);

    // 3. A message for a purged instance waits for a start that never comes, then is parked.
    let hello = app
        .post("/api/orchestrators/HelloSequence5/purged-1", &json!(null))
        .await;
    assert_eq!(hello.status, StatusCode::ACCEPTED, "{}", hello.body);
    app.wait_for_end("purged-1", LONG).await;
    let purged = delete(&app, "/api/instances/purged-1").await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.body);
    let backend = AzureBackend::connect(
        &connection,
        TaskHub::new(HUB).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let late = Message {
        id: "late-event-1".to_string(),
        destination: Destination::Instance {
            instance_id: "purged-1".to_string(),
            execution_id: None,
        },
        event: HistoryEvent::message(
            Utc::now(),
            EventKind::EventRaised {
                name: "Late".to_string(),
                input: None,
            },
        ),
        deliver_at: None,
        revision: None,
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
    };
    backend.send(&[late]).await.unwrap();
    let parked = wait_for_poison(&app, "purged-1").await;
    assert_eq!(parked["id"], "late-event-1", "{parked}");
    assert!(
        parked["reason"]
            .as_str()
            .unwrap()
            .starts_with("no instance 'purged-1' after waiting"),
        "{parked}"
    );
    let discarded = delete(&app, "/api/poisonMessages/late-event-1").await;
    assert_eq!(discarded.status, StatusCode::OK, "{}", discarded.body);
    assert!(poison_of(&app, "purged-1").await.is_empty());

    // Nothing went to the host's poison queues: every message was parked (or processed).
    for queue in backend.queues() {
        let name = match queue {
            durable_store::model::QueueKind::Control(n) => format!("{HUB}-control-{n:02}-poison"),
            durable_store::model::QueueKind::WorkItems => format!("{HUB}-workitems-poison"),
        };
        let peeked = clients
            .queues
            .queue_client(name.clone())
            .peek_messages()
            .number_of_messages(32)
            .await
            .unwrap();
        assert!(peeked.messages.is_empty(), "{name}: {:?}", peeked.messages);
    }
    let _ = std::fs::remove_dir_all(dir);
}
