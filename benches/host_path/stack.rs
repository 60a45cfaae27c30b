//! The processes under test: a fresh Azurite for each measurement, and dev hosts, each with the
//! release worker under it, started as a user starts them and stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::azurite::{connection_string, free_ports, Azurite};
use super::supervised::Supervised;
use super::{Options, Persistence, TASK_HUB};

/// A fresh Azurite for one measurement, stopped on drop; on disk, its folder is removed too.
pub enum Storage {
    Memory(Azurite),
    Disk { ports: [u16; 3], dir: PathBuf },
}

impl Storage {
    pub fn start(root: &Path, persistence: Persistence) -> Storage {
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

    pub fn ports(&self) -> [u16; 3] {
        match self {
            Storage::Memory(azurite) => azurite.ports,
            Storage::Disk { ports, .. } => *ports,
        }
    }

    /// Azurite's process, from the pid file `scripts/azurite.sh` keeps.
    pub fn pid(&self) -> Option<u32> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let file = root.join(format!(".azurite/azurite-{}.pid", self.ports()[0]));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    pub fn connection_string(&self) -> String {
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
pub struct App {
    pub devhost: Supervised,
    pub base: String,
}

impl App {
    pub async fn start(options: &Options, storage: &str) -> App {
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

    pub fn worker_pid(&self) -> Option<u32> {
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
pub async fn start_apps(options: &Options, storage: &str, count: usize) -> Vec<App> {
    let mut apps = Vec::with_capacity(count);
    for _ in 0..count {
        apps.push(App::start(options, storage).await);
    }
    apps
}
