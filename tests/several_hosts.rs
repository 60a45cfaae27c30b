//! Several dev hosts on one task hub, each with its own worker, while workers are killed with
//! SIGKILL at random (their dev host starts another) and one whole dev host dies with its worker
//! and is replaced. Every instance must complete with its output, each activity completion
//! recorded exactly once. The schedule comes from a printed seed (`CHAOS_SEED` repeats it).

// Shared with the other end-to-end tests, which use other parts of them.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/chaos.rs"]
mod chaos;
#[path = "common/invariants.rs"]
mod invariants;
#[path = "common/supervised.rs"]
mod supervised;

use std::time::Duration;

use app::App;
use azurite::Azurite;

const HUB: &str = "hostshub";
const HOSTS: usize = 3;
const WORKER_KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_complete_once_while_workers_and_a_host_are_killed() {
    let azurite = Azurite::start();
    let storage = azurite.connection_string();
    let mut apps = Vec::new();
    for _ in 0..HOSTS {
        apps.push(App::start_on(&storage, HUB, chaos::SETTINGS).await);
    }
    let mut rng = chaos::Rng::from_env();
    // Each crash at a random moment of the first few seconds, while instances start and run.
    let mut crashes: Vec<(u64, Option<usize>)> = Vec::new();
    for _ in 0..WORKER_KILLS {
        let at = rng.below(6_000);
        crashes.push((at, Some(rng.below(HOSTS as u64) as usize)));
    }
    crashes.push((rng.below(6_000), None));
    crashes.sort();
    let doomed = rng.below(HOSTS as u64) as usize;
    eprintln!("crashes (ms, worker of host; None: host {doomed}): {crashes:?}");

    let planned = chaos::plan("hosts", 80);
    let bases: Vec<String> = apps.iter().map(|app| app.base.clone()).collect();
    let http = reqwest::Client::new();
    let crash = async {
        let started = tokio::time::Instant::now();
        for (at, target) in crashes {
            tokio::time::sleep_until(started + Duration::from_millis(at)).await;
            match target {
                Some(host) => {
                    let killed = apps[host].kill_worker();
                    eprintln!("{at} ms: killed the worker {killed:?} of host {host}");
                }
                None => {
                    apps[doomed].kill();
                    eprintln!("{at} ms: killed host {doomed} and its worker");
                    apps[doomed] = App::start_on(&storage, HUB, chaos::SETTINGS).await;
                }
            }
        }
    };
    tokio::join!(chaos::start_all(&http, &bases, &planned), crash);

    let live = || apps.iter().map(|app| app.base.clone()).collect();
    chaos::assert_all_completed(&http, live, &planned, Duration::from_secs(100)).await;
    chaos::assert_histories(&storage, HUB, &planned).await;
}
