//! The dashboard in a real browser: Debian's Chromium, driven headless by playwright-core
//! (`tests/dashboard/dashboard.mjs`), against the whole app (dev host, worker, Azurite) with
//! instances started and entities signalled here. Screenshots land in `target/dashboard/`, never committed.

#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use app::App;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "/usr/bin/chromium";
/// The text of a queue message that is no message: parked at once, shown by the poison view.
const POISON_TEXT: &str = "<script>window.__xss=3</script> not a message";

/// Puts `text` on the app's first control queue, as a stray writer could.
async fn put_on_control_queue(app: &App, text: &str) {
    let (_, clients) = app.storage();
    clients
        .queues
        .queue_client("e2ehub-control-00")
        .put_message(BASE64.encode(text))
        .await
        .unwrap();
}

async fn start_as(app: &App, orchestrator: &str, id: &str, input: &Value) {
    start_with(app, orchestrator, id, &[], input).await;
}

/// Starts `id` with start options (`version`, `tag.<key>`) as query parameters.
async fn start_with(
    app: &App,
    orchestrator: &str,
    id: &str,
    options: &[(&str, &str)],
    input: &Value,
) {
    let query: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{}={}", urlencode(name), urlencode(value)))
        .collect();
    let answer = app
        .post(
            &format!(
                "/api/orchestrators/{orchestrator}/{}?{}",
                urlencode(id),
                query.join("&")
            ),
            input,
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{id}: {}", answer.body);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_shows_steers_and_renders_hostile_data_as_text() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        PathBuf::from(CHROMIUM).exists(),
        "{CHROMIUM} is missing (Debian: apt-get install chromium)"
    );
    // Starting Azurite runs `npm ci` when node_modules is behind the lockfile.
    // Messages waiting for their instance's start are shown at once.
    let app = App::start(&[
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "600"),
        ("DURABLE_RECORD_DEFERRAL_SECONDS", "0"),
    ])
    .await;
    assert!(
        root.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run npm ci"
    );

    let page = app.get("/api/dashboard").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    let hello: Vec<String> = (1..=3).map(|i| format!("hello-{i}")).collect();
    let purge: Vec<String> = (1..=3).map(|i| format!("purge-{i}")).collect();
    let paged: Vec<String> = (1..=55).map(|i| format!("page-{i:02}")).collect();
    for id in hello.iter().chain(&purge).chain(&paged) {
        start_as(&app, "HelloSequence5", id, &json!(null)).await;
    }
    let claim = |id: &str| json!({"ClaimId": id, "Claimant": "Ann Lee", "Amount": 1234.5, "Description": "Water damage"});
    let claims = [
        ("claim-approve", "C-1"),
        ("claim-terminate", "C-2"),
        ("claim-timer", "C-3"),
    ];
    for (id, claim_id) in claims {
        start_as(&app, "ClaimApprovalWorkflow", id, &claim(claim_id)).await;
    }
    let order = json!({
        "OrderId": "O-1", "CustomerId": "cust-7",
        "Items": [{"Sku": "A", "Quantity": 1, "UnitPrice": 2.5}],
        "Simulate": {"ShippingFailure": true}
    });
    start_as(&app, "OrderWorkflow", "order-1", &order).await;
    let failed = app
        .start_instance("FanOutFanIn", &json!({"Count": -1}))
        .await;
    // An id, an input and an output (the rejected claim echoes its ClaimId) that are markup.
    let hostile_id = "<img src=x onerror=alert(1)>";
    let hostile = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
    start_as(
        &app,
        "ClaimApprovalWorkflow",
        hostile_id,
        &json!({"ClaimId": hostile, "Claimant": hostile, "Amount": 0, "Description": hostile}),
    )
    .await;

    // Versioned instances wait for a worker of their version (this one has none): they stay
    // Pending, which is all the list needs. The hostile tag's key and value are markup.
    let hostile_tag = "<img src=x onerror=\"window.__xss=5\">";
    let tagged: [(&str, &[(&str, &str)]); 6] = [
        (
            "tagged-1",
            &[
                ("version", "2.0"),
                ("tag.team", "data"),
                ("tag.env", "prod"),
            ],
        ),
        ("tagged-2", &[("version", "3.0"), ("tag.team", "web")]),
        ("tagged-3", &[("tag.env", "prod"), ("tag.batch", "old")]),
        ("tagged-4", &[("tag.batch", "old")]),
        ("tagged-5", &[("tag.batch", "new")]),
        (
            "tagged-hostile",
            &[
                ("version", hostile_tag),
                ("tag.note", hostile_tag),
                ("tag.<b onclick=x>k</b>", "<script>window.__xss=6</script>"),
            ],
        ),
    ];
    for (id, options) in tagged {
        start_with(&app, "HelloSequence5", id, options, &json!(null)).await;
    }
    let tagged_status = app.get("/api/instances/tagged-1").await;
    assert_eq!(
        tagged_status.body["version"], "2.0",
        "{}",
        tagged_status.body
    );
    assert_eq!(
        tagged_status.body["tags"],
        json!({"team": "data", "env": "prod"})
    );

    for id in hello.iter().chain(&purge).chain(&paged) {
        app.wait_for_end(id, LONG).await;
    }
    for id in ["tagged-3", "tagged-4", "tagged-5"] {
        app.wait_for_end(id, LONG).await;
    }
    for id in ["order-1", &failed] {
        app.wait_for_end(id, LONG).await;
    }
    let rejected = app.wait_for_end(&urlencode(hostile_id), LONG).await;
    assert_eq!(rejected["output"]["ClaimId"], hostile, "{rejected}");
    for (id, _) in claims {
        app.wait_for(id, LONG, |s| {
            s["customStatus"]["Stage"] == "AwaitingApproval"
        })
        .await;
    }

    put_on_control_queue(&app, POISON_TEXT).await;
    app.wait_until("/api/poisonMessages", LONG, |list| {
        list.as_array()
            .is_some_and(|list| list.iter().any(|p| p["text"] == POISON_TEXT))
    })
    .await;

    // An event for an instance that never starts: it waits, shown by the stuck view.
    let waiting_event = "<img src=x onerror=\"window.__xss=4\">";
    let waiting_id = app
        .send_event_unchecked("never-started", waiting_event, &json!(null))
        .await;
    app.wait_until("/api/stuck?idleSeconds=0", LONG, |list| {
        list.as_array()
            .is_some_and(|list| list.iter().any(|i| i["messageId"] == waiting_id))
    })
    .await;

    // Entities: a counter, and one whose key is markup.
    let hostile_key = "<img src=x onerror=\"window.__xss=7\">";
    for (key, total) in [("dash-1", 5), (hostile_key, 1)] {
        let path = format!("/api/entities/Counter/{}", urlencode(key));
        let signalled = app.post(&format!("{path}?op=add"), &json!(total)).await;
        assert_eq!(signalled.status, StatusCode::ACCEPTED, "{}", signalled.body);
        app.wait_until(&path, LONG, |state| *state == json!(total))
            .await;
    }

    let shots = root.join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let ids = json!({
        "hello": hello, "purge": purge, "claim": "claim-approve",
        "terminate": "claim-terminate", "timer": "claim-timer", "parent": "order-1", "failed": failed,
        "hostile": hostile_id, "poisonText": POISON_TEXT,
        "waiting": "never-started", "waitingEvent": waiting_event, "hostileTag": hostile_tag,
        "counter": "dash-1", "hostileKey": hostile_key,
    });
    let base = app.base.clone();
    let script = root.join("tests/dashboard/dashboard.mjs");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(base)
            .arg(ids.to_string())
            .arg(shots)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    println!("{report}");
    assert!(
        run.status.success(),
        "the browser checks failed:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let refused = app.get("/api/stuck?idleSeconds=soon").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);

    // What the page did, seen through the API.
    let approved = app.wait_for_end("claim-approve", LONG).await;
    assert_eq!(approved["output"]["Status"], "Approved", "{approved}");
    let terminated = app.get("/api/instances/claim-terminate").await;
    assert_eq!(terminated.body["runtimeStatus"], "Terminated");
    for id in purge
        .iter()
        .map(String::as_str)
        .chain(["tagged-3", "tagged-4"])
    {
        let gone = app.get(&format!("/api/instances/{id}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{id}: {}", gone.body);
    }
    // Purged by the tag batch=old: batch=new is left.
    let kept = app.get("/api/instances/tagged-5").await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    // Signalled from the page: 5 + 2.
    let counter = app.get("/api/entities/counter/dash-1").await;
    assert_eq!(counter.body, json!(7), "{}", counter.body);
}
