//! Hearing from Parley: the webhook receiver. Each delivery is checked the Standard Webhooks
//! way (docs/integration.md, "Verifying a delivery") before the shop believes a word of it, and
//! kept once per `webhook-id` (Parley delivers at least once).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::http::{HeaderMap, StatusCode};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;

/// How far a delivery's timestamp may be from now: older ones could be replays.
const TOLERANCE_SECS: i64 = 300;

/// An event the shop received, signature checked.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Received {
    /// `webhook-id`: the event's id, the same on every retry.
    pub(crate) id: String,
    /// `message.created`, `message.seen`…
    pub(crate) event_type: String,
    /// The whole body, as Parley sent it.
    pub(crate) event: Value,
}

/// What the receiver has kept, newest last.
#[derive(Clone, Default)]
pub(crate) struct Inbox(Arc<Mutex<Vec<Received>>>);

impl Inbox {
    pub(crate) fn all(&self) -> Vec<Received> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn keep(&self, received: Received) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.iter().any(|earlier| earlier.id == received.id) {
            kept.push(received);
        }
    }
}

/// Takes one delivery: 204 when it is Parley's (kept once), 401 when its signature or
/// timestamp is wrong (nothing kept), 400 when it is not an event.
pub(crate) fn receive(
    secret: Option<&str>,
    inbox: &Inbox,
    headers: &HeaderMap,
    body: &[u8],
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(secret), Some(id), Some(stamp), Some(signatures)) = (
        secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return StatusCode::UNAUTHORIZED;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    if !verify(secret, id, stamp, body, signatures, now) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let event_type = event["type"].as_str().unwrap_or_default().to_owned();
    inbox.keep(Received {
        id: id.to_owned(),
        event_type,
        event,
    });
    StatusCode::NO_CONTENT
}

/// Whether one of `signatures` (space-separated `v1,<base64>`) is the HMAC-SHA256 of
/// `<id>.<timestamp>.<body>` under `secret` (`whsec_<base64>`), with the timestamp within five
/// minutes of `now`. Compared in constant time.
pub(crate) fn verify(
    secret: &str,
    id: &str,
    stamp: &str,
    body: &[u8],
    signatures: &str,
    now: i64,
) -> bool {
    let fresh = stamp
        .parse::<i64>()
        .is_ok_and(|at| (now - at).abs() <= TOLERANCE_SECS);
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("whsec_")) else {
        return false;
    };
    fresh
        && signatures
            .split(' ')
            .filter_map(|signature| signature.strip_prefix("v1,"))
            .any(|signature| {
                let Ok(signature) = STANDARD.decode(signature) else {
                    return false;
                };
                let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) else {
                    return false;
                };
                mac.update(format!("{id}.{stamp}.").as_bytes());
                mac.update(body);
                mac.verify_slice(&signature).is_ok()
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sign(id: &str, stamp: &str, body: &[u8]) -> String {
        let key = STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{stamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn headers(id: &str, stamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().unwrap());
        headers.insert("webhook-timestamp", stamp.parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_signed_delivery_is_kept_once_and_anything_else_is_refused() {
        let inbox = Inbox::default();
        let body = br#"{"id":"evt_1","type":"message.created","data":{}}"#;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let good = sign("evt_1", &now, body);
        // A rotation sends two signatures: either one may be the receiver's.
        let both = format!("v1,bm90IGl0 {good}");
        for _ in 0..2 {
            assert_eq!(
                receive(Some(SECRET), &inbox, &headers("evt_1", &now, &both), body),
                StatusCode::NO_CONTENT
            );
        }
        assert_eq!(inbox.all().len(), 1, "a retry is kept once");
        assert_eq!(inbox.all()[0].event_type, "message.created");

        let tampered = br#"{"id":"evt_1","type":"message.created","data":{"x":1}}"#;
        let old = (now.parse::<i64>().unwrap() - 600).to_string();
        for (headers, body) in [
            (headers("evt_1", &now, &good), &tampered[..]),
            (headers("evt_2", &now, &good), &body[..]),
            (
                headers("evt_1", &old, &sign("evt_1", &old, body)),
                &body[..],
            ),
        ] {
            assert_eq!(
                receive(Some(SECRET), &inbox, &headers, body),
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            receive(None, &inbox, &headers("evt_1", &now, &good), body),
            StatusCode::UNAUTHORIZED,
            "no secret configured: nothing is believed"
        );
        assert_eq!(inbox.all().len(), 1);
    }
}
