//! The worker process the Functions host starts: serves the custom-handler protocol on
//! 127.0.0.1 at the port the host passes in `FUNCTIONS_CUSTOMHANDLER_PORT`, on the task hub
//! named by the `TaskHub` setting in the storage named by `AzureWebJobsStorage`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_runtime::Runtime;
use durable_store::azure::artifacts::AzureArtifactStore;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::names::TaskHub;
use seed_app as workflows;
use tracing_subscriber::EnvFilter;

const PORT_VARIABLE: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
const STORAGE_CONNECTION: &str = "AzureWebJobsStorage";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let port: u16 = std::env::var(PORT_VARIABLE)
        .with_context(|| {
            format!(
                "{PORT_VARIABLE} is not set; the Functions host sets it when it starts the worker"
            )
        })?
        .parse()
        .with_context(|| format!("{PORT_VARIABLE} must be a port number"))?;
    let settings: Vec<(String, String)> = std::env::vars().collect();
    let connection = StorageConnection::from_settings(settings.iter().cloned(), STORAGE_CONNECTION)
        .context("the storage connection is not configured")?;
    let hub =
        TaskHub::from_settings(settings.clone()).context("the TaskHub setting is not valid")?;
    // One HTTP pool and one token cache for the task hub and the workflows' artifacts.
    let clients = connection
        .build_clients(http_client(HttpSettings::default())?)
        .context("cannot build the storage clients")?;
    let artifacts = Arc::new(AzureArtifactStore::new(clients.blobs.clone(), &hub));
    let backend = Arc::new(AzureBackend::from_clients(
        clients,
        hub.clone(),
        Arc::new(SystemClock),
    ));
    let workflow_settings = workflows::WorkflowSettings::from_settings(settings.iter().cloned())
        .context("the workflow settings are not valid")?;
    let registry = workflows::registry(&workflow_settings, artifacts.clone())
        .context("the workflow registry is not valid")?;
    let functions = workflows::functions().context("the trigger functions are not valid")?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        registry,
        Arc::new(SystemClock),
    ));

    // The readiness probe must answer even while storage is unreachable, so the task hub is
    // created in the background; invocations fail (and are retried) until it is.
    tokio::spawn(create_task_hub(backend, artifacts, hub.clone()));

    // The host always calls http://127.0.0.1:{port}; nothing else should reach the worker.
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!("worker listening on {address}");
    axum::serve(
        listener,
        durable_worker::app(runtime, hub.name().to_string(), functions),
    )
    .with_graceful_shutdown(durable_protocol::shutdown::shutdown_signal())
    .await
    .context("server failed")
}

/// Creates the task hub's tables, queues and containers, retrying until storage answers.
async fn create_task_hub(
    backend: Arc<AzureBackend>,
    artifacts: Arc<AzureArtifactStore>,
    hub: TaskHub,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        let created = match backend.create_task_hub().await {
            Ok(()) => artifacts.create().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
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
