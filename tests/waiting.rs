//! Callers that wait for an instance's end over HTTP (`?timeout=` on a start): woken in-process
//! when this worker writes the end, and reading storage at most once per 100 ms for an end
//! written by another worker, whatever `pollingInterval` asks. The worker is served on a real
//! port over the in-memory backend, behind the call-counting decorator.

// Shared with tests/runtime, which also injects faults; only its counts are used here.
#[allow(dead_code)]
#[path = "common/faulty.rs"]
mod faulty;
#[path = "common/workflows.rs"]
mod workflows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_runtime::{Pump, Runtime};
use durable_store::backend::{Backend, SystemClock};
use durable_store::memory::MemoryBackend;
use durable_store::names::PartitionCount;
use durable_worker::functions::TriggerFunctions;
use serde_json::Value;

use faulty::Faulty;

type Store = Faulty<MemoryBackend>;

/// A worker over a fresh in-memory task hub, served on a free port; its runtime, and another
/// process's runtime over the same task hub.
async fn worker() -> (String, Arc<Store>, Arc<Runtime<Store>>) {
    let clock = Arc::new(SystemClock);
    let memory = MemoryBackend::new(clock.clone(), PartitionCount::new(4).unwrap());
    let backend = Arc::new(Faulty::new(memory));
    backend.create_task_hub().await.unwrap();
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        workflows::registry(),
        clock.clone(),
    ));
    let other = Arc::new(Runtime::new(backend.clone(), workflows::registry(), clock));
    let app = durable_worker::app(runtime, "hub".to_string(), TriggerFunctions::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, backend, other)
}

fn summary_reads(backend: &Store) -> usize {
    backend.counts().get("read_summary").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_start_that_ends_in_this_worker_answers_without_reading_its_status() {
    let (base, backend, _) = worker().await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let answer = http
            .post(format!(
                "{base}/api/orchestrators/HelloSequence/hello-{i}?timeout=60&pollingInterval=0"
            ))
            .json(&())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let output: Vec<String> = answer.json().await.unwrap();
        assert_eq!(output.len(), 5, "{output:?}");
    }
    assert_eq!(summary_reads(&backend), 0, "{:?}", backend.counts());
    // The worker's counters, on its own port: one turn per start here.
    let counters: Value = http
        .get(format!("{base}/admin/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["turns"], 20, "{counters}");
    assert_eq!(counters["conflicts"], 0, "{counters}");
    assert_eq!(counters["redoneTurns"], 0, "{counters}");
}

#[tokio::test]
async fn a_start_that_ends_in_another_worker_is_found_in_storage_without_a_read_storm() {
    let (base, backend, other) = worker().await;
    let http = reqwest::Client::new();
    let waiting = tokio::spawn({
        let http = http.clone();
        let base = base.clone();
        async move {
            let started = Instant::now();
            let answer = http
                .post(format!(
                    "{base}/api/orchestrators/Gather/elsewhere?timeout=30&pollingInterval=0"
                ))
                .json(&3)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let body: Value = answer.json().await.unwrap();
            (status, body, started.elapsed())
        }
    });
    // The instance waits for events; another process raises them and runs its last turn.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend
        .inner()
        .read_state("elsewhere")
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the start never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..3 {
        other.raise_event("elsewhere", "Part", &i).await.unwrap();
    }
    Pump::new(other.clone(), Duration::from_secs(30), Duration::ZERO)
        .run_until_idle(100)
        .await;
    let (status, body, waited) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    // Reads by the waiter, plus the raise's own three.
    let reads = summary_reads(&backend) - 3;
    let most = (waited.as_millis() / 100) as usize + 1;
    assert!(
        (1..=most).contains(&reads),
        "{reads} status reads in {waited:?}, at most {most} allowed"
    );
}
