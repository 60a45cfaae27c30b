//! The development stand-in for the Functions host, for machines without `func`: reads
//! `host.json` and the functions' `function.json`, starts the worker with the port variable and
//! the app settings, waits for its readiness, restarts it when it dies, and runs its queue
//! and timer triggers against the storage account. (The HTTP front and output bindings come
//! next.)

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use durable_orchestrator::devhost::config::{
    disabled_by_setting, resolve, settings, AppConfig, Binding, FunctionConfig,
};
use durable_orchestrator::devhost::ncrontab::Schedule;
use durable_orchestrator::devhost::queue_trigger::{Invoker, QueueTrigger};
use durable_orchestrator::devhost::timer_trigger::TimerTrigger;
use durable_orchestrator::store::azure::connection::{
    http_client, HttpSettings, StorageConnection,
};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".to_string()));
    let app = AppConfig::load(&root).context("cannot read the app's configuration")?;
    let settings = settings(&root, std::env::vars()).context("cannot read the app settings")?;
    let executable = worker_executable(&root, &app.host.executable);

    let port = free_port()?;
    let mut worker = start_worker(&executable, &app, &settings, port)?;
    wait_ready(port, &mut worker).await?;
    tracing::info!("worker ready on 127.0.0.1:{port}");

    let (stop, stopped) = watch::channel(false);
    let triggers = queue_triggers(&app, &settings).await?;
    let invoker = Arc::new(Invoker::new(
        reqwest::Client::new(),
        format!("http://127.0.0.1:{port}"),
    ));
    let mut running = Vec::new();
    for trigger in triggers {
        running.push(tokio::spawn(trigger.run(invoker.clone(), stopped.clone())));
    }
    for timer in timer_triggers(&app, &settings)? {
        running.push(tokio::spawn(timer.run(invoker.clone(), stopped.clone())));
    }

    // Restart the worker when it dies, as the host does; stop everything on Ctrl-C or SIGTERM.
    let mut shutdown = Box::pin(durable_orchestrator::shutdown::shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Ok(Some(status)) = worker.try_wait() {
                    tracing::warn!("the worker exited ({status}); restarting it");
                    worker = start_worker(&executable, &app, &settings, port)?;
                    wait_ready(port, &mut worker).await?;
                }
            }
        }
    }
    let _ = stop.send(true);
    for task in running {
        let _ = task.await;
    }
    let _ = worker.kill();
    let _ = worker.wait();
    Ok(())
}

/// `DEVHOST_WORKER` overrides `defaultExecutablePath` (the repo builds to `target/`, while the
/// host expects the executable in the app root); a relative path is taken from the app root.
fn worker_executable(root: &Path, configured: &str) -> PathBuf {
    let chosen = std::env::var("DEVHOST_WORKER").unwrap_or_else(|_| configured.to_string());
    let path = PathBuf::from(&chosen);
    if path.is_absolute() {
        path
    } else {
        root.join(path)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the worker as the host does: the app settings as environment, plus the port.
fn start_worker(
    executable: &Path,
    app: &AppConfig,
    settings: &BTreeMap<String, String>,
    port: u16,
) -> anyhow::Result<Child> {
    let working_directory = match &app.host.working_directory {
        Some(directory) => app.root.join(directory),
        None => app.root.clone(),
    };
    Command::new(executable)
        .args(&app.host.arguments)
        .current_dir(working_directory)
        .envs(settings)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", &app.root)
        .spawn()
        .with_context(|| format!("cannot start the worker {}", executable.display()))
}

/// Polls `GET /` every 25 ms, as the host does; any answer means ready.
async fn wait_ready(port: u16, worker: &mut Child) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = worker.try_wait() {
            bail!("the worker exited before it was ready ({status})");
        }
        if Instant::now() > deadline {
            bail!("the worker did not answer GET / within 30 seconds");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The functions the `AzureWebJobs.<Name>.Disabled` setting does not switch off.
fn enabled<'a>(
    app: &'a AppConfig,
    settings: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a FunctionConfig> + 'a {
    app.functions.iter().filter(move |function| {
        let disabled = disabled_by_setting(&function.name, settings);
        if disabled {
            tracing::info!("function '{}' is disabled by its setting", function.name);
        }
        !disabled
    })
}

/// One timer per timer-triggered function, its schedule resolved from the settings.
fn timer_triggers(
    app: &AppConfig,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<TimerTrigger>> {
    let mut timers = Vec::new();
    for function in enabled(app, settings) {
        for binding in &function.bindings {
            let Binding::TimerTrigger {
                name,
                schedule,
                run_on_startup,
                use_monitor,
            } = binding
            else {
                continue;
            };
            let expression = resolve(schedule, settings)?;
            let schedule = Schedule::parse(&expression).with_context(|| {
                format!("function '{}': schedule '{expression}'", function.name)
            })?;
            timers.push(TimerTrigger {
                function: function.name.clone(),
                binding: name.clone(),
                schedule,
                run_on_startup: *run_on_startup,
                use_monitor: *use_monitor,
            });
        }
    }
    Ok(timers)
}

/// One trigger per queue-triggered function, on the storage its `connection` names.
async fn queue_triggers(
    app: &AppConfig,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<QueueTrigger>> {
    let http = http_client(HttpSettings::default()).context("cannot build the HTTP client")?;
    let mut triggers = Vec::new();
    for function in enabled(app, settings) {
        for binding in &function.bindings {
            let Binding::QueueTrigger {
                name,
                queue_name,
                connection,
            } = binding
            else {
                continue;
            };
            let prefix = connection
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or("AzureWebJobsStorage");
            let storage = StorageConnection::from_settings(settings.clone(), prefix)
                .with_context(|| format!("function '{}': connection '{prefix}'", function.name))?;
            let clients = storage.build_clients(http.clone())?;
            let queue_name = resolve(queue_name, settings)?;
            triggers.push(QueueTrigger {
                function: function.name.clone(),
                binding: name.clone(),
                queue: clients.queues.queue_client(queue_name.clone()),
                poison: clients.queues.queue_client(format!("{queue_name}-poison")),
                options: app.host.queues.clone(),
            });
        }
    }
    for trigger in &triggers {
        for queue in [&trigger.queue, &trigger.poison] {
            // Creating an existing queue is not an error on Azure Queues.
            queue
                .create()
                .await
                .with_context(|| format!("cannot create queue '{}'", queue.queue_name()))?;
        }
    }
    Ok(triggers)
}
