//! Security headers on every kind of response, and a page policy whose nonce matches the
//! page's one inline script.

use std::sync::Arc;

use reqwest::{StatusCode, header::HeaderMap};

use crate::helpers::{Scratch, TestApp, TestDb, for_each_db};
use server::config::Config;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing {name}"))
}

/// The headers every response carries, whatever it is.
fn assert_common_headers(headers: &HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "same-origin");
    assert_eq!(header(headers, "cross-origin-opener-policy"), "same-origin");
    assert!(header(headers, "permissions-policy").contains("camera=()"));
    assert!(header(headers, "content-security-policy").contains("frame-ancestors 'self'"));
}

for_each_db! {
    /// A page's policy allows exactly its own inline script (by nonce), never `unsafe-inline`,
    /// and the nonce changes with every response.
    async fn pages_carry_a_nonce_policy(app) {
        let mut nonces = Vec::new();
        for path in ["/login", "/register", "/no/such/page"] {
            let response = app.browser().get(path).await;
            let headers = response.headers().clone();
            let page = response.text().await.unwrap();
            assert_common_headers(&headers);
            assert_eq!(header(&headers, "x-frame-options"), "SAMEORIGIN");
            let policy = header(&headers, "content-security-policy");
            assert!(!policy.contains("unsafe-inline"), "{policy}");
            assert!(!policy.contains(" 'unsafe-eval'"), "{policy}");
            let nonce = page
                .split("<script type=\"module\" nonce=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no nonce on the hydration script of {path}"));
            assert!(
                policy.contains(&format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'")),
                "{policy}"
            );
            assert!(policy.contains("object-src 'none'"));
            assert!(policy.contains("connect-src 'self'"));
            nonces.push(nonce.to_owned());
        }
        nonces.sort();
        nonces.dedup();
        assert_eq!(nonces.len(), 3, "every response gets its own nonce");
    }
}

for_each_db! {
    /// Responses that are not pages (JSON, refusals, the health check) get a policy that
    /// allows nothing.
    async fn other_responses_allow_nothing(app) {
        let (ann, _) = app.user("ann").await;
        let responses = [
            ann.post("me", &[]).await,
            app.browser().post("conversations", &[]).await,
            ann.http
                .post(app.url("/api/logout"))
                .header("origin", "https://evil.example")
                .send()
                .await
                .unwrap(),
            ann.get("/healthz").await,
            ann.get("/ws").await,
        ];
        for response in responses {
            let headers = response.headers();
            assert_common_headers(headers);
            assert!(
                header(headers, "content-security-policy").starts_with("default-src 'none'"),
                "{}: {}",
                response.status(),
                header(headers, "content-security-policy")
            );
        }
    }
}

/// Configured embedding origins may frame Parley; X-Frame-Options, which can't say so, is left
/// out.
#[tokio::test]
async fn embedding_origins_are_allowed_to_frame_parley() {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.allowed_origins = vec!["https://market.example".into()];
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    for path in ["/login", "/healthz"] {
        let response = app.browser().get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let policy = header(response.headers(), "content-security-policy");
        assert!(
            policy.contains("frame-ancestors 'self' https://market.example"),
            "{policy}"
        );
        assert!(response.headers().get("x-frame-options").is_none());
    }
}
