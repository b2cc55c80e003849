//! The host allow-list: a request naming a host Parley does not serve (DNS rebinding) is
//! refused with 400, whatever it asks for; health checks answer any host. Transport-level
//! rules, the same on either database, so these run on SQLite only.

use std::sync::Arc;

use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::helpers::{PASSWORD, Scratch, TestApp, TestDb, expect_error};
use server::config::Config;

async fn app_for(public_url: Option<&str>, allowed_hosts: &[&str]) -> TestApp {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.public_url = public_url.map(str::to_owned);
    config.allowed_hosts = allowed_hosts.iter().map(|h| (*h).to_owned()).collect();
    TestApp::start(config, scratch, TestDb::Sqlite).await
}

async fn get_as(app: &TestApp, host: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

/// With `PARLEY_PUBLIC_URL` (and `PARLEY_ALLOWED_HOSTS`), pages, server functions and the
/// WebSocket answer only for the listed hosts, with any port and letter case; anything else
/// gets 400 and nothing is done. `/healthz` and `/readyz` answer whatever the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_other_hosts_are_refused() {
    let app = app_for(Some("https://chat.example.com"), &[".shop.example"]).await;
    for host in [
        "chat.example.com",
        "CHAT.Example.com:8443",
        "shop.example",
        "chat.shop.example",
    ] {
        assert_eq!(
            get_as(&app, host, "/login").await.status(),
            StatusCode::OK,
            "{host}"
        );
    }
    for host in [
        "evil.example",
        "127.0.0.1",
        "chat.example.com.evil.example",
        "evilshop.example",
    ] {
        let refused = get_as(&app, host, "/login").await;
        let body = expect_error(refused, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "bad_request", "{host}");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get_as(&app, "10.0.0.7", path).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }

    // A server function for another host is not run: no account is created.
    let before = app.footprint().await;
    let response = reqwest::Client::new()
        .post(app.url("/api/register"))
        .header("host", "evil.example")
        .header("origin", "http://evil.example")
        .form(&[
            ("username", "rebound"),
            ("display_name", "Rebound"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.footprint().await, before);

    // Nor is the WebSocket upgraded.
    let mut upgrade = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    upgrade
        .headers_mut()
        .insert("host", "evil.example".parse().unwrap());
    upgrade
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400);
        }
        other => panic!("the upgrade should be refused: {other:?}"),
    }
}

/// `PARLEY_ALLOWED_HOSTS` alone is a list too; without either setting (development) every
/// host is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowed_hosts_alone_make_a_list() {
    let listed = app_for(None, &["127.0.0.1"]).await;
    assert_eq!(
        listed.browser().get("/login").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_as(&listed, "evil.example", "/login").await.status(),
        StatusCode::BAD_REQUEST
    );
    let open = app_for(None, &[]).await;
    assert_eq!(
        get_as(&open, "anything.example", "/login").await.status(),
        StatusCode::OK
    );
}
