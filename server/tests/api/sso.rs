//! Signing in from the marketplace (`/sso`): a token signed with the marketplace's Ed25519 key
//! or shared secret signs its person in and opens the conversation it names; every kind of bad
//! token gets a page that says why, and creates nothing. A token's product card waits for the
//! customer's first message.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use app::{
    integration::{cards::CardRules, sso::SsoKeys},
    model::ContextCard,
    protocol::{ClientFrame, ServerFrame},
};
use server::config::Config;

use crate::helpers::{Browser, Footprint, Scratch, TestApp, TestDb};

/// The shared secret of the HS256 tests.
const SECRET: &str = "a shared secret of more than 32 bytes, for tests";

/// A marketplace's signing keys: an Ed25519 pair (Parley gets the public half) and a secret.
struct Signer {
    private_pem: String,
    public_pem: String,
}

impl Signer {
    fn new() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            private_pem: pair.serialize_pem(),
            public_pem: pair.public_key_pem(),
        }
    }

    fn eddsa(&self, claims: &Value) -> String {
        let key = EncodingKey::from_ed_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
    }
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Claims for `sub`, valid for five minutes, with a fresh `jti`.
fn claims(sub: &str, name: &str) -> Value {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "https://shop.example",
        "aud": "parley",
        "sub": sub,
        "name": name,
        "iat": now,
        "exp": now + 300,
        "jti": format!("jti-{}-{}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    })
}

/// Parley trusting `signer`'s public key (and the previous one, `previous`) and [`SECRET`].
async fn app_trusting(db: TestDb, signer: &Signer, previous: Option<&Signer>) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    let mut keys = vec![signer.public_pem.clone().into_bytes()];
    keys.extend(previous.map(|p| p.public_pem.clone().into_bytes()));
    config.sso = SsoKeys::new(&keys, &[SECRET.to_owned()], None).unwrap();
    config.cards = CardRules {
        https_only: true,
        image_origins: vec!["https://img.shop.example".into()],
    };
    TestApp::start(config, scratch, db).await
}

/// The card of a product page.
fn lamp() -> Value {
    json!({
        "kind": "product",
        "id": "sku-3141",
        "title": "Walnut desk lamp",
        "url": "https://shop.example/products/3141",
        "image_url": "https://img.shop.example/3141.jpg",
        "price": {"amount": "24.00", "currency": "EUR"},
    })
}

/// Follows the handoff with `token`; answers the status, the redirect and the page.
async fn hand_off(browser: &Browser, token: &str) -> (StatusCode, Option<String>, String) {
    let response = browser.get(&format!("/sso?token={token}")).await;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

/// Emits `name::postgres` and `name::sqlite`, each running `scenario` on a Parley that trusts
/// a fresh marketplace signer.
macro_rules! on_each_db {
    ($(#[doc = $doc:literal])* async fn $name:ident($app:ident, $signer:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            use super::*;

            async fn scenario($app: TestApp, $signer: Signer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let signer = Signer::new();
                scenario(app_trusting(TestDb::Postgres, &signer, None).await, signer).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let signer = Signer::new();
                scenario(app_trusting(TestDb::Sqlite, &signer, None).await, signer).await;
            }
        }
    };
}

on_each_db! {
    /// The customer's first sign-in makes their account and opens the conversation with the
    /// seller; the token can't be used again; a later sign-in updates the name and keeps the
    /// account. Without `with`: `return_to`, else `/chat`.
    async fn signing_in_from_the_marketplace_opens_the_conversation(app, signer) {
        let seller = app.browser();
        let mut seller_claims = claims("s-1", "Ann's Ceramics");
        seller_claims["username"] = json!("ann");
        seller_claims["role"] = json!("seller");
        let (status, location, _) = hand_off(&seller, &signer.eddsa(&seller_claims)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/chat"));
        assert_eq!(seller.me().await.unwrap().username, "ann");

        let customer = app.browser();
        let mut customer_claims = claims("c-1", "Bob");
        customer_claims["with"] = json!("s-1");
        customer_claims["email"] = json!("bob@example.com");
        let token = signer.eddsa(&customer_claims);
        let (status, location, _) = hand_off(&customer, &token).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/chat/@ann"));
        let bob = customer.me().await.unwrap();
        assert_eq!(bob.display_name, "Bob");
        let conversations = customer.conversations().await;
        assert_eq!(conversations.len(), 1);
        assert_eq!(conversations[0].other.username, "ann");

        // The same token again: refused, and nobody new is signed in.
        let stranger = app.browser();
        let (status, _, page) = hand_off(&stranger, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("already been used"), "{page}");
        assert!(stranger.me().await.is_none());

        // A later sign-in: the same account, the marketplace's new name; `return_to` honoured.
        let mut again = claims("c-1", "Bob B.");
        again["return_to"] = json!("/settings");
        let (_, location, _) = hand_off(&customer, &hs256(SECRET.as_bytes(), &again)).await;
        assert_eq!(location.as_deref(), Some("/settings"));
        let bob_again = customer.me().await.unwrap();
        assert_eq!(bob_again.id, bob.id);
        assert_eq!(bob_again.display_name, "Bob B.");

        // Signing in over someone else's session replaces it with a new session id.
        let before = seller.cookie_header();
        hand_off(&seller, &signer.eddsa(&claims("c-1", "Bob B."))).await;
        assert_ne!(seller.cookie_header(), before);
        assert_eq!(seller.me().await.unwrap().id, bob.id);
    }
}

on_each_db! {
    /// "Contact seller" with the product's card: the card waits above the customer's composer
    /// (in the summary), goes with their first message (the frame only asks for it), and then
    /// is what the conversation is about for both; the next message goes without it. A card
    /// left waiting can be removed.
    async fn a_card_from_the_sign_in_goes_with_the_first_message(app, signer) {
        let seller = app.browser();
        let mut seller_claims = claims("s-1", "Ann's Ceramics");
        seller_claims["username"] = json!("ann");
        hand_off(&seller, &signer.eddsa(&seller_claims)).await;

        let customer = app.browser();
        let mut contact = claims("c-1", "Bob");
        contact["with"] = json!("s-1");
        contact["context"] = lamp();
        let (status, location, page) = hand_off(&customer, &signer.eddsa(&contact)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location.as_deref(), Some("/chat/@ann"));
        let card: ContextCard = serde_json::from_value(lamp()).unwrap();
        let summary = customer.conversations().await.remove(0);
        assert_eq!(summary.waiting_card.as_ref(), Some(&card));
        assert_eq!(summary.about, None);
        assert_eq!(seller.conversations().await[0].waiting_card, None, "the customer's only");

        let mut seller_socket = seller.socket().await;
        let mut socket = customer.socket().await;
        let send = |id: &str, body: &str| ClientFrame::Send {
            conversation_id: summary.id,
            client_msg_id: id.into(),
            body: body.into(),
            attachment_ids: Vec::new(),
            with_card: true,
        };
        let acked = |id: &'static str| {
            move |frame| match frame {
                ServerFrame::Ack { message, .. } if message.client_msg_id == id => Some(message),
                _ => None,
            }
        };
        socket.send_frame(&send("m1", "Is it still available?")).await;
        let first = socket.next_matching(acked("m1")).await;
        assert_eq!(first.card.as_ref(), Some(&card));
        let live = seller_socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(live.card.as_ref(), Some(&card));
        // A retry of the same message answers it with its card; a new one has none left.
        socket.send_frame(&send("m1", "Is it still available?")).await;
        assert_eq!(socket.next_matching(acked("m1")).await.card.as_ref(), Some(&card));
        socket.send_frame(&send("m2", "And in oak?")).await;
        assert_eq!(socket.next_matching(acked("m2")).await.card, None);
        for person in [&customer, &seller] {
            let summary = person.conversations().await.remove(0);
            assert_eq!(summary.about.as_ref(), Some(&card));
            assert_eq!(summary.waiting_card, None);
            let page = person.history(&summary, None, None).await;
            assert_eq!(page.messages[0].card.as_ref(), Some(&card));
            assert_eq!(page.messages[1].card, None);
        }

        // Another visit leaves the card again; "Remove" takes it away.
        let mut again = claims("c-1", "Bob");
        again["with"] = json!("s-1");
        again["context"] = lamp();
        hand_off(&customer, &signer.eddsa(&again)).await;
        assert!(customer.conversations().await[0].waiting_card.is_some());
        let removed = customer
            .post("drop_waiting_card", &[("conversation_id", &summary.id.to_string())])
            .await;
        assert_eq!(removed.status(), StatusCode::OK);
        assert_eq!(customer.conversations().await[0].waiting_card, None);
        let stranger = app.user("mallory").await.0;
        let refused = stranger
            .post("drop_waiting_card", &[("conversation_id", &summary.id.to_string())])
            .await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }
}

on_each_db! {
    /// Every kind of bad token is refused with a page that says why, and nothing is created:
    /// no account, no session, no conversation.
    async fn bad_tokens_are_refused_and_create_nothing(app, signer) {
        let other = Signer::new();
        let base = || claims("c-9", "Mallory");
        let with_claim = |key: &str, value: Value| {
            let mut c = base();
            c[key] = value;
            c
        };
        let without = |key: &str| {
            let mut c = base();
            c.as_object_mut().unwrap().remove(key);
            c
        };
        let now = chrono::Utc::now().timestamp();
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(base().to_string())
        );
        let cases: Vec<(&str, String, StatusCode, &str)> = vec![
            ("another key", other.eddsa(&base()), StatusCode::UNAUTHORIZED, "signature"),
            ("alg none", unsigned, StatusCode::UNAUTHORIZED, "algorithm"),
            (
                "HS256 with the public key as its secret",
                hs256(signer.public_pem.as_bytes(), &base()),
                StatusCode::UNAUTHORIZED,
                "signature",
            ),
            ("another secret", hs256(b"another secret that is long enough!!", &base()), StatusCode::UNAUTHORIZED, "signature"),
            ("wrong audience", signer.eddsa(&with_claim("aud", json!("someone-else"))), StatusCode::UNAUTHORIZED, "audience"),
            ("expired", signer.eddsa(&with_claim("exp", json!(now - 120))), StatusCode::UNAUTHORIZED, "expired"),
            ("too far ahead", signer.eddsa(&with_claim("exp", json!(now + 3600))), StatusCode::UNAUTHORIZED, "10 minutes"),
            ("no jti", signer.eddsa(&without("jti")), StatusCode::BAD_REQUEST, "jti"),
            ("no sub", signer.eddsa(&without("sub")), StatusCode::BAD_REQUEST, "sub"),
            ("no name", signer.eddsa(&without("name")), StatusCode::BAD_REQUEST, "name"),
            ("no exp", signer.eddsa(&without("exp")), StatusCode::BAD_REQUEST, "exp"),
            ("a blank name", signer.eddsa(&with_claim("name", json!(" "))), StatusCode::BAD_REQUEST, "name"),
            ("a bad role", signer.eddsa(&with_claim("role", json!("admin"))), StatusCode::BAD_REQUEST, "role"),
            ("another site", signer.eddsa(&with_claim("return_to", json!("https://evil.example/"))), StatusCode::BAD_REQUEST, "another site"),
            ("protocol-relative", signer.eddsa(&with_claim("return_to", json!("//evil.example"))), StatusCode::BAD_REQUEST, "another site"),
            ("an unknown partner", signer.eddsa(&with_claim("with", json!("nobody"))), StatusCode::UNPROCESSABLE_ENTITY, "not known"),
            ("a card with no conversation", signer.eddsa(&with_claim("context", lamp())), StatusCode::BAD_REQUEST, "give `with`"),
            ("a forged card field", {
                let mut c = with_claim("with", json!("s-9"));
                c["context"] = lamp();
                c["context"]["discount"] = json!("100%");
                signer.eddsa(&c)
            }, StatusCode::BAD_REQUEST, "discount"),
            ("a card picture from elsewhere", {
                let mut c = with_claim("with", json!("s-9"));
                c["context"] = lamp();
                c["context"]["image_url"] = json!("https://evil.example/pixel.gif");
                signer.eddsa(&c)
            }, StatusCode::BAD_REQUEST, "context.image_url"),
            ("a card link over http", {
                let mut c = with_claim("with", json!("s-9"));
                c["context"] = lamp();
                c["context"]["url"] = json!("http://shop.example/products/3141");
                signer.eddsa(&c)
            }, StatusCode::BAD_REQUEST, "context.url"),
            ("a price that is a number", {
                let mut c = with_claim("with", json!("s-9"));
                c["context"] = lamp();
                c["context"]["price"]["amount"] = json!(24.0);
                signer.eddsa(&c)
            }, StatusCode::BAD_REQUEST, "context"),
            ("not a token", "garbage".to_owned(), StatusCode::BAD_REQUEST, "not a valid token"),
        ];
        let before: Footprint = app.footprint().await;
        for (case, token, status, says) in cases {
            let browser = app.browser();
            let (actual, location, page) = hand_off(&browser, &token).await;
            assert_eq!(actual, status, "{case}: {page}");
            assert_eq!(location, None, "{case}");
            assert!(page.to_lowercase().contains(&says.to_lowercase()), "{case}: {page}");
            assert!(browser.me().await.is_none(), "{case}");
        }
        let after = app.footprint().await;
        assert_eq!((after.users, after.conversations), (before.users, before.conversations));
        let missing = app.browser().get("/sso").await;
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    }
}

/// Keys rotate: a token signed with the previous public key still works while it is
/// configured; a form POSTed from the marketplace's own page (another origin) works too.
/// Without keys, the handoff is off. The verification is the same on either database: SQLite
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_the_marketplace_may_post_the_form() {
    let (current, previous) = (Signer::new(), Signer::new());
    let app = app_trusting(TestDb::Sqlite, &current, Some(&previous)).await;
    let browser = app.browser();
    let (status, _, page) = hand_off(&browser, &previous.eddsa(&claims("c-1", "Bob"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    let shop = Browser::new(app.addr, Some("https://shop.example".to_owned()));
    let token = current.eddsa(&claims("c-2", "Carol"));
    let response = shop
        .http
        .post(app.url("/sso"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The browser now reads Parley's own pages (from Parley's origin) with its new session.
    let cookie = shop.cookie_header().unwrap();
    assert_eq!(
        app.me_with_cookie(&cookie).await.unwrap().display_name,
        "Carol"
    );

    let plain = TestApp::spawn(TestDb::Sqlite).await;
    let (status, _, page) = hand_off(&plain.browser(), &current.eddsa(&claims("c-1", "Bob"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not set up"), "{page}");
}

/// With `PARLEY_LOCAL_ACCOUNTS=false` the sign-in and sign-up pages send people to the
/// marketplace and the server functions refuse; the marketplace's sign-in still works. The
/// same on either database: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_local_accounts_people_come_through_the_marketplace() {
    let signer = Signer::new();
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.sso = SsoKeys::new(&[signer.public_pem.clone().into_bytes()], &[], None).unwrap();
    config.local_accounts = false;
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let browser = app.browser();
    for page in ["/login", "/register"] {
        let response = browser.get(page).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("Sign in through the marketplace"),
            "{page}: {text}"
        );
    }
    let refused = browser
        .post(
            "register",
            &[
                ("username", "mallory"),
                ("display_name", "Mallory"),
                ("password", "correct horse battery"),
                ("password_confirm", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = browser.login("mallory", "correct horse battery").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.footprint().await.users, 0);

    let (status, _, _) = hand_off(&browser, &signer.eddsa(&claims("c-1", "Bob"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(browser.me().await.unwrap().display_name, "Bob");
}
