//! Attachments: uploads, every limit and refusal, images, downloads and who may make them, and
//! the clean-up of uploads nobody sent.

use std::{io::Cursor, sync::Arc};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use futures::stream;
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use reqwest::StatusCode;

use crate::helpers::{Scratch, TestApp, TestDb, expect_error, for_each_db};
use app::{
    model::{ATTACHMENT_PREVIEW, AttachmentId, AttachmentView, MAX_ATTACHMENTS_PER_MESSAGE},
    protocol::{ErrorCode, ServerFrame},
    uploads::FileKind,
};
use server::config::Config;

/// A small but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// A Windows executable's first bytes.
const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0\0\0\0\0@\0\0\0\0\0\0\0";

/// A text that must never survive into what other people download.
const SECRET: &str = "PARLEY-GPS-48.8584N-2.2945E";

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 200])
    });
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(image)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

/// A JPEG with an EXIF block holding `SECRET` and the given orientation tag.
fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, _| {
        image::Rgb([(x * 5 % 256) as u8, 90, 30])
    });
    let mut jpeg = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();

    // TIFF, big-endian: one IFD with ImageDescription (ASCII) and Orientation (SHORT).
    let description = format!("{SECRET}\0");
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&0x010eu16.to_be_bytes());
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&(description.len() as u32).to_be_bytes());
    tiff.extend_from_slice(&38u32.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(description.as_bytes());
    let mut app1 = vec![0xff, 0xe1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);

    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The start of a PNG whose header claims this size in 16-bit RGBA, with no real pixel data.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[16, 6, 0, 0, 0]);
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&header);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&(header.len() as u32).to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // An IDAT holding an empty zlib stream: the decoder reads the header up to here.
    let mut data = b"IDAT".to_vec();
    data.extend_from_slice(&[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png.extend_from_slice(&8u32.to_be_bytes());
    png.extend_from_slice(&data);
    png.extend_from_slice(&crc32(&data).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]);
    png
}

/// `png` with a `tEXt` chunk holding `SECRET` after its header, as editors write them.
fn png_with_text(width: u32, height: u32) -> Vec<u8> {
    let plain = png(width, height);
    // Signature (8) and the IHDR chunk (4 + 4 + 13 + 4).
    let (head, rest) = plain.split_at(33);
    let mut chunk = b"tEXt".to_vec();
    chunk.extend_from_slice(b"Comment\0");
    chunk.extend_from_slice(SECRET.as_bytes());
    let mut out = head.to_vec();
    out.extend_from_slice(&((chunk.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out.extend_from_slice(rest);
    out
}

/// A lossless WebP in the extended format (`VP8X`) with an `XMP ` chunk holding `SECRET`.
fn webp_with_xmp(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 7) as u8, 60])
    });
    let mut simple = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut simple, ImageFormat::WebP)
        .unwrap();
    let simple = simple.into_inner();
    // RIFF(4) size(4) WEBP(4), then the one VP8L chunk.
    let image_chunk = &simple[12..];
    let chunk = |tag: &[u8], data: &[u8]| {
        let mut out = tag.to_vec();
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    };
    let mut vp8x = vec![0x04, 0, 0, 0]; // flags: XMP present
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let xmp = format!("<x:xmpmeta><rdf:Description dc:creator=\"{SECRET}\"/></x:xmpmeta>");
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(&chunk(b"VP8X", &vp8x));
    body.extend_from_slice(image_chunk);
    body.extend_from_slice(&chunk(b"XMP ", xmp.as_bytes()));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A two-frame looping GIF with a comment block and an XMP application block holding
/// `SECRET`.
fn gif_with_comments() -> Vec<u8> {
    let palette = [0, 0, 0, 255, 255, 255, 200, 30, 30, 30, 30, 200];
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, 8, 8, &palette).unwrap();
        encoder.set_repeat(gif::Repeat::Infinite).unwrap();
        encoder
            .write_raw_extension(gif::Extension::Comment.into(), &[SECRET.as_bytes()])
            .unwrap();
        let mut xmp = b"XMP DataXMP".to_vec();
        xmp.extend_from_slice(SECRET.as_bytes());
        encoder
            .write_raw_extension(gif::Extension::Application.into(), &[&xmp])
            .unwrap();
        for colour in [2u8, 3] {
            let mut frame = gif::Frame::from_indexed_pixels(8, 8, vec![colour; 64], None);
            frame.delay = 20;
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn fetch(browser: &crate::helpers::Browser, path: &str) -> reqwest::Response {
    browser.get(path).await
}

for_each_db! {
    /// A PDF goes up, rides a message live to the other person, and comes down byte for byte
    /// as a download; history shows it the same way.
    async fn a_document_travels_with_a_message(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;

        let uploaded = ann.upload_ok(&conversation, "invoice 2026-11.pdf", PDF.to_vec()).await;
        assert_eq!(uploaded.file_name, "invoice 2026-11.pdf");
        assert_eq!(uploaded.content_type, "application/pdf");
        assert_eq!(uploaded.size_bytes, PDF.len() as u64);
        assert!(!uploaded.is_image());

        // Before it is sent, only Ann may fetch it.
        assert_eq!(fetch(&bob, &uploaded.url()).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(fetch(&ann, &uploaded.url()).await.status(), StatusCode::OK);

        let sent = ann_socket
            .send_with_files(&conversation, "doc-1", "Here is the invoice", vec![uploaded.id])
            .await
            .unwrap();
        assert_eq!(sent.attachments, vec![uploaded.clone()]);
        let live = bob_socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(live.attachments, vec![uploaded.clone()]);

        let response = fetch(&bob, &uploaded.url()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/pdf");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        // Kept out of the browser's disk cache, where it would outlive a sign-out.
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["content-security-policy"], server::files::FILE_POLICY);
        assert!(!server::files::FILE_POLICY.contains("script"));
        assert_eq!(
            headers["content-disposition"],
            "attachment; filename=\"invoice 2026-11.pdf\"; filename*=UTF-8''invoice%202026-11.pdf"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), PDF);
        assert_eq!(
            fetch(&bob, &format!("{}/thumbnail", uploaded.url())).await.status(),
            StatusCode::NOT_FOUND,
            "only images have thumbnails"
        );

        let history = bob.history(&conversation, None, None).await;
        assert_eq!(history.messages[0].attachments, vec![uploaded]);
    }
}

for_each_db! {
    /// PNG text chunks, WebP XMP, and GIF comment and application blocks are gone from what
    /// other people download; the images still show, and a GIF keeps its animation.
    async fn every_image_kind_loses_its_metadata(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut socket = ann.socket().await;
        let uploads = [
            ("note.png", png_with_text(20, 10), "image/png"),
            ("sketch.webp", webp_with_xmp(20, 10), "image/webp"),
            ("wave.gif", gif_with_comments(), "image/gif"),
        ];
        for (i, (name, bytes, content_type)) in uploads.into_iter().enumerate() {
            assert!(contains(&bytes, SECRET.as_bytes()), "{name}: the fixture has its secret");
            assert!(image::load_from_memory(&bytes).is_ok(), "{name}: the fixture is an image");
            let uploaded = ann.upload_ok(&conversation, name, bytes).await;
            assert_eq!(uploaded.content_type, content_type);
            socket
                .send_with_files(&conversation, &format!("meta-{i}"), "", vec![uploaded.id])
                .await
                .unwrap();
            let response = fetch(&bob, &uploaded.url()).await;
            assert_eq!(response.status(), StatusCode::OK);
            let served = response.bytes().await.unwrap();
            assert!(!contains(&served, SECRET.as_bytes()), "{name}: its metadata was served");
            assert_eq!(served.len() as u64, uploaded.size_bytes, "{name}");
            let decoded = image::load_from_memory(&served).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (uploaded.width.unwrap(), uploaded.height.unwrap()));
            if content_type == "image/gif" {
                let mut options = gif::DecodeOptions::new();
                options.set_color_output(gif::ColorOutput::Indexed);
                let mut decoder = options.read_info(Cursor::new(served.to_vec())).unwrap();
                assert_eq!(decoder.repeat(), gif::Repeat::Infinite, "it still loops");
                let mut frames = Vec::new();
                while let Some(frame) = decoder.read_next_frame().unwrap() {
                    frames.push((frame.delay, frame.buffer.to_vec()));
                }
                assert_eq!(frames, [(20, vec![2; 64]), (20, vec![3; 64])], "every frame, as it was");
                assert!(!contains(&served, b"XMP DataXMP"));
            }
        }
    }
}

for_each_db! {
    /// An image is checked by decoding it, stored upright without its metadata, measured, and
    /// given a thumbnail; it is shown inline.
    async fn images_are_cleaned_measured_and_thumbnailed(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        // Orientation 6: the camera was turned; the picture is 60 wide, 30 high as stored.
        let original = jpeg_with_exif(60, 30, 6);
        assert!(contains(&original, SECRET.as_bytes()));
        let uploaded = ann.upload_ok(&conversation, "damaged parcel.jpg", original).await;
        assert_eq!(uploaded.content_type, "image/jpeg");
        assert_eq!((uploaded.width, uploaded.height), (Some(30), Some(60)), "stored upright");
        let mut socket = ann.socket().await;
        socket.send_with_files(&conversation, "img-1", "", vec![uploaded.id]).await.unwrap();

        let response = fetch(&bob, &uploaded.url()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));
        let served = response.bytes().await.unwrap();
        assert!(!contains(&served, SECRET.as_bytes()), "the metadata was served");
        assert!(!contains(&served, b"Exif"), "an EXIF block was served");
        assert_eq!(served.len() as u64, uploaded.size_bytes);
        let decoded = image::load_from_memory(&served).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (30, 60));

        let thumbnail = fetch(&bob, &uploaded.thumbnail_url()).await;
        assert_eq!(thumbnail.status(), StatusCode::OK);
        assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
        assert_eq!(thumbnail.headers()["cache-control"], "no-store");
        let thumbnail = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
        assert!(thumbnail.width() <= 400 && thumbnail.height() <= 400);

        // A large transparent PNG gets a PNG thumbnail no larger than 400 pixels a side.
        let big = ann.upload_ok(&conversation, "logo.png", png(900, 300)).await;
        assert_eq!((big.width, big.height), (Some(900), Some(300)));
        let thumbnail = fetch(&ann, &big.thumbnail_url()).await;
        assert_eq!(thumbnail.headers()["content-type"], "image/png");
        let thumbnail = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (400, 133));

        // A message of files only shows as an attachment in the conversation list.
        let list = bob.conversations().await;
        assert_eq!(list[0].last_message.as_ref().unwrap().body, ATTACHMENT_PREVIEW);
    }
}

/// An app whose uploads are limited to `max_bytes` and to the given kinds.
async fn app_with_rules(db: TestDb, max_bytes: u64, kinds: Vec<FileKind>) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.files.rules.max_bytes = max_bytes;
    config.files.rules.kinds = kinds;
    TestApp::start(config, scratch, db).await
}

async fn size_limits(db: TestDb) {
    let app = app_with_rules(db, 64 * 1024, FileKind::ALL.to_vec()).await;
    let (ann, _, _bob, _, conversation) = app.pair().await;
    let before = app.footprint().await;

    // Declared too large: refused before the body is read. Only the headers are sent, and the
    // answer comes all the same.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /files?conversation_id={}&name=big.txt HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\n\
         Cookie: {}\r\nContent-Length: {}\r\n\r\n",
        conversation.id,
        app.addr,
        app.url(""),
        ann.cookie_header().unwrap(),
        64 * 1024 + 1
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""limit_bytes":65536"#), "{answer}");

    // No length given, and the body grows past the limit: cut off. (Just over the limit in
    // all, so the whole body is sent before the answer comes.)
    let chunks = (0..17).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 4096]));
    let response = ann
        .http
        .post(ann.url("/files"))
        .query(&[
            ("conversation_id", conversation.id.to_string()),
            ("name", "stream.txt".into()),
        ])
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;

    let response = ann.upload(&conversation, "empty.txt", Vec::new()).await;
    let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["detail"][0]["message"], "empty.txt is empty");

    assert_eq!(app.footprint().await, before, "nothing was kept");
    // Exactly at the limit is fine.
    ann.upload_ok(&conversation, "exact.txt", vec![b'a'; 64 * 1024])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_size_limit_are_refused_postgres() {
    size_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_size_limit_are_refused_sqlite() {
    size_limits(TestDb::Sqlite).await;
}

/// One person's files, sent or not, may take only their storage quota: an upload that would
/// pass it is refused with a sentence saying so, before its body is read when its length is
/// given and once it has arrived otherwise, and nothing is kept. `upload_rules` says how much
/// is used, for the browser's check and for Settings; other people have their own quota.
async fn storage_quota(db: TestDb) {
    const KB: usize = 1024;
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.files.rules.quota_bytes = 1024 * 1024;
    let app = TestApp::start(config, scratch, db).await;
    let (ann, _, bob, _, conversation) = app.pair().await;

    ann.upload_ok(&conversation, "first.txt", vec![b'a'; 600 * KB])
        .await;
    let before = app.footprint().await;
    let refused = ann
        .upload(&conversation, "second.txt", vec![b'b'; 600 * KB])
        .await;
    // Refused before its body was read: the connection is not to be used again (the next
    // request would find it cut).
    assert_eq!(refused.headers()["connection"], "close");
    let body = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    let message = body["detail"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        "second.txt does not fit: 600 KB of your 1 MB of storage are in use"
    );
    let chunks = (0..150).map(|_| Ok::<_, std::io::Error>(vec![b'c'; 4 * KB]));
    let streamed = ann
        .http
        .post(ann.url("/files"))
        .query(&[
            ("conversation_id", conversation.id.to_string()),
            ("name", "streamed.txt".into()),
        ])
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(streamed, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.footprint().await, before, "nothing was kept");

    let rules: app::uploads::UploadRules =
        crate::helpers::expect_json(ann.post("upload_rules", &[]).await, StatusCode::OK).await;
    assert_eq!(
        (rules.used_bytes, rules.quota_bytes),
        (600 * 1024, 1024 * 1024)
    );
    // What is left still fits; Bob's quota is his own.
    ann.upload_ok(&conversation, "small.txt", vec![b'd'; 400 * KB])
        .await;
    bob.upload_ok(&conversation, "bobs.txt", vec![b'e'; 300 * KB])
        .await;
    // Two of Bob's uploads at once, each fitting alone but not both: one is refused.
    let (one, two) = tokio::join!(
        bob.upload(&conversation, "one.txt", vec![b'f'; 400 * KB]),
        bob.upload(&conversation, "two.txt", vec![b'g'; 400 * KB]),
    );
    let mut statuses = [one.status(), two.status()];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY]
    );
    let rules: app::uploads::UploadRules =
        crate::helpers::expect_json(bob.post("upload_rules", &[]).await, StatusCode::OK).await;
    assert_eq!(rules.used_bytes, 700 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_storage_quota_are_refused_postgres() {
    storage_quota(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_storage_quota_are_refused_sqlite() {
    storage_quota(TestDb::Sqlite).await;
}

for_each_db! {
    /// The type comes from the bytes: an executable named like a photo, a "PNG" that does not
    /// decode and unknown binary data are refused with 415 and a sentence naming the file.
    async fn file_types_are_decided_by_their_bytes(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let before = app.footprint().await;
        let mut broken_png = png(10, 10);
        broken_png.truncate(40);
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("photo.png", EXE.to_vec(), "photo.png: this file type is not allowed"),
            ("holiday.png", broken_png, "holiday.png: it is not a valid image"),
            ("data.bin", vec![0, 159, 146, 150, 1, 2, 3], "data.bin: this file type is not allowed"),
            ("setup.zip.exe", EXE.to_vec(), "setup.zip.exe: this file type is not allowed"),
        ];
        for (name, bytes, message) in cases {
            let response = ann.upload(&conversation, name, bytes).await;
            let body = expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
            assert_eq!(body["error"], "unsupported_media_type", "{name}");
            assert_eq!(body["detail"], message, "{name}");
        }
        assert_eq!(app.footprint().await, before, "nothing was kept");

        // Text is text whatever its name; a .csv name makes it CSV.
        let csv = ann.upload_ok(&conversation, "orders.csv", b"id,total\n1,9.99\n".to_vec()).await;
        assert_eq!(csv.content_type, "text/csv");
        let text = ann.upload_ok(&conversation, "photo.png", "just words, ünïcödé".as_bytes().to_vec()).await;
        assert_eq!(text.content_type, "text/plain");
        assert!(!text.is_image());
        // A PDF named .txt is a PDF.
        let pdf = ann.upload_ok(&conversation, "notes.txt", PDF.to_vec()).await;
        assert_eq!(pdf.content_type, "application/pdf");
        assert_eq!(pdf.file_name, "notes.txt.pdf");

        // A few bytes of PNG that claim 7,000 × 7,000 pixels of 16-bit colour (over a
        // gigabyte decoded) are refused from the header, before any decoding.
        let response = ann.upload(&conversation, "bomb.png", png_claiming(7_000, 7_000)).await;
        let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let message = body["detail"][0]["message"].as_str().unwrap();
        assert!(message.contains("too large to process"), "{body}");
        assert_eq!(app.footprint().await.attachments, before.attachments + 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_kinds_are_accepted() {
    let app = app_with_rules(TestDb::Sqlite, 1024 * 1024, vec![FileKind::Pdf]).await;
    let (ann, _, _bob, _, conversation) = app.pair().await;
    let response = ann.upload(&conversation, "logo.png", png(4, 4)).await;
    let body = expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(body["detail"], "logo.png: this file type is not allowed");
    ann.upload_ok(&conversation, "terms.pdf", PDF.to_vec())
        .await;
}

for_each_db! {
    /// Names are labels: paths are cut off, Unicode kept, controls and direction overrides
    /// dropped; the stored objects never carry them.
    async fn file_names_are_sanitised(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let cases = [
            ("../../etc/passwd", "passwd.txt"),
            ("C:\\Windows\\System32\\evil.txt", "evil.txt"),
            ("naïve résumé ✓.txt", "naïve résumé ✓.txt"),
            // The name ends in what the file is, whatever it claimed to be.
            ("report\u{202E}txt.exe", "reporttxt.exe.txt"),
            ("run.bat", "run.bat.txt"),
            ("<img src=x onerror=alert(1)>.txt", "<img src=x onerror=alert(1)>.txt"),
            ("..", "file.txt"),
        ];
        for (given, kept) in cases {
            let uploaded = ann.upload_ok(&conversation, given, b"hello".to_vec()).await;
            assert_eq!(uploaded.file_name, kept, "{given}");
            let response = fetch(&ann, &uploaded.url()).await;
            let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
            assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
            assert!(!disposition.contains('/') && !disposition.contains('\\'), "{disposition}");
        }
        let mut names = Vec::new();
        collect_names(app.scratch.files.path(), &mut names);
        for name in names {
            assert!(name.chars().all(|c| c.is_ascii_hexdigit() || c == '.' || c.is_ascii_lowercase()), "{name}");
        }
    }
}

fn collect_names(dir: &std::path::Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_names(&path, names);
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
}

for_each_db! {
    /// Only the two participants fetch an attachment or its thumbnail; anyone else gets the
    /// same 404 as for a file that does not exist. Nobody can upload into, or send, someone
    /// else's files.
    async fn only_participants_reach_attachments(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let (eve, _) = app.user("eve").await;
        let anonymous = app.browser();
        let image = ann.upload_ok(&conversation, "photo.png", png(8, 8)).await;
        let pending = ann.upload_ok(&conversation, "draft.pdf", PDF.to_vec()).await;
        let mut socket = ann.socket().await;
        socket.send_with_files(&conversation, "m1", "look", vec![image.id]).await.unwrap();

        let missing = AttachmentView { id: AttachmentId(image.id.0 + 1000), ..image.clone() };
        let nowhere = fetch(&eve, &missing.url()).await;
        assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
        let nowhere = nowhere.text().await.unwrap();
        for path in [image.url(), image.thumbnail_url(), pending.url()] {
            for (who, browser) in [("eve", &eve), ("anonymous", &anonymous)] {
                let response = fetch(browser, &path).await;
                assert_eq!(response.status(), StatusCode::NOT_FOUND, "{who} {path}");
                assert_eq!(response.text().await.unwrap(), nowhere, "{who} {path}");
            }
        }
        assert_eq!(fetch(&bob, &pending.url()).await.status(), StatusCode::NOT_FOUND, "unsent");
        assert_eq!(fetch(&bob, &image.thumbnail_url()).await.status(), StatusCode::OK);
        assert_eq!(fetch(&bob, "/files/not-a-number").await.status(), StatusCode::NOT_FOUND);

        // Eve can't upload into their conversation, nor send Ann's upload in her own.
        let before = app.footprint().await;
        let response = eve.upload(&conversation, "x.txt", b"x".to_vec()).await;
        assert_eq!(expect_error(response, StatusCode::NOT_FOUND).await["error"], "not_found");
        let hers = eve.open_conversation("ann").await;
        let before_send = app.footprint().await;
        let mut eve_socket = eve.socket().await;
        let refused = eve_socket.send_with_files(&hers, "steal", "", vec![pending.id]).await;
        assert_eq!(refused.unwrap_err().0, ErrorCode::InvalidInput);
        assert_eq!(app.footprint().await, before_send);
        assert!(before.conversations < before_send.conversations);

        // Ann can't send the same upload twice, nor an id that is not an upload.
        let twice = socket.send_with_files(&conversation, "m2", "", vec![image.id]).await;
        assert_eq!(twice.unwrap_err().0, ErrorCode::InvalidInput);
        let duplicate = socket.send_with_files(&conversation, "m3", "", vec![pending.id, pending.id]).await;
        assert_eq!(duplicate.unwrap_err().0, ErrorCode::InvalidInput);
        assert_eq!(fetch(&bob, &pending.url()).await.status(), StatusCode::NOT_FOUND, "still unsent");
    }
}

for_each_db! {
    /// At most ten files per message; blank text is fine with files and refused without.
    async fn messages_carry_at_most_ten_files(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let mut ids = Vec::new();
        for n in 0..=MAX_ATTACHMENTS_PER_MESSAGE {
            ids.push(ann.upload_ok(&conversation, &format!("{n}.txt"), b"x".to_vec()).await.id);
        }
        let mut socket = ann.socket().await;
        let before = app.footprint().await;
        let refused = socket.send_with_files(&conversation, "many", "", ids.clone()).await;
        assert_eq!(
            refused.unwrap_err(),
            (ErrorCode::InvalidInput, "A message can carry at most 10 files.".to_owned())
        );
        let blank = socket.send_with_files(&conversation, "blank", "  ", Vec::new()).await;
        assert_eq!(blank.unwrap_err().0, ErrorCode::InvalidInput);
        assert_eq!(app.footprint().await, before);

        ids.truncate(MAX_ATTACHMENTS_PER_MESSAGE);
        let sent = socket.send_with_files(&conversation, "ten", "  ", ids.clone()).await.unwrap();
        assert_eq!(sent.body, "");
        let order: Vec<AttachmentId> = sent.attachments.iter().map(|a| a.id).collect();
        assert_eq!(order, ids, "in the order given");
        // A retry of the same send is the same message, files and all.
        let again = socket.send_with_files(&conversation, "ten", "", ids).await.unwrap();
        assert_eq!(again, sent);
    }
}

for_each_db! {
    /// Uploads nobody sent are removed after a while, bytes and all; sent ones stay.
    async fn unsent_uploads_are_cleaned_up(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let sent = ann.upload_ok(&conversation, "kept.png", png(8, 8)).await;
        let mut socket = ann.socket().await;
        socket.send_with_files(&conversation, "m", "", vec![sent.id]).await.unwrap();
        let files_before = app.footprint().await.stored_files;
        let abandoned = ann.upload_ok(&conversation, "left.png", png(8, 8)).await;
        assert_eq!(app.footprint().await.stored_files, files_before + 2, "image and thumbnail");

        let mut config = Config::for_tests(app.scratch.url.clone());
        config.files.data_dir = app.scratch.files.path().to_owned();
        let service = server::files::FileService::new(&config.files).unwrap();
        let db = sea_orm::Database::connect(&app.scratch.url).await.unwrap();
        // Not old enough yet: nothing happens.
        let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        assert_eq!(server::files::clean_up(&db, service.storage(), an_hour_ago).await, 0);
        let later = chrono::Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(server::files::clean_up(&db, service.storage(), later).await, 1);
        db.close().await.unwrap();

        assert_eq!(app.footprint().await.stored_files, files_before);
        assert_eq!(fetch(&ann, &abandoned.url()).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(fetch(&ann, &sent.url()).await.status(), StatusCode::OK);
        let refused = socket.send_with_files(&conversation, "late", "", vec![abandoned.id]).await;
        assert_eq!(refused.unwrap_err().0, ErrorCode::InvalidInput);
    }
}

for_each_db! {
    /// Uploads are refused without a session (401), from another site (403), with unknown
    /// parameters (400), and over the per-user rate (429).
    async fn uploads_need_a_session_the_site_and_a_sane_request(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let anonymous = app.browser();
        let before = app.footprint().await;
        let response = anonymous.upload(&conversation, "a.txt", b"a".to_vec()).await;
        assert_eq!(expect_error(response, StatusCode::UNAUTHORIZED).await["error"], "unauthorized");
        let response = ann
            .http
            .post(ann.url("/files"))
            .header("origin", "https://evil.example")
            .query(&[("conversation_id", conversation.id.to_string()), ("name", "a.txt".into())])
            .body("a")
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(response, StatusCode::FORBIDDEN).await["error"], "cross_origin");
        let response = ann
            .http
            .post(ann.url("/files"))
            .query(&[("conversation_id", conversation.id.to_string()), ("name", "a.txt".into()), ("public", "true".into())])
            .body("a")
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(response, StatusCode::BAD_REQUEST).await["error"], "bad_request");
        let response = ann.http.post(ann.url("/files?conversation_id=abc&name=a.txt")).body("a").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(app.footprint().await, before);
    }
}
