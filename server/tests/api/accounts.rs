//! Registration, sign-in and sign-out, sessions, and people search.

use reqwest::StatusCode;

use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter, sea_query::Expr};
use tower_sessions::{SessionStore, session::Id};

use crate::helpers::{PASSWORD, TestApp, expect_error, expect_json, for_each_db};
use app::{entity::sessions, model::UserView};
use server::{
    config::Config,
    sessions::{DbSessionStore, RENEW_AFTER_SECONDS},
    startup::SESSION_COOKIE,
};

for_each_db! {
    /// A new account is signed in at once, with its username folded to lower case.
    async fn registering_signs_the_new_user_in(app) {
        let browser = app.browser();
        let response = browser
            .post("register", &[
                ("username", "Ann.Lee"),
                ("display_name", "  Ann Lee  "),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ])
            .await;
        let user: UserView = expect_json(response, StatusCode::OK).await;
        assert_eq!(user.username, "ann.lee");
        assert_eq!(user.display_name, "Ann Lee");
        assert_eq!(browser.me().await, Some(user));
    }
}

for_each_db! {
    /// Every bad field is reported at once, each under its own name, and nothing is stored.
    async fn registration_errors_name_their_fields(app) {
        let browser = app.browser();
        let response = browser
            .post("register", &[
                ("username", "a!"),
                ("display_name", " "),
                ("password", "short"),
                ("password_confirm", "different"),
            ])
            .await;
        let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["error"], "invalid");
        let fields: Vec<&str> = body["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["username", "display_name", "password", "password_confirm"]);
        assert_eq!(browser.me().await, None, "a failed registration must not sign in");
    }
}

for_each_db! {
    /// Display names are stored in Unicode NFC, and names that reorder text around them (a
    /// way to impersonate someone) are refused.
    async fn display_names_are_normalised_and_refuse_direction_overrides(app) {
        let register = |username: &'static str, display_name: &'static str| {
            let browser = app.browser();
            async move {
                browser
                    .post("register", &[
                        ("username", username),
                        ("display_name", display_name),
                        ("password", PASSWORD),
                        ("password_confirm", PASSWORD),
                    ])
                    .await
            }
        };
        let response = register("rlo", "Ann\u{202E}gnp.exe").await;
        let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["detail"][0]["field"], "display_name");
        let user: UserView = expect_json(register("cafe", "Cafe\u{301} Lou").await, StatusCode::OK).await;
        assert_eq!(user.display_name, "Caf\u{e9} Lou");
    }
}

for_each_db! {
    /// Usernames are unique whatever their case.
    async fn usernames_are_unique_case_insensitively(app) {
        app.user("carol").await;
        let response = app
            .browser()
            .post("register", &[
                ("username", "CAROL"),
                ("display_name", "Another Carol"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ])
            .await;
        let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["detail"][0]["field"], "username");
        assert_eq!(body["detail"][0]["message"], "This username is already taken.");
    }
}

for_each_db! {
    /// Length limits of every field, at their edges.
    async fn registration_enforces_length_limits(app) {
        let cases: [(&str, &str, &str, &str); 5] = [
            ("ab", "Name", PASSWORD, "username"),
            (&"a".repeat(33), "Name", PASSWORD, "username"),
            ("dave", &"x".repeat(65), PASSWORD, "display_name"),
            ("dave", "Dave", "1234567", "password"),
            ("dave", "Dave", &"p".repeat(129), "password"),
        ];
        for (username, display_name, password, field) in cases {
            let response = app
                .browser()
                .post("register", &[
                    ("username", username),
                    ("display_name", display_name),
                    ("password", password),
                    ("password_confirm", password),
                ])
                .await;
            let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], field, "{username} {display_name}");
        }
        // The longest valid values are accepted, also a display name whose lower case is
        // longer than itself.
        let response = app
            .browser()
            .post("register", &[
                ("username", &"a".repeat(32)),
                ("display_name", &"İ".repeat(64)),
                ("password", &"p".repeat(128)),
                ("password_confirm", &"p".repeat(128)),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

for_each_db! {
    /// A wrong password and an unknown username are indistinguishable.
    async fn failed_logins_look_the_same(app) {
        app.user("erin").await;
        let wrong_password = app.browser().login("erin", "not the password").await;
        let status_a = wrong_password.status();
        let body_a = wrong_password.text().await.unwrap();
        let unknown_user = app.browser().login("nobody", "not the password").await;
        let status_b = unknown_user.status();
        let body_b = unknown_user.text().await.unwrap();
        assert_eq!(status_a, StatusCode::UNAUTHORIZED);
        assert_eq!((status_a, &body_a), (status_b, &body_b));
        assert_eq!(body_a, r#"{"error":"invalid_credentials"}"#);
    }
}

for_each_db! {
    /// Logging in works with any case of the username; logging out ends the session on the
    /// server, so the old cookie is worthless.
    async fn login_and_logout(app) {
        app.user("frank").await;
        let browser = app.browser();
        let response = browser.login("FRANK", PASSWORD).await;
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(cookie.starts_with(&format!("{SESSION_COOKIE}=")), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain-HTTP cookies can't be Secure: {cookie}");
        assert_eq!(browser.me().await.map(|u| u.username), Some("frank".into()));
        // Every request renews the session, so it lasts as long as it is used.
        let renewed = browser.post("me", &[]).await;
        let renewal = renewed.headers().get("set-cookie").and_then(|v| v.to_str().ok());
        assert!(
            renewal.is_some_and(|c| c.starts_with(&format!("{SESSION_COOKIE}=")) && c.contains("Max-Age=")),
            "{renewal:?}"
        );

        let old_cookie = browser.cookie_header().unwrap();
        browser.logout().await;
        assert_eq!(browser.me().await, None);

        assert_eq!(app.me_with_cookie(&old_cookie).await, None);
    }
}

for_each_db! {
    /// Signing in gives a new session id, and signing in as someone else on the same browser
    /// never reuses the previous user's session.
    async fn the_session_id_changes_at_login(app) {
        app.user("gina").await;
        app.user("hank").await;
        let browser = app.browser();
        browser.login("gina", PASSWORD).await;
        let gina_cookie = browser.cookie_header().unwrap();
        browser.login("hank", PASSWORD).await;
        let hank_cookie = browser.cookie_header().unwrap();
        assert_ne!(gina_cookie, hank_cookie);
        assert_eq!(browser.me().await.map(|u| u.username), Some("hank".into()));

        assert_eq!(app.me_with_cookie(&gina_cookie).await, None);
    }
}

for_each_db! {
    /// Sessions are kept in the database: a restarted server still knows the user.
    async fn sessions_survive_a_restart(app) {
        let (browser, user) = app.user("ivan").await;
        let cookie = browser.cookie_header().unwrap();
        let app = app.restart().await;
        assert_eq!(app.me_with_cookie(&cookie).await, Some(user));
    }
}

for_each_db! {
    /// Requests renew their session without writing it each time (a write is a commit), and
    /// a request answered while its session was deleted does not bring the session back.
    async fn sessions_are_renewed_sparingly_and_never_brought_back(app) {
        let (browser, _) = app.user("jane").await;
        let cookie = browser.cookie_header().unwrap();
        let id = cookie.split_once('=').unwrap().1.to_owned();
        let db = Database::connect(&app.scratch.url).await.unwrap();
        let stored_expiry = || async {
            sessions::Entity::find_by_id(id.clone())
                .one(&db)
                .await
                .unwrap()
                .map(|row| row.expires_at)
        };
        let written = stored_expiry().await.unwrap();
        assert!(browser.me().await.is_some());
        assert_eq!(stored_expiry().await, Some(written), "renewed too soon");

        // As if the last write were older than the renewal period.
        let stale = written - RENEW_AFTER_SECONDS - 60;
        sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, Expr::value(stale))
            .filter(sessions::Column::Id.eq(id.clone()))
            .exec(&db)
            .await
            .unwrap();
        assert!(browser.me().await.is_some());
        assert!(stored_expiry().await.unwrap() >= written, "not renewed");

        // A request loaded the session, then a sign-out elsewhere deleted it: the request's
        // save at the end must not resurrect it.
        let store = DbSessionStore::new(db.clone());
        let session_id: Id = id.parse().unwrap();
        let loaded = store.load(&session_id).await.unwrap().unwrap();
        store.delete(&session_id).await.unwrap();
        store.save(&loaded).await.unwrap();
        assert_eq!(store.load(&session_id).await.unwrap(), None);
        assert_eq!(app.me_with_cookie(&cookie).await, None);
    }
}

for_each_db! {
    /// People are found by part of their username or display name, in any case; the searcher
    /// is never in the results, and `%` is not a wildcard.
    async fn searching_for_people(app) {
        let (ann, _) = app.user("ann").await;
        app.user("annabel").await;
        app.user("bob").await;
        let names = |users: Vec<UserView>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
        assert_eq!(names(ann.search("ANN").await), ["annabel"]);
        assert_eq!(names(ann.search("Bo").await), ["bob"]);
        assert!(ann.search("%").await.is_empty());
        for bad in ["a\u{0}b", &"x".repeat(65)] {
            let response = ann.post("search_users", &[("query", bad)]).await;
            let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], "query");
        }

        // Case is folded beyond ASCII, on SQLite too.
        let elodie = app.browser();
        let response = elodie
            .post("register", &[
                ("username", "elodie"),
                ("display_name", "Élodie Ørsted"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(names(ann.search("ÉLO").await), ["elodie"]);
        assert_eq!(names(ann.search("ørs").await), ["elodie"]);
        assert!(ann.search("   ").await.is_empty());
        let anonymous = app.browser().post("search_users", &[("query", "bob")]).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    }
}

for_each_db! {
    /// Signed-out visitors of the chat pages are sent to log in and brought back afterwards;
    /// signed-in visitors of the sign-in pages go on to the chat.
    async fn pages_redirect_by_sign_in_state(app) {
        let visitor = app.browser();
        let location = |r: &reqwest::Response| {
            r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let response = visitor.get("/chat/@bob").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response).as_deref(), Some("/login?next=%2Fchat%2F%40bob"));
        let response = visitor.get("/").await;
        assert_eq!(location(&response).as_deref(), Some("/login"));
        let response = visitor.get("/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.unwrap();
        assert!(page.contains("<label for=\"field-username\">Username</label>"), "{page}");

        let (user, _) = app.user("bob").await;
        let response = user.get("/login?next=%2Fchat%2F%40ann").await;
        assert_eq!(location(&response).as_deref(), Some("/chat/@ann"));
        for bad in ["https%3A%2F%2Fevil.example", "%2F%09%2Fevil.example", "%2Fchat%0D%0AX-Evil:%201"] {
            let response = user.get(&format!("/register?next={bad}")).await;
            assert_eq!(location(&response).as_deref(), Some("/chat"), "{bad}");
        }
        let response = user.get("/chat").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// Behind HTTPS (a public URL starting with https) the session cookie is `Secure`.
#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let scratch =
        std::sync::Arc::new(crate::helpers::Scratch::create(crate::helpers::TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.public_url = Some("https://chat.example.com".into());
    // The test's own requests name 127.0.0.1.
    config.allowed_hosts = vec!["127.0.0.1".into()];
    let app = TestApp::start(config, scratch, crate::helpers::TestDb::Sqlite).await;
    let response = app
        .browser()
        .post(
            "register",
            &[
                ("username", "secure"),
                ("display_name", "Secure"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}
