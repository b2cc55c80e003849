//! The start-up check: production refuses an unsafe configuration, and starts with a sound one.

use std::process::Command;

use crate::helpers::{Scratch, TestDb};
use server::{
    config::{Config, Mode},
    startup::Application,
    tls::TlsSource,
};

/// The real binary, in production mode with plain HTTP and no proxy, exits at once with the
/// reasons; it never starts listening.
#[test]
fn the_server_refuses_to_start_unsafe_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .env("PARLEY_MODE", "production")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/p.db?mode=rwc", dir.path().display()),
        )
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("PARLEY_ALLOWED_ORIGINS", "http://market.example")
        .env_remove("PARLEY_TLS_CERT")
        .env_remove("PARLEY_TLS_SELF_SIGNED")
        .env_remove("PARLEY_TRUSTED_PROXIES")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsafe configuration for production"),
        "{stderr}"
    );
    assert!(stderr.contains("parley.E001"), "{stderr}");
    assert!(stderr.contains("parley.E005"), "{stderr}");
}

/// With a certificate from files and an https public address, production starts.
#[tokio::test]
async fn production_starts_with_tls_from_files() {
    let scratch = Scratch::create(TestDb::Sqlite).await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let mut config = Config::for_tests(scratch.url.clone());
    config.mode = Mode::Production;
    config.tls = Some(TlsSource::Files { cert, key });
    config.public_url = Some("https://chat.example.com".into());
    assert!(Application::build(config.clone()).await.is_ok());

    // The same, self-signed, is refused.
    config.tls = Some(TlsSource::SelfSigned);
    let refused = Application::build(config).await.err().unwrap();
    assert!(refused.to_string().contains("parley.E002"), "{refused}");
}
