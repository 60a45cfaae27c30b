//! The processes under test: a fresh Azurite for each measurement, and dev hosts, each with the
//! release worker under it, started as a user starts them and stopped on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::azurite::{free_ports, Azurite};
use super::supervised::Supervised;
use super::{Options, Persistence, TASK_HUB};

/// A fresh Azurite for one measurement, stopped on drop; on disk, its folder is removed too.
pub struct Storage(Azurite);

impl Storage {
    pub fn start(persistence: Persistence) -> Storage {
        Storage(match persistence {
            Persistence::Memory => Azurite::start(),
            Persistence::Disk => Azurite::start_on_disk(),
        })
    }

    pub fn ports(&self) -> [u16; 3] {
        self.0.ports
    }

    /// Azurite's process, from the pid file `scripts/azurite.sh` keeps.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    pub fn connection_string(&self) -> String {
        self.0.connection_string()
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
        self.devhost.child_pid()
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
