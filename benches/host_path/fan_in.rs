//! The fan-in section: one `FanOutFanIn` instance of N activities per measurement, on a fresh
//! Azurite and app, timed from its start to Completed, with storage requests per activity
//! (through the counting proxy) and the worker's peak RSS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    connection_string, load_average, page, peak_rss_mib, start_proxies, App, Counts, Options,
    Persistence, Storage,
};

/// The largest `Count` the `FanOutFanIn` orchestrator accepts.
pub const MAX_COUNT: usize = 10_000;

/// How often the instance's status is asked for: the start→Completed time is this precise.
const POLL: Duration = Duration::from_millis(20);

/// Runs `FanOutFanIn` with `count` activities once. Returns its figures, named
/// `fanin_<disk|memory>_n<count>_<figure>`; `None` for a figure the timeout left unmeasured.
pub async fn measure(
    options: &Options,
    persistence: Persistence,
    count: usize,
) -> Vec<(String, Option<f64>)> {
    let name = format!("fanin_{}_n{count}", persistence.name());
    eprintln!("fan-in, {count} activities, Azurite {}", persistence.name());
    let storage = Storage::start(&options.root, persistence);
    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;
    // A fresh app for each measurement: the worker's VmHWM is a peak over its lifetime.
    let app = App::start(options, &connection_string(proxied)).await;
    let http = reqwest::Client::new();
    let load = load_average();

    let before = counts.snapshot();
    let started = Instant::now();
    let answer = http
        .post(format!("{}/api/orchestrators/FanOutFanIn/{name}", app.base))
        .json(&json!({"Count": count, "WorkMs": 0}))
        .send()
        .await
        .expect("start");
    assert_eq!(answer.status(), 202, "start answered {}", answer.status());
    let seconds = loop {
        let status = status(&app, &http, &name).await;
        match status["runtimeStatus"].as_str() {
            Some("Completed") => {
                let elapsed = started.elapsed().as_secs_f64();
                let sum = (count * count.saturating_sub(1) / 2) as u64;
                assert_eq!(
                    status["output"],
                    json!({"Count": count, "Sum": sum}),
                    "{status}"
                );
                break Some(elapsed);
            }
            Some("Pending" | "Running") | None => {}
            Some(_) => panic!("{name} did not complete: {status}"),
        }
        if started.elapsed() > options.fan_in_timeout {
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    let after = counts.snapshot();
    let by_service: Vec<u64> = (0..3).map(|i| after[i] - before[i]).collect();
    let requests = by_service.iter().sum::<u64>();
    eprintln!(
        "{name}: {} after {:.1} s, {requests} storage requests (blob, queue, table: {by_service:?})",
        if seconds.is_some() { "Completed" } else { "timed out" },
        started.elapsed().as_secs_f64()
    );
    let rss = app.worker_pid().map_or(0.0, peak_rss_mib);
    vec![
        (format!("{name}_seconds"), seconds),
        (
            format!("{name}_activities_per_s"),
            seconds.map(|s| count as f64 / s),
        ),
        (
            format!("{name}_requests_per_activity"),
            seconds.map(|_| requests as f64 / count.max(1) as f64),
        ),
        (format!("{name}_worker_rss_mib"), Some(rss)),
        (format!("{name}_load_average_1m_before"), Some(load)),
    ]
}

/// The instance's status from the query API: the proxy leaves queries out of the counts, where
/// a status read by id would look like the runtime's own reads. `Null` until it is listed.
async fn status(app: &App, http: &reqwest::Client, id: &str) -> Value {
    let query = format!("instanceIdPrefix={id}&top=1");
    let mut token = None;
    loop {
        let (mut items, next) = page(app, http, &query, token.as_deref()).await;
        if let Some(item) = items.pop() {
            return item;
        }
        match next {
            Some(next) => token = Some(next),
            None => return Value::Null,
        }
    }
}
