//! Page redirects that depend on being signed in, decided before any page renders:
//!
//! - `/` goes to `/chat` or `/login`;
//! - a signed-out visitor of `/chat…` or `/settings` goes to `/login?next=<where they were going>`, so the
//!   marketplace's "Contact seller" link (`/chat/@seller`) lands in the conversation after
//!   signing in;
//! - a signed-in visitor of `/login` or `/register` goes on to the chat, and a signed-out one
//!   is told to come through the marketplace when Parley's own accounts are off;
//! - `/conversations/{id}`, the link the server API gives for a conversation, opens it for
//!   whichever of its two people follows it ([`open_conversation`]).
//!
//! Doing this here, as real HTTP redirects, means no page ever renders for the wrong state.

use axum::{
    extract::{Path, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
};

use app::{
    accounts::{self, AuthSession},
    conversations::{self, ConversationsError},
    error::AppError,
    model::{ConversationId, is_safe_next},
    state::{ACCOUNTS_ARE_THE_MARKETPLACES, AppState},
};

/// What the guard needs to know of the deployment.
#[derive(Debug, Clone, Copy)]
pub struct PageRules {
    /// Parley's own registration and sign-in are on (`PARLEY_LOCAL_ACCOUNTS`).
    pub local_accounts: bool,
}

/// The middleware.
pub async fn page_guard(
    State(rules): State<PageRules>,
    auth: AuthSession,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let signed_in = auth.user.is_some();
    let path = request.uri().path();
    if !signed_in && !rules.local_accounts && (path == "/login" || path == "/register") {
        return marketplace_only();
    }
    let target = match path {
        "/" if signed_in => Some("/chat".to_owned()),
        "/" => Some("/login".to_owned()),
        "/login" | "/register" if signed_in => Some(next_from_query(request.uri().query())),
        _ if !signed_in
            && (path == "/chat"
                || path.starts_with("/chat/")
                || path == "/settings"
                || path.starts_with("/conversations/")) =>
        {
            let wanted = request
                .uri()
                .path_and_query()
                .map_or(path, |pq| pq.as_str());
            Some(format!("/login?next={}", encode(wanted)))
        }
        _ => None,
    };
    match target {
        Some(target) => Redirect::to(&target).into_response(),
        None => next.run(request).await,
    }
}

/// `GET /conversations/{id}`: to the conversation's page (`/chat/@<the other person>`) for one
/// of its two people; anyone else, and an id that is no conversation, gets the same 404. A
/// signed-out visitor has already been sent to sign in by [`page_guard`], and comes back here.
pub async fn open_conversation(
    auth: AuthSession,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "There is no such conversation.").into_response();
    let (Some(me), Ok(id)) = (auth.user, id.parse::<i64>()) else {
        return not_found();
    };
    let other = match conversations::other_participant(&state.db, me.id, ConversationId(id)).await {
        Ok(other) => other,
        Err(ConversationsError::Database(error)) => {
            return AppError::internal(&error).into_response();
        }
        Err(_) => return not_found(),
    };
    match accounts::find(&state.db, other).await {
        Ok(Some(other)) => Redirect::to(&format!("/chat/@{}", other.username)).into_response(),
        Ok(None) => not_found(),
        Err(error) => AppError::internal(&error).into_response(),
    }
}

/// The page signed-out visitors get instead of the sign-in and sign-up forms when Parley's own
/// accounts are off.
fn marketplace_only() -> Response {
    notice_page(
        StatusCode::OK,
        "Sign in through the marketplace",
        &[ACCOUNTS_ARE_THE_MARKETPLACES],
    )
}

/// A page of a heading and a few sentences (escaped), for answers that can't be the app: no
/// script, no style, readable anywhere.
pub fn notice_page(status: StatusCode, heading: &str, paragraphs: &[&str]) -> Response {
    let heading = html_escape::encode_text(heading);
    let body: String = paragraphs
        .iter()
        .map(|text| format!("<p>{}</p>", html_escape::encode_text(text)))
        .collect();
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{heading} · Parley</title></head><body><main><h1>{heading}</h1>{body}</main>\
         </body></html>\n"
    );
    (status, Html(page)).into_response()
}

/// The `next` query parameter if it is a safe local path, else `/chat`.
fn next_from_query(query: Option<&str>) -> String {
    query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(key, _)| key == "next")
        .map(|(_, value)| value.into_owned())
        .filter(|next| is_safe_next(next))
        .unwrap_or_else(|| "/chat".to_owned())
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_used_only_when_local() {
        assert_eq!(next_from_query(Some("next=%2Fchat%2F%40bob")), "/chat/@bob");
        assert_eq!(
            next_from_query(Some("next=https%3A%2F%2Fevil.example")),
            "/chat"
        );
        assert_eq!(next_from_query(Some("next=%2F%2Fevil.example")), "/chat");
        assert_eq!(next_from_query(Some("next=%2F%09%2Fevil.example")), "/chat");
        assert_eq!(next_from_query(Some("next=%2Fchat%0A")), "/chat");
        assert_eq!(next_from_query(None), "/chat");
    }
}
