//! Message JSON, `GET`, `$value` and `PATCH` of a message.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::{GraphError, GraphResult};
use super::folders::context;
use super::graph::{json, Ctx, Perm, Req};
use super::mime::{self, EmailAddr};
use super::state::{Mailbox, Message};
use super::{extprops, Shared};

/// Properties returned when no `$select` is given, in Graph's order.
pub const DEFAULT_FIELDS: &[&str] = &[
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

/// Properties returned only when `$select` names them.
const SELECT_ONLY: &[&str] = &["internetMessageHeaders", "uniqueBody"];

/// How to render messages for one request.
#[derive(Clone, Debug, Default)]
pub struct Render {
    pub immutable: bool,
    pub body_text: bool,
    /// `None`: the default properties.
    pub select: Option<Vec<&'static str>>,
    /// `$expand=singleValueExtendedProperties($filter=…)`: canonical ids asked for.
    pub expand_ext: Option<Vec<String>>,
}

impl Render {
    pub fn from_req(req: &Req) -> GraphResult<Render> {
        Ok(Render {
            immutable: req.prefer.immutable_ids,
            body_text: req.prefer.body_text,
            select: parse_select(req.q("select"))?,
            expand_ext: extprops::parse_expand(req.q("expand"))?,
        })
    }
}

/// `$select` names, matched case-insensitively and returned in their canonical spelling.
pub fn parse_select(select: Option<&str>) -> GraphResult<Option<Vec<&'static str>>> {
    let Some(select) = select else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name.eq_ignore_ascii_case("id") {
            continue;
        }
        let found = DEFAULT_FIELDS
            .iter()
            .chain(SELECT_ONLY)
            .find(|f| f.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "RequestBroker--ParseUri",
                    format!("Could not find a property named '{name}' on type 'microsoft.graph.message'."),
                )
            })?;
        out.push(*found);
    }
    Ok(Some(out))
}

pub fn ts(t: DateTime<Utc>) -> Value {
    json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn addr(a: &EmailAddr) -> Value {
    json!({"emailAddress": {"name": a.name, "address": a.address}})
}

fn addrs(v: &[EmailAddr]) -> Value {
    Value::Array(v.iter().map(addr).collect())
}

fn body_json(m: &Message, text: bool) -> Value {
    let p = mime::bodies(&m.mime);
    // Graph returns HTML unless `Prefer: outlook.body-content-type="text"` asks for text.
    let (kind, content) = if text {
        let t = p
            .text
            .or_else(|| p.html.as_deref().map(mime::html_to_text))
            .unwrap_or_default();
        ("text", t)
    } else {
        let h = p
            .html
            .or_else(|| p.text.as_deref().map(mime::text_to_html))
            .unwrap_or_default();
        ("html", h)
    };
    json!({"contentType": kind, "content": content})
}

fn field(mb: &Mailbox, m: &Message, name: &str, r: &Render) -> Value {
    let p = &m.parsed;
    match name {
        "createdDateTime" => ts(m.created),
        "lastModifiedDateTime" => ts(m.modified),
        "changeKey" => json!(m.change_key()),
        "categories" => json!(m.categories),
        "receivedDateTime" => ts(m.received),
        "sentDateTime" => p.sent.map(ts).unwrap_or(Value::Null),
        "hasAttachments" => json!(p.has_attachments),
        "internetMessageId" => json!(p.internet_message_id),
        "subject" => json!(p.subject),
        "bodyPreview" => json!(p.preview),
        "importance" => json!(p.importance),
        "parentFolderId" => json!(mb.folders.get(&m.folder).map(|f| f.id.clone())),
        "conversationId" => json!(super::ids::conversation_id(&p.conversation_seed)),
        "conversationIndex" => json!("AQHZAAAAAAAAAAAAAAAAAAAAAA=="),
        "isDeliveryReceiptRequested" => json!(false),
        "isReadReceiptRequested" => json!(p.read_receipt),
        "isRead" => json!(m.is_read),
        "isDraft" => json!(m.is_draft),
        "webLink" => json!(format!(
            "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
            super::form::escape(m.id(r.immutable))
        )),
        "inferenceClassification" => json!("focused"),
        "body" | "uniqueBody" => body_json(m, r.body_text),
        "sender" => p.sender.as_ref().map(addr).unwrap_or(Value::Null),
        "from" => p.from.as_ref().map(addr).unwrap_or(Value::Null),
        "toRecipients" => addrs(&p.to),
        "ccRecipients" => addrs(&p.cc),
        "bccRecipients" => addrs(&p.bcc),
        "replyTo" => addrs(&p.reply_to),
        "flag" => json!({"flagStatus": m.flag_status}),
        "internetMessageHeaders" => Value::Array(
            mime::header_list(&m.mime)
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A message as Graph renders it: `@odata.etag`, `id`, then the selected properties.
pub fn render(mb: &Mailbox, m: &Message, r: &Render) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", m.change_key())),
    );
    o.insert("id".into(), json!(m.id(r.immutable)));
    let fields: &[&str] = r.select.as_deref().unwrap_or(DEFAULT_FIELDS);
    for f in fields {
        o.insert((*f).to_string(), field(mb, m, f, r));
    }
    if let Some(ids) = &r.expand_ext {
        o.insert(
            "singleValueExtendedProperties".into(),
            extprops::render(m, ids),
        );
    }
    o
}

/// `GET /me/messages/{id}`
pub fn get(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let r = Render::from_req(req)?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let m = mb.message(mb.resolve_message(id)?)?;
    Ok(entity(req, ctx, render(mb, m, &r)))
}

/// A single message response with its `@odata.context`.
pub fn entity(req: &Req, ctx: &Ctx, body: Map<String, Value>) -> Response {
    let mut o = Map::new();
    o.insert(
        "@odata.context".into(),
        json!(context(req, ctx, "/messages/$entity")),
    );
    o.extend(body);
    json(StatusCode::OK, &Value::Object(o))
}

/// `GET /me/messages/{id}/$value`: the MIME, as `text/plain`.
pub fn value(shared: &Arc<Shared>, _req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let (bytes, regenerate) = {
        let inner = shared.lock();
        let mb = inner.tenant.mailbox(ctx.mailbox)?;
        let m = mb.message(mb.resolve_message(id)?)?;
        // The bytes are shared, not copied; rewriting (a copy) happens after the lock is gone.
        let regenerate = shared.args.mime_rewrite.then(|| m.clone());
        (m.mime.clone(), regenerate)
    };
    let bytes = match regenerate {
        Some(m) => axum::body::Bytes::from(super::rewrite::regenerate(&m)),
        None => bytes,
    };
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// One validated change from a PATCH body.
enum Change {
    IsRead(bool),
    Flag(String),
    Categories(Vec<String>),
    Ext(Vec<(String, String)>),
    /// A draft's content field (rebuilt into MIME with the others).
    Content(String, Value),
}

fn parse_change(key: &str, v: &Value, is_draft: bool) -> GraphResult<Change> {
    let bad = |what: &str| GraphError::bad_request(format!("Invalid value for '{key}': {what}."));
    match key {
        "isRead" => v.as_bool().map(Change::IsRead).ok_or_else(|| bad("expected a boolean")),
        "flag" => {
            let s = v
                .get("flagStatus")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("expected {\"flagStatus\":…}"))?;
            match s {
                "notFlagged" | "flagged" | "complete" => Ok(Change::Flag(s.to_string())),
                _ => Err(bad("flagStatus must be notFlagged, flagged or complete")),
            }
        }
        "categories" => {
            let arr = v.as_array().ok_or_else(|| bad("expected an array"))?;
            arr.iter()
                .map(|c| c.as_str().map(str::to_string).ok_or_else(|| bad("expected strings")))
                .collect::<GraphResult<Vec<_>>>()
                .map(Change::Categories)
        }
        "singleValueExtendedProperties" => extprops::parse_patch(v).map(Change::Ext),
        k if super::draft::CONTENT_FIELDS.contains(&k) => {
            if is_draft {
                Ok(Change::Content(key.to_string(), v.clone()))
            } else {
                // Exchange refuses content changes to items that are not drafts.
                Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidPropertyUpdateSentMessage",
                    "Update operation is invalid for property of a sent message.",
                ))
            }
        }
        _ => Err(GraphError::bad_request(format!(
            "The property '{key}' does not exist on type 'microsoft.graph.message' or cannot be updated."
        ))),
    }
}

/// `PATCH /me/messages/{id}` of `isRead`, `flag`, `categories`, extended properties, and of a
/// draft's content.
pub fn patch(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let body = req.json_body()?;
    let obj = body
        .as_object()
        .ok_or_else(|| GraphError::bad_request("The request body must be a JSON object."))?;
    let r = Render {
        immutable: req.prefer.immutable_ids,
        body_text: req.prefer.body_text,
        ..Render::default()
    };
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    let is_draft = mb.message(key)?.is_draft;
    // Validate everything first: a bad field leaves the item untouched.
    let changes = obj
        .iter()
        .filter(|(k, _)| !k.starts_with('@'))
        .map(|(k, v)| parse_change(k, v, is_draft))
        .collect::<GraphResult<Vec<_>>>()?;
    let content: Map<String, Value> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Content(k, v) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    // Rebuild first: content that cannot be composed leaves the item untouched.
    let rebuilt = if content.is_empty() {
        None
    } else {
        let domain = mb
            .upn
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("localhost");
        let raw = super::draft::rebuild(mb.message(key)?, &content, domain)?;
        let parsed = mime::parse(&raw).map_err(|_| {
            GraphError::bad_request("The draft could not be rebuilt from these values.")
        })?;
        Some((raw, parsed))
    };
    if let Some(m) = mb.messages.get_mut(&key) {
        if let Some((raw, parsed)) = rebuilt {
            m.mime = raw.into();
            m.parsed = Arc::new(parsed);
        }
        for c in changes {
            match c {
                Change::Content(..) => {}
                Change::IsRead(b) => m.is_read = b,
                Change::Flag(s) => m.flag_status = s,
                Change::Categories(c) => m.categories = c,
                Change::Ext(props) => {
                    for (k, v) in props {
                        m.ext.insert(k, v);
                    }
                }
            }
        }
    }
    mb.touch(key);
    let m = mb.message(key)?;
    Ok(entity(req, ctx, render(mb, m, &r)))
}
