//! MIME in and out: what Graph's message JSON is computed from, and how a JSON message becomes
//! MIME (Exchange stores every item as properties and regenerates MIME from them; the emulator
//! keeps MIME as the item's source of truth and computes the properties from it).

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders};

/// `{"name","address"}` as Graph's `emailAddress`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmailAddr {
    pub name: String,
    pub address: String,
}

/// The properties Graph exposes that come from the MIME content.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub subject: String,
    pub from: Option<EmailAddr>,
    pub sender: Option<EmailAddr>,
    pub to: Vec<EmailAddr>,
    pub cc: Vec<EmailAddr>,
    pub bcc: Vec<EmailAddr>,
    pub reply_to: Vec<EmailAddr>,
    pub internet_message_id: Option<String>,
    pub sent: Option<DateTime<Utc>>,
    pub preview: String,
    pub has_attachments: bool,
    pub importance: &'static str,
    /// Seed for `conversationId`: the thread's root Message-ID.
    pub conversation_seed: String,
    /// `Disposition-Notification-To` is present (`isReadReceiptRequested`).
    pub read_receipt: bool,
}

/// The text and HTML bodies. Not kept with the item (that would double the memory a large
/// mailbox takes): computed from the MIME when a response includes `body`.
#[derive(Clone, Debug, Default)]
pub struct Bodies {
    pub text: Option<String>,
    pub html: Option<String>,
}

fn bodies_of(msg: &mail_parser::Message<'_>) -> Bodies {
    let text = msg.body_text(0).map(|c| c.into_owned());
    let html = if msg.html_body_count() > 0 && msg.html_part(0).is_some_and(|p| p.is_text_html()) {
        msg.body_html(0).map(|c| c.into_owned())
    } else {
        None
    };
    Bodies { text, html }
}

pub fn bodies(raw: &[u8]) -> Bodies {
    MessageParser::default()
        .parse(raw)
        .map(|m| bodies_of(&m))
        .unwrap_or_default()
}

/// The top-level header fields, unfolded (`internetMessageHeaders`), computed when asked for.
pub fn header_list(raw: &[u8]) -> Vec<(String, String)> {
    MessageParser::default()
        .parse_headers(raw)
        .map(|m| {
            m.headers_raw()
                .map(|(n, v)| (n.to_string(), unfold(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// One attachment found in the MIME.
#[derive(Clone, Debug)]
pub struct MimeAttachment {
    pub name: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub is_inline: bool,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("the MIME content could not be parsed")]
pub struct MimeError;

fn addrs(a: Option<&Address<'_>>) -> Vec<EmailAddr> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|x| {
            let address = x.address()?.trim().to_string();
            let name = x
                .name()
                .map(str::to_string)
                .unwrap_or_else(|| address.clone());
            Some(EmailAddr { name, address })
        })
        .collect()
}

fn unfold(v: &str) -> String {
    v.replace("\r\n", "").replace('\n', "").trim().to_string()
}

fn importance(msg: &mail_parser::Message<'_>) -> &'static str {
    let raw = msg
        .header_raw("Importance")
        .or_else(|| msg.header_raw("X-Priority"))
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if raw.starts_with("high") || raw.starts_with('1') || raw.starts_with('2') {
        "high"
    } else if raw.starts_with("low") || raw.starts_with('4') || raw.starts_with('5') {
        "low"
    } else {
        "normal"
    }
}

fn first_id(v: &mail_parser::HeaderValue<'_>) -> Option<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => Some(t.to_string()),
        mail_parser::HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        _ => None,
    }
}

/// Parses MIME bytes into Graph's properties. Fails only when the bytes are not a message at all.
pub fn parse(raw: &[u8]) -> Result<Parsed, MimeError> {
    let msg = MessageParser::default().parse(raw).ok_or(MimeError)?;
    let b = bodies_of(&msg);
    let read_receipt = msg
        .headers_raw()
        .any(|(n, _)| n.eq_ignore_ascii_case("Disposition-Notification-To"));
    let text_for_preview = b
        .text
        .or_else(|| b.html.as_deref().map(html_to_text))
        .unwrap_or_default();
    let own_id = msg.message_id().map(|m| format!("<{m}>"));
    let conversation_seed = first_id(msg.references())
        .or_else(|| first_id(msg.in_reply_to()))
        .or_else(|| msg.message_id().map(str::to_string))
        .unwrap_or_else(|| msg.subject().unwrap_or("").to_string());
    let has_attachments = msg.attachments().any(|p| !is_inline(p));
    Ok(Parsed {
        subject: msg.subject().unwrap_or("").to_string(),
        from: addrs(msg.from()).into_iter().next(),
        sender: addrs(msg.sender().or(msg.from())).into_iter().next(),
        to: addrs(msg.to()),
        cc: addrs(msg.cc()),
        bcc: addrs(msg.bcc()),
        reply_to: addrs(msg.reply_to()),
        internet_message_id: own_id,
        sent: msg
            .date()
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single()),
        preview: preview(&text_for_preview),
        has_attachments,
        importance: importance(&msg),
        conversation_seed,
        read_receipt,
    })
}

/// Graph's `bodyPreview`: the first 255 characters of the text, whitespace collapsed.
fn preview(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(255).collect()
}

/// Inline parts (cid-referenced images) do not make `hasAttachments` true in Exchange.
fn is_inline(p: &mail_parser::MessagePart<'_>) -> bool {
    let disposition_inline = p
        .content_disposition()
        .map(|d| d.ctype().eq_ignore_ascii_case("inline"))
        .unwrap_or(false);
    p.content_id().is_some() && (disposition_inline || p.content_disposition().is_none())
}

/// The attachments of a MIME message, in order (inline ones included, marked).
pub fn attachments(raw: &[u8]) -> Vec<MimeAttachment> {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    msg.attachments()
        .map(|p| {
            let content_type = p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            MimeAttachment {
                name: p.attachment_name().unwrap_or("attachment").to_string(),
                content_type,
                content_id: p.content_id().map(str::to_string),
                is_inline: is_inline(p),
                // The file's bytes as attached: Graph's `contentBytes` and `size` are the file's.
                bytes: crate::rfc822::part_bytes(&msg, p),
            }
        })
        .collect()
}

/// Crude HTML to text for `Prefer: outlook.body-content-type="text"` and previews.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut tag = String::new();
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                tag.clear();
            }
            (true, '>') => {
                in_tag = false;
                let t = tag.to_ascii_lowercase();
                if t.starts_with("br") || t.starts_with("/p") || t.starts_with("/div") {
                    out.push_str("\r\n");
                }
            }
            (true, c) => tag.push(c),
            (false, c) => out.push(c),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Text to HTML the way Exchange wraps a text body when HTML is asked for.
pub fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>{}</div></body></html>",
        escaped.replace("\r\n", "<br>").replace('\n', "<br>")
    )
}

/// Removes every `Bcc:` header field (with its folded lines): what recipients receive.
pub fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let header_end = find_header_end(raw);
    let (head, body) = raw.split_at(header_end);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if continuation {
            if !skipping {
                out.extend_from_slice(line);
            }
            continue;
        }
        skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// Offset just past the blank line ending the header (or the whole input when there is none).
fn find_header_end(raw: &[u8]) -> usize {
    for i in 0..raw.len() {
        if raw[i..].starts_with(b"\r\n\r\n") {
            return i + 4;
        }
        if raw[i..].starts_with(b"\n\n") {
            return i + 2;
        }
    }
    raw.len()
}

/// Adds `Message-ID` and `Date` when the submitted message lacks them, as Exchange does on send.
pub fn ensure_id_and_date(raw: Vec<u8>, domain: &str) -> Vec<u8> {
    let Ok(p) = parse(&raw) else { return raw };
    let mut prefix = String::new();
    if p.internet_message_id.is_none() {
        prefix.push_str(&format!(
            "Message-ID: <{}@{}>\r\n",
            super::ids::token(18),
            domain
        ));
    }
    if p.sent.is_none() {
        prefix.push_str(&format!("Date: {}\r\n", Utc::now().to_rfc2822()));
    }
    if prefix.is_empty() {
        return raw;
    }
    let mut out = prefix.into_bytes();
    out.extend_from_slice(&raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_stripped_with_its_folded_lines() {
        let raw = b"From: a@x\r\nBcc: b@x,\r\n c@x\r\nTo: d@x\r\n\r\nBcc: stays in body\r\n";
        let out = strip_bcc(raw);
        assert_eq!(
            out,
            b"From: a@x\r\nTo: d@x\r\n\r\nBcc: stays in body\r\n".to_vec()
        );
    }

    #[test]
    fn parse_reads_addresses_and_encoded_subject() {
        let raw = b"From: =?utf-8?Q?J=C3=BCrgen?= <j@x.test>\r\nTo: a@x.test, B <b@x.test>\r\nSubject: =?utf-8?B?w5xiZXJzaWNodA==?=\r\nMessage-ID: <1@x>\r\n\r\nHallo\r\n";
        let p = parse(raw).unwrap_or_default();
        assert_eq!(p.subject, "Übersicht");
        assert_eq!(p.from.map(|f| f.name), Some("Jürgen".to_string()));
        assert_eq!(p.to.len(), 2);
        assert_eq!(p.internet_message_id.as_deref(), Some("<1@x>"));
        assert_eq!(p.preview, "Hallo");
    }

    #[test]
    fn text_attachments_keep_their_bytes() {
        let raw = b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nBody\r\n\
--b\r\nContent-Type: text/plain; name=bin.txt\r\nContent-Disposition: attachment; filename=bin.txt\r\n\
Content-Transfer-Encoding: base64\r\n\r\n/wCA/g==\r\n\
--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=k.txt\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nK=F6ln\r\n--b--\r\n";
        let files = attachments(raw);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].bytes, vec![0xff, 0x00, 0x80, 0xfe]);
        assert_eq!(files[1].bytes, b"K\xf6ln".to_vec());
    }
}
