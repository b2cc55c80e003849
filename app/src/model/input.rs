//! The validated newtypes every input goes through: usernames, display names, passwords,
//! message bodies, client message ids, file names, and the paths a sign-in may go on to.

use std::borrow::Cow;

#[cfg(any(feature = "ssr", not(feature = "hydrate")))]
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use super::{FILE_NAME_MAX_CHARS, FieldError, MESSAGE_MAX_CHARS};

/// A file name as Parley shows it and offers it for download: the last path component of what
/// the client sent (no directories, so no path traversal anywhere it is used), Unicode NFC,
/// without control or text-direction characters or leading dots, at most
/// [`FILE_NAME_MAX_CHARS`] characters with the extension kept. Never empty: "file" stands in.
///
/// Names are cleaned rather than refused: people's files have all sorts of names, and the name
/// is only a label (storage uses server-made keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub fn sanitise(input: &str) -> Self {
        let last = input.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = nfc(last)
            .chars()
            .filter(|c| !c.is_control() && !is_bidi_control(*c))
            .collect();
        let trimmed = cleaned.trim().trim_start_matches('.').trim_start();
        if trimmed.is_empty() {
            return Self("file".to_owned());
        }
        if trimmed.chars().count() <= FILE_NAME_MAX_CHARS {
            return Self(trimmed.to_owned());
        }
        // Too long: keep a short extension, cut the stem.
        let extension = trimmed
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| ext.chars().count() <= 16)
            .map(|ext| format!(".{ext}"))
            .unwrap_or_default();
        let stem: String = trimmed
            .chars()
            .take(FILE_NAME_MAX_CHARS - extension.chars().count())
            .collect();
        Self(format!("{stem}{extension}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This name if its extension is one of `allowed` (lower case, without dots), else the
    /// name with `.{canonical}` added: what the file is shows in its name, so a download is
    /// never opened as something else (`run.bat` holding text becomes `run.bat.txt`).
    #[must_use]
    pub fn with_extension_of(self, allowed: &[&str], canonical: &str) -> Self {
        match self.extension() {
            Some(extension) if allowed.contains(&extension.as_str()) => self,
            _ => Self::sanitise(&format!("{}.{canonical}", self.0)),
        }
    }

    /// The extension, lower case, without the dot (`"pdf"`), if there is one. Only ASCII is
    /// folded: every extension Parley knows is ASCII, and full Unicode case folding would
    /// bring its tables into the browser's bundle (7 KB compressed, with the two below).
    pub fn extension(&self) -> Option<String> {
        self.0
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| !ext.is_empty())
    }
}

/// A username: 3–32 characters of `a-z 0-9 _ . -`, compared case-insensitively.
///
/// `parse` folds ASCII upper case to lower case, so `Alice` and `alice` are the same account
/// and the stored form is always lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// # Errors
    /// A sentence saying what is wrong, for display beside the field.
    pub fn parse(input: &str) -> Result<Self, String> {
        let folded = input.trim().to_ascii_lowercase();
        let length = folded.chars().count();
        if !(3..=32).contains(&length) {
            return Err("Username must be 3 to 32 characters long.".into());
        }
        if !folded
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(
                "Username may contain only letters a–z, digits, and the characters _ . -".into(),
            );
        }
        Ok(Self(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` in Unicode NFC, copied only if that changes it. The server normalises everything it
/// stores; the browser's copy of these checks leaves text as typed (the server has the last
/// word), which keeps the normalisation tables out of the WASM bundle.
#[cfg(any(feature = "ssr", not(feature = "hydrate")))]
fn nfc(text: &str) -> Cow<'_, str> {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
fn nfc(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

/// Characters that reorder the text around them (bidirectional embeddings, overrides and
/// isolates). In a name they can make it display as someone else's, so names refuse them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A display name: 1–64 characters after trimming and Unicode NFC normalisation, without
/// control or bidirectional-override characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// # Errors
    /// A sentence saying what is wrong, for display beside the field.
    pub fn parse(input: &str) -> Result<Self, String> {
        let normalised = nfc(input.trim());
        let trimmed = normalised.as_ref();
        let length = trimmed.chars().count();
        if length == 0 {
            return Err("Display name is required.".into());
        }
        if length > 64 {
            return Err("Display name must be at most 64 characters long.".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("Display name must not contain control characters.".into());
        }
        if trimmed.chars().any(is_bidi_control) {
            return Err("Display name must not contain text-direction override characters.".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shortest password accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted, in characters (it bounds the cost of hashing one).
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Checks a new password and its confirmation. Passwords are never trimmed or altered.
///
/// # Errors
/// The field errors, against `password` and `password_confirm`.
pub fn check_new_password(password: &str, confirm: &str) -> Result<(), Vec<FieldError>> {
    let length = password.chars().count();
    let mut errors = Vec::new();
    if length < PASSWORD_MIN_CHARS {
        errors.push(FieldError::new(
            "password",
            format!("Password must be at least {PASSWORD_MIN_CHARS} characters long."),
        ));
    } else if length > PASSWORD_MAX_CHARS {
        errors.push(FieldError::new(
            "password",
            format!("Password must be at most {PASSWORD_MAX_CHARS} characters long."),
        ));
    }
    if password != confirm {
        errors.push(FieldError::new(
            "password_confirm",
            "Passwords do not match.",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A message body: not blank, at most [`MESSAGE_MAX_CHARS`] characters, no control characters
/// other than newline and tab. Surrounding whitespace is trimmed, line endings become `\n`, and
/// the text is normalised to Unicode NFC (one spelling for "é", whether typed as one character
/// or as "e" and an accent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// No text: a message that is only a card or files.
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, String> {
        let body = Self::parse_caption(input)?;
        if body.0.is_empty() {
            return Err("Message is empty.".into());
        }
        Ok(body)
    }

    /// Like [`MessageBody::parse`], but blank text is allowed and becomes empty: the caption
    /// of a message that carries files.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse_caption(input: &str) -> Result<Self, String> {
        // Most text needs neither step: it is checked, not copied (this runs on every message).
        let unified = if input.contains('\r') {
            Cow::Owned(input.replace("\r\n", "\n").replace('\r', "\n"))
        } else {
            Cow::Borrowed(input)
        };
        let normalised = match nfc(&unified) {
            Cow::Borrowed(_) => unified,
            Cow::Owned(changed) => Cow::Owned(changed),
        };
        let trimmed = normalised.trim();
        let length = trimmed.chars().count();
        if length > MESSAGE_MAX_CHARS {
            return Err(format!(
                "Message is too long: {length} characters, the limit is {MESSAGE_MAX_CHARS}."
            ));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err("Message contains control characters.".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id a client gives a message it sends: 1–64 characters of `A-Z a-z 0-9 _ -`
/// (a UUID fits). Unique per sender; a second send with the same id is the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.len();
        if !(1..=64).contains(&length)
            || !input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("client_msg_id must be 1 to 64 characters of A-Z a-z 0-9 _ -".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `next` is a safe place to send a user after signing in: a path on this site.
///
/// Refuses absolute URLs and protocol-relative `//host` paths, so a crafted login link can't
/// bounce a user to another site. Backslashes, whitespace and control characters are refused
/// too: browsers drop tabs and newlines from URLs and read `\\` as `/`, which would turn
/// `/\t/evil.example` into `//evil.example`.
pub fn is_safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_is_folded_to_lower_case() {
        assert_eq!(
            Username::parse(" Alice.B_2-x ").unwrap().as_str(),
            "alice.b_2-x"
        );
    }

    #[test]
    fn username_length_is_checked_at_both_ends() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn username_refuses_other_characters() {
        for bad in ["al ice", "alice!", "ålice", "al@ice", "ali/ce"] {
            assert!(Username::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn display_name_is_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Ann Lee ").unwrap().as_str(),
            "Ann Lee"
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn file_names_lose_paths_controls_and_leading_dots() {
        let clean = |name: &str| FileName::sanitise(name).as_str().to_owned();
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("C:\\Users\\ann\\invoice.pdf"), "invoice.pdf");
        assert_eq!(clean("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean("report\u{202E}fdp.exe"), "reportfdp.exe");
        assert_eq!(clean("a\0b\nc.txt"), "abc.txt");
        assert_eq!(clean(".htaccess"), "htaccess");
        assert_eq!(clean("   "), "file");
        assert_eq!(clean("/"), "file");
        assert_eq!(clean("cafe\u{301}.png"), "caf\u{e9}.png");
        assert_eq!(clean("<script>alert(1)</script>.png"), "script>.png");
        let long = clean(&format!("{}.jpeg", "x".repeat(400)));
        assert_eq!(long.chars().count(), FILE_NAME_MAX_CHARS);
        assert!(long.ends_with("xx.jpeg"));
        assert_eq!(
            FileName::sanitise("Photo.JPG").extension().as_deref(),
            Some("jpg")
        );
        assert_eq!(FileName::sanitise("README").extension(), None);
        let named = |name: &str| {
            FileName::sanitise(name)
                .with_extension_of(&["txt", "md"], "txt")
                .as_str()
                .to_owned()
        };
        assert_eq!(named("notes.TXT"), "notes.TXT");
        assert_eq!(named("run.bat"), "run.bat.txt");
        assert_eq!(named("README"), "README.txt");
        let long = named(&format!("{}.html", "x".repeat(300)));
        assert!(long.ends_with(".txt"), "{long}");
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("12345678", "12345678").is_ok());
        let short = check_new_password("1234567", "1234567").unwrap_err();
        assert_eq!(short[0].field, "password");
        let long = "x".repeat(129);
        assert!(check_new_password(&long, &long).is_err());
        let mismatch = check_new_password("12345678", "12345679").unwrap_err();
        assert_eq!(mismatch[0].field, "password_confirm");
    }

    #[test]
    fn message_body_is_trimmed_and_must_not_be_blank() {
        assert_eq!(
            MessageBody::parse("  hi\r\nthere \n").unwrap().as_str(),
            "hi\nthere"
        );
        assert!(MessageBody::parse(" \n\t ").is_err());
        assert!(MessageBody::parse("").is_err());
    }

    #[test]
    fn message_body_limit_counts_characters_not_bytes() {
        assert!(MessageBody::parse(&"é".repeat(MESSAGE_MAX_CHARS)).is_ok());
        let error = MessageBody::parse(&"é".repeat(MESSAGE_MAX_CHARS + 1)).unwrap_err();
        assert!(error.contains("4001"), "{error}");
    }

    #[test]
    fn text_is_normalised_to_nfc() {
        let decomposed = "Cafe\u{301}";
        assert_eq!(
            MessageBody::parse(decomposed).unwrap().as_str(),
            "Caf\u{e9}"
        );
        assert_eq!(
            DisplayName::parse(decomposed).unwrap().as_str(),
            "Caf\u{e9}"
        );
    }

    #[test]
    fn names_refuse_direction_overrides() {
        for name in ["Ann\u{202E}moc.elgoog", "\u{2066}Bob", "x\u{202A}y"] {
            assert!(DisplayName::parse(name).is_err(), "{name:?}");
        }
        // Right-to-left names themselves are fine.
        assert!(DisplayName::parse("شركة الفخار").is_ok());
    }

    #[test]
    fn message_body_keeps_tabs_and_newlines_but_refuses_other_controls() {
        assert!(MessageBody::parse("a\tb\nc").is_ok());
        assert!(MessageBody::parse("a\u{0}b").is_err());
        assert!(MessageBody::parse("a\u{1b}[31mb").is_err());
    }

    #[test]
    fn client_msg_id_accepts_uuids_and_refuses_junk() {
        assert!(ClientMsgId::parse("0b5e0f5e-3f4c-4c53-9d5a-2f1d7c3e9a10").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse(&"a".repeat(65)).is_err());
        assert!(ClientMsgId::parse("a b").is_err());
    }

    #[test]
    fn only_local_paths_are_safe_redirects() {
        assert!(is_safe_next("/chat/@bob"));
        assert!(!is_safe_next("//evil.example"));
        assert!(!is_safe_next("https://evil.example"));
        assert!(!is_safe_next("/\\evil.example"));
        assert!(!is_safe_next("/\t/evil.example"));
        assert!(!is_safe_next("/\n/evil.example"));
        assert!(!is_safe_next("/ /evil.example"));
        assert!(!is_safe_next("chat"));
    }
}

/// Property tests (a fuzz target run on every `cargo test`): the validators never panic on any
/// text, and whatever they accept satisfies every rule they promise.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use unicode_normalization::is_nfc;

    use super::*;

    /// Text biased towards the characters the rules are about: controls, line breaks, direction
    /// marks, combining accents, whitespace, and anything else.
    fn hostile_text() -> impl Strategy<Value = String> {
        let tricky = prop_oneof![
            Just('\0'),
            Just('\r'),
            Just('\n'),
            Just('\t'),
            Just('\u{7}'),
            Just('\u{1b}'),
            Just('\u{85}'),
            Just('\u{202E}'),
            Just('\u{2067}'),
            Just('\u{301}'),
            Just('e'),
            Just(' '),
            Just('\u{3000}'),
            any::<char>(),
        ];
        prop::collection::vec(tricky, 0..80).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn message_bodies_keep_their_promises(input in hostile_text()) {
            if let Ok(body) = MessageBody::parse(&input) {
                let text = body.as_str();
                prop_assert!(!text.trim().is_empty());
                prop_assert_eq!(text, text.trim());
                prop_assert!(text.chars().count() <= MESSAGE_MAX_CHARS);
                prop_assert!(!text.contains('\r'));
                prop_assert!(text.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
                prop_assert!(is_nfc(text));
                prop_assert_eq!(MessageBody::parse(text).ok(), Some(body.clone()));
            }
        }

        #[test]
        fn long_message_bodies_are_refused(extra in 1_usize..50) {
            let input = "é".repeat(MESSAGE_MAX_CHARS + extra);
            prop_assert!(MessageBody::parse(&input).is_err());
        }

        #[test]
        fn display_names_keep_their_promises(input in hostile_text()) {
            if let Ok(name) = DisplayName::parse(&input) {
                let text = name.as_str();
                prop_assert!((1..=64).contains(&text.chars().count()));
                prop_assert!(!text.chars().any(|c| c.is_control() || is_bidi_control(c)));
                prop_assert!(is_nfc(text));
                prop_assert_eq!(DisplayName::parse(text).ok(), Some(name.clone()));
            }
        }

        #[test]
        fn usernames_keep_their_promises(input in hostile_text()) {
            if let Ok(name) = Username::parse(&input) {
                let text = name.as_str();
                prop_assert!((3..=32).contains(&text.len()));
                prop_assert!(text.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b'-')));
            }
        }

        #[test]
        fn client_message_ids_keep_their_promises(input in hostile_text()) {
            if let Ok(id) = ClientMsgId::parse(&input) {
                prop_assert!((1..=64).contains(&id.as_str().len()));
                prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
        }
    }
}
