//! A child process stopped as a supervisor would on drop: SIGTERM first, so a dev host stops
//! its worker too, and SIGKILL only if it has not exited within ten seconds. Also finds and
//! kills the processes a child started (a dev host's worker), for the tests that crash them.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Supervised(pub Child);

impl Drop for Supervised {
    fn drop(&mut self) {
        // A child already reaped (killed by the test) may have its pid reused by now.
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Only the tests and benchmarks that look at or crash a dev host's worker use these.
#[allow(dead_code)]
impl Supervised {
    /// A live process this child started (a dev host's worker), from `/proc`.
    pub fn child_pid(&self) -> Option<u32> {
        let parent = self.0.id().to_string();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
                // A killed child stays a zombie until its parent reaps it.
                let state = fields.next()?;
                let ppid = fields.next()?;
                (ppid == parent && state != "Z").then_some(pid)
            })
    }
}

/// Sends SIGKILL to `pid`, as a crash would.
#[allow(dead_code)]
pub fn kill9(pid: u32) {
    signal(pid, "KILL");
}

/// Sends `signal` (a name `kill -s` takes: `KILL`, `STOP`, `CONT`) to `pid`.
#[allow(dead_code)]
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status();
}
