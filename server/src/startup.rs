//! [`Application`]: everything between a [`Config`] and a listening server.
//!
//! `build` connects to the database, brings its schema up to date, assembles the router and
//! binds the listener (port 0 picks a free port, which the tests use); `run_until_stopped`
//! serves until the shutdown future resolves.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Extension, Router, middleware, routing::get};
use leptos_axum::{LeptosRoutes, generate_route_list};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use app::{
    App,
    accounts::Backend,
    limits::RateLimits,
    security::{PagePolicy, TrustedProxies},
    shell,
    state::AppState,
};
use migrations::{Migrator, MigratorTrait};

use crate::{
    config::Config,
    http::{api_status, headers, health, origin, pages},
    realtime::local::LocalRealtime,
    sessions::DbSessionStore,
    ws,
};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "parley_session";
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
}

impl Application {
    /// Connects, migrates, assembles and binds.
    ///
    /// # Errors
    /// The database is unreachable, a migration fails, or the address can't be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = connect(&config.database_url).await?;
        Migrator::up(&db, None)
            .await
            .context("failed to bring the database schema up to date")?;

        let state = AppState {
            leptos_options: config.leptos_options.clone(),
            db: db.clone(),
            realtime: Arc::new(LocalRealtime::new()),
            page_policy: page_policy(&config),
            limits: Arc::new(RateLimits::new(config.limits)),
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
        };
        let limits = state.limits.clone();
        let router = router(&config, state)?;
        let listener = TcpListener::bind(config.listen_addr())
            .await
            .with_context(|| format!("failed to listen on {}", config.listen_addr()))?;
        Ok(Self {
            listener,
            router,
            db,
            limits,
        })
    }

    /// The address actually bound (the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then closes open WebSockets (code 1001) and returns
    /// once in-flight requests have finished.
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
        let router = self.router.layer(Extension(ws::Shutdown { signal, done }));
        // The peer's address reaches handlers as `ConnectInfo`, for rate limits.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_sockets.send(true);
            })
            .await
            .context("server error")?;
        sweeper.abort();
        forgetter.abort();
        // The router and its copy of the sender are gone; each socket task holds one more, so
        // `recv` answers `None` once every connection has sent its Close frame.
        let _ = tokio::time::timeout(SOCKETS_CLOSE_WITHIN, all_done.recv()).await;
        Ok(())
    }
}

/// Opens the connection pool. SQLite gets a busy timeout so that concurrent writers wait for
/// each other instead of failing.
async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's nature; a small pool avoids queueing on its lock.
        options.max_connections(4);
    }
    Database::connect(options)
        .await
        .context("failed to connect to the database (check DATABASE_URL)")
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
        live_reload.as_slice(),
        config.secure_cookies(),
    )
}

/// The whole HTTP surface. Requests pass the layers from the bottom of this list up: tracing,
/// security headers, the cross-origin guard, the session, the page redirects, then the route.
fn router(config: &Config, state: AppState) -> anyhow::Result<Router> {
    let session_layer = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
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
    let router = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(health::healthz))
        // Also registers every server function under /api/ and provides `AppState` to them.
        .leptos_routes(&state, routes, move || shell(leptos_options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(api_status::server_fn_status))
        .layer(middleware::from_fn(pages::page_guard))
        .layer(auth_layer)
        .layer(middleware::from_fn_with_state(
            origin_policy,
            origin::cross_origin_guard,
        ));
    let router = headers::add_security_headers(router, &config.allowed_origins)
        .context("invalid PARLEY_ALLOWED_ORIGINS")?;
    Ok(router.layer(TraceLayer::new_for_http()).with_state(state))
}
