//! The webhook worker: fans the event log out to the endpoints, claims what is due, posts it
//! signed the Standard Webhooks way, and records each outcome
//! (`app::integration::webhooks` keeps the rows and the rules).
//!
//! Every instance runs one; the claims keep them from sending the same delivery at once. A
//! delivery is a `POST` of the event's JSON with `webhook-id` (the event's id, the same on
//! every retry), `webhook-timestamp` and `webhook-signature`; redirects are not followed, and
//! an answer must come within [`TIMEOUT`]. When private addresses are not allowed, host names
//! are resolved here and refused if they point at one (so a public name can't be turned to a
//! machine on the private network).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::{StreamExt, stream};
use reqwest::{
    StatusCode,
    dns::{Addrs, Name, Resolve, Resolving},
    header,
};
use sea_orm::DatabaseConnection;

use app::integration::{
    events,
    webhooks::{self, Attempt, Claimed, UrlRules},
};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim keeps a delivery from other workers: well over [`TIMEOUT`].
const LEASE: Duration = Duration::from_secs(60);
/// How often the worker looks for work when it found none.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The longest between two looks for unseen messages.
const UNSEEN_SCAN_EVERY: Duration = Duration::from_secs(10);
/// Deliveries claimed at once, and sent at once: enough for a thousand events a second to a
/// local receiver (docs/performance.md).
const BATCH: u64 = 256;
const IN_FLIGHT: usize = 32;

/// What the worker needs.
#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    client: reqwest::Client,
    /// Multiplies the schedule's waits (1 but in tests).
    retry_scale: f64,
    /// How long after it was sent an unseen message is reported.
    unseen_after: Duration,
}

impl Worker {
    /// A worker on `db` that sends to endpoints the `rules` allow.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(
        db: DatabaseConnection,
        rules: UrlRules,
        retry_scale: f64,
        unseen_after: Duration,
    ) -> anyhow::Result<Self> {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("Parley-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !rules.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            db,
            client: client.build()?,
            retry_scale,
            unseen_after,
        })
    }

    /// Works until the task is aborted. Unseen messages are looked for a few times per
    /// `unseen_after` (at most every ten seconds), deliveries all the time.
    pub async fn run(self) {
        let scan_every =
            (self.unseen_after / 4).clamp(Duration::from_millis(100), UNSEEN_SCAN_EVERY);
        let mut scanned = tokio::time::Instant::now();
        loop {
            if scanned.elapsed() >= scan_every {
                scanned = tokio::time::Instant::now();
                if let Err(error) = events::report_unseen(&self.db, self.unseen_after).await {
                    tracing::warn!(%error, "could not look for unseen messages");
                }
            }
            match self.round().await {
                Ok(0) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the webhook worker failed a round; trying again");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// One round: fan out, claim, send, record. Answers how many deliveries it attempted.
    /// The deliveries that went through are recorded together, one statement per status
    /// code (the common case costs one write, not one per delivery); the others one by one,
    /// each with its own retry time.
    ///
    /// # Errors
    /// The database failed.
    pub async fn round(&self) -> Result<usize, sea_orm::DbErr> {
        webhooks::fan_out(&self.db).await?;
        let claimed = webhooks::claim(&self.db, BATCH, LEASE).await?;
        let attempted = claimed.len();
        let outcomes: Vec<(Claimed, Attempt)> = stream::iter(claimed)
            .map(|claimed| async move {
                let attempt = self.send(&claimed).await;
                (claimed, attempt)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut delivered: std::collections::BTreeMap<u16, Vec<i64>> = Default::default();
        for (claimed, attempt) in outcomes {
            match attempt {
                Attempt::Delivered { status } => {
                    delivered
                        .entry(status)
                        .or_default()
                        .push(claimed.delivery_id);
                }
                other => {
                    let factor = self.retry_scale * (0.9 + 0.2 * fastrand::f64());
                    webhooks::record(&self.db, &claimed, other, factor).await?;
                }
            }
        }
        for (status, ids) in delivered {
            webhooks::record_delivered(&self.db, &ids, status).await?;
        }
        Ok(attempted)
    }

    /// Posts one delivery and says how it went.
    async fn send(&self, claimed: &Claimed) -> Attempt {
        let body = match serde_json::to_string(&claimed.event) {
            Ok(body) => body,
            Err(error) => {
                return Attempt::Retry {
                    status: None,
                    error: error.to_string(),
                    retry_after: None,
                };
            }
        };
        let timestamp = chrono::Utc::now().timestamp();
        let secrets: Vec<&str> = claimed.secrets.iter().map(String::as_str).collect();
        let signature = webhooks::signature(&secrets, &claimed.event.id, timestamp, &body);
        let sent = self
            .client
            .post(&claimed.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &claimed.event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let error = if error.is_timeout() {
                    format!("no answer within {} s", TIMEOUT.as_secs())
                } else {
                    error_chain(&error)
                };
                return Attempt::Retry {
                    status: None,
                    error,
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        match status {
            status if status.is_success() => Attempt::Delivered {
                status: status.as_u16(),
            },
            StatusCode::GONE => Attempt::Gone,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                status: Some(status.as_u16()),
                error: format!("the receiver answered {status}"),
                retry_after: response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            status if status.is_server_error() => Attempt::Retry {
                status: Some(status.as_u16()),
                error: format!("the receiver answered {status}"),
                retry_after: None,
            },
            status => Attempt::Refused {
                status: status.as_u16(),
            },
        }
    }
}

/// An error with its causes, which reqwest keeps apart ("error sending request: connection
/// refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves host names, and keeps only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| webhooks::is_public(address.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (PARLEY_WEBHOOK_ALLOW_PRIVATE)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}
