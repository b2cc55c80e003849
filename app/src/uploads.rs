//! What may be uploaded: the kinds of file Parley accepts, and the rules a browser checks
//! before uploading anything. The server checks again, and decides a file's kind from its
//! bytes; the browser can only go by the name, which is enough to say "this won't work" early.

use serde::{Deserialize, Serialize};

/// Default largest upload, in bytes (25 MB).
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 25 * MB;

const MB: u64 = 1024 * 1024;

/// A kind of file Parley can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Jpeg,
    Png,
    Gif,
    Webp,
    Pdf,
    /// Plain UTF-8 text (decided by the bytes: valid UTF-8 without NUL).
    Text,
    /// Text whose name ends in `.csv`.
    Csv,
    Zip,
    /// Word, Excel and PowerPoint documents, old and new formats.
    Office,
}

impl FileKind {
    /// Every kind, which is also the default allowed list.
    pub const ALL: [Self; 9] = [
        Self::Jpeg,
        Self::Png,
        Self::Gif,
        Self::Webp,
        Self::Pdf,
        Self::Text,
        Self::Csv,
        Self::Zip,
        Self::Office,
    ];

    /// The name used in configuration (`PARLEY_UPLOAD_TYPES=jpeg,png,pdf`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Pdf => "pdf",
            Self::Text => "text",
            Self::Csv => "csv",
            Self::Zip => "zip",
            Self::Office => "office",
        }
    }

    /// The kind called `name` in configuration.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The MIME types of this kind, as the server's sniffer names them; the first is the one
    /// used when several fit.
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            Self::Jpeg => &["image/jpeg"],
            Self::Png => &["image/png"],
            Self::Gif => &["image/gif"],
            Self::Webp => &["image/webp"],
            Self::Pdf => &["application/pdf"],
            Self::Text => &["text/plain"],
            Self::Csv => &["text/csv"],
            Self::Zip => &["application/zip"],
            Self::Office => &[
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
            ],
        }
    }

    /// The kind a sniffed MIME type belongs to.
    pub fn from_mime_type(mime: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.mime_types().contains(&mime))
    }

    /// File-name extensions of this kind, lower case, for the browser's early check.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Jpeg => &["jpg", "jpeg", "jfif"],
            Self::Png => &["png"],
            Self::Gif => &["gif"],
            Self::Webp => &["webp"],
            Self::Pdf => &["pdf"],
            Self::Text => &["txt", "text", "log", "md"],
            Self::Csv => &["csv"],
            Self::Zip => &["zip"],
            Self::Office => &["doc", "docx", "xls", "xlsx", "ppt", "pptx"],
        }
    }

    /// Whether files of this kind are shown inline, with a thumbnail.
    pub fn is_image(self) -> bool {
        matches!(self, Self::Jpeg | Self::Png | Self::Gif | Self::Webp)
    }
}

/// Default storage one person's files may take, all together (1 GB).
pub const DEFAULT_STORAGE_QUOTA_BYTES: u64 = 1024 * MB;

/// The upload rules of this server, for the browser's early checks, and how much of the
/// person's storage their files already take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRules {
    pub max_bytes: u64,
    pub kinds: Vec<FileKind>,
    /// The most bytes one person's files (sent and not yet sent) may take together.
    pub quota_bytes: u64,
    /// How many of those this person's files take: filled in for the person asking.
    #[serde(default)]
    pub used_bytes: u64,
}

impl Default for UploadRules {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            kinds: FileKind::ALL.to_vec(),
            quota_bytes: DEFAULT_STORAGE_QUOTA_BYTES,
            used_bytes: 0,
        }
    }
}

impl UploadRules {
    /// What is wrong with a file of this name and size, in a sentence naming the file, when
    /// `also_in_use` bytes (other uploads under way) are counted against the storage quota
    /// besides what is used already.
    ///
    /// # Errors
    /// `"invoice.exe: this file type is not allowed"`, or
    /// `"video.mov is 48 MB; the limit is 25 MB"`, or that the file is empty, or that it does not
    /// fit in the storage left.
    pub fn check(&self, name: &str, size: u64, also_in_use: u64) -> Result<(), String> {
        let extension = name
            .rsplit_once('.')
            // ASCII folding, as `FileName::extension` does: the kinds' extensions are ASCII.
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        if !self
            .kinds
            .iter()
            .any(|kind| kind.extensions().contains(&extension.as_str()))
        {
            return Err(format!("{name}: this file type is not allowed"));
        }
        if size > self.max_bytes {
            return Err(format!(
                "{name} is {}; the limit is {}",
                format_size(size),
                format_size(self.max_bytes)
            ));
        }
        if size == 0 {
            return Err(format!("{name} is empty"));
        }
        self.check_quota(name, size.saturating_add(also_in_use))
    }

    /// Whether `size` more bytes fit in the person's storage.
    ///
    /// # Errors
    /// `"scan.pdf does not fit: 1023 MB of your 1024 MB of storage are in use"`.
    pub fn check_quota(&self, name: &str, size: u64) -> Result<(), String> {
        if self.used_bytes.saturating_add(size) > self.quota_bytes {
            return Err(format!(
                "{name} does not fit: {} of your {} of storage are in use",
                format_size(self.used_bytes),
                format_size(self.quota_bytes)
            ));
        }
        Ok(())
    }

    /// The `accept` attribute for a file input: every allowed extension.
    pub fn accept(&self) -> String {
        self.kinds
            .iter()
            .flat_map(|kind| kind.extensions())
            .map(|ext| format!(".{ext}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A size for people: "812 bytes", "14 KB", "2.5 MB", "48 MB".
pub fn format_size(bytes: u64) -> String {
    const KB: u64 = 1024;
    if bytes < KB {
        format!("{bytes} bytes")
    } else if bytes < MB {
        format!("{} KB", bytes.div_ceil(KB))
    } else {
        let tenths = (bytes * 10).div_ceil(MB);
        if tenths.is_multiple_of(10) || tenths >= 100 {
            format!("{} MB", tenths.div_ceil(10))
        } else {
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_check_names_the_file_and_the_problem() {
        let rules = UploadRules::default();
        let check = |name: &str, size| rules.check(name, size, 0);
        assert_eq!(
            check("invoice.exe", 10),
            Err("invoice.exe: this file type is not allowed".into())
        );
        assert_eq!(
            check("video.mov", 48 * MB),
            Err("video.mov: this file type is not allowed".into())
        );
        assert_eq!(
            check("scan.PDF", 48 * MB),
            Err("scan.PDF is 48 MB; the limit is 25 MB".into())
        );
        assert_eq!(check("empty.txt", 0), Err("empty.txt is empty".into()));
        assert_eq!(check("photo.JPG", 3 * MB), Ok(()));
        assert_eq!(
            check("no-extension", 3),
            Err("no-extension: this file type is not allowed".into())
        );
    }

    #[test]
    fn files_must_fit_in_the_storage_left() {
        let rules = UploadRules {
            quota_bytes: 10 * MB,
            used_bytes: 6 * MB,
            ..UploadRules::default()
        };
        assert_eq!(rules.check("a.pdf", 4 * MB, 0), Ok(()));
        let refused = rules.check("a.pdf", 3 * MB, 2 * MB).unwrap_err();
        assert!(
            refused.starts_with("a.pdf does not fit: 6 MB of your 10 MB of storage are in use"),
            "{refused}"
        );
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(format_size(812), "812 bytes");
        assert_eq!(format_size(14 * 1024), "14 KB");
        assert_eq!(format_size(5 * MB / 2), "2.5 MB");
        assert_eq!(format_size(48 * MB), "48 MB");
        assert_eq!(format_size(25 * MB), "25 MB");
    }

    #[test]
    fn kinds_are_found_by_name_and_mime_type() {
        for kind in FileKind::ALL {
            assert_eq!(FileKind::from_name(kind.name()), Some(kind));
            assert_eq!(FileKind::from_mime_type(kind.mime_types()[0]), Some(kind));
        }
        assert_eq!(FileKind::from_mime_type("application/x-msdownload"), None);
        assert!(UploadRules::default().accept().contains(".pdf"));
    }
}
