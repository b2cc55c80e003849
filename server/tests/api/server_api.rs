//! The server API (`/api/v1`) from the outside, as a marketplace's backend calls it: keys,
//! users, unread counts, errors as problems, the rate limit per key, the OpenAPI document, and
//! the `server keys` commands.

use std::{num::NonZeroU32, process::Command, sync::Arc};

use reqwest::{Method, StatusCode, header};
use sea_orm::{
    ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde_json::{Value, json};

use app::{
    entity::users,
    integration::{api_keys, cards::CardRules},
    model::ConversationId,
    protocol::{ClientFrame, ServerFrame},
};
use server::config::Config;

use crate::helpers::{PASSWORD, Scratch, TestApp, TestDb, for_each_db};

/// The marketplace's backend: one API key, and plain JSON requests.
struct Marketplace {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Marketplace {
    /// A backend holding a new key called `name`, made in `app`'s database.
    async fn new(app: &TestApp, name: &str) -> Self {
        let key = api_keys::create(&database(app).await, name).await.unwrap();
        Self::with_key(app, &key)
    }

    fn with_key(app: &TestApp, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: app.url("/api/v1"),
            key: key.to_owned(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> reqwest::Response {
        let request = self.request(method, path);
        match body {
            Some(body) => request.json(body),
            None => request,
        }
        .send()
        .await
        .expect("request")
    }

    /// Sends, and returns the status and the JSON answer.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        answer(self.send(method, path, body).await).await
    }

    async fn put_user(&self, external_id: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, &format!("/users/{external_id}"), Some(&body))
            .await
    }
}

/// The status and the JSON of a response; problems must be `application/problem+json`.
async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let media = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let expected = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    assert_eq!(media, expected, "{status}: {text}");
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"));
    if !status.is_success() {
        assert_eq!(value["status"], status.as_u16(), "{value}");
        assert!(
            value["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:parley:problem:")),
            "{value}"
        );
        assert!(value["title"].is_string(), "{value}");
    }
    (status, value)
}

async fn database(app: &TestApp) -> DatabaseConnection {
    Database::connect(&app.scratch.url).await.unwrap()
}

/// Links a Parley account (signed up in a browser) to the marketplace id `external_id`, as an
/// account that signed in through the marketplace is: the tests can then open its sockets.
async fn link(app: &TestApp, username: &str, external_id: &str) {
    users::Entity::update_many()
        .col_expr(users::Column::ExternalId, Expr::value(external_id))
        .filter(users::Column::Username.eq(username))
        .exec(&database(app).await)
        .await
        .unwrap();
}

for_each_db! {
    /// No key, a malformed one, a wrong one and a revoked one are all 401, and a revoked key
    /// stops working on the running server at once.
    async fn requests_need_a_valid_key(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (status, _) = shop.put_user("u-1", json!({"name": "Ann"})).await;
        assert_eq!(status, StatusCode::CREATED);

        let anonymous = reqwest::Client::new()
            .get(app.url("/api/v1/users/u-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"parley\""
        );
        let (status, problem) = answer(anonymous).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(problem["type"], "urn:parley:problem:unauthorized");
        let basic = reqwest::Client::new()
            .get(app.url("/api/v1/users/u-1"))
            .basic_auth("shop", Some(&shop.key))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        for wrong in ["prl_wrong", "", &format!("{}x", shop.key)] {
            let (status, _) = Marketplace::with_key(&app, wrong)
                .call(Method::GET, "/users/u-1", None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        }

        api_keys::revoke(&database(&app).await, "shop").await.unwrap();
        let (status, problem) = shop.call(Method::GET, "/users/u-1", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(problem["detail"].as_str().unwrap().contains("revoked"), "{problem}");
        // A new key works at once too.
        let (status, _) = Marketplace::new(&app, "shop-2")
            .await
            .call(Method::GET, "/users/u-1", None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

for_each_db! {
    /// A user is created (201) then updated (200): the same Parley account, the username kept,
    /// the name, e-mail and role the marketplace's. A taken username gets a suffix, and such
    /// accounts can't sign in with a password.
    async fn users_are_created_then_updated(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (status, ann) = shop
            .put_user(
                "u-1001",
                json!({"name": "Ann Seller", "username": "ann", "email": "ann@shop.example", "role": "seller"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ann}");
        assert_eq!(ann["external_id"], "u-1001");
        assert_eq!(ann["username"], "ann");
        assert_eq!(ann["name"], "Ann Seller");
        assert_eq!(ann["role"], "seller");
        assert!(ann["id"].as_i64().unwrap() > 0);

        let (status, again) = shop
            .put_user("u-1001", json!({"name": "Ann S.", "username": "other", "role": "customer"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["id"], ann["id"]);
        assert_eq!(again["username"], "ann");
        assert_eq!(again["name"], "Ann S.");
        assert_eq!(again["email"], Value::Null);
        assert_eq!(again["role"], "customer");
        let (status, fetched) = shop.call(Method::GET, "/users/u-1001", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(fetched, again);

        // Someone already has the username: a Parley account, then another marketplace user.
        let _ = app.user("bob").await;
        let (_, bob) = shop
            .put_user("u-2", json!({"name": "Bob", "username": "bob"}))
            .await;
        assert_eq!(bob["username"], "bob-2");
        // No username: one is made from the name.
        let (_, zoe) = shop.put_user("u-3", json!({"name": "Zoë Shop"})).await;
        assert_eq!(zoe["username"], "zo.shop");

        // Found by people search like anyone, but no password signs in as them.
        let browser = app.browser();
        let refused = browser.login("ann", PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let refused = browser.login("ann", "!").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
}

for_each_db! {
    /// Every kind of bad input is a problem that says what is wrong (and where), and stores
    /// nothing.
    async fn bad_input_is_a_problem_that_names_the_field(app) {
        let shop = Marketplace::new(&app, "shop").await;

        let (status, problem) = shop.put_user("u-1", json!({"username": "a b"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["type"], "urn:parley:problem:invalid");
        assert_eq!(problem["errors"][0]["pointer"], "#/name", "{problem}");

        let (status, problem) = shop
            .put_user("u-1", json!({"name": "", "username": "a b", "email": "nope", "role": "seller"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let pointers: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(pointers, ["#/name", "#/username", "#/email"], "{problem}");

        let (status, problem) = shop
            .put_user("u-1", json!({"name": "Ann", "role": "admin"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/role", "{problem}");
        let (status, problem) = shop
            .put_user("u-1", json!({"name": "Ann", "is_admin": true}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/is_admin", "{problem}");
        let (status, problem) = shop.put_user("u-1", json!({"name": 5})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/name", "{problem}");

        let long = "x".repeat(129);
        let (status, problem) = shop.put_user(&long, json!({"name": "Ann"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["parameter"], "external_id", "{problem}");

        let not_json = shop
            .request(Method::PUT, "/users/u-1")
            .header(header::CONTENT_TYPE, "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        let (status, problem) = answer(not_json).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:parley:problem:bad_request");
        let form = shop
            .request(Method::PUT, "/users/u-1")
            .form(&[("name", "Ann")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer(form).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let huge = json!({"name": "Ann", "email": "x".repeat(100_000)});
        assert_eq!(
            shop.put_user("u-1", huge).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        let (status, problem) = shop.call(Method::GET, "/nothing/here", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["type"], "urn:parley:problem:not_found");
        let (status, problem) = shop.call(Method::DELETE, "/users/u-1", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{problem}");

        // Nothing of it was stored.
        let (status, problem) = shop.call(Method::GET, "/users/u-1", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_eq!(shop.call(Method::GET, "/users/u-1/unread", None).await.0, StatusCode::NOT_FOUND);
    }
}

for_each_db! {
    /// The unread badge of a user with nothing to read, and of one unknown.
    async fn unread_is_counted_for_known_users(app) {
        let shop = Marketplace::new(&app, "shop").await;
        shop.put_user("u-1", json!({"name": "Ann"})).await;
        let (status, unread) = shop.call(Method::GET, "/users/u-1/unread", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(unread, json!({"unread": 0, "conversations": 0}));
    }
}

for_each_db! {
    /// One conversation per pair: created (201), then the same one (200) in either order; bad
    /// participants are problems pointing at the one that is wrong.
    async fn conversations_are_opened_once_per_pair(app) {
        let shop = Marketplace::new(&app, "shop").await;
        shop.put_user("u-1", json!({"name": "Ann", "username": "ann"})).await;
        shop.put_user("u-2", json!({"name": "Bob", "username": "bob"})).await;
        let open = |participants: Value| {
            let shop = &shop;
            async move {
                shop.call(Method::POST, "/conversations", Some(&json!({"participants": participants})))
                    .await
            }
        };

        let (status, created) = open(json!(["u-1", "u-2"])).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["url"], app.url(&format!("/conversations/{id}")));
        assert_eq!(created["participants"][0]["external_id"], "u-1");
        assert_eq!(created["participants"][1]["username"], "bob");
        assert_eq!(created["last_seq"], 0);
        let (status, again) = open(json!(["u-2", "u-1"])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["id"], id);
        assert_eq!(again["participants"][0]["external_id"], "u-2");

        for (participants, pointer) in [
            (json!(["u-1"]), "#/participants"),
            (json!(["u-1", "u-2", "u-3"]), "#/participants"),
            (json!(["u-1", "nobody"]), "#/participants/1"),
            (json!(["", "u-2"]), "#/participants/0"),
            (json!(["u-1", "u-1"]), "#/participants"),
            (json!(["u-1", 2]), "#/participants/1"),
        ] {
            let (status, problem) = open(participants.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{participants}: {problem}");
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{participants}: {problem}");
        }
        let (_, list) = shop.call(Method::GET, "/users/u-1/conversations", None).await;
        assert_eq!(list["conversations"].as_array().unwrap().len(), 1, "{list}");
    }
}

for_each_db! {
    /// A message sent through the API as one of the two is stored once per Idempotency-Key,
    /// shown live in the other's open browser, counted unread until read, listed with the
    /// conversation, and read back in the history.
    async fn messages_sent_through_the_api_arrive_live_and_once(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (bob, _) = app.user("bob").await;
        link(&app, "bob", "u-bob").await;
        shop.put_user("u-ann", json!({"name": "Ann Seller", "username": "ann"})).await;
        let (status, _) = shop.put_user("u-bob", json!({"name": "Bob", "role": "customer"})).await;
        assert_eq!(status, StatusCode::OK, "bob is linked already");
        let (_, conversation) = shop
            .call(Method::POST, "/conversations", Some(&json!({"participants": ["u-ann", "u-bob"]})))
            .await;
        let id = conversation["id"].as_i64().unwrap();
        let mut socket = bob.socket().await;

        let path = format!("/conversations/{id}/messages");
        let send = |key: Option<&'static str>, body: Value| {
            let (shop, path) = (&shop, path.clone());
            async move {
                let mut request = shop.request(Method::POST, &path).json(&body);
                if let Some(key) = key {
                    request = request.header("Idempotency-Key", key);
                }
                answer(request.send().await.unwrap()).await
            }
        };
        let (status, message) = send(
            Some("order-1042-packed"),
            json!({"from": "u-ann", "body": "Your order is packed."}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        assert_eq!(message["seq"], 1);
        assert_eq!(message["from"], "u-ann");
        assert_eq!(message["sender"]["username"], "ann");
        let live = socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(live.body, "Your order is packed.");
        assert_eq!(live.id.0, message["id"].as_i64().unwrap());

        // The retry stores nothing and answers the same; the key with another body is refused.
        let (status, retried) = send(
            Some("order-1042-packed"),
            json!({"from": "u-ann", "body": "Your order is packed."}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(retried, message);
        let (status, problem) = send(
            Some("order-1042-packed"),
            json!({"from": "u-ann", "body": "Something else."}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["type"], "urn:parley:problem:idempotency_key_reused");
        let (status, problem) = send(Some("not a key"), json!({"from": "u-ann", "body": "x"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["parameter"], "Idempotency-Key", "{problem}");

        // Bad senders and bodies.
        shop.put_user("u-carol", json!({"name": "Carol"})).await;
        let (status, problem) = send(None, json!({"from": "u-carol", "body": "Hi"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/from", "{problem}");
        let (status, problem) = send(None, json!({"from": "u-ann", "body": "   "})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/body", "{problem}");
        let (status, _) = shop
            .call(Method::POST, "/conversations/999999/messages", Some(&json!({"from": "u-ann", "body": "Hi"})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Bob's side: one unread, in the list with its last message, and in the history.
        let (second_status, _) = send(None, json!({"from": "u-bob", "body": "Thanks!"})).await;
        assert_eq!(second_status, StatusCode::CREATED);
        let (_, unread) = shop.call(Method::GET, "/users/u-bob/unread", None).await;
        assert_eq!(unread, json!({"unread": 0, "conversations": 0}), "bob's own message read it");
        send(None, json!({"from": "u-ann", "body": "It ships tomorrow."})).await;
        let (_, unread) = shop.call(Method::GET, "/users/u-bob/unread", None).await;
        assert_eq!(unread, json!({"unread": 1, "conversations": 1}));
        let (_, list) = shop.call(Method::GET, "/users/u-bob/conversations", None).await;
        let entry = &list["conversations"][0];
        assert_eq!(entry["with"]["external_id"], "u-ann", "{list}");
        assert_eq!(entry["unread"], 1);
        assert_eq!(entry["last_message"]["body"], "It ships tomorrow.");
        assert_eq!(entry["last_message"]["from"], "u-ann");
        assert_eq!(list["next"], Value::Null);

        let (status, history) = shop.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        let bodies: Vec<&str> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, ["Your order is packed.", "Thanks!", "It ships tomorrow."]);
        let (_, newer) = shop.call(Method::GET, &format!("{path}?after=2"), None).await;
        assert_eq!(newer["messages"][0]["seq"], 3, "{newer}");
        let (_, older) = shop.call(Method::GET, &format!("{path}?before=2"), None).await;
        assert_eq!(older["messages"].as_array().unwrap().len(), 1, "{older}");
        let (status, _) = shop.call(Method::GET, &format!("{path}?before=2&after=1"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Read in the browser: the badge goes back to zero.
        socket
            .send_frame(&ClientFrame::Read {
                conversation_id: ConversationId(id),
                seq: 3,
            })
            .await;
        let mut unread = Value::Null;
        for _ in 0..50 {
            unread = shop.call(Method::GET, "/users/u-bob/unread", None).await.1;
            if unread["unread"] == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(unread, json!({"unread": 0, "conversations": 0}));
    }
}

for_each_db! {
    /// A system message (`"from": null`) is the marketplace's: shown live to both people as a
    /// notice, unread for both, `kind: system` in the history; a missing `from` is refused
    /// rather than taken for one. The marketplace's account is nobody anyone can find or write
    /// to.
    async fn system_messages_reach_both_people(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (ann, _) = app.user("ann").await;
        let (bob, _) = app.user("bob").await;
        link(&app, "ann", "u-ann").await;
        link(&app, "bob", "u-bob").await;
        let (_, conversation) = shop
            .call(Method::POST, "/conversations", Some(&json!({"participants": ["u-ann", "u-bob"]})))
            .await;
        let path = format!("/conversations/{}/messages", conversation["id"]);
        let mut sockets = [ann.socket().await, bob.socket().await];

        let (status, problem) = shop.call(Method::POST, &path, Some(&json!({"body": "Hi"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "#/from", "{problem}");

        let (status, notice) = shop
            .call(Method::POST, &path, Some(&json!({"from": null, "body": "Order #1042 has shipped."})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{notice}");
        assert_eq!(notice["kind"], "system");
        assert_eq!(notice["from"], Value::Null);
        assert_eq!(notice["sender"], Value::Null);
        assert_eq!(notice["seq"], 1);
        for socket in &mut sockets {
            let live = socket
                .next_matching(|frame| match frame {
                    ServerFrame::Message { message } => Some(message),
                    _ => None,
                })
                .await;
            assert_eq!(live.kind, app::model::MessageKind::System);
            assert_eq!(live.body, "Order #1042 has shipped.");
        }
        for person in ["u-ann", "u-bob"] {
            let (_, unread) = shop.call(Method::GET, &format!("/users/{person}/unread"), None).await;
            assert_eq!(unread, json!({"unread": 1, "conversations": 1}), "{person}");
        }
        let (_, history) = shop.call(Method::GET, &path, None).await;
        assert_eq!(history["messages"][0]["kind"], "system", "{history}");
        let summary = ann.conversations().await.remove(0);
        let page = ann.history(&summary, None, None).await;
        assert_eq!(page.messages[0].kind, app::model::MessageKind::System);
        assert_eq!(page.messages[0].sender.display_name, "Marketplace");

        assert!(ann.search("market").await.is_empty());
        let refused = ann
            .post("open_conversation", &[("username", "~marketplace")])
            .await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }
}

for_each_db! {
    /// The list pages by cursor; the link of a conversation opens it for either of its people
    /// and for nobody else.
    async fn lists_page_and_links_open_the_conversation(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (ann, _) = app.user("ann").await;
        link(&app, "ann", "u-ann").await;
        let (carol, _) = app.user("carol").await;
        for other in ["u-1", "u-2", "u-3"] {
            shop.put_user(other, json!({"name": other})).await;
            shop.call(Method::POST, "/conversations", Some(&json!({"participants": ["u-ann", other]})))
                .await;
        }
        let mut seen = Vec::new();
        let mut next = None::<String>;
        loop {
            let path = match &next {
                Some(cursor) => format!("/users/u-ann/conversations?limit=2&after={cursor}"),
                None => "/users/u-ann/conversations?limit=2".to_owned(),
            };
            let (status, page) = shop.call(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for entry in page["conversations"].as_array().unwrap() {
                seen.push(entry["with"]["external_id"].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["u-3", "u-2", "u-1"], "latest first, each once");
        for bad in ["limit=0", "limit=201", "after=nonsense", "limit=x", "colour=red"] {
            let (status, problem) = shop
                .call(Method::GET, &format!("/users/u-ann/conversations?{bad}"), None)
                .await;
            assert!(status.is_client_error(), "{bad}: {problem}");
        }

        let (_, conversation) = shop
            .call(Method::POST, "/conversations", Some(&json!({"participants": ["u-ann", "u-1"]})))
            .await;
        let url = conversation["url"].as_str().unwrap();
        let path = url.strip_prefix(&app.url("")).unwrap();
        let opened = ann.get(path).await;
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        let u1 = conversation["participants"][1]["username"].as_str().unwrap();
        assert_eq!(opened.headers()[header::LOCATION], format!("/chat/@{u1}"));
        assert_eq!(carol.get(path).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(carol.get("/conversations/nonsense").await.status(), StatusCode::NOT_FOUND);
        let stranger = app.browser().get(path).await;
        assert_eq!(
            stranger.headers()[header::LOCATION],
            format!("/login?next=%2Fconversations%2F{}", conversation["id"])
        );
    }
}

for_each_db! {
    /// Every fact is in the event log, in order: the conversation made, each message (a
    /// person's and the marketplace's, through the message writer and alone), and a read; the
    /// log is read by cursor and by type.
    async fn events_are_logged_in_order_and_pulled_by_cursor(app) {
        let shop = Marketplace::new(&app, "shop").await;
        let (bob, _) = app.user("bob").await;
        link(&app, "bob", "u-bob").await;
        shop.put_user("u-ann", json!({"name": "Ann"})).await;
        let (_, conversation) = shop
            .call(Method::POST, "/conversations", Some(&json!({"participants": ["u-ann", "u-bob"]})))
            .await;
        let id = conversation["id"].as_i64().unwrap();
        let path = format!("/conversations/{id}/messages");
        shop.call(Method::POST, &path, Some(&json!({"from": "u-ann", "body": "Hello Bob"}))).await;
        shop.call(Method::POST, &path, Some(&json!({"from": null, "body": "Order #1042 has shipped."}))).await;
        let mut socket = bob.socket().await;
        socket
            .send_frame(&ClientFrame::Read { conversation_id: ConversationId(id), seq: 2 })
            .await;
        let mut page = Value::Null;
        for _ in 0..50 {
            page = shop.call(Method::GET, "/events", None).await.1;
            if page["events"].as_array().unwrap().len() == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let events = page["events"].as_array().unwrap();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["conversation.created", "message.created", "message.created", "message.seen"],
            "{page}"
        );
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert!(events.iter().all(|e| e["id"].as_str().unwrap().starts_with("evt_")));
        assert_eq!(events[0]["data"]["conversation_id"], id);
        assert_eq!(events[0]["data"]["participants"][0]["external_id"], "u-bob", "bob signed up first");
        let message = &events[1]["data"]["message"];
        assert_eq!(message["from"], "u-ann", "{message}");
        assert_eq!(message["body"], "Hello Bob");
        assert_eq!(message["seq"], 1);
        assert_eq!(events[2]["data"]["message"]["kind"], "system");
        assert_eq!(events[2]["data"]["message"]["from"], Value::Null);
        assert_eq!(events[3]["data"]["user"]["external_id"], "u-bob");
        assert_eq!(events[3]["data"]["seq"], 2);
        assert_eq!(page["next"], seqs[3]);

        let (_, rest) = shop.call(Method::GET, &format!("/events?after={}", seqs[3]), None).await;
        assert_eq!(rest, json!({"events": [], "next": seqs[3]}));
        let (_, second) = shop.call(Method::GET, &format!("/events?after={}&limit=1", seqs[0]), None).await;
        assert_eq!(second["events"][0]["seq"], seqs[1]);
        assert_eq!(second["next"], seqs[1]);
        let (_, seen) = shop.call(Method::GET, "/events?types=message.seen,conversation.created", None).await;
        assert_eq!(seen["events"].as_array().unwrap().len(), 2, "{seen}");
        for bad in ["types=message.deleted", "limit=0", "limit=501", "after=-1", "after=x"] {
            let (status, problem) = shop.call(Method::GET, &format!("/events?{bad}"), None).await;
            assert!(status.is_client_error(), "{bad}: {problem}");
        }
    }
}

/// Past its quota a key is refused with 429 and `Retry-After`; another key is not. The limit
/// works the same on either database: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_limited_per_key() {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.limits.api_requests_per_minute = NonZeroU32::new(3).unwrap();
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let shop = Marketplace::new(&app, "shop").await;
    for _ in 0..3 {
        assert_eq!(
            shop.call(Method::GET, "/users/u-1", None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let refused = shop.send(Method::GET, "/users/u-1", None).await;
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let (status, problem) = answer(refused).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:parley:problem:rate_limited");
    let other = Marketplace::new(&app, "other").await;
    assert_eq!(
        other.call(Method::GET, "/users/u-1", None).await.0,
        StatusCode::NOT_FOUND
    );
}

/// The OpenAPI document is 3.1, describes every route the API answers (each route of the
/// document is served, and each route the issue fixes is in the document), and each request
/// example in it is accepted as it stands. SQLite only: the document is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_routes_and_its_examples_work() {
    let app = TestApp::spawn(TestDb::Sqlite).await;
    let shop = Marketplace::new(&app, "shop").await;
    let document: Value = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/users/{external_id}", "put"),
        ("/api/v1/users/{external_id}", "get"),
        ("/api/v1/users/{external_id}/unread", "get"),
        ("/api/v1/users/{external_id}/conversations", "get"),
        ("/api/v1/conversations", "post"),
        ("/api/v1/conversations/{id}/messages", "get"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/events", "get"),
        ("/api/v1/webhooks/deliveries", "get"),
        ("/api/v1/webhooks/deliveries/{id}/retry", "post"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is missing"
        );
    }

    // The examples name two people, u-1001 (whom the PUT example makes) and u-2002, and the
    // first conversation; the operations with a body run first, in the order that makes each
    // what the next needs: the user, the conversation, a message.
    shop.put_user("u-2002", json!({"name": "Bob"})).await;
    let mut operations: Vec<(String, Method, &Value)> = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((path.clone(), method, operation));
        }
    }
    operations.sort_by_key(|(path, _, operation)| {
        (
            operation["requestBody"].is_null(),
            path.contains("messages"),
            !path.contains("users"),
        )
    });
    for (path, method, operation) in operations {
        // Retrying needs a failed delivery, which takes a receiver that refuses:
        // webhooks.rs `refusals_fail_at_once_and_gone_disables_the_endpoint` sends it.
        if path.ends_with("/retry") {
            continue;
        }
        let mut url = path.trim_start_matches("/api/v1").to_owned();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "path" {
                continue;
            }
            let example = match &parameter["example"] {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => panic!("{path}: parameter without an example"),
            };
            url = url.replace(
                &format!("{{{}}}", parameter["name"].as_str().unwrap()),
                &example,
            );
        }
        let bodies: Vec<Option<Value>> =
            match operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap();
                    let examples = document["components"]["schemas"][name]["examples"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    assert!(
                        !examples.is_empty(),
                        "{path}: the body's schema has no example"
                    );
                    examples.into_iter().map(Some).collect()
                }
                None => vec![None],
            };
        for body in bodies {
            let (status, answer) = shop.call(method.clone(), &url, body.as_ref()).await;
            assert!(
                status.is_success(),
                "{method} {url} {body:?}: {status} {answer}"
            );
            let documented = operation["responses"][status.as_str()].is_object();
            assert!(
                documented,
                "{method} {url}: {status} is not in the document"
            );
        }
    }
}

/// `server keys create|list|revoke`, with the server's `DATABASE_URL`, while a server runs:
/// the key printed alone on the last line works at once, and stops at once when revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_managed_from_the_command_line() {
    let app = TestApp::spawn(TestDb::Sqlite).await;
    let keys = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_server"))
            .arg("keys")
            .args(args)
            .env("DATABASE_URL", &app.scratch.url)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };

    let (code, out, err) = keys(&["create", "--name", "shop"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let key = out.lines().last().unwrap().to_owned();
    assert!(key.starts_with("prl_") && !key.contains(' '), "{out}");
    let shop = Marketplace::with_key(&app, &key);
    assert_eq!(
        shop.put_user("u-1", json!({"name": "Ann"})).await.0,
        StatusCode::CREATED
    );

    let (code, out, _) = keys(&["list"]);
    assert_eq!(code, Some(0));
    let line = out.lines().find(|l| l.starts_with("shop\t")).unwrap();
    assert!(
        line.contains(&key[..12]) && line.ends_with("active"),
        "{out}"
    );
    assert!(!out.contains(&key), "the key is never listed");

    let (code, out, err) = keys(&["create", "--name", "shop"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("already a key named"), "{err}");
    let (code, _, err) = keys(&["create", "--name", "not a name"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("Error: "), "{err}");

    let (code, _, _) = keys(&["revoke", "--name", "shop"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        shop.call(Method::GET, "/users/u-1", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, out, _) = keys(&["list"]);
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) = keys(&["revoke", "--name", "shop"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no active key"), "{err}");
}

/// A message still unseen a moment after it was sent is reported once (`message.unseen`, for
/// its recipient; both people for a system message); one read in time is not. SQLite only:
/// the scan is the same on either database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_still_unseen_are_reported_once() {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.unseen_after = std::time::Duration::from_secs(1);
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let shop = Marketplace::new(&app, "shop").await;
    let (bob, _) = app.user("bob").await;
    link(&app, "bob", "u-bob").await;
    shop.put_user("u-ann", json!({"name": "Ann"})).await;
    let (_, conversation) = shop
        .call(
            Method::POST,
            "/conversations",
            Some(&json!({"participants": ["u-ann", "u-bob"]})),
        )
        .await;
    let id = conversation["id"].as_i64().unwrap();
    let path = format!("/conversations/{id}/messages");
    // Let the scan start its cursor before the messages come.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    shop.call(
        Method::POST,
        &path,
        Some(&json!({"from": "u-ann", "body": "Still there?"})),
    )
    .await;
    shop.call(
        Method::POST,
        &path,
        Some(&json!({"from": "u-ann", "body": "Read at once"})),
    )
    .await;
    let mut socket = bob.socket().await;
    socket
        .send_frame(&ClientFrame::Read {
            conversation_id: ConversationId(id),
            seq: 2,
        })
        .await;
    shop.call(
        Method::POST,
        &path,
        Some(&json!({"from": null, "body": "Order #7 shipped"})),
    )
    .await;

    let mut unseen = Vec::new();
    for _ in 0..100 {
        let (_, page) = shop
            .call(Method::GET, "/events?types=message.unseen", None)
            .await;
        unseen = page["events"].as_array().unwrap().clone();
        if unseen.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Both messages to bob were read in time; the notice was not, by either.
    let reported: Vec<(String, String)> = unseen
        .iter()
        .map(|event| {
            (
                event["data"]["message"]["body"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                event["data"]["recipient"]["external_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(reported.len(), 2, "{unseen:?}");
    assert!(
        reported.contains(&("Order #7 shipped".into(), "u-ann".into())),
        "{reported:?}"
    );
    assert!(
        reported.contains(&("Order #7 shipped".into(), "u-bob".into())),
        "{reported:?}"
    );
    // Once only.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, page) = shop
        .call(Method::GET, "/events?types=message.unseen", None)
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
}

/// Parley with card pictures allowed from the shop's image host, links https only.
async fn app_with_cards(db: TestDb) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.cards = CardRules {
        https_only: true,
        image_origins: vec!["https://img.shop.example".into()],
    };
    TestApp::start(config, scratch, db).await
}

/// An order's card, at `status`.
fn order(status: &str) -> Value {
    json!({
        "kind": "order",
        "id": "1042",
        "title": "Order #1042",
        "url": "https://shop.example/orders/1042",
        "image_url": "https://img.shop.example/1042.jpg",
        "price": {"amount": "48.50", "currency": "EUR"},
        "status": status,
    })
}

/// Cards come from the marketplace: opening a conversation with one puts it in as a notice,
/// live for both (once: the same call again adds nothing); an updated order card is a new
/// system message while the first keeps its status (frozen); the list, the history and the
/// event log carry them; every bad card is a problem pointing at the field, and stores
/// nothing.
async fn cards_are_the_marketplaces_and_frozen(app: TestApp) {
    let shop = Marketplace::new(&app, "shop").await;
    let (ann, _) = app.user("ann").await;
    let (bob, _) = app.user("bob").await;
    link(&app, "ann", "u-ann").await;
    link(&app, "bob", "u-bob").await;
    let mut sockets = [ann.socket().await, bob.socket().await];
    let opening = json!({"participants": ["u-ann", "u-bob"], "context": order("paid")});
    let (status, conversation) = shop
        .call(Method::POST, "/conversations", Some(&opening))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conversation}");
    assert_eq!(conversation["context"], order("paid"));
    assert_eq!(conversation["last_seq"], 1);
    for socket in &mut sockets {
        let live = socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(live.kind, app::model::MessageKind::System);
        assert_eq!(live.card.unwrap().status.as_deref(), Some("paid"));
    }
    let (status, again) = shop
        .call(Method::POST, "/conversations", Some(&opening))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["last_seq"], 1, "the same card adds nothing");

    let path = format!("/conversations/{}/messages", conversation["id"]);
    let update =
        json!({"from": null, "body": "Order #1042 has shipped.", "context": order("shipped")});
    let (status, shipped) = shop.call(Method::POST, &path, Some(&update)).await;
    assert_eq!(status, StatusCode::CREATED, "{shipped}");
    assert_eq!(shipped["context"]["status"], "shipped");
    let (status, card_only) = shop
        .call(
            Method::POST,
            &path,
            Some(&json!({"from": "u-ann", "body": "", "context": order("shipped")})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a card needs no text: {card_only}"
    );

    let (_, history) = shop.call(Method::GET, &path, None).await;
    let statuses: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["context"]["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("paid"), &json!("shipped"), &json!("shipped")]
    );
    let (_, list) = shop
        .call(Method::GET, "/users/u-bob/conversations", None)
        .await;
    assert_eq!(
        list["conversations"][0]["context"]["status"], "shipped",
        "{list}"
    );
    let summary = bob.conversations().await.remove(0);
    assert_eq!(summary.about.unwrap().title, "Order #1042");
    assert_eq!(
        summary.last_message.unwrap().body,
        "Order #1042",
        "a card alone reads as its title"
    );
    let (_, events) = shop
        .call(Method::GET, "/events?types=message.created", None)
        .await;
    assert_eq!(
        events["events"][0]["data"]["message"]["context"],
        order("paid"),
        "{events}"
    );

    let with_card = |change: &dyn Fn(&mut Value)| {
        let mut card = order("shipped");
        change(&mut card);
        json!({"from": null, "body": "x", "context": card})
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "another kind",
            with_card(&|c| c["kind"] = json!("service")),
            "#/context/kind",
        ),
        (
            "a forged field",
            with_card(&|c| c["discount"] = json!("100%")),
            "#/context/discount",
        ),
        (
            "a price as a number",
            with_card(&|c| c["price"]["amount"] = json!(48.5)),
            "#/context/price/amount",
        ),
        (
            "too many decimals",
            with_card(&|c| c["price"]["amount"] = json!("48.505")),
            "#/context/price/amount",
        ),
        (
            "no such currency",
            with_card(&|c| c["price"]["currency"] = json!("EUX")),
            "#/context/price/currency",
        ),
        (
            "an http link",
            with_card(&|c| c["url"] = json!("http://shop.example/orders/1042")),
            "#/context/url",
        ),
        (
            "a script link",
            with_card(&|c| c["url"] = json!("javascript:alert(1)")),
            "#/context/url",
        ),
        (
            "a picture from elsewhere",
            with_card(&|c| c["image_url"] = json!("https://evil.example/p.gif")),
            "#/context/image_url",
        ),
        (
            "an empty title",
            with_card(&|c| c["title"] = json!(" ")),
            "#/context/title",
        ),
        (
            "a long id",
            with_card(&|c| c["id"] = json!("9".repeat(65))),
            "#/context/id",
        ),
        (
            "no text and no card",
            json!({"from": null, "body": ""}),
            "#/body",
        ),
    ];
    for (case, body, pointer) in cases {
        let (status, problem) = shop.call(Method::POST, &path, Some(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {problem}"
        );
        assert_eq!(
            problem["errors"][0]["pointer"], pointer,
            "{case}: {problem}"
        );
    }
    let (status, problem) = shop
        .call(
            Method::POST,
            "/conversations",
            Some(&json!({"participants": ["u-ann", "u-carol"], "context": with_card(&|c| c["url"] = json!("ftp://x"))["context"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["pointer"], "#/context/url",
        "a bad card first: {problem}"
    );
    let (_, after) = shop.call(Method::GET, &path, None).await;
    assert_eq!(
        after["messages"].as_array().unwrap().len(),
        3,
        "nothing more stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_the_marketplaces_and_frozen_on_postgres() {
    cards_are_the_marketplaces_and_frozen(app_with_cards(TestDb::Postgres).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_the_marketplaces_and_frozen_on_sqlite() {
    cards_are_the_marketplaces_and_frozen(app_with_cards(TestDb::Sqlite).await).await;
}
