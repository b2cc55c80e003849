//! Files in the message being written: chosen with the "Attach files" input, dropped on the
//! conversation or pasted, checked before anything is uploaded, uploaded one by one with a
//! progress bar and a Cancel button, and retried when an upload fails. The message goes out
//! only once every one of its files is stored.
//!
//! Uploads use `XMLHttpRequest`, the browser API that reports upload progress (`fetch` does
//! not). Only the browser build uploads; on the server the list simply stays empty.

use leptos::prelude::*;

use crate::{model::AttachmentView, uploads::UploadRules};

/// Where one file of the message being written is.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftState {
    /// Refused by the early check (type, size or storage left); it can only be removed.
    Refused(String),
    /// On its way: the fraction sent so far.
    Uploading(f64),
    /// The upload failed; it can be retried or removed.
    Failed(String),
    /// Stored on the server, ready to go with the message.
    Stored(AttachmentView),
}

impl DraftState {
    /// The value of the `data-state` attribute tests and styles rely on.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Uploading(_) => "uploading",
            Self::Failed(_) => "failed",
            Self::Stored(_) => "stored",
        }
    }
}

/// One file of the message being written.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub key: u64,
    pub name: String,
    pub size: u64,
    pub state: DraftState,
}

/// The files of the message being written, shared (through context) by the composer and the
/// conversation's drop zone.
#[derive(Clone, Copy)]
pub struct Drafts {
    pub items: RwSignal<Vec<Draft>>,
    /// This server's rules, fetched once the page runs; the defaults until then.
    pub rules: RwSignal<UploadRules>,
    /// A word about files that were left out (too many for one message).
    pub notice: RwSignal<Option<String>>,
    #[cfg(feature = "hydrate")]
    next_key: StoredValue<u64>,
    /// The browser's objects for each file: the file itself (to retry) and its upload. A
    /// list (at most [`crate::model::MAX_ATTACHMENTS_PER_MESSAGE`]), not a map: each map type
    /// adds its own code to the bundle (docs/performance.md).
    #[cfg(feature = "hydrate")]
    handles: StoredValue<Vec<browser::Handle>, LocalStorage>,
}

impl Drafts {
    pub fn new() -> Self {
        Self {
            items: RwSignal::new(Vec::new()),
            rules: RwSignal::new(UploadRules::default()),
            notice: RwSignal::new(None),
            #[cfg(feature = "hydrate")]
            next_key: StoredValue::new(0),
            #[cfg(feature = "hydrate")]
            handles: StoredValue::new_local(Vec::new()),
        }
    }

    /// The files the message will carry, or why it can't be sent yet.
    ///
    /// # Errors
    /// A sentence for the user while a file is uploading, or failed or was refused.
    pub fn ready(&self) -> Result<Vec<AttachmentView>, &'static str> {
        self.items.with(|items| {
            items
                .iter()
                .map(|item| match &item.state {
                    DraftState::Stored(view) => Ok(view.clone()),
                    DraftState::Uploading(_) => Err("Wait until every file is uploaded."),
                    DraftState::Refused(_) | DraftState::Failed(_) => {
                        Err("Remove or retry the files that could not be uploaded.")
                    }
                })
                .collect()
        })
    }

    /// Whether a file is still on its way.
    pub fn uploading(&self) -> bool {
        self.items.with(|items| {
            items
                .iter()
                .any(|item| matches!(item.state, DraftState::Uploading(_)))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.items.with(Vec::is_empty)
    }

    /// Forgets every file, cancelling uploads still running (after sending, or when another
    /// conversation opens).
    pub fn clear(&self) {
        // Dropping a handle stops its upload.
        #[cfg(feature = "hydrate")]
        self.handles.update_value(Vec::clear);
        self.items.set(Vec::new());
        self.notice.set(None);
    }

    /// Stops every upload still running, without touching the list: for when the page that
    /// shows it goes away (its signals may already be gone).
    pub fn stop_uploads(&self) {
        #[cfg(feature = "hydrate")]
        self.handles.try_update_value(Vec::clear);
    }

    /// Removes one file, cancelling its upload if it is running.
    pub fn remove(&self, key: u64) {
        #[cfg(feature = "hydrate")]
        self.handles
            .update_value(|handles| handles.retain(|handle| handle.key != key));
        self.items
            .update(|items| items.retain(|item| item.key != key));
        self.notice.set(None);
    }
}

impl Default for Drafts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "hydrate")]
pub use browser::{dropped_files, input_files, pasted_files};

#[cfg(feature = "hydrate")]
mod browser {
    //! The browser side: files from inputs, drops and pastes, and `XMLHttpRequest` uploads.

    use std::rc::Rc;

    use leptos::prelude::*;
    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{File, FileList, ProgressEvent, XmlHttpRequest};

    use super::{Draft, DraftState, Drafts};
    use crate::{
        error::AppError,
        model::{ConversationId, MAX_ATTACHMENTS_PER_MESSAGE},
        uploads::format_size,
    };

    /// A file's browser objects. Dropping it stops its upload.
    pub(super) struct Handle {
        /// The draft's key.
        pub(super) key: u64,
        file: File,
        /// Held for its `Drop`, which stops the request.
        _upload: Option<Upload>,
    }

    /// A running request and the callbacks it calls, which must live as long as it does.
    struct Upload {
        xhr: XmlHttpRequest,
        _progress: Closure<dyn FnMut(ProgressEvent)>,
        _loaded: Closure<dyn FnMut()>,
        _failed: Closure<dyn FnMut()>,
    }

    impl Drop for Upload {
        /// The request must never call a callback that is gone: unhook them, then stop it.
        fn drop(&mut self) {
            self.xhr.set_onload(None);
            self.xhr.set_onerror(None);
            if let Ok(upload) = self.xhr.upload() {
                upload.set_onprogress(None);
            }
            let _ = self.xhr.abort();
        }
    }

    fn files_of(list: Option<FileList>) -> Vec<File> {
        let Some(list) = list else {
            return Vec::new();
        };
        (0..list.length()).filter_map(|i| list.get(i)).collect()
    }

    /// The files chosen in an `<input type="file">`; the input is emptied so that the same
    /// file can be chosen again.
    pub fn input_files(ev: &leptos::ev::Event) -> Vec<File> {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return Vec::new();
        };
        let files = files_of(input.files());
        input.set_value("");
        files
    }

    /// The files dropped on the page.
    pub fn dropped_files(ev: &leptos::ev::DragEvent) -> Vec<File> {
        files_of(ev.data_transfer().and_then(|data| data.files()))
    }

    /// The files pasted (an image copied from elsewhere).
    pub fn pasted_files(ev: &leptos::ev::ClipboardEvent) -> Vec<File> {
        files_of(ev.clipboard_data().and_then(|data| data.files()))
    }

    impl Drafts {
        fn set_state(&self, key: u64, state: DraftState) {
            self.items.update(|items| {
                if let Some(item) = items.iter_mut().find(|item| item.key == key) {
                    item.state = state;
                }
            });
        }

        fn push(&self, name: String, size: u64, state: DraftState) -> u64 {
            let key = self.next_key.get_value();
            self.next_key.set_value(key + 1);
            self.items.update(|items| {
                items.push(Draft {
                    key,
                    name,
                    size,
                    state,
                });
            });
            key
        }

        /// Whether another file fits in the message; says so when it does not.
        fn has_room(&self) -> bool {
            let room = self.items.with_untracked(Vec::len) < MAX_ATTACHMENTS_PER_MESSAGE;
            if !room {
                self.notice.set(Some(format!(
                    "A message can carry at most {MAX_ATTACHMENTS_PER_MESSAGE} files; the rest were \
                     left out."
                )));
            }
            room
        }

        /// Adds files to the message: each is checked at once, and uploaded if it passes.
        pub fn add(&self, conversation: ConversationId, files: Vec<File>) {
            let rules = self.rules.get_untracked();
            for file in files {
                if !self.has_room() {
                    break;
                }
                let name = file.name();
                // A file's size is a whole number of bytes, given as a double.
                let size = file.size().max(0.0) as u64;
                // Files still on their way count against the storage left too.
                let uploading = self.items.with_untracked(|items| {
                    items
                        .iter()
                        .filter(|item| matches!(item.state, DraftState::Uploading(_)))
                        .map(|item| item.size)
                        .sum()
                });
                match rules.check(&name, size, uploading) {
                    Err(problem) => {
                        self.push(name, size, DraftState::Refused(problem));
                    }
                    Ok(()) => {
                        let key = self.push(name, size, DraftState::Uploading(0.0));
                        self.upload(key, conversation, file);
                    }
                }
            }
        }

        /// Uploads a file that failed again.
        pub fn retry(&self, key: u64, conversation: ConversationId) {
            let file = self.handles.with_value(|handles| {
                handles
                    .iter()
                    .find(|handle| handle.key == key)
                    .map(|handle| handle.file.clone())
            });
            if let Some(file) = file {
                self.set_state(key, DraftState::Uploading(0.0));
                self.upload(key, conversation, file);
            }
        }

        fn upload(&self, key: u64, conversation: ConversationId, file: File) {
            let drafts = *self;
            let name = file.name();
            let started = start(
                conversation,
                &file,
                move |fraction| {
                    drafts.items.update(|items| {
                        if let Some(item) = items.iter_mut().find(|item| item.key == key)
                            && matches!(item.state, DraftState::Uploading(_))
                        {
                            item.state = DraftState::Uploading(fraction);
                        }
                    });
                },
                move |outcome| {
                    // A stored file takes its place in the person's storage at once.
                    if let DraftState::Stored(view) = &outcome {
                        drafts
                            .rules
                            .update(|rules| rules.used_bytes += view.size_bytes);
                    }
                    drafts.set_state(key, outcome);
                },
                name,
            );
            let upload = match started {
                Ok(upload) => Some(upload),
                Err(reason) => {
                    self.set_state(key, DraftState::Failed(reason));
                    None
                }
            };
            // A retry replaces the file's earlier handle, which stops that upload.
            self.handles.update_value(|handles| {
                handles.retain(|handle| handle.key != key);
                handles.push(Handle {
                    key,
                    file,
                    _upload: upload,
                });
            });
        }
    }

    /// Starts `POST /files`; `progress` hears the fraction sent, `done` the outcome, once:
    /// stored, refused for good (the same bytes would be refused again), or failed (worth a
    /// retry: the network, the server's health, a rate limit).
    fn start(
        conversation: ConversationId,
        file: &File,
        progress: impl Fn(f64) + 'static,
        done: impl Fn(DraftState) + 'static,
        name: String,
    ) -> Result<Upload, String> {
        let cannot = |_| "The upload could not start.".to_owned();
        let xhr = XmlHttpRequest::new().map_err(cannot)?;
        let url = format!(
            "/files?conversation_id={conversation}&name={}",
            String::from(js_sys::encode_uri_component(&name))
        );
        xhr.open("POST", &url).map_err(cannot)?;

        let on_progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |ev: ProgressEvent| {
            if ev.length_computable() && ev.total() > 0.0 {
                progress(ev.loaded() / ev.total());
            }
        });
        xhr.upload()
            .map_err(cannot)?
            .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));

        let done = Rc::new(done);
        let on_loaded = {
            let done = done.clone();
            let xhr = xhr.clone();
            let name = name.clone();
            Closure::<dyn FnMut()>::new(move || {
                let status = xhr.status().unwrap_or_default();
                let body = xhr.response_text().ok().flatten().unwrap_or_default();
                done(match status {
                    201 => serde_json::from_slice(body.as_bytes()).map_or_else(
                        |_| DraftState::Failed("The server's answer could not be read.".into()),
                        DraftState::Stored,
                    ),
                    400..=499 if status != 408 && status != 429 => {
                        DraftState::Refused(failure(&name, status, &body))
                    }
                    _ => DraftState::Failed(failure(&name, status, &body)),
                });
            })
        };
        xhr.set_onload(Some(on_loaded.as_ref().unchecked_ref()));
        let on_failed = Closure::<dyn FnMut()>::new(move || {
            done(DraftState::Failed(format!(
                "{name} could not be uploaded: the connection failed."
            )));
        });
        xhr.set_onerror(Some(on_failed.as_ref().unchecked_ref()));

        xhr.send_with_opt_blob(Some(file)).map_err(cannot)?;
        Ok(Upload {
            xhr,
            _progress: on_progress,
            _loaded: on_loaded,
            _failed: on_failed,
        })
    }

    /// Why the server refused an upload, in words.
    fn failure(name: &str, status: u16, body: &str) -> String {
        match serde_json::from_slice::<AppError>(body.as_bytes()) {
            Ok(AppError::PayloadTooLarge { limit_bytes }) => {
                format!(
                    "{name} is too large; the limit is {}",
                    format_size(limit_bytes)
                )
            }
            Ok(AppError::Invalid(errors)) => errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join(" "),
            Ok(error) => error.to_string(),
            Err(_) => format!("{name} could not be uploaded (HTTP {status})."),
        }
    }
}
