//! Page redirects that depend on being signed in, decided before any page renders:
//!
//! - `/` goes to `/chat` or `/login`;
//! - a signed-out visitor of `/chat…` or `/settings` goes to `/login?next=<where they were going>`, so the
//!   marketplace's "Contact seller" link (`/chat/@seller`) lands in the conversation after
//!   signing in;
//! - a signed-in visitor of `/login` or `/register` goes on to the chat.
//!
//! Doing this here, as real HTTP redirects, means no page ever renders for the wrong state.

use axum::{
    extract::Request,
    http::Method,
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use app::{accounts::AuthSession, model::is_safe_next};

/// The middleware.
pub async fn page_guard(auth: AuthSession, request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let signed_in = auth.user.is_some();
    let path = request.uri().path();
    let target = match path {
        "/" if signed_in => Some("/chat".to_owned()),
        "/" => Some("/login".to_owned()),
        "/login" | "/register" if signed_in => Some(next_from_query(request.uri().query())),
        _ if !signed_in
            && (path == "/chat" || path.starts_with("/chat/") || path == "/settings") =>
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
