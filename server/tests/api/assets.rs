//! The site's static files go out compressed when the build made compressed copies, and
//! browsers keep them, asking again on each visit (`no-cache` + `Last-Modified` → 304).

use std::sync::Arc;

use reqwest::{StatusCode, header};

use crate::helpers::{Scratch, TestApp, TestDb};
use server::config::Config;

#[tokio::test]
async fn static_files_are_served_compressed_and_revalidated() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("parley.css"), "body { color: black }".repeat(50)).unwrap();
    std::fs::write(pkg.join("parley.css.br"), b"pretend-brotli").unwrap();
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.leptos_options.site_root = site.path().display().to_string().into();
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let client = reqwest::Client::new();

    let compressed = client
        .get(app.url("/pkg/parley.css"))
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.status(), StatusCode::OK);
    let headers = compressed.headers().clone();
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(
        headers.get_all(header::VARY).iter().any(|v| v
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")),
        "{headers:?}"
    );
    assert_eq!(
        compressed.bytes().await.unwrap().as_ref(),
        b"pretend-brotli"
    );

    let plain = client.get(app.url("/pkg/parley.css")).send().await.unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.text().await.unwrap().len(), 21 * 50);

    let modified = headers[header::LAST_MODIFIED].clone();
    let again = client
        .get(app.url("/pkg/parley.css"))
        .header(header::ACCEPT_ENCODING, "br")
        .header(header::IF_MODIFIED_SINCE, modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::CACHE_CONTROL], "no-cache");

    // Pages and answers are not static files.
    let page = client.get(app.url("/login")).send().await.unwrap();
    assert!(
        page.headers()
            .get(header::CACHE_CONTROL)
            .is_none_or(|v| v != "no-cache")
    );
}
