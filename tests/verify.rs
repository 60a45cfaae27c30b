//! `worker verify` against Azurite: the seed app writes histories with this build (sequences,
//! one kept in blobs for its large input, claims ended and waiting), then the built `worker`
//! checks them (all OK) and a changed build of it (`tests/verify/changed_worker.rs`, an example)
//! finds its nondeterminism and its missing orchestrator; neither writes to the task hub.

// Shared with the other end-to-end tests, which use other parts of it.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use durable_protocol::connection::{http_client, HttpSettings, StorageClients, StorageConnection};
use durable_store::names::TaskHub;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use app::App;
use azurite::Azurite;

const HUB: &str = "verifyhub";
const LONG: Duration = Duration::from_secs(60);

/// What a `worker verify` run printed and how it exited.
struct Run {
    code: Option<i32>,
    lines: Vec<String>,
    stderr: String,
}

/// Runs `worker verify ARGS` with only the storage settings in its environment.
fn verify(worker: &Path, storage: &str, hub: &str, args: &[&str]) -> Run {
    let output = Command::new(worker)
        .arg("verify")
        .args(args)
        .env_clear()
        .env("AzureWebJobsStorage", storage)
        .env("TaskHub", hub)
        .output()
        .expect("run worker verify");
    Run {
        code: output.status.code(),
        lines: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn clients(storage: &str) -> StorageClients {
    StorageConnection::from_settings([("AzureWebJobsStorage", storage)], "AzureWebJobsStorage")
        .unwrap()
        .build_clients(http_client(HttpSettings::default()).unwrap())
        .unwrap()
}

/// Every row of the task hub's tables and every blob of its large-message container, with
/// their ETags, which any write changes.
async fn snapshot(clients: &StorageClients) -> Value {
    let hub = TaskHub::new(HUB).unwrap();
    let mut stored = Map::new();
    for table in [hub.history_table(), hub.instances_table()] {
        let mut rows = Vec::new();
        let mut pages = clients
            .tables
            .table_client(table.clone())
            .query()
            .into_stream::<Map<String, Value>>();
        while let Some(page) = pages.next().await {
            rows.extend(page.unwrap().entities.into_iter().map(Value::Object));
        }
        stored.insert(table, Value::Array(rows));
    }
    stored.insert("blobs".to_string(), Value::Array(blobs(clients).await));
    Value::Object(stored)
}

/// `[name, etag]` of each large-message blob.
async fn blobs(clients: &StorageClients) -> Vec<Value> {
    let container = TaskHub::new(HUB).unwrap().large_messages_container();
    let mut blobs = Vec::new();
    let mut pages = clients
        .blobs
        .container_client(container)
        .list_blobs()
        .into_stream();
    while let Some(page) = pages.next().await {
        blobs.extend(
            page.unwrap()
                .blobs
                .blobs()
                .map(|blob| json!([blob.name, blob.properties.etag.to_string()])),
        );
    }
    blobs
}

/// The seed app writes: two completed sequences (one with a 200 KB input, so its state and
/// history rows keep their JSON in blobs), a claim approved and one waiting for its decision.
async fn record(storage: &str) {
    let app = App::start_on(storage, HUB, &[]).await;
    let started = |id: &'static str, name: &'static str, input: Value| {
        let app = &app;
        async move {
            let answer = app
                .post(&format!("/api/orchestrators/{name}/{id}"), &input)
                .await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        }
    };
    started("hello-small", "HelloSequence5", Value::Null).await;
    started(
        "hello-large",
        "HelloSequence5",
        json!({"Padding": "x".repeat(200_000)}),
    )
    .await;
    let claim = |id: &str| json!({"ClaimId": id, "Claimant": "Ann Lee", "Amount": 1234.5, "Description": "Water damage"});
    started("claim-approved", "ClaimApprovalWorkflow", claim("C-1")).await;
    started("claim-waiting", "ClaimApprovalWorkflow", claim("C-2")).await;
    for id in ["claim-approved", "claim-waiting"] {
        app.wait_for(id, LONG, |s| {
            s["customStatus"]["Stage"] == "AwaitingApproval"
        })
        .await;
    }
    let raised = app
        .post(
            "/api/instances/claim-approved/raiseEvent/ApprovalDecision",
            &json!({"Approved": true, "Approver": "alice"}),
        )
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{}", raised.body);
    for id in ["hello-small", "hello-large", "claim-approved"] {
        let ended = app.wait_for_end(id, LONG).await;
        assert_eq!(ended["runtimeStatus"], "Completed", "{ended}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_histories_replay_on_this_build_and_a_changed_one_is_caught() {
    let changed = binaries::example("seed-app", "changed-worker");
    let worker = Path::new(env!("CARGO_BIN_EXE_worker"));
    let azurite = Azurite::start();
    let storage = azurite.connection_string();
    record(&storage).await;
    let clients = clients(&storage);
    let before = snapshot(&clients).await;
    assert!(
        blobs(&clients)
            .await
            .iter()
            .any(|blob| blob[0].as_str().unwrap().starts_with("hello-large/")),
        "the large input is kept in blobs: {before}"
    );

    let same = verify(worker, &storage, HUB, &[]);
    assert_eq!(
        same.code,
        Some(0),
        "{}\n{}",
        same.lines.join("\n"),
        same.stderr
    );
    let ids: Vec<&str> = same.lines[..4]
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "claim-approved",
            "claim-waiting",
            "hello-large",
            "hello-small"
        ]
    );
    for line in &same.lines[..4] {
        assert!(line.starts_with("OK "), "{line}");
        assert!(line.ends_with("turns replayed as recorded"), "{line}");
    }
    assert_eq!(
        same.lines[4..],
        [
            "PASSED task hub 'verifyhub': 4 instances checked, 4 OK, 0 nondeterminism, 0 unknown \
          orchestrator, 0 unreadable, 0 skipped"
        ]
    );

    let run = verify(&changed, &storage, HUB, &[]);
    assert_eq!(
        run.code,
        Some(1),
        "{}\n{}",
        run.lines.join("\n"),
        run.stderr
    );
    let unknown = |id: &str| {
        format!("UNKNOWN ORCHESTRATOR {id} (ClaimApprovalWorkflow): not registered in this build")
    };
    // The third greeting's turn: the start's, then one per greeting that completed.
    let nondeterminism = |id: &str| {
        format!(
            "NONDETERMINISM {id} (HelloSequence5): turn 2: recorded activity 'SayHello' (#2) \
             with input \"London\"; this build decided activity 'SayGoodbye' (#2) with input \
             \"London\""
        )
    };
    assert_eq!(
        run.lines[..4],
        [
            unknown("claim-approved"),
            unknown("claim-waiting"),
            nondeterminism("hello-large"),
            nondeterminism("hello-small"),
        ]
    );
    assert_eq!(
        run.lines[4..],
        [
            "FAILED task hub 'verifyhub': 4 instances checked, 0 OK, 2 nondeterminism, 2 unknown \
          orchestrator, 0 unreadable, 0 skipped"
        ]
    );

    // The filters choose what is checked.
    let running = verify(&changed, &storage, HUB, &["--status", "Running"]);
    assert_eq!(running.code, Some(1), "{}", running.stderr);
    assert_eq!(running.lines.len(), 2, "{:?}", running.lines);
    assert_eq!(running.lines[0], unknown("claim-waiting"));
    let one = verify(
        &changed,
        &storage,
        HUB,
        &["--prefix=hello-", "--sample", "1"],
    );
    assert_eq!(one.code, Some(1), "{}", one.stderr);
    assert_eq!(one.lines.len(), 2, "{:?}", one.lines);
    assert_eq!(one.lines[0], nondeterminism("hello-large"));
    let later = verify(
        &changed,
        &storage,
        HUB,
        &["--created-from", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(later.code, Some(0), "{}", later.stderr);
    assert_eq!(
        later.lines,
        [
            "PASSED task hub 'verifyhub': 0 instances checked, 0 OK, 0 nondeterminism, 0 unknown \
          orchestrator, 0 unreadable, 0 skipped"
        ]
    );

    // Bad options and settings exit with 2 and say why; a task hub that does not exist with 1.
    let bad = verify(worker, &storage, HUB, &["--status", "Done"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.lines.is_empty(), "{:?}", bad.lines);
    assert!(
        bad.stderr
            .starts_with("worker verify: --status: 'Done' is not a runtime status\n"),
        "{}",
        bad.stderr
    );
    let nowhere = Command::new(worker)
        .args(["verify"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&nowhere.stderr);
    assert!(
        stderr.starts_with(
            "worker verify: the storage connection is not configured: no storage connection \
             configured: set AzureWebJobsStorage"
        ),
        "{stderr}"
    );
    let missing = verify(worker, &storage, "nohub", &[]);
    assert_eq!(missing.code, Some(1), "{:?}", missing.lines);
    assert!(
        missing
            .stderr
            .starts_with("worker verify: cannot list the instances of task hub 'nohub': "),
        "{}",
        missing.stderr
    );
    let help = verify(worker, &storage, HUB, &["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(
        help.lines[0].starts_with("usage: worker verify "),
        "{:?}",
        help.lines
    );

    // Nothing was written: not the task hub checked, nor the one that did not exist.
    assert_eq!(snapshot(&clients).await, before);
    let tables: Vec<String> = clients
        .tables
        .list()
        .into_stream()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|page| page.unwrap().tables)
        .map(|table| table.name)
        .collect();
    assert!(
        !tables.iter().any(|name| name.starts_with("nohub")),
        "{tables:?}"
    );
}
