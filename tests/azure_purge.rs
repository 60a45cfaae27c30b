//! Purges against a real Azurite leave no blob of the instance behind: payloads offloaded for
//! the queues (activity calls and results, a sub-orchestration's start and result, a raised
//! event) and for the tables (state, history, summary) all go, by id, recursively and by filter;
//! a poison record's blob outlives any instance's purge, even one of an instance named `poison`.

#[path = "common/azurite.rs"]
mod azurite;

use std::sync::Arc;
use std::time::Duration;

use azure_storage_blobs::prelude::ContainerClient;
use chrono::TimeZone;
use durable_engine::{
    ActivityContext, ActivityError, EventKind, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry,
};
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_runtime::{Pump, Runtime, RuntimeOptions};
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::model::{InstanceQuery, PoisonMessage};
use durable_store::names::TaskHub;
use futures::StreamExt;

const HUB: &str = "PurgeBlobs";
/// Well past both limits: 45 KiB of JSON on a queue, 64 KiB (UTF-16) in a table property.
const LARGE: usize = 100_000;

async fn echo(_: ActivityContext, text: String) -> Result<String, ActivityError> {
    Ok(text)
}

async fn child(_: OrchestrationContext, text: String) -> Result<String, OrchestrationError> {
    Ok(text)
}

/// Every payload large: its input through a queued activity, a child and an event, and back
/// out as its output.
async fn large(ctx: OrchestrationContext, text: String) -> Result<String, OrchestrationError> {
    let echoed: String = ctx.call_activity("Echo", &text).await?;
    let child: String = ctx.call_sub_orchestrator("Child", None, &echoed).await?;
    let event: String = ctx.wait_for_external_event("Go").await?;
    Ok(format!("{child}{event}"))
}

struct Hub {
    runtime: Arc<Runtime<AzureBackend>>,
    pump: Pump<AzureBackend>,
    container: ContainerClient,
}

impl Hub {
    async fn new(azurite: &azurite::Azurite) -> Hub {
        let settings = [("AzureWebJobsStorage", azurite.connection_string())];
        let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
        let clients = connection
            .build_clients(http_client(HttpSettings::default()).unwrap())
            .unwrap();
        let hub = TaskHub::new(HUB).unwrap();
        let container = clients
            .blobs
            .container_client(hub.large_messages_container());
        let backend = Arc::new(AzureBackend::from_clients(
            clients,
            hub,
            Arc::new(SystemClock),
        ));
        backend.create_task_hub().await.unwrap();
        let registry = Registry::builder()
            .orchestrator("Large", large)
            .orchestrator("Child", child)
            .activity("Echo", echo)
            .build()
            .unwrap();
        let options = RuntimeOptions {
            // Activities travel the work-item queue, so calls and results are messages.
            inline_activities: false,
            ..RuntimeOptions::default()
        };
        let runtime = Arc::new(Runtime::with_options(
            backend,
            registry,
            Arc::new(SystemClock),
            options,
        ));
        let pump = Pump::new(
            runtime.clone(),
            Duration::from_secs(30),
            Duration::from_millis(100),
        );
        Hub {
            runtime,
            pump,
            container,
        }
    }

    /// Every blob name in the large-messages container.
    async fn blobs(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut pages = self.container.list_blobs().into_stream();
        while let Some(page) = pages.next().await {
            names.extend(page.unwrap().blobs.blobs().map(|blob| blob.name.clone()));
        }
        names.sort();
        names
    }

    /// Runs the pump until `done` holds of the instance's status, or fails after a while.
    async fn run_until(&self, id: &str, done: impl Fn(OrchestrationStatus) -> bool) {
        for _ in 0..200 {
            self.pump.run_until_idle(1_000).await;
            if let Some(summary) = self.runtime.status(id).await.unwrap() {
                if done(summary.status) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("'{id}' did not get there");
    }

    /// Runs `Large` as `id` to its end, every payload offloaded, and returns its child's id.
    async fn run_large(&self, id: &str) -> String {
        let text = "x".repeat(LARGE);
        self.runtime.start("Large", Some(id), &text).await.unwrap();
        // Kept in the history until the code waits for it.
        self.runtime.raise_event(id, "Go", &text).await.unwrap();
        self.run_until(id, OrchestrationStatus::is_terminal).await;
        let summary = self.runtime.status(id).await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{:?}",
            summary.failure
        );
        assert_eq!(summary.output.map(|o| o.len()), Some(2 * LARGE + 2));
        let history = self.runtime.history(id).await.unwrap().unwrap();
        history
            .into_iter()
            .find_map(|event| match event.kind {
                EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => Some(instance_id),
                _ => None,
            })
            .expect("a child was started")
    }
}

/// The escaped-id folders of `blobs` (`{id}/…`).
fn folders(blobs: &[String]) -> Vec<&str> {
    let mut folders: Vec<&str> = blobs
        .iter()
        .filter_map(|name| name.split_once('/').map(|(folder, _)| folder))
        .collect();
    folders.dedup();
    folders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_delete_every_blob_of_their_instances() {
    let azurite = azurite::Azurite::start();
    let hub = Hub::new(&azurite).await;

    let child = hub.run_large("by-id").await;
    let blobs = hub.blobs().await;
    assert_eq!(
        folders(&blobs),
        {
            let mut expected = vec!["by-id", child.as_str()];
            expected.sort();
            expected
        },
        "{blobs:?}"
    );
    let kinds = |folder: &str| -> Vec<String> {
        let mut kinds: Vec<String> = blobs
            .iter()
            .filter_map(|name| name.strip_prefix(&format!("{folder}/")))
            .map(|name| name.split('-').next().unwrap_or_default().to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    // Queue payloads and table payloads both went to blobs: the purge has all of them to find.
    assert_eq!(
        kinds("by-id"),
        vec!["history", "message", "state", "summary"]
    );
    assert_eq!(
        kinds(&child),
        vec!["history", "message", "state", "summary"]
    );

    assert_eq!(hub.runtime.purge_recursive("by-id").await.unwrap(), 2);
    assert_eq!(hub.blobs().await, Vec::<String>::new());

    // A purge by filter: the prefix matches the child's default id too.
    hub.run_large("by-filter").await;
    assert!(!hub.blobs().await.is_empty());
    let purged = hub
        .runtime
        .purge_matching(&InstanceQuery {
            instance_id_prefix: Some("by-filter".to_string()),
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(hub.blobs().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_keeps_its_blob_when_an_instance_named_poison_is_purged() {
    let azurite = azurite::Azurite::start();
    let hub = Hub::new(&azurite).await;
    let backend = hub.runtime.backend();
    let record = PoisonMessage {
        id: "unreadable-1".to_string(),
        queue: "control-00".to_string(),
        instance_id: None,
        reason: "not a message".to_string(),
        attempts: 1,
        parked_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        message: None,
        text: Some("y".repeat(LARGE)),
    };
    backend.park(&record).await.unwrap();
    assert_eq!(hub.blobs().await.len(), 1, "the record is large");

    hub.runtime
        .start("Child", Some("poison"), &"z".repeat(LARGE))
        .await
        .unwrap();
    hub.run_until("poison", OrchestrationStatus::is_terminal)
        .await;
    hub.runtime.purge("poison").await.unwrap();

    assert_eq!(
        backend.poison_message("unreadable-1").await.unwrap(),
        Some(record)
    );
    assert_eq!(hub.blobs().await.len(), 1);
}
