//! The administration commands of the server binary: `server keys create|list|revoke` and
//! `server webhooks add|list|remove|rotate`.
//!
//! They open the same database as the server (`DATABASE_URL`), bring its schema up to date as
//! the server would, and change it directly: a running server reads keys from the database at
//! every request, so what these commands do counts at once, without a restart.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use sea_orm::DatabaseConnection;

use app::integration::{
    api_keys,
    webhooks::{self, UrlRules},
};

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

/// `server webhooks …`: the endpoints the event log is posted to.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint and print its signing secret (`whsec_…`), once, alone on the last line.
    /// It receives the events from now on.
    Add {
        /// Where to post: https (http too in development).
        #[arg(long)]
        url: String,
        /// The event types to send, comma-separated (conversation.created, message.created,
        /// message.seen, message.unseen); all of them if not given.
        #[arg(long)]
        events: Option<String>,
    },
    /// List the endpoints (never their secrets), one per line.
    List,
    /// Remove an endpoint; nothing more is sent to it.
    Remove {
        #[arg(long)]
        url: String,
    },
    /// Give an endpoint a new secret, printed alone on the last line. Deliveries carry a
    /// signature with the old one too for a day, while the receiver switches; a disabled
    /// endpoint is enabled again.
    Rotate {
        #[arg(long)]
        url: String,
    },
}

/// Runs a `server webhooks` command, writing what it has to say to `out`.
///
/// # Errors
/// A refused URL, an unknown event type or endpoint, or the database failed.
pub async fn webhooks(
    db: &DatabaseConnection,
    command: WebhooksCommand,
    rules: UrlRules,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Add { url, events } => {
            let events = webhooks::parse_events(events.as_deref())?;
            let secret = webhooks::add(db, &url, &events, rules).await?;
            writeln!(
                out,
                "Added the endpoint {url} ({events}). Its signing secret is shown this once: \
                 verify each delivery's webhook-signature with it."
            )?;
            writeln!(out, "{secret}")?;
        }
        WebhooksCommand::List => {
            let endpoints = webhooks::list(db).await?;
            if endpoints.is_empty() {
                writeln!(
                    out,
                    "No webhook endpoints yet: add one with `server webhooks add --url URL`."
                )?;
            }
            for endpoint in endpoints {
                let state = match endpoint.disabled_at {
                    Some(at) => format!("disabled {} (the receiver answered 410)", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                writeln!(
                    out,
                    "{}\t{}\tadded {}\t{state}",
                    endpoint.url,
                    endpoint.events,
                    endpoint.created_at.to_rfc3339()
                )?;
            }
        }
        WebhooksCommand::Remove { url } => {
            webhooks::remove(db, &url).await?;
            writeln!(
                out,
                "Removed the endpoint {url}: nothing more is sent to it."
            )?;
        }
        WebhooksCommand::Rotate { url } => {
            let secret = webhooks::rotate(db, &url).await?;
            writeln!(
                out,
                "The endpoint {url} has a new signing secret; deliveries are signed with the old \
                 one too for a day."
            )?;
            writeln!(out, "{secret}")?;
        }
    }
    out.flush().context("failed to write the output")
}
