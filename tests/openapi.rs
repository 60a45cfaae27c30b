//! The OpenAPI description the app serves, kept true by a fuzzer: schemathesis
//! (`scripts/schemathesis.sh`) runs a bounded, seeded set of generated requests against the whole
//! app (dev host, worker, Azurite) and fails on any 5xx or any answer the description does not allow.

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
use reqwest::StatusCode;

fn schemathesis(args: &[&str]) -> std::process::Output {
    Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.sh"))
        .args(args)
        .output()
        .expect("run scripts/schemathesis.sh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_5xx_and_only_described_answers() {
    let install = schemathesis(&["--install-only"]);
    assert!(
        install.status.success(),
        "schemathesis could not be installed:\n{}\n{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    let app = App::start(&[]).await;

    let served = app.get("/api/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.headers["content-type"], "application/json");
    assert!(
        served.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        served.body
    );

    let base = app.base.clone();
    let run = tokio::task::spawn_blocking(move || schemathesis(&[&base]))
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A run that tested nothing, or only some operations, would pass too.
    let count = |label: &str| -> Option<usize> {
        let line = report
            .lines()
            .find(|line| line.trim_start().starts_with(label))?;
        line.trim_start()[label.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Operations:"))
        .and_then(|rest| rest.split_whitespace().nth(3)?.parse::<usize>().ok());
    assert!(
        total.is_some_and(|total| total > 10 && count("Tested:") == Some(total)),
        "schemathesis did not test every operation:\n{report}"
    );
    println!("{report}");

    // Nothing the run sent left the app wedged or an instance half-written: every instance it
    // made reads back, and a new one still runs to its end.
    let listed = app.get("/api/instances?top=1000").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let instances = listed.body.as_array().expect("a list of instances");
    assert!(!instances.is_empty(), "the run started no instance");
    for instance in instances {
        let id = instance["instanceId"].as_str().expect("an instance id");
        let encoded: String = id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let status = app.get(&format!("/api/instances/{encoded}")).await;
        assert!(
            matches!(status.status, StatusCode::OK | StatusCode::ACCEPTED)
                && status.body["instanceId"] == id,
            "instance {id:?} does not read back: {} {}",
            status.status,
            status.body
        );
    }
    let id = app
        .start_instance("HelloSequence5", &serde_json::json!(null))
        .await;
    let ended = app.wait_for_end(&id, Duration::from_secs(60)).await;
    assert_eq!(ended["runtimeStatus"], "Completed", "{ended}");
}
