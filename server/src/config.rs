//! [`Config`]: every setting the server reads, once, at start-up.
//!
//! Settings come from environment variables (the README lists them with their defaults). The
//! defaults run Parley on a local SQLite file with no set-up at all; production sets at least
//! `DATABASE_URL` and `PARLEY_PUBLIC_URL`.

use std::{
    env,
    fmt::Display,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    ops::RangeInclusive,
    path::PathBuf,
    str::FromStr,
};

use app::{
    integration::{
        cards::CardRules,
        sso::{self, SsoKeys},
        webhooks::UrlRules,
    },
    limits::Limits,
    uploads::{FileKind, UploadRules},
};
use leptos::config::{LeptosOptions, get_configuration};

use crate::tls::TlsSource;

/// The database used when `DATABASE_URL` is not set: a file next to where the server runs,
/// created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://parley.db?mode=rwc";
/// Days a session lasts without being used, when `PARLEY_SESSION_IDLE_DAYS` is not set.
pub const DEFAULT_SESSION_IDLE_DAYS: i64 = 14;

/// Whether Parley runs for development (anything goes, with warnings) or in production (an
/// unsafe configuration refuses to start; see `deploy_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

/// The server's settings.
#[derive(Clone)]
pub struct Config {
    /// Development or production (`PARLEY_MODE`).
    pub mode: Mode,
    /// Terminate TLS in the server, with this certificate.
    pub tls: Option<TlsSource>,
    /// With TLS: also listen for plain HTTP here, only to redirect to HTTPS.
    pub http_redirect_addr: Option<SocketAddr>,
    /// `sqlite://…` or `postgres://…`. May hold a password, so `Debug` hides it.
    pub database_url: String,
    /// Leptos' settings: where the built site is and the address to listen on.
    pub leptos_options: LeptosOptions,
    /// The address users reach Parley at (`https://chat.example.com`), if known. When it is
    /// `https`, session cookies are marked `Secure`; it is also an allowed `Origin`.
    pub public_url: Option<String>,
    /// More origins allowed to make state-changing requests and open the WebSocket (the
    /// marketplace's site, when it embeds Parley). Same-origin requests are always allowed.
    pub allowed_origins: Vec<String>,
    /// `PARLEY_ALLOWED_HOSTS`: host names served besides the public address's (lower case,
    /// no port; `.example.com` also matches its subdomains). See [`Self::host_allow_list`].
    pub allowed_hosts: Vec<String>,
    /// Sessions end after this many days without a request.
    pub session_idle_days: i64,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Rate limits.
    pub limits: Limits,
    /// Attachments: storage and limits.
    pub files: FilesConfig,
    /// How dead WebSocket connections are found (the defaults; tests shorten it).
    pub heartbeat: crate::ws::Heartbeat,
    /// `REDIS_URL`: with it, live events go through Redis pub/sub, so that several instances
    /// behind a load balancer reach each other's sockets. May hold a password.
    pub redis_url: Option<String>,
    /// `PARLEY_REDIS_PREFIX` (default `parley`): the start of every Redis key and channel name,
    /// so that several deployments can share one Redis.
    pub redis_prefix: String,
    /// `PARLEY_WRITER_LANES` (PostgreSQL only, default 2): how many transactions of messages
    /// are written at once (see `app::messages::writer`). More lanes take more of the
    /// database's cores at full load; fewer make bigger batches. SQLite always has one.
    pub writer_lanes: usize,
    /// `PARLEY_METRICS_TOKEN`: the bearer token `GET /metrics` asks for. Without it, metrics
    /// are answered only to a client on this machine that did not come through a proxy.
    pub metrics_token: Option<String>,
    /// `PARLEY_REDIS_CA_FILE`: with a `rediss://` `REDIS_URL`, the PEM certificate(s) Redis's
    /// certificate must chain to (a private CA); without it, the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// `PARLEY_SOCKETS_PER_USER` (default 20): WebSockets one user keeps on an instance; one
    /// more closes their oldest.
    pub sockets_per_user: usize,
    /// `PARLEY_CONNECTIONS_PER_ADDRESS` (default 128): open connections (WebSockets included)
    /// one client address may hold; the trusted proxies are not counted.
    pub connections_per_address: usize,
    /// `PARLEY_HEADER_TIMEOUT_SECS` (default 10): how long a connection may take to send a
    /// request's headers (the first one's TLS handshake included), and how long a kept-alive
    /// connection may sit idle between requests.
    pub header_timeout: std::time::Duration,
    /// With Redis: how long an instance counts as alive after its last heartbeat (it beats
    /// three times as often), and so how soon the users of a crashed instance go offline. Not
    /// read from the environment; tests shorten it.
    pub presence_ttl: std::time::Duration,
    /// The keys the marketplace's sign-in tokens are checked against: the Ed25519 public keys
    /// in `PARLEY_SSO_PUBLIC_KEY_FILE` and `PARLEY_SSO_PUBLIC_KEY_PREVIOUS_FILE`, the secrets
    /// `PARLEY_SSO_SECRET` and `PARLEY_SSO_SECRET_PREVIOUS`, and the issuer tokens must name
    /// (`PARLEY_SSO_ISSUER`, optional). Without any key, `/sso` is off.
    pub sso: SsoKeys,
    /// Webhook endpoints: only https in production, and never a loopback or private address
    /// there unless `PARLEY_WEBHOOK_ALLOW_PRIVATE=true`; anything in development, for local
    /// receivers.
    pub webhooks: UrlRules,
    /// `PARLEY_UNSEEN_AFTER_MINUTES` (default 15, 1 to 1440): a message still not seen this
    /// long after it was sent gets a `message.unseen` event.
    pub unseen_after: std::time::Duration,
    /// How long the webhook worker waits between attempts, as a share of the schedule's
    /// waits (`app::integration::webhooks::SCHEDULE`): 1 but in tests.
    pub webhook_retry_scale: f64,
    /// `PARLEY_LOCAL_ACCOUNTS` (default true): Parley's own registration and password sign-in.
    /// A marketplace that wants its accounts only turns it off; people then arrive through
    /// `/sso`.
    pub local_accounts: bool,
    /// `PARLEY_CONTEXT_IMAGE_ORIGINS` (comma-separated origins, default none): where the
    /// pictures of product and order cards may come from; they join the pages' `img-src`.
    /// Card links and pictures must be https in production.
    pub cards: CardRules,
}

/// WebSockets one user keeps on one instance when `PARLEY_SOCKETS_PER_USER` is not set: far
/// more tabs and devices than a person uses at once.
pub const DEFAULT_SOCKETS_PER_USER: usize = 20;
/// Open connections per client address when `PARLEY_CONNECTIONS_PER_ADDRESS` is not set: a
/// browser opens about six per site plus one per tab's WebSocket, so this leaves room for a
/// busy office behind one address.
pub const DEFAULT_CONNECTIONS_PER_ADDRESS: usize = 128;
/// Seconds for request headers when `PARLEY_HEADER_TIMEOUT_SECS` is not set: enough for a
/// TLS handshake and a request over a poor mobile network, far too little to hold a
/// connection open by trickling bytes.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;

/// Message-writing lanes on PostgreSQL when `PARLEY_WRITER_LANES` is not set: on this 2-core
/// machine two gave the most messages per second (docs/performance.md).
pub const DEFAULT_WRITER_LANES: usize = 2;

/// Minutes before an unseen message is reported (`message.unseen`) when
/// `PARLEY_UNSEEN_AFTER_MINUTES` is not set.
pub const DEFAULT_UNSEEN_AFTER_MINUTES: u64 = 15;

/// The Redis key prefix when `PARLEY_REDIS_PREFIX` is not set.
pub const DEFAULT_REDIS_PREFIX: &str = "parley";

/// Where attachments are kept and what may be uploaded.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Uploads in progress live here (`tmp/`), and, without `storage_url`, stored files too
    /// (`files/`). `PARLEY_DATA_DIR`, default `data`.
    pub data_dir: PathBuf,
    /// An object-store URL (`s3://bucket/prefix`, credentials from the usual `AWS_*`
    /// variables) to keep files in instead of `data_dir`. `PARLEY_STORAGE_URL`.
    pub storage_url: Option<String>,
    /// What may be uploaded: `PARLEY_UPLOAD_MAX_MB` (default 25), `PARLEY_UPLOAD_TYPES`
    /// (default every kind) and `PARLEY_STORAGE_QUOTA_MB`, what one person's files may take
    /// together (default 1024).
    pub rules: UploadRules,
    /// Uploads not sent in a message within this many hours are deleted.
    /// `PARLEY_UNSENT_UPLOAD_HOURS`, default 24.
    pub unsent_upload_hours: u32,
}

impl FilesConfig {
    /// The defaults, keeping files under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            storage_url: None,
            rules: UploadRules::default(),
            unsent_upload_hours: 24,
        }
    }

    fn from_env() -> Result<Self, ConfigError> {
        let defaults =
            Self::new(optional("PARLEY_DATA_DIR").map_or_else(|| "data".into(), PathBuf::from));
        const MB: u64 = 1024 * 1024;
        let max_bytes = number_in(
            "PARLEY_UPLOAD_MAX_MB",
            "megabytes",
            1..=1024,
            defaults.rules.max_bytes / MB,
        )? * MB;
        let kinds = match optional("PARLEY_UPLOAD_TYPES") {
            None => defaults.rules.kinds,
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| {
                    FileKind::from_name(name).ok_or_else(|| ConfigError::Invalid {
                        name: "PARLEY_UPLOAD_TYPES",
                        reason: format!(
                            "`{name}` is not one of {}",
                            FileKind::ALL.map(FileKind::name).join(", ")
                        ),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let unsent_upload_hours = number_in(
            "PARLEY_UNSENT_UPLOAD_HOURS",
            "hours",
            1..=24 * 30,
            defaults.unsent_upload_hours,
        )?;
        let quota_bytes = number_in(
            "PARLEY_STORAGE_QUOTA_MB",
            "megabytes",
            1..=16 * 1024 * 1024,
            defaults.rules.quota_bytes / MB,
        )? * MB;
        Ok(Self {
            storage_url: optional("PARLEY_STORAGE_URL"),
            rules: UploadRules {
                max_bytes,
                kinds,
                quota_bytes,
                used_bytes: 0,
            },
            unsent_upload_hours,
            data_dir: defaults.data_dir,
        })
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads the environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first variable that can't be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        let leptos_options = get_configuration(None)
            .map_err(|error| ConfigError::Invalid {
                name: "LEPTOS_*",
                reason: error.to_string(),
            })?
            .leptos_options;
        let public_url = optional("PARLEY_PUBLIC_URL")
            .map(|url| parse_origin("PARLEY_PUBLIC_URL", &url))
            .transpose()?;
        let allowed_origins = origins("PARLEY_ALLOWED_ORIGINS")?;
        let allowed_hosts = optional("PARLEY_ALLOWED_HOSTS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| parse_host("PARLEY_ALLOWED_HOSTS", h))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let session_idle_days = number_in(
            "PARLEY_SESSION_IDLE_DAYS",
            "days",
            1..=365,
            DEFAULT_SESSION_IDLE_DAYS,
        )?;
        let trusted_proxies = optional("PARLEY_TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse::<IpAddr>().map_err(|_| ConfigError::Invalid {
                            name: "PARLEY_TRUSTED_PROXIES",
                            reason: format!("`{p}` is not an IP address"),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let mode = mode()?;
        let tls = match (
            optional("PARLEY_TLS_CERT"),
            optional("PARLEY_TLS_KEY"),
            flag("PARLEY_TLS_SELF_SIGNED")?,
        ) {
            (Some(cert), Some(key), false) => Some(TlsSource::Files {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None, true) => Some(TlsSource::SelfSigned),
            (None, None, false) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "PARLEY_TLS_*",
                    reason: "set PARLEY_TLS_CERT and PARLEY_TLS_KEY together, or \
                             PARLEY_TLS_SELF_SIGNED=true alone"
                        .into(),
                });
            }
        };
        let http_redirect_addr = optional("PARLEY_HTTP_REDIRECT_ADDR")
            .map(|addr| {
                addr.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::Invalid {
                        name: "PARLEY_HTTP_REDIRECT_ADDR",
                        reason: format!("`{addr}` is not an address like 0.0.0.0:80"),
                    })
            })
            .transpose()?;
        let defaults = Limits::default();
        let limits = Limits {
            logins_per_minute: quota("PARLEY_LOGINS_PER_MINUTE", defaults.logins_per_minute)?,
            registrations_per_hour: quota(
                "PARLEY_REGISTRATIONS_PER_HOUR",
                defaults.registrations_per_hour,
            )?,
            messages_per_minute: quota("PARLEY_MESSAGES_PER_MINUTE", defaults.messages_per_minute)?,
            typing_per_minute: defaults.typing_per_minute,
            uploads_per_minute: quota("PARLEY_UPLOADS_PER_MINUTE", defaults.uploads_per_minute)?,
            receipts_per_minute: defaults.receipts_per_minute,
            api_requests_per_minute: quota(
                "PARLEY_API_REQUESTS_PER_MINUTE",
                defaults.api_requests_per_minute,
            )?,
        };
        Ok(Self {
            mode,
            tls,
            http_redirect_addr,
            database_url: database_url(),
            leptos_options,
            public_url,
            allowed_origins,
            allowed_hosts,
            session_idle_days,
            trusted_proxies,
            limits,
            files: FilesConfig::from_env()?,
            heartbeat: crate::ws::Heartbeat::default(),
            redis_url: optional("REDIS_URL"),
            redis_prefix: optional("PARLEY_REDIS_PREFIX")
                .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned()),
            writer_lanes: number_in("PARLEY_WRITER_LANES", "lanes", 1..=32, DEFAULT_WRITER_LANES)?,
            metrics_token: optional("PARLEY_METRICS_TOKEN"),
            redis_ca_file: optional("PARLEY_REDIS_CA_FILE").map(PathBuf::from),
            sockets_per_user: number_in(
                "PARLEY_SOCKETS_PER_USER",
                "sockets",
                1..=1_000,
                DEFAULT_SOCKETS_PER_USER,
            )?,
            connections_per_address: number_in(
                "PARLEY_CONNECTIONS_PER_ADDRESS",
                "connections",
                1..=100_000,
                DEFAULT_CONNECTIONS_PER_ADDRESS,
            )?,
            header_timeout: std::time::Duration::from_secs(number_in(
                "PARLEY_HEADER_TIMEOUT_SECS",
                "seconds",
                1..=300,
                DEFAULT_HEADER_TIMEOUT_SECS,
            )?),
            presence_ttl: crate::realtime::redis::DEFAULT_PRESENCE_TTL,
            sso: sso_keys()?,
            webhooks: webhook_rules()?,
            webhook_retry_scale: 1.0,
            unseen_after: std::time::Duration::from_secs(
                60 * number_in(
                    "PARLEY_UNSEEN_AFTER_MINUTES",
                    "minutes",
                    1..=1440,
                    DEFAULT_UNSEEN_AFTER_MINUTES,
                )?,
            ),
            local_accounts: match optional("PARLEY_LOCAL_ACCOUNTS") {
                None => true,
                Some(_) => flag("PARLEY_LOCAL_ACCOUNTS")?,
            },
            cards: CardRules {
                https_only: mode == Mode::Production,
                image_origins: origins("PARLEY_CONTEXT_IMAGE_ORIGINS")?,
            },
        })
    }

    /// A configuration for tests: the given database, port 0, no site files.
    pub fn for_tests(database_url: String) -> Self {
        let leptos_options = LeptosOptions::builder()
            .output_name("parley")
            .site_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
            .build();
        Self {
            mode: Mode::Development,
            tls: None,
            http_redirect_addr: None,
            database_url,
            leptos_options,
            public_url: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            session_idle_days: DEFAULT_SESSION_IDLE_DAYS,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            // Tests that store files give each app its own directory.
            files: FilesConfig::new(std::env::temp_dir().join("parley-tests")),
            heartbeat: crate::ws::Heartbeat::default(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            writer_lanes: DEFAULT_WRITER_LANES,
            metrics_token: None,
            redis_ca_file: None,
            sockets_per_user: DEFAULT_SOCKETS_PER_USER,
            connections_per_address: DEFAULT_CONNECTIONS_PER_ADDRESS,
            header_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            presence_ttl: crate::realtime::redis::DEFAULT_PRESENCE_TTL,
            sso: SsoKeys::default(),
            webhooks: UrlRules {
                https_only: false,
                allow_private: true,
            },
            webhook_retry_scale: 1.0,
            unseen_after: std::time::Duration::from_secs(60 * DEFAULT_UNSEEN_AFTER_MINUTES),
            local_accounts: true,
            cards: CardRules::default(),
        }
    }

    /// Where to listen.
    pub fn listen_addr(&self) -> SocketAddr {
        self.leptos_options.site_addr
    }

    /// Whether users reach Parley over HTTPS (it terminates TLS, or its public address is
    /// https): cookies then only travel over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.tls.is_some() || self.https_origin().is_some()
    }

    /// The public address, if it is https.
    pub fn https_origin(&self) -> Option<String> {
        self.public_url
            .clone()
            .filter(|url| url.starts_with("https://"))
    }

    /// The host names requests may be for (Django's `ALLOWED_HOSTS`): the public address's,
    /// then `PARLEY_ALLOWED_HOSTS`. Empty means every host is served (development without a
    /// public address); production requires at least one (`deploy_check`).
    pub fn host_allow_list(&self) -> Vec<String> {
        self.public_url
            .as_deref()
            .and_then(|url| url.split_once("://"))
            .map(|(_, authority)| crate::http::host::without_port(authority).to_owned())
            .into_iter()
            .chain(self.allowed_hosts.iter().cloned())
            .collect()
    }

    /// Every origin allowed besides the request's own.
    pub fn trusted_origins(&self) -> Vec<String> {
        self.public_url
            .iter()
            .chain(&self.allowed_origins)
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("tls", &self.tls)
            .field("http_redirect_addr", &self.http_redirect_addr)
            .field("database_url", &"[hidden]")
            .field("listen_addr", &self.listen_addr())
            .field("public_url", &self.public_url)
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("session_idle_days", &self.session_idle_days)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("limits", &self.limits)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[hidden]"))
            .field("redis_prefix", &self.redis_prefix)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[hidden]"),
            )
            .field("redis_ca_file", &self.redis_ca_file)
            .field("sockets_per_user", &self.sockets_per_user)
            .field("connections_per_address", &self.connections_per_address)
            .field("header_timeout", &self.header_timeout)
            .field("sso", &self.sso)
            .field("webhooks", &self.webhooks)
            .field("local_accounts", &self.local_accounts)
            .field("cards", &self.cards)
            .finish()
    }
}

/// `true`/`false` (or `1`/`0`) from the environment; unset is `false`.
fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match optional(name).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("`{other}` is neither true nor false"),
        }),
    }
}

/// A whole number of `unit` within `range` from the environment, or `default` when unset.
fn number_in<T>(
    name: &'static str,
    unit: &str,
    range: RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    match optional(name) {
        None => Ok(default),
        Some(value) => parse_number_in(name, unit, &range, &value),
    }
}

/// `value` as a whole number of `unit` within `range`; the error names the variable.
fn parse_number_in<T>(
    name: &'static str,
    unit: &str,
    range: &RangeInclusive<T>,
    value: &str,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|number| range.contains(number))
        .ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!(
                "expected a whole number of {unit} from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

/// A positive whole number from the environment, or `default`.
fn quota(name: &'static str, default: NonZeroU32) -> Result<NonZeroU32, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("`{value}` is not a whole number above zero"),
        }),
    }
}

/// `PARLEY_MODE`: development unless it says production.
fn mode() -> Result<Mode, ConfigError> {
    match optional("PARLEY_MODE").as_deref() {
        None | Some("development") => Ok(Mode::Development),
        Some("production") => Ok(Mode::Production),
        Some(other) => Err(ConfigError::Invalid {
            name: "PARLEY_MODE",
            reason: format!("`{other}` is neither development nor production"),
        }),
    }
}

/// Which webhook endpoints are accepted (see [`Config::webhooks`]): what the server and
/// `server webhooks add` both apply.
///
/// # Errors
/// `PARLEY_MODE` or `PARLEY_WEBHOOK_ALLOW_PRIVATE` can't be read.
pub fn webhook_rules() -> Result<UrlRules, ConfigError> {
    let production = mode()? == Mode::Production;
    Ok(UrlRules {
        https_only: production,
        allow_private: !production || flag("PARLEY_WEBHOOK_ALLOW_PRIVATE")?,
    })
}

/// The comma-separated origins in variable `name` (none when it is unset).
fn origins(name: &'static str) -> Result<Vec<String>, ConfigError> {
    Ok(optional(name)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| parse_origin(name, o))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default())
}

/// The sign-in keys the environment names (see [`Config::sso`]), current first.
fn sso_keys() -> Result<SsoKeys, ConfigError> {
    let mut public_keys = Vec::new();
    for name in [
        "PARLEY_SSO_PUBLIC_KEY_FILE",
        "PARLEY_SSO_PUBLIC_KEY_PREVIOUS_FILE",
    ] {
        if let Some(path) = optional(name) {
            let pem = std::fs::read(&path).map_err(|error| ConfigError::Invalid {
                name,
                reason: format!("cannot read `{path}`: {error}"),
            })?;
            SsoKeys::new(std::slice::from_ref(&pem), &[], None).map_err(|error| {
                ConfigError::Invalid {
                    name,
                    reason: error.to_string(),
                }
            })?;
            public_keys.push(pem);
        }
    }
    let mut secrets = Vec::new();
    for name in ["PARLEY_SSO_SECRET", "PARLEY_SSO_SECRET_PREVIOUS"] {
        if let Some(secret) = optional(name) {
            if secret.len() < sso::SECRET_MIN_BYTES {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!(
                        "a shared secret is at least {} bytes",
                        sso::SECRET_MIN_BYTES
                    ),
                });
            }
            secrets.push(secret);
        }
    }
    SsoKeys::new(&public_keys, &secrets, optional("PARLEY_SSO_ISSUER")).map_err(|error| {
        ConfigError::Invalid {
            name: "PARLEY_SSO_*",
            reason: error.to_string(),
        }
    })
}

/// `DATABASE_URL`, or the zero-setup SQLite file: what the server and its administration
/// commands (`server keys …`) open.
pub fn database_url() -> String {
    optional("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

fn optional(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `scheme://host[:port]` in lower case, without a path or trailing slash.
fn parse_origin(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') && host != "*" => Ok(value),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("`{value}` is not an origin like https://chat.example.com"),
        }),
    }
}

/// A host name for the allow-list: lower case, without scheme or port; a leading `.` matches
/// the name's subdomains too. IPv6 addresses are written in brackets, as in a `Host` header.
fn parse_host(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let host = value.trim().to_ascii_lowercase();
    let bare = host.strip_prefix('.').unwrap_or(&host);
    let is_name = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let is_ipv6 = !host.starts_with('.')
        && host
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok());
    if is_name || is_ipv6 {
        Ok(host)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!(
                "`{value}` is not a host name like chat.example.com or .example.com (no scheme, \
                 no port)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_must_be_whole_and_in_range() {
        let lanes =
            |value| parse_number_in::<usize>("PARLEY_WRITER_LANES", "lanes", &(1..=32), value);
        assert_eq!(lanes(" 4 ").ok(), Some(4));
        assert_eq!(lanes("32").ok(), Some(32));
        for bad in ["0", "33", "-1", "2.5", "two"] {
            match lanes(bad) {
                Err(ConfigError::Invalid { name, reason }) => {
                    assert_eq!(name, "PARLEY_WRITER_LANES");
                    assert_eq!(reason, "expected a whole number of lanes from 1 to 32");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            parse_origin("X", "HTTPS://Chat.Example.com/").unwrap(),
            "https://chat.example.com"
        );
        assert!(parse_origin("X", "chat.example.com").is_err());
        assert!(parse_origin("X", "https://chat.example.com/path").is_err());
        assert!(parse_origin("X", "https://*").is_err());
    }

    #[test]
    fn allowed_hosts_are_names_without_ports() {
        assert_eq!(
            parse_host("X", " Chat.Example.com ").unwrap(),
            "chat.example.com"
        );
        assert_eq!(parse_host("X", ".example.com").unwrap(), ".example.com");
        assert_eq!(parse_host("X", "127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(parse_host("X", "[::1]").unwrap(), "[::1]");
        for bad in [
            "https://chat.example.com",
            "chat.example.com:443",
            "*",
            ".",
            "a..b",
            "[x]",
        ] {
            assert!(parse_host("X", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_host_allow_list_starts_with_the_public_address() {
        let mut config = Config::for_tests("sqlite::memory:".into());
        assert!(config.host_allow_list().is_empty());
        config.public_url = Some("https://chat.example.com:8443".into());
        config.allowed_hosts = vec![".shop.example".into()];
        assert_eq!(
            config.host_allow_list(),
            ["chat.example.com", ".shop.example"]
        );
    }

    #[test]
    fn cookies_are_secure_only_behind_https() {
        let mut config = Config::for_tests("sqlite::memory:".into());
        assert!(!config.secure_cookies());
        config.public_url = Some("https://chat.example.com".into());
        assert!(config.secure_cookies());
        assert_eq!(config.trusted_origins(), ["https://chat.example.com"]);
    }
}
