//! The WASM entry point: hydrates the page the server rendered.

// The release build (LTO) computes the layout of the app's deeply nested view types, which
// needs more than rustc's default query depth.
#![recursion_limit = "256"]

use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the generated JS glue once the WASM module has loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Marks the page as interactive; end-to-end tests wait for it before they type.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
