//! Where attachment bytes live: an [`object_store::ObjectStore`], the local file system by
//! default and any S3-compatible bucket by configuration alone. Keys are made here, from
//! random ids, never from anything a user sent.

use std::{path::Path as FsPath, sync::Arc};

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, buffered::BufWriter,
    local::LocalFileSystem, path::Path,
};
use tokio::io::AsyncWriteExt;

use crate::config::FilesConfig;

/// Bytes buffered before a part is written.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// The object store, shared by every request.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

impl Storage {
    /// The store the configuration names: `PARLEY_STORAGE_URL` (an `s3://` URL) or a `files`
    /// directory under the data directory.
    ///
    /// # Errors
    /// The URL is not a supported store, or the directory can't be created.
    pub fn from_config(config: &FilesConfig) -> anyhow::Result<Self> {
        let store: Arc<dyn ObjectStore> = match &config.storage_url {
            Some(url) if url.starts_with("s3://") => {
                // object_store's client brings its own rustls provider (aws-lc); anything that
                // asks rustls for the process default gets ring, as the TLS listener uses.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Arc::new(AmazonS3Builder::from_env().with_url(url).build()?)
            }
            Some(url) => anyhow::bail!(
                "PARLEY_STORAGE_URL `{url}` is not supported: use an s3:// URL, or leave it \
                 unset to keep files under PARLEY_DATA_DIR"
            ),
            None => {
                let dir = config.data_dir.join("files");
                std::fs::create_dir_all(&dir)?;
                Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true))
            }
        };
        Ok(Self { store })
    }

    /// A new, unused key under `prefix`.
    pub fn new_key(prefix: &str) -> String {
        format!("{prefix}/{}", uuid::Uuid::new_v4().simple())
    }

    /// Stores a file's content under `key`, streaming it from disk.
    ///
    /// # Errors
    /// Reading the file or writing the store failed; nothing is left under `key`.
    pub async fn put_file(&self, key: &str, file: &FsPath) -> anyhow::Result<()> {
        let mut source = tokio::fs::File::open(file).await?;
        // At most two 5 MiB parts in memory at once (5 MiB: S3's smallest multipart part).
        let mut writer = BufWriter::with_capacity(self.store.clone(), Path::from(key), PART_BYTES)
            .with_max_concurrency(2);
        let copied = tokio::io::copy(&mut source, &mut writer).await;
        match copied {
            Ok(_) => Ok(writer.shutdown().await?),
            Err(error) => {
                let _ = writer.abort().await;
                Err(error.into())
            }
        }
    }

    /// Stores a small object (a thumbnail) under `key`.
    ///
    /// # Errors
    /// Writing the store failed.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// The content under `key`, as a stream of chunks.
    ///
    /// # Errors
    /// The key does not exist or the store failed.
    pub async fn get(
        &self,
        key: &str,
    ) -> anyhow::Result<impl Stream<Item = Result<Bytes, object_store::Error>> + Send + use<>> {
        let found = self.store.get(&Path::from(key)).await?;
        Ok(found.into_stream().boxed())
    }

    /// Deletes `key`; a key that is already gone is not an error.
    ///
    /// # Errors
    /// The store failed.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_url_chooses_the_store() {
        let dir = std::env::temp_dir().join(format!("parley-storage-{}", std::process::id()));
        let mut config = FilesConfig::new(dir.clone());
        assert!(
            Storage::from_config(&config).is_ok(),
            "a local directory by default"
        );
        assert!(dir.join("files").is_dir());
        config.storage_url = Some("s3://parley-attachments/production".into());
        assert!(
            Storage::from_config(&config).is_ok(),
            "an S3 bucket by URL alone"
        );
        config.storage_url = Some("ftp://files.example/parley".into());
        let error = Storage::from_config(&config).unwrap_err().to_string();
        assert!(error.contains("not supported"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keys_are_random_and_plain() {
        let key = Storage::new_key("files");
        assert!(key.starts_with("files/"));
        assert_eq!(key.len(), "files/".len() + 32);
        assert_ne!(key, Storage::new_key("files"));
    }
}
