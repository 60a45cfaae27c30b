//! The worker process the Functions host starts: serves the custom-handler protocol on
//! 127.0.0.1 at the port the host passes in `FUNCTIONS_CUSTOMHANDLER_PORT`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use durable_orchestrator::handler;
use tracing_subscriber::EnvFilter;

const PORT_VARIABLE: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

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
    // The host always calls http://127.0.0.1:{port}; nothing else should reach the worker.
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!("worker listening on {address}");
    axum::serve(listener, handler::router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
