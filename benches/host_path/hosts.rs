//! The hosts section: N dev hosts, each with its own worker, on one task hub in one Azurite on
//! disk, driven request-response round-robin: throughput, and the contention the workers'
//! counters report (conflicts, redone turns).

use anyhow::Context;
use serde::Deserialize;

use super::report::{Runs, Table};
use super::request_response::{self, FAN_OUT10, HELLO_SEQUENCE5};
use super::{start_apps, App, Options, Persistence, Storage};

/// A worker's `GET /admin/counters`, or their sum over workers.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Turns committed: orchestration turns and entity batches.
    pub turns: u64,
    conflicts: u64,
    redone_turns: u64,
}

/// One run on `hosts` hosts; figures are named `hosts<N>_…`.
pub async fn measure(
    options: &Options,
    run: usize,
    hosts: usize,
    record: &mut impl FnMut(String, f64),
) -> anyhow::Result<()> {
    eprintln!("{hosts} host(s), run {}", run + 1);
    let storage = Storage::start(Persistence::Disk);
    let apps = start_apps(options, &storage.connection_string(), hosts).await;
    let bases: Vec<String> = apps.iter().map(|app| app.base.clone()).collect();
    for workload in [&HELLO_SEQUENCE5, &FAN_OUT10] {
        let before = counters(&apps).await?;
        let outcome = request_response::run(
            &bases,
            workload,
            &format!("h{run}{}-", &workload.key[..1]),
            0..options.instances,
            options.in_flight,
        )
        .await;
        let after = counters(&apps).await?;
        let turns = after.turns - before.turns;
        let conflicts = after.conflicts - before.conflicts;
        let redone = after.redone_turns - before.redone_turns;
        let per_1000 = |n: u64| n as f64 * 1000.0 / options.instances as f64;
        let key = workload.key;
        record(format!("hosts{hosts}_rr_{key}_per_s"), outcome.per_s);
        record(format!("hosts{hosts}_rr_{key}_p50_ms"), outcome.p50_ms);
        record(
            format!("hosts{hosts}_rr_{key}_errors"),
            outcome.errors as f64,
        );
        // Also shows the counters were read at all.
        record(
            format!("hosts{hosts}_{key}_turns_per_orchestration"),
            turns as f64 / options.instances as f64,
        );
        record(
            format!("hosts{hosts}_{key}_conflicts_per_1000"),
            per_1000(conflicts),
        );
        record(
            format!("hosts{hosts}_{key}_redone_turns_per_1000"),
            per_1000(redone),
        );
        record(
            format!("hosts{hosts}_{key}_redone_turns_pct"),
            redone as f64 * 100.0 / turns.max(1) as f64,
        );
    }
    Ok(())
}

/// The workers' counters, summed.
pub async fn counters(apps: &[App]) -> anyhow::Result<Counters> {
    let http = reqwest::Client::new();
    let mut sum = Counters::default();
    for app in apps {
        let pid = app.worker_pid().context("the dev host has no worker")?;
        let port = worker_port(pid)?;
        let counters: Counters = http
            .get(format!("http://127.0.0.1:{port}/admin/counters"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        sum.turns += counters.turns;
        sum.conflicts += counters.conflicts;
        sum.redone_turns += counters.redone_turns;
    }
    Ok(sum)
}

/// The port the dev host told its worker to listen on, from the worker's environment.
fn worker_port(pid: u32) -> anyhow::Result<u16> {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    environ
        .split(|byte| *byte == 0)
        .find_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            entry
                .strip_prefix("FUNCTIONS_CUSTOMHANDLER_PORT=")?
                .parse()
                .ok()
        })
        .with_context(|| format!("worker {pid} has no FUNCTIONS_CUSTOMHANDLER_PORT"))
}

/// Throughput on N hosts over throughput on one, for each N measured beside one host.
pub fn ratios(counts: &[usize], runs: &Runs) -> Vec<(String, f64)> {
    let mut ratios = Vec::new();
    for workload in [&HELLO_SEQUENCE5, &FAN_OUT10] {
        let key = workload.key;
        let Some(one) = runs.median(&format!("hosts1_rr_{key}_per_s")) else {
            continue;
        };
        for hosts in counts.iter().filter(|n| **n > 1) {
            if let Some(n) = runs.median(&format!("hosts{hosts}_rr_{key}_per_s")) {
                ratios.push((format!("hosts_{hosts}_to_1_rr_{key}_ratio"), n / one));
            }
        }
    }
    ratios
}

/// The section's figures (medians), a column per host count.
pub fn table(counts: &[usize], runs: &Runs) -> Table {
    let mut rows = Vec::new();
    for workload in [&HELLO_SEQUENCE5, &FAN_OUT10] {
        let (name, key) = (workload.orchestrator, workload.key);
        for (label, figure) in [
            ("rr /s", format!("rr_{key}_per_s")),
            ("rr p50 ms", format!("rr_{key}_p50_ms")),
            ("rr errors", format!("rr_{key}_errors")),
            (
                "turns per orchestration",
                format!("{key}_turns_per_orchestration"),
            ),
            ("conflicts per 1,000", format!("{key}_conflicts_per_1000")),
            (
                "redone turns per 1,000",
                format!("{key}_redone_turns_per_1000"),
            ),
            ("redone turns % of turns", format!("{key}_redone_turns_pct")),
        ] {
            let cells = counts
                .iter()
                .map(|hosts| runs.median(&format!("hosts{hosts}_{figure}")))
                .collect();
            rows.push((format!("{name} {label}"), cells));
        }
    }
    Table {
        title: "hosts, Azurite on disk (median)".to_string(),
        columns: counts
            .iter()
            .map(|n| format!("{n} host{}", if *n == 1 { "" } else { "s" }))
            .collect(),
        rows,
    }
}
