//! What submission needs to know about a message, and the rewrites it makes: attachments
//! out and download links in, a Message-ID when the client gave none, and the content
//! fingerprint that recognises the client's own copy in Sent Items.

use std::collections::HashSet;

use mail_builder::mime::MimePart;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The macros a body may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Download,
    Agreement,
}

impl LinkKind {
    fn macro_name(self) -> &'static str {
        match self {
            LinkKind::Download => "_downloadLink",
            LinkKind::Agreement => "_agreementLink",
        }
    }
}

/// A macro found in a body: its kind and the label between the parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroUse {
    pub kind: LinkKind,
    pub label: String,
}

/// The facts policy decisions are made from.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub from: Option<String>,
    pub subject: String,
    pub message_id: Option<String>,
    /// To, Cc and Bcc addresses as written.
    pub header_recipients: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub macros: Vec<MacroUse>,
    /// `Precedence: bulk|list` or `List-Unsubscribe`.
    pub bulk: bool,
}

pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

pub fn analyse(raw: &[u8]) -> Option<Analysis> {
    let message = parse(raw)?;
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let header_recipients = [message.to(), message.cc(), message.bcc()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|a| a.address().map(str::to_string))
        .collect();
    let precedence = message
        .header_raw("Precedence")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let bulk = precedence == "bulk"
        || precedence == "list"
        || message.header_raw("List-Unsubscribe").is_some();
    let mut macros = Vec::new();
    for text in bodies(&message) {
        for found in find_macros(&text) {
            if !macros.contains(&found) {
                macros.push(found);
            }
        }
    }
    Some(Analysis {
        from,
        subject: message.subject().unwrap_or("").to_string(),
        message_id: message.message_id().map(str::to_string),
        header_recipients,
        attachments: files(&message)
            .into_iter()
            .map(|i| attachment_of(&message, i))
            .collect(),
        macros,
        bulk,
    })
}

/// Decoded text and HTML bodies.
fn bodies(message: &Message<'_>) -> Vec<String> {
    message
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Text(t) | PartType::Html(t) => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

/// Parts that are files: everything but the bodies and inline images the HTML refers to.
fn files(message: &Message<'_>) -> Vec<usize> {
    let html: String = message
        .html_bodies()
        .filter_map(|p| p.text_contents())
        .collect();
    let bodies: HashSet<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .collect();
    message
        .attachments
        .iter()
        .copied()
        .filter(|i| !bodies.contains(i))
        .filter(|&i| {
            let Some(part) = message.parts.get(i as usize) else {
                return false;
            };
            let referenced = part
                .content_id()
                .is_some_and(|cid| html.contains(&format!("cid:{}", cid.trim_matches(['<', '>']))));
            let explicit = part
                .content_disposition()
                .is_some_and(|d| d.is_attachment());
            explicit || !referenced
        })
        .map(|i| i as usize)
        .collect()
}

fn attachment_of(message: &Message<'_>, index: usize) -> Attachment {
    let Some(part) = message.parts.get(index) else {
        return Attachment {
            name: "attachment".into(),
            content_type: "application/octet-stream".into(),
            bytes: Vec::new(),
        };
    };
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    let bytes = match &part.body {
        PartType::Message(_) => message
            .raw_message()
            .get(part.offset_body as usize..part.offset_end as usize)
            .unwrap_or_default()
            .to_vec(),
        _ => crate::rfc822::part_bytes(message, part),
    };
    Attachment {
        name: part
            .attachment_name()
            .map(sanitize_name)
            .unwrap_or_else(|| format!("attachment-{index}")),
        content_type,
        bytes,
    }
}

/// A file name safe to offer for download: no paths, no control characters.
pub fn sanitize_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect();
    let clean = clean.trim().to_string();
    if clean.is_empty() || clean == "." || clean == ".." {
        "attachment".into()
    } else {
        clean
    }
}

/// `_downloadLink(Text)` and `_agreementLink(Text)` occurrences (the label may be empty).
pub fn find_macros(text: &str) -> Vec<MacroUse> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = next_macro(rest) {
        found.push(MacroUse {
            kind: at.kind,
            label: at.label.unwrap_or_default(),
        });
        rest = &rest[at.end..];
    }
    found
}

/// One macro in a text: where it starts and ends, and what it says.
struct MacroAt {
    start: usize,
    end: usize,
    kind: LinkKind,
    label: Option<String>,
}

/// The first macro of either kind in `text`. Finding and substituting both walk the text once
/// with this, left to right, so that what a substitution writes is never read as a macro again.
fn next_macro(text: &str) -> Option<MacroAt> {
    let (start, kind) = [LinkKind::Download, LinkKind::Agreement]
        .into_iter()
        .filter_map(|kind| text.find(kind.macro_name()).map(|at| (at, kind)))
        .min_by_key(|(at, _)| *at)?;
    let label_at = start + kind.macro_name().len();
    let (label, consumed) = macro_label(&text[label_at..]);
    Some(MacroAt {
        start,
        end: label_at + consumed,
        kind,
        label,
    })
}

/// The `(Text)` after a macro name: (label, bytes consumed). The label ends at the first `)`;
/// a `(` or another macro before it means this parenthesis was never closed (the `)` belongs
/// to something later), so the macro stands alone and gets the default label.
fn macro_label(after: &str) -> (Option<String>, usize) {
    let Some(inner) = after.strip_prefix('(') else {
        return (None, 0);
    };
    match inner.find([')', '(']) {
        Some(close) if inner[close..].starts_with(')') => {
            let label = &inner[..close];
            if contains_macro(label) {
                return (None, 0);
            }
            (Some(label.trim().to_string()), close + 2)
        }
        _ => (None, 0),
    }
}

fn contains_macro(text: &str) -> bool {
    [LinkKind::Download, LinkKind::Agreement]
        .iter()
        .any(|kind| text.contains(kind.macro_name()))
}

/// A link as it replaces a macro.
#[derive(Debug, Clone)]
pub struct RenderedLink {
    pub kind: LinkKind,
    pub url: String,
}

/// Substitutes every macro in a text body: `Text: URL`.
pub fn substitute_text(text: &str, links: &[RenderedLink]) -> String {
    substitute(text, links, |label, url| format!("{label}: {url}"))
}

/// Substitutes every macro in an HTML body: `<a href="URL">Text</a>`.
pub fn substitute_html(html: &str, links: &[RenderedLink]) -> String {
    substitute(html, links, |label, url| {
        format!("<a href=\"{}\">{}</a>", escape_html(url), label)
    })
}

fn substitute(text: &str, links: &[RenderedLink], render: impl Fn(&str, &str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = next_macro(rest) {
        out.push_str(&rest[..at.start]);
        match links.iter().find(|link| link.kind == at.kind) {
            Some(link) => {
                let label = at
                    .label
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| default_label(at.kind).to_string());
                out.push_str(&render(&label, &link.url));
            }
            None => out.push_str(&rest[at.start..at.end]),
        }
        rest = &rest[at.end..];
    }
    out.push_str(rest);
    out
}

pub fn default_label(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Download => "Download the attachments",
        LinkKind::Agreement => "Accept the terms and download the attachments",
    }
}

pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message with its files removed and macros replaced by `links`; when the bodies hold
/// no macro (automatic conversion), a link is appended to each body instead. The header is
/// kept as it was, except the MIME fields that describe the new body.
pub fn replace_attachments(raw: &[u8], links: &[RenderedLink]) -> Option<Vec<u8>> {
    let message = parse(raw)?;
    let has_macros = bodies(&message).iter().any(|b| !find_macros(b).is_empty());
    let text = message.text_bodies().find_map(|p| match &p.body {
        PartType::Text(t) => Some(t.to_string()),
        _ => None,
    });
    let html = message.html_bodies().find_map(|p| match &p.body {
        PartType::Html(t) => Some(t.to_string()),
        _ => None,
    });
    let text = text.map(|t| {
        if has_macros {
            substitute_text(&t, links)
        } else {
            append_text(&t, links)
        }
    });
    let html = html.map(|h| {
        if has_macros {
            substitute_html(&h, links)
        } else {
            append_html(&h, links)
        }
    });
    let inline = inline_parts(&message);
    let body = build_body(text, html, inline);
    Some(with_new_body(raw, body))
}

/// The message without its files (for a draft whose files go up in upload sessions).
pub fn without_attachments(raw: &[u8]) -> Option<Vec<u8>> {
    let message = parse(raw)?;
    let text = message.text_bodies().find_map(|p| match &p.body {
        PartType::Text(t) => Some(t.to_string()),
        _ => None,
    });
    let html = message.html_bodies().find_map(|p| match &p.body {
        PartType::Html(t) => Some(t.to_string()),
        _ => None,
    });
    let body = build_body(text, html, inline_parts(&message));
    Some(with_new_body(raw, body))
}

/// Files of a message (for upload sessions).
pub fn attachments(raw: &[u8]) -> Vec<Attachment> {
    analyse(raw).map(|a| a.attachments).unwrap_or_default()
}

fn append_text(text: &str, links: &[RenderedLink]) -> String {
    let mut out = text.trim_end().to_string();
    out.push_str("\r\n\r\n");
    for link in links {
        out.push_str(&format!("{}: {}\r\n", default_label(link.kind), link.url));
    }
    out
}

fn append_html(html: &str, links: &[RenderedLink]) -> String {
    let rendered: String = links
        .iter()
        .map(|l| {
            format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(&l.url),
                default_label(l.kind)
            )
        })
        .collect();
    match html.rfind("</body>") {
        Some(at) => format!("{}{}{}", &html[..at], rendered, &html[at..]),
        None => format!("{html}{rendered}"),
    }
}

/// Inline images the HTML refers to: (content type, content id, bytes).
fn inline_parts(message: &Message<'_>) -> Vec<(String, String, Vec<u8>)> {
    let kept: HashSet<usize> = files(message).into_iter().collect();
    message
        .attachments
        .iter()
        .map(|&i| i as usize)
        .filter(|i| !kept.contains(i))
        .filter_map(|i| {
            let part = message.parts.get(i)?;
            let cid = part.content_id()?.trim_matches(['<', '>']).to_string();
            let ct = part.content_type()?;
            let ct = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream"));
            Some((ct, cid, crate::rfc822::part_bytes(message, part)))
        })
        .collect()
}

fn build_body(
    text: Option<String>,
    html: Option<String>,
    inline: Vec<(String, String, Vec<u8>)>,
) -> MimePart<'static> {
    let html_part = html.map(|h| {
        let part = MimePart::new("text/html", h);
        if inline.is_empty() {
            return part;
        }
        let mut parts = vec![part];
        for (ct, cid, bytes) in inline {
            parts.push(MimePart::new(ct, bytes).inline().cid(cid));
        }
        MimePart::new("multipart/related", parts)
    });
    match (text, html_part) {
        (Some(t), Some(h)) => MimePart::new(
            "multipart/alternative",
            vec![MimePart::new("text/plain", t), h],
        ),
        (None, Some(h)) => h,
        (Some(t), None) => MimePart::new("text/plain", t),
        (None, None) => MimePart::new("text/plain", String::new()),
    }
}

/// The original header minus its MIME fields, followed by the new body part.
fn with_new_body(raw: &[u8], body: MimePart<'static>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in header_lines(raw) {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            skipping = starts_with_ci(line, b"content-") || starts_with_ci(line, b"mime-version:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    // Writing into a Vec cannot fail.
    let _ = body.write_part(&mut out);
    out
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The header's lines, each with its line end, up to (not including) the blank line.
fn header_lines(raw: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        lines.push(line);
    }
    lines
}

/// Adds a Message-ID when the message has none, so the send can be recognised later.
pub fn ensure_message_id(raw: Vec<u8>, domain: &str) -> (Vec<u8>, String) {
    if let Some(id) = parse(&raw).and_then(|m| m.message_id().map(str::to_string)) {
        return (raw, id);
    }
    let id = format!("{}@{}", crate::submission::links::random_token(), domain);
    let mut out = format!("Message-ID: <{id}>\r\n").into_bytes();
    out.extend_from_slice(&raw);
    (out, id)
}

/// Removes the `Bcc:` header (for copies that reach recipients).
pub fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_header = true;
    let mut skipping = false;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if in_header {
            if line == b"\r\n" || line == b"\n" {
                in_header = false;
            } else {
                let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
                if !folded {
                    skipping = starts_with_ci(line, b"bcc:");
                }
                if skipping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// What two copies of one message share whatever was done to their attachments and links:
/// the subject and the letters and digits of the text body, with macros reduced to their
/// labels and URLs left out (a download URL replaces a macro in the sent copy).
pub fn fingerprint(raw: &[u8]) -> Option<String> {
    let message = parse(raw)?;
    let mut hasher = Sha256::new();
    hasher.update(normalise(message.subject().unwrap_or("")));
    hasher.update([0]);
    let text = message
        .body_text(0)
        .map(|t| t.to_string())
        .unwrap_or_default();
    hasher.update(normalise(&text));
    Some(hex(&hasher.finalize()))
}

fn normalise(text: &str) -> String {
    let mut text = text.to_string();
    for kind in [LinkKind::Download, LinkKind::Agreement] {
        text = text.replace(kind.macro_name(), "");
    }
    for scheme in ["https://", "http://"] {
        while let Some(at) = text.find(scheme) {
            let end = text[at..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
                .map(|e| at + e)
                .unwrap_or(text.len());
            text.replace_range(at..end, "");
        }
    }
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A digest of the files of a message, independent of their order.
pub fn attachments_digest(attachments: &[Attachment]) -> String {
    let mut each: Vec<String> = attachments
        .iter()
        .map(|a| hex(&Sha256::digest(&a.bytes)))
        .collect();
    each.sort();
    hex(&Sha256::digest(each.join(",").as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_PDF: &[u8] = b"From: sales@contoso.test\r\nTo: a@x.test\r\nSubject: Offer\r\n\
Message-ID: <m1@contoso.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nyour files: _downloadLink(Offer files)\r\n\
--b\r\nContent-Type: application/pdf; name=\"offer.pdf\"\r\n\
Content-Disposition: attachment; filename=\"offer.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQK\r\n--b--\r\n";

    #[test]
    fn finds_macros_labels_and_files() {
        let a = analyse(WITH_PDF).expect("parses");
        assert_eq!(
            a.macros,
            vec![MacroUse {
                kind: LinkKind::Download,
                label: "Offer files".into()
            }]
        );
        assert_eq!(a.attachments.len(), 1);
        assert_eq!(a.attachments[0].name, "offer.pdf");
        assert_eq!(a.attachments[0].content_type, "application/pdf");
        assert_eq!(a.attachments[0].bytes, b"%PDF-1.4\n");
        assert!(!a.bulk);
    }

    #[test]
    fn rewrite_removes_files_and_renders_links() {
        let links = [RenderedLink {
            kind: LinkKind::Download,
            url: "https://x.test/d/abc".into(),
        }];
        let out = replace_attachments(WITH_PDF, &links).expect("rewrites");
        let a = analyse(&out).expect("parses");
        assert!(a.attachments.is_empty());
        assert!(a.macros.is_empty());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Offer files: https://x.test/d/abc"), "{text}");
        assert!(text.starts_with("From: sales@contoso.test\r\n"));
        assert_eq!(a.message_id.as_deref(), Some("m1@contoso.test"));
    }

    #[test]
    fn html_macro_becomes_an_anchor() {
        let links = [RenderedLink {
            kind: LinkKind::Agreement,
            url: "https://x.test/d/t".into(),
        }];
        let out = substitute_html("<p>_agreementLink(Terms &amp; files)</p>", &links);
        assert_eq!(
            out,
            "<p><a href=\"https://x.test/d/t\">Terms &amp; files</a></p>"
        );
    }

    #[test]
    fn substitution_is_one_pass() {
        let links = [
            RenderedLink {
                kind: LinkKind::Download,
                url: "D".into(),
            },
            RenderedLink {
                kind: LinkKind::Agreement,
                url: "A".into(),
            },
        ];
        // A label that, joined to the text before it, spells the other macro stays text.
        assert_eq!(
            substitute_text("_agreement_downloadLink(Link)", &links),
            "_agreementLink: D"
        );
        assert_eq!(
            substitute_text("_d_agreementLink(ownloadLink)", &links),
            "_downloadLink: A"
        );
        assert_eq!(find_macros("_agreement_downloadLink(Link)").len(), 1);
    }

    #[test]
    fn fingerprint_survives_link_substitution() {
        let links = [RenderedLink {
            kind: LinkKind::Download,
            url: "https://x.test/d/abcDEF_-1".into(),
        }];
        let out = replace_attachments(WITH_PDF, &links).expect("rewrites");
        assert_eq!(fingerprint(WITH_PDF), fingerprint(&out));
        let other = String::from_utf8_lossy(WITH_PDF).replace("Hello", "Goodbye");
        assert_ne!(fingerprint(other.as_bytes()), fingerprint(WITH_PDF));
    }

    #[test]
    fn bulk_markers_and_unsafe_names() {
        let raw = b"From: a@x\r\nPrecedence: Bulk\r\n\r\nhi\r\n";
        assert!(analyse(raw).expect("parses").bulk);
        let raw = b"From: a@x\r\nList-Unsubscribe: <mailto:u@x>\r\n\r\nhi\r\n";
        assert!(analyse(raw).expect("parses").bulk);
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("a\"b\r.pdf"), "ab.pdf");
        assert_eq!(sanitize_name(".."), "attachment");
    }

    #[test]
    fn message_id_is_added_once_and_bcc_stripped() {
        let (raw, id) = ensure_message_id(b"From: a@x\r\n\r\nhi\r\n".to_vec(), "x.test");
        assert!(id.ends_with("@x.test"));
        let (again, same) = ensure_message_id(raw.clone(), "x.test");
        assert_eq!((again, same), (raw, id));
        let stripped = strip_bcc(b"Bcc: a@x,\r\n b@x\r\nTo: c@x\r\n\r\nBcc: body\r\n");
        assert_eq!(stripped, b"To: c@x\r\n\r\nBcc: body\r\n".to_vec());
    }

    #[test]
    fn garbage_does_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe",
            b"Content-Type: multipart/mixed\r\n\r\n--",
            b"\r\n\r\n",
        ] {
            let _ = analyse(raw);
            let _ = replace_attachments(raw, &[]);
            let _ = fingerprint(raw);
        }
    }
}
