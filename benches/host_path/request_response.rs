//! The request-response client: each request starts an orchestration and waits for its output in
//! one call, answered 200 with the output, which is checked; requests go round-robin across the
//! hosts given.

use std::ops::Range;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::percentile;

/// An orchestration the client runs, and the output every instance of it must answer with.
pub struct Workload {
    pub orchestrator: &'static str,
    /// Its name in figure keys.
    pub key: &'static str,
    expected: fn() -> Value,
}

pub const HELLO_SEQUENCE5: Workload = Workload {
    orchestrator: "HelloSequence5",
    key: "hello_sequence5",
    expected: || {
        json!([
            "Hello Tokyo!",
            "Hello Seattle!",
            "Hello London!",
            "Hello Cairo!",
            "Hello Lima!"
        ])
    },
};

pub const FAN_OUT10: Workload = Workload {
    orchestrator: "FanOut10",
    key: "fan_out10",
    expected: || json!((0..10).map(|i| format!("Hello #{i}!")).collect::<Vec<_>>()),
};

/// What a batch of requests measured. Latencies count every request, answered well or not.
pub struct Outcome {
    pub per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Requests not answered 200 with the expected output.
    pub errors: usize,
}

/// Errors printed in full per batch; the rest are only counted.
const ERRORS_SHOWN: usize = 5;

/// Runs instances `{prefix}{i}` for each `i` in `ids`, `in_flight` requests at a time, request
/// `i` to `bases[i % bases.len()]`. Throughput counts the requests answered well.
pub async fn run(
    bases: &[String],
    workload: &Workload,
    prefix: &str,
    ids: Range<usize>,
    in_flight: usize,
) -> Outcome {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let expected = (workload.expected)();
    let count = ids.len();
    let started = Instant::now();
    let answers: Vec<(f64, Result<(), String>)> = stream::iter(ids)
        .map(|i| {
            let url = format!(
                "{}/api/orchestrators/{}/{prefix}{i:06}?timeout=60&pollingInterval=0",
                bases[i % bases.len()],
                workload.orchestrator
            );
            let (http, expected) = (&http, &expected);
            async move {
                let sent = Instant::now();
                let answer = call(http, &url, i, expected).await;
                (sent.elapsed().as_secs_f64() * 1000.0, answer)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = answers.iter().map(|(ms, _)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let errors: Vec<&String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    for error in errors.iter().take(ERRORS_SHOWN) {
        eprintln!("{} {prefix}: {error}", workload.orchestrator);
    }
    if errors.len() > ERRORS_SHOWN {
        eprintln!(
            "{} {prefix}: and {} more errors",
            workload.orchestrator,
            errors.len() - ERRORS_SHOWN
        );
    }
    Outcome {
        per_s: (count - errors.len()) as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        errors: errors.len(),
    }
}

/// One request; an error says what was wrong with its answer.
async fn call(http: &reqwest::Client, url: &str, i: usize, expected: &Value) -> Result<(), String> {
    let answer = http
        .post(url)
        .json(&json!(format!("w{i}")))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.map_err(|e| format!("{url}: {e}"))?;
    let shown: String = body.chars().take(300).collect();
    if status != 200 {
        return Err(format!("{url}: HTTP {status}: {shown}"));
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(output) if output == *expected => Ok(()),
        _ => Err(format!("{url}: unexpected output {shown}")),
    }
}
