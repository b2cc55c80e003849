//! The server API, `/api/v1`: what a marketplace's backend calls, with an API key.
//!
//! JSON in and out; every error is `application/problem+json` ([`problem`]), a bad request
//! never a 500. The routes are declared with utoipa, which writes the OpenAPI 3.1 document
//! served at `/api/v1/openapi.json` from the same code, so the document cannot drift from
//! what is served. Nothing here uses the browser's session or cookies: requests are
//! authenticated by their key alone ([`auth`]), so the cross-origin guard has nothing to guard.
//!
//! - [`users`]: the marketplace's people, and their unread counts.
//! - [`conversations`]: the conversation of two people, and each person's list.
//! - [`messages`]: a conversation's history, and sending in it.
//! - [`events`]: the event log, pulled by cursor.
//! - [`webhooks`]: the webhook deliveries that failed, and sending one again.

pub mod auth;
pub mod conversations;
pub mod events;
pub mod messages;
pub mod problem;
pub mod users;
pub mod webhooks;

use axum::{Json, Router, extract::DefaultBodyLimit, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use app::state::AppState;

use problem::Problem;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";
/// The largest request body the API reads.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley server API",
        version = "1",
        description = "What a marketplace's backend calls: its users, their conversations, messages and \
            unread counts. Authenticate with `Authorization: Bearer <key>` (keys are made with \
            `server keys create --name NAME`). Errors are `application/problem+json` (RFC 9457). \
            See docs/integration.md."
    ),
    modifiers(&BearerKeys),
    components(schemas(Problem, problem::InvalidField)),
    tags(
        (name = "users", description = "The marketplace's people, linked to Parley accounts by their external id."),
        (name = "conversations", description = "One conversation per pair of people."),
        (name = "messages", description = "A conversation's messages."),
        (name = "events", description = "What happened, in order: the log webhooks deliver, read by cursor."),
        (name = "webhooks", description = "Deliveries of the log to the webhook endpoints."),
    )
)]
struct ApiDoc;

/// The `api_key` security scheme the routes name: a bearer token.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An API key made with `server keys create --name NAME`.",
                        ))
                        .build(),
                ),
            );
    }
}

/// The API's routes and its OpenAPI document, built together.
fn routes() -> (Router<AppState>, openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            PREFIX,
            OpenApiRouter::new()
                .routes(routes!(users::put_user, users::get_user))
                .routes(routes!(users::get_unread))
                .routes(routes!(conversations::list))
                .routes(routes!(conversations::open))
                .routes(routes!(messages::history, messages::send))
                .routes(routes!(events::list))
                .routes(routes!(webhooks::deliveries))
                .routes(routes!(webhooks::retry)),
        )
        .split_for_parts()
}

/// The OpenAPI document, as served.
pub fn document() -> openapi::OpenApi {
    routes().1
}

/// The API's router: its routes, the document, and problems for an unknown route or method.
/// Links in its answers point at `public_url` (`PARLEY_PUBLIC_URL`) when it is given, else at
/// the address each request came to.
pub fn router(public_url: Option<String>) -> Router<AppState> {
    let (routes, document) = routes();
    routes
        .route(
            &format!("{PREFIX}/openapi.json"),
            get(move || std::future::ready(Json(document.clone()))),
        )
        .route(
            &format!("{PREFIX}/{{*rest}}"),
            axum::routing::any(|| std::future::ready(Problem::no_such_endpoint())),
        )
        .method_not_allowed_fallback(|| std::future::ready(Problem::method_not_allowed()))
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(conversations::public_origin_layer(public_url))
}
