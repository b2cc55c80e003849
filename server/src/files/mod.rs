//! Attachments over HTTP: `POST /files` stores an upload, `GET /files/{id}` and
//! `GET /files/{id}/thumbnail` serve it to the people who may see it.
//!
//! An upload's path: the body streams to a temporary file under the data directory, counted
//! as it comes (a `Content-Length` over the limit is refused before anything is read, a body
//! that grows past it is cut off: 413, nothing kept); its type is decided from its bytes
//! ([`sniff`]) and must be allowed (else 415); an image must decode ([`images`]), and what is
//! stored is a copy without its metadata, with a thumbnail; then the bytes go to the object
//! store ([`storage`]) under random keys and a pending row is recorded
//! (`app::attachments::create`). The message that carries it attaches it later, over the
//! WebSocket.
//!
//! Refusals are JSON errors like every other (`{"error": …}`), and anything not allowed to see
//! a file gets 404, whether or not the file exists.

pub mod images;
pub mod sniff;
pub mod storage;

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures::StreamExt;
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use tokio::{io::AsyncWriteExt, sync::Semaphore};

use app::{
    accounts::AuthSession,
    attachments::{self, NewAttachment},
    conversations,
    error::AppError,
    model::{AttachmentId, AttachmentView, ConversationId, FileName, UserId},
    state::AppState,
    uploads::{FileKind, UploadRules},
};

use self::{images::ImageProblem, sniff::TextCheck, storage::Storage};
use crate::config::FilesConfig;

/// How many images are decoded at once: the rest wait, so that image work never takes every
/// core from the chat.
const IMAGE_JOBS: usize = 2;
/// How often unsent uploads are looked for.
const CLEAN_UP_EVERY: Duration = Duration::from_secs(10 * 60);
/// Unsent uploads removed per round, at most.
const CLEAN_UP_BATCH: u64 = 500;
/// A temporary upload file untouched for this long belongs to no running upload.
const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);
/// The Content-Security-Policy of a served file (see [`serve`]).
pub const FILE_POLICY: &str =
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/// What the file routes share.
#[derive(Clone)]
pub struct FileService {
    storage: Storage,
    rules: Arc<UploadRules>,
    /// Where uploads are written while they arrive.
    tmp_dir: PathBuf,
    images: Arc<Semaphore>,
}

impl FileService {
    /// Opens the storage the configuration names and prepares the upload directory.
    ///
    /// # Errors
    /// The storage can't be opened or the directory created.
    pub fn new(config: &FilesConfig) -> anyhow::Result<Self> {
        let tmp_dir = config.data_dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        remove_abandoned(&tmp_dir);
        Ok(Self {
            storage: Storage::from_config(config)?,
            rules: Arc::new(config.rules.clone()),
            tmp_dir,
            images: Arc::new(Semaphore::new(IMAGE_JOBS)),
        })
    }

    /// The storage, for the clean-up task.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// Removes the temporary files a process left when it stopped mid-upload: those untouched for
/// [`ABANDONED_AFTER`]. Younger ones may be uploads in progress in another instance that
/// shares the data directory, so they stay.
fn remove_abandoned(tmp_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The file routes, to merge into the main router.
pub fn router(service: FileService) -> Router<AppState> {
    Router::new()
        .route(
            "/files",
            post(upload).layer(axum::middleware::from_fn(close_after_refusal)),
        )
        .route("/files/{id}", get(download))
        .route("/files/{id}/thumbnail", get(thumbnail))
        .layer(Extension(service))
}

/// Ends an HTTP/1.1 connection after a refused upload (`Connection: close`). An upload is
/// often refused before its body is read (too large, over the quota, rate limited); the
/// connection then still has the unread body in it and the server drops it, while the client,
/// told nothing, may send its next request down it and see it cut. HTTP/2 streams don't have
/// the problem (and may not carry the header).
async fn close_after_refusal(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let http1 = request.version() < axum::http::Version::HTTP_2;
    let mut response = next.run(request).await;
    if http1 && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// `POST /files?conversation_id=…&name=…` query. Unknown parameters are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    conversation_id: i64,
    name: String,
}

/// A temporary file (and its cleaned copy) that is removed however the upload ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // Two unlinks in a local directory: cheaper than handing them to another thread.
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(images::cleaned_path(&self.0));
    }
}

/// Stores an upload as a pending attachment of a conversation: 201 with its
/// [`AttachmentView`].
async fn upload(
    State(state): State<AppState>,
    Extension(files): Extension<FileService>,
    auth: AuthSession,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<AttachmentView>), AppError> {
    let user = auth.user.ok_or(AppError::Unauthorized)?;
    state.limits.upload(user.id)?;
    let Query(query) = query.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > files.rules.max_bytes) {
        return Err(AppError::PayloadTooLarge {
            limit_bytes: files.rules.max_bytes,
        });
    }
    let conversation_id = ConversationId(query.conversation_id);
    conversations::find_for_member(&state.db, user.id, conversation_id).await?;
    // The storage quota, before the body is read when its length is known.
    let used_bytes = attachments::used_bytes(&state.db, user.id)
        .await
        .map_err(|error| AppError::internal(&error))?;
    let quota = UploadRules {
        used_bytes,
        ..files.rules.as_ref().clone()
    };
    let name = FileName::sanitise(&query.name);
    if let Some(length) = declared {
        quota
            .check_quota(name.as_str(), length)
            .map_err(|problem| AppError::invalid("file", problem))?;
    }

    let temp = TempFile(
        files
            .tmp_dir
            .join(uuid::Uuid::new_v4().simple().to_string()),
    );
    let received = receive(body, &temp, files.rules.max_bytes).await?;
    let upload = Upload {
        conversation_id,
        uploader: user.id,
        name,
        temp,
        received,
        quota,
    };
    // From here on the work finishes even if the client goes away (a cancelled upload): a task
    // of its own owns the temporary file, the image job and the objects, so nothing is left
    // half done.
    let view = tokio::spawn(store(files, state.db.clone(), upload))
        .await
        .map_err(|error| AppError::internal(&error))??;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A received upload, to be checked and stored.
struct Upload {
    conversation_id: ConversationId,
    uploader: UserId,
    name: FileName,
    temp: TempFile,
    received: Received,
    /// The uploader's storage: what their files took when the upload began.
    quota: UploadRules,
}

/// Checks the type, processes an image, stores the objects and records the attachment.
async fn store(
    files: FileService,
    db: DatabaseConnection,
    upload: Upload,
) -> Result<AttachmentView, AppError> {
    let Upload {
        conversation_id,
        uploader,
        name,
        temp,
        received,
        quota,
    } = upload;
    if received.size == 0 {
        return Err(AppError::invalid(
            "file",
            format!("{} is empty", name.as_str()),
        ));
    }
    let detected = sniff::detect(&received.head, received.is_text, &name)
        .and_then(|mime| FileKind::from_mime_type(mime).map(|kind| (mime, kind)))
        .filter(|(_, kind)| files.rules.kinds.contains(kind));
    let Some((content_type, kind)) = detected else {
        return Err(AppError::UnsupportedMediaType(format!(
            "{}: this file type is not allowed",
            name.as_str()
        )));
    };
    // The name a download gets ends in what the file is: a text file called `run.bat` is
    // offered as `run.bat.txt`, never as something a computer would run.
    let name = name.with_extension_of(kind.extensions(), sniff::extension(content_type));

    // The temporary file lives until the end of this function: the bytes are stored from it.
    let (_temp, stored_file, dimensions, thumbnail) = if kind.is_image() {
        let (processed, temp) =
            process_image(&files, temp, kind)
                .await
                .map_err(|problem| match problem {
                    ImageProblem::Undecodable => {
                        AppError::UnsupportedMediaType(format!("{}: {problem}", name.as_str()))
                    }
                    ImageProblem::TooLarge => {
                        AppError::invalid("file", format!("{}: {problem}", name.as_str()))
                    }
                    ImageProblem::Failed(ref error) => AppError::internal(error),
                })?;
        let file = processed.cleaned.clone();
        let thumbnail = (processed.thumbnail, processed.thumbnail_type);
        (
            temp,
            file,
            Some((processed.width, processed.height)),
            Some(thumbnail),
        )
    } else {
        let file = temp.0.clone();
        (temp, file, None, None)
    };

    let size_bytes = tokio::fs::metadata(&stored_file)
        .await
        .map_err(|error| AppError::internal(&error))?
        .len();
    if size_bytes > files.rules.max_bytes {
        return Err(AppError::invalid(
            "file",
            format!("{}: the image is too large once processed", name.as_str()),
        ));
    }
    // What is stored counts, whether or not its length was declared: checked here against
    // what was in use when the upload began, before anything is stored, and again (against
    // what is in use then) as the row is recorded.
    quota
        .check_quota(name.as_str(), size_bytes)
        .map_err(|problem| AppError::invalid("file", problem))?;
    let file_name = name.as_str().to_owned();
    let storage_key = Storage::new_key("files");
    let thumbnail_key = thumbnail.as_ref().map(|(_, mime)| {
        let extension = if *mime == "image/png" { "png" } else { "jpg" };
        format!("{}.{extension}", Storage::new_key("thumbnails"))
    });
    let stored = store_objects(
        &files.storage,
        &storage_key,
        &stored_file,
        thumbnail_key.as_deref(),
        thumbnail,
    )
    .await;
    if let Err(error) = stored {
        delete_objects(&files.storage, &storage_key, thumbnail_key.as_deref()).await;
        return Err(AppError::internal(error.as_ref()));
    }
    let new = NewAttachment {
        conversation_id,
        uploader,
        storage_key: storage_key.clone(),
        thumbnail_key: thumbnail_key.clone(),
        file_name: name,
        content_type: content_type.to_owned(),
        size_bytes,
        dimensions,
    };
    match attachments::create(&db, new, quota.quota_bytes).await {
        Ok(view) => Ok(view),
        Err(error) => {
            delete_objects(&files.storage, &storage_key, thumbnail_key.as_deref()).await;
            Err(match error {
                // Another upload of the same person finished first and took the room.
                attachments::CreateError::OverQuota { used_bytes } => {
                    let now = UploadRules {
                        used_bytes,
                        ..quota
                    };
                    AppError::invalid(
                        "file",
                        now.check_quota(&file_name, size_bytes)
                            .err()
                            .unwrap_or_else(|| format!("{file_name} does not fit")),
                    )
                }
                attachments::CreateError::Database(error) => AppError::internal(&error),
            })
        }
    }
}

/// What [`receive`] saw of the body.
struct Received {
    size: u64,
    head: Vec<u8>,
    is_text: bool,
}

/// Streams the body into `temp`, at most `limit` bytes, keeping its first bytes for sniffing.
async fn receive(body: Body, temp: &TempFile, limit: u64) -> Result<Received, AppError> {
    let mut file = tokio::fs::File::create(&temp.0)
        .await
        .map_err(|error| AppError::internal(&error))?;
    let mut stream = body.into_data_stream();
    let mut received = Received {
        size: 0,
        head: Vec::new(),
        is_text: false,
    };
    let mut text = TextCheck::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| AppError::BadRequest("the upload was interrupted".into()))?;
        received.size += chunk.len() as u64;
        if received.size > limit {
            return Err(AppError::PayloadTooLarge { limit_bytes: limit });
        }
        if received.head.len() < sniff::HEAD_BYTES {
            let room = sniff::HEAD_BYTES - received.head.len();
            received
                .head
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        text.feed(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|error| AppError::internal(&error))?;
    }
    file.flush()
        .await
        .map_err(|error| AppError::internal(&error))?;
    received.is_text = text.is_text();
    Ok(received)
}

/// Runs [`images::process`] on the blocking pool, at most [`IMAGE_JOBS`] at a time. The job
/// holds its permit and the temporary file until it is done, whatever happens to the request;
/// the file comes back for the caller to keep until the bytes are stored.
async fn process_image(
    files: &FileService,
    temp: TempFile,
    kind: FileKind,
) -> Result<(images::Processed, TempFile), ImageProblem> {
    let permit = files
        .images
        .clone()
        .acquire_owned()
        .await
        .map_err(|error| {
            ImageProblem::Failed(image::ImageError::IoError(std::io::Error::other(error)))
        })?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let processed = images::process(&temp.0, kind)?;
        Ok((processed, temp))
    })
    .await
    .map_err(|error| {
        ImageProblem::Failed(image::ImageError::IoError(std::io::Error::other(error)))
    })?
}

async fn store_objects(
    storage: &Storage,
    key: &str,
    file: &std::path::Path,
    thumbnail_key: Option<&str>,
    thumbnail: Option<(Vec<u8>, &'static str)>,
) -> anyhow::Result<()> {
    storage.put_file(key, file).await?;
    if let (Some(thumbnail_key), Some((bytes, _))) = (thumbnail_key, thumbnail) {
        storage.put_bytes(thumbnail_key, bytes).await?;
    }
    Ok(())
}

/// Deletes an attachment's objects, logging (not failing) when the store refuses.
pub async fn delete_objects(storage: &Storage, key: &str, thumbnail_key: Option<&str>) {
    for key in std::iter::once(key).chain(thumbnail_key) {
        if let Err(error) = storage.delete(key).await {
            tracing::warn!(%error, key, "could not delete a stored file");
        }
    }
}

/// `GET /files/{id}`: the file, to its conversation's participants.
async fn download(
    State(state): State<AppState>,
    Extension(files): Extension<FileService>,
    auth: AuthSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let found = find(&state, &auth, &id).await?;
    let disposition = if found.view.is_image() {
        "inline"
    } else {
        "attachment"
    };
    serve(
        &files,
        &found.storage_key,
        &found.view.content_type,
        Some(found.view.size_bytes),
        &content_disposition(disposition, &found.view.file_name),
    )
    .await
}

/// `GET /files/{id}/thumbnail`: an image's thumbnail, to the same people.
async fn thumbnail(
    State(state): State<AppState>,
    Extension(files): Extension<FileService>,
    auth: AuthSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let found = find(&state, &auth, &id).await?;
    let key = found.thumbnail_key.ok_or(AppError::NotFound)?;
    let content_type = if key.ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    serve(
        &files,
        &key,
        content_type,
        None,
        &content_disposition("inline", &found.view.file_name),
    )
    .await
}

/// The attachment `id`, if the requester may see it; anything else is "not found".
async fn find(
    state: &AppState,
    auth: &AuthSession,
    id: &str,
) -> Result<attachments::StoredAttachment, AppError> {
    let user = auth.user.as_ref().ok_or(AppError::NotFound)?;
    let id = id.parse::<i64>().map_err(|_| AppError::NotFound)?;
    attachments::find_for_download(&state.db, user.id, AttachmentId(id))
        .await
        .map_err(|error| AppError::internal(&error))?
        .ok_or(AppError::NotFound)
}

/// Streams an object with the headers that keep a browser from reading it as anything else.
async fn serve(
    files: &FileService,
    key: &str,
    content_type: &str,
    length: Option<u64>,
    disposition: &str,
) -> Result<Response, AppError> {
    let stream = files.storage.get(key).await.map_err(|error| {
        let missing = matches!(
            error.downcast_ref::<object_store::Error>(),
            Some(object_store::Error::NotFound { .. })
        );
        if missing {
            tracing::error!(%error, key, "a recorded file is missing from storage");
            AppError::NotFound
        } else {
            AppError::internal(error.as_ref())
        }
    })?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let value = |text: &str| {
        HeaderValue::from_str(text)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_TYPE, value(content_type));
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(disposition) = HeaderValue::from_str(disposition) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    // Never written to the browser's disk cache: on a shared computer, a file stays readable
    // there after its reader has signed out. (A file is fetched again each time it is shown;
    // the price of that privacy.)
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Opened on its own, a file is shown in a page the browser makes (its image viewer, say),
    // which styles itself inline. That page may show the file and style itself, nothing else:
    // no script, and sandboxed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_POLICY),
    );
    Ok(response)
}

/// `Content-Disposition` with the file's name: an ASCII fallback (anything else, quotes and
/// backslashes become `_`) and the exact name percent-encoded (RFC 6266, RFC 5987).
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Deletes, every few minutes, the uploads nobody sent within `unsent_upload_hours`, and their
/// stored bytes. Runs until the returned task is aborted.
pub fn spawn_clean_up(
    db: sea_orm::DatabaseConnection,
    storage: Storage,
    unsent_upload_hours: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CLEAN_UP_EVERY);
        loop {
            every.tick().await;
            let cutoff =
                chrono::Utc::now() - chrono::Duration::hours(i64::from(unsent_upload_hours));
            clean_up(&db, &storage, cutoff).await;
        }
    })
}

/// One round of [`spawn_clean_up`]: removes unsent uploads created before `cutoff`.
pub async fn clean_up(
    db: &sea_orm::DatabaseConnection,
    storage: &Storage,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> usize {
    match attachments::take_unsent(db, cutoff, CLEAN_UP_BATCH).await {
        Ok(abandoned) => {
            for item in &abandoned {
                delete_objects(storage, &item.storage_key, item.thumbnail_key.as_deref()).await;
            }
            if !abandoned.is_empty() {
                tracing::info!(count = abandoned.len(), "removed unsent uploads");
            }
            abandoned.len()
        }
        Err(error) => {
            tracing::warn!(%error, "could not clean up unsent uploads");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_abandoned_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        let fresh = dir.path().join("fresh");
        std::fs::write(&old, b"left by a crash").unwrap();
        std::fs::write(&fresh, b"an upload in progress").unwrap();
        let long_ago = std::time::SystemTime::now() - ABANDONED_AFTER * 2;
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        remove_abandoned(dir.path());
        assert!(!old.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn file_names_in_headers_are_safe() {
        assert_eq!(
            content_disposition("attachment", "invoice.pdf"),
            "attachment; filename=\"invoice.pdf\"; filename*=UTF-8''invoice.pdf"
        );
        assert_eq!(
            content_disposition("attachment", "re\"port\\ 1.pdf"),
            "attachment; filename=\"re_port_ 1.pdf\"; filename*=UTF-8''re%22port%5C%201.pdf"
        );
        assert_eq!(
            content_disposition("inline", "café.png"),
            "inline; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
        );
        let header = content_disposition("attachment", "a\r\nSet-Cookie: x=1");
        assert!(HeaderValue::from_str(&header).is_ok(), "{header}");
    }
}
