//! Password policy and sessions: common passwords refused, changing the password ends every
//! other session (and closes its sockets), signing out closes that session's sockets.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, expect_error, for_each_db};

const NEW_PASSWORD: &str = "a much better passphrase";

for_each_db! {
    /// A password from the common-password list is refused at sign-up, in any letter case.
    async fn common_passwords_are_refused(app) {
        for password in ["password1", "IloveYou1", "qwertyuiop"] {
            let response = app
                .browser()
                .post("register", &[
                    ("username", "dana"),
                    ("display_name", "Dana"),
                    ("password", password),
                    ("password_confirm", password),
                ])
                .await;
            let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], "password", "{password}");
            assert!(body["detail"][0]["message"].as_str().unwrap().contains("too common"));
        }
        assert_eq!(app.browser().login("dana", "password1").await.status(), StatusCode::UNAUTHORIZED);
    }
}

for_each_db! {
    /// A password that contains the username or the display name (in any case, the name's
    /// spaces left out) is refused with a field error, at sign-up and at a password change;
    /// nothing is stored.
    async fn passwords_made_of_the_account_names_are_refused(app) {
        let before = app.footprint().await;
        for (password, field) in [("mira.k-2026", "password"), ("MiraKowalski!", "password")] {
            let response = app
                .browser()
                .post("register", &[
                    ("username", "mira.k"),
                    ("display_name", "Mira Kowalski"),
                    ("password", password),
                    ("password_confirm", password),
                ])
                .await;
            let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], field, "{body}");
            assert_eq!(
                body["detail"][0]["message"],
                "The password must not contain your username or display name."
            );
        }
        assert_eq!(app.footprint().await, before, "nothing was stored");

        let (ann, _) = app.user("annabel").await;
        let response = ann
            .post("change_password", &[
                ("current_password", PASSWORD),
                ("new_password", "Annabel rules 2026"),
                ("new_password_confirm", "Annabel rules 2026"),
            ])
            .await;
        let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["detail"][0]["field"], "new_password", "{body}");
        assert_eq!(app.browser().login("annabel", PASSWORD).await.status(), StatusCode::OK);
    }
}

for_each_db! {
    /// A wrong current password, a common or short new one, or a mismatch is refused, field by
    /// field, and the password stays as it was.
    async fn bad_password_changes_change_nothing(app) {
        let (ann, _) = app.user("ann").await;
        let cases = [
            ("wrong current", NEW_PASSWORD, NEW_PASSWORD, "current_password"),
            (PASSWORD, "password1", "password1", "new_password"),
            (PASSWORD, "short", "short", "new_password"),
            (PASSWORD, NEW_PASSWORD, "something else", "new_password_confirm"),
        ];
        for (current, new, confirm, field) in cases {
            let response = ann
                .post("change_password", &[
                    ("current_password", current),
                    ("new_password", new),
                    ("new_password_confirm", confirm),
                ])
                .await;
            let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], field, "{body}");
        }
        assert_eq!(app.browser().login("ann", PASSWORD).await.status(), StatusCode::OK);
        let anonymous = app
            .browser()
            .post("change_password", &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ])
            .await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    }
}

for_each_db! {
    /// Changing the password keeps this session, ends every other one at once (its sockets
    /// close with 1008, its requests are anonymous), and only the new password signs in.
    async fn changing_the_password_ends_the_other_sessions(app) {
        let (laptop, _) = app.user("ann").await;
        let phone = app.browser();
        phone.login("ann", PASSWORD).await;
        let mut laptop_socket = laptop.socket().await;
        let mut phone_socket = phone.socket().await;

        let response = laptop
            .post("change_password", &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::OK);

        assert_eq!(phone_socket.ended().await, Some(1008));
        assert_eq!(phone.me().await, None);
        assert!(phone.try_socket().await.is_err(), "the old session can't open a socket");
        assert_eq!(laptop.me().await.map(|u| u.username), Some("ann".into()));
        laptop_socket.assert_alive().await;

        assert_eq!(app.browser().login("ann", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.browser().login("ann", NEW_PASSWORD).await.status(), StatusCode::OK);
    }
}

for_each_db! {
    /// Signing out closes the sockets of that session only; the user's other devices stay
    /// connected.
    async fn signing_out_closes_that_sessions_sockets(app) {
        let (laptop, _) = app.user("ann").await;
        let phone = app.browser();
        phone.login("ann", PASSWORD).await;
        let mut laptop_socket = laptop.socket().await;
        let mut phone_socket = phone.socket().await;

        laptop.logout().await;
        assert_eq!(laptop_socket.ended().await, Some(1008));
        phone_socket.assert_alive().await;
        assert!(phone.me().await.is_some());
    }
}
