//! The runtime on the Azure backend against a real Azurite: orchestrations through the queues, a
//! fault at every storage call (or every commit of batched turns) then redelivery, concurrent
//! pumps and processes on one task hub, and a crash after a long turn's checkpoint.

#[path = "common/azurite.rs"]
mod azurite;
// Shared with tests/runtime, which also uses its per-operation counts.
#[allow(dead_code)]
#[path = "common/faulty.rs"]
mod faulty;
#[path = "common/invariants.rs"]
mod invariants;
#[path = "common/slow_chain.rs"]
mod slow_chain;
#[path = "common/workflows.rs"]
mod workflows;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use durable_engine::{OrchestrationStatus, Registry};
use durable_protocol::connection::StorageConnection;
use durable_runtime::{
    Pump, Runtime, RuntimeOptions, StartDelivery, StartOptions, UNSTARTED_GRACE,
};
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, Clock, ManualClock, SystemClock};
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

type AzureRuntime = Runtime<Faulty<AzureBackend>>;

struct Setup {
    backend: Arc<Faulty<AzureBackend>>,
    runtime: Arc<AzureRuntime>,
    registry: Registry,
    clock: Arc<dyn Clock>,
}

impl Setup {
    /// Another worker process on the task hub: same options, its own instance cache.
    fn another_process(&self) -> Arc<AzureRuntime> {
        Arc::new(Runtime::with_options(
            self.backend.clone(),
            self.registry.clone(),
            self.clock.clone(),
            self.runtime.options().clone(),
        ))
    }
}

/// A runtime on a task hub of its own, its resources created; the app settings of the
/// environment apply over `options`, so `DURABLE_INSTANCE_CACHE_INSTANCES=0` turns the cache off.
async fn setup(options: RuntimeOptions) -> Setup {
    setup_with(options, registry(), Arc::new(SystemClock)).await
}

/// [`setup`] with `registry`, and `clock` as the runtime's (the backend keeps the system clock
/// its queues run on).
async fn setup_with(options: RuntimeOptions, registry: Registry, clock: Arc<dyn Clock>) -> Setup {
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
        registry.clone(),
        clock.clone(),
        options,
    ));
    Setup {
        backend,
        runtime,
        registry,
        clock,
    }
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
        if ended(setup, instance_ids, started, limit).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`drive`] the way the Functions host runs a batch of queue triggers: every message of a
/// receive processed at once, so those for one instance share turns.
async fn drive_concurrently(setup: &Setup, instance_ids: &[String], limit: Duration) {
    let started = Instant::now();
    loop {
        for queue in setup.backend.queues() {
            let Ok(batch) = setup.backend.receive(queue, 32, VISIBILITY).await else {
                continue;
            };
            let outcomes =
                futures::future::join_all(batch.iter().map(|r| setup.runtime.process(&r.message)))
                    .await;
            for (received, outcome) in batch.iter().zip(outcomes) {
                // A failed delete or abandon: the message reappears once its visibility lapses.
                let _ = match outcome {
                    Ok(_) => setup.backend.delete(&received.receipt).await,
                    Err(_) => {
                        setup
                            .backend
                            .abandon(&received.receipt, Duration::ZERO)
                            .await
                    }
                };
            }
        }
        if ended(setup, instance_ids, started, limit).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether every instance has ended; panics with their statuses once `limit` has passed.
async fn ended(setup: &Setup, instance_ids: &[String], started: Instant, limit: Duration) -> bool {
    let mut statuses = Vec::new();
    for id in instance_ids {
        let summary = setup.backend.inner().read_summary(id).await.unwrap();
        statuses.push(summary.map(|s| s.status));
    }
    let ended = statuses
        .iter()
        .all(|s| s.is_some_and(OrchestrationStatus::is_terminal));
    assert!(
        ended || started.elapsed() < limit,
        "not finished after {limit:?}: {statuses:?}"
    );
    ended
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

/// The instance's history records nothing twice and its outbox was sent and cleared.
async fn assert_settled(setup: &Setup, instance_id: &str, context: &str) {
    let loaded = setup
        .backend
        .inner()
        .load(instance_id)
        .await
        .unwrap()
        .unwrap();
    assert_no_duplicates(&loaded.history);
    assert!(
        loaded.state.outbox.is_empty(),
        "{context}: outbox left: {:?}",
        loaded.state.outbox
    );
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
    assert_settled(&setup, &id, &format!("fault at call {call} ({mode:?})")).await;
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

const GATHERED: &str = "\"6 from 3 parts, 3 greetings\"";

/// Starts `Gather` and raises its three parts at once, so they arrive together, and so do the
/// results of its fan-out.
async fn start_gather(setup: &Setup, instance_id: &str) -> String {
    let id = setup
        .runtime
        .start("Gather", Some(instance_id), &3u32)
        .await
        .unwrap();
    for part in 1..=3u32 {
        setup.runtime.raise_event(&id, "Part", &part).await.unwrap();
    }
    id
}

/// The in-memory suite faults every call of batched turns; here, each call that was a commit in
/// the clean run (with messages processed at once, a faulty run's call of that number may be a
/// neighbour of it).
#[tokio::test]
async fn a_fault_at_a_commit_of_batched_turns_against_azurite_loses_nothing() {
    let clean = setup(mixed_paths()).await;
    let id = start_gather(&clean, "batched").await;
    let from = clean.backend.calls();
    drive_concurrently(&clean, std::slice::from_ref(&id), Duration::from_secs(30)).await;
    assert_eq!(
        output(&clean, &id).await,
        (OrchestrationStatus::Completed, Some(GATHERED.to_string()))
    );
    let runs: Vec<(usize, FaultMode)> = clean
        .backend
        .operations_since(from)
        .iter()
        .enumerate()
        .filter(|(_, op)| **op == "commit")
        .flat_map(|(i, _)| [(i + 1, FaultMode::Before), (i + 1, FaultMode::After)])
        .collect();
    for chunk in runs.chunks(8) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|&(call, mode)| batched_with_fault(call, mode)),
        )
        .await;
    }
}

async fn batched_with_fault(call: usize, mode: FaultMode) {
    let setup = setup(mixed_paths()).await;
    let id = start_gather(&setup, "batched").await;
    setup.backend.fail_call(call, mode);
    drive_concurrently(&setup, std::slice::from_ref(&id), Duration::from_secs(60)).await;
    let context = format!("fault at call {call} ({mode:?})");
    assert_eq!(
        output(&setup, &id).await,
        (OrchestrationStatus::Completed, Some(GATHERED.to_string())),
        "{context}"
    );
    assert_settled(&setup, &id, &context).await;
}

/// Two processes, each with its own instance cache, pump one task hub: the messages of one
/// instance land in both, so each often starts a turn from a copy the other has moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_their_own_caches_complete_every_instance() {
    let setup = setup(mixed_paths()).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(start_gather(&setup, &format!("shared-{i}")).await);
    }
    let pumps: Vec<_> = [setup.runtime.clone(), setup.another_process()]
        .into_iter()
        .map(|runtime| {
            let pump = Pump::new(runtime, Duration::from_secs(30), Duration::ZERO);
            tokio::spawn(async move { pump.run_until_idle(1_000_000).await })
        })
        .collect();
    for pump in pumps {
        pump.await.unwrap();
    }
    drive(&setup, &ids, Duration::from_secs(120)).await;
    for id in &ids {
        assert_eq!(
            output(&setup, id).await,
            (OrchestrationStatus::Completed, Some(GATHERED.to_string())),
            "{id}"
        );
        assert_settled(&setup, id, id).await;
    }
}

/// `Chain` with the runtime on a manual clock its steps move (the queues keep real time), a
/// fault at `fault` (counted from after the start); returns each step's runs and the calls.
async fn chain(fault: Option<(usize, FaultMode)>) -> (Vec<usize>, Vec<&'static str>) {
    const STEPS: usize = 6;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let runs: slow_chain::StepRuns = Arc::new(std::sync::Mutex::new(vec![0; STEPS]));
    let options = RuntimeOptions {
        // Steps at 0, 2 and 4 seconds run in the start's turn; the checkpoint commits them.
        checkpoint_interval: slow_chain::STEP_TIME * 5 / 2,
        ..RuntimeOptions::default()
    };
    let registry = slow_chain::chain_registry(clock.clone(), runs.clone());
    let setup = setup_with(options, registry, clock).await;
    // A fixed id (each setup has a hub of its own): its control queue, and so the pump's calls
    // before the turn, are the same in the clean run and the faulted ones.
    let id = setup
        .runtime
        .start("Chain", Some("chain"), &STEPS)
        .await
        .unwrap();
    let from = setup.backend.calls();
    if let Some((call, mode)) = fault {
        setup.backend.fail_call(call, mode);
    }
    drive(&setup, std::slice::from_ref(&id), Duration::from_secs(30)).await;
    assert_eq!(
        output(&setup, &id).await,
        (
            OrchestrationStatus::Completed,
            Some("[0,1,2,3,4,5]".to_string())
        ),
        "{fault:?}"
    );
    assert_settled(&setup, &id, &format!("{fault:?}")).await;
    let runs = runs.lock().unwrap().clone();
    (runs, setup.backend.operations_since(from))
}

#[tokio::test]
async fn a_crash_right_after_a_checkpoint_commit_against_azurite_reruns_only_later_steps() {
    let (runs, operations) = chain(None).await;
    assert_eq!(runs, [1; 6]);
    let commit = operations.iter().position(|op| *op == "commit").unwrap() + 1;
    let (runs, _) = chain(Some((commit + 1, FaultMode::Before))).await;
    assert_eq!(runs[..3], [1; 3], "committed at the checkpoint: {runs:?}");
    assert!(runs[3..].iter().all(|&n| n >= 1), "{runs:?}");
}

/// The sweep against Azurite: a start taken to be processed here whose worker died first is
/// found by its Pending summary once older than the grace (the filter on status and created
/// time as the Instances table answers it), re-sent, and completes; a completed instance and a
/// young start are left alone.
#[tokio::test]
async fn a_start_lost_with_its_worker_is_re_sent_by_the_sweep_against_azurite() {
    let setup = setup(RuntimeOptions::default()).await;
    let runtime = &setup.runtime;
    let options = StartOptions::default();
    let start = |id: &'static str| {
        runtime.start_message(
            "HelloSequence",
            Some(id),
            "null".into(),
            &options,
            StartDelivery::Here,
        )
    };
    let done = start("done").await.unwrap();
    runtime.process_started(&done).await.unwrap();
    start("lost").await.unwrap();
    let young = runtime.sweep_unstarted(UNSTARTED_GRACE).await.unwrap();
    assert_eq!(young, 0, "younger than the grace");

    let resent = runtime.sweep_unstarted(Duration::ZERO).await.unwrap();
    assert_eq!(resent, 1, "only the lost start is Pending");
    drive(&setup, &["lost".to_string()], Duration::from_secs(60)).await;
    let (status, out) = output(&setup, "lost").await;
    assert_eq!(status, OrchestrationStatus::Completed);
    assert_eq!(out, output(&setup, "done").await.1);
    assert_settled(&setup, "lost", "swept").await;
    assert_eq!(runtime.sweep_unstarted(Duration::ZERO).await.unwrap(), 0);
}
