//! The whole app as a user runs it: a fresh Azurite (or a task hub the test owns), the dev host
//! on a free port serving this repository's `host.json` and `functions/`, and the worker binary
//! under it. Tests talk to it
//! only over HTTP (and Azurite's queues); dropping it stops the dev host (which stops the
//! worker) and prints the dev host's log when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::azurite::{free_ports, Azurite};
use super::supervised::{kill9, signal, Supervised};

pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    /// Fields drop in order: the dev host (and its worker) stop before their storage does.
    devhost: Supervised,
    /// `None` when the storage belongs to the test (several apps on one task hub).
    _azurite: Option<Azurite>,
    log: PathBuf,
}

/// Settings that keep the workflows' simulated waits short; a test overrides any of them.
const FAST: &[(&str, &str)] = &[
    ("SYNC_WORK_DELAY_MS", "20"),
    ("SYNC_RETRY_FIRST_INTERVAL_MS", "100"),
    ("ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS", "100"),
    ("AzureWebJobs.Function1.Disabled", "true"),
    ("RUST_LOG", "info"),
];

/// The task hub of an app that owns its Azurite.
const HUB: &str = "e2ehub";

/// A response: status, headers and the JSON body (`Null` when the body is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl App {
    /// Starts everything and waits until a request reaches the worker through the dev host.
    pub async fn start(settings: &[(&str, &str)]) -> App {
        Self::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), settings).await
    }

    /// [`App::start`] of the app whose `host.json` and `functions/` are in `root`.
    pub async fn start_in(root: &Path, settings: &[(&str, &str)]) -> App {
        let azurite = Azurite::start();
        let storage = azurite.connection_string();
        Self::launch(root, &storage, HUB, settings, Some(azurite)).await
    }

    async fn launch(
        root: &Path,
        storage: &str,
        hub: &str,
        settings: &[(&str, &str)],
        azurite: Option<Azurite>,
    ) -> App {
        let [port] = free_ports();
        let log =
            std::env::temp_dir().join(format!("devhost-e2e-{}.log", uuid::Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("create the dev host log");
        let mut command = Command::new(crate::binaries::devhost());
        command
            .arg(root)
            .args(["--port", &port.to_string()])
            .env("DEVHOST_WORKER", env!("CARGO_BIN_EXE_worker"))
            .env("AzureWebJobsStorage", storage)
            .env("TaskHub", hub)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file);
        for (name, value) in FAST.iter().chain(settings) {
            command.env(name, value);
        }
        let devhost = command.spawn().expect("start the dev host");
        let app = App {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            devhost: Supervised(devhost),
            _azurite: azurite,
            log,
        };
        app.wait_until_serving().await;
        app
    }

    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A 404 for an unknown instance comes from the worker, through the dev host.
            if let Ok(response) = self
                .http
                .get(format!("{}/api/instances/probe", self.base))
                .send()
                .await
            {
                if response.status() == StatusCode::NOT_FOUND {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the app did not serve HTTP within 60 s; dev host log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The storage of an app that owns its Azurite (for tests that reach past the API, as
    /// tests/poison.rs).
    #[allow(dead_code)]
    pub fn connection_string(&self) -> Option<String> {
        self._azurite.as_ref().map(Azurite::connection_string)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A response as status, headers and JSON body (`Null` when the body is not JSON).
    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET through the dev host");
        Self::answer(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("POST through the dev host");
        Self::answer(response).await
    }

    /// Starts `orchestrator` through the HTTP starter and returns the new instance's id.
    pub async fn start_instance(&self, orchestrator: &str, input: &Value) -> String {
        let answer = self
            .post(&format!("/api/orchestrators/{orchestrator}"), input)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "starting {orchestrator}: {}",
            answer.body
        );
        answer.body["id"]
            .as_str()
            .expect("the check-status body has an id")
            .to_string()
    }

    /// Polls the status endpoint until `done(status)` holds; panics with the last status after
    /// `timeout`.
    pub async fn wait_for(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_until(&format!("/api/instances/{instance_id}"), timeout, done)
            .await
    }

    /// Polls `GET path` until it answers 2xx with a body `done` accepts; panics with the last
    /// answer after `timeout`.
    pub async fn wait_until(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.get(path).await;
            if answer.status.is_success() && done(&answer.body) {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not get there within {timeout:?}; last answer {} {}",
                answer.status,
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the instance has ended (Completed, Failed, Terminated or Canceled).
    pub async fn wait_for_end(&self, instance_id: &str, timeout: Duration) -> Value {
        self.wait_for(instance_id, timeout, |status| {
            matches!(
                status["runtimeStatus"].as_str(),
                Some("Completed" | "Failed" | "Terminated" | "Canceled")
            )
        })
        .await
    }
}

// Only the tests that run several apps on one task hub, kill processes, or reach into the
// storage use these.
#[allow(dead_code)]
impl App {
    /// The connection and clients of the storage this app owns.
    pub fn storage(
        &self,
    ) -> (
        durable_protocol::connection::StorageConnection,
        durable_protocol::connection::StorageClients,
    ) {
        use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
        let connection = StorageConnection::from_settings(
            [(
                "AzureWebJobsStorage",
                self.connection_string().expect("the app owns its Azurite"),
            )],
            "AzureWebJobsStorage",
        )
        .expect("the app's connection string parses");
        let clients = connection
            .build_clients(http_client(HttpSettings::default()).expect("an HTTP client"))
            .expect("storage clients");
        (connection, clients)
    }

    /// Queues event `name` with `data` for `instance_id` straight on its control queue, past the
    /// API (which refuses an instance that does not exist), as an event that overtook its
    /// instance's start arrives. Returns the message's id.
    pub async fn send_event_unchecked(
        &self,
        instance_id: &str,
        name: &str,
        data: &Value,
    ) -> String {
        use durable_engine::{EventKind, HistoryEvent};
        use durable_store::azure::backend::AzureBackend;
        use durable_store::backend::{Backend, SystemClock};
        use durable_store::model::{Destination, Message};
        use durable_store::names::TaskHub;

        let (connection, _) = self.storage();
        let hub = TaskHub::new(HUB).expect("the app's task hub name is valid");
        let backend = AzureBackend::connect(&connection, hub, std::sync::Arc::new(SystemClock))
            .expect("storage clients");
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            destination: Destination::Instance {
                instance_id: instance_id.to_string(),
                execution_id: None,
            },
            event: HistoryEvent::message(
                chrono::Utc::now(),
                EventKind::EventRaised {
                    name: name.to_string(),
                    input: Some(data.to_string()),
                },
            ),
            deliver_at: None,
            revision: None,
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
        };
        backend
            .send(std::slice::from_ref(&message))
            .await
            .expect("queue the event");
        message.id
    }

    /// Starts a dev host and its worker on task hub `hub` of a storage the caller owns.
    pub async fn start_on(storage: &str, hub: &str, settings: &[(&str, &str)]) -> App {
        Self::launch(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            storage,
            hub,
            settings,
            None,
        )
        .await
    }

    /// The worker the dev host runs now, if it runs one.
    pub fn worker_pid(&self) -> Option<u32> {
        self.devhost.child_pid()
    }

    /// Kills the worker with SIGKILL, as a crash would; the dev host starts another.
    pub fn kill_worker(&self) -> Option<u32> {
        let pid = self.worker_pid()?;
        kill9(pid);
        Some(pid)
    }

    /// Stops (`STOP`) or continues (`CONT`) the dev host and its worker: frozen, they make no
    /// storage call, while what they already sent is answered.
    pub fn signal(&self, name: &str) {
        if let Some(worker) = self.worker_pid() {
            signal(worker, name);
        }
        signal(self.devhost.0.id(), name);
    }

    /// Asks the dev host to stop (SIGTERM, as a supervisor does) and returns how long it took
    /// to exit, or `None` if it is still running after `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let asked = Instant::now();
        signal(self.devhost.0.id(), "TERM");
        while asked.elapsed() < limit {
            if let Ok(Some(_)) = self.devhost.0.try_wait() {
                return Some(asked.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the dev host and its worker with SIGKILL, as a crash of the machine would.
    pub fn kill(&mut self) {
        let worker = self.worker_pid();
        let _ = self.devhost.0.kill();
        let _ = self.devhost.0.wait();
        if let Some(pid) = worker {
            kill9(pid);
        }
    }
}

impl Drop for App {
    /// Prints the dev host's log when the test failed; the dev host itself stops with its
    /// `Supervised` handle.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- dev host log ----\n{}", self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
