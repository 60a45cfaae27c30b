//! What the crash tests run and check: a mix of seed workflows with activities in the turn, on
//! the work-item queue and behind timers, started over HTTP through any live dev host, then
//! every instance's output (through the status API) and stored history (through the store).

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_engine::{EventKind, OrchestrationStatus};
use durable_protocol::connection::StorageConnection;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::TaskHub;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::invariants::assert_no_duplicates;

/// App settings that keep every workflow of the mix busy for a few seconds: claims wait out two
/// approval timeouts, and their activities and the fan-in's take a while.
pub const SETTINGS: &[(&str, &str)] = &[
    ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "2"),
    ("ACTIVITY_WORK_DELAY_MS", "100"),
    ("RUST_LOG", "warn"),
];

/// How many calls a `FanOutFanIn` of the mix makes: above the in-turn limit (16), so they go
/// to the work-item queue.
const FAN_IN: u64 = 20;

/// One instance of the mix: its id, what starts it and the output it must end with.
pub struct Planned {
    pub id: String,
    pub orchestrator: &'static str,
    pub input: Value,
    pub expected: Value,
}

/// `count` instances cycling through the mix, their ids prefixed with `prefix`.
pub fn plan(prefix: &str, count: usize) -> Vec<Planned> {
    (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            let (orchestrator, input, expected) = match n % 4 {
                0 => (
                    "HelloSequence5",
                    Value::Null,
                    json!(["Tokyo", "Seattle", "London", "Cairo", "Lima"]
                        .map(|city| format!("Hello {city}!"))),
                ),
                1 => (
                    "FanOutFanIn",
                    json!({"Count": FAN_IN, "WorkMs": 100}),
                    json!({"Count": FAN_IN, "Sum": FAN_IN * (FAN_IN - 1) / 2}),
                ),
                // No decision comes: validate, notify, a timeout, escalate, another timeout.
                2 => (
                    "ClaimApprovalWorkflow",
                    json!({"ClaimId": id, "Claimant": "Ann", "Amount": 10.5, "Description": "x"}),
                    json!({"Status": "Expired"}),
                ),
                _ => (
                    "FanOut10",
                    Value::Null,
                    Value::Array((0..10).map(|i| json!(format!("Hello #{i}!"))).collect()),
                ),
            };
            Planned {
                id,
                orchestrator,
                input,
                expected,
            }
        })
        .collect()
}

/// Starts every planned instance under its id through the dev hosts at `bases` (spread over
/// them), at most 16 at a time. A start that fails (a host or worker down, storage away) is
/// tried again through the next host; 409 means an earlier try got through.
pub async fn start_all(http: &reqwest::Client, bases: &[String], planned: &[Planned]) {
    let starts = planned.iter().enumerate().map(|(n, instance)| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        for attempt in n.. {
            let base = &bases[attempt % bases.len()];
            let url = format!(
                "{base}/api/orchestrators/{}/{}",
                instance.orchestrator, instance.id
            );
            let answer = http
                .post(url)
                .json(&instance.input)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match answer.map(|response| response.status()) {
                Ok(StatusCode::ACCEPTED | StatusCode::CONFLICT) => return,
                other => assert!(
                    Instant::now() < deadline,
                    "could not start {}: last answer {other:?}",
                    instance.id
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    futures::stream::iter(starts)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// Waits until every planned instance has ended, asking the status API of whichever dev host
/// at `bases()` answers, and asserts each ended Completed with its expected output. `bases` is
/// asked again each round, since hosts come and go.
pub async fn assert_all_completed(
    http: &reqwest::Client,
    bases: impl Fn() -> Vec<String>,
    planned: &[Planned],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut ended: Vec<Option<Value>> = planned.iter().map(|_| None).collect();
    let mut round = 0;
    while ended.iter().any(Option::is_none) {
        let hosts = bases();
        let statuses = futures::stream::iter(planned.iter().zip(&ended).enumerate())
            .filter(|(_, (_, ended))| std::future::ready(ended.is_none()))
            .map(|(n, (instance, _))| {
                let base = hosts[(n + round) % hosts.len()].clone();
                async move { (n, status(http, &base, &instance.id).await) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let mut last = None;
        for (n, answer) in statuses {
            match answer {
                Some(status) if is_ended(&status) => ended[n] = Some(status),
                other => last = Some((n, other)),
            }
        }
        if let Some((n, answer)) = last.filter(|_| Instant::now() >= deadline) {
            let open = ended.iter().filter(|e| e.is_none()).count();
            panic!(
                "{open} instance(s) did not end within {timeout:?}, e.g. {}: {answer:?}",
                planned[n].id
            );
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wrong: Vec<String> = planned
        .iter()
        .zip(&ended)
        .filter_map(|(instance, status)| {
            let status = status.as_ref()?;
            let right =
                status["runtimeStatus"] == "Completed" && status["output"] == instance.expected;
            (!right).then(|| format!("{}: {status}", instance.id))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} instance(s) did not complete with the right output:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

async fn status(http: &reqwest::Client, base: &str, id: &str) -> Option<Value> {
    let response = http
        .get(format!("{base}/api/instances/{id}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

fn is_ended(status: &Value) -> bool {
    matches!(
        status["runtimeStatus"].as_str(),
        Some("Completed" | "Failed" | "Terminated" | "Canceled")
    )
}

/// Reads every planned instance from the store and asserts its history records nothing twice
/// and completes each scheduled activity exactly once.
pub async fn assert_histories(storage: &str, hub: &str, planned: &[Planned]) {
    let connection = StorageConnection::from_settings(
        [("AzureWebJobsStorage", storage.to_string())],
        "AzureWebJobsStorage",
    )
    .expect("the storage connection string");
    let backend = Arc::new(
        AzureBackend::connect(
            &connection,
            TaskHub::new(hub).expect("a valid task hub"),
            Arc::new(SystemClock),
        )
        .expect("connect to the task hub"),
    );
    for instance in planned {
        let loaded = backend
            .load(&instance.id)
            .await
            .expect("load the instance")
            .unwrap_or_else(|| panic!("{} is not in the store", instance.id));
        assert_eq!(
            loaded.state.status,
            OrchestrationStatus::Completed,
            "{}",
            instance.id
        );
        assert_no_duplicates(&loaded.history);
        let scheduled = loaded
            .history
            .iter()
            .filter(|event| matches!(event.kind, EventKind::TaskScheduled { .. }))
            .count();
        let completed = loaded
            .history
            .iter()
            .filter(|event| {
                matches!(
                    event.kind,
                    EventKind::TaskCompleted { .. } | EventKind::TaskFailed { .. }
                )
            })
            .count();
        assert_eq!(
            scheduled, completed,
            "{}: every activity completes exactly once",
            instance.id
        );
    }
}

/// A seeded source of chaos: `CHAOS_SEED` from the environment, else the clock; printed, so a
/// failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_nanos() as u64)
            });
        eprintln!("chaos seed: {seed} (CHAOS_SEED={seed} repeats this run)");
        Rng(seed)
    }

    /// The next number below `bound` (splitmix64).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}
