//! `--mime-rewrite`: serve `$value` the way Exchange does, regenerated rather than as submitted.
//!
//! Exchange stores items as properties and rebuilds MIME on each read, so the bytes differ from
//! what was submitted and may differ between reads after the item changes. This imitation
//! reorders the top-level header fields, refolds them, adds `X-MS-Exchange-*` fields, and gives
//! every multipart a new boundary that depends on the item's change number.

use sha2::{Digest, Sha256};

use super::state::Message;

/// Header order Exchange tends to emit; fields not listed follow in their original order.
const ORDER: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "thread-topic",
    "thread-index",
    "date",
    "message-id",
    "references",
    "in-reply-to",
    "reply-to",
];

fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    for i in 0..raw.len() {
        if raw[i..].starts_with(b"\r\n\r\n") {
            return (&raw[..i + 2], &raw[i + 2..]);
        }
        if raw[i..].starts_with(b"\n\n") {
            return (&raw[..i + 1], &raw[i + 1..]);
        }
    }
    (raw, b"")
}

/// Header fields as (lowercase name, whole field text unfolded without the line break).
fn fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim_start());
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        out.push((name, line.to_string()));
    }
    out
}

/// Folds a field at spaces so no line exceeds 78 characters where possible.
fn fold(field: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for (i, word) in field.split(' ').enumerate() {
        if i > 0 {
            if line_len + 1 + word.len() > 78 {
                out.push_str("\r\n\t");
                line_len = 1;
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(word);
        line_len += word.len();
    }
    out.push_str("\r\n");
    out
}

/// Every `boundary=` value in the message.
fn boundaries(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("boundary=") {
        let start = from + pos + "boundary=".len();
        let rest = &text[start..];
        let value: String = if let Some(stripped) = rest.strip_prefix('"') {
            stripped.split('"').next().unwrap_or("").to_string()
        } else {
            rest.split([';', '\r', '\n', ' '])
                .next()
                .unwrap_or("")
                .to_string()
        };
        if value.len() >= 4 && !out.contains(&value) {
            out.push(value);
        }
        from = start;
    }
    out
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// The message as Exchange would serve it now.
pub fn regenerate(m: &Message) -> Vec<u8> {
    let (head, body) = split_head(&m.mime);
    let mut fs = fields(head);
    fs.sort_by_key(|(name, _)| ORDER.iter().position(|o| o == name).unwrap_or(ORDER.len()));
    let mut out = String::new();
    for (_, f) in &fs {
        out.push_str(&fold(f));
    }
    out.push_str(&format!(
        "X-MS-Has-Attach: {}\r\nX-MS-Exchange-Organization-SCL: -1\r\nX-MS-TNEF-Correlator:\r\nX-MS-Exchange-Organization-RecordReviewCfmType: 0\r\n",
        if m.parsed.has_attachments { "yes" } else { "" }
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    for (i, b) in boundaries(&m.mime).iter().enumerate() {
        let digest = Sha256::digest(format!("{}:{}:{i}", m.key, m.change_no));
        let hex: String = digest[..12].iter().map(|x| format!("{x:02x}")).collect();
        let new = format!("_{i:03}_{hex}_");
        bytes = replace_all(&bytes, b.as_bytes(), new.as_bytes());
    }
    bytes
}
