//! The fan-in section: one `FanOutFanIn` instance of N activities per measurement, on a fresh
//! Azurite and app, timed from its start to Completed, with storage requests per activity
//! (through the counting proxy), the worker's peak RSS and each process's CPU time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    connection_string, cpu_seconds, load_average, peak_rss_mib, start_proxies, App, Counts,
    Options, Persistence, Storage,
};

/// The largest `Count` the `FanOutFanIn` orchestrator accepts.
pub const MAX_COUNT: usize = 10_000;

/// The longest wait between two status queries, so the start→Completed time is at least this
/// precise. A query costs Azurite a request while it is the bottleneck, so a long run is asked
/// about at this pace; a short one is asked about more often, in proportion to its length.
const MAX_POLL: Duration = Duration::from_millis(50);
const MIN_POLL: Duration = Duration::from_millis(5);
/// A query that takes longer (Azurite is saturated) is given up and asked again at the next poll,
/// so the timeout is kept.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `FanOutFanIn` with `count` activities once. Returns its figures, named
/// `fanin_<disk|memory>_n<count>_<figure>`; `None` for a figure the timeout left unmeasured.
pub async fn measure(
    options: &Options,
    persistence: Persistence,
    count: usize,
) -> Vec<(String, Option<f64>)> {
    let name = format!("fanin_{}_n{count}", persistence.name());
    eprintln!("fan-in, {count} activities, Azurite {}", persistence.name());
    let storage = Storage::start(persistence);
    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;
    // A fresh app for each measurement: the worker's VmHWM is a peak over its lifetime.
    let app = App::start(options, &connection_string(proxied)).await;
    let http = reqwest::Client::new();
    let load = load_average();
    // Which of the three is busy tells where the time goes.
    let pids = [app.worker_pid(), Some(app.devhost.0.id()), storage.pid()];
    let cpu_before = pids.map(|pid| pid.map_or(0.0, cpu_seconds));

    let before = counts.snapshot();
    let started = Instant::now();
    let answer = http
        .post(format!("{}/api/orchestrators/FanOutFanIn/{name}", app.base))
        .json(&json!({"Count": count, "WorkMs": 0}))
        .send()
        .await
        .expect("start");
    assert_eq!(answer.status(), 202, "start answered {}", answer.status());
    let mut unanswered = 0;
    let seconds = loop {
        let status = status(&app, &http, &name).await.unwrap_or_else(|error| {
            if unanswered == 0 {
                eprintln!("{name}: a status query went unanswered ({error}); asking again");
            }
            unanswered += 1;
            Value::Null
        });
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
        tokio::time::sleep((started.elapsed() / 50).clamp(MIN_POLL, MAX_POLL)).await;
    };
    let after = counts.snapshot();
    let cpu: Vec<f64> = pids
        .iter()
        .zip(cpu_before)
        .map(|(pid, before)| pid.map_or(0.0, cpu_seconds) - before)
        .collect();
    let by_service: Vec<u64> = (0..3).map(|i| after[i] - before[i]).collect();
    let requests = by_service.iter().sum::<u64>();
    eprintln!(
        "{name}: {} after {:.1} s, {requests} storage requests (blob, queue, table: \
         {by_service:?}), CPU s (worker, dev host, Azurite): {cpu:.1?}, {unanswered} status \
         queries unanswered",
        if seconds.is_some() {
            "Completed"
        } else {
            "timed out"
        },
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
        (format!("{name}_worker_cpu_s"), Some(cpu[0])),
        (format!("{name}_devhost_cpu_s"), Some(cpu[1])),
        (format!("{name}_azurite_cpu_s"), Some(cpu[2])),
        (format!("{name}_load_average_1m_before"), Some(load)),
    ]
}

/// The instance's status from the query API: the proxy leaves queries out of the counts, where
/// a status read by id would look like the runtime's own reads. `Null` until it is listed; an
/// error when the app does not answer in time (its storage query times out while Azurite is
/// saturated).
async fn status(app: &App, http: &reqwest::Client, id: &str) -> Result<Value, String> {
    let url = format!("{}/api/instances?instanceIdPrefix={id}&top=1", app.base);
    let mut token: Option<String> = None;
    loop {
        let mut request = http.get(&url).timeout(QUERY_TIMEOUT);
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let answer = match request.send().await {
            Ok(answer) if answer.status().is_success() => answer,
            Ok(answer) => {
                let status = answer.status();
                let body = answer.text().await.unwrap_or_default();
                return Err(format!("{status}: {body}"));
            }
            Err(e) if e.is_timeout() => {
                return Err(format!("no answer within {QUERY_TIMEOUT:?}"));
            }
            Err(e) => return Err(e.to_string()),
        };
        let next = answer
            .headers()
            .get("x-ms-continuation-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut items: Vec<Value> = answer.json().await.map_err(|e| e.to_string())?;
        if let Some(item) = items.pop() {
            return Ok(item);
        }
        // A filtered scan may answer an empty page with a continuation token.
        match next {
            Some(next) => token = Some(next),
            None => return Ok(Value::Null),
        }
    }
}
