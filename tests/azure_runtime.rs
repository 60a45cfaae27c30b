//! The runtime on the Azure backend against a real Azurite: orchestrations through the queues,
//! a fault before and after every storage call followed by redelivery, and three concurrent
//! pumps driving a few hundred orchestrations on one task hub.

#[path = "common/azurite.rs"]
mod azurite;
// Shared with tests/runtime, which also uses its per-operation counts.
#[allow(dead_code)]
#[path = "common/faulty.rs"]
mod faulty;
#[path = "common/invariants.rs"]
mod invariants;
#[path = "common/workflows.rs"]
mod workflows;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use durable_engine::OrchestrationStatus;
use durable_protocol::connection::StorageConnection;
use durable_runtime::{Pump, Runtime, RuntimeOptions};
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::TaskHub;

use faulty::{FaultMode, Faulty};
use invariants::assert_no_duplicates;
use workflows::registry;

/// Messages whose delete failed reappear after this long and are then recognised as duplicates.
const VISIBILITY: Duration = Duration::from_secs(1);

fn azurite() -> &'static azurite::Azurite {
    static AZURITE: OnceLock<azurite::Azurite> = OnceLock::new();
    AZURITE.get_or_init(azurite::Azurite::start)
}

struct Setup {
    backend: Arc<Faulty<AzureBackend>>,
    runtime: Arc<Runtime<Faulty<AzureBackend>>>,
}

/// A runtime on a task hub of its own, its resources created; the app settings of the
/// environment apply over `options`, so `DURABLE_INSTANCE_CACHE_INSTANCES=0` turns the cache off.
async fn setup(options: RuntimeOptions) -> Setup {
    let options = options
        .with_env()
        .expect("the DURABLE_* app settings in the environment are numbers");
    static HUBS: AtomicUsize = AtomicUsize::new(0);
    let hub = format!("Runtime{}", HUBS.fetch_add(1, Ordering::SeqCst));
    let settings = [("AzureWebJobsStorage", azurite().connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
    let azure = AzureBackend::connect(
        &connection,
        TaskHub::new(&hub).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let backend = Arc::new(Faulty::new(azure));
    backend.create_task_hub().await.unwrap();
    let runtime = Arc::new(Runtime::with_options(
        backend.clone(),
        registry(),
        Arc::new(SystemClock),
        options,
    ));
    Setup { backend, runtime }
}

/// Fan-outs travel the work-item queue; single calls run in the turn: both activity paths.
fn mixed_paths() -> RuntimeOptions {
    RuntimeOptions {
        max_inline_fan_out: 1,
        ..RuntimeOptions::default()
    }
}

fn queued() -> RuntimeOptions {
    RuntimeOptions {
        inline_activities: false,
        ..RuntimeOptions::default()
    }
}

/// Pumps until every instance has ended, waiting for hidden messages to reappear; panics with
/// the statuses if that takes longer than `limit`.
async fn drive(setup: &Setup, instance_ids: &[String], limit: Duration) {
    let pump = Pump::new(setup.runtime.clone(), VISIBILITY, Duration::ZERO);
    let started = Instant::now();
    loop {
        pump.run_until_idle(100_000).await;
        let mut statuses = Vec::new();
        for id in instance_ids {
            let summary = setup.backend.inner().read_summary(id).await.unwrap();
            statuses.push(summary.map(|s| s.status));
        }
        if statuses
            .iter()
            .all(|s| s.is_some_and(OrchestrationStatus::is_terminal))
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not finished after {limit:?}: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn output(setup: &Setup, instance_id: &str) -> (OrchestrationStatus, Option<String>) {
    let summary = setup
        .backend
        .inner()
        .read_summary(instance_id)
        .await
        .unwrap()
        .unwrap();
    (summary.status, summary.output)
}

#[tokio::test]
async fn orchestrations_complete_through_azure_queues_and_tables() {
    for options in [RuntimeOptions::default(), queued()] {
        let setup = setup(options).await;
        let sequence = setup
            .runtime
            .start("HelloSequence", None, &())
            .await
            .unwrap();
        let fan_in = setup
            .runtime
            .start("FanIn", Some("fan-in 'quoted' & 50%"), &3)
            .await
            .unwrap();
        setup
            .runtime
            .raise_event(&fan_in, "Go", "go")
            .await
            .unwrap();
        let nap = setup.runtime.start("Nap", None, &()).await.unwrap();
        drive(
            &setup,
            &[sequence.clone(), fan_in.clone(), nap.clone()],
            Duration::from_secs(30),
        )
        .await;

        assert_eq!(
            output(&setup, &sequence).await,
            (
                OrchestrationStatus::Completed,
                Some(
                    r#"["Hello Tokyo!","Hello Seattle!","Hello London!","Hello Cairo!","Hello Lima!"]"#
                        .to_string()
                )
            )
        );
        assert_eq!(
            output(&setup, &fan_in).await,
            (
                OrchestrationStatus::Completed,
                Some("\"3 greetings, go, child said 5\"".to_string())
            )
        );
        assert_eq!(
            output(&setup, &nap).await,
            (
                OrchestrationStatus::Completed,
                Some("\"Hello after the nap!\"".to_string())
            )
        );
        for id in [&sequence, &fan_in, &nap] {
            let history = setup
                .backend
                .inner()
                .load(id)
                .await
                .unwrap()
                .unwrap()
                .history;
            assert_no_duplicates(&history);
        }
    }
}

#[tokio::test]
async fn payloads_beyond_the_storage_limits_round_trip_through_blobs() {
    for options in [RuntimeOptions::default(), queued()] {
        let setup = setup(options).await;
        // 100,000 characters: 200 KB as UTF-16 (Azure's measure for table properties), 300 KB
        // as UTF-8, so the activity result, the output, the state row and the summary all
        // exceed the 64 KiB limits, and so does the result message on the queued path.
        let id = setup
            .runtime
            .start("BigOutput", None, &100_000)
            .await
            .unwrap();
        drive(&setup, std::slice::from_ref(&id), Duration::from_secs(30)).await;
        let (status, output) = output(&setup, &id).await;
        assert_eq!(status, OrchestrationStatus::Completed);
        let text: String = serde_json::from_str(&output.unwrap()).unwrap();
        assert_eq!(text.chars().count(), 100_000);
        assert!(text.chars().all(|c| c == '€'));
        let history = setup
            .backend
            .inner()
            .load(&id)
            .await
            .unwrap()
            .unwrap()
            .history;
        assert_no_duplicates(&history);
    }
}

/// Starts `FanIn` and raises its event; returns the instance id.
async fn start_fan_in(setup: &Setup) -> String {
    let id = setup
        .runtime
        .start("FanIn", Some("faulty"), &2)
        .await
        .unwrap();
    setup.runtime.raise_event(&id, "Go", "go").await.unwrap();
    id
}

#[tokio::test]
async fn a_fault_at_any_storage_call_against_azurite_loses_nothing_and_duplicates_nothing() {
    let clean = setup(mixed_paths()).await;
    let id = start_fan_in(&clean).await;
    let before = clean.backend.calls();
    drive(&clean, &[id], Duration::from_secs(30)).await;
    let total = clean.backend.calls() - before;
    assert!(
        total > 20,
        "the scenario exercises many storage calls ({total})"
    );

    // Each run has its own task hub, so runs go eight at a time: they mostly wait on timers.
    let runs: Vec<(usize, FaultMode)> = (1..=total)
        .flat_map(|call| [(call, FaultMode::Before), (call, FaultMode::After)])
        .collect();
    for chunk in runs.chunks(8) {
        futures::future::join_all(chunk.iter().map(|&(call, mode)| run_with_fault(call, mode)))
            .await;
    }
}

/// Runs `FanIn` with one fault injected at `call`, then checks the invariant.
async fn run_with_fault(call: usize, mode: FaultMode) {
    let setup = setup(mixed_paths()).await;
    let id = start_fan_in(&setup).await;
    setup.backend.fail_call(call, mode);
    drive(&setup, std::slice::from_ref(&id), Duration::from_secs(60)).await;
    assert_eq!(
        output(&setup, &id).await,
        (
            OrchestrationStatus::Completed,
            Some("\"2 greetings, go, child said 5\"".to_string())
        ),
        "fault at call {call} ({mode:?})"
    );
    let loaded = setup.backend.inner().load(&id).await.unwrap().unwrap();
    assert_no_duplicates(&loaded.history);
    assert!(
        loaded.state.outbox.is_empty(),
        "fault at call {call} ({mode:?}): outbox left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pumps_drive_a_few_hundred_orchestrations_on_one_task_hub() {
    let setup = setup(mixed_paths()).await;
    let mut ids = Vec::new();
    for i in 0..200u32 {
        let id = setup
            .runtime
            .start("FanIn", Some(&format!("many-{i}")), &(i % 4 + 1))
            .await
            .unwrap();
        setup.runtime.raise_event(&id, "Go", "go").await.unwrap();
        ids.push(id);
    }
    let pumps: Vec<_> = (0..3)
        .map(|_| {
            let pump = Pump::new(
                setup.runtime.clone(),
                Duration::from_secs(30),
                Duration::ZERO,
            );
            tokio::spawn(async move { pump.run_until_idle(1_000_000).await })
        })
        .collect();
    for pump in pumps {
        pump.await.unwrap();
    }
    drive(&setup, &ids, Duration::from_secs(120)).await;
    for (i, id) in ids.iter().enumerate() {
        let expected = format!("\"{} greetings, go, child said 5\"", i % 4 + 1);
        assert_eq!(
            output(&setup, id).await,
            (OrchestrationStatus::Completed, Some(expected)),
            "{id}"
        );
        let history = setup
            .backend
            .inner()
            .load(id)
            .await
            .unwrap()
            .unwrap()
            .history;
        assert_no_duplicates(&history);
    }
}
