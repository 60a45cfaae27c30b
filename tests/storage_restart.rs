//! Storage that restarts and crashes under load: 200 orchestrations in flight through the dev
//! host and the worker, Azurite (keeping its data on disk) stopped and started again while
//! everything runs, then killed with SIGKILL together with the worker, and started again on the
//! same ports and folder while the dev host's new worker already calls it. Every
//! instance must still complete with its output, recording nothing twice. And a dev host whose
//! storage is down still stops when asked.

// Shared with the other end-to-end tests, which use other parts of them.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[allow(dead_code)]
#[path = "common/chaos.rs"]
mod chaos;
#[path = "common/invariants.rs"]
mod invariants;
#[path = "common/supervised.rs"]
mod supervised;

use std::time::Duration;

use app::App;
use azurite::Azurite;

const HUB: &str = "restarthub";
/// Azurite's LokiJS autosave interval (5 s), and some margin.
const AZURITE_SAVES_WITHIN: Duration = Duration::from_secs(7);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrations_in_flight_survive_a_storage_crash_and_restart() {
    let azurite = Azurite::start_on_disk();
    let storage = azurite.connection_string();
    let app = App::start_on(&storage, HUB, chaos::SETTINGS).await;
    let planned = chaos::plan("restart", 200);
    chaos::start_all(&app.http, std::slice::from_ref(&app.base), &planned).await;

    // Azurite on disk keeps its data in LokiJS, saved every 5 s: a SIGKILL loses what it
    // acknowledged since, which real storage never does and no store could recover (a message
    // put, received, then gone). So the app is frozen until Azurite has saved what it answered;
    // then Azurite dies with the worker, and the app (a new worker) runs on against no
    // storage, then a restarted one.
    let in_flight = || async {
        let running = app
            .get("/api/instances?runtimeStatus=Running,Pending&top=1000")
            .await;
        running.body.as_array().map_or(0, Vec::len)
    };
    // First a restart of the service, with everything moving: Azurite saves on SIGTERM, so
    // nothing it acknowledged is lost, while turns, activities and timers are cut mid-call.
    let before_stop = in_flight().await;
    assert!(
        before_stop >= 40,
        "only {before_stop} instance(s) in flight"
    );
    azurite.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    azurite.restart();

    // Then a crash.
    let before_crash = in_flight().await;
    assert!(
        before_crash >= 20,
        "only {before_crash} instance(s) in flight"
    );
    app.signal("STOP");
    tokio::time::sleep(AZURITE_SAVES_WITHIN).await;
    azurite.kill();
    // The worker dies too, so its replacement starts against no storage.
    assert!(app.kill_worker().is_some(), "the dev host runs a worker");
    app.signal("CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    azurite.restart();

    let bases = || vec![app.base.clone()];
    chaos::assert_all_completed(&app.http, bases, &planned, Duration::from_secs(90)).await;
    chaos::assert_histories(&storage, HUB, &planned).await;
}

/// A dev host whose storage died stops at once when asked, rather than after the storage SDK's
/// retries (a minute) of its queue polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_host_stops_at_once_while_its_storage_is_down() {
    let azurite = Azurite::start();
    let mut app = App::start_on(&azurite.connection_string(), HUB, &[]).await;
    azurite.kill();
    // Long enough for every queue trigger to be inside a poll the SDK keeps retrying.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let took = app.terminate(Duration::from_secs(20));
    assert!(
        took.is_some_and(|took| took < Duration::from_secs(5)),
        "the dev host took {took:?} to stop (None: still running after 20 s)"
    );
}
