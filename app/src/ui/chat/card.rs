//! A product or order card ([`CardView`]): its picture, its title linking to the
//! marketplace's page, its price in the reader's own way of writing money, and an order's
//! status.

use leptos::prelude::*;

use crate::model::{ContextCard, Price};

/// A card as a message, a notice or "Asking about…" shows it.
#[component]
pub fn CardView(card: ContextCard) -> impl IntoView {
    let price = card.price.as_ref().map(price_text);
    view! {
        <div class="context-card" data-kind=card.kind.as_str()>
            {card
                .image_url
                .map(|src| {
                    // The title says what it is; the picture adds nothing for a screen reader.
                    view! {
                        <img class="card-image" src=src alt="" width="56" height="56" loading="lazy"/>
                    }
                        .into_any()
                })}
            <div class="card-text">
                <a class="card-title" href=card.url target="_blank" rel="noopener noreferrer">
                    {card.title}
                </a>
                {price.map(|price| view! { <span class="card-price">{price}</span> }.into_any())}
                {card
                    .status
                    .map(|status| view! { <span class="card-status">{status}</span> }.into_any())}
            </div>
        </div>
    }
}

/// "24,00 €" for a reader in France, "€24.00" in Ireland: the browser's `Intl.NumberFormat`
/// in its own locale. Cards are drawn only in the browser (the chat's data is fetched after
/// hydration); elsewhere the amount and its code are written as they are.
pub fn price_text(price: &Price) -> String {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsValue;

        let options = js_sys::Object::new();
        let set = |key: &str, value: &str| {
            let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
        };
        set("style", "currency");
        set("currency", &price.currency);
        // Display only: the exact amount stays the string the marketplace sent.
        let amount: f64 = price.amount.parse().unwrap_or_default();
        let format = js_sys::Intl::NumberFormat::new(&js_sys::Array::new(), &options).format();
        if let Some(text) = format
            .call1(&JsValue::NULL, &JsValue::from_f64(amount))
            .ok()
            .and_then(|text| text.as_string())
        {
            return text;
        }
    }
    format!("{} {}", price.amount, price.currency)
}
