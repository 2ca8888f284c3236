//! Message text as SEARCH compares it.
//!
//! RFC 3501 6.4.4 asks for a case-insensitive substring match of the search string
//! against header values and body text. Like Dovecot, the bridge first turns what it
//! searches into UTF-8: header values lose their folding and have RFC 2047 encoded-words
//! decoded; bodies have their Content-Transfer-Encoding undone and their charset converted.
//! Both sides of the comparison then go through [`normalize`].
//!
//! Which parts are searched follows Dovecot's message search: the body text of `text/*`
//! and `message/*` parts (HTML as written, tags included), never the contents of images,
//! PDFs and other attachments; TEXT adds the header of the message and of every part.

use std::cell::OnceCell;

use chrono::NaiveDate;
use mail_parser::decoders::charsets::map::charset_decoder;

use crate::imap::fetch::binary;
use crate::imap::fetch::header;
use crate::imap::fetch::mime::{self, Entity, Kind};

/// The comparison form of `text`: lower case (full Unicode mapping), and precomposed Latin
/// letters split into base letter and combining accent, so that text written in either
/// Unicode normalisation form compares equal. Dovecot does the same with its
/// "decomposed titlecase" normaliser (a search for `cafe` therefore finds `café`).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            match decompose(lower) {
                Some((base, mark)) => {
                    out.push(base);
                    out.push(mark);
                }
                None => out.push(lower),
            }
        }
    }
    out
}

/// Canonical decomposition of the lower-case precomposed letters of Latin-1 and Latin
/// Extended-A (the ones mail in Western and Central European languages uses).
fn decompose(c: char) -> Option<(char, char)> {
    const GRAVE: char = '\u{300}';
    const ACUTE: char = '\u{301}';
    const CIRCUMFLEX: char = '\u{302}';
    const TILDE: char = '\u{303}';
    const MACRON: char = '\u{304}';
    const BREVE: char = '\u{306}';
    const DOT: char = '\u{307}';
    const DIAERESIS: char = '\u{308}';
    const RING: char = '\u{30a}';
    const DOUBLE_ACUTE: char = '\u{30b}';
    const CARON: char = '\u{30c}';
    const CEDILLA: char = '\u{327}';
    const OGONEK: char = '\u{328}';
    let pair = match c {
        'à' => ('a', GRAVE),
        'á' => ('a', ACUTE),
        'â' => ('a', CIRCUMFLEX),
        'ã' => ('a', TILDE),
        'ä' => ('a', DIAERESIS),
        'å' => ('a', RING),
        'ā' => ('a', MACRON),
        'ă' => ('a', BREVE),
        'ą' => ('a', OGONEK),
        'ç' => ('c', CEDILLA),
        'ć' => ('c', ACUTE),
        'ċ' => ('c', DOT),
        'č' => ('c', CARON),
        'ď' => ('d', CARON),
        'è' => ('e', GRAVE),
        'é' => ('e', ACUTE),
        'ê' => ('e', CIRCUMFLEX),
        'ë' => ('e', DIAERESIS),
        'ē' => ('e', MACRON),
        'ė' => ('e', DOT),
        'ę' => ('e', OGONEK),
        'ě' => ('e', CARON),
        'ğ' => ('g', BREVE),
        'ģ' => ('g', CEDILLA),
        'ì' => ('i', GRAVE),
        'í' => ('i', ACUTE),
        'î' => ('i', CIRCUMFLEX),
        'ï' => ('i', DIAERESIS),
        'ī' => ('i', MACRON),
        'į' => ('i', OGONEK),
        'ķ' => ('k', CEDILLA),
        'ĺ' => ('l', ACUTE),
        'ļ' => ('l', CEDILLA),
        'ľ' => ('l', CARON),
        'ñ' => ('n', TILDE),
        'ń' => ('n', ACUTE),
        'ņ' => ('n', CEDILLA),
        'ň' => ('n', CARON),
        'ò' => ('o', GRAVE),
        'ó' => ('o', ACUTE),
        'ô' => ('o', CIRCUMFLEX),
        'õ' => ('o', TILDE),
        'ö' => ('o', DIAERESIS),
        'ō' => ('o', MACRON),
        'ő' => ('o', DOUBLE_ACUTE),
        'ŕ' => ('r', ACUTE),
        'ř' => ('r', CARON),
        'ś' => ('s', ACUTE),
        'ş' => ('s', CEDILLA),
        'š' => ('s', CARON),
        'ţ' => ('t', CEDILLA),
        'ť' => ('t', CARON),
        'ù' => ('u', GRAVE),
        'ú' => ('u', ACUTE),
        'û' => ('u', CIRCUMFLEX),
        'ü' => ('u', DIAERESIS),
        'ū' => ('u', MACRON),
        'ů' => ('u', RING),
        'ű' => ('u', DOUBLE_ACUTE),
        'ų' => ('u', OGONEK),
        'ý' => ('y', ACUTE),
        'ÿ' => ('y', DIAERESIS),
        'ź' => ('z', ACUTE),
        'ż' => ('z', DOT),
        'ž' => ('z', CARON),
        _ => return None,
    };
    Some(pair)
}

/// `bytes` in `charset`, as UTF-8. US-ASCII, UTF-8, a missing and an unknown charset
/// are all read as UTF-8, with invalid sequences replaced (as Dovecot does).
pub fn to_utf8(charset: &[u8], bytes: &[u8]) -> String {
    let charset = trim(charset);
    let utf8_like = charset.is_empty()
        || ["utf-8", "utf8", "us-ascii", "ascii"]
            .iter()
            .any(|c| charset.eq_ignore_ascii_case(c.as_bytes()));
    if !utf8_like && charset.len() <= 45 {
        if let Some(decoder) = charset_decoder(charset) {
            return decoder(bytes);
        }
    }
    String::from_utf8_lossy(bytes).into_owned()
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| b.is_ascii_whitespace();
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A header value as text: folding removed and RFC 2047 encoded-words decoded (blanks
/// between adjacent encoded-words dropped, adjacent words in one charset joined before
/// conversion so a character split between them survives). Bytes outside encoded-words
/// are read as UTF-8.
pub fn decode_header(value: &[u8]) -> String {
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let v = unfolded.as_slice();
    let mut out = String::with_capacity(v.len());
    // Decoded bytes of the encoded-words read so far and not converted yet, with their charset.
    let mut pending: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut plain_start = 0;
    let mut i = 0;
    while i + 1 < v.len() {
        if v[i] != b'=' || v[i + 1] != b'?' {
            i += 1;
            continue;
        }
        let Some(word) = encoded_word(v, i) else {
            i += 1;
            continue;
        };
        let gap = &v[plain_start..i];
        let blank_gap = gap.iter().all(|b| matches!(b, b' ' | b'\t'));
        match pending.as_mut() {
            Some((charset, bytes)) if blank_gap && charset.eq_ignore_ascii_case(&word.charset) => {
                bytes.extend_from_slice(&word.bytes);
            }
            Some(_) if blank_gap => {
                flush(&mut pending, &mut out);
                pending = Some((word.charset, word.bytes));
            }
            _ => {
                flush(&mut pending, &mut out);
                out.push_str(&String::from_utf8_lossy(gap));
                pending = Some((word.charset, word.bytes));
            }
        }
        i = word.end;
        plain_start = word.end;
    }
    flush(&mut pending, &mut out);
    out.push_str(&String::from_utf8_lossy(&v[plain_start.min(v.len())..]));
    out
}

fn flush(pending: &mut Option<(Vec<u8>, Vec<u8>)>, out: &mut String) {
    if let Some((charset, bytes)) = pending.take() {
        out.push_str(&to_utf8(&charset, &bytes));
    }
}

/// The longest encoded text accepted in one encoded-word.
const MAX_ENCODED_WORD: usize = 4096;

struct EncodedWord {
    charset: Vec<u8>,
    bytes: Vec<u8>,
    /// Index just past the closing `?=`.
    end: usize,
}

/// The encoded-word `=?charset?B|Q?text?=` starting at `start`, if there is one.
fn encoded_word(v: &[u8], start: usize) -> Option<EncodedWord> {
    let rest = v.get(start + 2..)?;
    let q1 = rest.iter().take(76).position(|&b| b == b'?')?;
    let charset_spec = &rest[..q1];
    if charset_spec.is_empty() || charset_spec.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    // RFC 2231 adds `*language` to the charset.
    let charset = charset_spec
        .split(|&b| b == b'*')
        .next()
        .unwrap_or_default();
    let encoding = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    // RFC 2047 allows 75 characters; broken mailers write longer words, but a bound keeps
    // a header full of unterminated `=?` from costing quadratic time.
    let window = rest.get(text_start..)?;
    let window = &window[..window.len().min(MAX_ENCODED_WORD)];
    let text_len = window.windows(2).position(|w| w == b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    let bytes = match encoding {
        b'B' | b'b' => binary::decode(b"base64", text).unwrap_or_default(),
        b'Q' | b'q' => q_decode(text),
        _ => return None,
    };
    Some(EncodedWord {
        charset: charset.to_vec(),
        bytes,
        end: start + 2 + text_start + text_len + 2,
    })
}

/// The "Q" encoding of RFC 2047 4.2: quoted-printable with `_` for a space.
fn q_decode(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let pair = text
                    .get(i + 1)
                    .and_then(|&b| hex(b))
                    .zip(text.get(i + 2).and_then(|&b| hex(b)));
                if let Some((hi, lo)) = pair {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A body part's text: transfer encoding undone, then converted from `charset`. `None`
/// for a transfer encoding RFC 2045 does not define: such a part is not searched (as in
/// Dovecot; FETCH BINARY refuses it with UNKNOWN-CTE).
pub fn decode_body(cte: &[u8], charset: &[u8], body: &[u8]) -> Option<String> {
    let cte = cte_token(cte);
    let decoded = binary::decode(&cte, body).ok()?;
    Some(to_utf8(charset, &decoded))
}

/// A Subject value as the SUBJECT key sees it: folding removed and every run of blanks
/// made one space before encoded-words are decoded (as Dovecot does for SUBJECT only).
pub fn decode_subject(value: &[u8]) -> String {
    let mut compressed = Vec::with_capacity(value.len());
    let mut blank = false;
    for &b in value.iter().filter(|&&b| b != b'\r' && b != b'\n') {
        if b == b' ' || b == b'\t' {
            if !blank {
                compressed.push(b' ');
            }
            blank = true;
        } else {
            compressed.push(b);
            blank = false;
        }
    }
    decode_header(&compressed)
}

/// The mechanism of a Content-Transfer-Encoding value, without blanks and comments.
fn cte_token(value: &[u8]) -> Vec<u8> {
    let value = trim(value);
    let end = value
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'(' || b == b';')
        .unwrap_or(value.len());
    value[..end].to_vec()
}

/// The date written in a Date header value (RFC 5322 3.3, obsolete forms included), as the
/// sender's local date: SENTBEFORE, SENTON and SENTSINCE disregard time and zone.
pub fn header_date(value: &[u8]) -> Option<NaiveDate> {
    let text = String::from_utf8_lossy(value);
    let mut tokens = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty());
    // The day is the first number; a day-of-week name may come before it.
    let day: u32 = tokens
        .by_ref()
        .take(3)
        .find(|t| t.chars().all(|c| c.is_ascii_digit()))?
        .parse()
        .ok()?;
    let month_name = tokens.next()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| {
        month_name
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(m))
    })? as u32
        + 1;
    let year_text = tokens.next()?;
    if year_text.len() > 4 || !year_text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut year: i32 = year_text.parse().ok()?;
    // RFC 5322 4.3: two-digit years below 50 are 20xx, others and three-digit years 19xx.
    year += match year_text.len() {
        1 | 2 if year < 50 => 2000,
        1..=3 => 1900,
        _ => 0,
    };
    NaiveDate::from_ymd_opt(year, month, day)
}

/// A message's bytes prepared for searching; each kind of text is extracted, decoded and
/// normalised the first time a search key asks for it.
pub struct Content<'a> {
    raw: &'a [u8],
    root: Entity,
    headers: OnceCell<Vec<Field>>,
    subjects: OnceCell<Vec<String>>,
    bodies: OnceCell<Vec<String>>,
    part_headers: OnceCell<Vec<String>>,
    sent: OnceCell<Option<NaiveDate>>,
}

/// One field of the message's own header.
struct Field {
    /// Lower case.
    name: String,
    /// Decoded and normalised.
    value: String,
}

impl<'a> Content<'a> {
    pub fn new(raw: &'a [u8]) -> Content<'a> {
        Content {
            raw,
            root: mime::parse(raw),
            headers: OnceCell::new(),
            subjects: OnceCell::new(),
            bodies: OnceCell::new(),
            part_headers: OnceCell::new(),
            sent: OnceCell::new(),
        }
    }

    /// RFC822.SIZE: the length of the bytes.
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// Whether the message's header has a field `name` (lower case) whose value contains
    /// `needle` (normalised); an empty needle matches any such field.
    pub fn header_contains(&self, name: &str, needle: &str) -> bool {
        let fields = self.headers.get_or_init(|| {
            let block = &self.raw[self.root.header.clone()];
            header::fields(block)
                .map(|f| Field {
                    name: String::from_utf8_lossy(f.name).to_ascii_lowercase(),
                    value: normalize(&decode_header(f.value)),
                })
                .collect()
        });
        fields
            .iter()
            .any(|f| f.name == name && f.value.contains(needle))
    }

    /// SUBJECT: like HEADER Subject, with runs of blanks in the value made one space.
    pub fn subject_contains(&self, needle: &str) -> bool {
        let subjects = self.subjects.get_or_init(|| {
            let block = &self.raw[self.root.header.clone()];
            header::fields(block)
                .filter(|f| f.name.eq_ignore_ascii_case(b"subject"))
                .map(|f| normalize(&decode_subject(f.value)))
                .collect()
        });
        subjects.iter().any(|s| s.contains(needle))
    }

    /// BODY: the text of the message's text parts.
    pub fn body_contains(&self, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let bodies = self.bodies.get_or_init(|| {
            let mut out = Vec::new();
            collect_bodies(self.raw, &self.root, &mut out);
            out
        });
        bodies.iter().any(|b| b.contains(needle))
    }

    /// TEXT: the header of the message and of every part, and the body text.
    pub fn text_contains(&self, needle: &str) -> bool {
        let headers = self.part_headers.get_or_init(|| {
            let mut out = Vec::new();
            collect_headers(self.raw, &self.root, &mut out);
            out
        });
        headers.iter().any(|h| h.contains(needle)) || self.body_contains(needle)
    }

    /// The date of the Date header; None when it is missing or unreadable.
    pub fn sent_date(&self) -> Option<NaiveDate> {
        *self.sent.get_or_init(|| {
            let block = &self.raw[self.root.header.clone()];
            header::first(block, "Date").and_then(header_date)
        })
    }
}

/// The decoded text of every `text/*` or `message/*` leaf below `entity`.
fn collect_bodies(raw: &[u8], entity: &Entity, out: &mut Vec<String>) {
    match &entity.kind {
        Kind::Multipart(children) => {
            for child in children {
                collect_bodies(raw, child, out);
            }
        }
        Kind::Message(inner) => collect_bodies(raw, inner, out),
        Kind::Leaf { .. } => {
            let ct = &entity.content_type;
            // message/* leaves are delivery reports, or embedded messages nested too deep
            // to parse: searched as written.
            if !(ct.is_type("text") || ct.is_type("message")) {
                return;
            }
            let block = &raw[entity.header.clone()];
            let cte = header::first(block, "Content-Transfer-Encoding").unwrap_or_default();
            let charset = ct.param("charset").unwrap_or_default();
            if let Some(text) = decode_body(cte, charset, &raw[entity.body.clone()]) {
                out.push(normalize(&text));
            }
        }
    }
}

/// Every header block below and including `entity`, as `Name: value` lines.
fn collect_headers(raw: &[u8], entity: &Entity, out: &mut Vec<String>) {
    let block = &raw[entity.header.clone()];
    let mut text = String::new();
    for field in header::fields(block) {
        text.push_str(&String::from_utf8_lossy(field.name));
        text.push_str(": ");
        text.push_str(&decode_header(field.value));
        text.push_str("\r\n");
    }
    out.push(normalize(&text));
    match &entity.kind {
        Kind::Multipart(children) => {
            for child in children {
                collect_headers(raw, child, out);
            }
        }
        Kind::Message(inner) => collect_headers(raw, inner, out),
        Kind::Leaf { .. } => {}
    }
}
