//! The pages: the HTML shell, the router, and the components of each page.
//!
//! Rendered on the server (SSR) and hydrated in the browser. The sign-in pages work as plain
//! HTML forms before the WASM has loaded; the chat pages fetch their data after hydration, so
//! nothing user-specific is rendered twice or in the server's time zone.
//!
//! The sign-in, sign-up and settings pages are *lazy routes*: `cargo leptos build --split`
//! moves their code out of the main WASM bundle into pieces of their own, fetched only by the
//! pages that need them (the server names them in `<link rel="preload">` when it renders such
//! a page). Built without `--split`, they are ordinary routes in the one bundle (`build.rs`). The chat page, the one most visits open, is in the main bundle and so hydrates as
//! soon as it has arrived; see docs/performance.md for what each piece weighs.

pub mod auth;
pub mod chat;
pub mod time;
pub mod title;

use leptos::prelude::*;
use leptos_meta::MetaTags;
use leptos_router::{
    ChooseView, LazyRoute,
    components::{ParentRoute, Route, Router, Routes},
    lazy_route, path,
};

use self::{
    auth::{LoginPage, RegisterPage, SettingsPage},
    chat::{ChatLayout, NoConversation, conversation::ConversationView},
    title::page_title,
};

/// The HTML document around the app, rendered once per page load on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                // `id="leptos"`: the stylesheet `cargo leptos watch` swaps when it changes.
                <link rel="stylesheet" id="leptos" href="/pkg/parley.css"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Puts the page's Content-Security-Policy, with this response's nonce, on the response.
#[cfg(feature = "ssr")]
fn set_page_policy() {
    use axum::http::{HeaderValue, header::CONTENT_SECURITY_POLICY};
    use leptos::nonce::use_nonce;

    let (Some(nonce), Some(response), Some(state)) = (
        use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
        use_context::<crate::state::AppState>(),
    ) else {
        tracing::error!("a page was rendered without its nonce, response or state");
        return;
    };
    match HeaderValue::from_str(&state.page_policy.header(&nonce)) {
        Ok(value) => response.insert_header(CONTENT_SECURITY_POLICY, value),
        Err(error) => tracing::error!(%error, "invalid Content-Security-Policy"),
    }
}

/// The app: its routes, and the title each page gives itself (`title.rs`). Every page has a
/// stable address the marketplace can link to: `/register`, `/login`, `/chat` and
/// `/chat/@{username}`.
#[component]
pub fn App() -> impl IntoView {
    #[cfg(feature = "ssr")]
    leptos_meta::provide_meta_context();
    #[cfg(not(feature = "ssr"))]
    title::Titles::provide();
    view! {
        <Router>
            <div class="app">
                <Routes fallback=NotFound>
                    <Route path=path!("/login") view={lazy::<SignInRoute>(LoginPage)}/>
                    <Route path=path!("/register") view={lazy::<SignUpRoute>(RegisterPage)}/>
                    <Route path=path!("/settings") view={lazy::<SettingsRoute>(SettingsPage)}/>
                    <ParentRoute path=path!("/chat") view=ChatLayout>
                        <Route path=path!(":handle") view=ConversationView/>
                        <Route path=path!("") view=NoConversation/>
                    </ParentRoute>
                </Routes>
            </div>
        </Router>
    }
}

/// A page loaded on demand (`R`), or, in a bundle that is not split, the page itself.
#[cfg(not(parley_unsplit))]
fn lazy<R: LazyRoute + Send + Sync>(_page: impl ChooseView) -> impl ChooseView {
    leptos_router::Lazy::<R>::new()
}

#[cfg(parley_unsplit)]
#[expect(
    clippy::extra_unused_type_parameters,
    reason = "the same signature as in a split bundle, where `R` is the route loaded"
)]
fn lazy<R: LazyRoute + Send + Sync>(page: impl ChooseView) -> impl ChooseView {
    page
}

/// `/login`, loaded on demand (see the module's documentation).
struct SignInRoute;

#[lazy_route]
impl LazyRoute for SignInRoute {
    fn data() -> Self {
        Self
    }

    fn view(_route: Self) -> AnyView {
        view! { <LoginPage/> }.into_any()
    }
}

/// `/register`, loaded on demand.
struct SignUpRoute;

#[lazy_route]
impl LazyRoute for SignUpRoute {
    fn data() -> Self {
        Self
    }

    fn view(_route: Self) -> AnyView {
        view! { <RegisterPage/> }.into_any()
    }
}

/// `/settings`, loaded on demand.
struct SettingsRoute;

#[lazy_route]
impl LazyRoute for SettingsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_route: Self) -> AnyView {
        view! { <SettingsPage/> }.into_any()
    }
}

/// Marks the page interactive (`<body data-hydrated="true">`) once the page calling it has
/// hydrated; end-to-end tests wait for this before they type. Each page calls it, not the
/// WASM entry point: a lazy route hydrates only once its piece of the bundle has arrived,
/// after the entry point has returned. (An effect: it never runs on the server.)
pub fn mark_interactive() {
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// What the person typed into the text field `id` before the page came alive, to start its
/// signal from.
///
/// The server's page can be typed into at once, but a field whose value is bound to a signal
/// (`prop:value`) would be set back to the signal's value when the WASM takes the page over,
/// and the typing would be lost. So such a field's component, while the page is being
/// hydrated, starts from what the field holds; with the same value, the browser also keeps the
/// caret where it was. Outside the first hydration (a page built in the browser) it is empty.
pub fn typed_before_hydration(id: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;

        let hydrating =
            Owner::current_shared_context().is_some_and(|shared| shared.during_hydration());
        if let Some(field) = document().get_element_by_id(id).filter(|_| hydrating) {
            if let Some(area) = field.dyn_ref::<web_sys::HtmlTextAreaElement>() {
                return area.value();
            }
            if let Some(input) = field.dyn_ref::<web_sys::HtmlInputElement>() {
                return input.value();
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
    String::new()
}

/// Any other address.
#[component]
fn NotFound() -> impl IntoView {
    mark_interactive();
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    page_title("Not found");
    view! {
        <main class="auth">
            <div class="card">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <p><a href="/chat">"Go to your conversations"</a></p>
            </div>
        </main>
    }
}
