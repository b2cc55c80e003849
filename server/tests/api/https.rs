//! HTTPS: Parley terminating TLS itself (a self-signed certificate here), its plain-HTTP
//! redirect listener, and a TLS-terminating proxy trusted through `X-Forwarded-Proto`.

use std::sync::Arc;

use reqwest::{StatusCode, redirect::Policy};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::helpers::{PASSWORD, Scratch, TestApp, TestDb};
use server::{config::Config, startup::Application, tls::TlsSource};

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// With TLS on: pages and API answer over HTTPS with HSTS, the session cookie is a `Secure`,
/// `__Host-` cookie, and the plain-HTTP listener sends pages to HTTPS and refuses the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_terminates_tls_itself() {
    let scratch = Scratch::create(TestDb::Sqlite).await;
    let mut config = Config::for_tests(scratch.url.clone());
    config.tls = Some(TlsSource::SelfSigned);
    config.http_redirect_addr = Some(([127, 0, 0, 1], 0).into());
    let app = Application::build(config).await.unwrap();
    let addr = app.local_addr();
    let redirect_addr = app.redirect_addr().unwrap();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let base = format!("https://127.0.0.1:{}", addr.port());

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["strict-transport-security"], HSTS);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("upgrade-insecure-requests")
    );

    let registered = client
        .post(format!("{base}/api/register"))
        .header("origin", &base)
        .form(&[
            ("username", "tess"),
            ("display_name", "Tess"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::OK);
    assert_eq!(registered.headers()["strict-transport-security"], HSTS);
    let cookie = registered.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-parley_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain="), "{cookie}");

    // An origin that differs only in its scheme is another site: refused, even without
    // `Sec-Fetch-Site` (as older browsers and other clients send).
    let same_but_http = client
        .post(format!("{base}/api/me"))
        .header("origin", format!("http://127.0.0.1:{}", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(same_but_http.status(), StatusCode::FORBIDDEN);
    let same = client
        .post(format!("{base}/api/me"))
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);

    // Plain HTTP: pages move to HTTPS with their path and query; anything else is refused.
    let plain = format!("http://127.0.0.1:{}", redirect_addr.port());
    let moved = client
        .get(format!("{plain}/chat/@bob?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        moved.headers()["location"],
        format!("https://127.0.0.1:{}/chat/@bob?x=1", addr.port()).as_str()
    );
    let posted = client
        .post(format!("{plain}/api/login"))
        .form(&[("username", "tess"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::BAD_REQUEST);
    // A WebSocket upgrade over plain HTTP is refused too, not redirected.
    let upgrade = client
        .get(format!("{plain}/ws"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), StatusCode::BAD_REQUEST);
}

/// Behind a proxy listed in `PARLEY_TRUSTED_PROXIES`: `X-Forwarded-Proto: https` means HSTS,
/// `http` means a move to the public HTTPS address. From anyone else the header means nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_says_which_requests_were_https() {
    for trusted in [true, false] {
        let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
        let mut config = Config::for_tests(scratch.url.clone());
        config.public_url = Some("https://chat.example".into());
        config.allowed_hosts = vec!["127.0.0.1".into()];
        config.trusted_proxies = vec![
            if trusted { "127.0.0.1" } else { "10.9.9.9" }
                .parse()
                .unwrap(),
        ];
        let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();

        let https = client
            .get(app.url("/login"))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(https.status(), StatusCode::OK);
        assert_eq!(
            https.headers().get("strict-transport-security").is_some(),
            trusted,
            "trusted: {trusted}"
        );

        let http = client
            .get(app.url("/login?next=%2Fchat"))
            .header("x-forwarded-proto", "http")
            .send()
            .await
            .unwrap();
        if trusted {
            assert_eq!(http.status(), StatusCode::PERMANENT_REDIRECT);
            assert_eq!(
                http.headers()["location"],
                "https://chat.example/login?next=%2Fchat"
            );
            let post = client
                .post(app.url("/api/login"))
                .header("x-forwarded-proto", "http")
                .header("origin", "https://chat.example")
                .send()
                .await
                .unwrap();
            assert_eq!(post.status(), StatusCode::BAD_REQUEST);
            // Over HTTPS (as the proxy says), an `http://` origin of the same host and port is
            // another origin, for server functions and for the WebSocket alike.
            let host = format!("127.0.0.1:{}", app.addr.port());
            for (origin, allowed) in [
                (format!("https://{host}"), true),
                (format!("http://{host}"), false),
            ] {
                let post = client
                    .post(app.url("/api/me"))
                    .header("x-forwarded-proto", "https")
                    .header("origin", &origin)
                    .send()
                    .await
                    .unwrap();
                let expected = if allowed {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(post.status(), expected, "{origin}");
                let mut upgrade = format!("ws://{host}/ws").into_client_request().unwrap();
                upgrade
                    .headers_mut()
                    .insert("origin", origin.parse().unwrap());
                upgrade
                    .headers_mut()
                    .insert("x-forwarded-proto", "https".parse().unwrap());
                match tokio_tungstenite::connect_async(upgrade).await {
                    // Signed out: past the origin check, the upgrade asks for a session.
                    Err(tungstenite::Error::Http(response)) => assert_eq!(
                        response.status().as_u16(),
                        if allowed { 401 } else { 403 },
                        "{origin}"
                    ),
                    other => panic!("{origin}: {other:?}"),
                }
            }
            // A proxy that appends: the client's forged "https" comes first, the proxy's own
            // "http" last, and the last one is believed.
            let forged = client
                .get(app.url("/login"))
                .header("x-forwarded-proto", "https, http")
                .send()
                .await
                .unwrap();
            assert_eq!(forged.status(), StatusCode::PERMANENT_REDIRECT);
        } else {
            assert_eq!(http.status(), StatusCode::OK);
        }
    }
}

/// Plain-HTTP development: no HSTS (it would lock the browser out of `http://127.0.0.1`).
#[tokio::test]
async fn plain_http_development_sends_no_hsts() {
    let app = TestApp::spawn(TestDb::Sqlite).await;
    let response = app.browser().get("/login").await;
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}
