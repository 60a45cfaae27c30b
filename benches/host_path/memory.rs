//! The memory section: one host on Azurite (on disk unless `--azurite memory`) runs
//! request-response HelloSequence5 until the count, and the worker's current RSS is sampled every
//! 10,000 orchestrations, so growth that a peak figure would hide shows.

use anyhow::Context;

use super::report::Table;
use super::request_response::{self, HELLO_SEQUENCE5};
use super::{App, Options, Persistence, Storage};

const SAMPLE_EVERY: usize = 10_000;

/// Runs the section; returns its figures, already printed.
pub async fn measure(options: &Options) -> anyhow::Result<Vec<(String, f64)>> {
    let total = options.memory_orchestrations;
    // Azurite on disk writes its whole table store out every 5 s (its Loki autosave), work that
    // grows with the task hub; the worker's memory is the figure here, and Azurite in memory
    // gets through 100,000 sooner.
    let persistence = options.memory_persistence();
    eprintln!(
        "memory: {total} orchestrations, Azurite {}",
        persistence.name()
    );
    let storage = Storage::start(persistence);
    let app = App::start(options, &storage.connection_string()).await;
    let bases = [app.base.clone()];
    let mut figures = Vec::new();
    let mut emit = |name: String, value: f64| {
        println!("{name}={value:.2}");
        figures.push((name, value));
    };
    let mut first = None;
    let mut last = 0.0;
    let mut done = 0;
    while done < total {
        let next = (done + SAMPLE_EVERY).min(total);
        // Batches drain at each sample: a dip of a few requests in 10,000.
        let outcome =
            request_response::run(&bases, &HELLO_SEQUENCE5, "m", done..next, options.in_flight)
                .await;
        let pid = app.worker_pid().context("the dev host has no worker")?;
        last = current_rss_mib(pid).with_context(|| format!("worker {pid}'s VmRSS"))?;
        first.get_or_insert(last);
        emit(format!("memory_rss_mib_after_{next}"), last);
        emit(format!("memory_rr_per_s_to_{next}"), outcome.per_s);
        emit(format!("memory_errors_to_{next}"), outcome.errors as f64);
        done = next;
    }
    if let Some(first) = first {
        emit(
            "memory_rss_growth_pct".to_string(),
            (last - first) * 100.0 / first,
        );
    }
    Ok(figures)
}

/// A process's resident set size now (`VmRSS`), in MiB.
fn current_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// RSS after each sample, and the growth from the first to the last.
pub fn table(figures: &[(String, f64)], persistence: Persistence) -> Table {
    let rows = figures
        .iter()
        .filter_map(|(name, value)| {
            let label = match name.strip_prefix("memory_rss_mib_after_") {
                Some(count) => format!("worker RSS MiB after {count}"),
                None if name == "memory_rss_growth_pct" => "growth % since the first".to_string(),
                None => return None,
            };
            Some((label, vec![Some(*value)]))
        })
        .collect();
    Table {
        title: format!("memory, Azurite {}", persistence.name()),
        columns: vec!["value".to_string()],
        rows,
    }
}
