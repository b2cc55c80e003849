//! Pages rendered whole while many are rendered at once.
//!
//! The server renders every page inside leptos's reactive owner; reading a page's signal
//! after the render has left it (the `<head>`'s title was read so) panics, and the response
//! is cut short, which a browser on HTTP/2 reports as a protocol error. It showed only when
//! renders overlapped, so this renders hundreds at a time. The rendering is the same on either
//! database: SQLite only.

use futures::{StreamExt, stream};
use reqwest::StatusCode;

use crate::helpers::{TestApp, TestDb};

/// Pages asked for in all, and how many at a time.
const REQUESTS: usize = 300;
const AT_ONCE: usize = 12;

/// The signed-in pages (whose titles the chat's state writes) and a signed-out one: each
/// answers 200 with the document's close in it (Leptos may stream a last script after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_whole_under_concurrent_requests() {
    let app = TestApp::spawn(TestDb::Sqlite).await;
    let (_, _, bob, _, _) = app.pair().await;
    let stranger = app.browser();

    let paths = ["/chat", "/chat/@ann", "/settings", "/login"];
    let cut_short: Vec<String> = stream::iter(0..REQUESTS)
        .map(|i| {
            let path = paths[i % paths.len()];
            let browser = if path == "/login" { &stranger } else { &bob };
            async move {
                let response = browser.get(path).await;
                let status = response.status();
                let page = response.text().await;
                match page {
                    Ok(page) if status == StatusCode::OK && page.contains("</html>") => None,
                    Ok(page) => Some(format!("{path}: {status}, {} bytes", page.len())),
                    Err(error) => Some(format!("{path}: {status}, body cut: {error}")),
                }
            }
        })
        .buffer_unordered(AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    assert!(
        cut_short.is_empty(),
        "{} of {REQUESTS} pages were not whole: {cut_short:?}",
        cut_short.len()
    );
    // The title is still in the page's head.
    let chat = bob.get("/chat").await.text().await.unwrap();
    assert!(chat.contains("<title>Chat · Parley</title>"), "{chat}");
}
