//! The fire-and-poll half of a throughput run: instances started over HTTP (202) and watched
//! through the query API until all have completed, idle latency through the starter's wait, and
//! storage requests per orchestration through the counting proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::{
    connection_string, load_average, peak_rss_mib, percentile, start_proxies, App, Counts, Options,
    Persistence, Storage,
};

/// Fire-and-poll on a fresh Azurite: throughput, latency and peak RSS straight to Azurite, then
/// storage requests per orchestration through the counting proxy.
pub async fn measure(
    options: &Options,
    run: usize,
    persistence: Persistence,
    record: &mut impl FnMut(&str, f64),
) {
    let storage = Storage::start(persistence);
    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;

    // Throughput and latency talk to Azurite directly: the proxy's hop is not the app's.
    let app = App::start(options, &storage.connection_string()).await;
    record("load_average_1m_before_hello", load_average());
    let hello = throughput(
        &app,
        "HelloSequence5",
        &format!("h{run}-"),
        options.instances,
        options.in_flight,
    )
    .await;
    record("hello_sequence5_per_s", hello);
    record("load_average_1m_before_fanout", load_average());
    let fan_out = throughput(
        &app,
        "FanOut10",
        &format!("f{run}-"),
        options.instances,
        options.in_flight,
    )
    .await;
    record("fan_out10_per_s", fan_out);
    record("load_average_1m_before_latency", load_average());
    let (p50, p95) = latency(&app, &format!("l{run}-"), options.latency_samples).await;
    record("hello_sequence5_latency_p50_ms", p50);
    record("hello_sequence5_latency_p95_ms", p95);
    let worker = app.worker_pid().map_or(0.0, peak_rss_mib);
    record("worker_peak_rss_mib", worker);
    record("devhost_peak_rss_mib", peak_rss_mib(app.devhost.0.id()));
    drop(app);

    // Storage requests, through the counting proxy, on a fresh task hub.
    let counted = App::start(options, &connection_string(proxied)).await;
    let (hello_ops, by_service) = storage_requests(
        &counted,
        &counts,
        "HelloSequence5",
        &format!("ch{run}-"),
        options.count_instances,
    )
    .await;
    record(
        "hello_sequence5_storage_requests_per_orchestration",
        hello_ops,
    );
    record(
        "hello_sequence5_storage_requests_per_activity",
        hello_ops / 5.0,
    );
    eprintln!("HelloSequence5 requests by service (blob, queue, table): {by_service:?}");
    let (fan_ops, _) = storage_requests(
        &counted,
        &counts,
        "FanOut10",
        &format!("cf{run}-"),
        options.count_instances,
    )
    .await;
    record("fan_out10_storage_requests_per_orchestration", fan_ops);
}

/// Starts `count` instances of `orchestrator`, `in_flight` requests at a time, and waits until
/// every one has completed. Returns orchestrations per second from the first start.
async fn throughput(
    app: &App,
    orchestrator: &str,
    prefix: &str,
    count: usize,
    in_flight: usize,
) -> f64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()
        .expect("client");
    let started = Instant::now();
    stream::iter(0..count)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{}/api/orchestrators/{orchestrator}/{prefix}{i:05}",
                app.base
            );
            async move {
                let answer = http.post(url).send().await.expect("start");
                assert_eq!(answer.status(), 202, "start answered {}", answer.status());
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    wait_all_completed(app, &http, prefix, count).await;
    count as f64 / started.elapsed().as_secs_f64()
}

/// Polls the query API until no instance under `prefix` is still pending or running, then
/// checks that all `count` completed.
async fn wait_all_completed(app: &App, http: &reqwest::Client, prefix: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(900);
    while any_open(app, http, prefix).await {
        assert!(
            Instant::now() < deadline,
            "instances still open after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = list(app, http, prefix, "Completed").await.len();
    assert_eq!(done, count, "every instance should have completed");
}

/// One page of the query API: instances under `prefix` in `statuses`, and the continuation.
async fn page(
    app: &App,
    http: &reqwest::Client,
    query: &str,
    token: Option<&str>,
) -> (Vec<Value>, Option<String>) {
    let mut request = http.get(format!("{}/api/instances?{query}", app.base));
    if let Some(token) = token {
        request = request.header("x-ms-continuation-token", token);
    }
    let answer = request.send().await.expect("query");
    let next = answer
        .headers()
        .get("x-ms-continuation-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (answer.json().await.expect("query body"), next)
}

/// Whether any instance under `prefix` is still open, asking for one row at a time so the poll
/// stays small next to the workload. A filtered scan may answer an empty page with a
/// continuation token, which is followed.
async fn any_open(app: &App, http: &reqwest::Client, prefix: &str) -> bool {
    let query = format!(
        "instanceIdPrefix={prefix}&runtimeStatus=Pending,Running,ContinuedAsNew,Suspended&top=1"
    );
    let mut token = None;
    loop {
        let (items, next) = page(app, http, &query, token.as_deref()).await;
        if !items.is_empty() {
            return true;
        }
        match next {
            Some(next) => token = Some(next),
            None => return false,
        }
    }
}

/// Every instance under `prefix` in the given statuses, following continuation tokens.
async fn list(app: &App, http: &reqwest::Client, prefix: &str, statuses: &str) -> Vec<Value> {
    let query = format!("instanceIdPrefix={prefix}&runtimeStatus={statuses}&top=1000");
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(app, http, &query, token.as_deref()).await;
        all.extend(items);
        match next {
            Some(next) => token = Some(next),
            None => return all,
        }
    }
}

/// Start→completion of `samples` sequential `HelloSequence5` runs, through the starter's
/// wait-for-completion. Returns (p50, p95) in milliseconds.
async fn latency(app: &App, prefix: &str, samples: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let url = format!(
            "{}/api/orchestrators/HelloSequence5/{prefix}{i:04}?timeout=30&pollingInterval=0.002",
            app.base
        );
        let started = Instant::now();
        let answer = http.post(url).send().await.expect("start and wait");
        assert_eq!(answer.status(), 200, "the run did not complete in time");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.50), percentile(&times, 0.95))
}

/// Storage requests per orchestration for `count` instances of `orchestrator` started one at a
/// time and left to finish, counted at the proxy (the host's dequeues and deletes included).
async fn storage_requests(
    app: &App,
    counts: &Counts,
    orchestrator: &str,
    prefix: &str,
    count: usize,
) -> (f64, [u64; 3]) {
    let http = reqwest::Client::new();
    let before = counts.snapshot();
    let started = Instant::now();
    for i in 0..count {
        let answer = http
            .post(format!(
                "{}/api/orchestrators/{orchestrator}/{prefix}{i:04}",
                app.base
            ))
            .send()
            .await
            .expect("start");
        assert_eq!(answer.status(), 202);
    }
    while any_open(app, &http, prefix).await {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "counted instances still open after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = list(app, &http, prefix, "Completed").await.len();
    assert_eq!(done, count, "not every counted instance completed");
    let after = counts.snapshot();
    let by_service = [
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
    ];
    let total: u64 = by_service.iter().sum();
    (total as f64 / count as f64, by_service)
}
