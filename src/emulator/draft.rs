//! PATCH of a draft's content (`subject`, `body`, recipients, `from`, `replyTo`, `importance`,
//! `internetMessageHeaders`). The emulator keeps MIME as an item's source of truth, so the draft
//! is rebuilt: its current content as Graph JSON, the changes laid over it, and MIME composed
//! again, attachments and Message-ID kept. Exchange regenerates MIME on every change as well.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::errors::GraphResult;
use super::mime::{self, EmailAddr};
use super::state::Message;

/// Content fields a draft PATCH may change.
pub const CONTENT_FIELDS: &[&str] = &[
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "from",
    "replyTo",
    "importance",
    "internetMessageHeaders",
];

fn addr(a: &EmailAddr) -> Value {
    json!({"emailAddress": {"name": a.name, "address": a.address}})
}

fn addrs(v: &[EmailAddr]) -> Value {
    Value::Array(v.iter().map(addr).collect())
}

/// The draft as a Graph message object, as `compose::mime_from_json` takes it.
fn current(m: &Message) -> Map<String, Value> {
    let p = &m.parsed;
    let bodies = mime::bodies(&m.mime);
    let body = match (bodies.html, bodies.text) {
        (Some(h), _) => json!({"contentType": "html", "content": h}),
        (None, Some(t)) => json!({"contentType": "text", "content": t}),
        (None, None) => json!({"contentType": "text", "content": ""}),
    };
    let custom: Vec<Value> = mime::header_list(&m.mime)
        .into_iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-"))
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect();
    let attachments: Vec<Value> = mime::attachments(&m.mime)
        .iter()
        .map(|a| {
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": a.name,
                "contentType": a.content_type,
                "isInline": a.is_inline,
                "contentId": a.content_id,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.bytes),
            })
        })
        .collect();
    let mut o = Map::new();
    o.insert("subject".into(), json!(p.subject));
    o.insert("body".into(), body);
    o.insert("toRecipients".into(), addrs(&p.to));
    o.insert("ccRecipients".into(), addrs(&p.cc));
    o.insert("bccRecipients".into(), addrs(&p.bcc));
    o.insert("replyTo".into(), addrs(&p.reply_to));
    if let Some(f) = &p.from {
        o.insert("from".into(), addr(f));
    }
    o.insert("importance".into(), json!(p.importance));
    o.insert("internetMessageHeaders".into(), Value::Array(custom));
    o.insert("attachments".into(), Value::Array(attachments));
    o
}

/// The draft's new MIME after `changes` (already checked to be content fields).
pub fn rebuild(m: &Message, changes: &Map<String, Value>, domain: &str) -> GraphResult<Vec<u8>> {
    let mut o = current(m);
    for (k, v) in changes {
        o.insert(k.clone(), v.clone());
    }
    let raw = super::compose::mime_from_json(&Value::Object(o), None, domain)?;
    // The draft keeps its Message-ID across edits.
    Ok(match &m.parsed.internet_message_id {
        Some(id) => super::send::set_header(&raw, "Message-ID", id),
        None => raw,
    })
}
