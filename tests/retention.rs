//! Retention as an operator runs it: the dev host fires the engine's `DurableRetention` timer on
//! the schedule the settings give, and the worker purges the instances ended longer ago than
//! their status keeps them; the others stay, and the log says what went.

// Shared by the end-to-end tests; this one reads no headers.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::time::Duration;

use app::App;
use reqwest::StatusCode;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_timer_purges_what_has_ended_long_enough() {
    let app = App::start(&[
        ("DURABLE_RETENTION_SCHEDULE", "*/2 * * * * *"),
        ("DURABLE_RETENTION_COMPLETED", "3s"),
        ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "3600"),
    ])
    .await;
    let completed = app.start_instance("HelloSequence5", &json!(null)).await;
    // Failed instances have no retention here; a negative count fails the orchestration.
    let failed = app
        .start_instance("FanOutFanIn", &json!({"Count": -1}))
        .await;
    let waiting = app
        .start_instance(
            "ClaimApprovalWorkflow",
            &json!({"ClaimId": "C-1", "Claimant": "Ann Lee", "Amount": 12.5, "Description": "Hail"}),
        )
        .await;
    assert_eq!(
        app.wait_for_end(&completed, LONG).await["runtimeStatus"],
        "Completed"
    );
    assert_eq!(
        app.wait_for_end(&failed, LONG).await["runtimeStatus"],
        "Failed"
    );

    let deadline = std::time::Instant::now() + LONG;
    while app.get(&format!("/api/instances/{completed}")).await.status != StatusCode::NOT_FOUND {
        assert!(
            std::time::Instant::now() < deadline,
            "the completed instance was never purged; log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        app.log_text().contains(&completed),
        "the log names what was purged:\n{}",
        app.log_text()
    );

    // Two more runs later, what has no retention, or has not ended, is still there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        app.get(&format!("/api/instances/{failed}")).await.body["runtimeStatus"],
        "Failed"
    );
    assert_eq!(
        app.get(&format!("/api/instances/{waiting}")).await.body["runtimeStatus"],
        "Running"
    );
}
