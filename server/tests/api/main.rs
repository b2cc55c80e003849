//! Integration tests: each starts the real Parley on port 0 against a fresh database and talks
//! to it over real HTTP and WebSocket connections. Every behavioural test runs twice, on
//! PostgreSQL and on SQLite (see `for_each_db!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that can't go on should fail loudly"
)]

mod helpers;
#[allow(
    dead_code,
    reason = "shared with the fault harness, which uses all of it"
)]
#[path = "../common/server_process.rs"]
mod server_process;
#[path = "../common/tcp_proxy.rs"]
mod tcp_proxy;
// The load benchmark's simulated people and scenarios, run small by `load`.
#[path = "../../benches/load/driver.rs"]
mod driver;
#[allow(
    dead_code,
    reason = "the history scenario needs a large table: scripts/bench runs it"
)]
#[path = "../../benches/load/scenarios.rs"]
mod scenarios;

mod access;
mod accounts;
mod assets;
mod bad_input;
mod compression;
mod connections;
mod conversations;
mod deploy;
mod files;
mod headers;
mod health;
mod history;
mod hostile;
mod hosts;
mod https;
mod instances;
mod limits;
mod live;
mod load;
mod observability;
mod pages;
mod passwords;
mod presence;
mod receipts;
mod server_api;
mod sso;
mod webhooks;
