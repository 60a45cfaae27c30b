//! Durable entities over HTTP through the dev host, as a client uses them: signal the seed app's
//! `Counter`, read its state, list counters a page at a time, delete one; an entity's instance
//! read through the instances API; and bad requests refused with JSON errors.
//! Each test owns its app, so they run in parallel.

#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::time::Duration;

use app::{Answer, App};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);
const CONTINUATION: &str = "x-ms-continuation-token";

/// `POST path` with `body` sent as it is (JSON unless a test says otherwise).
async fn post_raw(app: &App, path: &str, body: &str) -> Answer {
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST through the dev host");
    App::answer(response).await
}

async fn signal(app: &App, key: &str, op: &str, input: &str) {
    let answer = post_raw(app, &format!("/api/entities/Counter/{key}?op={op}"), input).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body, json!({ "id": format!("@counter@{key}") }));
}

/// Polls the counter's state until it is `total`.
async fn wait_for_total(app: &App, key: &str, total: i64) {
    let path = format!("/api/entities/counter/{key}");
    app.wait_until(&path, LONG, |state| *state == json!(total))
        .await;
}

/// GETs `path` (with a continuation token when given): the answer and the next token.
async fn page(app: &App, path: &str, token: Option<&str>) -> (Answer, Option<String>) {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.header(CONTINUATION, token);
    }
    let answer = App::answer(request.send().await.expect("GET through the dev host")).await;
    let next = answer
        .headers
        .get(CONTINUATION)
        .map(|value| value.to_str().unwrap().to_string());
    (answer, next)
}

/// Asserts a JSON error with `status` whose message mentions `needle`.
fn assert_error(answer: &Answer, status: StatusCode, needle: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    let message = answer.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a JSON error: {}", answer.body));
    assert!(
        message.contains(needle),
        "{what}: '{message}' does not mention '{needle}'"
    );
    assert_eq!(answer.headers["content-type"], "application/json", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_apply_once_each_and_the_state_reads_lists_and_deletes() {
    let app = App::start(&[]).await;

    // The name is any case; the input any JSON, a JSON string holding JSON too (as the
    // Python client sends it).
    signal(&app, "a", "add", "5").await;
    signal(&app, "a", "add", "\"7\"").await;
    wait_for_total(&app, "a", 12).await;
    signal(&app, "a", "reset", "").await;
    signal(&app, "a", "add", "-2").await;
    wait_for_total(&app, "a", -2).await;
    // A failed operation (not a number) changes nothing and stops nothing after it.
    signal(&app, "a", "add", "\"two\"").await;
    signal(&app, "a", "add", "3").await;
    wait_for_total(&app, "a", 1).await;

    // Its instance, `@counter@a`, reads through the instances API as it is now: the state as
    // its input, no history.
    let status = app
        .get("/api/instances/%40counter%40a?showHistory=true")
        .await;
    assert_eq!(status.status, StatusCode::ACCEPTED, "{}", status.body);
    assert_eq!(status.body["instanceId"], "@counter@a");
    assert_eq!(status.body["name"], "@counter");
    assert_eq!(status.body["input"], json!(1), "{}", status.body);
    assert_eq!(status.body["historyEvents"], json!([]));
    // Instances and entities page together ('@' sorts before letters): a page that ends at an
    // entity goes on.
    let started = app
        .post("/api/orchestrators/HelloSequence5/z-after", &json!(null))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let (first, token) = page(&app, "/api/instances?top=1", None).await;
    assert_eq!(first.body[0]["instanceId"], "@counter@a", "{}", first.body);
    let (second, _) = page(&app, "/api/instances?top=1", token.as_deref()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body[0]["instanceId"], "z-after", "{}", second.body);
    let ended = app.wait_for_end("z-after", LONG).await;
    assert_eq!(ended["runtimeStatus"], "Completed", "{ended}");

    for (key, total) in [("b", 20), ("c", 30)] {
        signal(&app, key, "set", &total.to_string()).await;
        wait_for_total(&app, key, total).await;
    }
    // A page at a time, in key order, each with its metadata.
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let (answer, next) = page(&app, "/api/entities/COUNTER?top=1", token.as_deref()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let items = answer.body.as_array().expect("a page").clone();
        assert!(items.len() <= 1, "{}", answer.body);
        listed.extend(items);
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let keys: Vec<&str> = listed
        .iter()
        .map(|item| item["entityId"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "c"], "{listed:?}");
    let a = &listed[0];
    assert_eq!(a["entityId"]["name"], "counter");
    assert_eq!(a["state"], json!(1));
    assert_eq!(
        a["operations"],
        json!(6),
        "every operation run, the failed one too"
    );
    assert_eq!(a["waiting"], json!(0));
    assert!(a.get("lockedBy").is_none(), "{a}");
    assert!(
        a["lastOperationTime"].as_str().unwrap().ends_with('Z'),
        "{a}"
    );
    let (whole, next) = page(&app, "/api/entities/counter", None).await;
    assert_eq!(
        whole.body.as_array().map(Vec::len),
        Some(3),
        "{}",
        whole.body
    );
    assert_eq!(next, None);

    // Deleted: no state to read, and no longer listed.
    signal(&app, "b", "delete", "").await;
    let path = "/api/entities/counter/b";
    let deadline = std::time::Instant::now() + LONG;
    while app.get(path).await.status != StatusCode::NOT_FOUND {
        assert!(std::time::Instant::now() < deadline, "b was never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(&app.get(path).await, StatusCode::NOT_FOUND, "no state", "b");
    let (left, _) = page(&app, "/api/entities/counter", None).await;
    let keys: Vec<&Value> = left
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["entityId"]["key"])
        .collect();
    assert_eq!(keys, [&json!("a"), &json!("c")]);
    // Never signalled: no state either.
    assert_error(
        &app.get("/api/entities/counter/never").await,
        StatusCode::NOT_FOUND,
        "no state",
        "never",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entity_requests_are_refused_with_json_errors() {
    let app = App::start(&[]).await;
    let posts = [
        (
            "/api/entities/counter/k",
            "5",
            StatusCode::BAD_REQUEST,
            "?op=",
        ),
        (
            "/api/entities/counter/k?op=",
            "5",
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            "/api/entities/counter/k?op=%01",
            "5",
            StatusCode::BAD_REQUEST,
            "control",
        ),
        (
            "/api/entities/counter/k?op=add",
            "{five",
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "/api/entities/counter/a%2Fb?op=add",
            "1",
            StatusCode::BAD_REQUEST,
            "'/'",
        ),
        (
            "/api/entities/counter/a%23b?op=add",
            "1",
            StatusCode::BAD_REQUEST,
            "'#'",
        ),
        (
            "/api/entities/counter/a%00b?op=add",
            "1",
            StatusCode::BAD_REQUEST,
            "control",
        ),
        (
            "/api/entities/co%40unter/k?op=add",
            "1",
            StatusCode::BAD_REQUEST,
            "'@'",
        ),
        (
            "/api/entities/%20/k?op=add",
            "1",
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "/api/entities/Nobody/k?op=add",
            "1",
            StatusCode::NOT_FOUND,
            "nobody",
        ),
    ];
    for (path, body, status, needle) in posts {
        assert_error(&post_raw(&app, path, body).await, status, needle, path);
    }
    let gets = [
        (
            "/api/entities/counter/a%2Fb",
            StatusCode::BAD_REQUEST,
            "'/'",
        ),
        ("/api/entities/Nobody/k", StatusCode::NOT_FOUND, "nobody"),
        ("/api/entities/Nobody", StatusCode::NOT_FOUND, "nobody"),
        ("/api/entities/co%40unter", StatusCode::BAD_REQUEST, "'@'"),
        (
            "/api/entities/counter?top=0",
            StatusCode::BAD_REQUEST,
            "'top'",
        ),
        (
            "/api/instances/%40counter%40a%2Fb",
            StatusCode::BAD_REQUEST,
            "'/'",
        ),
        (
            "/api/instances/%40counter",
            StatusCode::BAD_REQUEST,
            "@name@key",
        ),
        (
            "/api/instances/%40counter%40never",
            StatusCode::NOT_FOUND,
            "no instance",
        ),
    ];
    for (path, status, needle) in gets {
        assert_error(&app.get(path).await, status, needle, path);
    }
    let (forged, _) = page(&app, "/api/entities/counter", Some("not-a-token!")).await;
    assert_error(&forged, StatusCode::BAD_REQUEST, CONTINUATION, "forged");
    // Nothing refused left an entity behind: the only instance is an orchestration started now.
    let (listed, _) = page(&app, "/api/entities/counter", None).await;
    assert_eq!(listed.body, json!([]), "{}", listed.body);
    let id = app.start_instance("HelloSequence5", &json!(null)).await;
    let instances = app.get("/api/instances").await;
    let ids: Vec<&Value> = instances
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["instanceId"])
        .collect();
    assert_eq!(ids, [&json!(id)], "{}", instances.body);
}
