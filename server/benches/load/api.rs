//! The marketplace's side of the load: messages posted through the server API, and the
//! webhooks their `message.created` events become.
//!
//! - [`api`]: messages sent with `POST /api/v1/conversations/{id}/messages` at a fixed rate
//!   (spread over many conversations, as a marketplace's order updates and relayed messages
//!   are), every one of them heard by a local webhook receiver: messages the API took per
//!   second, its answer time, and the webhook lag (from the message's `created_at` to the
//!   receiver reading the delivery), with every message's event counted once.
//! - [`Receiver`]: that receiver, also started beside the chat's own scenarios
//!   (`--webhooks true`) to measure what the webhook worker costs them.
//!
//! The key and the endpoint are made in the server's database directly (as `server keys
//! create` and `server webhooks add` do), so the run needs `--database-url`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{Database, DatabaseConnection};
use serde_json::{Value, json};

use app::integration::{api_keys, webhooks};

use crate::{driver::Target, scenarios::percentile};

/// Requests to the API in flight at once, at most (a backend's connection pool).
const IN_FLIGHT: usize = 64;
/// How long to wait for the last webhooks after the last message was stored.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);

/// What one delivery told the receiver.
struct Arrival {
    /// Microseconds from the message's `created_at` to the receiver reading it.
    lag_us: u32,
}

#[derive(Default)]
struct Heard {
    /// By `webhook-id`: each event counted once.
    events: HashMap<String, Arrival>,
    /// Deliveries of an event already heard (at least once is allowed; counted, not hidden).
    duplicates: usize,
    /// Deliveries whose signature did not verify.
    forged: usize,
}

/// A webhook receiver on a loopback port that checks each delivery's signature and notes when
/// it arrived.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    secret: Arc<Mutex<Option<String>>>,
    heard: Arc<Mutex<Heard>>,
}

impl Receiver {
    pub(crate) async fn start() -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("receiver: {e}"))?;
        let receiver = Self {
            addr: listener.local_addr().map_err(|e| e.to_string())?,
            secret: Arc::default(),
            heard: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(take))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    /// Registers the receiver as an endpoint for `message.created` in Parley's database, and
    /// keeps its signing secret.
    pub(crate) async fn register(&self, db: &DatabaseConnection) -> Result<(), String> {
        let rules = webhooks::UrlRules {
            https_only: false,
            allow_private: true,
        };
        let url = format!("http://{}/hook", self.addr);
        let secret = webhooks::add(db, &url, "message.created", rules)
            .await
            .map_err(|e| format!("webhook endpoint: {e}"))?;
        *self.secret.lock().unwrap_or_else(PoisonError::into_inner) = Some(secret);
        Ok(())
    }

    /// Events heard so far.
    pub(crate) fn count(&self) -> usize {
        self.lock().events.len()
    }

    /// Waits until `expected` events have been heard or `within` has passed.
    pub(crate) async fn wait_for(&self, expected: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The lags heard, sorted, with the duplicate and forged counts.
    pub(crate) fn report(&self) -> WebhookReport {
        let heard = self.lock();
        let mut lags_us: Vec<u32> = heard.events.values().map(|a| a.lag_us).collect();
        lags_us.sort_unstable();
        WebhookReport {
            heard: heard.events.len(),
            lags_us,
            duplicates: heard.duplicates,
            forged: heard.forged,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the receiver heard.
pub(crate) struct WebhookReport {
    pub(crate) heard: usize,
    pub(crate) lags_us: Vec<u32>,
    pub(crate) duplicates: usize,
    pub(crate) forged: usize,
}

impl WebhookReport {
    pub(crate) fn lag_ms(&self, p: f64) -> f64 {
        percentile(&self.lags_us, p)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "heard": self.heard,
            "lag_ms": {"p50": self.lag_ms(50.0), "p99": self.lag_ms(99.0), "max": self.lag_ms(100.0)},
            "duplicates": self.duplicates,
            "forged": self.forged,
        })
    }
}

/// `POST /hook`: one delivery.
async fn take(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let read_at = Utc::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let secret = receiver
        .secret
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (Some(secret), Some(id), Some(stamp), Some(signatures)) = (
        secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return StatusCode::UNAUTHORIZED;
    };
    let mut heard = receiver.lock();
    if !signed(&secret, id, stamp, &body, signatures) {
        heard.forged += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let created_at = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| {
            event["data"]["message"]["created_at"]
                .as_str()
                .map(str::to_owned)
        })
        .and_then(|at| at.parse::<DateTime<Utc>>().ok());
    let Some(created_at) = created_at else {
        return StatusCode::BAD_REQUEST;
    };
    let lag_us = (read_at - created_at)
        .num_microseconds()
        .unwrap_or(0)
        .max(0);
    if heard.events.contains_key(id) {
        heard.duplicates += 1;
    } else {
        heard.events.insert(
            id.to_owned(),
            Arrival {
                lag_us: u32::try_from(lag_us).unwrap_or(u32::MAX),
            },
        );
    }
    StatusCode::NO_CONTENT
}

/// The Standard Webhooks check (docs/integration.md), without the clock: the run is short.
fn signed(secret: &str, id: &str, stamp: &str, body: &[u8], signatures: &str) -> bool {
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("whsec_")) else {
        return false;
    };
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|signature| {
            let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) else {
                return false;
            };
            mac.update(format!("{id}.{stamp}.").as_bytes());
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        })
}

/// What the `api` scenario measured.
pub(crate) struct ApiReport {
    pub(crate) conversations: usize,
    pub(crate) rate: f64,
    pub(crate) seconds: f64,
    pub(crate) sent: usize,
    pub(crate) stored: usize,
    pub(crate) failed: usize,
    /// Answer times of the posts, sorted, in microseconds.
    pub(crate) answer_us: Vec<u32>,
    pub(crate) webhooks: WebhookReport,
    pub(crate) errors: Vec<String>,
}

impl ApiReport {
    pub(crate) fn stored_per_second(&self) -> f64 {
        self.stored as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Messages stored whose webhook never came.
    pub(crate) fn lost(&self) -> usize {
        self.stored.saturating_sub(self.webhooks.heard)
    }
}

/// Makes an API key and registers the receiver, opens `conversations` conversations between
/// people made through the API, then posts `rate` messages a second over them (round robin)
/// for `seconds`, and waits for their webhooks.
pub(crate) async fn api(
    target: &Target,
    database_url: &str,
    prefix: &str,
    conversations: usize,
    rate: f64,
    seconds: u64,
) -> Result<ApiReport, String> {
    let db = Database::connect(database_url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let key = api_keys::create(&db, &format!("{prefix}bench"))
        .await
        .map_err(|e| format!("API key: {e}"))?;
    let receiver = Receiver::start().await?;
    receiver.register(&db).await?;
    let base = format!("http://{}/api/v1", target.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .map_err(|e| e.to_string())?;
    let call = |method: reqwest::Method, path: String, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };

    eprintln!(
        "api: making {} people and {conversations} conversations…",
        2 * conversations
    );
    let mut ids = Vec::with_capacity(conversations);
    for n in 0..conversations {
        let (seller, customer) = (format!("{prefix}s{n}"), format!("{prefix}c{n}"));
        for person in [&seller, &customer] {
            let answer = call(
                reqwest::Method::PUT,
                format!("/users/{person}"),
                json!({"name": person}),
            )
            .await
            .map_err(|e| e.to_string())?;
            if !answer.status().is_success() {
                return Err(format!("PUT /users: {}", answer.status()));
            }
        }
        let opened: Value = call(
            reqwest::Method::POST,
            "/conversations".to_owned(),
            json!({"participants": [seller, customer]}),
        )
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
        let id = opened["id"].as_i64().ok_or("no conversation id")?;
        ids.push((id, seller));
    }

    eprintln!("api: {rate} messages a second for {seconds} s…");
    let total = (rate * seconds as f64).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(f64::EPSILON));
    let started = Instant::now();
    let posts = stream::iter(0..total)
        .map(|n| {
            let (conversation, from) = &ids[n % ids.len()];
            let due = started + interval.mul_f64(n as f64);
            let request = call(
                reqwest::Method::POST,
                format!("/conversations/{conversation}/messages"),
                json!({"from": from, "body": format!("Order update number {n}")}),
            );
            async move {
                tokio::time::sleep_until(due.into()).await;
                let sent_at = Instant::now();
                let answer = request.await;
                let took = u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX);
                match answer {
                    Ok(answer) if answer.status() == StatusCode::CREATED => Ok(took),
                    Ok(answer) => Err(format!("answered {}", answer.status())),
                    Err(error) => Err(error.to_string()),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut answer_us = Vec::with_capacity(posts.len());
    let mut errors = Vec::new();
    for post in posts {
        match post {
            Ok(took) => answer_us.push(took),
            Err(error) => {
                if errors.len() < 10 {
                    errors.push(error);
                }
            }
        }
    }
    answer_us.sort_unstable();
    let stored = answer_us.len();
    eprintln!("api: {stored} stored; waiting for their webhooks…");
    receiver.wait_for(stored, DRAIN_WITHIN).await;
    // A moment more for duplicates, if any, to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(ApiReport {
        conversations,
        rate,
        seconds: elapsed,
        sent: total,
        stored,
        failed: total - stored,
        answer_us,
        webhooks: receiver.report(),
        errors,
    })
}
