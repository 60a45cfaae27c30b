//! The request-response half of a throughput run: HelloSequence5 and FanOut10 under load, and
//! idle latency, on a fresh Azurite; HelloSequence5 again through the counting proxy for its
//! storage-request mix; and the ceiling that mix reaches on Azurite alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use durable_store::backend::Backend;

use super::ceiling::{self, Mix, Template};
use super::proxy::kinds_between;
use super::request_response::{self, FAN_OUT10, HELLO_SEQUENCE5};
use super::{
    connection_string, cpu_percent_during, start_apps, start_proxies, Counts, Options, Persistence,
    Storage,
};

/// Replayed orchestrations counted through the proxy, one at a time, to show the replay issues
/// the mix it was given.
const CHECKED: usize = 50;

/// Measures on `hosts` hosts; `record` names figures without the Azurite mode's prefix.
pub async fn measure(
    options: &Options,
    run: usize,
    persistence: Persistence,
    hosts: usize,
    record: &mut impl FnMut(&str, f64),
) -> anyhow::Result<()> {
    let storage = Storage::start(persistence);
    let apps = start_apps(options, &storage.connection_string(), hosts).await;
    let bases: Vec<String> = apps.iter().map(|app| app.base.clone()).collect();
    let mut hello_per_s = 0.0;
    for workload in [&HELLO_SEQUENCE5, &FAN_OUT10] {
        let prefix = format!("r{run}{}-", &workload.key[..1]);
        let work = request_response::run(
            &bases,
            workload,
            &prefix,
            0..options.instances,
            options.in_flight,
        );
        // Whether Azurite was the bottleneck: near 100, it was.
        let (outcome, [azurite]) = cpu_percent_during([storage.pid()], work).await;
        let key = workload.key;
        record(&format!("rr_{key}_azurite_cpu_pct"), azurite);
        record(&format!("rr_{key}_per_s"), outcome.per_s);
        record(&format!("rr_{key}_p50_ms"), outcome.p50_ms);
        record(&format!("rr_{key}_p95_ms"), outcome.p95_ms);
        record(&format!("rr_{key}_errors"), outcome.errors as f64);
        if workload.key == HELLO_SEQUENCE5.key {
            hello_per_s = outcome.per_s;
        }
    }
    let idle = request_response::run(
        &bases[..1],
        &HELLO_SEQUENCE5,
        &format!("r{run}i-"),
        0..options.latency_samples,
        1,
    )
    .await;
    record("rr_hello_sequence5_idle_p50_ms", idle.p50_ms);
    record("rr_hello_sequence5_idle_p95_ms", idle.p95_ms);
    record("rr_hello_sequence5_idle_errors", idle.errors as f64);
    drop(apps);
    drop(storage);

    let (mix, template) = counted(options, run, persistence, hosts, record).await?;
    let ceiling_per_s = ceiling(options, run, persistence, &mix, &template, record).await?;
    record("rr_fraction_of_ceiling", hello_per_s / ceiling_per_s);
    Ok(())
}

/// Request-response HelloSequence5 through the counting proxy (its hop would slow the figures
/// above): the storage requests per orchestration by kind, and one instance as stored.
async fn counted(
    options: &Options,
    run: usize,
    persistence: Persistence,
    hosts: usize,
    record: &mut impl FnMut(&str, f64),
) -> anyhow::Result<(Mix, Template)> {
    let storage = Storage::start(persistence);
    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;
    let apps = start_apps(options, &connection_string(proxied), hosts).await;
    let bases: Vec<String> = apps.iter().map(|app| app.base.clone()).collect();
    let prefix = format!("r{run}c-");
    let before = counts.kinds();
    let outcome = request_response::run(
        &bases,
        &HELLO_SEQUENCE5,
        &prefix,
        0..options.instances,
        options.in_flight,
    )
    .await;
    let counted = kinds_between(&before, &settled(&counts).await);
    let orchestrations = options.instances as f64;
    record("rr_counted_hello_sequence5_per_s", outcome.per_s);
    record(
        "rr_hello_sequence5_storage_requests_per_orchestration",
        counted.values().sum::<u64>() as f64 / orchestrations,
    );
    for (kind, n) in &counted {
        record(&format!("rr_mix_{kind}"), *n as f64 / orchestrations);
    }

    let backend = ceiling::connect(&storage.connection_string())?;
    let mut template = None;
    // The first instance that completed: one with an error may not have.
    for i in 0..options.instances {
        match Template::load(&backend, &format!("{prefix}{i:06}")).await {
            Ok(loaded) => {
                template = Some(loaded);
                break;
            }
            Err(error) => eprintln!("not a template: {error:#}"),
        }
    }
    let template = template.context("no counted instance completed")?;
    Ok((Mix::new(counted, options.instances), template))
}

/// The counts once the work the last answers left behind (a queued copy deleted after the
/// answer, say) has been done: when they have not moved for half a second.
async fn settled(counts: &Counts) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = counts.kinds();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = counts.kinds();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The ceiling on a fresh Azurite: `mix` replayed for as many orchestrations as the app ran.
/// Returns orchestrations per second.
async fn ceiling(
    options: &Options,
    run: usize,
    persistence: Persistence,
    mix: &Mix,
    template: &Template,
    record: &mut impl FnMut(&str, f64),
) -> anyhow::Result<f64> {
    let storage = Storage::start(persistence);
    let direct = ceiling::connect(&storage.connection_string())?;
    direct.create_task_hub().await?;
    let key_prefix = persistence.key_prefix();
    println!("{key_prefix}ceiling_mix={}", mix.describe());
    let unreplayed = mix.unreplayed();
    if !unreplayed.is_empty() {
        println!("{key_prefix}ceiling_unreplayed={}", unreplayed.join(","));
    }

    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;
    let checked = ceiling::connect(&connection_string(proxied))?;
    let (_, errors) = ceiling::run(&checked, template, mix, &format!("c{run}k-"), CHECKED, 1).await;
    let issued: BTreeMap<String, String> = counts
        .kinds()
        .into_iter()
        .map(|(kind, n)| (kind, format!("{:.2}", n as f64 / CHECKED as f64)))
        .collect();
    println!(
        "{key_prefix}ceiling_issued_mix={}",
        ceiling::describe(&issued)
    );
    anyhow::ensure!(errors == 0, "the replay failed {errors} times");

    let prefix = format!("c{run}-");
    let work = ceiling::run(
        &direct,
        template,
        mix,
        &prefix,
        options.instances,
        options.in_flight,
    );
    // The replay runs in this process: its CPU shows whether it, not Azurite, held it back.
    let pids = [storage.pid(), Some(std::process::id())];
    let ((per_s, errors), [azurite, bench]) = cpu_percent_during(pids, work).await;
    record("ceiling_orch_per_s", per_s);
    record("ceiling_errors", errors as f64);
    record("ceiling_azurite_cpu_pct", azurite);
    record("ceiling_bench_cpu_pct", bench);
    Ok(per_s)
}
