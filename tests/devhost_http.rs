//! The dev host's HTTP front over real sockets against stand-in workers (forwarding mode and
//! payload mode as the host does them), and the devhost binary serving HTTP on `--port` while its
//! timer, queue and HTTP functions write their queue outputs to Azurite.

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use azure_storage_queues::QueueClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use durable_devhost::config::AppConfig;
use durable_devhost::http_front::{HttpFront, HttpFunction};
use durable_devhost::invoker::{Invoker, HOST_VERSION};
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use serde_json::{json, Value};
use supervised::Supervised;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// What a stand-in worker saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A temporary app folder: `host.json` and one folder per function.
struct App(PathBuf);

impl App {
    fn new(host: Value, functions: &[(&str, Value)]) -> Self {
        let root =
            std::env::temp_dir().join(format!("devhost-http-{}", uuid::Uuid::new_v4().simple()));
        let write = |path: &Path, value: &Value| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        };
        write(&root.join("host.json"), &host);
        for (name, function) in functions {
            write(&root.join(name).join("function.json"), function);
        }
        Self(root)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn host_json(forwarding: bool) -> Value {
    json!({
        "version": "2.0",
        "customHandler": {
            "description": {
                "defaultExecutablePath": "handler",
                "arguments": ["stand_in_worker", "--exact", "--ignored", "--nocapture"]
            },
            "enableForwardingHttpRequest": forwarding
        },
        "functionTimeout": "00:00:20",
        "extensions": { "queues": { "maxPollingInterval": "00:00:00.500", "maxDequeueCount": 1 } }
    })
}

fn http_function(route: &str, methods: &[&str], output: &str) -> Value {
    json!({ "bindings": [
        { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function",
          "methods": methods, "route": route },
        { "type": "http", "direction": "out", "name": output }
    ] })
}

/// Serves `app` on a free port of 127.0.0.1; the stand-in records every request it gets.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn record(log: &Log, request: Request) -> Seen {
    let (parts, body) = request.into_parts();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers,
        body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
    };
    log.lock().unwrap().push(seen.clone());
    seen
}

/// The front for the app's HTTP functions, on a free port, calling the worker at `worker_url`.
async fn front(app: &App, worker_url: String) -> (String, watch::Sender<bool>) {
    let config = AppConfig::load(&app.0).unwrap();
    let functions = config
        .functions
        .iter()
        .filter_map(|f| HttpFunction::from_config(f, &config.host, Arc::default()).unwrap())
        .collect();
    let invoker = Arc::new(Invoker::new(worker_url, config.host.function_timeout).unwrap());
    let front = Arc::new(HttpFront::new(functions, invoker));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(front.serve(listener, stopped));
    (address, stop)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn forwarding_mode_passes_requests_and_answers_through() {
    async fn worker(State(log): State<Log>, request: Request) -> Response {
        let seen = record(&log, request).await;
        match seen.target.as_str() {
            t if t.starts_with("/api/orchestrators/Conflict") => {
                (StatusCode::CONFLICT, "busy").into_response()
            }
            t if t.starts_with("/api/orchestrators/Moved") => {
                (StatusCode::FOUND, [("location", "/elsewhere")], "").into_response()
            }
            _ => (
                StatusCode::ACCEPTED,
                [("x-instance", "abc"), ("content-type", "application/json")],
                r#"{"id":"abc"}"#,
            )
                .into_response(),
        }
    }
    let log = Log::default();
    let worker_url = serve(axum::Router::new().fallback(worker).with_state(log.clone())).await;
    let app = App::new(
        host_json(true),
        &[(
            "Start",
            http_function(
                "orchestrators/{functionName}/{instanceId?}",
                &["post"],
                "res",
            ),
        )],
    );
    let (front, _stop) = front(&app, worker_url).await;
    let http = client();

    let answer = http
        .post(format!(
            "http://{front}/api/orchestrators/Hello/abc?x=1&x=2&s=a+b"
        ))
        .header("x-custom", "yes")
        .header("user-agent", "test-client/1")
        .header("content-type", "application/json")
        .body(r#"{"input":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert_eq!(header(answer.headers(), "x-instance"), Some("abc"));
    assert_eq!(answer.text().await.unwrap(), r#"{"id":"abc"}"#);
    let seen = log.lock().unwrap().pop().unwrap();
    assert_eq!(seen.method, "POST");
    // The query is re-encoded from its parsed form, repeated names joined with ','.
    assert_eq!(seen.target, "/api/orchestrators/Hello/abc?x=1%2C2&s=a%20b");
    assert_eq!(
        header(&seen.headers, "host"),
        Some(front.as_str()),
        "the caller's Host"
    );
    assert_eq!(header(&seen.headers, "x-custom"), Some("yes"));
    assert_eq!(
        header(&seen.headers, "user-agent"),
        Some(format!("test-client/1 Azure-Functions-Host/{HOST_VERSION}").as_str())
    );
    assert_eq!(
        header(&seen.headers, "x-azure-functions-hostversion"),
        Some(HOST_VERSION)
    );
    let id = header(&seen.headers, "x-azure-functions-invocationid").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(
        header(&seen.headers, "content-type"),
        Some("application/json")
    );
    assert_eq!(seen.body, r#"{"input":1}"#);

    // The worker's errors and redirects reach the caller as they are.
    let conflict = http
        .post(format!("http://{front}/api/orchestrators/Conflict"))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(conflict.text().await.unwrap(), "busy");
    let moved = http
        .post(format!("http://{front}/api/orchestrators/Moved"))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::FOUND);
    assert_eq!(header(moved.headers(), "location"), Some("/elsewhere"));

    // Routes and methods the functions do not declare are not found.
    let before = log.lock().unwrap().len();
    for (method, path) in [
        (reqwest::Method::GET, "/api/orchestrators/Hello"),
        (reqwest::Method::POST, "/api/orchestrators"),
        (reqwest::Method::POST, "/api/nothing"),
    ] {
        let answer = http
            .request(method.clone(), format!("http://{front}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    assert_eq!(
        log.lock().unwrap().len(),
        before,
        "the worker was not called"
    );

    // A chunked body (no Content-Length) is not forwarded, nor is its Content-Type.
    let mut socket = tokio::net::TcpStream::connect(&front).await.unwrap();
    socket
        .write_all(
            b"POST /api/orchestrators/Chunked HTTP/1.1\r\nHost: somewhere\r\nConnection: close\r\n\
              Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut raw = String::new();
    socket.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    let seen = log.lock().unwrap().pop().unwrap();
    assert!(seen.body.is_empty());
    assert_eq!(header(&seen.headers, "content-type"), None);
    assert_eq!(header(&seen.headers, "transfer-encoding"), None);
    assert_eq!(header(&seen.headers, "host"), Some("somewhere"));
}

#[tokio::test]
async fn payload_mode_invokes_the_function_and_answers_with_its_http_output() {
    async fn worker(State(log): State<Log>, request: Request) -> Response {
        let seen = record(&log, request).await;
        let payload: Value = serde_json::from_slice(&seen.body).unwrap();
        let json = |body: Value| {
            (
                [("content-type", "application/json; charset=utf-8")],
                body.to_string(),
            )
                .into_response()
        };
        match seen.target.as_str() {
            "/orders" => match payload["Data"]["req"]["Params"]["id"].as_str().unwrap() {
                "1" => json(json!({
                    "Outputs": { "res": {
                        "statusCode": "201",
                        "headers": { "Content-Type": "application/json", "X-Order": 1 },
                        "body": "{\"ok\":true}"
                    } },
                    "Logs": ["created"],
                    "ReturnValue": null
                })),
                "2" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                "3" => "{\"Outputs\":{}}".into_response(),
                _ => json(json!({ "Outputs": { "res": "not an object" } })),
            },
            "/Echo" => json(json!({ "ReturnValue": "{\"statusCode\":202,\"body\":\"echoed\"}" })),
            _ => json(json!({})),
        }
    }
    let log = Log::default();
    let worker_url = serve(axum::Router::new().fallback(worker).with_state(log.clone())).await;
    let app = App::new(
        host_json(false),
        &[
            (
                "orders",
                http_function("orders/{id:int}", &["post", "get"], "res"),
            ),
            ("Echo", http_function("", &[], "$return")),
        ],
    );
    let (front, _stop) = front(&app, worker_url).await;
    let http = client();

    let answer = http
        .post(format!("http://{front}/api/orders/1?verbose=true&code=key"))
        .header("x-test", "a")
        .header("content-type", "application/json")
        .body(r#"{"qty":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(
        header(answer.headers(), "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(header(answer.headers(), "x-order"), Some("1"));
    assert_eq!(answer.text().await.unwrap(), r#"{"ok":true}"#);

    let seen = log.lock().unwrap().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/orders")
    );
    assert_eq!(
        header(&seen.headers, "x-azure-functions-hostversion"),
        Some(HOST_VERSION)
    );
    assert_eq!(
        header(&seen.headers, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let payload: Value = serde_json::from_slice(&seen.body).unwrap();
    let req = &payload["Data"]["req"];
    assert_eq!(
        req["Url"],
        format!("http://{front}/api/orders/1?verbose=true&code=key")
    );
    assert_eq!(req["Method"], "POST");
    assert_eq!(req["Query"], json!({"verbose": "true", "code": "key"}));
    assert_eq!(req["Params"], json!({"id": "1"}));
    assert_eq!(req["Headers"]["X-Test"], json!(["a"]));
    assert_eq!(req["Headers"]["Host"], json!([front]));
    assert_eq!(req["Body"], r#"{"qty":2}"#);
    assert_eq!(req["Identities"][0]["IsAuthenticated"], false);
    let metadata = &payload["Metadata"];
    assert_eq!(metadata["qty"], "\"2\"");
    assert_eq!(metadata["verbose"], "\"true\"");
    assert!(metadata.get("code").is_none());
    assert_eq!(metadata["id"], "\"1\"");
    assert_eq!(metadata["Headers"]["X-Test"], "a");
    assert_eq!(metadata["sys"]["MethodName"], "orders");

    // A route constraint that does not hold, a method not declared: not found.
    for (method, path) in [
        (reqwest::Method::GET, "/api/orders/abc"),
        (reqwest::Method::DELETE, "/api/orders/1"),
    ] {
        let answer = http
            .request(method, format!("http://{front}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // A failed invocation, an answer in the wrong media type, an http output that is no
    // response object: 500.
    for id in [2, 3, 4] {
        let answer = http
            .get(format!("http://{front}/api/orders/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "order {id}"
        );
    }
    // `$return`: the return value is read as a response object.
    let echoed = http
        .put(format!("http://{front}/api/Echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), StatusCode::ACCEPTED);
    assert_eq!(echoed.text().await.unwrap(), "echoed");
}

/// The worker the devhost binary starts in
/// `the_dev_host_serves_http_and_writes_queue_outputs`: the app's host.json runs this test
/// binary with `stand_in_worker --exact --ignored`, and the dev host passes the port.
#[test]
#[ignore = "the dev host starts it as its worker"]
fn stand_in_worker() {
    let Ok(port) = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT") else {
        return;
    };
    // Leave with the dev host, whatever way it goes.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(200));
    });
    async fn invoke(request: Request) -> Response {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        let target = request.uri().to_string();
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap();
        let answer = match (method.as_str(), path.as_str()) {
            ("GET", "/") => return "ready".into_response(),
            ("POST", "/Tick") => {
                json!({ "Outputs": { "outq": ["from-timer", "test"] }, "Logs": ["tick"] })
            }
            ("POST", "/Relay") => {
                let payload: Value = serde_json::from_slice(&body).unwrap();
                let text: String =
                    serde_json::from_str(payload["Data"]["message"].as_str().unwrap()).unwrap();
                json!({ "ReturnValue": format!("relayed:{text}") })
            }
            ("POST", "/BadOut") => json!({ "Outputs": { "outq": "lost" } }),
            ("POST", "/Orders") => {
                let payload: Value = serde_json::from_slice(&body).unwrap();
                let id = payload["Data"]["req"]["Params"]["id"].clone();
                json!({ "Outputs": {
                    "res": { "statusCode": 201, "body": id },
                    "outq": { "order": id }
                } })
            }
            // Forwarded requests: the method and target they arrived with.
            _ => return format!("{method} {target}").into_response(),
        };
        axum::Json(answer).into_response()
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
                .await
                .unwrap();
            axum::serve(listener, axum::Router::new().fallback(invoke))
                .await
                .unwrap();
        });
}

async fn texts_on(queue: &QueueClient) -> Vec<String> {
    queue
        .peek_messages()
        .number_of_messages(32u8)
        .await
        .map(|r| r.messages.into_iter().map(|m| m.message_text).collect())
        .unwrap_or_default()
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_dev_host_serves_http_and_writes_queue_outputs() {
    let azurite = azurite::Azurite::start();
    let queue_out = |name: &str, queue: &str| json!({ "type": "queue", "direction": "out", "name": name, "queueName": queue });
    let queue_in = |queue: &str| json!({ "type": "queueTrigger", "direction": "in", "name": "message", "queueName": queue });
    let app = App::new(
        host_json(true),
        &[
            (
                "Tick",
                json!({ "bindings": [
                    { "type": "timerTrigger", "direction": "in", "name": "timer",
                      "schedule": "0 0 0 1 1 *", "runOnStartup": true },
                    queue_out("outq", "%ResultsQueue%")
                ] }),
            ),
            (
                "Relay",
                json!({ "bindings": [queue_in("relay-in"), queue_out("$return", "relay-out")] }),
            ),
            (
                "BadOut",
                json!({ "bindings": [queue_in("bad-in"), queue_out("outq", "Not_A_Queue")] }),
            ),
            (
                "Orders",
                json!({ "bindings": [
                    { "type": "httpTrigger", "direction": "in", "name": "req",
                      "methods": ["post"], "route": "orders/{id}" },
                    { "type": "http", "direction": "out", "name": "res" },
                    queue_out("outq", "%ResultsQueue%")
                ] }),
            ),
            ("Raw", http_function("raw/{*rest}", &["get"], "res")),
        ],
    );
    let mut child = Command::new(binaries::devhost())
        .arg(&app.0)
        .args(["--port", "0"])
        .env("DEVHOST_WORKER", std::env::current_exe().unwrap())
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("ResultsQueue", "results")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the dev host starts");
    let stdout = child.stdout.take().unwrap();
    let _devhost = Supervised(child);
    let (lines, output) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen_lines = Vec::new();
    let mut next_line = || {
        let line = output
            .recv_timeout(Duration::from_secs(15))
            .expect("the dev host prints its banner");
        seen_lines.push(line.clone());
        line
    };
    while next_line() != "Functions:" {}
    let banner: Vec<String> = (0..5).map(|_| next_line()).collect();
    assert!(
        banner.contains(&"  Tick: timerTrigger".to_string()),
        "{banner:?}"
    );
    assert!(
        banner.contains(&"  Relay: queueTrigger".to_string()),
        "{banner:?}"
    );
    let orders = banner
        .iter()
        .find(|l| l.starts_with("  Orders: [POST] http://localhost:"))
        .expect("the Orders URL");
    let port: u16 = orders
        .trim_start_matches("  Orders: [POST] http://localhost:")
        .trim_end_matches("/api/orders/{id}")
        .parse()
        .unwrap();
    assert_ne!(port, 0, "the banner shows the port actually bound");

    // HTTP: payload mode (the queue output rules out forwarding), then a forwarded request.
    let http = client();
    let created = http
        .post(format!("http://127.0.0.1:{port}/api/orders/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.text().await.unwrap(), "7");
    let raw = http
        .get(format!("http://127.0.0.1:{port}/api/raw/a/b?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.text().await.unwrap(), "GET /api/raw/a/b?q=1");

    let connection = StorageConnection::from_settings(
        [("AzureWebJobsStorage", azurite.connection_string())],
        "AzureWebJobsStorage",
    )
    .unwrap();
    let queues = connection
        .build_clients(http_client(HttpSettings::default()).unwrap())
        .unwrap()
        .queues;
    // The timer's array fans out (its "test" is not base64-decoded, being an element); the HTTP
    // function's object is written as its JSON text; both base64-encoded by the queue extension.
    let results = queues.queue_client("results");
    let expected: Vec<String> = ["from-timer", "test", r#"{"order":"7"}"#]
        .iter()
        .map(|t| BASE64.encode(t))
        .collect();
    let written = wait_for("the outputs in 'results'", async || {
        let texts = texts_on(&results).await;
        (texts.len() >= 3).then_some(texts)
    })
    .await;
    let mut sorted = written.clone();
    sorted.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted);

    // A queue function's `$return` output.
    let relay_in = queues.queue_client("relay-in");
    relay_in.put_message(BASE64.encode("hello")).await.unwrap();
    let relay_out = queues.queue_client("relay-out");
    wait_for("the relayed message", async || {
        texts_on(&relay_out)
            .await
            .contains(&BASE64.encode("relayed:hello"))
            .then_some(())
    })
    .await;
    assert!(texts_on(&relay_in).await.is_empty(), "deleted once handled");

    // An output that cannot be written fails the invocation: with maxDequeueCount 1 the
    // message goes straight to poison.
    let bad_in = queues.queue_client("bad-in");
    bad_in.put_message(BASE64.encode("x")).await.unwrap();
    let poison = queues.queue_client("bad-in-poison");
    wait_for("the message whose output failed in poison", async || {
        texts_on(&poison)
            .await
            .contains(&BASE64.encode("x"))
            .then_some(())
    })
    .await;

    // The worker's Logs are logged under the function's name.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen_lines.iter().any(|l| l.contains("Tick: tick")) {
        assert!(
            Instant::now() < deadline,
            "no 'Tick: tick' in {seen_lines:#?}"
        );
        if let Ok(line) = output.recv_timeout(Duration::from_millis(200)) {
            seen_lines.push(line);
        }
    }
}
