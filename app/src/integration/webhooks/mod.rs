//! Webhooks: the event log (`super::events`) pushed to the marketplace's endpoints, signed the
//! Standard Webhooks way, delivered at least once.
//!
//! Each endpoint gets a delivery row per event it takes (*fan-out*, done by the worker from
//! the endpoint's cursor into the log, so an event written in a transaction that commits
//! later is never skipped: rows are made only up to the newest event older than a few
//! seconds). A worker *claims* due rows by pushing their next attempt a lease ahead (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several instances share the work and each row
//! goes to one), sends, and records the outcome. A worker killed mid-flight leaves its rows
//! due again once the lease passes: the receiver may see an event twice, always with the same
//! `webhook-id`, never not at all.

//!
//! This file holds the endpoints (their URL rules, secrets and event lists, and the
//! `server webhooks` commands' operations) and the signature; [`deliveries`] holds the work:
//! fan-out, claims, outcomes, and the deliveries API.
use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, SqlErr,
};
use sha2::Sha256;

use super::events::EventKind;
use crate::entity::{events, webhook_deliveries, webhook_endpoints};

pub mod deliveries;

pub use self::deliveries::*;

/// What every signing secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 24;
/// How long the secret before a rotation is still signed with.
pub const PREVIOUS_SECRET_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest endpoint URL.
const URL_MAX_CHARS: usize = 2048;

/// What can go wrong managing endpoints.
#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("there is already an endpoint for {0}")]
    UrlTaken(String),
    #[error("there is no endpoint for {0}")]
    NoSuchEndpoint(String),
    #[error(
        "{0:?} is not an event type: conversation.created, message.created, message.seen or message.unseen"
    )]
    UnknownEvent(String),
    #[error("there is no such delivery")]
    NoSuchDelivery,
    #[error("the system has no randomness to make a secret with: {0}")]
    Randomness(String),
    #[error("database error")]
    Database(#[from] DbErr),
}

/// Which endpoint URLs are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlRules {
    /// Only `https` (production).
    pub https_only: bool,
    /// Loopback and private addresses too (`PARLEY_WEBHOOK_ALLOW_PRIVATE`, or development).
    pub allow_private: bool,
}

impl UrlRules {
    /// Checks a URL's shape and, when its host is an IP address, that address. Host names are
    /// checked again when they are resolved, at each delivery (a name can point anywhere).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn check(&self, url: &str) -> Result<(), WebhooksError> {
        let bad = |why: &str| Err(WebhooksError::InvalidUrl(format!("{url:?}: {why}")));
        if url.chars().count() > URL_MAX_CHARS || url.chars().any(char::is_whitespace) {
            return bad("not a URL");
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("not a URL");
        };
        match scheme {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => return bad("only https endpoints are accepted in production"),
            _ => return bad("an endpoint is an http(s) URL"),
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return bad("it needs a host, and no user name or password");
        }
        let host = host_of(authority);
        if let Ok(address) = host.parse::<std::net::IpAddr>()
            && !self.allow_private
            && !is_public(address)
        {
            return bad(
                "loopback and private addresses are refused (PARLEY_WEBHOOK_ALLOW_PRIVATE)",
            );
        }
        Ok(())
    }
}

/// The host of an authority, without port or IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// unspecified, or shared (CGNAT) space.
pub fn is_public(address: std::net::IpAddr) -> bool {
    match address.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// An endpoint as `server webhooks list` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub url: String,
    pub events: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

fn new_secret() -> Result<String, WebhooksError> {
    let mut bytes = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| WebhooksError::Randomness(error.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The event types to send, from `a,b` (all of them when `None` or `*`).
///
/// # Errors
/// A name that is no event type.
pub fn parse_events(list: Option<&str>) -> Result<String, WebhooksError> {
    match list.map(str::trim) {
        None | Some("*" | "") => Ok("*".to_owned()),
        Some(list) => {
            let kinds = list
                .split(',')
                .map(|name| {
                    EventKind::parse(name.trim())
                        .map(EventKind::as_str)
                        .ok_or_else(|| WebhooksError::UnknownEvent(name.trim().to_owned()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(kinds.join(","))
        }
    }
}

/// Adds an endpoint for `url` taking `events` (from [`parse_events`]) and returns its signing
/// secret: the only time it is shown. It receives the events from now on.
///
/// # Errors
/// A URL the rules refuse or one already added, or the database failed.
pub async fn add(
    db: &impl ConnectionTrait,
    url: &str,
    events: &str,
    rules: UrlRules,
) -> Result<String, WebhooksError> {
    rules.check(url)?;
    let secret = new_secret()?;
    let newest = events::Entity::find()
        .order_by_desc(events::Column::Seq)
        .one(db)
        .await?
        .map_or(0, |event| event.seq);
    let row = webhook_endpoints::ActiveModel {
        url: Set(url.to_owned()),
        secret: Set(secret.clone()),
        previous_secret: Set(None),
        previous_until: Set(None),
        events: Set(events.to_owned()),
        fanned_out_seq: Set(newest),
        created_at: Set(crate::conversations::now()),
        disabled_at: Set(None),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(_) => Ok(secret),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(WebhooksError::UrlTaken(url.to_owned()))
        }
        Err(error) => Err(error.into()),
    }
}

/// Every endpoint, oldest first.
///
/// # Errors
/// The database failed.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<EndpointInfo>, WebhooksError> {
    Ok(webhook_endpoints::Entity::find()
        .order_by_asc(webhook_endpoints::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|row| EndpointInfo {
            url: row.url,
            events: row.events,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
        .collect())
}

/// Removes the endpoint for `url`, with its deliveries.
///
/// # Errors
/// No endpoint has that URL, or the database failed.
pub async fn remove(db: &impl ConnectionTrait, url: &str) -> Result<(), WebhooksError> {
    let endpoint = find(db, url).await?;
    webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint.id))
        .exec(db)
        .await?;
    webhook_endpoints::Entity::delete_by_id(endpoint.id)
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the endpoint for `url` a new secret and returns it; deliveries carry a signature
/// with the old one too for [`PREVIOUS_SECRET_FOR`], so the receiver can switch meanwhile.
/// A disabled endpoint is enabled again, from now on.
///
/// # Errors
/// No endpoint has that URL, or the database failed.
pub async fn rotate(db: &impl ConnectionTrait, url: &str) -> Result<String, WebhooksError> {
    let endpoint = find(db, url).await?;
    let secret = new_secret()?;
    let until = crate::conversations::now()
        + chrono::Duration::from_std(PREVIOUS_SECRET_FOR).unwrap_or_default();
    webhook_endpoints::ActiveModel {
        id: Set(endpoint.id),
        secret: Set(secret.clone()),
        previous_secret: Set(Some(endpoint.secret)),
        previous_until: Set(Some(until)),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(secret)
}

async fn find(
    db: &impl ConnectionTrait,
    url: &str,
) -> Result<webhook_endpoints::Model, WebhooksError> {
    webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Url.eq(url))
        .one(db)
        .await?
        .ok_or_else(|| WebhooksError::NoSuchEndpoint(url.to_owned()))
}

/// The Standard Webhooks signature header of a delivery: `v1,<base64 HMAC-SHA256>` for each
/// secret, space-separated. The signed content is `<id>.<timestamp>.<body>`.
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let key = STANDARD
                .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
                .ok()?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an endpoint taking `events` takes an event of type `kind`.
fn takes(events: &str, kind: &str) -> bool {
    events == "*" || events.split(',').any(|taken| taken == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = signature(
            &[secret, secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(two.split(' ').count(), 2);
    }

    #[test]
    fn endpoint_urls_follow_the_rules() {
        let production = UrlRules {
            https_only: true,
            allow_private: false,
        };
        let development = UrlRules {
            https_only: false,
            allow_private: true,
        };
        assert!(
            production
                .check("https://hooks.shop.example/parley")
                .is_ok()
        );
        for bad in [
            "http://hooks.shop.example/",
            "https://127.0.0.1/hook",
            "https://[::1]:8443/hook",
            "https://10.0.0.5/hook",
            "https://user:pw@shop.example/",
            "ftp://shop.example/",
            "https:///nohost",
            "not a url",
        ] {
            assert!(production.check(bad).is_err(), "{bad}");
        }
        assert!(development.check("http://127.0.0.1:9000/hook").is_ok());
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(!is_public("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!is_public("100.64.0.1".parse().unwrap()));
    }

    #[test]
    fn event_lists_are_checked() {
        assert_eq!(parse_events(None).unwrap(), "*");
        assert_eq!(
            parse_events(Some("message.created, message.seen")).unwrap(),
            "message.created,message.seen"
        );
        assert!(parse_events(Some("message.deleted")).is_err());
        assert!(takes("*", "message.seen"));
        assert!(takes("message.created,message.seen", "message.seen"));
        assert!(!takes("message.created", "message.seen"));
    }
}
