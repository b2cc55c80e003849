//! [`Application`]: everything between a [`Config`] and a listening server.
//!
//! `build` connects to the database, brings its schema up to date, assembles the router and
//! binds the listener (port 0 picks a free port, which the tests use); `run_until_stopped`
//! serves until the shutdown future resolves.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Extension, Router, middleware, routing::get};
use leptos_axum::{LeptosRoutes, generate_route_list};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tower_http::{services::ServeDir, trace::TraceLayer};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use app::{
    App,
    accounts::Backend,
    limits::RateLimits,
    messages::writer::MessageWriter,
    realtime::Realtime,
    security::{PagePolicy, TrustedProxies},
    shell,
    state::AppState,
};
use migrations::{Migrator, MigratorTrait};

use crate::{
    config::{Config, Mode},
    deploy_check::{self, Severity},
    files::{self, FileService},
    http::{
        api_body, api_status, api_v1, assets, compression, headers, health, host, origin, pages,
        panics, sso, transport,
    },
    listener::ConnectionGuard,
    metrics::{self, MetricsEndpoint},
    realtime::{local::LocalRealtime, redis::RedisRealtime},
    sessions::DbSessionStore,
    telemetry, tls, ws,
};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::TokioTimer;

/// The name of the session cookie over plain HTTP (development).
pub const SESSION_COOKIE: &str = "parley_session";
/// The name of the session cookie over HTTPS. The `__Host-` prefix makes browsers insist that
/// it is `Secure`, has `Path=/` and no `Domain`, so no sibling subdomain can set or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-parley_session";
/// How long shutdown waits for in-flight requests: after that the server exits regardless.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);
/// How often expired sessions are deleted from the database.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);
/// How often rate limiters forget clients that have been quiet long enough.
const LIMITS_FORGET_EVERY: Duration = Duration::from_secs(60);
/// How long shutdown waits for WebSocket connections to send their Close frames.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// A built, bound, not yet serving Parley.
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: DatabaseConnection,
    limits: Arc<RateLimits>,
    /// Set when Parley terminates TLS itself.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The plain-HTTP listener that only redirects to HTTPS, with its router.
    redirect: Option<(TcpListener, Router)>,
    /// Attachments' storage, for the clean-up of unsent uploads.
    files: FileService,
    unsent_upload_hours: u32,
    /// What every accepted connection passes (shared by both listeners, so a client's
    /// connections are counted together).
    guard: ConnectionGuard,
    header_timeout: Duration,
    /// For the tasks that run beside the server (the presence reaper).
    state: AppState,
    presence_ttl: Duration,
    /// Posts the event log to the webhook endpoints.
    webhooks: crate::webhooks::Worker,
}

impl Application {
    /// Connects, migrates, assembles and binds.
    ///
    /// # Errors
    /// The database is unreachable, a migration fails, or the address can't be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        check_configuration(&config)?;
        // rustls is built with two crypto providers in this tree; a client that names none
        // (the Redis TLS connection) uses the process default, chosen here: ring, which the
        // server's own TLS uses too. Already chosen (a second app in one test process) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = open_database(&config.database_url).await?;

        // Several instances share live events (and the per-user message limit) through
        // Redis; one needs nothing but itself.
        let (realtime, limits): (Arc<dyn Realtime>, RateLimits) = match &config.redis_url {
            Some(url) => {
                let redis = RedisRealtime::connect(
                    url,
                    &config.redis_prefix,
                    config.sockets_per_user,
                    config.redis_ca_file.as_deref(),
                    config.presence_ttl,
                )
                .await
                .context("failed to connect to Redis (REDIS_URL)")?;
                let limits = RateLimits::with_shared(config.limits, Arc::new(redis.quota()));
                (Arc::new(redis), limits)
            }
            None => (
                Arc::new(LocalRealtime::new().with_socket_cap(config.sockets_per_user)),
                RateLimits::new(config.limits),
            ),
        };
        let (messages, writer_pool) = message_writer(&config, &db).await?;
        let state = AppState {
            leptos_options: config.leptos_options.clone(),
            messages,
            db: db.clone(),
            realtime,
            page_policy: page_policy(&config),
            limits: Arc::new(limits),
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            upload_rules: Arc::new(config.files.rules.clone()),
            local_accounts: config.local_accounts,
            card_rules: Arc::new(config.cards.clone()),
        };
        let limits = state.limits.clone();
        let files = FileService::new(&config.files).context("failed to open file storage")?;
        let router = router(&config, state.clone(), writer_pool, files.clone())?;
        let tls = config
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()
            .context("failed to set up TLS")?;
        let listener = bind(config.listen_addr()).await?;
        let redirect = match (config.http_redirect_addr, &tls) {
            (Some(addr), Some(_)) => Some((
                bind(addr).await?,
                transport::redirect_router(
                    config.https_origin(),
                    local_port(&listener),
                    host::HostPolicy::new(config.host_allow_list()),
                ),
            )),
            _ => None,
        };
        let webhooks = crate::webhooks::Worker::new(
            db.clone(),
            config.webhooks,
            config.webhook_retry_scale,
            config.unseen_after,
        )
        .context("failed to set up webhook deliveries")?;
        Ok(Self {
            listener,
            router,
            db,
            limits,
            tls,
            redirect,
            files,
            unsent_upload_hours: config.files.unsent_upload_hours,
            guard: ConnectionGuard::new(
                config.connections_per_address,
                config.trusted_proxies.clone(),
                config.header_timeout,
            ),
            header_timeout: config.header_timeout,
            webhooks,
            state,
            presence_ttl: config.presence_ttl,
        })
    }

    /// The address of the plain-HTTP redirect listener, if there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address actually bound (the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes open WebSockets (code
    /// 1001, after the frame each is handling: a message being stored is stored and
    /// acknowledged) and returns once in-flight requests have finished, or after
    /// [`DRAIN_WITHIN`] (plus up to [`SOCKETS_CLOSE_WITHIN`] for the sockets) at most.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_sockets, signal) = watch::channel(false);
        let (done, mut all_done) = mpsc::channel::<()>(1);
        let sweeper =
            tokio::spawn(DbSessionStore::new(self.db.clone()).sweep_expired(SESSION_SWEEP_EVERY));
        let limits = self.limits.clone();
        let forgetter = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(LIMITS_FORGET_EVERY);
            loop {
                ticks.tick().await;
                limits.forget_idle();
            }
        });
        let events_sweeper = tokio::spawn(forget_old_events(self.db.clone()));
        let webhook_worker = tokio::spawn(self.webhooks.run());
        let cleaner = files::spawn_clean_up(
            self.db.clone(),
            self.files.storage().clone(),
            self.unsent_upload_hours,
        );
        // Another instance that crashed leaves its users "online": they are found within a
        // presence TTL or so of its last heartbeat.
        let reaper = ws::presence::spawn_reaper(self.state.clone(), self.presence_ttl / 3);
        let router = self.router.layer(Extension(ws::Shutdown { signal, done }));

        // Everything stops together: `stopping` fires once the shutdown future resolves.
        let (stopping_tx, stopping) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_sockets.send(true);
            let _ = stopping_tx.send(true);
        });
        let stopped = |mut stopping: watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        // One handle stops both listeners: new connections are refused at once, requests in
        // flight get up to DRAIN_WITHIN.
        let handle = axum_server::Handle::new();
        tokio::spawn({
            let handle = handle.clone();
            async move {
                stopped(stopping).await;
                handle.graceful_shutdown(Some(DRAIN_WITHIN));
            }
        });
        let redirect = match self.redirect {
            Some((listener, router)) => Some(tokio::spawn(serve_on(
                listener,
                router,
                self.guard.clone(),
                None,
                self.header_timeout,
                handle.clone(),
            ))),
            None => None,
        };
        serve_on(
            self.listener,
            router,
            self.guard,
            self.tls,
            self.header_timeout,
            handle,
        )
        .await?;
        if let Some(redirect) = redirect {
            redirect.abort();
        }
        sweeper.abort();
        events_sweeper.abort();
        webhook_worker.abort();
        forgetter.abort();
        cleaner.abort();
        reaper.abort();
        // The router and its copy of the sender are gone; each socket task holds one more, so
        // `recv` answers `None` once every connection has sent its Close frame.
        let _ = tokio::time::timeout(SOCKETS_CLOSE_WITHIN, all_done.recv()).await;
        Ok(())
    }
}

/// Forgets the events older than the log keeps (`app::integration::events::KEPT_FOR_DAYS`),
/// every [`SESSION_SWEEP_EVERY`], for as long as the server runs.
async fn forget_old_events(db: DatabaseConnection) {
    let mut ticks = tokio::time::interval(SESSION_SWEEP_EVERY);
    loop {
        ticks.tick().await;
        match app::integration::events::forget_old(&db).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot old events"),
            Err(error) => tracing::warn!(%error, "could not forget old events"),
        }
    }
}

/// How often an HTTP/2 connection is pinged, and how long an answer may take before it is
/// dropped: a peer whose network vanished does not keep its connection for ever.
const HTTP2_PING_EVERY: Duration = Duration::from_secs(20);
const HTTP2_PING_WITHIN: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` (over TLS when `tls` is given) until `handle` stops it:
/// connections pass the [`ConnectionGuard`], and request headers must arrive within
/// `header_timeout`, which also closes kept-alive HTTP/1.1 connections left idle that long.
async fn serve_on(
    listener: TcpListener,
    router: Router,
    guard: ConnectionGuard,
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: Duration,
    handle: axum_server::Handle<SocketAddr>,
) -> anyhow::Result<()> {
    // The peer's address reaches handlers as `ConnectInfo`, for rate limits.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut server =
        axum_server::from_tcp(listener.into_std().context("listener")?).context("listener")?;
    let http = server.http_builder();
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_PING_EVERY))
        .keep_alive_timeout(HTTP2_PING_WITHIN);
    let server = server.handle(handle);
    match tls {
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls))
                .handshake_timeout(header_timeout)
                .acceptor(guard);
            server.acceptor(acceptor).serve(service).await
        }
        None => server.acceptor(guard).serve(service).await,
    }
    .context("server error")
}

/// Logs every finding of the start-up check; in production, refuses to go on when any is an
/// error.
fn check_configuration(config: &Config) -> anyhow::Result<()> {
    let findings = deploy_check::deploy_check(config);
    for finding in &findings {
        match finding.severity {
            Severity::Error if config.mode == Mode::Production => {
                tracing::error!("configuration: {finding}");
            }
            _ => tracing::warn!("configuration: {finding}"),
        }
    }
    if deploy_check::refuses(config, &findings) {
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        anyhow::bail!(
            "unsafe configuration for production (PARLEY_MODE=production):\n  {}",
            errors.join("\n  ")
        );
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
}

fn local_port(listener: &TcpListener) -> u16 {
    listener.local_addr().map_or(443, |addr| addr.port())
}

/// Connects to the database at `url` and brings its schema up to date: what the server does
/// first, and what its administration commands (`server keys …`) do too.
///
/// # Errors
/// The database is unreachable, or a migration fails.
pub async fn open_database(url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = connect(url, |_| {}).await?;
    Migrator::up(&db, None)
        .await
        .context("failed to bring the database schema up to date")?;
    Ok(db)
}

/// Opens a connection pool, with `tune` applied to its options. SQLite gets a small pool: one
/// writer at a time is its nature, and more connections would only queue on its lock.
async fn connect(
    url: &str,
    tune: impl FnOnce(&mut ConnectOptions),
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        options.max_connections(4);
    }
    tune(&mut options);
    Database::connect(options)
        .await
        .context("failed to connect to the database (check DATABASE_URL)")
}

/// The message writer (group commit), and its pool when it has one of its own: on
/// PostgreSQL, one connection per lane, tuned for its statements
/// (`app::messages::writer::connect_options`). SQLite has one writer anyway, and the writer
/// shares the pool.
async fn message_writer(
    config: &Config,
    db: &DatabaseConnection,
) -> anyhow::Result<(MessageWriter, Option<DatabaseConnection>)> {
    if config.database_url.starts_with("sqlite:") {
        return Ok((MessageWriter::start(db, 1), None));
    }
    let lanes = config.writer_lanes;
    let writer_db = connect(&config.database_url, |options| {
        app::messages::writer::connect_options(options, lanes);
    })
    .await?;
    Ok((MessageWriter::start(&writer_db, lanes), Some(writer_db)))
}

/// The pages' Content-Security-Policy. Under `cargo leptos watch` pages also talk to its
/// live-reload socket, on another port.
fn page_policy(config: &Config) -> PagePolicy {
    let options = &config.leptos_options;
    let live_reload = std::env::var_os("LEPTOS_WATCH").map(|_| {
        let port = options.reload_external_port.unwrap_or(options.reload_port);
        format!("ws://*:{port}")
    });
    PagePolicy::new(
        &config.allowed_origins,
        &config.cards.image_origins,
        live_reload.as_slice(),
        config.secure_cookies(),
    )
}

/// The whole HTTP surface. Requests pass the layers from the bottom of this list up: tracing,
/// the host allow-list, HTTPS (HSTS, redirects), security headers, the panic catcher, the
/// cross-origin guard, the server-function body gate, the session, the page redirects, then
/// the route. The server API (`/api/v1`) joins below the cross-origin guard: it passes the
/// layers above it, none below.
fn router(
    config: &Config,
    state: AppState,
    writer_pool: Option<DatabaseConnection>,
    files: FileService,
) -> anyhow::Result<Router> {
    let session_layer = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(if config.secure_cookies() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies())
        // Save (and so renew) a signed-in session on every request: the expiry counts from
        // the last use, not from sign-in.
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(
            config.session_idle_days,
        )));
    let auth_layer =
        axum_login::AuthManagerLayerBuilder::new(Backend::new(state.db.clone()), session_layer)
            .build();
    let origin_policy = origin::OriginPolicy::new(config.trusted_origins());

    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    let metrics_route = Router::new()
        .route("/metrics", get(metrics::serve))
        .with_state(MetricsEndpoint {
            handle: metrics::install(),
            pools: std::iter::once(("requests", state.db.clone()))
                .chain(writer_pool.map(|db| ("writer", db)))
                .collect(),
            token: config.metrics_token.clone(),
        });
    // The site's bundle, served by tower-http itself (not through leptos_axum's fallback, which
    // drops the conditional headers a 304 answers).
    let options = &config.leptos_options;
    let pkg = ServeDir::new(Path::new(&*options.site_root).join(&*options.site_pkg_dir))
        .precompressed_br()
        .precompressed_gzip();
    let router = Router::new()
        // Also registers every server function under /api/ and provides `AppState` to them.
        .leptos_routes(&state, routes, move || shell(leptos_options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Reads error bodies back, so it must see them before they are compressed.
        .layer(middleware::from_fn(api_status::server_fn_status))
        // Only the routes above: pages and server functions.
        .layer(compression::layer())
        .route("/ws", get(ws::upgrade).layer(Extension(config.heartbeat)))
        .route("/conversations/{id}", get(pages::open_conversation))
        .route(
            sso::PATH,
            get(sso::sign_in_link)
                .post(sso::sign_in_form)
                .layer(Extension(Arc::new(config.sso.clone()))),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(metrics_route)
        .merge(files::router(files))
        .layer(middleware::from_fn_with_state(
            pages::PageRules {
                local_accounts: config.local_accounts,
            },
            pages::page_guard,
        ))
        .layer(auth_layer)
        .layer(middleware::from_fn(api_body::check_api_body))
        .layer(middleware::from_fn_with_state(
            origin_policy,
            origin::cross_origin_guard,
        ))
        // The server API: no session, no cross-origin guard (a key, not a cookie, is what
        // authenticates it), its own body limit and errors.
        .merge(api_v1::router(config.public_url.clone()))
        // Added after the session layer: a file of the bundle needs no session (which would
        // otherwise be loaded and saved for each one).
        .nest_service(&format!("/{}", options.site_pkg_dir), pkg)
        .layer(middleware::from_fn_with_state(
            assets::BundlePath::new(&options.site_pkg_dir),
            assets::cache_static_files,
        ));
    let router =
        headers::add_security_headers(router.layer(panics::layer()), &config.allowed_origins)
            .context("invalid PARLEY_ALLOWED_ORIGINS")?;
    let transport = transport::Transport {
        tls: config.tls.is_some(),
        proxies: state.proxies.clone(),
        https_origin: config.https_origin(),
    };
    Ok(router
        .layer(middleware::from_fn_with_state(
            transport,
            transport::transport_security,
        ))
        .layer(middleware::from_fn_with_state(
            host::HostPolicy::new(config.host_allow_list()),
            host::check_host,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_request(())
                .on_response(telemetry::on_response),
        )
        .with_state(state))
}
