//! The start-up check, Parley's `manage.py check --deploy`: in production mode the server
//! refuses to start while its configuration is unsafe, and warns about what is only unwise.
//! In development mode everything is reported as a warning.

use std::fmt;

use crate::{
    config::{Config, Mode},
    tls::TlsSource,
};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Unsafe: production refuses to start.
    Error,
    /// Unwise: logged loudly.
    Warning,
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// A short name, like Django's check ids.
    pub id: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.id, self.message)
    }
}

/// Passwords that come with tutorials and images; a database protected by one is not.
const WELL_KNOWN_PASSWORDS: &[&str] = &[
    "postgres", "password", "secret", "parley", "changeme", "admin", "root", "example",
];

/// Everything wrong with `config` for running in production.
pub fn deploy_check(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut error = |id, message: &str| {
        findings.push(Finding {
            severity: Severity::Error,
            id,
            message: message.to_owned(),
        });
    };

    let behind_proxy = !config.trusted_proxies.is_empty();
    if config.tls.is_none() && !behind_proxy {
        error(
            "parley.E001",
            "no HTTPS: set PARLEY_TLS_CERT and PARLEY_TLS_KEY, or run behind a TLS-terminating \
             proxy listed in PARLEY_TRUSTED_PROXIES",
        );
    }
    if config.tls == Some(TlsSource::SelfSigned) {
        error(
            "parley.E002",
            "PARLEY_TLS_SELF_SIGNED is for development: browsers warn about the certificate",
        );
    }
    if config.tls.is_none() && behind_proxy && config.https_origin().is_none() {
        error(
            "parley.E003",
            "behind a proxy, PARLEY_PUBLIC_URL must be the https:// address users reach, so \
             that cookies are Secure and plain HTTP is sent there",
        );
    }
    if let Some(password) = database_password(&config.database_url)
        && WELL_KNOWN_PASSWORDS.contains(&password.to_ascii_lowercase().as_str())
    {
        error(
            "parley.E004",
            "DATABASE_URL uses a well-known default password",
        );
    }
    if config
        .allowed_origins
        .iter()
        .any(|o| o.starts_with("http://"))
    {
        error(
            "parley.E005",
            "PARLEY_ALLOWED_ORIGINS lists a plain-http origin; only https origins may post to or \
             embed Parley",
        );
    }
    if config.host_allow_list().is_empty() {
        error(
            "parley.E006",
            "no host allow-list: set PARLEY_PUBLIC_URL (or PARLEY_ALLOWED_HOSTS) so that \
             requests naming another host (DNS rebinding) are refused",
        );
    }

    let mut warning = |id, message: &str| {
        findings.push(Finding {
            severity: Severity::Warning,
            id,
            message: message.to_owned(),
        });
    };
    if config.database_url.starts_with("sqlite:") {
        warning(
            "parley.W001",
            "SQLite keeps everything in one file on this machine: one instance only, and back \
             it up; use PostgreSQL to run several",
        );
    }
    if config.tls.is_some() && config.public_url.is_none() {
        warning(
            "parley.W002",
            "PARLEY_PUBLIC_URL is not set: redirects to HTTPS use the request's host name",
        );
    }
    if config.http_redirect_addr.is_some() && config.tls.is_none() {
        warning(
            "parley.W003",
            "PARLEY_HTTP_REDIRECT_ADDR does nothing without TLS in the server",
        );
    }
    if config.mode == Mode::Development && !config.listen_addr().ip().is_loopback() {
        warning(
            "parley.W004",
            "development mode on an address other machines can reach; set \
             PARLEY_MODE=production for a real deployment",
        );
    }
    findings
}

/// Whether the server refuses to start with these findings: in production, any error does.
pub fn refuses(config: &Config, findings: &[Finding]) -> bool {
    config.mode == Mode::Production && findings.iter().any(|f| f.severity == Severity::Error)
}

/// The password in a `scheme://user:password@host/…` URL, if there is one.
fn database_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let credentials = rest.split_once('@')?.0;
    credentials.split_once(':').map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Config {
        let mut config = Config::for_tests("postgres://parley:Xk3!long-random@db/parley".into());
        config.mode = Mode::Production;
        config.tls = Some(TlsSource::Files {
            cert: "/etc/parley/cert.pem".into(),
            key: "/etc/parley/key.pem".into(),
        });
        config.public_url = Some("https://chat.example.com".into());
        config
    }

    fn ids(config: &Config) -> Vec<&'static str> {
        deploy_check(config).into_iter().map(|f| f.id).collect()
    }

    #[test]
    fn a_sound_production_configuration_passes() {
        assert!(
            ids(&production()).is_empty(),
            "{:?}",
            deploy_check(&production())
        );
        let mut proxied = production();
        proxied.tls = None;
        proxied.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        assert!(ids(&proxied).is_empty());
    }

    #[test]
    fn no_https_at_all_is_an_error() {
        let mut config = production();
        config.tls = None;
        let findings = deploy_check(&config);
        assert_eq!(findings[0].id, "parley.E001");
        assert_eq!(findings[0].severity, Severity::Error);
    }

    #[test]
    fn self_signed_certificates_are_an_error() {
        let mut config = production();
        config.tls = Some(TlsSource::SelfSigned);
        assert_eq!(ids(&config), ["parley.E002"]);
    }

    #[test]
    fn a_proxy_needs_the_https_public_url() {
        let mut config = production();
        config.tls = None;
        config.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        config.public_url = Some("http://chat.example.com".into());
        assert_eq!(ids(&config), ["parley.E003"]);
    }

    #[test]
    fn default_database_passwords_are_an_error() {
        let mut config = production();
        config.database_url = "postgres://postgres:postgres@db/parley".into();
        assert_eq!(ids(&config), ["parley.E004"]);
        config.database_url = "postgres://parley@db/parley".into();
        assert!(
            ids(&config).is_empty(),
            "no password in the URL: peer or file auth"
        );
    }

    #[test]
    fn production_needs_a_host_allow_list() {
        let mut config = production();
        config.public_url = None;
        assert_eq!(ids(&config), ["parley.E006", "parley.W002"]);
        config.allowed_hosts = vec!["chat.example.com".into()];
        assert_eq!(ids(&config), ["parley.W002"]);
    }

    #[test]
    fn plain_http_origins_are_an_error() {
        let mut config = production();
        config.allowed_origins = vec!["http://market.example".into()];
        assert_eq!(ids(&config), ["parley.E005"]);
    }

    #[test]
    fn unwise_settings_are_warnings() {
        let mut config = production();
        config.database_url = "sqlite://parley.db?mode=rwc".into();
        config.public_url = None;
        config.allowed_hosts = vec!["chat.example.com".into()];
        let findings = deploy_check(&config);
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
        assert_eq!(ids(&config), ["parley.W001", "parley.W002"]);
    }

    #[test]
    fn passwords_are_found_in_database_urls() {
        assert_eq!(database_password("postgres://u:p@h/d"), Some("p"));
        assert_eq!(database_password("postgres://u@h/d"), None);
        assert_eq!(database_password("sqlite://parley.db"), None);
    }
}
