//! The host-path benchmark: Azurite, the dev host and the worker (release builds) run as a user
//! runs them, and a client drives them over HTTP. Prints `key=value` lines and writes them as
//! JSON. Run through `scripts/bench.sh`, whose header lists the sections and options.

#[path = "../tests/common/azurite.rs"]
mod azurite;
#[path = "host_path/ceiling.rs"]
mod ceiling;
#[path = "host_path/fan_in.rs"]
mod fan_in;
#[path = "host_path/hosts.rs"]
mod hosts;
#[path = "host_path/memory.rs"]
mod memory;
#[path = "host_path/proxy.rs"]
mod proxy;
#[path = "host_path/report.rs"]
mod report;
#[path = "host_path/request_response.rs"]
mod request_response;
#[path = "../tests/common/supervised.rs"]
mod supervised;
#[path = "host_path/throughput_rr.rs"]
mod throughput_rr;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azurite::{connection_string, free_ports, Azurite};
use futures::stream::{self, StreamExt};
use proxy::{start_proxies, Counts};
use report::{Runs, Table};
use serde_json::{json, Value};
use supervised::Supervised;

/// The task hub every app and the ceiling's backend use.
const TASK_HUB: &str = "benchhub";

/// Where Azurite keeps its data: on disk, as storage that outlives a restart does, or in memory.
#[derive(Clone, Copy, PartialEq)]
enum Persistence {
    Disk,
    Memory,
}

impl Persistence {
    fn name(self) -> &'static str {
        match self {
            Persistence::Disk => "disk",
            Persistence::Memory => "memory",
        }
    }

    /// Throughput figures on disk are named with this prefix; in memory, as they always were.
    fn key_prefix(self) -> &'static str {
        match self {
            Persistence::Disk => "disk_",
            Persistence::Memory => "",
        }
    }
}

/// What one run of the benchmark is asked to do.
struct Options {
    root: PathBuf,
    /// Where the release `devhost` and `worker` are.
    bin_dir: PathBuf,
    throughput: bool,
    fan_in: bool,
    hosts: bool,
    memory: bool,
    /// `--azurite`, when given: the throughput and fan-in sections then use it.
    azurite: Option<Vec<Persistence>>,
    /// `--hosts`, when given.
    host_counts: Option<Vec<usize>>,
    memory_orchestrations: usize,
    runs: usize,
    instances: usize,
    in_flight: usize,
    latency_samples: usize,
    count_instances: usize,
    fan_in_counts: Vec<usize>,
    fan_in_timeout: Duration,
    output: PathBuf,
}

impl Options {
    fn throughput_persistence(&self) -> Vec<Persistence> {
        self.azurite
            .clone()
            .unwrap_or_else(|| vec![Persistence::Disk, Persistence::Memory])
    }

    /// The hosts the throughput section's request-response runs spread over.
    fn throughput_hosts(&self) -> usize {
        self.host_counts.as_ref().map_or(1, |counts| counts[0])
    }

    fn hosts_section_counts(&self) -> Vec<usize> {
        self.host_counts.clone().unwrap_or_else(|| vec![1, 2, 3])
    }

    fn fan_in_persistence(&self) -> Vec<Persistence> {
        self.azurite
            .clone()
            .unwrap_or_else(|| vec![Persistence::Disk, Persistence::Memory])
    }
}

fn options() -> Options {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // This binary runs from <target dir>/release/deps/, beside the release binaries' folder.
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .expect("the benchmark knows its own path");
    let mut options = Options {
        output: root.join("bench-results/host_path.json"),
        root,
        bin_dir,
        throughput: true,
        fan_in: true,
        hosts: false,
        memory: false,
        azurite: None,
        host_counts: None,
        memory_orchestrations: 100_000,
        runs: 3,
        instances: 1000,
        in_flight: 64,
        latency_samples: 50,
        count_instances: 50,
        fan_in_counts: vec![100, 1000, 10_000],
        fan_in_timeout: Duration::from_secs(300),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_default();
        let number = |name: &str| -> usize {
            value()
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        };
        match args[i].as_str() {
            "--runs" => options.runs = number("--runs"),
            "--instances" => options.instances = number("--instances"),
            "--in-flight" => options.in_flight = number("--in-flight"),
            "--latency-samples" => options.latency_samples = number("--latency-samples"),
            "--count-instances" => options.count_instances = number("--count-instances"),
            "--fanin-counts" => {
                options.fan_in_counts = value()
                    .split(',')
                    .map(|n| match n.trim().parse() {
                        Ok(n) if n <= fan_in::MAX_COUNT => n,
                        _ => panic!("--fanin-counts takes numbers up to 10000, like 100,1000"),
                    })
                    .collect();
            }
            "--fanin-timeout" => {
                options.fan_in_timeout = Duration::from_secs(number("--fanin-timeout") as u64);
            }
            "--hosts" => {
                options.host_counts = Some(
                    value()
                        .split(',')
                        .map(|n| match n.trim().parse() {
                            Ok(n) if n > 0 => n,
                            _ => panic!("--hosts takes host counts, like 1,2,3"),
                        })
                        .collect(),
                );
            }
            "--memory-orchestrations" => {
                options.memory_orchestrations = number("--memory-orchestrations");
            }
            "--only" => {
                let sections = value();
                let sections: Vec<&str> = sections.split(',').collect();
                for section in &sections {
                    assert!(
                        ["throughput", "fanin", "hosts", "memory"].contains(section),
                        "--only takes throughput, fanin, hosts or memory (or several, \
                         comma-separated), not '{section}'"
                    );
                }
                options.throughput = sections.contains(&"throughput");
                options.fan_in = sections.contains(&"fanin");
                options.hosts = sections.contains(&"hosts");
                options.memory = sections.contains(&"memory");
            }
            "--azurite" => {
                options.azurite = Some(match value().as_str() {
                    "disk" => vec![Persistence::Disk],
                    "memory" => vec![Persistence::Memory],
                    "both" => vec![Persistence::Disk, Persistence::Memory],
                    other => panic!("--azurite takes disk, memory or both, not '{other}'"),
                });
            }
            "--bin-dir" => options.bin_dir = PathBuf::from(value()),
            "--output" => options.output = PathBuf::from(value()),
            // cargo bench passes --bench; nothing to do.
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument '{other}'"),
        }
        i += 2;
    }
    options
}

/// A fresh Azurite for one measurement, stopped on drop; on disk, its folder is removed too.
enum Storage {
    Memory(Azurite),
    Disk { ports: [u16; 3], dir: PathBuf },
}

impl Storage {
    fn start(root: &Path, persistence: Persistence) -> Storage {
        if persistence == Persistence::Memory {
            return Storage::Memory(Azurite::start());
        }
        let ports = free_ports::<3>();
        let dir = std::env::temp_dir().join(format!("host-path-azurite-{}", ports[0]));
        let output = Command::new(root.join("scripts/azurite.sh"))
            .arg("start")
            .arg("--disk")
            .arg(&dir)
            .args(["--blob-port", &ports[0].to_string()])
            .args(["--queue-port", &ports[1].to_string()])
            .args(["--table-port", &ports[2].to_string()])
            .args(["--owner-pid", &std::process::id().to_string()])
            .output()
            .expect("run scripts/azurite.sh");
        assert!(
            output.status.success(),
            "Azurite did not start on disk: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Storage::Disk { ports, dir }
    }

    fn ports(&self) -> [u16; 3] {
        match self {
            Storage::Memory(azurite) => azurite.ports,
            Storage::Disk { ports, .. } => *ports,
        }
    }

    /// Azurite's process, from the pid file `scripts/azurite.sh` keeps.
    fn pid(&self) -> Option<u32> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let file = root.join(format!(".azurite/azurite-{}.pid", self.ports()[0]));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    fn connection_string(&self) -> String {
        match self {
            Storage::Memory(azurite) => azurite.connection_string(),
            Storage::Disk { ports, .. } => connection_string(*ports),
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Storage::Disk { ports, dir } = self {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let _ = Command::new(root.join("scripts/azurite.sh"))
                .args(["stop", "--blob-port", &ports[0].to_string()])
                .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The dev host with the release worker under it, stopped (with its worker) on drop.
struct App {
    devhost: Supervised,
    base: String,
}

impl App {
    async fn start(options: &Options, storage: &str) -> App {
        let [port] = free_ports();
        let devhost = Command::new(options.bin_dir.join("devhost"))
            .arg(&options.root)
            .args(["--port", &port.to_string()])
            .env("DEVHOST_WORKER", options.bin_dir.join("worker"))
            .env("AzureWebJobsStorage", storage)
            .env("TaskHub", TASK_HUB)
            .env("AzureWebJobs.Function1.Disabled", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the release devhost (run scripts/bench.sh, which builds it)");
        let app = App {
            devhost: Supervised(devhost),
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = http
                .get(format!("{}/api/instances/probe", app.base))
                .send()
                .await
            {
                if answer.status() == 404 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the app did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app
    }

    fn worker_pid(&self) -> Option<u32> {
        let parent = self.devhost.0.id().to_string();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let after_name = stat.rsplit_once(')')?.1;
                let ppid = after_name.split_whitespace().nth(1)?;
                (ppid == parent).then_some(pid)
            })
    }
}

/// `count` apps on one task hub in `storage`, each dev host on its own port with its own worker.
async fn start_apps(options: &Options, storage: &str, count: usize) -> Vec<App> {
    let mut apps = Vec::with_capacity(count);
    for _ in 0..count {
        apps.push(App::start(options, storage).await);
    }
    apps
}

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

/// One run of the throughput section, for one Azurite mode: fire-and-poll on a fresh Azurite
/// (throughput, latency and peak RSS straight to Azurite, then storage requests per orchestration
/// through the counting proxy), then request-response (`throughput_rr`). Figures on disk are
/// named with a `disk_` prefix; in memory, as they always were.
async fn throughput_run(
    options: &Options,
    run: usize,
    persistence: Persistence,
    record: &mut impl FnMut(String, f64),
) -> anyhow::Result<()> {
    let prefix = persistence.key_prefix();
    let mut record = |name: &str, value: f64| record(format!("{prefix}{name}"), value);
    let storage = Storage::start(&options.root, persistence);
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
    drop(counted);
    drop(storage);

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
    let modes = options.throughput_persistence();
    Table {
        title: "throughput (median)".to_string(),
        columns: modes.iter().map(|mode| mode.name().to_string()).collect(),
        rows: rows
            .iter()
            .map(|(label, key)| {
                let cells = modes
                    .iter()
                    .map(|mode| runs.median(&format!("{}{key}", mode.key_prefix())))
                    .collect();
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
    if options.memory {
        let figures = memory::measure(&options).await?;
        for (name, value) in &figures {
            json.insert(name.clone(), json!(value));
        }
        tables.push(memory::table(&figures));
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
