//! Starts Parley: `cargo leptos watch` in development, the built `server` binary in production.

use anyhow::Context;
use server::{
    config::Config,
    startup::Application,
    telemetry::{self, LogFormat},
};

/// mimalloc rather than the system's allocator: less CPU per message, and memory that a burst
/// freed goes back to the system (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(LogFormat::from_env().context("invalid configuration")?);
    let config = Config::from_env().context("invalid configuration")?;
    let app = Application::build(config)
        .await
        .context("failed to start Parley")?;
    tracing::info!("Parley is listening on http://{}", app.local_addr());
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM (what container runtimes and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
