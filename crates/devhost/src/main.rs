//! The development stand-in for the Functions host where `func` is missing: starts the worker as
//! the host does (restarting it when it dies), runs its queue and timer triggers, serves its HTTP
//! functions on `func start`'s port, and writes their queue outputs. See [`USAGE`].

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use azure_core::HttpClient;
use durable_devhost::config::{
    disabled_by_setting, local_http_port, resolve, settings, AppConfig, Binding, FunctionConfig,
};
use durable_devhost::http_front::{banner, HttpFront, HttpFunction, RouteError};
use durable_devhost::invoker::Invoker;
use durable_devhost::ncrontab::Schedule;
use durable_devhost::output_bindings::OutputBindings;
use durable_devhost::queue_trigger::QueueTrigger;
use durable_devhost::timer_trigger::TimerTrigger;
use durable_protocol::connection::{
    http_client, HttpSettings, StorageConnection, DEFAULT_CONNECTION,
};
use durable_protocol::logging::{self, LogFormat};
use tokio::sync::watch;

/// `func start`'s port when neither `--port` nor `Host.LocalHttpPort` says otherwise.
const DEFAULT_HTTP_PORT: u16 = 7071;
/// How often the dev host looks whether its worker is still alive.
const WORKER_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How long HTTP requests still in flight at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const USAGE: &str = "usage: devhost [APP_ROOT] [--port N]

  APP_ROOT   the app folder with host.json (default: the current directory)
  --port N   the HTTP port (default: Host.LocalHttpPort of local.settings.json, else 7071;
             0 picks a free port)

DEVHOST_WORKER overrides the worker executable named in host.json.";

/// Each function's queue outputs, by function name.
type Outputs = BTreeMap<String, Arc<OutputBindings>>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let format = match logging::init_from_env() {
        Ok(format) => format,
        Err(error) => {
            tracing::error!("{error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(format).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Debug, PartialEq)]
struct Args {
    root: PathBuf,
    port: Option<u16>,
}

/// The command line; `None` when help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut root = None;
    let mut port = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let port_value = match arg.strip_prefix("--port=") {
            Some(value) => Some(value.to_string()),
            None if arg == "--port" => Some(args.next().context("--port needs a value")?),
            None => None,
        };
        if let Some(value) = port_value {
            port = Some(
                value
                    .parse::<u16>()
                    .with_context(|| format!("--port '{value}' is not a port number"))?,
            );
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            option if option.starts_with('-') => bail!("unknown option '{option}'\n\n{USAGE}"),
            _ if root.is_none() => root = Some(PathBuf::from(arg)),
            _ => bail!("unexpected argument '{arg}'\n\n{USAGE}"),
        }
    }
    Ok(Some(Args {
        root: root.unwrap_or_else(|| PathBuf::from(".")),
        port,
    }))
}

async fn run(format: LogFormat) -> anyhow::Result<()> {
    let Some(args) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let root = args.root;
    let app = AppConfig::load(&root).context("cannot read the app's configuration")?;
    let settings = settings(&root, std::env::vars()).context("cannot read the app settings")?;
    let functions: Vec<&FunctionConfig> = enabled(&app, &settings).collect();
    let http_port = match args.port {
        Some(port) => port,
        None => local_http_port(&root)?.unwrap_or(DEFAULT_HTTP_PORT),
    };
    // Bound before the worker starts, so a port in use stops the dev host at once.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", http_port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{http_port}"))?;
    let http_port = listener.local_addr()?.port();
    let executable = worker_executable(&root, &app.host.executable);

    let port = free_port()?;
    let mut worker = start_worker(&executable, &app, &settings, port)?;
    wait_ready(port, &mut worker).await?;
    tracing::info!("worker ready on 127.0.0.1:{port}");

    let storage_http =
        http_client(HttpSettings::default()).context("cannot build the HTTP client")?;
    let mut outputs = Outputs::new();
    for function in &functions {
        let bindings = OutputBindings::for_function(
            function,
            &settings,
            storage_http.clone(),
            app.host.queues.base64,
        )?;
        outputs.insert(function.name.clone(), Arc::new(bindings));
    }
    // The worker keeps its port across restarts, so every caller can hold on to this URL.
    let (worker_up, worker_up_gate) = watch::channel(true);
    let invoker = Arc::new(
        Invoker::new(
            format!("http://127.0.0.1:{port}"),
            app.host.function_timeout,
        )?
        .gated(worker_up_gate),
    );

    let (stop, stopped) = watch::channel(false);
    let mut running = Vec::new();
    for trigger in queue_triggers(&app, &functions, &settings, storage_http, &outputs).await? {
        running.push(tokio::spawn(trigger.run(invoker.clone(), stopped.clone())));
    }
    for timer in timer_triggers(&functions, &settings, &outputs)? {
        running.push(tokio::spawn(timer.run(invoker.clone(), stopped.clone())));
    }
    let front = Arc::new(HttpFront::new(
        http_functions(&app, &functions, &outputs)?,
        invoker,
    ));
    // `func start`'s listing for people; one event (newlines escaped) where lines must be JSON.
    let listing = banner(&functions, &app.host, http_port);
    match format {
        LogFormat::Text => println!("\n{listing}"),
        LogFormat::Json => tracing::info!("{listing}"),
    }
    let mut serving = tokio::spawn(front.serve(listener, stopped.clone()));

    // Restart the worker when it dies, holding invocations meanwhile, as the host does; stop
    // everything on Ctrl-C or SIGTERM.
    let mut shutdown = Box::pin(durable_protocol::shutdown::shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(WORKER_CHECK_INTERVAL) => {
                if let Ok(Some(status)) = worker.try_wait() {
                    worker_up.send_replace(false);
                    tracing::warn!("the worker exited ({status}); restarting it");
                    worker = start_worker(&executable, &app, &settings, port)?;
                    wait_ready(port, &mut worker).await?;
                    worker_up.send_replace(true);
                }
            }
        }
    }
    let _ = stop.send(true);
    for task in running {
        let _ = task.await;
    }
    // A request the worker never answers must not hold up the shutdown.
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut serving)
        .await
        .is_err()
    {
        serving.abort();
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

/// The queue outputs of `function`; none when it has no entry.
fn outputs_of(outputs: &Outputs, function: &str) -> Arc<OutputBindings> {
    outputs.get(function).cloned().unwrap_or_default()
}

/// The HTTP-triggered functions. One whose route the dev host cannot serve is left out with a
/// warning; an invalid route stops the dev host.
fn http_functions(
    app: &AppConfig,
    functions: &[&FunctionConfig],
    outputs: &Outputs,
) -> anyhow::Result<Vec<HttpFunction>> {
    let mut served = Vec::new();
    for function in functions {
        match HttpFunction::from_config(function, &app.host, outputs_of(outputs, &function.name)) {
            Ok(Some(http)) => served.push(http),
            Ok(None) => {}
            Err(error @ RouteError::Unsupported { .. }) => {
                tracing::warn!("{error}; the function is not served");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(served)
}

/// One timer per timer-triggered function, its schedule resolved from the settings.
fn timer_triggers(
    functions: &[&FunctionConfig],
    settings: &BTreeMap<String, String>,
    outputs: &Outputs,
) -> anyhow::Result<Vec<TimerTrigger>> {
    let mut timers = Vec::new();
    for function in functions {
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
                outputs: outputs_of(outputs, &function.name),
            });
        }
    }
    Ok(timers)
}

/// One trigger per queue-triggered function, on the storage its `connection` names.
async fn queue_triggers(
    app: &AppConfig,
    functions: &[&FunctionConfig],
    settings: &BTreeMap<String, String>,
    http: Arc<dyn HttpClient>,
    outputs: &Outputs,
) -> anyhow::Result<Vec<QueueTrigger>> {
    let mut triggers = Vec::new();
    for function in functions {
        for binding in &function.bindings {
            let Binding::QueueTrigger {
                name,
                queue_name,
                connection,
            } = binding
            else {
                continue;
            };
            let prefix = connection.as_deref().unwrap_or(DEFAULT_CONNECTION);
            let storage = StorageConnection::from_settings(settings, prefix)
                .with_context(|| format!("function '{}': connection '{prefix}'", function.name))?;
            let clients = storage.build_clients(http.clone())?;
            let queue_name = resolve(queue_name, settings)?;
            triggers.push(QueueTrigger {
                function: function.name.clone(),
                binding: name.clone(),
                queue: clients.queues.queue_client(queue_name.clone()),
                poison: clients.queues.queue_client(format!("{queue_name}-poison")),
                options: app.host.queues.clone(),
                outputs: outputs_of(outputs, &function.name),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Args>> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn the_command_line_takes_an_app_root_and_a_port() {
        let args = |root: &str, port| {
            Some(Args {
                root: PathBuf::from(root),
                port,
            })
        };
        assert_eq!(parse(&[]).unwrap(), args(".", None));
        assert_eq!(parse(&["app"]).unwrap(), args("app", None));
        assert_eq!(
            parse(&["--port", "7072", "app"]).unwrap(),
            args("app", Some(7072))
        );
        assert_eq!(parse(&["app", "--port=0"]).unwrap(), args("app", Some(0)));
        assert_eq!(parse(&["--help"]).unwrap(), None);
        for bad in [
            &["--port"][..],
            &["--port", "x"],
            &["--port", "70000"],
            &["a", "b"],
            &["--verbose"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
