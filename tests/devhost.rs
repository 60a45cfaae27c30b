//! The dev host driving the real worker over HTTP from real Azurite queues, as the Functions
//! host would: engine messages become turns, a failing function's message is retried up to
//! `maxDequeueCount` and then moved to `<queue>-poison`, and a message that is not base64 goes
//! to poison at once.

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_storage_queues::QueueServiceClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use durable_engine::{OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry};
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_runtime::Runtime;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::TaskHub;
use serde_json::json;
use supervised::Supervised;

const HUB: &str = "devhosthub";

/// An app directory with the engine's queue functions and one function the worker lacks.
fn app_dir() -> PathBuf {
    let root = std::env::temp_dir().join(format!("devhost-app-{}", uuid::Uuid::new_v4().simple()));
    let write = |path: &Path, value: serde_json::Value| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    };
    write(
        &root.join("host.json"),
        json!({
            "version": "2.0",
            "customHandler": { "description": { "defaultExecutablePath": "handler" } },
            "extensions": { "queues": {
                "maxPollingInterval": "00:00:01", "visibilityTimeout": "00:00:00",
                "batchSize": 16, "maxDequeueCount": 2, "messageEncoding": "base64"
            } }
        }),
    );
    let queue_function = |queue: &str| {
        json!({ "bindings": [ { "type": "queueTrigger", "direction": "in", "name": "message",
            "queueName": queue, "connection": "AzureWebJobsStorage" } ] })
    };
    for partition in 0..4 {
        write(
            &root.join(format!(
                "functions/DurableControl0{partition}/function.json"
            )),
            queue_function(&format!("%TaskHub%-control-0{partition}")),
        );
    }
    write(
        &root.join("functions/DurableWorkItems/function.json"),
        queue_function("%TaskHub%-workitems"),
    );
    write(
        &root.join("functions/Broken/function.json"),
        queue_function("broken-items"),
    );
    write(
        &root.join("functions/Parked/function.json"),
        queue_function("parked-items"),
    );
    root
}

async fn probe(_ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(())
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_dev_host_runs_queue_triggers_with_the_hosts_semantics() {
    let azurite = azurite::Azurite::start();
    let root = app_dir();
    let _devhost = Supervised(
        Command::new(binaries::devhost())
            .arg(&root)
            .env("DEVHOST_WORKER", env!("CARGO_BIN_EXE_worker"))
            .env("AzureWebJobsStorage", azurite.connection_string())
            .env("TaskHub", HUB)
            .env("AzureWebJobs.Parked.Disabled", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the dev host starts"),
    );

    let settings = [("AzureWebJobsStorage", azurite.connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
    let backend = Arc::new(
        AzureBackend::connect(
            &connection,
            TaskHub::new(HUB).unwrap(),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    backend.create_task_hub().await.unwrap();
    // The client knows "Probe"; the app's worker does not, so its first turn fails it.
    let registry = Registry::builder()
        .orchestrator("Probe", probe)
        .build()
        .unwrap();
    let client = Runtime::new(backend.clone(), registry, Arc::new(SystemClock));
    client.start("Probe", Some("probe-1"), &()).await.unwrap();
    let failure = wait_for("the worker's turn", async || {
        let loaded = backend.load("probe-1").await.ok().flatten()?;
        (loaded.state.status == OrchestrationStatus::Failed).then_some(loaded.state.failure?)
    })
    .await;
    assert_eq!(failure.error_type, "OrchestratorNotFound");

    let queues: QueueServiceClient = connection
        .build_clients(http_client(HttpSettings::default()).unwrap())
        .unwrap()
        .queues;
    let broken = queues.queue_client("broken-items");
    let poison = queues.queue_client("broken-items-poison");
    let texts_on = |queue: azure_storage_queues::QueueClient| async move {
        queue
            .peek_messages()
            .number_of_messages(32u8)
            .await
            .map(|r| {
                r.messages
                    .into_iter()
                    .map(|m| m.message_text)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    // "Parked" is disabled by its setting: its message is left alone (the worker would answer
    // 404 and it would end in poison like the ones below otherwise).
    let parked = queues.queue_client("parked-items");
    parked.create().await.unwrap();
    parked
        .put_message(BASE64.encode("{\"job\":0}"))
        .await
        .unwrap();

    // The worker answers 404 for "Broken": retried to maxDequeueCount (2), then poisoned.
    broken
        .put_message(BASE64.encode("{\"job\":1}"))
        .await
        .unwrap();
    wait_for("the failing message in the poison queue", async || {
        texts_on(poison.clone())
            .await
            .contains(&BASE64.encode("{\"job\":1}"))
            .then_some(())
    })
    .await;
    assert!(
        texts_on(broken.clone()).await.is_empty(),
        "removed from its queue"
    );

    // Not base64: straight to poison.
    broken.put_message("not base64!").await.unwrap();
    wait_for("the undecodable message in the poison queue", async || {
        texts_on(poison.clone())
            .await
            .contains(&"not base64!".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(
        texts_on(parked).await,
        vec![BASE64.encode("{\"job\":0}")],
        "a disabled function's queue is not read"
    );
    let _ = std::fs::remove_dir_all(&root);
}
