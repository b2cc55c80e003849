//! The `server` binary: `cargo leptos watch` runs it in development, and production runs it
//! built. Its command line names what to do; every setting comes from the environment
//! (README, *Configuration*), so that containers and systemd units configure it one way.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::{
    admin::{self, KeysCommand, WebhooksCommand},
    config::{self, Config},
    deploy_check::{self, Severity},
    startup::Application,
    telemetry::{self, LogFormat},
};

/// mimalloc rather than the system's allocator: less CPU per message, and memory that a burst
/// freed goes back to the system (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parley: real-time chat between a marketplace's customers and its sellers.
///
/// Settings are read from environment variables (DATABASE_URL, PARLEY_*; see the README).
/// Without a command, `serve` is assumed.
#[derive(Debug, Parser)]
#[command(name = "server", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the pages, the server functions and the WebSocket until stopped (Ctrl-C or
    /// SIGTERM). Migrates the database first.
    Serve,
    /// Check the configuration the environment gives, print what the start-up check finds,
    /// and exit: 0 when the server would start, 1 when it would refuse (production mode
    /// with an unsafe setting) or a setting can't be read.
    Check,
    /// Manage the API keys of the server API (`/api/v1`): create, list, revoke. Uses the
    /// server's DATABASE_URL; a running server honours the change at once.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the webhook endpoints the event log is posted to: add, list, remove, rotate.
    /// Uses the server's DATABASE_URL (and PARLEY_MODE for what URLs are accepted); a running
    /// server honours the change at once.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

fn main() -> ExitCode {
    // Parsing first: `--help`, `--version` and a mistyped argument answer at once (clap exits
    // with 0, 0 and 2), before anything is read, connected or bound.
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                eprintln!("Error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check => check(),
        Command::Keys { command } => {
            administer(|db| async move { admin::keys(&db, command, &mut std::io::stdout()).await })
        }
        Command::Webhooks { command } => administer(|db| async move {
            let rules = config::webhook_rules()?;
            admin::webhooks(&db, command, rules, &mut std::io::stdout()).await
        }),
    }
}

/// Runs an administration command against the server's database: 0 when it worked, 1 with
/// the error on standard error otherwise.
fn administer<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(sea_orm::DatabaseConnection) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let db = server::startup::open_database(&config::database_url()).await?;
        command(db).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    telemetry::init(LogFormat::from_env().context("invalid configuration")?);
    let config = Config::from_env().context("invalid configuration")?;
    let app = Application::build(config)
        .await
        .context("failed to start Parley")?;
    tracing::info!("Parley is listening on http://{}", app.local_addr());
    app.run_until_stopped(shutdown_signal()).await
}

/// `server check`: the start-up check without starting, for a deployment pipeline.
fn check() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    let findings = deploy_check::deploy_check(&config);
    for finding in &findings {
        let label = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        println!("{label}: {finding}");
    }
    if deploy_check::refuses(&config, &findings) {
        println!("the server would refuse to start (PARLEY_MODE=production)");
        ExitCode::FAILURE
    } else {
        println!("the server would start ({} findings)", findings.len());
        ExitCode::SUCCESS
    }
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
