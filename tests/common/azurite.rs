//! An Azurite owned by a test process: started in memory on free ports through
//! `scripts/azurite.sh`, stopped on drop, or by the script's owner watch if the process dies
//! first. Starting fails the test (never skips it) when Azurite cannot start.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

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

/// A running Azurite: blob, queue and table ports.
pub struct Azurite {
    pub ports: [u16; 3],
}

impl Azurite {
    /// Starts a fresh in-memory Azurite; panics with the script's output if it cannot.
    pub fn start() -> Self {
        let ports = free_ports::<3>();
        let output = Command::new(repo_root().join("scripts/azurite.sh"))
            .arg("start")
            .arg("--memory")
            .args(["--blob-port", &ports[0].to_string()])
            .args(["--queue-port", &ports[1].to_string()])
            .args(["--table-port", &ports[2].to_string()])
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
        Self { ports }
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

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/azurite.sh"))
            .args(["stop", "--blob-port", &self.ports[0].to_string()])
            .output();
    }
}
