//! The worker binary as the Functions host runs it: it listens on the port from
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, answers the readiness probe whether or not storage is up,
//! refuses to start without a storage connection, and turns queue-trigger invocations (in the
//! host's exact payload format) into engine turns on Azure Storage; the app's own functions
//! (the sync timer and queue functions, the HTTP functions in payload mode) answer the host's
//! payloads with the outputs it expects.

#[path = "common/azurite.rs"]
mod azurite;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use durable_engine::{EventKind, HistoryEvent, OrchestrationInstance, OrchestrationStatus};
use durable_protocol::connection::StorageConnection;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::model::{Destination, Message};
use durable_store::names::TaskHub;
use serde_json::{json, Value};

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(port: u16, storage: &str, hub: &str) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("AzureWebJobsStorage", storage)
            .env("TaskHub", hub)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts"),
    )
}

fn get_root(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Polls `GET /` like the host does (every 25 ms) until the worker answers.
fn wait_ready(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get_root(port) {
            Ok(response) => return response,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            Err(error) => panic!("worker never became ready: {error}"),
        }
    }
}

#[test]
fn worker_answers_the_readiness_probe_even_while_storage_is_unreachable() {
    // Nothing listens on this account's endpoints: the worker must still become ready.
    let storage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;";
    let [port] = azurite::free_ports();
    let _worker = worker(port, storage, "readyhub");
    let response = wait_ready(port);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
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

#[test]
fn worker_without_a_storage_connection_exits_with_a_clear_error() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command.env(
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        azurite::free_ports::<1>()[0].to_string(),
    );
    for (key, _) in
        std::env::vars().filter(|(k, _)| k.to_ascii_lowercase().starts_with("azurewebjobsstorage"))
    {
        command.env_remove(key);
    }
    let output = command.output().expect("worker runs");
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("storage connection is not configured"),
        "{logs}"
    );
}

/// The body the host POSTs for a queue trigger whose binding `message` holds `text`: the value is
/// a JSON string holding a JSON string literal, `DequeueCount` a string, as the
/// host really sends it.
fn queue_invocation(text: &str) -> Value {
    json!({
        "Data": { "message": serde_json::to_string(text).unwrap() },
        "Metadata": {
            "DequeueCount": "1",
            "Id": "\"4f2d\"",
            "PopReceipt": "\"AgAAAA\"",
            "sys": { "MethodName": "DurableControl00", "UtcNow": "2026-11-22T10:00:00.1234567Z", "RandGuid": "e59556b5-892a-4465-a19d-4396f0978dab" }
        }
    })
}

#[tokio::test]
async fn queue_invocations_run_engine_turns_on_azure_storage() {
    let azurite = azurite::Azurite::start();
    let [port] = azurite::free_ports();
    let _worker = worker(port, &azurite.connection_string(), "workerhub");
    wait_ready(port);
    let http = reqwest::Client::new();
    let url = |function: &str| format!("http://127.0.0.1:{port}/{function}");

    // A start for an orchestrator this app does not have: the turn runs and fails the instance.
    let start = Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: "start-1".to_string(),
        destination: Destination::Instance {
            instance_id: "via-worker".to_string(),
            execution_id: None,
        },
        event: HistoryEvent::message(
            Utc::now(),
            EventKind::ExecutionStarted {
                name: "NotRegistered".to_string(),
                version: None,
                input: Some("1".to_string()),
                orchestration_instance: OrchestrationInstance {
                    instance_id: "via-worker".to_string(),
                    execution_id: "e1".to_string(),
                },
                parent_instance: None,
                scheduled_start_time: None,
                parent_trace_context: None,
                tags: Default::default(),
            },
        ),
        deliver_at: None,
        revision: None,
    };
    let body = queue_invocation(&serde_json::to_string(&start).unwrap());
    // The worker creates the task hub in the background; the host would retry until then.
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        let response = http
            .post(url("DurableControl00"))
            .json(&body)
            .send()
            .await
            .unwrap();
        if response.status().is_success() || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["Logs"][0].as_str().unwrap().contains("Applied"),
        "{answer}"
    );
    assert!(answer["Outputs"].is_object());

    let settings = [("AzureWebJobsStorage", azurite.connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
    let backend = AzureBackend::connect(
        &connection,
        TaskHub::new("workerhub").unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let loaded = backend
        .load("via-worker")
        .await
        .unwrap()
        .expect("the turn committed");
    assert_eq!(loaded.state.status, OrchestrationStatus::Failed);
    assert_eq!(
        loaded.state.failure.unwrap().error_type,
        "OrchestratorNotFound"
    );

    // The same message again is a duplicate, acknowledged so the host deletes it.
    let again: Value = http
        .post(url("DurableControl00"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        again["Logs"][0]
            .as_str()
            .unwrap()
            .contains("duplicate start"),
        "{again}"
    );

    // Text that is no message can never succeed: parked as a poison message at once, with its
    // text and why, and acknowledged.
    let garbage: Value = http
        .post(url("DurableWorkItems"))
        .json(&queue_invocation("not a message"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        garbage["Logs"][0].as_str().unwrap().contains("parked"),
        "{garbage}"
    );
    let parked: Value = http
        .get(url("api/poisonMessages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parked = parked.as_array().expect("a list");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["text"], "not a message");
    assert_eq!(parked[0]["queue"], "workitems");
    assert!(
        parked[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a message this runtime can read"),
        "{parked:?}"
    );

    // A function this worker does not serve, and a body that is no host payload: JSON 4xx.
    let missing = http.post(url("Nope")).json(&body).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("Nope"));
    let malformed = http
        .post(url("DurableControl01"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(malformed.json::<Value>().await.unwrap()["error"].is_string());
}

/// POSTs a host payload, retrying while the worker is still creating the task hub (the host
/// would retry the trigger too), and returns the 200 answer.
async fn invoke_ok(http: &reqwest::Client, port: u16, function: &str, body: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http
            .post(format!("http://127.0.0.1:{port}/{function}"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        if status == 200 {
            return answer;
        }
        assert!(Instant::now() < deadline, "{function}: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every queue of the task hub answers: the worker creates its task hub in the
/// background, and a queued start fails until its queue exists.
async fn wait_until_queues_exist(storage: &str, hub: &str) {
    let settings = [("AzureWebJobsStorage", storage.to_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage").unwrap();
    let backend = AzureBackend::connect(
        &connection,
        TaskHub::new(hub).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for queue in backend.queues() {
        // Nothing is queued yet, so receiving takes nothing from the worker.
        while let Err(error) = backend.receive(queue, 1, Duration::from_secs(1)).await {
            assert!(
                Instant::now() < deadline,
                "{queue:?} never appeared: {error}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An HTTP request in the host's payload mode (`Data.req` with `Url`, `Method`,
/// `Headers`, `Body`), as the dev host or `func` sends
/// it when forwarding is off.
fn http_invocation(method: &str, path: &str, body: Option<&str>) -> Value {
    let mut request = json!({
        "Url": format!("http://localhost:7071{path}"),
        "Method": method,
        "Query": {},
        "Headers": {"Content-Type": ["application/json"], "Host": ["localhost:7071"]},
        "Params": {},
        "Identities": [],
    });
    if let Some(body) = body {
        request["Body"] = Value::String(body.to_string());
    }
    json!({"Data": {"req": request}, "Metadata": {"sys": {"MethodName": "HttpStart", "UtcNow": "2026-11-22T10:00:00Z", "RandGuid": "r"}}})
}

#[tokio::test]
async fn the_apps_own_functions_answer_the_hosts_payloads() {
    let azurite = azurite::Azurite::start();
    let [port] = azurite::free_ports();
    let _worker = worker(port, &azurite.connection_string(), "apphub");
    wait_ready(port);
    let http = reqwest::Client::new();

    // Function1: the host's timer payload (`Schedule`, `ScheduleStatus`, `IsPastDue`)
    // under its binding name; the two items go
    // out through the queue output binding as JSON object text.
    let timer = json!({"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-09-24T13:08:00.0096035+00:00","Next":"2026-09-24T13:09:00+00:00","LastUpdated":"2026-09-24T13:08:00.0096035+00:00"},"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"Function1","UtcNow":"2026-09-24T13:09:00.0123456Z","RandGuid":"r"}}});
    let answer = invoke_ok(&http, port, "Function1", &timer).await;
    let messages = answer["Outputs"]["outputQueue"]
        .as_array()
        .expect("two messages");
    let items: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str(m.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(items.len(), 2, "{answer}");
    assert_eq!(
        (items[0]["Id"].clone(), items[1]["Id"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(items[0]["SyncName"], items[1]["SyncName"]);

    // The engine's retention timer, with no DURABLE_RETENTION_* setting: it says it is off.
    let mut retention = timer.clone();
    retention["Data"] = json!({"timer": timer["Data"]["myTimer"]});
    let off = invoke_ok(&http, port, "DurableRetention", &retention).await;
    assert!(
        off["Logs"][0]
            .as_str()
            .unwrap()
            .contains("retention is off"),
        "{off}"
    );

    // SyncQueueProcessor starts MainWorkflow once; the same message again starts nothing. A
    // start whose queue did not exist yet would stay Pending until the sweep sends it, and its
    // retry would find it taken: wait for the task hub.
    wait_until_queues_exist(&azurite.connection_string(), "apphub").await;
    let item = serde_json::to_string(&items[0]).unwrap();
    let mut delivery = queue_invocation(&item);
    delivery["Data"] = json!({ "item": serde_json::to_string(&item).unwrap() });
    let first = invoke_ok(&http, port, "SyncQueueProcessor", &delivery).await;
    assert!(
        first["Logs"][0].as_str().unwrap().contains("started"),
        "{first}"
    );
    let second = invoke_ok(&http, port, "SyncQueueProcessor", &delivery).await;
    assert!(
        second["Logs"][0]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{second}"
    );
    // A message that is no MySyncItem is refused, so the host parks it in the poison queue.
    let mut junk = queue_invocation("{\"Id\":\"x\"}");
    junk["Data"] = json!({ "item": serde_json::to_string("{\"Id\":\"x\"}").unwrap() });
    let refused = http
        .post(format!("http://127.0.0.1:{port}/SyncQueueProcessor"))
        .json(&junk)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // The HTTP functions in payload mode: the answer is the `res` output binding.
    let started = invoke_ok(
        &http,
        port,
        "HttpStart",
        &http_invocation(
            "POST",
            "/api/orchestrators/HelloSequence5/pm-1",
            Some("null"),
        ),
    )
    .await;
    let res = &started["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{started}");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "pm-1");
    assert_eq!(
        res["headers"]["location"], body["statusQueryGetUri"],
        "{started}"
    );
    assert!(body["statusQueryGetUri"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:7071/api/instances/pm-1?"));
    let status = invoke_ok(
        &http,
        port,
        "HttpManagement",
        &http_invocation("GET", "/api/instances/pm-1", None),
    )
    .await;
    let res = &status["Outputs"]["res"];
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    // The start's eager turn may already have finished it: 202 while open, 200 once ended.
    let open = ["Pending", "Running"].contains(&body["runtimeStatus"].as_str().unwrap_or(""));
    let expected = if open { 202 } else { 200 };
    assert!(open || body["runtimeStatus"] == "Completed", "{status}");
    assert_eq!(res["statusCode"], expected, "{status}");
    assert_eq!(body["name"], "HelloSequence5");
    let unknown = invoke_ok(
        &http,
        port,
        "HttpManagement",
        &http_invocation("GET", "/api/instances/nobody", None),
    )
    .await;
    assert_eq!(unknown["Outputs"]["res"]["statusCode"], 404, "{unknown}");

    // An entity signalled and read through HttpEntities.
    let signalled = invoke_ok(
        &http,
        port,
        "HttpEntities",
        &http_invocation("POST", "/api/entities/Counter/pm?op=add", Some("3")),
    )
    .await;
    assert_eq!(
        signalled["Outputs"]["res"]["statusCode"], 202,
        "{signalled}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = invoke_ok(
            &http,
            port,
            "HttpEntities",
            &http_invocation("GET", "/api/entities/Counter/pm", None),
        )
        .await;
        let res = &read["Outputs"]["res"];
        if res["statusCode"] == 200 {
            assert_eq!(res["body"], "3", "{read}");
            break;
        }
        assert_eq!(res["statusCode"], 404, "{read}");
        assert!(Instant::now() < deadline, "the add never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
