//! An Azurite owned by a test process: started in memory (or on disk, to be killed and
//! restarted) on free ports through `scripts/azurite.sh`, stopped on drop, or by the script's
//! owner watch if the process dies first. Starting fails the test (never skips it) when Azurite
//! cannot start.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use durable_protocol::connection::{EMULATOR_ACCOUNT, EMULATOR_KEY};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `N` loopback ports nothing listens on right now. Binding them all at once keeps them
/// distinct; another process could still grab one before its user does (azurite.sh reports
/// that for Azurite's).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A running Azurite: blob, queue and table ports, and its folder when it keeps data on disk.
pub struct Azurite {
    pub ports: [u16; 3],
    disk: Option<PathBuf>,
}

impl Azurite {
    /// Starts a fresh in-memory Azurite; panics with the script's output if it cannot.
    pub fn start() -> Self {
        let azurite = Self {
            ports: free_ports::<3>(),
            disk: None,
        };
        azurite.launch();
        azurite
    }

    fn launch(&self) {
        let mut command = Command::new(repo_root().join("scripts/azurite.sh"));
        command.arg("start");
        match &self.disk {
            Some(dir) => command.arg("--disk").arg(dir),
            None => command.arg("--memory"),
        };
        let output = command
            .args(["--blob-port", &self.ports[0].to_string()])
            .args(["--queue-port", &self.ports[1].to_string()])
            .args(["--table-port", &self.ports[2].to_string()])
            .args(["--owner-pid", &std::process::id().to_string()])
            .output()
            .expect("run scripts/azurite.sh");
        assert!(
            output.status.success(),
            "Azurite did not start ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A full connection string with explicit endpoints for this instance.
    pub fn connection_string(&self) -> String {
        connection_string(self.ports)
    }
}

/// A full connection string to an emulator account served on `[blob, queue, table]` ports
/// (an Azurite, or a proxy in front of one).
pub fn connection_string([blob, queue, table]: [u16; 3]) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};\
         BlobEndpoint=http://127.0.0.1:{blob}/{EMULATOR_ACCOUNT};\
         QueueEndpoint=http://127.0.0.1:{queue}/{EMULATOR_ACCOUNT};\
         TableEndpoint=http://127.0.0.1:{table}/{EMULATOR_ACCOUNT};"
    )
}

// Only the tests that kill and restart storage (and the benchmarks) use these.
#[allow(dead_code)]
impl Azurite {
    /// Starts a fresh Azurite keeping its data in a new folder, so [`Azurite::restart`] finds
    /// it again; the folder is removed on drop.
    pub fn start_on_disk() -> Self {
        let ports = free_ports::<3>();
        let dir = std::env::temp_dir().join(format!("azurite-disk-{}", ports[0]));
        let _ = std::fs::remove_dir_all(&dir);
        let azurite = Self {
            ports,
            disk: Some(dir),
        };
        azurite.launch();
        azurite
    }

    /// Azurite's process, from the pid file `scripts/azurite.sh` keeps.
    pub fn pid(&self) -> Option<u32> {
        let file = repo_root().join(format!(".azurite/azurite-{}.pid", self.ports[0]));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Kills Azurite with SIGKILL, as a crash would, and waits until its ports are closed.
    pub fn kill(&self) {
        self.end("KILL");
    }

    /// Stops Azurite with SIGTERM, as a restart of the service would: it saves its data on the
    /// way out. Waits until the process has gone.
    pub fn stop(&self) {
        self.end("TERM");
    }

    fn end(&self, signal: &str) {
        let pid = self.pid().expect("Azurite's pid file").to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let alive = || {
            Command::new("kill")
                .args(["-0", &pid])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive()
            || self
                .ports
                .iter()
                .any(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "Azurite is still up 20 s after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Azurite again on the same ports (and folder, if on disk).
    pub fn restart(&self) {
        self.launch();
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/azurite.sh"))
            .args(["stop", "--blob-port", &self.ports[0].to_string()])
            .output();
        if let Some(dir) = &self.disk {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
