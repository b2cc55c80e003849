//! What a file is, decided from its bytes: magic numbers for binary formats (the `infer`
//! crate), and for text, valid UTF-8 without NUL. Never the name the client gave, nor its
//! `Content-Type`: an executable renamed `photo.png` is an executable.

use app::{model::FileName, uploads::FileKind};

/// How many leading bytes [`detect`] looks at. Office documents are ZIP or OLE containers
/// whose telling entries may sit some way in.
pub const HEAD_BYTES: usize = 64 * 1024;

/// Watches a file go by, chunk by chunk, to tell whether it is text.
#[derive(Debug, Default)]
pub struct TextCheck {
    /// The start of a UTF-8 sequence cut by a chunk boundary.
    carry: Vec<u8>,
    /// Set once something that is not text has been seen.
    binary: bool,
}

impl TextCheck {
    /// Looks at the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.binary {
            return;
        }
        if chunk.contains(&0) {
            self.binary = true;
            return;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        match std::str::from_utf8(&bytes) {
            Ok(_) => {}
            // Only an incomplete sequence at the very end is fine: the next chunk finishes it.
            Err(error) if error.error_len().is_none() => {
                self.carry = bytes[error.valid_up_to()..].to_vec();
            }
            Err(_) => self.binary = true,
        }
    }

    /// Whether everything fed was UTF-8 text.
    pub fn is_text(&self) -> bool {
        !self.binary && self.carry.is_empty()
    }
}

/// The MIME type of a file from its first bytes (`head`) and whether it all was text, or `None`
/// when it is nothing Parley knows. A text file is `text/csv` when its name says so; the name
/// never makes anything else text.
pub fn detect(head: &[u8], is_text: bool, name: &FileName) -> Option<&'static str> {
    // Some signatures are two bytes (`BM`, `#!`): text that happens to start with them is
    // still text, unless the signature is of a kind Parley accepts.
    if let Some(found) = infer::get(head)
        && (!is_text || FileKind::from_mime_type(found.mime_type()).is_some())
    {
        return Some(found.mime_type());
    }
    if is_text {
        return Some(if name.extension().as_deref() == Some("csv") {
            FileKind::Csv.mime_types()[0]
        } else {
            FileKind::Text.mime_types()[0]
        });
    }
    None
}

/// The usual extension of a file of this MIME type, for names that lack a fitting one.
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/zip" => "zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        _ => "txt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FileName {
        FileName::sanitise(n)
    }

    #[test]
    fn magic_numbers_decide_not_names() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(detect(png, false, &name("report.pdf")), Some("image/png"));
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
        assert_eq!(detect(pdf, false, &name("x.png")), Some("application/pdf"));
        let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
        let found = detect(exe, false, &name("photo.png"));
        assert!(
            found.is_some_and(|mime| FileKind::from_mime_type(mime).is_none()),
            "{found:?}"
        );
        assert_eq!(
            detect(b"a,b\n1,2\n", true, &name("data.CSV")),
            Some("text/csv")
        );
        assert_eq!(
            detect(b"hello", true, &name("notes.txt")),
            Some("text/plain")
        );
        assert_eq!(
            detect(b"hello", true, &name("photo.png")),
            Some("text/plain")
        );
        assert_eq!(detect(b"\x01\x02\x03", false, &name("blob.bin")), None);
        // Text that starts like a bitmap or a script is still text.
        assert_eq!(
            detect(b"BM is my initials", true, &name("a.txt")),
            Some("text/plain")
        );
        assert_eq!(
            detect(b"#!/bin/sh\necho", true, &name("a.txt")),
            Some("text/plain")
        );
    }

    #[test]
    fn every_accepted_type_has_its_extension() {
        for kind in FileKind::ALL {
            for mime in kind.mime_types() {
                assert!(kind.extensions().contains(&extension(mime)), "{mime}");
            }
        }
    }

    /// The start of a ZIP archive whose first entry is `entry`.
    fn zip_starting_with(entry: &str) -> Vec<u8> {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        zip.extend_from_slice(&[0; 12]);
        zip.extend_from_slice(&u16::try_from(entry.len()).unwrap().to_le_bytes());
        zip.extend_from_slice(&0u16.to_le_bytes());
        zip.extend_from_slice(entry.as_bytes());
        zip
    }

    #[test]
    fn office_documents_and_plain_archives_are_told_apart() {
        let docx = detect(
            &zip_starting_with("word/document.xml"),
            false,
            &name("a.zip"),
        );
        assert_eq!(
            docx,
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        assert_eq!(
            docx.and_then(FileKind::from_mime_type),
            Some(FileKind::Office)
        );
        let xlsx = detect(&zip_starting_with("xl/workbook.xml"), false, &name("a"));
        assert_eq!(
            xlsx.and_then(FileKind::from_mime_type),
            Some(FileKind::Office)
        );
        let zip = detect(&zip_starting_with("photos/a.jpg"), false, &name("a.docx"));
        assert_eq!(zip, Some("application/zip"));
    }

    #[test]
    fn text_is_utf8_without_nul_even_across_chunks() {
        let text = "naïve café ✓".as_bytes();
        for cut in 0..text.len() {
            let mut check = TextCheck::default();
            check.feed(&text[..cut]);
            check.feed(&text[cut..]);
            assert!(check.is_text(), "cut at {cut}");
        }
        let mut check = TextCheck::default();
        check.feed(b"abc\0def");
        assert!(!check.is_text());
        let mut check = TextCheck::default();
        check.feed(b"caf\xc3");
        assert!(
            !check.is_text(),
            "a sequence cut short at the end is not text"
        );
        let mut check = TextCheck::default();
        check.feed(b"\xff\xfe");
        assert!(!check.is_text());
    }
}
