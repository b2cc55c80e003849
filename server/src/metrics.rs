//! Prometheus metrics, served at `GET /metrics`.
//!
//! Code records through the [`metrics`] facade (`counter!`, `gauge!`, `histogram!`) with the
//! names below; the recorder is `metrics-exporter-prometheus`, installed once per process
//! ([`install`]) and rendered by [`serve`] in the Prometheus text format. Gauges that describe
//! a pool (database connections) are sampled when scraped rather than kept up to date on
//! every checkout.
//!
//! Who may read them: with `PARLEY_METRICS_TOKEN` set, a request carrying
//! `Authorization: Bearer <token>`; without it, only a client on this machine that did not
//! come through a proxy (a Prometheus agent beside the server). Anyone else gets the same 404
//! as any unknown path: counts of users and messages are the operator's business.

use std::{
    net::SocketAddr,
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;

/// Open WebSocket connections (gauge).
pub const CONNECTIONS: &str = "parley_websocket_connections";
/// Messages stored for the first time (counter; a resend of a stored message is not counted).
pub const MESSAGES_PERSISTED: &str = "parley_messages_persisted_total";
/// `message` frames written to recipients' sockets (counter).
pub const MESSAGES_DELIVERED: &str = "parley_messages_delivered_total";
/// From a `send` frame's arrival to its `ack` going out (histogram, seconds).
pub const SEND_TO_ACK: &str = "parley_send_ack_seconds";
/// From a stored message's publication to its frame going out on a recipient's socket, across
/// instances included (histogram, seconds).
pub const DELIVERY: &str = "parley_delivery_seconds";
/// Messages stored per database transaction by the group commit (histogram), and the time to
/// write and commit each batch (histogram, seconds).
pub use app::messages::writer::{COMMIT_DURATION, MESSAGES_PER_COMMIT};
/// Connections closed as soon as they were accepted, their client address having too many
/// open already (counter).
pub const CONNECTIONS_REFUSED: &str = "parley_connections_refused_total";
/// Events that could not be handed to the fan-out (counter).
pub const FANOUT_ERRORS: &str = "parley_fanout_errors_total";
/// HTTP requests answered, by status class (counter, label `status`: `2xx`, `4xx`…).
pub const HTTP_REQUESTS: &str = "parley_http_requests_total";
/// Time to answer an HTTP request (histogram, seconds; a WebSocket counts until its upgrade).
pub const HTTP_DURATION: &str = "parley_http_request_seconds";
/// Database connections, labels `pool` (`requests`, or `writer`: the message writer's own
/// pool on PostgreSQL) and `state` (`in_use` or `idle`) (gauge, sampled when scraped).
pub const DB_POOL: &str = "parley_db_pool_connections";
/// The most connections a database pool opens, label `pool` (gauge).
pub const DB_POOL_MAX: &str = "parley_db_pool_max_connections";
/// The process's resident memory (gauge, sampled when scraped; the name Prometheus' own
/// client libraries use).
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// Histogram buckets for latencies, in seconds: from half a millisecond to ten seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Buckets for the messages per commit.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often histograms are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder. A process has one global recorder, and tests build many
/// applications in one process, so it is installed once and shared.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(MESSAGES_PER_COMMIT.into()), &BATCH_BUCKETS)
                });
            let builder = match builder {
                Ok(builder) => builder,
                // The buckets are constants; this can't happen, and summaries would do.
                Err(error) => {
                    tracing::warn!(%error, "histogram buckets refused; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|error| tracing::warn!(%error, "no metrics upkeep thread"))
                .ok();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open WebSocket connections.");
    describe_counter!(MESSAGES_PERSISTED, "Messages stored for the first time.");
    describe_counter!(
        MESSAGES_DELIVERED,
        "Message frames written to recipients' sockets."
    );
    describe_histogram!(
        SEND_TO_ACK,
        Unit::Seconds,
        "From a send frame's arrival to its ack going out."
    );
    describe_histogram!(
        DELIVERY,
        Unit::Seconds,
        "From a stored message's publication to its frame going out to a recipient."
    );
    describe_histogram!(
        MESSAGES_PER_COMMIT,
        "Messages stored per database transaction (group commit)."
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time to write and commit a batch of messages."
    );
    describe_counter!(FANOUT_ERRORS, "Events the live fan-out could not take.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by status class.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request."
    );
    describe_gauge!(DB_POOL, "Database connections in use and idle.");
    describe_gauge!(DB_POOL_MAX, "The most connections the database pool opens.");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the server process."
    );
}

/// Records how long ago `since` was in `histogram`, in seconds (zero if the clock went back,
/// as it may between two instances).
pub fn record_since(histogram: &'static str, since: SystemTime) {
    let elapsed = SystemTime::now()
        .duration_since(since)
        .unwrap_or(Duration::ZERO);
    metrics::histogram!(histogram).record(elapsed.as_secs_f64());
}

/// What `/metrics` needs: the renderer, the pools to sample, and who may read.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub handle: PrometheusHandle,
    /// Each database pool with its `pool` label.
    pub pools: Vec<(&'static str, DatabaseConnection)>,
    /// `PARLEY_METRICS_TOKEN`, if set.
    pub token: Option<String>,
}

/// `GET /metrics`.
pub async fn serve(
    State(endpoint): State<MetricsEndpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !endpoint.allows(peer, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    for (name, db) in &endpoint.pools {
        sample_pool(name, db);
    }
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        endpoint.handle.render(),
    )
        .into_response()
}

impl MetricsEndpoint {
    fn allows(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        match &self.token {
            Some(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())),
            // A local proxy passing a visitor's request on says whom it is for.
            None => {
                peer.ip().is_loopback()
                    && !headers.contains_key("x-forwarded-for")
                    && !headers.contains_key("forwarded")
            }
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0_u8, |differs, (a, b)| differs | (a ^ b))
            == 0
}

/// The process's resident set size, from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kilobytes * 1024)
}

/// Samples a database pool's gauges, labelled `pool = name`.
fn sample_pool(name: &'static str, db: &DatabaseConnection) {
    let (size, idle, max) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        // Parley connects to nothing else.
        _ => return,
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!(DB_POOL, "pool" => name, "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!(DB_POOL, "pool" => name, "state" => "idle").set(f64::from(idle));
    metrics::gauge!(DB_POOL_MAX, "pool" => name).set(f64::from(max));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cres", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
