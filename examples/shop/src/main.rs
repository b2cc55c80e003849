//! A small marketplace that embeds Parley, as a marketplace's developers would: run it next to
//! Parley (README, "The example shop") and click through.
//!
//! - product pages whose *Contact seller* signs the customer in to Parley by SSO, into the
//!   conversation with the seller, with the product's card waiting ([`pages::product`]);
//! - a seller's page that opens their Parley inbox and posts "Order #1042 has shipped." with
//!   the order's card through the server API ([`pages::shipped`], [`parley`]);
//! - a webhook receiver that verifies Parley's signatures and lists what it got
//!   ([`webhooks`]).
//!
//! Configured by the environment: `PARLEY_URL` (where browsers reach Parley),
//! `PARLEY_SSO_SECRET` (the HS256 secret Parley has under the same name), `PARLEY_API_KEY`
//! (from `server keys create`), `SHOP_WEBHOOK_SECRET` (from `server webhooks add`),
//! `SHOP_ADDR` (127.0.0.1:4000), `SHOP_PUBLIC_URL`, `SHOP_PICTURES_URL` (where card pictures
//! come from; none by default) and `SHOP_ACCEPT_INVALID_CERTS` (for Parley's self-signed
//! development certificate).

mod catalog;
mod pages;
mod parley;
mod webhooks;

use std::{env, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};

use crate::{parley::Parley, webhooks::Inbox};

/// What every handler shares.
#[derive(Clone)]
struct Shop {
    parley: Parley,
    inbox: Inbox,
    webhook_secret: Option<Arc<str>>,
}

fn required(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("{name} is not set (see the README, \"The example shop\")"))
}

fn flag(name: &str) -> bool {
    env::var(name).is_ok_and(|v| v == "true" || v == "1")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = env::var("SHOP_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:4000".to_owned())
        .parse()?;
    let shop_url = env::var("SHOP_PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}"));
    let parley_url = env::var("PARLEY_URL")
        .unwrap_or_else(|_| "https://127.0.0.1:3000".to_owned())
        .trim_end_matches('/')
        .to_owned();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(flag("SHOP_ACCEPT_INVALID_CERTS"))
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let parley = Parley::new(
        parley_url,
        required("PARLEY_API_KEY")?,
        required("PARLEY_SSO_SECRET")?.into_bytes(),
        shop_url,
        env::var("SHOP_PICTURES_URL").ok(),
        http,
    );
    let shop = Shop {
        parley,
        inbox: Inbox::default(),
        webhook_secret: env::var("SHOP_WEBHOOK_SECRET").ok().map(Arc::from),
    };
    let app = Router::new()
        .route("/", get(pages::home))
        .route("/products/{id}", get(pages::product))
        .route("/pictures/{file}", get(pages::picture))
        .route("/seller", get(pages::seller))
        .route("/orders/{id}/shipped", post(pages::shipped))
        .route("/sign-in", post(pages::sign_in))
        .route("/webhooks", get(pages::webhooks))
        .route("/webhooks/parley", post(receive).get(received))
        .with_state(shop);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("The demo shop is at http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// `POST /webhooks/parley`: a delivery from Parley.
async fn receive(State(shop): State<Shop>, headers: HeaderMap, body: Bytes) -> StatusCode {
    webhooks::receive(shop.webhook_secret.as_deref(), &shop.inbox, &headers, &body)
}

/// `GET /webhooks/parley`: what was received, as JSON (the end-to-end test reads it).
async fn received(State(shop): State<Shop>) -> Json<Vec<webhooks::Received>> {
    Json(shop.inbox.all())
}
