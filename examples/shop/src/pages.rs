//! The shop's pages: plain HTML, every text escaped. Who is signed in is a demo cookie
//! (`shop_person`) set by the "Sign in as" buttons: a real marketplace has its own accounts,
//! and what matters here is what it tells Parley about them.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use cookie::Cookie;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde::Deserialize;

use crate::{
    Shop,
    catalog::{self, ORDERS, PEOPLE, PRODUCTS, Person},
};

/// The demo's "who am I" cookie.
const PERSON_COOKIE: &str = "shop_person";

/// The person the browser signed in as, if any.
fn signed_in(headers: &HeaderMap) -> Option<&'static Person> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == PERSON_COOKIE)
        .and_then(|cookie| catalog::person(cookie.value()))
}

/// A page of the shop around `body`.
fn page(title: &str, me: Option<&Person>, body: &str) -> Html<String> {
    let people: String = PEOPLE
        .iter()
        .map(|person| {
            format!(
                r#"<form method="post" action="/sign-in"><input type="hidden" name="person" value="{}"><button>{}</button></form>"#,
                attr(person.id),
                text(person.name)
            )
        })
        .collect();
    let who = me.map_or_else(
        || "Not signed in".to_owned(),
        |person| format!("Signed in as <strong>{}</strong>", text(person.name)),
    );
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Demo Shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
header{{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.5rem}}
header form{{display:inline}} .product{{display:flex;gap:1rem;align-items:center}}</style></head>
<body><header><a href="/">Demo Shop</a> <a href="/seller">Seller's page</a> <a href="/webhooks">Webhooks received</a>
<span class="who">{who}</span> <span>Sign in as:</span> {people}</header>
<main><h1>{title}</h1>{body}</main></body></html>"#,
        title = text(title),
    ))
}

/// `/`: the catalogue.
pub(crate) async fn home(headers: HeaderMap) -> Html<String> {
    let items: String = PRODUCTS
        .iter()
        .map(|product| {
            format!(
                r#"<li><a href="/products/{}">{}</a> · {} {}</li>"#,
                attr(product.id),
                text(product.title),
                text(product.price),
                text(product.currency)
            )
        })
        .collect();
    page(
        "Products",
        signed_in(&headers),
        &format!("<ul>{items}</ul>"),
    )
}

/// `/products/{id}`: the product, and for a customer "Contact seller", a form that signs them
/// in to Parley into the conversation with the seller, the product's card waiting there.
pub(crate) async fn product(
    State(shop): State<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(product) = catalog::product(&id) else {
        return (StatusCode::NOT_FOUND, "No such product.").into_response();
    };
    let me = signed_in(&headers);
    let Some(seller) = catalog::person(product.seller) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The product has no seller.",
        )
            .into_response();
    };
    let contact = match me {
        None => "<p>Sign in as a customer to contact the seller.</p>".to_owned(),
        Some(me) if me.seller => {
            "<p>Sellers talk to their customers from their inbox.</p>".to_owned()
        }
        Some(me) => {
            // Parley must know the seller before a conversation with them can open.
            if let Err(error) = shop.parley.put_user(seller).await {
                return (StatusCode::BAD_GATEWAY, error.to_string()).into_response();
            }
            match shop.parley.sign_in_token(
                me,
                Some(seller),
                Some(shop.parley.product_card(product)),
            ) {
                Ok(token) => sso_form(&shop.parley.url, &token, "Contact seller"),
                Err(error) => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
                }
            }
        }
    };
    let body = format!(
        r#"<div class="product"><img src="/pictures/{id}.svg" alt="" width="160" height="160">
<div><p class="price">{price} {currency}</p><p>Sold by {seller}</p>{contact}</div></div>"#,
        id = attr(product.id),
        price = text(product.price),
        currency = text(product.currency),
        seller = text(seller.name),
    );
    page(product.title, me, &body).into_response()
}

/// A button that posts a sign-in token to Parley's `/sso`.
fn sso_form(parley: &str, token: &str, label: &str) -> String {
    format!(
        r#"<form method="post" action="{}/sso"><input type="hidden" name="token" value="{}"><button>{}</button></form>"#,
        attr(parley),
        attr(token),
        text(label)
    )
}

/// `/seller`: a seller's inbox button and their orders, each with "Mark as shipped".
pub(crate) async fn seller(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let me = signed_in(&headers);
    let Some(me) = me.filter(|me| me.seller) else {
        return page("Seller's page", me, "<p>Sign in as a seller.</p>").into_response();
    };
    let inbox = match shop.parley.sign_in_token(me, None, None) {
        Ok(token) => sso_form(&shop.parley.url, &token, "Open your inbox"),
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let orders: String = ORDERS
        .iter()
        .filter_map(|order| {
            let product = catalog::product(order.product).filter(|p| p.seller == me.id)?;
            let customer = catalog::person(order.customer)?;
            Some(format!(
                r#"<li>Order #{id}: {title} for {customer} <form method="post" action="/orders/{id}/shipped"><button>Mark as shipped</button></form></li>"#,
                id = attr(order.id),
                title = text(product.title),
                customer = text(customer.name),
            ))
        })
        .collect();
    page(
        "Seller's page",
        Some(me),
        &format!("{inbox}<h2>Orders</h2><ul>{orders}</ul>"),
    )
    .into_response()
}

/// `POST /orders/{id}/shipped`: tells the customer and the seller in their conversation.
pub(crate) async fn shipped(
    State(shop): State<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(order) = catalog::order(&id) else {
        return (StatusCode::NOT_FOUND, "No such order.").into_response();
    };
    let seller = catalog::product(order.product).map(|p| p.seller);
    if signed_in(&headers).map(|me| me.id) != seller {
        return (StatusCode::FORBIDDEN, "Only the order's seller ships it.").into_response();
    }
    let text = format!("Order #{} has shipped.", order.id);
    match shop.parley.post_order_update(order, "shipped", &text).await {
        Ok(_) => Redirect::to("/seller").into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

/// The "Sign in as" form.
#[derive(Deserialize)]
pub(crate) struct SignIn {
    person: String,
}

/// `POST /sign-in`: the demo's sign-in, as whoever is asked for.
pub(crate) async fn sign_in(Form(form): Form<SignIn>) -> Response {
    let Some(person) = catalog::person(&form.person) else {
        return (StatusCode::NOT_FOUND, "No such person.").into_response();
    };
    let cookie = Cookie::build((PERSON_COOKIE, person.id))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .build();
    let target = if person.seller { "/seller" } else { "/" };
    (
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to(target),
    )
        .into_response()
}

/// `/pictures/{id}.svg`: a product's picture (a square of its colour), for its card.
pub(crate) async fn picture(Path(file): Path<String>) -> Response {
    let product = file.strip_suffix(".svg").and_then(catalog::product);
    let Some(product) = product else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160"><rect width="160" height="160" rx="16" fill="{}"/></svg>"#,
        attr(product.colour)
    );
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

/// `/webhooks`: what Parley has told the shop, newest first.
pub(crate) async fn webhooks(State(shop): State<Shop>, headers: HeaderMap) -> Html<String> {
    let items: String = shop
        .inbox
        .all()
        .iter()
        .rev()
        .map(|event| {
            format!(
                "<li><code>{}</code> <strong>{}</strong> <pre>{}</pre></li>",
                text(&event.id),
                text(&event.event_type),
                text(&event.event["data"].to_string())
            )
        })
        .collect();
    page(
        "Webhooks received",
        signed_in(&headers),
        &format!("<p>Each was checked against the endpoint's signing secret.</p><ul>{items}</ul>"),
    )
}
