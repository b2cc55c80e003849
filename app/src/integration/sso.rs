//! Sign-in handoff from the marketplace (single sign-on): the marketplace's backend signs a
//! short-lived JWT (RFC 7519) for its user, and Parley verifies it, links or makes the account,
//! and starts a session.
//!
//! Two ways to sign, each with a current and a previous key so keys rotate without downtime:
//! **EdDSA** (Ed25519), where Parley holds only the marketplace's public key, so nothing Parley
//! has can mint a token; and **HS256** with a shared secret of at least 32 bytes. A token's
//! `alg` must be one of the configured kinds and is checked against each key of that kind
//! only: `none`, an algorithm nobody configured, and an HS256 token "signed" with the public
//! key as its secret all fail. Each token works once: its `jti` is recorded until it expires.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, SqlErr,
};
use serde::Deserialize;

use super::identities::{ExternalId, Profile};
use crate::{
    entity::sso_tokens,
    model::{ContextCard, is_safe_next},
};

/// The audience every token must name.
pub const AUDIENCE: &str = "parley";
/// The furthest ahead a token's `exp` may be: a token is a handoff, not a credential to keep.
pub const MAX_LIFETIME_SECS: i64 = 10 * 60;
/// Clock difference tolerated between the marketplace and Parley.
const LEEWAY_SECS: u64 = 30;
/// The shortest shared secret accepted (HS256 keys shorter than the hash are guessable).
pub const SECRET_MIN_BYTES: usize = 32;
/// Longest `jti`.
const JTI_MAX_CHARS: usize = 128;

/// The keys tokens are checked against.
#[derive(Clone, Default)]
pub struct SsoKeys {
    /// Ed25519 public keys, current first.
    public_keys: Vec<DecodingKey>,
    /// HS256 secrets, current first.
    secrets: Vec<DecodingKey>,
    /// The `iss` every token must name, when the deployment says which.
    issuer: Option<String>,
}

impl std::fmt::Debug for SsoKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoKeys")
            .field("public_keys", &self.public_keys.len())
            .field("secrets", &self.secrets.len())
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// What is wrong with the keys the configuration names.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 public key in PEM form: {0}")]
    PublicKey(String),
    #[error("a shared secret must be at least {SECRET_MIN_BYTES} bytes long")]
    ShortSecret,
}

impl SsoKeys {
    /// Keys from PEM files' contents and secrets, each list current first.
    ///
    /// # Errors
    /// A PEM that holds no Ed25519 public key, or a secret under 32 bytes.
    pub fn new(
        public_keys_pem: &[Vec<u8>],
        secrets: &[String],
        issuer: Option<String>,
    ) -> Result<Self, KeyError> {
        let public_keys = public_keys_pem
            .iter()
            .map(|pem| {
                DecodingKey::from_ed_pem(pem)
                    .map_err(|error| KeyError::PublicKey(error.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if secrets.iter().any(|s| s.len() < SECRET_MIN_BYTES) {
            return Err(KeyError::ShortSecret);
        }
        Ok(Self {
            public_keys,
            secrets: secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s.as_bytes()))
                .collect(),
            issuer,
        })
    }

    /// Whether any key is configured: without one, sign-in from the marketplace is off.
    pub fn configured(&self) -> bool {
        !self.public_keys.is_empty() || !self.secrets.is_empty()
    }

    /// Verifies `token` at time `now` and reads what it says. The `jti` is not spent here:
    /// [`redeem`] does that, once everything else has passed.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Handoff, Refusal> {
        if !self.configured() {
            return Err(Refusal::NotConfigured);
        }
        // A header jsonwebtoken can't read may still name an algorithm it has no name for
        // (`none`): that is a refused algorithm, not a malformed token.
        let header = jsonwebtoken::decode_header(token).map_err(|_| match named_alg(token) {
            Some(_) => Refusal::WrongAlgorithm,
            None => Refusal::Malformed,
        })?;
        let keys = match header.alg {
            Algorithm::EdDSA => &self.public_keys,
            Algorithm::HS256 => &self.secrets,
            _ => return Err(Refusal::WrongAlgorithm),
        };
        if keys.is_empty() {
            return Err(Refusal::WrongAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS;
        validation.required_spec_claims =
            HashSet::from(["exp", "aud", "sub", "iss"].map(str::to_owned));
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let mut refusal = Refusal::BadSignature;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return data.claims.checked(now),
                Err(error) => match error.kind() {
                    ErrorKind::InvalidSignature => {}
                    kind => {
                        refusal = Refusal::from_kind(kind);
                        break;
                    }
                },
            }
        }
        Err(refusal)
    }
}

/// Why a token is refused. Each says so plainly on the page the person lands on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Signing in from the marketplace is not set up on this Parley.")]
    NotConfigured,
    #[error("The sign-in link is not a valid token.")]
    Malformed,
    #[error("The sign-in token's signature does not match the marketplace's key.")]
    BadSignature,
    #[error("The sign-in token is signed with an algorithm Parley does not accept.")]
    WrongAlgorithm,
    #[error("The sign-in token is not meant for Parley (its audience is wrong).")]
    WrongAudience,
    #[error("The sign-in token is not from the expected issuer.")]
    WrongIssuer,
    #[error("The sign-in link has expired. Go back to the marketplace and try again.")]
    Expired,
    #[error("The sign-in token lives too long: it may expire at most 10 minutes ahead.")]
    TooLong,
    #[error("The sign-in link has already been used. Go back to the marketplace and try again.")]
    Replayed,
    #[error("The sign-in token lacks its `{0}` claim.")]
    MissingClaim(String),
    #[error("The sign-in token's `{claim}` is not valid: {message}")]
    InvalidClaim { claim: String, message: String },
    #[error("The sign-in token's `return_to` must be a path on Parley, not another site.")]
    ForeignReturn,
    #[error("The person to talk to is not known to Parley yet.")]
    UnknownPartner,
}

impl Refusal {
    fn from_kind(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => Self::Expired,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Self::WrongAlgorithm,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim.clone()),
            ErrorKind::Json(error) => match missing_field(&error.to_string()) {
                Some(claim) => Self::MissingClaim(claim),
                None => Self::Malformed,
            },
            _ => Self::Malformed,
        }
    }
}

/// The `alg` a token's header names, if the header is JSON with one.
fn named_alg(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

/// The claim a decoding error says is missing ("missing field `jti`").
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split_once('`')?.0.to_owned())
}

/// A token's claims, as signed.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    name: String,
    exp: i64,
    jti: String,
    username: Option<String>,
    email: Option<String>,
    role: Option<String>,
    with: Option<String>,
    /// A product or order card: read here for its shape, checked against the deployment's
    /// rules (`cards::CardRules`) by the caller.
    context: Option<serde_json::Value>,
    return_to: Option<String>,
}

impl Claims {
    fn checked(self, now: DateTime<Utc>) -> Result<Handoff, Refusal> {
        if self.exp > now.timestamp() + MAX_LIFETIME_SECS + LEEWAY_SECS as i64 {
            return Err(Refusal::TooLong);
        }
        let invalid = |claim: &str, message: String| Refusal::InvalidClaim {
            claim: claim.to_owned(),
            message,
        };
        let external = ExternalId::parse(&self.sub).map_err(|m| invalid("sub", m))?;
        let profile = Profile::parse(
            &self.name,
            self.username.as_deref(),
            self.email.as_deref(),
            self.role.as_deref(),
        )
        .map_err(|errors| {
            let first = errors.into_iter().next();
            let (field, message) = first.map_or_else(
                || ("name".to_owned(), String::new()),
                |error| (error.field, error.message),
            );
            invalid(&field, message)
        })?;
        let with = self
            .with
            .as_deref()
            .map(ExternalId::parse)
            .transpose()
            .map_err(|m| invalid("with", m))?;
        if with.as_ref() == Some(&external) {
            return Err(invalid("with", "It names the person signing in.".into()));
        }
        let context = match self.context {
            None => None,
            Some(_) if with.is_none() => {
                return Err(invalid(
                    "context",
                    "A card goes with a conversation: give `with` too.".into(),
                ));
            }
            Some(value) => Some(
                serde_json::from_value::<ContextCard>(value).map_err(|error| {
                    invalid(
                        "context",
                        format!("It is not a product or order card: {error}."),
                    )
                })?,
            ),
        };
        if let Some(path) = &self.return_to
            && !is_safe_next(path)
        {
            return Err(Refusal::ForeignReturn);
        }
        if !(1..=JTI_MAX_CHARS).contains(&self.jti.chars().count()) {
            return Err(invalid(
                "jti",
                format!("It is 1 to {JTI_MAX_CHARS} characters."),
            ));
        }
        Ok(Handoff {
            external,
            profile,
            with,
            context,
            return_to: self.return_to,
            jti: self.jti,
            expires_at: DateTime::from_timestamp(self.exp, 0).unwrap_or(now),
        })
    }
}

/// A verified token: who is signing in, and where to.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub external: ExternalId,
    pub profile: Profile,
    /// The other person of the conversation to open.
    pub with: Option<ExternalId>,
    /// The card to leave waiting above the composer in that conversation (not yet checked
    /// against the deployment's `cards::CardRules`).
    pub context: Option<ContextCard>,
    /// A path on Parley to go to (when there is no `with`).
    pub return_to: Option<String>,
    jti: String,
    expires_at: DateTime<Utc>,
}

/// Spends the token's `jti`: the first time it is [`Ok`], every later time
/// [`Refusal::Replayed`]. Spent ids are forgotten once their tokens have expired.
///
/// # Errors
/// The database failed (the outer error), or the token was used before.
pub async fn redeem(
    db: &impl ConnectionTrait,
    handoff: &Handoff,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, DbErr> {
    let forget_before = now - chrono::Duration::seconds(LEEWAY_SECS as i64);
    sso_tokens::Entity::delete_many()
        .filter(sso_tokens::Column::ExpiresAt.lt(forget_before))
        .exec(db)
        .await?;
    let row = sso_tokens::ActiveModel {
        jti: Set(handoff.jti.clone()),
        expires_at: Set(handoff.expires_at),
    };
    match row.insert(db).await {
        Ok(_) => Ok(Ok(())),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(Err(Refusal::Replayed))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "a secret shared with the marketplace, 32+ bytes";

    fn token(claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn claims(now: DateTime<Utc>) -> Value {
        json!({
            "iss": "https://shop.example", "aud": "parley", "sub": "u-1", "name": "Ann",
            "exp": now.timestamp() + 60, "jti": "j-1", "with": "u-2", "return_to": "/settings",
        })
    }

    #[test]
    fn a_good_token_says_who_and_where() {
        let now = Utc::now();
        let keys = SsoKeys::new(
            &[],
            &[SECRET.to_owned()],
            Some("https://shop.example".into()),
        )
        .unwrap();
        let handoff = keys.verify(&token(&claims(now)), now).unwrap();
        assert_eq!(handoff.external.as_str(), "u-1");
        assert_eq!(handoff.profile.name.as_str(), "Ann");
        assert_eq!(handoff.with.unwrap().as_str(), "u-2");
        assert_eq!(handoff.return_to.as_deref(), Some("/settings"));
        assert_eq!(handoff.context, None);
    }

    #[test]
    fn a_card_needs_a_conversation_and_a_card_s_shape() {
        let now = Utc::now();
        let keys = SsoKeys::new(&[], &[SECRET.to_owned()], None).unwrap();
        let lamp = json!({
            "kind": "product", "id": "sku-3141", "title": "Walnut desk lamp",
            "url": "https://shop.example/products/3141",
        });
        let mut good = claims(now);
        good["context"] = lamp.clone();
        let handoff = keys.verify(&token(&good), now).unwrap();
        assert_eq!(handoff.context.unwrap().title, "Walnut desk lamp");

        let mut alone = claims(now);
        alone["context"] = lamp.clone();
        alone.as_object_mut().unwrap().remove("with");
        let mut forged = claims(now);
        forged["context"] = lamp;
        forged["context"]["discount"] = json!("100%");
        for bad in [alone, forged] {
            assert!(matches!(
                keys.verify(&token(&bad), now).unwrap_err(),
                Refusal::InvalidClaim { claim, .. } if claim == "context"
            ));
        }
    }

    #[test]
    fn bad_claims_and_keys_are_refused() {
        let now = Utc::now();
        let keys = SsoKeys::new(
            &[],
            &[SECRET.to_owned()],
            Some("https://shop.example".into()),
        )
        .unwrap();
        let with = |key: &str, value: Value| {
            let mut c = claims(now);
            c[key] = value;
            keys.verify(&token(&c), now).unwrap_err()
        };
        assert_eq!(
            with("iss", json!("https://evil.example")),
            Refusal::WrongIssuer
        );
        assert!(
            matches!(with("with", json!("u-1")), Refusal::InvalidClaim { claim, .. } if claim == "with")
        );
        assert!(
            matches!(with("jti", json!("")), Refusal::InvalidClaim { claim, .. } if claim == "jti")
        );
        assert_eq!(with("exp", json!(now.timestamp() + 3600)), Refusal::TooLong);
        assert_eq!(keys.verify("a.b", now).unwrap_err(), Refusal::Malformed);
        assert_eq!(
            SsoKeys::default()
                .verify(&token(&claims(now)), now)
                .unwrap_err(),
            Refusal::NotConfigured
        );
        assert!(matches!(
            SsoKeys::new(&[], &["short".into()], None),
            Err(KeyError::ShortSecret)
        ));
        assert!(matches!(
            SsoKeys::new(&[b"not a pem".to_vec()], &[], None),
            Err(KeyError::PublicKey(_))
        ));
    }
}
