//! What a run of the benchmark is asked to do: its sections, sizes and Azurite modes, from the
//! command line `scripts/bench.sh` passes on.

use std::path::PathBuf;
use std::time::Duration;

use super::fan_in;

/// Where Azurite keeps its data: on disk, as storage that outlives a restart does, or in memory.
#[derive(Clone, Copy, PartialEq)]
pub enum Persistence {
    Disk,
    Memory,
}

impl Persistence {
    pub fn name(self) -> &'static str {
        match self {
            Persistence::Disk => "disk",
            Persistence::Memory => "memory",
        }
    }

    /// Throughput figures on disk are named with this prefix; in memory, as they always were.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Persistence::Disk => "disk_",
            Persistence::Memory => "",
        }
    }
}

/// What one run of the benchmark is asked to do.
pub struct Options {
    pub root: PathBuf,
    /// Where the release `devhost` and `worker` are.
    pub bin_dir: PathBuf,
    pub throughput: bool,
    pub fan_in: bool,
    pub hosts: bool,
    pub memory: bool,
    pub fraud: bool,
    /// `--azurite`, when given: the throughput, fan-in and fraud sections then use it.
    pub azurite: Option<Vec<Persistence>>,
    /// `--hosts`, when given.
    pub host_counts: Option<Vec<usize>>,
    pub memory_orchestrations: usize,
    pub runs: usize,
    pub instances: usize,
    pub in_flight: usize,
    pub latency_samples: usize,
    pub count_instances: usize,
    pub fan_in_counts: Vec<usize>,
    pub fan_in_timeout: Duration,
    /// The fraud section's stream: transactions over cards, queued before the app starts.
    pub fraud_transactions: usize,
    pub fraud_cards: usize,
    /// At most this many transactions queued at a time, topped up as the app drains them
    /// (Azurite's queue operations slow with depth); 0 queues them all at once.
    pub fraud_depth: usize,
    /// Alerts timed, one after the other.
    pub fraud_alerts: usize,
    /// Normal transactions a second queued while the alerts are timed; 0 leaves the app idle.
    pub fraud_background: usize,
    pub output: PathBuf,
}

impl Options {
    pub fn throughput_persistence(&self) -> Vec<Persistence> {
        self.azurite
            .clone()
            .unwrap_or_else(|| vec![Persistence::Disk, Persistence::Memory])
    }

    /// The hosts the throughput section's request-response runs spread over.
    pub fn throughput_hosts(&self) -> usize {
        self.host_counts.as_ref().map_or(1, |counts| counts[0])
    }

    pub fn hosts_section_counts(&self) -> Vec<usize> {
        self.host_counts.clone().unwrap_or_else(|| vec![1, 2, 3])
    }

    /// The memory section's Azurite: the first mode `--azurite` names, on disk by default.
    pub fn memory_persistence(&self) -> Persistence {
        self.azurite
            .as_ref()
            .and_then(|modes| modes.first().copied())
            .unwrap_or(Persistence::Disk)
    }

    pub fn fan_in_persistence(&self) -> Vec<Persistence> {
        self.throughput_persistence()
    }

    pub fn fraud_persistence(&self) -> Vec<Persistence> {
        self.throughput_persistence()
    }
}

pub fn options() -> Options {
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
        fraud: false,
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
        fraud_transactions: 20_000,
        fraud_cards: 2_000,
        fraud_depth: 1_000,
        fraud_alerts: 20,
        fraud_background: 50,
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
            "--fraud-transactions" => {
                options.fraud_transactions = number("--fraud-transactions");
            }
            "--fraud-cards" => {
                options.fraud_cards = number("--fraud-cards").max(1);
            }
            "--fraud-depth" => options.fraud_depth = number("--fraud-depth"),
            "--fraud-alerts" => options.fraud_alerts = number("--fraud-alerts"),
            "--fraud-background" => options.fraud_background = number("--fraud-background"),
            "--memory-orchestrations" => {
                options.memory_orchestrations = number("--memory-orchestrations");
            }
            "--only" => {
                let sections = value();
                let sections: Vec<&str> = sections.split(',').collect();
                for section in &sections {
                    assert!(
                        ["throughput", "fanin", "hosts", "memory", "fraud"].contains(section),
                        "--only takes throughput, fanin, hosts, memory or fraud (or several, \
                         comma-separated), not '{section}'"
                    );
                }
                options.throughput = sections.contains(&"throughput");
                options.fan_in = sections.contains(&"fanin");
                options.hosts = sections.contains(&"hosts");
                options.memory = sections.contains(&"memory");
                options.fraud = sections.contains(&"fraud");
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
