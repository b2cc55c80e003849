//! The shop's side of Parley: sign-in tokens for its people (HS256, with the secret Parley
//! knows as `PARLEY_SSO_SECRET`), product and order cards, and calls to the server API with
//! the shop's key.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::catalog::{self, Order, Person, Product};

/// A sign-in token lives this long: enough to click, never long enough to be worth stealing.
const TOKEN_LIFETIME_SECS: u64 = 300;

/// What can go wrong when talking to Parley.
#[derive(Debug)]
pub(crate) enum ParleyError {
    /// Parley could not be reached, or answered something that is not JSON.
    Unreachable(reqwest::Error),
    /// Parley refused the request: its status and problem document.
    Refused(StatusCode, String),
    /// A token could not be made (no randomness, or a key the library refuses).
    Token(String),
}

impl std::fmt::Display for ParleyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(error) => write!(f, "Parley could not be reached: {error}"),
            Self::Refused(status, problem) => write!(f, "Parley answered {status}: {problem}"),
            Self::Token(why) => write!(f, "no sign-in token could be made: {why}"),
        }
    }
}

impl std::error::Error for ParleyError {}

impl From<reqwest::Error> for ParleyError {
    fn from(error: reqwest::Error) -> Self {
        Self::Unreachable(error)
    }
}

/// Parley as the shop reaches it.
#[derive(Clone)]
pub(crate) struct Parley {
    /// Parley's address as browsers reach it (`https://chat.shop.example`): tokens go there.
    pub(crate) url: String,
    api_key: String,
    sso_secret: Vec<u8>,
    /// The shop's own address, for the links on cards.
    shop_url: String,
    /// Where the cards' pictures are (the shop's own, unless a CDN serves them); `None`:
    /// cards without pictures.
    picture_base: Option<String>,
    http: reqwest::Client,
}

impl Parley {
    pub(crate) fn new(
        url: String,
        api_key: String,
        sso_secret: Vec<u8>,
        shop_url: String,
        picture_base: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            url,
            api_key,
            sso_secret,
            shop_url,
            picture_base,
            http,
        }
    }

    /// A token that signs `person` in to Parley, once, within five minutes: into the
    /// conversation with `with` (the product's card waiting there, when given), else the chat.
    ///
    /// # Errors
    /// No randomness for the token's id, or a key the JWT library refuses.
    pub(crate) fn sign_in_token(
        &self,
        person: &Person,
        with: Option<&Person>,
        context: Option<Value>,
    ) -> Result<String, ParleyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut id = [0_u8; 16];
        getrandom::fill(&mut id).map_err(|error| ParleyError::Token(error.to_string()))?;
        let mut claims = json!({
            "iss": self.shop_url,
            "aud": "parley",
            "sub": person.id,
            "name": person.name,
            "username": person.username,
            "role": if person.seller { "seller" } else { "customer" },
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "jti": hex::encode(id),
        });
        if let Some(with) = with {
            claims["with"] = json!(with.id);
        }
        if let Some(context) = context {
            claims["context"] = context;
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.sso_secret),
        )
        .map_err(|error| ParleyError::Token(error.to_string()))
    }

    /// The card of a product, as it is now: the card freezes it.
    pub(crate) fn product_card(&self, product: &Product) -> Value {
        let mut card = json!({
            "kind": "product",
            "id": product.id,
            "title": product.title,
            "url": format!("{}/products/{}", self.shop_url, product.id),
            "price": {"amount": product.price, "currency": product.currency},
        });
        if let Some(base) = &self.picture_base {
            card["image_url"] = json!(format!("{base}/pictures/{}.svg", product.id));
        }
        card
    }

    /// The card of an order at `status`.
    pub(crate) fn order_card(&self, order: &Order, product: &Product, status: &str) -> Value {
        json!({
            "kind": "order",
            "id": order.id,
            "title": format!("Order #{}", order.id),
            "url": format!("{}/orders/{}", self.shop_url, order.id),
            "price": {"amount": product.price, "currency": product.currency},
            "status": status,
        })
    }

    /// Tells Parley about `person` (created or updated), so that others can be sent to a
    /// conversation with them before they ever open the chat.
    ///
    /// # Errors
    /// Parley unreachable, or refusing.
    pub(crate) async fn put_user(&self, person: &Person) -> Result<Value, ParleyError> {
        let body = json!({
            "name": person.name,
            "username": person.username,
            "role": if person.seller { "seller" } else { "customer" },
        });
        self.call(Method::PUT, &format!("/users/{}", person.id), &body, None)
            .await
    }

    /// Posts "Order #… has shipped." with the order's new card in the conversation of its
    /// customer and seller, as the marketplace itself (a system message). Retried, the same
    /// update is stored once (its `Idempotency-Key` names the order and the status).
    ///
    /// # Errors
    /// Parley unreachable, or refusing.
    pub(crate) async fn post_order_update(
        &self,
        order: &Order,
        status: &str,
        text: &str,
    ) -> Result<Value, ParleyError> {
        let product = catalog::product(order.product)
            .ok_or_else(|| ParleyError::Token(format!("order {} has no product", order.id)))?;
        let conversation = self
            .call(
                Method::POST,
                "/conversations",
                &json!({"participants": [order.customer, product.seller]}),
                None,
            )
            .await?;
        let path = format!("/conversations/{}/messages", conversation["id"]);
        let body = json!({
            "from": null,
            "body": text,
            "context": self.order_card(order, product, status),
        });
        let key = format!("order-{}-{status}", order.id);
        self.call(Method::POST, &path, &body, Some(&key)).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ParleyError> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.api_key)
            .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            Ok(response.json().await?)
        } else {
            Err(ParleyError::Refused(status, response.text().await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn parley(pictures: Option<&str>) -> Parley {
        Parley::new(
            "https://chat.shop.example".into(),
            "prl_key".into(),
            b"a shared secret of at least 32 bytes!".to_vec(),
            "https://shop.example".into(),
            pictures.map(str::to_owned),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn a_contact_token_names_both_people_and_carries_the_card() {
        let parley = parley(Some("https://img.shop.example"));
        let bob = catalog::person("c-bob").unwrap();
        let ann = catalog::person("s-ann").unwrap();
        let vase = catalog::product("vase-7").unwrap();
        let token = parley
            .sign_in_token(bob, Some(ann), Some(parley.product_card(vase)))
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["parley"]);
        let claims: Value = jsonwebtoken::decode(
            &token,
            &DecodingKey::from_secret(b"a shared secret of at least 32 bytes!"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "c-bob");
        assert_eq!(claims["with"], "s-ann");
        assert_eq!(claims["role"], "customer");
        assert_eq!(claims["context"]["price"]["amount"], "24.00");
        assert_eq!(
            claims["context"]["image_url"],
            "https://img.shop.example/pictures/vase-7.svg"
        );
        let again = parley.sign_in_token(bob, None, None).unwrap();
        assert_ne!(token, again, "each token has its own jti");
    }

    #[test]
    fn without_a_picture_host_cards_have_no_picture() {
        let vase = catalog::product("vase-7").unwrap();
        assert!(parley(None).product_card(vase).get("image_url").is_none());
    }
}
