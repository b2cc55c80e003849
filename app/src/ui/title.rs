//! The document's title: `"{page} · Parley"`, or `Parley` alone.
//!
//! Each page (and the chat layout, and the conversation inside it) names itself with
//! [`page_title`]; the innermost one on screen wins, and when it goes the one around it is
//! shown again. On the server, leptos_meta's `Title` writes the title into the `<head>` it
//! renders. In the browser, [`Titles`] keeps the same stack and an effect writes its top into
//! `document.title`: leptos_meta's head management would cost the chat page's bundle about
//! 4 KB for this one element (docs/performance.md).
//!
//! It is a function called by the page, not an element of its view, so that nothing stands
//! for it in the page: leptos_meta's `Title` registers the title as it is created and renders
//! nothing where it stands, and the browser's side has nothing to render either.

#[cfg(not(feature = "ssr"))]
use leptos::prelude::*;
use leptos::text_prop::TextProp;

/// The full title for a page's own name: the product's name after it, or alone.
fn full_title(page: &str) -> String {
    if page.is_empty() {
        "Parley".to_owned()
    } else {
        format!("{page} · Parley")
    }
}

/// Names the page for as long as the view calling this is on screen.
pub fn page_title(text: impl Into<TextProp>) {
    #[cfg(feature = "ssr")]
    {
        // Read now, while the page renders inside its reactive owner, and handed over as a
        // plain string: leptos_integration_utils reads the title into the `<head>` after the
        // body has rendered, outside the sandboxed arena the page's signals live in, and a
        // closure reading a signal there panics (one concurrent chat page in fifteen was cut
        // short this way; server/tests/api/pages.rs renders hundreds at once).
        let title = full_title(&text.into().get());
        let _ = leptos_meta::Title(leptos_meta::TitleProps::builder().text(title).build());
    }
    #[cfg(not(feature = "ssr"))]
    if let Some(titles) = use_context::<Titles>() {
        titles.push(text.into());
    }
}

/// The titles of the views on screen in the browser, innermost (last shown) last, each with
/// an id unique among them.
#[cfg(not(feature = "ssr"))]
#[derive(Clone, Copy)]
pub struct Titles(RwSignal<Vec<(u32, TextProp)>>);

#[cfg(not(feature = "ssr"))]
impl Titles {
    /// Provides the stack to the app's views and keeps `document.title` to its top.
    pub fn provide() {
        let titles = Self(RwSignal::new(Vec::new()));
        provide_context(titles);
        Effect::new(move |_| {
            let page = titles
                .0
                .with(|stack| stack.last().map(|(_, text)| text.get()))
                .unwrap_or_default();
            document().set_title(&full_title(&page));
        });
    }

    /// Shows `text` until the current view is cleaned up.
    fn push(self, text: TextProp) {
        let Self(stack) = self;
        // One more than the largest id on screen: unique among the titles still there.
        let id = stack
            .with_untracked(|stack| stack.iter().map(|(id, _)| id + 1).max())
            .unwrap_or(0);
        stack.update(|stack| stack.push((id, text)));
        on_cleanup(move || {
            stack.try_update(|stack| stack.retain(|(other, _)| *other != id));
        });
    }
}
