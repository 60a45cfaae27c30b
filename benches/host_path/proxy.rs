//! The counting proxy in front of Azurite: relays each service's requests and counts those the
//! work causes, by service and by kind (the table or queue a request went to, and what it did).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;

/// The storage requests the work caused, by service and by kind.
#[derive(Default)]
pub struct Counts {
    blob: AtomicU64,
    queue: AtomicU64,
    table: AtomicU64,
    kinds: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    pub fn snapshot(&self) -> [u64; 3] {
        [
            self.blob.load(Ordering::Relaxed),
            self.queue.load(Ordering::Relaxed),
            self.table.load(Ordering::Relaxed),
        ]
    }

    pub fn kinds(&self) -> BTreeMap<String, u64> {
        self.lock_kinds().clone()
    }

    fn count(&self, service: usize, kind: String) {
        let counter = match service {
            0 => &self.blob,
            1 => &self.queue,
            _ => &self.table,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.lock_kinds().entry(kind).or_default() += 1;
    }

    fn lock_kinds(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The requests of each kind between two readings of [`Counts::kinds`].
pub fn kinds_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(kind, n)| (kind.clone(), n - before.get(kind).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Headers that describe one connection or one framing of the body; each side sets its own.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
];

struct Proxy {
    target: String,
    service: usize,
    counts: Arc<Counts>,
    http: reqwest::Client,
}

async fn relay(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let reading = parts.method == Method::GET;
    let kind = kind(
        proxy.service,
        &parts.method,
        &path,
        parts.headers.contains_key("if-match"),
    );
    let url = format!(
        "{}{}",
        proxy.target,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut forwarded = proxy.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            forwarded = forwarded.header(name, value);
        }
    }
    match forwarded.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            if caused_by_work(proxy.service, reading, &path, &bytes) {
                proxy.counts.count(proxy.service, kind);
            }
            response.body(Body::from(bytes)).expect("relay response")
        }
        Err(e) => Response::builder()
            .status(502)
            .body(Body::from(e.to_string()))
            .expect("error response"),
    }
}

/// Whether a request is part of the work the instances cause, rather than idle polling (a
/// dequeue that found nothing: the host's polling, whose rate depends on how long it has been
/// idle, not on the work) or the benchmark's own progress checks (queries of the instances
/// table through the query API; the runtime itself only reads instances rows by key).
fn caused_by_work(service: usize, reading: bool, path: &str, body: &[u8]) -> bool {
    let empty_dequeue = service == 1
        && reading
        && path.ends_with("/messages")
        && !String::from_utf8_lossy(body).contains("<QueueMessage>");
    let instance_query = service == 2 && reading && path.ends_with("Instances()");
    !empty_dequeue && !instance_query
}

/// A request's kind, `{what}_{operation}`: `instances_insert`, `history_batch`, `control_put`,
/// `workitems_delete`, `blob_put`… Tables and queues are named by their role in the task hub,
/// so the kinds read the same whatever the hub is called.
fn kind(service: usize, method: &Method, path: &str, conditional: bool) -> String {
    // Paths are /{account}/{resource}…
    let resource = path.splitn(3, '/').nth(2).unwrap_or_default();
    match service {
        0 => format!("blob_{}", method.as_str().to_lowercase()),
        1 => queue_kind(method, resource),
        _ => table_kind(method, resource, conditional),
    }
}

fn table_kind(method: &Method, resource: &str, conditional: bool) -> String {
    if resource == "$batch" {
        // The runtime's only entity-group transactions are its commits to History.
        return "history_batch".to_string();
    }
    let (table, key) = resource
        .split_once('(')
        .map_or((resource, ""), |(table, rest)| (table, rest));
    if table == "Tables" {
        return "table_admin".to_string();
    }
    let role = if table.ends_with("Instances") {
        "instances"
    } else if table.ends_with("History") {
        "history"
    } else {
        "table"
    };
    let keyed = !key.is_empty() && !key.starts_with(')');
    let operation = match (method.as_str(), keyed) {
        ("POST", false) => "insert",
        ("GET", true) => "read",
        ("GET", false) => "query",
        ("PUT" | "MERGE" | "PATCH", true) if conditional => "update",
        ("PUT" | "MERGE" | "PATCH", true) => "upsert",
        ("DELETE", true) => "delete",
        _ => "other",
    };
    format!("{role}_{operation}")
}

fn queue_kind(method: &Method, resource: &str) -> String {
    let mut segments = resource.split('/');
    let queue = segments.next().unwrap_or_default();
    let role = if queue.ends_with("-workitems") {
        "workitems"
    } else if queue.contains("-control-") {
        "control"
    } else {
        "queue"
    };
    let operation = match (method.as_str(), segments.next(), segments.next()) {
        ("POST", Some("messages"), None) => "put",
        ("GET", Some("messages"), None) => "get",
        ("DELETE", Some("messages"), Some(_)) => "delete",
        ("PUT", Some("messages"), Some(_)) => "update",
        _ => "other",
    };
    format!("{role}_{operation}")
}

/// Starts one counting proxy per service in front of `azurite`; returns their ports.
pub async fn start_proxies(azurite: [u16; 3], counts: Arc<Counts>) -> [u16; 3] {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("proxy client");
    let mut ports = [0; 3];
    for (service, port) in azurite.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        ports[service] = listener.local_addr().expect("proxy addr").port();
        let proxy = Arc::new(Proxy {
            target: format!("http://127.0.0.1:{port}"),
            service,
            counts: counts.clone(),
            http: http.clone(),
        });
        let app = axum::Router::new().fallback(relay).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    ports
}
