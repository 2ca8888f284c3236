//! FETCH data computed from a message's raw RFC 822 bytes.
//!
//! [`MessageView::parse`] reads a message once; its methods then answer ENVELOPE,
//! BODY / BODYSTRUCTURE, BODY[section] and BINARY[section] as `imap-types` values
//! (or bytes) ready for `imap-codec`. Everything is computed from the very bytes the
//! view was built on, so BODY[] is those bytes and RFC822.SIZE is their length.
//!
//! IMAP requires CRLF line ends. Messages are served as given; a store that may hold
//! bare-LF mail should pass it through [`normalize_line_endings`] once, before saving,
//! so that every FETCH item and RFC822.SIZE agree.
//!
//! Nothing here fails or panics on malformed mail: unknown structure degrades to a
//! leaf part, missing parts are `None` (Dovecot, for one, then sends an empty string),
//! and only BINARY can refuse, for an unknown Content-Transfer-Encoding.

mod address;
pub(crate) mod binary;
mod bodystructure;
mod envelope;
pub(crate) mod header;
mod lexer;
pub(crate) mod mime;
pub(crate) mod params;
pub mod response;
mod section;
mod strings;
pub mod structure_cache;

use std::borrow::Cow;

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::{Part, Section};

pub use binary::BinaryError;

/// A parsed view of one message's bytes (parse once, answer many FETCH items).
#[derive(Debug)]
pub struct MessageView<'a> {
    raw: &'a [u8],
    /// The MIME tree, read on first use: the items that need only the message's own header
    /// (ENVELOPE, `BODY[HEADER]`, `BODY[HEADER.FIELDS ...]`) or only its bytes never parse it.
    root: std::cell::OnceCell<mime::Entity>,
}

impl<'a> MessageView<'a> {
    /// Reads the MIME structure of `raw`. Never fails, never panics; nesting deeper than
    /// 100 levels or beyond 10,000 parts is served as opaque data.
    pub fn parse(raw: &'a [u8]) -> MessageView<'a> {
        MessageView {
            raw,
            root: std::cell::OnceCell::new(),
        }
    }

    fn root(&self) -> &mime::Entity {
        self.root.get_or_init(|| mime::parse(self.raw))
    }

    /// The message's own header block.
    fn header(&self) -> std::ops::Range<usize> {
        match self.root.get() {
            Some(root) => root.header.clone(),
            None => mime::root_header(self.raw),
        }
    }

    /// The message bytes: BODY[] / RFC822.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// RFC822.SIZE: the length of BODY[] (saturating at `u32::MAX`).
    pub fn size(&self) -> u32 {
        u32::try_from(self.raw.len()).unwrap_or(u32::MAX)
    }

    /// ENVELOPE (RFC 3501 7.4.2). Header values are sent as written: encoded words
    /// stay encoded, folding is removed, a missing Sender or Reply-To is From.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope(&self.raw[self.header()])
    }

    /// BODYSTRUCTURE when `with_extension_data`, BODY otherwise (RFC 3501 7.4.2).
    pub fn body_structure(&self, with_extension_data: bool) -> BodyStructure<'static> {
        bodystructure::body_structure(self.raw, self.root(), with_extension_data)
    }

    /// The bytes of BODY[section]; `None` section is the whole message. Returns `None`
    /// when the section names a part that does not exist, or HEADER / TEXT of a part
    /// that is not message/rfc822.
    pub fn section(&self, section: Option<&Section<'_>>) -> Option<Cow<'a, [u8]>> {
        let raw = self.raw;
        let slice = |r: std::ops::Range<usize>| Some(Cow::Borrowed(&raw[r]));
        let Some(section) = section else {
            return Some(Cow::Borrowed(raw));
        };
        match section {
            Section::Part(part) => slice(self.find(part)?.body.clone()),
            Section::Mime(part) => slice(self.find(part)?.header.clone()),
            Section::Header(None) => slice(self.header()),
            Section::Header(part) => slice(self.message(part.as_ref())?.header.clone()),
            Section::Text(part) => slice(self.message(part.as_ref())?.body.clone()),
            Section::HeaderFields(part, names) => self.fields(part.as_ref(), names.as_ref(), true),
            Section::HeaderFieldsNot(part, names) => {
                self.fields(part.as_ref(), names.as_ref(), false)
            }
        }
    }

    /// The decoded bytes of BINARY[part] (RFC 3516); an empty `part` is the whole
    /// message, unchanged. `Ok(None)` when the part does not exist.
    pub fn binary(&self, part: &[u32]) -> Result<Option<Vec<u8>>, BinaryError> {
        if part.is_empty() {
            return Ok(Some(self.raw.to_vec()));
        }
        let Some(entity) = section::find(self.root(), part) else {
            return Ok(None);
        };
        let header_bytes = &self.raw[entity.header.clone()];
        let cte = header::first(header_bytes, "Content-Transfer-Encoding")
            .map(bodystructure::cte_token)
            .unwrap_or_default();
        binary::decode(&cte, &self.raw[entity.body.clone()]).map(Some)
    }

    /// BINARY.SIZE[part] (RFC 3516): the length of [`MessageView::binary`].
    pub fn binary_size(&self, part: &[u32]) -> Result<Option<u32>, BinaryError> {
        Ok(self
            .binary(part)?
            .map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX)))
    }

    fn find(&self, part: &Part) -> Option<&mime::Entity> {
        section::find(self.root(), &part_numbers(part))
    }

    fn message(&self, part: Option<&Part>) -> Option<&mime::Entity> {
        let numbers = part.map(part_numbers);
        section::message(self.root(), numbers.as_deref())
    }

    fn fields<N: AsRef<[u8]>>(
        &self,
        part: Option<&Part>,
        names: &[N],
        keep: bool,
    ) -> Option<Cow<'a, [u8]>> {
        let header = match part {
            None => self.header(),
            Some(_) => self.message(part)?.header.clone(),
        };
        let names: Vec<&[u8]> = names.iter().map(AsRef::as_ref).collect();
        let header_bytes = &self.raw[header];
        Some(Cow::Owned(section::header_fields(
            header_bytes,
            &names,
            keep,
        )))
    }
}

fn part_numbers(part: &Part) -> Vec<u32> {
    part.0.as_ref().iter().map(|n| n.get()).collect()
}

/// The `<origin.length>` slice of `bytes` (RFC 3501 6.4.5): empty when `origin` is
/// past the end, shortened when the end is.
pub fn partial(bytes: &[u8], origin: u32, length: u32) -> &[u8] {
    let start = usize::try_from(origin)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    let end = start.saturating_add(len).min(bytes.len());
    &bytes[start..end]
}

pub use crate::rfc822::normalize_line_endings;

#[cfg(test)]
mod tests;
