//! The host-path benchmark: Azurite, the dev host and the worker (release builds) run as a user
//! runs them, and a client drives them over HTTP. Prints `key=value` lines and writes them as
//! JSON. Run through `scripts/bench.sh`, whose header lists the sections and options.

#[path = "../tests/common/azurite.rs"]
mod azurite;
#[path = "host_path/ceiling.rs"]
mod ceiling;
#[path = "host_path/fan_in.rs"]
mod fan_in;
#[path = "host_path/fire_and_poll.rs"]
mod fire_and_poll;
#[path = "host_path/fraud.rs"]
mod fraud;
#[path = "host_path/fraud_ceiling.rs"]
mod fraud_ceiling;
#[path = "host_path/hosts.rs"]
mod hosts;
#[path = "host_path/memory.rs"]
mod memory;
#[path = "host_path/options.rs"]
mod options;
#[path = "host_path/proxy.rs"]
mod proxy;
#[path = "host_path/report.rs"]
mod report;
#[path = "host_path/request_response.rs"]
mod request_response;
#[path = "host_path/stack.rs"]
mod stack;
#[path = "../tests/common/supervised.rs"]
mod supervised;
#[path = "host_path/throughput_rr.rs"]
mod throughput_rr;

use std::time::Instant;

use azurite::connection_string;
use options::{options, Options, Persistence};
use proxy::{start_proxies, Counts};
use report::{Runs, Table};
use serde_json::{json, Value};
use stack::{start_apps, App, Storage};

/// The task hub every app and the ceiling's backend use.
const TASK_HUB: &str = "benchhub";

/// Peak resident set size (`VmHWM`) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// User and system CPU time a process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    let ticks: f64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|field| field.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    ticks / CLOCK_TICKS_PER_S
}

/// `getconf CLK_TCK` on Linux, which has not changed from 100 on any mainstream platform.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// What share of one core each process used while `work` ran, in percent, with `work`'s output.
async fn cpu_percent_during<T, const N: usize>(
    pids: [Option<u32>; N],
    work: impl std::future::Future<Output = T>,
) -> (T, [f64; N]) {
    let before = pids.map(|pid| pid.map_or(0.0, cpu_seconds));
    let started = Instant::now();
    let output = work.await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut percent = pids.map(|pid| pid.map_or(0.0, cpu_seconds));
    for (after, before) in percent.iter_mut().zip(before) {
        *after = (*after - before) * 100.0 / elapsed;
    }
    (output, percent)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One run of the throughput section for one Azurite mode: fire-and-poll, then request-response,
/// each on its own fresh Azurite. Figures on disk are named with a `disk_` prefix; in memory, as
/// they always were.
async fn throughput_run(
    options: &Options,
    run: usize,
    persistence: Persistence,
    record: &mut impl FnMut(String, f64),
) -> anyhow::Result<()> {
    let prefix = persistence.key_prefix();
    let mut record = |name: &str, value: f64| record(format!("{prefix}{name}"), value);
    fire_and_poll::measure(options, run, persistence, &mut record).await;
    record("load_average_1m_before_rr", load_average());
    let hosts = options.throughput_hosts();
    throughput_rr::measure(options, run, persistence, hosts, &mut record).await
}

/// The throughput section's headline figures (medians), a column per Azurite mode.
fn throughput_table(options: &Options, runs: &Runs) -> Table {
    let rows = [
        ("fire-and-poll HelloSequence5 /s", "hello_sequence5_per_s"),
        ("fire-and-poll FanOut10 /s", "fan_out10_per_s"),
        (
            "fire-and-poll idle p50 ms",
            "hello_sequence5_latency_p50_ms",
        ),
        ("rr HelloSequence5 /s", "rr_hello_sequence5_per_s"),
        ("rr HelloSequence5 p50 ms", "rr_hello_sequence5_p50_ms"),
        ("rr HelloSequence5 p95 ms", "rr_hello_sequence5_p95_ms"),
        ("rr FanOut10 /s", "rr_fan_out10_per_s"),
        ("rr FanOut10 p50 ms", "rr_fan_out10_p50_ms"),
        ("rr FanOut10 p95 ms", "rr_fan_out10_p95_ms"),
        ("rr idle p50 ms", "rr_hello_sequence5_idle_p50_ms"),
        ("rr errors HelloSequence5", "rr_hello_sequence5_errors"),
        ("rr errors FanOut10", "rr_fan_out10_errors"),
        (
            "storage requests/orch fire-and-poll",
            "hello_sequence5_storage_requests_per_orchestration",
        ),
        (
            "storage requests/orch rr",
            "rr_hello_sequence5_storage_requests_per_orchestration",
        ),
        ("ceiling HelloSequence5 /s", "ceiling_orch_per_s"),
        ("rr fraction of ceiling", "rr_fraction_of_ceiling"),
        (
            "Azurite CPU % in rr HelloSequence5",
            "rr_hello_sequence5_azurite_cpu_pct",
        ),
        ("Azurite CPU % in ceiling", "ceiling_azurite_cpu_pct"),
        ("worker peak RSS MiB", "worker_peak_rss_mib"),
    ];
    modes_table(
        "throughput (median)",
        &options.throughput_persistence(),
        &rows,
        |mode, key| runs.median(&format!("{}{key}", mode.key_prefix())),
    )
}

/// A table of `rows` (label, figure key), a column per Azurite mode; `median` finds a figure's
/// median in a mode.
fn modes_table(
    title: &str,
    modes: &[Persistence],
    rows: &[(&str, &str)],
    median: impl Fn(Persistence, &str) -> Option<f64>,
) -> Table {
    Table {
        title: title.to_string(),
        columns: modes.iter().map(|mode| mode.name().to_string()).collect(),
        rows: rows
            .iter()
            .map(|(label, key)| {
                let cells = modes.iter().map(|mode| median(*mode, key)).collect();
                (label.to_string(), cells)
            })
            .collect(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let mut json = serde_json::Map::new();
    let mut tables = Vec::new();
    json.insert("runs".into(), json!(options.runs));
    json.insert("instances".into(), json!(options.instances));
    json.insert("in_flight".into(), json!(options.in_flight));
    if options.throughput {
        let mut runs = Runs::default();
        for run in 0..options.runs {
            for persistence in options.throughput_persistence() {
                eprintln!(
                    "run {} of {}, Azurite {}",
                    run + 1,
                    options.runs,
                    persistence.name()
                );
                let mut record = |name, value| runs.record(name, value);
                throughput_run(&options, run, persistence, &mut record).await?;
            }
        }
        println!("rr_hosts={}", options.throughput_hosts());
        json.insert("rr_hosts".into(), json!(options.throughput_hosts()));
        runs.finish(&mut json);
        tables.push(throughput_table(&options, &runs));
    }
    if options.hosts {
        let mut runs = Runs::default();
        let counts = options.hosts_section_counts();
        for run in 0..options.runs {
            for hosts in &counts {
                let mut record = |name, value| runs.record(name, value);
                hosts::measure(&options, run, *hosts, &mut record).await?;
            }
        }
        runs.finish(&mut json);
        for (name, ratio) in hosts::ratios(&counts, &runs) {
            println!("{name}={ratio:.2}");
            json.insert(name, json!(ratio));
        }
        tables.push(hosts::table(&counts, &runs));
    }
    if options.fan_in {
        json.insert(
            "fanin_timeout_s".into(),
            json!(options.fan_in_timeout.as_secs()),
        );
        for count in &options.fan_in_counts {
            for persistence in options.fan_in_persistence() {
                for (name, value) in fan_in::measure(&options, persistence, *count).await {
                    match value {
                        Some(value) => {
                            println!("{name}={value:.2}");
                            json.insert(name, json!(value));
                        }
                        None => {
                            println!("{name}=timeout");
                            json.insert(name, json!("timeout"));
                        }
                    }
                }
            }
        }
    }
    if options.fraud {
        let mut runs = Runs::default();
        let modes = options.fraud_persistence();
        for run in 0..options.runs {
            for persistence in &modes {
                let mut record = |name, value| runs.record(name, value);
                fraud::measure(&options, run, *persistence, &mut record).await?;
            }
        }
        runs.finish(&mut json);
        tables.push(fraud::table(&modes, &runs));
    }
    if options.memory {
        let figures = memory::measure(&options).await?;
        for (name, value) in &figures {
            json.insert(name.clone(), json!(value));
        }
        tables.push(memory::table(&figures, options.memory_persistence()));
    }

    if let Some(parent) = options.output.parent() {
        std::fs::create_dir_all(parent).expect("create the output folder");
    }
    std::fs::write(
        &options.output,
        serde_json::to_string_pretty(&Value::Object(json)).expect("json"),
    )
    .expect("write the JSON figures");
    println!("json={}", options.output.display());
    for table in tables {
        println!("\n{table}");
    }
    Ok(())
}
