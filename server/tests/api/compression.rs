//! Pages and server-function answers go out compressed when the browser accepts it (Brotli or
//! gzip), and decode to exactly what an uncompressed request gets; attachments and WebSocket
//! upgrades are left alone.

use std::io::Read;

use reqwest::{StatusCode, header};

use crate::helpers::for_each_db;

/// Sends `request` with `Accept-Encoding: encoding`: the status, the `Content-Encoding`,
/// whether `Vary` names `Accept-Encoding`, and the body as sent.
async fn fetch_encoded(
    request: reqwest::RequestBuilder,
    encoding: &str,
) -> (StatusCode, Option<String>, bool, Vec<u8>) {
    let response = request
        .header(header::ACCEPT_ENCODING, encoding)
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap().to_owned());
    let varies = headers.get_all(header::VARY).iter().any(|value| {
        value
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    });
    let status = response.status();
    (
        status,
        content_encoding,
        varies,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match encoding {
        Some("br") => {
            brotli_decompressor::Decompressor::new(body, 4096)
                .read_to_end(&mut decoded)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut decoded)
                .unwrap();
        }
        other => panic!("unexpected encoding {other:?}"),
    }
    decoded
}

/// The page with its per-response nonce taken out, to compare two responses.
fn without_nonce(page: &str) -> String {
    let nonce = page
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has a nonce");
    page.replace(nonce, "NONCE")
}

for_each_db! {
    async fn pages_and_answers_are_compressed_files_are_not(app) {
        let (ann, _) = app.user("ann").await;
        let (_bob, _) = app.user("bob").await;
        let conversation = ann.open_conversation("bob").await;

        // The chat page, in each encoding, is the uncompressed page.
        let (status, plain_encoding, _, plain) =
            fetch_encoded(ann.http.get(app.url("/chat")), "identity").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(plain_encoding, None);
        let plain = without_nonce(&String::from_utf8(plain).unwrap());
        for encoding in ["br", "gzip"] {
            let (status, sent_as, varies, body) =
                fetch_encoded(ann.http.get(app.url("/chat")), encoding).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(sent_as.as_deref(), Some(encoding));
            assert!(varies, "caches must keep the encodings apart");
            let page = String::from_utf8(decode(Some(encoding), &body)).unwrap();
            assert!(body.len() * 5 < page.len() * 3, "{} of {}", body.len(), page.len());
            assert_eq!(without_nonce(&page), plain);
        }

        // A server function's JSON answer (a page of history, about 4 KB).
        let mut socket = ann.socket().await;
        for n in 0..20 {
            socket
                .send_message(&conversation, &format!("c{n}"), &format!("message number {n}"))
                .await;
        }
        socket.close().await;
        let history = || {
            ann.http
                .post(app.url("/api/history"))
                .form(&[("conversation_id", conversation.id.to_string())])
        };
        let (_, _, _, plain) = fetch_encoded(history(), "identity").await;
        let (status, sent_as, _, body) = fetch_encoded(history(), "br").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sent_as.as_deref(), Some("br"));
        assert_eq!(decode(Some("br"), &body), plain);
        assert!(String::from_utf8(plain).unwrap().contains("message number 19"));

        // An answer too small to gain anything goes as it is.
        let (_, sent_as, _, _) =
            fetch_encoded(ann.http.post(app.url("/api/me")), "br, gzip").await;
        assert_eq!(sent_as, None);

        // An attachment is sent as stored, whatever the browser accepts.
        let text = "a line of a text file\n".repeat(100).into_bytes();
        let uploaded = ann.upload_ok(&conversation, "notes.txt", text.clone()).await;
        let (status, sent_as, _, body) =
            fetch_encoded(ann.http.get(app.url(&uploaded.url())), "br, gzip").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sent_as, None);
        assert_eq!(body, text);
    }
}

for_each_db! {
    /// A server function's error keeps its status when its answer is compressed (the status
    /// is read from the error before the answer is compressed).
    async fn compressed_errors_keep_their_status(app) {
        let browser = app.browser();
        let request = browser.http.post(app.url("/api/register")).form(&[
            ("username", "ab"),
            ("display_name", ""),
            ("password", "short"),
            ("password_confirm", "different"),
        ]);
        let (status, sent_as, _, body) = fetch_encoded(request, "br").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(sent_as.as_deref(), Some("br"), "large enough to be compressed");
        let error: serde_json::Value =
            serde_json::from_slice(&decode(Some("br"), &body)).unwrap();
        assert_eq!(error["error"], "invalid");
        assert!(error["detail"].as_array().is_some_and(|fields| fields.len() >= 3), "{error}");
    }
}
