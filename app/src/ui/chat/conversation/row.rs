//! One line of the message log ([`RowView`]): a day separator, the "New messages" divider, or a
//! message with its sender, time, card, text, files and ticks.

use leptos::prelude::*;

use super::super::{
    card::CardView,
    links::{Segment, segments},
    store::{ChatStore, Connection},
    thread::{Delivery, Receipt, Row},
};
use crate::{model::AttachmentView, ui::time, uploads::format_size};

use super::log::{FollowBottom, Receipts};

/// One line of the log: a day separator, the "new messages" divider, or a message.
#[component]
pub fn RowView(row: Row) -> impl IntoView {
    let store = expect_context::<ChatStore>();
    match row {
        Row::NewMessages => view! {
            <li class="new-messages" role="separator" aria-label="New messages">
                "New messages"
            </li>
        }
        .into_any(),
        Row::Day { key, label } => {
            let date = key.trim_start_matches("day-").to_owned();
            let name = label.clone();
            view! {
                <li class="day-separator" role="separator" aria-label=name>
                    <time datetime=date>{label}</time>
                </li>
            }
            .into_any()
        }
        Row::Message {
            notice: true,
            seq,
            body,
            card,
            created_at,
            ..
        } => view! {
            <li class="notice" data-state="sent" data-seq=seq.map(|s| s.to_string())>
                {card.map(|card| view! { <CardView card=*card/> }.into_any())}
                {(!body.is_empty()).then(|| view! { <p class="body">{body}</p> }.into_any())}
                <time datetime=time::machine(created_at)>{time::clock(created_at)}</time>
            </li>
        }
        .into_any(),
        Row::Message {
            client_msg_id,
            seq,
            sender,
            mine,
            body,
            attachments,
            card,
            created_at,
            state,
            ..
        } => {
            let status = match &state {
                Delivery::Sent => mine.then_some(seq).flatten().map(|seq| {
                    let receipts = expect_context::<Receipts>().0;
                    let receipt = move || {
                        let (delivered, read) = receipts.get().unwrap_or((0, None));
                        Receipt::of(seq, delivered, read)
                    };
                    view! {
                        <span
                            class="receipt"
                            data-receipt=move || receipt().as_str()
                            title=move || receipt().label()
                        >
                            <span aria-hidden="true">
                                {move || if receipt() == Receipt::Sent { "✓" } else { "✓✓" }}
                            </span>
                            <span class="visually-hidden">{move || receipt().label()}</span>
                        </span>
                    }
                    .into_any()
                }),
                // Offline, a message waits in the outbox (kept across reloads) until the
                // connection is back.
                Delivery::Sending => Some(
                    view! {
                        <span class="status">
                            {move || {
                                if store.connection.get() == Connection::Online {
                                    "Sending…"
                                } else {
                                    "Waiting to send"
                                }
                            }}
                        </span>
                    }
                    .into_any(),
                ),
                Delivery::Failed(reason) => Some(
                    view! {
                        <span class="status failed" role="alert">
                            {format!("Not sent: {reason}")}
                        </span>
                        <button class="link" on:click=move |_| store.retry_failed()>
                            "Retry"
                        </button>
                        <button class="link" on:click=move |_| store.discard(&client_msg_id)>
                            "Delete"
                        </button>
                    }
                    .into_any(),
                ),
            };
            view! {
                <li class=if mine { "message mine" } else { "message" } data-state=state.as_str() data-seq=seq.map(|s| s.to_string())>
                    <div class="meta">
                        <span class="sender">{sender.display_name}</span>
                        <time datetime=time::machine(created_at)>{time::clock(created_at)}</time>
                        {status}
                    </div>
                    {card.map(|card| view! { <CardView card=*card/> }.into_any())}
                    {(!body.is_empty())
                        .then(|| {
                            view! {
                                <p class="body">
                                    {segments(&body)
                            .into_iter()
                            .map(|segment| match segment {
                                Segment::Text(text) => text.into_any(),
                                Segment::Link(url) => {
                                    let href = url.clone();
                                    view! {
                                        <a
                                            href=href
                                            rel="noopener noreferrer nofollow"
                                            target="_blank"
                                        >
                                            {url}
                                        </a>
                                    }
                                        .into_any()
                                }
                            })
                            .collect_view()}
                                </p>
                            }
                                .into_any()
                        })}
                    {(!attachments.is_empty())
                        .then(|| {
                            view! {
                                <ul class="attachments">
                                    {attachments
                                        .into_iter()
                                        .map(|file| view! { <li class="attachment"><AttachmentLink file/></li> }.into_any())
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        })}
                </li>
            }
            .into_any()
        }
    }
}

/// An attached file in a message: an image as its thumbnail (opening the full size), anything
/// else as a card with its name and size that downloads it.
#[component]
fn AttachmentLink(file: AttachmentView) -> impl IntoView {
    let url = file.url();
    let name = file.file_name.clone();
    if file.is_image() {
        let (width, height) = thumbnail_size(&file);
        let thumbnail = file.thumbnail_url();
        let title = name.clone();
        let follow = use_context::<FollowBottom>();
        let loaded = move |_| {
            if let Some(FollowBottom(follow)) = follow {
                follow.run(());
            }
        };
        view! {
            <a class="image-attachment" href=url target="_blank" rel="noopener" title=title>
                <img
                    src=thumbnail
                    alt=name
                    width=width
                    height=height
                    loading="lazy"
                    on:load=loaded
                />
            </a>
        }
        .into_any()
    } else {
        let download = name.clone();
        view! {
            <a class="file-card" href=url download=download>
                <span class="file-icon" aria-hidden="true">{file_badge(&file.content_type)}</span>
                <span class="file-name">{name}</span>
                <span class="file-size">{format_size(file.size_bytes)}</span>
            </a>
        }
        .into_any()
    }
}

/// The thumbnail's pixel size (the server fits images in 400 × 400), so the page does not
/// jump when it loads.
fn thumbnail_size(file: &AttachmentView) -> (u32, u32) {
    let (width, height) = (
        file.width.unwrap_or(1).max(1),
        file.height.unwrap_or(1).max(1),
    );
    let scale = (400.0 / f64::from(width.max(height))).min(1.0);
    let fit = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    (fit(width), fit(height))
}

/// The label on a file card: what kind of file it is, in a word.
fn file_badge(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "PDF",
        "application/zip" => "ZIP",
        "text/csv" => "CSV",
        "text/plain" => "TXT",
        t if t.contains("spreadsheet") || t.contains("excel") => "XLS",
        t if t.contains("presentation") || t.contains("powerpoint") => "PPT",
        t if t.contains("word") => "DOC",
        _ => "FILE",
    }
}
