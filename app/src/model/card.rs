//! [`ContextCard`]: a product or an order, shown as a card in a conversation.
//!
//! Cards come only from the marketplace (its sign-in token or its server API), never from a
//! browser, so a customer cannot forge a price or a status; a message keeps the card it was
//! sent with, so a later price change never rewrites history. The server checks every card
//! (`integration::cards`); this is the shape both sides share.

use serde::{Deserialize, Serialize};

/// What a card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    /// Something for sale: "Asking about" it.
    Product,
    /// An order: updates to it come as new cards (a new `status`), old messages keep theirs.
    Order,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Order => "order",
        }
    }
}

/// A product or an order, as the marketplace described it when the card was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(examples(json!({
    "kind": "product",
    "id": "sku-3141",
    "title": "Walnut desk lamp",
    "url": "https://shop.example/products/3141",
    "image_url": "https://img.shop.example/3141.jpg",
    "price": {"amount": "24.00", "currency": "EUR"}
}))))]
#[serde(deny_unknown_fields)]
pub struct ContextCard {
    pub kind: CardKind,
    /// The marketplace's id of the product or order: 1 to 64 visible characters.
    pub id: String,
    /// 1 to 200 characters.
    pub title: String,
    /// Its page on the marketplace: an absolute https URL (http too in development).
    pub url: String,
    /// A picture, from one of the origins in `PARLEY_CONTEXT_IMAGE_ORIGINS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// Where an order is ("paid", "shipped"…), as the marketplace names it: 1 to 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// An amount of money, exactly as the marketplace wrote it: a decimal string (never a
/// floating-point number, which could not hold 0.10 exactly) and its currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(examples(json!({"amount": "24.00", "currency": "EUR"}))))]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Digits, and at most as many decimals as the currency has ("24.00" EUR, "1200" JPY).
    pub amount: String,
    /// An ISO 4217 code, in capitals.
    pub currency: String,
}

impl ContextCard {
    /// The card as stored in a text column.
    pub fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored card; `None` for a column that holds none (or, never expected, something
    /// that is no longer a card: the message is still shown, without it).
    pub fn from_stored(stored: Option<&str>) -> Option<Self> {
        serde_json::from_str(stored?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_round_trips_and_unknown_fields_are_refused() {
        let card = ContextCard {
            kind: CardKind::Order,
            id: "1042".into(),
            title: "Order #1042".into(),
            url: "https://shop.example/orders/1042".into(),
            image_url: None,
            price: Some(Price {
                amount: "48.50".into(),
                currency: "EUR".into(),
            }),
            status: Some("shipped".into()),
        };
        let stored = card.to_json();
        assert!(!stored.contains("image_url"), "{stored}");
        assert_eq!(ContextCard::from_stored(Some(&stored)), Some(card));
        assert_eq!(ContextCard::from_stored(None), None);
        let forged = r#"{"kind":"product","id":"1","title":"t","url":"https://a.example","discount":"100%"}"#;
        assert!(serde_json::from_str::<ContextCard>(forged).is_err());
    }
}
