//! Checking the marketplace's product and order cards ([`CardRules`]) before they are stored.
//!
//! A card is shown to people as the marketplace's word (a price, an order's status, a link to
//! its page), so it is checked as strictly as anything a person types: lengths, control
//! characters, absolute web addresses with no credentials in them, pictures only from the
//! origins Parley was told to trust (the page's Content-Security-Policy allows those and no
//! others), ISO 4217 currencies and amounts written as exact decimals with no more places than
//! the currency has. What passes is stored as it will be shown, frozen.

use unicode_normalization::UnicodeNormalization;

use crate::model::{ContextCard, FieldError, Price};

/// Longest card id, in characters.
pub const ID_MAX_CHARS: usize = 64;
/// Longest card title, in characters.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest order status, in characters.
pub const STATUS_MAX_CHARS: usize = 64;
/// Longest link or picture address, in bytes.
pub const URL_MAX_CHARS: usize = 2_048;
/// Most digits before the decimal point of an amount.
const AMOUNT_MAX_DIGITS: usize = 15;

/// What a card may hold besides its shape: where its links and pictures may point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardRules {
    /// Links and pictures must be https (production); otherwise http works too, for a shop
    /// running on a developer's machine.
    pub https_only: bool,
    /// The origins card pictures may come from (`PARLEY_CONTEXT_IMAGE_ORIGINS`, each as
    /// `scheme://host[:port]`). Empty: cards carry no pictures.
    pub image_origins: Vec<String>,
}

impl CardRules {
    /// The card as it will be stored and shown (titles trimmed and in NFC, addresses in their
    /// normal form), or every field that is wrong, named `<prefix>.<field>`.
    ///
    /// # Errors
    /// One [`FieldError`] per bad field.
    pub fn check(&self, card: ContextCard, prefix: &str) -> Result<ContextCard, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError::new(&format!("{prefix}.{field}"), message));
        };
        let id = card.id.trim();
        if !(1..=ID_MAX_CHARS).contains(&id.chars().count())
            || id.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            fail(
                "id",
                format!("An id is 1 to {ID_MAX_CHARS} visible characters, without spaces."),
            );
        }
        let title = text(&card.title, TITLE_MAX_CHARS)
            .map_err(|why| fail("title", format!("A title is {why}.")))
            .ok();
        let url = self.address(&card.url).map_err(|why| fail("url", why)).ok();
        let image_url = match &card.image_url {
            None => Some(None),
            Some(raw) => self
                .picture(raw)
                .map(Some)
                .map_err(|why| fail("image_url", why))
                .ok(),
        };
        if let Some(price) = &card.price {
            if let Err(why) = check_currency(&price.currency) {
                fail("price.currency", why);
            } else if let Err(why) = check_amount(price) {
                fail("price.amount", why);
            }
        }
        let status = match &card.status {
            None => Some(None),
            Some(raw) => text(raw, STATUS_MAX_CHARS)
                .map(Some)
                .map_err(|why| fail("status", format!("A status is {why}.")))
                .ok(),
        };
        match (title, url, image_url, status) {
            (Some(title), Some(url), Some(image_url), Some(status)) if errors.is_empty() => {
                Ok(ContextCard {
                    kind: card.kind,
                    id: id.to_owned(),
                    title,
                    url,
                    image_url,
                    price: card.price,
                    status,
                })
            }
            _ => Err(errors),
        }
    }

    /// An absolute http(s) address with a host and no credentials, in its normal form.
    fn address(&self, raw: &str) -> Result<String, String> {
        if raw.len() > URL_MAX_CHARS {
            return Err(format!("An address is at most {URL_MAX_CHARS} characters."));
        }
        let parsed = url::Url::parse(raw).map_err(|_| "This is not an absolute web address.")?;
        match parsed.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => return Err("Only https addresses are accepted.".into()),
            _ => return Err("An address is https (or http in development).".into()),
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("An address needs a host.".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("An address carries no user name or password.".into());
        }
        Ok(parsed.into())
    }

    /// An [`address`](Self::address) on one of the picture origins.
    fn picture(&self, raw: &str) -> Result<String, String> {
        let address = self.address(raw)?;
        let origin = url::Url::parse(&address)
            .map(|parsed| parsed.origin().ascii_serialization())
            .unwrap_or_default();
        if self.image_origins.contains(&origin) {
            Ok(address)
        } else if self.image_origins.is_empty() {
            Err("Card pictures are off: PARLEY_CONTEXT_IMAGE_ORIGINS lists no origin.".into())
        } else {
            Err(format!(
                "Pictures come only from {} (PARLEY_CONTEXT_IMAGE_ORIGINS), not from {origin}.",
                self.image_origins.join(", ")
            ))
        }
    }
}

/// Trimmed text in NFC of 1 to `max` characters without control characters, or what it
/// should be.
fn text(raw: &str, max: usize) -> Result<String, String> {
    let normal: String = raw.trim().nfc().collect();
    let length = normal.chars().count();
    if !(1..=max).contains(&length) || normal.chars().any(char::is_control) {
        return Err(format!("1 to {max} characters, on one line"));
    }
    Ok(normal)
}

/// A currency ISO 4217 knows, written as it does (three capitals).
fn check_currency(code: &str) -> Result<(), String> {
    let known = code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && iso_currency::Currency::from_code(code).is_some();
    if known {
        Ok(())
    } else {
        Err(format!(
            "{code:?} is not an ISO 4217 currency code (such as EUR or USD)."
        ))
    }
}

/// An amount of `price.currency` (known to be valid): digits, then optionally a point and at
/// most as many digits as the currency has decimals. No sign, no exponent, no grouping.
fn check_amount(price: &Price) -> Result<(), String> {
    let decimals = iso_currency::Currency::from_code(&price.currency)
        .and_then(|currency| currency.exponent())
        .map_or(0, usize::from);
    let (whole, fraction) = match price.amount.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (price.amount.as_str(), None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let shape = digits(whole)
        && whole.len() <= AMOUNT_MAX_DIGITS
        && fraction.is_none_or(|fraction| digits(fraction) && fraction.len() <= decimals);
    if shape {
        Ok(())
    } else if decimals == 0 {
        Err(format!(
            "An amount of {} is a whole number of digits, written as a string (\"1200\").",
            price.currency
        ))
    } else {
        Err(format!(
            "An amount of {} is digits with at most {decimals} decimals after a point, written as a string (\"24.00\").",
            price.currency
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CardKind;

    fn rules() -> CardRules {
        CardRules {
            https_only: true,
            image_origins: vec!["https://img.shop.example".into()],
        }
    }

    fn lamp() -> ContextCard {
        ContextCard {
            kind: CardKind::Product,
            id: "sku-3141".into(),
            title: "  Walnut desk lamp ".into(),
            url: "https://shop.example/products/3141".into(),
            image_url: Some("https://img.shop.example/3141.jpg".into()),
            price: Some(Price {
                amount: "24.00".into(),
                currency: "EUR".into(),
            }),
            status: None,
        }
    }

    fn fields(result: Result<ContextCard, Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|error| error.field)
            .collect()
    }

    #[test]
    fn a_good_card_is_kept_as_it_will_be_shown() {
        let card = rules().check(lamp(), "context").unwrap();
        assert_eq!(card.title, "Walnut desk lamp");
        assert_eq!(card.url, "https://shop.example/products/3141");
    }

    #[test]
    fn addresses_are_absolute_https_without_credentials_and_pictures_come_from_listed_origins() {
        for (url, image, bad) in [
            ("http://shop.example/p", None, vec!["context.url"]),
            ("javascript:alert(1)", None, vec!["context.url"]),
            ("/products/3141", None, vec!["context.url"]),
            ("https://ann:pw@shop.example/p", None, vec!["context.url"]),
            (
                "https://shop.example/p",
                Some("https://evil.example/x.jpg"),
                vec!["context.image_url"],
            ),
            (
                "https://shop.example/p",
                Some("http://img.shop.example/x.jpg"),
                vec!["context.image_url"],
            ),
        ] {
            let mut card = lamp();
            card.url = url.into();
            card.image_url = image.map(str::to_owned);
            assert_eq!(
                fields(rules().check(card, "context")),
                bad,
                "{url} {image:?}"
            );
        }
        let development = CardRules {
            https_only: false,
            ..rules()
        };
        let mut local = lamp();
        local.url = "http://127.0.0.1:3000/products/3141".into();
        assert!(development.check(local, "context").is_ok());
        let no_pictures = CardRules {
            image_origins: Vec::new(),
            ..rules()
        };
        assert_eq!(
            fields(no_pictures.check(lamp(), "context")),
            ["context.image_url"]
        );
    }

    #[test]
    fn prices_are_iso_4217_with_exact_decimals() {
        for (amount, currency, ok) in [
            ("24.00", "EUR", true),
            ("24", "EUR", true),
            ("0.5", "USD", true),
            ("1200", "JPY", true),
            ("1200.5", "JPY", false),
            ("1.234", "EUR", false),
            ("1.234", "KWD", true),
            ("-3.00", "EUR", false),
            ("1e3", "EUR", false),
            ("1,000.00", "EUR", false),
            (".50", "EUR", false),
            ("24.", "EUR", false),
            ("24.00", "eur", false),
            ("24.00", "XYZ", false),
            ("1234567890123456", "EUR", false),
        ] {
            let mut card = lamp();
            card.price = Some(Price {
                amount: amount.into(),
                currency: currency.into(),
            });
            assert_eq!(
                rules().check(card, "context").is_ok(),
                ok,
                "{amount} {currency}"
            );
        }
    }

    #[test]
    fn texts_have_lengths_and_no_control_characters() {
        let mut card = lamp();
        card.id = String::new();
        card.title = "x".repeat(TITLE_MAX_CHARS + 1);
        card.status = Some("shipped\u{7}".into());
        assert_eq!(
            fields(rules().check(card, "context")),
            ["context.id", "context.title", "context.status"]
        );
    }
}
