//! Splits a message into plain text and web addresses, so the page can make the addresses
//! links. Only `http` and `https` addresses become links (never `javascript:` or `data:`), and
//! everything is rendered as text nodes and attributes, never as HTML.

use linkify::{LinkFinder, LinkKind};

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    /// An `http(s)://` address, exactly as written.
    Link(String),
}

/// The message, cut into text and links, in order.
pub fn segments(body: &str) -> Vec<Segment> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    finder
        .spans(body)
        .map(|span| {
            let text = span.as_str().to_owned();
            if span.kind() == Some(&LinkKind::Url) && is_web_address(&text) {
                Segment::Link(text)
            } else {
                Segment::Text(text)
            }
        })
        .collect()
}

fn is_web_address(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::{Segment::*, *};

    #[test]
    fn web_addresses_become_links_and_punctuation_stays_text() {
        assert_eq!(
            segments("See https://shop.example/vase?id=3. Or http://a.example!"),
            [
                Text("See ".into()),
                Link("https://shop.example/vase?id=3".into()),
                Text(". Or ".into()),
                Link("http://a.example".into()),
                Text("!".into()),
            ]
        );
    }

    #[test]
    fn other_schemes_stay_text() {
        for body in [
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://files.example/x",
            "mailto:ann@example.com",
            "<a href=\"https://x.example\">x</a>",
        ] {
            let links: Vec<_> = segments(body)
                .into_iter()
                .filter_map(|s| match s {
                    Link(url) => Some(url),
                    Text(_) => None,
                })
                .collect();
            assert!(
                links.iter().all(|l| l.starts_with("https://x.example")),
                "{body}: {links:?}"
            );
        }
    }

    #[test]
    fn text_without_links_is_one_segment() {
        assert_eq!(segments("just words"), [Text("just words".into())]);
    }
}
