//! A child process stopped as a supervisor would on drop: SIGTERM first, so a dev host stops
//! its worker too, and SIGKILL only if it has not exited within ten seconds.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Supervised(pub Child);

impl Drop for Supervised {
    fn drop(&mut self) {
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
