//! The worker binary reaches storage with the credential its settings name and nothing else:
//! identity-based settings (`AzureWebJobsStorage__*`, `__credential=managedidentity`) fetch a
//! token from the App Service identity endpoint and send it as a bearer token, for the
//! system-assigned identity and a user-assigned one (`__clientId`); a connection string signs
//! with the account key. Local stand-ins play the identity endpoint and the storage services.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use durable_store::names::TaskHub;

const HUB: &str = "identityhub";
const IDENTITY_SECRET: &str = "identity-header-secret";

/// A request one of the stand-ins received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        url_pairs(&self.query)
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .expect("query")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn record(log: &Log, request: Request) -> Seen {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .expect("request body");
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body: body.to_vec(),
    };
    log.lock().unwrap().push(seen.clone());
    seen
}

/// The token each identity gets, so a storage request shows which identity it came from.
fn token_for(client_id: Option<&str>) -> String {
    format!("mi-token-{}", client_id.unwrap_or("system-assigned"))
}

/// The App Service managed identity endpoint (api-version 2019-08-01): a GET with the
/// `X-IDENTITY-HEADER` secret, answered with `expires_on` as a string of Unix seconds.
async fn identity_endpoint(State(log): State<Log>, request: Request) -> Response {
    let seen = record(&log, request).await;
    let client_id = seen
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v);
    let expires_on = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp();
    let body = serde_json::json!({
        "access_token": token_for(client_id.as_deref()),
        "expires_on": expires_on.to_string(),
        "resource": "https://storage.azure.com",
        "token_type": "Bearer",
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// Blob, queue and table services under /blob, /queue and /table: every create answers
/// "already exists", which the worker accepts, so it makes each creation call once.
async fn storage(State(log): State<Log>, request: Request) -> Response {
    let seen = record(&log, request).await;
    let code = match seen.path.split('/').nth(1) {
        Some("blob") => "ContainerAlreadyExists",
        Some("queue") => "QueueAlreadyExists",
        Some("table") => "TableAlreadyExists",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        StatusCode::CONFLICT,
        [("x-ms-error-code", code), ("x-ms-request-id", "stand-in")],
    )
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a stand-in");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

struct StandIns {
    identity: String,
    storage: String,
    identity_log: Log,
    storage_log: Log,
}

async fn stand_ins() -> StandIns {
    let identity_log = Log::default();
    let storage_log = Log::default();
    let identity = serve(
        Router::new()
            .fallback(identity_endpoint)
            .with_state(identity_log.clone()),
    )
    .await;
    let storage = serve(
        Router::new()
            .fallback(storage)
            .with_state(storage_log.clone()),
    )
    .await;
    StandIns {
        identity: format!("{identity}/msi/token"),
        storage,
        identity_log,
        storage_log,
    }
}

struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts the worker with only `settings` (plus the host's port and the identity endpoint
    /// the platform provides), so nothing from the test's environment leaks in.
    fn start(name: &str, stand_ins: &StandIns, settings: &[(&str, String)]) -> Worker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("identity-{name}.log"));
        let out = File::create(&log).expect("worker log");
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .env_clear()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("TaskHub", HUB)
            .env("IDENTITY_ENDPOINT", &stand_ins.identity)
            .env("IDENTITY_HEADER", IDENTITY_SECRET)
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("the worker starts");
        Worker { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the worker creates at start-up: the task hub's tables, queues and containers.
fn expected_creations() -> BTreeSet<String> {
    let hub = TaskHub::new(HUB).unwrap();
    let mut expected: BTreeSet<String> = [
        hub.history_table(),
        hub.instances_table(),
        hub.poison_table(),
        hub.deferred_table(),
    ]
    .into_iter()
    .map(|t| format!("table {t}"))
    .collect();
    for queue in hub
        .control_queues()
        .into_iter()
        .chain([hub.work_item_queue()])
    {
        expected.insert(format!("queue {queue}"));
    }
    expected.insert(format!("blob {}", hub.large_messages_container()));
    expected.insert(format!("blob {HUB}-artifacts"));
    expected
}

/// The resource a storage request creates, as "service name".
fn creation(seen: &Seen) -> String {
    let mut segments = seen.path.trim_start_matches('/').splitn(2, '/');
    let service = segments.next().unwrap_or("");
    let rest = segments.next().unwrap_or("");
    if service == "table" && rest == "Tables" {
        let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        format!("table {}", body["TableName"].as_str().unwrap_or("?"))
    } else {
        format!("{service} {rest}")
    }
}

/// Waits until the worker has asked to create the whole task hub; returns the storage requests.
async fn task_hub_requests(worker: &Worker, log: &Log) -> Vec<Seen> {
    let expected = expected_creations();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = log.lock().unwrap().clone();
        let created: BTreeSet<String> = seen.iter().map(creation).collect();
        if created == expected {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not create the task hub: created {created:?}, expected {expected:?}\nworker log:\n{}",
            worker.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn storage_uris(base: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "AzureWebJobsStorage__blobServiceUri",
            format!("{base}/blob"),
        ),
        (
            "AzureWebJobsStorage__queueServiceUri",
            format!("{base}/queue"),
        ),
        (
            "AzureWebJobsStorage__tableServiceUri",
            format!("{base}/table"),
        ),
    ]
}

/// Every storage request carried the identity's token, and the token came from the identity
/// endpoint as the App Service protocol asks: the resource, the API version, the secret header,
/// and `client_id` exactly when a user-assigned identity is configured.
fn assert_bearer_flow(client_id: Option<&str>, storage: &[Seen], identity: &[Seen]) {
    let bearer = format!("Bearer {}", token_for(client_id));
    for request in storage {
        assert_eq!(
            request.header("authorization"),
            bearer,
            "{} {}",
            request.method,
            request.path
        );
    }
    assert!(!identity.is_empty(), "no token was requested");
    // Tokens are cached: fewer token requests than storage calls.
    assert!(
        identity.len() < storage.len(),
        "{} token requests for {} storage calls",
        identity.len(),
        storage.len()
    );
    for request in identity {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/msi/token");
        assert_eq!(request.header("x-identity-header"), IDENTITY_SECRET);
        let pairs = request.query_pairs();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("api-version"), Some("2019-08-01"));
        assert_eq!(get("resource"), Some("https://storage.azure.com"));
        assert_eq!(get("client_id"), client_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_assigned_identity_as_deployed_by_the_bicep() {
    let stand_ins = stand_ins().await;
    // The settings infra/modules/functionapp.bicep writes: account name, the three service URIs
    // (here the stand-in's, which take precedence over the name; with the trailing '/' of the
    // storage account's primaryEndpoints) and the credential.
    let mut settings: Vec<(&str, String)> = storage_uris(&stand_ins.storage)
        .into_iter()
        .map(|(name, uri)| (name, format!("{uri}/")))
        .collect();
    settings.push(("AzureWebJobsStorage__accountName", "standinaccount".into()));
    settings.push(("AzureWebJobsStorage__credential", "managedidentity".into()));
    let worker = Worker::start("system-assigned", &stand_ins, &settings);

    let storage = task_hub_requests(&worker, &stand_ins.storage_log).await;
    let identity = stand_ins.identity_log.lock().unwrap().clone();
    assert_bearer_flow(None, &storage, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_assigned_identity_by_client_id() {
    let stand_ins = stand_ins().await;
    let client_id = "00000000-1111-2222-3333-444444444444";
    let mut settings = storage_uris(&stand_ins.storage);
    settings.push(("AzureWebJobsStorage__credential", "managedidentity".into()));
    settings.push(("AzureWebJobsStorage__clientId", client_id.into()));
    let worker = Worker::start("user-assigned", &stand_ins, &settings);

    let storage = task_hub_requests(&worker, &stand_ins.storage_log).await;
    let identity = stand_ins.identity_log.lock().unwrap().clone();
    assert_bearer_flow(Some(client_id), &storage, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_string_signs_with_the_account_key() {
    let stand_ins = stand_ins().await;
    let account = "standinaccount";
    let key = base64::engine::general_purpose::STANDARD.encode(b"stand-in account key, 32 bytes!!");
    let base = &stand_ins.storage;
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};\
         BlobEndpoint={base}/blob;QueueEndpoint={base}/queue;TableEndpoint={base}/table"
    );
    // Identity settings beside the connection string lose to it, as in the Functions host.
    let settings = [
        ("AzureWebJobsStorage", connection),
        ("AzureWebJobsStorage__credential", "managedidentity".into()),
    ];
    let worker = Worker::start("connection-string", &stand_ins, &settings);

    let storage = task_hub_requests(&worker, &stand_ins.storage_log).await;
    assert!(
        stand_ins.identity_log.lock().unwrap().is_empty(),
        "a connection string needs no token"
    );
    let prefix = format!("SharedKey {account}:");
    for request in &storage {
        assert!(
            request.header("authorization").starts_with(&prefix),
            "{} {}: {}",
            request.method,
            request.path,
            request.header("authorization")
        );
    }
    // The table service's Shared Key string is short enough to recompute here: the signature
    // must be an HMAC-SHA256 of it under the connection string's key.
    let create_table = storage
        .iter()
        .find(|r| r.path == "/table/Tables")
        .expect("a create-table request");
    let string_to_sign = format!(
        "{}\n{}\n{}\n{}\n/{account}{}",
        create_table.method,
        create_table.header("content-md5"),
        create_table.header("content-type"),
        create_table.header("x-ms-date"),
        create_table.path
    );
    let signature =
        azure_core::hmac::hmac_sha256(&string_to_sign, &azure_core::auth::Secret::new(key.clone()))
            .unwrap();
    assert!(!create_table.header("x-ms-date").is_empty());
    assert_eq!(
        create_table.header("authorization"),
        format!("{prefix}{signature}")
    );
}
