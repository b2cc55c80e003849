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

/// The binary has a real command line: `--help` and `--version` answer and exit, anything it
/// does not know is an error (exit 2) that names it, and nothing is served either way.
#[test]
fn the_command_line_is_checked() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: server"), "{text}");
    assert!(text.contains("serve") && text.contains("check"), "{text}");

    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("server {}", env!("CARGO_PKG_VERSION"))
    );

    for wrong in [&["--lisen", "0.0.0.0:80"][..], &["srve"][..]] {
        let refused = run(wrong);
        assert_eq!(refused.status.code(), Some(2), "{wrong:?}");
        let text = String::from_utf8_lossy(&refused.stderr);
        assert!(text.contains(wrong[0]), "{text}");
    }
}

/// `server check` runs the start-up check and says whether the server would start, without
/// starting it: 1 for an unsafe production configuration, 0 for a sound one.
#[test]
fn the_check_command_says_whether_the_server_would_start() {
    let dir = tempfile::tempdir().unwrap();
    let check = |production: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .arg("check")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/p.db?mode=rwc", dir.path().display()),
            )
            .env_remove("PARLEY_TLS_CERT")
            .env_remove("PARLEY_TRUSTED_PROXIES")
            .env("PARLEY_TLS_SELF_SIGNED", "true");
        if production {
            command.env("PARLEY_MODE", "production");
        }
        command.output().unwrap()
    };
    let unsafe_production = check(true);
    assert_eq!(unsafe_production.status.code(), Some(1));
    let text = String::from_utf8_lossy(&unsafe_production.stdout);
    assert!(text.contains("error: [parley.E002]"), "{text}");
    assert!(text.contains("error: [parley.E006]"), "{text}");
    assert!(text.contains("would refuse to start"), "{text}");
    let development = check(false);
    assert!(development.status.success());
    assert!(String::from_utf8_lossy(&development.stdout).contains("would start"));
    assert!(!dir.path().join("p.db").exists(), "nothing was opened");
}
