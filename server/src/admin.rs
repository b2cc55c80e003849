//! The administration commands of the server binary: `server keys create|list|revoke`.
//!
//! They open the same database as the server (`DATABASE_URL`), bring its schema up to date as
//! the server would, and change it directly: a running server reads keys from the database at
//! every request, so what these commands do counts at once, without a restart.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use sea_orm::DatabaseConnection;

use app::integration::api_keys;

/// `server keys …`: the API keys a marketplace's backend calls the server API with.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it, once, alone on the last line of the output (for scripts:
    /// `server keys create --name shop | tail -n 1`). Only its hash is kept.
    Create {
        /// What to call it: 1 to 64 letters, digits, '-', '_' or '.'.
        #[arg(long)]
        name: String,
    },
    /// List the keys (their names and first characters, never the keys), one per line.
    List,
    /// Revoke a key: requests made with it are refused from now on.
    Revoke {
        /// The name it was made with.
        #[arg(long)]
        name: String,
    },
}

/// Runs a `server keys` command, writing what it has to say to `out`.
///
/// # Errors
/// A bad or unknown name, or the database failed.
pub async fn keys(
    db: &DatabaseConnection,
    command: KeysCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { name } => {
            let key = api_keys::create(db, &name).await?;
            writeln!(
                out,
                "Made the API key {name:?}. It is shown this once: keep it where the \
                 marketplace keeps its secrets, and send it as `Authorization: Bearer <key>`."
            )?;
            writeln!(out, "{key}")?;
        }
        KeysCommand::List => {
            let keys = api_keys::list(db).await?;
            if keys.is_empty() {
                writeln!(
                    out,
                    "No API keys yet: make one with `server keys create --name NAME`."
                )?;
            }
            for key in keys {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                writeln!(
                    out,
                    "{}\t{}…\tcreated {}\t{state}",
                    key.name,
                    key.shown,
                    key.created_at.to_rfc3339()
                )?;
            }
        }
        KeysCommand::Revoke { name } => {
            api_keys::revoke(db, &name).await?;
            writeln!(
                out,
                "Revoked the API key {name:?}: requests made with it are refused from now on."
            )?;
        }
    }
    out.flush().context("failed to write the output")
}
