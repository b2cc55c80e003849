//! The WASM entry point: hydrates the page the server rendered.

// The release build (LTO) computes the layout of the app's deeply nested view types, which
// needs more than rustc's default query depth.
#![recursion_limit = "256"]

use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the generated JS glue once the WASM module has loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Asynchronous hydration, which waits for a lazy route's piece of the bundle to arrive
    // before it hydrates that page. Each page marks itself interactive once hydrated
    // (`app::ui::mark_interactive`).
    leptos::mount::hydrate_lazy(app::App);
}
