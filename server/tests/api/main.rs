//! Integration tests: each starts the real Parley on port 0 against a fresh database and talks
//! to it over real HTTP and WebSocket connections. Every behavioural test runs twice, on
//! PostgreSQL and on SQLite (see `for_each_db!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that can't go on should fail loudly"
)]

mod helpers;
#[path = "../common/tcp_proxy.rs"]
mod tcp_proxy;

mod access;
mod accounts;
mod bad_input;
mod conversations;
mod deploy;
mod files;
mod headers;
mod health;
mod history;
mod hostile;
mod https;
mod instances;
mod limits;
mod live;
mod passwords;
mod presence;
mod receipts;
