//! The worker binary as the Functions host starts it: it listens on the port from
//! `FUNCTIONS_CUSTOMHANDLER_PORT` and answers the host's readiness probe.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn get_root(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn worker_answers_the_readiness_probe_on_the_given_port() {
    let port = free_port();
    let worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts"),
    );
    // Poll like the host does (every 25 ms) until the listener is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match get_root(port) {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            Err(error) => panic!("worker never became ready: {error}"),
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(worker);
}

#[test]
fn worker_without_a_port_exits_with_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .output()
        .expect("worker runs");
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("FUNCTIONS_CUSTOMHANDLER_PORT is not set"),
        "{logs}"
    );
}
