//! The example app (`examples/hello-app`) as its user runs it: its worker binary laid out beside
//! its `host.json`, `local.settings.json` and `functions/` as the Functions host expects, under
//! the dev host against a fresh Azurite, driven over HTTP and through its trigger queue.

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use azure_storage_queues::QueueClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use reqwest::StatusCode;
use serde_json::{json, Value};

use azurite::{free_ports, Azurite};
use supervised::Supervised;

const LONG: Duration = Duration::from_secs(60);

/// The example app running under the dev host. Fields drop in order: the dev host (and its
/// worker) stop before their storage does.
struct HelloApp {
    base: String,
    http: reqwest::Client,
    requests: QueueClient,
    _devhost: Supervised,
    _azurite: Azurite,
    dir: PathBuf,
    log: PathBuf,
}

impl HelloApp {
    async fn start() -> HelloApp {
        let worker = binaries::build("hello-app", "hello-worker");
        let devhost = binaries::devhost();
        let azurite = Azurite::start();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-app");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hello-app-{}", uuid::Uuid::new_v4().simple()));
        copy_dir(&source.join("functions"), &dir.join("functions"));
        for file in ["host.json", "local.settings.json"] {
            fs::copy(source.join(file), dir.join(file)).expect("copy the app's settings");
        }
        // Under its own name: the dev host finds it only if host.json names it.
        fs::copy(&worker, dir.join(worker.file_name().unwrap())).expect("copy the worker");
        let log = dir.join("devhost.log");
        let log_file = fs::File::create(&log).expect("create the dev host log");
        let [port] = free_ports();
        let devhost = Command::new(devhost)
            .arg(&dir)
            .args(["--port", &port.to_string()])
            .env_remove("DEVHOST_WORKER")
            .env("AzureWebJobsStorage", azurite.connection_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start the dev host");
        let connection =
            StorageConnection::parse_connection_string("test", &azurite.connection_string())
                .unwrap();
        let queues = connection
            .build_clients(http_client(HttpSettings::default()).unwrap())
            .unwrap()
            .queues;
        let app = HelloApp {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            requests: queues.queue_client("greeting-requests"),
            _devhost: Supervised(devhost),
            _azurite: azurite,
            dir,
            log,
        };
        app.wait_until_serving().await;
        app
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + LONG;
        // A 404 for an unknown instance comes from the worker, through the dev host.
        while self.get("/api/instances/probe").await.0 != StatusCode::NOT_FOUND {
            assert!(
                Instant::now() < deadline,
                "the app did not serve HTTP within {LONG:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Status and JSON body (`Null` when there is no answer or it is not JSON).
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        match self.http.get(format!("{}{path}", self.base)).send().await {
            Ok(response) => (
                response.status(),
                response.json().await.unwrap_or(Value::Null),
            ),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Value::Null),
        }
    }

    /// Starts `Greetings` over HTTP, as the Durable Functions starter does; returns its id.
    async fn start_greetings(&self, names: Value) -> String {
        let response = self
            .http
            .post(format!("{}/api/orchestrators/Greetings", self.base))
            .json(&names)
            .send()
            .await
            .expect("POST through the dev host");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("a check-status body");
        body["id"].as_str().expect("an instance id").to_string()
    }

    /// Puts `request` on the trigger queue as base64 text, as `host.json`'s `messageEncoding`
    /// says senders do.
    async fn send_request(&self, request: &Value) {
        self.requests
            .put_message(BASE64.encode(request.to_string()))
            .await
            .expect("put the request on greeting-requests");
    }

    /// The instance's status once it has ended.
    async fn ended(&self, instance_id: &str) -> Value {
        let deadline = Instant::now() + LONG;
        loop {
            let (status, body) = self.get(&format!("/api/instances/{instance_id}")).await;
            if status == StatusCode::OK {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "'{instance_id}' did not end within {LONG:?}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_log(&self, line: &str) {
        let deadline = Instant::now() + LONG;
        while !self.log_text().contains(line) {
            assert!(
                Instant::now() < deadline,
                "the dev host never logged {line:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for HelloApp {
    /// Prints the dev host's log (its worker's included) when the test failed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- dev host log ----\n{}", self.log_text());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the app folder");
    for entry in fs::read_dir(from).expect("read the example app") {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy a function.json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_app_greets_over_http_and_from_its_queue() {
    let app = HelloApp::start().await;

    let id = app.start_greetings(json!(["Ada", "Grace"])).await;
    let done = app.ended(&id).await;
    assert_eq!(done["name"], "Greetings", "{done}");
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"], json!(["Hello, Ada!", "Hello, Grace!"]));

    // The activity refuses a blank name, and the orchestration fails with its reason.
    let id = app.start_greetings(json!(["Ada", " "])).await;
    let failed = app.ended(&id).await;
    assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
    assert!(
        failed["output"]
            .to_string()
            .contains("there is no one to greet"),
        "{failed}"
    );

    // The trigger function starts the run under the request's id.
    let request = json!({"Id": "team-1", "Names": ["Linus"]});
    app.send_request(&request).await;
    let done = app.ended("team-1").await;
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"], json!(["Hello, Linus!"]));

    // A redelivered request finds its instance and starts nothing.
    app.send_request(&request).await;
    app.wait_for_log("'team-1' already exists (Completed); not starting it again")
        .await;
    let again = app.ended("team-1").await;
    assert_eq!(again["createdTime"], done["createdTime"], "{again}");
    assert_eq!(again["lastUpdatedTime"], done["lastUpdatedTime"], "{again}");
}
