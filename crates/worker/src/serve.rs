//! The worker process an app's `main` runs: settings from the environment the Functions host
//! starts it with, storage clients, the task hub created in the background, and the HTTP surface
//! served on 127.0.0.1 until the process is asked to stop.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::ParseIntError;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use durable_engine::Registry;
use durable_protocol::connection::{http_client, ConnectionError, HttpSettings, StorageConnection};
use durable_protocol::logging::{self, LogFormatError};
use durable_runtime::retention::RetentionSettingError;
use durable_runtime::settings::SettingsError;
use durable_runtime::{Retention, Runtime, RuntimeOptions};
use durable_store::artifacts::ArtifactStore;
use durable_store::azure::artifacts::AzureArtifactStore;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::{TaskHub, TaskHubError};

use crate::functions::TriggerFunctions;
use crate::host_json::{HostJson, HostJsonError, HOST_JSON};

/// Where the Functions host tells the worker to listen.
pub const PORT_SETTING: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// The app root, which the Functions host (and the dev host) tells the worker.
pub const APP_ROOT_SETTING: &str = "FUNCTIONS_APP_ROOT_PATH";
/// The storage connection the task hub (and the host's own queue triggers) live in.
pub const STORAGE_CONNECTION: &str = "AzureWebJobsStorage";

/// Whatever an app's setup fails with; its message (and sources) end up in the worker's log.
pub type AppError = Box<dyn Error + Send + Sync>;

/// Why the worker could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{PORT_SETTING} is not set; the Functions host sets it when it starts the worker")]
    MissingPort,
    #[error("{PORT_SETTING}='{value}' must be a port number")]
    InvalidPort {
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("the storage connection is not configured")]
    Connection(#[source] ConnectionError),
    #[error("the TaskHub setting is not valid")]
    TaskHub(#[source] TaskHubError),
    #[error("cannot build the storage clients")]
    Clients(#[source] ConnectionError),
    #[error("a runtime setting is not valid")]
    RuntimeSettings(#[source] SettingsError),
    #[error("a retention setting is not valid")]
    RetentionSettings(#[source] RetentionSettingError),
    #[error("the log format setting is not valid")]
    LogFormat(#[source] LogFormatError),
    #[error(transparent)]
    HostJson(#[from] HostJsonError),
    /// The app's own setup failed: its error, as it is.
    #[error(transparent)]
    App(AppError),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
}

/// What an app's setup is given: its settings, its task hub, and storage on the worker's clients.
pub struct Setup {
    settings: Vec<(String, String)>,
    hub: TaskHub,
    artifacts: Arc<AzureArtifactStore>,
    artifacts_wanted: bool,
}

impl Setup {
    /// The app settings: the environment the host started the worker with (`local.settings.json`
    /// `Values` locally, app settings on Azure).
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    pub fn task_hub(&self) -> &TaskHub {
        &self.hub
    }

    /// The task hub's `{hub}-artifacts` container, for data the app's activities keep. Asking
    /// for it has the worker create the container along with the task hub.
    pub fn artifacts(&mut self) -> Arc<dyn ArtifactStore> {
        self.artifacts_wanted = true;
        self.artifacts.clone()
    }
}

/// What the worker serves: the app's orchestrators and activities, and its trigger functions.
pub struct App {
    pub(crate) registry: Registry,
    functions: TriggerFunctions<AzureBackend>,
}

impl App {
    pub fn new(registry: Registry, functions: TriggerFunctions<AzureBackend>) -> Self {
        Self {
            registry,
            functions,
        }
    }
}

/// An app's whole `main`: logs to stdout (`DURABLE_LOG_FORMAT`, filtered by `RUST_LOG`, `info`
/// by default; see [`durable_protocol::logging`]), serves [`serve`] with the process
/// environment on a multi-threaded tokio runtime, and exits non-zero with the reason logged
/// when it cannot start or stops serving.
///
/// `worker verify …` checks stored histories against the app's registry instead of serving
/// ([`crate::verify`]); any other arguments (the Functions host may pass some) are ignored.
pub fn run<F>(setup: F) -> ExitCode
where
    F: FnOnce(&mut Setup) -> Result<App, AppError>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(verify_args) = crate::verify::command_args(&args) {
        return crate::verify::run(verify_args, std::env::vars().collect(), setup);
    }
    let served = logging::init_from_env()
        .map_err(ServeError::LogFormat)
        .and_then(|_| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(ServeError::Runtime)
        })
        .and_then(|runtime| runtime.block_on(serve(std::env::vars().collect(), setup)));
    // Spans still batched would be lost with the process.
    durable_protocol::telemetry::flush();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", with_sources(&error));
            ExitCode::FAILURE
        }
    }
}

/// Serves the app described by `settings` (the host's environment) until a shutdown signal:
/// reads the port, the storage connection and `TaskHub`, has `setup` build the app, creates the
/// task hub in the background and listens on 127.0.0.1.
pub async fn serve<F>(settings: Vec<(String, String)>, setup: F) -> Result<(), ServeError>
where
    F: FnOnce(&mut Setup) -> Result<App, AppError>,
{
    let port = port(&settings)?;
    let get = |name: &str| {
        settings
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut options = RuntimeOptions::default()
        .with_settings(get)
        .map_err(ServeError::RuntimeSettings)?;
    options.retention = Retention::from_settings(get).map_err(ServeError::RetentionSettings)?;
    // The host names the app root; the worker's working directory is it unless host.json's
    // `workingDirectory` says otherwise.
    let app_root = settings
        .iter()
        .find(|(key, _)| key == APP_ROOT_SETTING)
        .map_or_else(|| Path::new(".").to_path_buf(), |(_, root)| root.into());
    let host_json = HostJson::read(&app_root.join(HOST_JSON))?;
    options.max_dequeue_count = host_json.max_dequeue_count()?;
    options.versioning = host_json.versioning(get)?;
    let Prepared {
        app,
        hub,
        backend,
        artifacts,
    } = prepare(settings, setup)?;
    let backend = Arc::new(backend);
    let runtime = Arc::new(Runtime::with_options(
        backend.clone(),
        app.registry,
        Arc::new(SystemClock),
        options,
    ));

    // The readiness probe must answer even while storage is unreachable, so the task hub is
    // created in the background; invocations fail (and are retried) until it is.
    let sweeping = runtime.clone();
    let created = create_task_hub(backend, artifacts, hub.clone());
    let (ready, hub_ready) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        created.await;
        ready.send_replace(true);
        sweeping.sweep_forever().await;
    });

    // The host always calls http://127.0.0.1:{port}; nothing else should reach the worker.
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Listen { address, source })?;
    tracing::info!("worker listening on {address}");
    axum::serve(
        listener,
        crate::app_once_ready(runtime, hub.name().to_string(), app.functions, hub_ready),
    )
    .with_graceful_shutdown(durable_protocol::shutdown::shutdown_signal())
    .await
    .map_err(ServeError::Serve)
}

/// The app over the task hub its settings name, as both serving and `verify` build it.
pub(crate) struct Prepared {
    pub app: App,
    pub hub: TaskHub,
    /// Nothing is contacted until the first call.
    pub backend: AzureBackend,
    /// The artifact container, when the app asked for it.
    pub artifacts: Option<Arc<AzureArtifactStore>>,
}

/// Reads the storage connection and `TaskHub` from `settings`, builds the storage clients and
/// has `setup` build the app over them.
pub(crate) fn prepare<F>(settings: Vec<(String, String)>, setup: F) -> Result<Prepared, ServeError>
where
    F: FnOnce(&mut Setup) -> Result<App, AppError>,
{
    let connection = StorageConnection::from_settings(settings.iter().cloned(), STORAGE_CONNECTION)
        .map_err(ServeError::Connection)?;
    let hub = TaskHub::from_settings(settings.iter().cloned()).map_err(ServeError::TaskHub)?;
    // One HTTP pool and one token cache for the task hub and the app's artifacts.
    let clients = http_client(HttpSettings::default())
        .and_then(|http| connection.build_clients(http))
        .map_err(ServeError::Clients)?;
    let mut parts = Setup {
        settings,
        artifacts: Arc::new(AzureArtifactStore::new(clients.blobs.clone(), &hub)),
        hub,
        artifacts_wanted: false,
    };
    let app = setup(&mut parts).map_err(ServeError::App)?;
    let Setup {
        hub,
        artifacts,
        artifacts_wanted,
        ..
    } = parts;
    Ok(Prepared {
        app,
        backend: AzureBackend::from_clients(clients, hub.clone(), Arc::new(SystemClock)),
        hub,
        artifacts: artifacts_wanted.then_some(artifacts),
    })
}

fn port(settings: &[(String, String)]) -> Result<u16, ServeError> {
    let (_, value) = settings
        .iter()
        .find(|(name, _)| name == PORT_SETTING)
        .ok_or(ServeError::MissingPort)?;
    value.parse().map_err(|source| ServeError::InvalidPort {
        value: value.clone(),
        source,
    })
}

/// `error: its source: …`, as the log should show it.
pub(crate) fn with_sources(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Creates the task hub's tables, queues and containers (and the artifact container when the
/// app uses it), retrying until storage answers.
async fn create_task_hub(
    backend: Arc<AzureBackend>,
    artifacts: Option<Arc<AzureArtifactStore>>,
    hub: TaskHub,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        let created = match (backend.create_task_hub().await, &artifacts) {
            (Ok(()), Some(artifacts)) => artifacts.create().await.map_err(|e| e.to_string()),
            (Ok(()), None) => Ok(()),
            (Err(e), _) => Err(e.to_string()),
        };
        match created {
            Ok(()) => {
                tracing::info!("task hub '{}' is ready", hub.name());
                return;
            }
            Err(error) => {
                tracing::warn!("cannot create task hub '{}' yet: {error}", hub.name());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    use super::*;

    /// A connection string to storage nobody serves: port 1 on loopback refuses at once.
    const UNREACHABLE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
        AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
        BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;\
        QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;\
        TableEndpoint=http://127.0.0.1:1/devstoreaccount1;";

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn empty_app(_: &mut Setup) -> Result<App, AppError> {
        Ok(App::new(
            Registry::builder().build()?,
            TriggerFunctions::new(),
        ))
    }

    fn never_built(_: &mut Setup) -> Result<App, AppError> {
        panic!("the app must not be set up when the worker's own settings are wrong")
    }

    async fn failure(pairs: &[(&str, &str)]) -> String {
        let error = serve(settings(pairs), never_built).await.unwrap_err();
        with_sources(&error)
    }

    #[tokio::test]
    async fn the_worker_settings_are_checked_before_the_app_is_set_up() {
        assert_eq!(
            failure(&[(STORAGE_CONNECTION, UNREACHABLE)]).await,
            "FUNCTIONS_CUSTOMHANDLER_PORT is not set; the Functions host sets it when it starts \
             the worker"
        );
        assert_eq!(
            failure(&[(PORT_SETTING, "http")]).await,
            "FUNCTIONS_CUSTOMHANDLER_PORT='http' must be a port number: invalid digit found in \
             string"
        );
        let missing = failure(&[(PORT_SETTING, "7000")]).await;
        assert!(
            missing.starts_with(
                "the storage connection is not configured: no storage connection configured: \
                 set AzureWebJobsStorage"
            ),
            "{missing}"
        );
        let hub = failure(&[
            (PORT_SETTING, "7000"),
            (STORAGE_CONNECTION, UNREACHABLE),
            ("TaskHub", "MyHub"),
        ])
        .await;
        assert!(
            hub.starts_with("the TaskHub setting is not valid: "),
            "{hub}"
        );
        assert_eq!(
            failure(&[(PORT_SETTING, "7000"), ("DURABLE_RETENTION_FAILED", "7")]).await,
            "a retention setting is not valid: app setting DURABLE_RETENTION_FAILED is '7'; it \
             must be a whole number above 0 and a unit: s, m, h or d (e.g. 30d)"
        );
    }

    #[tokio::test]
    async fn an_app_that_cannot_be_set_up_stops_the_worker_with_its_own_error() {
        let error = serve(
            settings(&[(PORT_SETTING, "7000"), (STORAGE_CONNECTION, UNREACHABLE)]),
            |setup| {
                assert_eq!(setup.task_hub().name(), "durableorchestratorhub");
                assert!(setup
                    .settings()
                    .contains(&(PORT_SETTING.to_string(), "7000".to_string())));
                Err("the greeting is not configured".into())
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ServeError::App(_)), "{error:?}");
        assert_eq!(with_sources(&error), "the greeting is not configured");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_readiness_probe_answers_while_storage_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let served = tokio::spawn(serve(
            settings(&[
                (PORT_SETTING, &port.to_string()),
                (STORAGE_CONNECTION, UNREACHABLE),
            ]),
            |setup| {
                setup.artifacts();
                empty_app(setup)
            },
        ));
        let answer = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                    stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
                        .unwrap();
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).unwrap();
                    return answer;
                }
                assert!(Instant::now() < deadline, "the worker never listened");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
        served.abort();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ready"), "{answer}");
    }
}
