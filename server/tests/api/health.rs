//! `/healthz` says the process is alive; `/readyz` says it can work: it turns 503 while the
//! database is unreachable and back to 200 when it returns.

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;

use crate::{
    helpers::{Scratch, TestApp, TestDb},
    tcp_proxy::TcpProxy,
};
use server::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_liveness_does_not() {
    let scratch = Arc::new(Scratch::create(TestDb::Postgres).await);
    let (proxy, url) = TcpProxy::in_front_of(&scratch.url, 5432).await;
    let app = TestApp::start(Config::for_tests(url), scratch, TestDb::Postgres).await;
    let status = |path: &'static str| {
        let browser = app.browser();
        async move { browser.get(path).await.status() }
    };
    assert_eq!(status("/readyz").await, StatusCode::OK);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let readyz = app.browser().get("/readyz").await;
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz.text().await.unwrap(), "database unavailable");
    assert_eq!(
        status("/healthz").await,
        StatusCode::OK,
        "alive all the same"
    );

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status("/readyz").await != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready again after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
