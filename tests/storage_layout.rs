//! The stored layout is a contract with every task hub already written: table rows an earlier
//! build wrote (`tests/fixtures/task_hub/`, recorded by 1f6fcda) load into a fresh Azurite, and
//! this build reads their status and history and takes their waiting instances to completion.
//! Tables added since (`{hub}Deferred`) are created on such a hub by `create_task_hub`, as a
//! worker does at start, and read empty.

// `RECORD_TASK_HUB_FIXTURE=1` re-records the rows; do that only for an intended layout change,
// since the point of the fixture is that an earlier build wrote it.

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/workflows.rs"]
mod workflows;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_data_tables::clients::TableClient;
use durable_engine::{EventKind, OrchestrationStatus};
use durable_protocol::connection::{http_client, HttpSettings, StorageClients, StorageConnection};
use durable_runtime::{Pump, Runtime};
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::TaskHub;
use futures::StreamExt;
use serde_json::{Map, Value};

const HUB: &str = "LayoutHub";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/task_hub/rows.json")
}

struct Hub {
    clients: StorageClients,
    runtime: Arc<Runtime<AzureBackend>>,
    pump: Pump<AzureBackend>,
}

async fn hub(azurite: &azurite::Azurite) -> Hub {
    let settings = [("AzureWebJobsStorage", azurite.connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
    let clients = connection
        .build_clients(http_client(HttpSettings::default()).unwrap())
        .unwrap();
    let backend = Arc::new(AzureBackend::from_clients(
        clients.clone(),
        TaskHub::new(HUB).unwrap(),
        Arc::new(SystemClock),
    ));
    backend.create_task_hub().await.unwrap();
    let runtime = Arc::new(Runtime::new(
        backend,
        workflows::registry(),
        Arc::new(SystemClock),
    ));
    let pump = Pump::new(
        runtime.clone(),
        Duration::from_secs(30),
        Duration::from_millis(100),
    );
    Hub {
        clients,
        runtime,
        pump,
    }
}

impl Hub {
    fn tables(&self) -> [(&'static str, TableClient); 2] {
        let hub = TaskHub::new(HUB).unwrap();
        [
            (
                "History",
                self.clients.tables.table_client(hub.history_table()),
            ),
            (
                "Instances",
                self.clients.tables.table_client(hub.instances_table()),
            ),
        ]
    }

    async fn status(&self, id: &str) -> OrchestrationStatus {
        self.runtime.status(id).await.unwrap().unwrap().status
    }

    /// Runs the pump until `id` has ended, or fails after a few seconds.
    async fn run_until_ended(&self, id: &str) {
        for _ in 0..100 {
            self.pump.run_until_idle(1_000).await;
            if self.status(id).await.is_terminal() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("'{id}' did not end");
    }

    /// Runs the pump until `id` is Running with nothing left on the queues for it.
    async fn run_until_waiting(&self, id: &str) {
        self.pump.run_until_idle(1_000).await;
        assert_eq!(self.status(id).await, OrchestrationStatus::Running);
    }
}

/// Every row of both tables, with the service's own properties (`Timestamp`, ETags) left out.
async fn dump(hub: &Hub) -> Value {
    let mut tables = Map::new();
    for (name, table) in hub.tables() {
        let mut rows = Vec::new();
        let mut pages = table.query().into_stream::<Map<String, Value>>();
        while let Some(page) = pages.next().await {
            for mut row in page.unwrap().entities {
                row.retain(|key, _| !key.starts_with("odata.") && !key.starts_with("Timestamp"));
                rows.push(Value::Object(row));
            }
        }
        tables.insert(name.to_string(), Value::Array(rows));
    }
    Value::Object(tables)
}

/// The instances the fixture holds, brought to the states it records: ended ones, and ones
/// waiting for an event (one of them after a continue-as-new, with 40 carried over).
async fn record(hub: &Hub) {
    let rt = &hub.runtime;
    // (orchestrator, instance id, input, whether it runs to its end)
    let starts = [
        ("HelloSequence", "hello-done", Value::Null, true),
        ("Sleeper", "sleeper-waiting", Value::Null, false),
        (
            "Accumulate",
            "accumulate-waiting",
            serde_json::json!(0),
            false,
        ),
        ("CounterParent", "parent-done", Value::Null, true),
    ];
    for (name, id, input, ends) in starts {
        rt.start(name, Some(id), &input).await.unwrap();
        if ends {
            hub.run_until_ended(id).await;
        } else {
            hub.run_until_waiting(id).await;
        }
    }
    rt.raise_event("accumulate-waiting", "Add", &40u32)
        .await
        .unwrap();
    hub.run_until_waiting("accumulate-waiting").await;
}

#[tokio::test]
async fn a_task_hub_written_by_an_earlier_build_loads_and_completes() {
    let azurite = azurite::Azurite::start();
    let hub = hub(&azurite).await;
    if std::env::var_os("RECORD_TASK_HUB_FIXTURE").is_some() {
        record(&hub).await;
        let text = serde_json::to_string_pretty(&dump(&hub).await).unwrap() + "\n";
        std::fs::create_dir_all(fixture_path().parent().unwrap()).unwrap();
        std::fs::write(fixture_path(), text).unwrap();
        return;
    }

    let text = std::fs::read_to_string(fixture_path()).expect("the task hub fixture exists");
    let fixture: Value = serde_json::from_str(&text).unwrap();
    for (name, table) in hub.tables() {
        let rows = fixture[name].as_array().expect("a table of rows");
        assert!(!rows.is_empty(), "{name} has rows");
        for row in rows {
            table
                .insert::<_, Value>(row)
                .unwrap()
                .return_entity(false)
                .await
                .unwrap_or_else(|e| panic!("insert into {name}: {e}"));
        }
    }
    // Loading them back unchanged shows nothing was lost on the way in.
    assert_eq!(dump(&hub).await, fixture);
    let rt = &hub.runtime;

    // The stuck view's records of deferred messages: a table the earlier build did not have.
    let waiting = rt.waiting_for_start(Duration::ZERO, 100).await.unwrap();
    assert!(waiting.is_empty(), "{waiting:?}");

    // Ended instances: status and history as recorded.
    let hello = rt.status("hello-done").await.unwrap().unwrap();
    assert_eq!(hello.status, OrchestrationStatus::Completed);
    // Written before storage requests were counted: none recorded.
    assert_eq!(hello.storage_requests, 0);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(hello.output.as_deref().unwrap()).unwrap(),
        [
            "Hello Tokyo!",
            "Hello Seattle!",
            "Hello London!",
            "Hello Cairo!",
            "Hello Lima!"
        ]
    );
    let history = rt.history("hello-done").await.unwrap().unwrap();
    let scheduled = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskScheduled { .. }))
        .count();
    assert_eq!(scheduled, 5);
    assert!(matches!(
        history.last().map(|e| &e.kind),
        Some(EventKind::OrchestratorCompleted)
    ));
    let parent = rt.status("parent-done").await.unwrap().unwrap();
    assert_eq!(parent.status, OrchestrationStatus::Completed);
    let child = rt.status("the-child").await.unwrap().unwrap();
    assert_eq!(child.status, OrchestrationStatus::Completed);
    assert_eq!(child.output, parent.output);

    // Waiting instances: this build delivers their events and runs them to the end.
    assert_eq!(
        hub.status("sleeper-waiting").await,
        OrchestrationStatus::Running
    );
    rt.raise_event("sleeper-waiting", "Wake", "woken by a later build")
        .await
        .unwrap();
    hub.run_until_ended("sleeper-waiting").await;
    let sleeper = rt.status("sleeper-waiting").await.unwrap().unwrap();
    assert_eq!(sleeper.status, OrchestrationStatus::Completed);
    assert_eq!(
        sleeper.output.as_deref(),
        Some("\"woken by a later build\"")
    );
    // What this build spent on it, from nothing recorded.
    assert!(sleeper.storage_requests > 0, "{sleeper:?}");

    rt.raise_event("accumulate-waiting", "Add", &60u32)
        .await
        .unwrap();
    hub.run_until_ended("accumulate-waiting").await;
    let accumulated = rt.status("accumulate-waiting").await.unwrap().unwrap();
    assert_eq!(accumulated.status, OrchestrationStatus::Completed);
    assert_eq!(accumulated.output.as_deref(), Some("100"));
}
