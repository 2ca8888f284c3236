//! Attachments: list and get (from the item's MIME), add a file to a message, and upload
//! sessions (`createUploadSession` then `PUT uploadUrl` chunks with `Content-Range`, no
//! Authorization). Microsoft's docs allow both on any existing message, draft or not ("Add
//! attachment": "an existing message"; `createUploadSession`: "an Outlook item").

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::compose::{parse_attachment, FileAttachment};
use super::errors::{GraphError, GraphResult};
use super::folders::context;
use super::graph::{json, Ctx, Perm, Req};
use super::items::{too_large, MAX_MESSAGE_BYTES};
use super::state::{Mailbox, MsgKey};
use super::{ids, mime, Shared};

/// Largest file an upload session takes.
const MAX_UPLOAD: u64 = 150 * 1024 * 1024;
/// Largest chunk per `PUT`.
const MAX_CHUNK: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct UploadSession {
    mailbox: usize,
    upn: String,
    app: String,
    message: MsgKey,
    name: String,
    content_type: String,
    is_inline: bool,
    content_id: Option<String>,
    size: u64,
    data: Vec<u8>,
    expires: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Uploads {
    sessions: HashMap<String, UploadSession>,
}

/// Attachment ids: the item's immutable id, then the part's position.
fn attachment_id(msg_id: &str, index: usize) -> String {
    let raw = format!("{msg_id}:{index}");
    base64::engine::general_purpose::URL_SAFE.encode(raw)
}

fn attachment_json(msg_id: &str, i: usize, a: &mime::MimeAttachment, with_bytes: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": attachment_id(msg_id, i),
        "lastModifiedDateTime": null,
        "name": a.name,
        "contentType": a.content_type,
        "size": a.bytes.len(),
        "isInline": a.is_inline,
        "contentId": a.content_id,
    });
    if with_bytes {
        v["contentBytes"] = json!(base64::engine::general_purpose::STANDARD.encode(&a.bytes));
    }
    v
}

/// `GET /me/messages/{id}/attachments`
pub fn list(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let m = mb.message(mb.resolve_message(id)?)?;
    let value: Vec<Value> = mime::attachments(&m.mime)
        .iter()
        .enumerate()
        .map(|(i, a)| attachment_json(&m.immutable_id, i, a, true))
        .collect();
    let body =
        json!({"@odata.context": context(req, ctx, "/messages/attachments"), "value": value});
    Ok(json(StatusCode::OK, &body))
}

/// `GET /me/messages/{id}/attachments/{attachmentId}`
pub fn get(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    id: &str,
    aid: &str,
) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let m = mb.message(mb.resolve_message(id)?)?;
    let atts = mime::attachments(&m.mime);
    let (i, a) = atts
        .iter()
        .enumerate()
        .find(|(i, _)| attachment_id(&m.immutable_id, *i) == aid)
        .ok_or_else(GraphError::item_not_found)?;
    let mut body = attachment_json(&m.immutable_id, i, a, true);
    body["@odata.context"] = json!(context(req, ctx, "/messages/attachments/$entity"));
    Ok(json(StatusCode::OK, &body))
}

/// Adds a file part to a message's MIME (Exchange regenerates the MIME; so does this).
fn attach(mb: &mut Mailbox, key: MsgKey, a: &FileAttachment) -> GraphResult<usize> {
    let m = mb.message(key)?;
    let raw = add_part(&m.mime, a);
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(too_large());
    }
    let parsed = mime::parse(&raw)
        .map_err(|_| GraphError::bad_request("The message's MIME is not valid."))?;
    let index = mime::attachments(&raw).len().saturating_sub(1);
    if let Some(m) = mb.messages.get_mut(&key) {
        m.mime = raw.into();
        m.parsed = Arc::new(parsed);
    }
    mb.touch(key);
    Ok(index)
}

/// Wraps the message body and the new file in a fresh multipart/mixed.
fn add_part(raw: &[u8], a: &FileAttachment) -> Vec<u8> {
    let text = raw;
    let split = (0..text.len())
        .find(|&i| text[i..].starts_with(b"\r\n\r\n"))
        .map(|i| (i + 2, i + 4))
        .unwrap_or((text.len(), text.len()));
    let (head, body) = (&text[..split.0], &text[split.1.min(text.len())..]);
    let mut outer = Vec::new();
    let mut content_headers = Vec::new();
    let mut current_is_content = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let cont = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !cont {
            current_is_content = line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"content-");
        }
        if current_is_content {
            content_headers.extend_from_slice(line);
        } else if !(line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"mime-version:")) {
            outer.extend_from_slice(line);
        }
    }
    if content_headers.is_empty() {
        content_headers.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    let boundary = format!("_att_{}_", ids::token(12));
    let disposition = if a.is_inline { "inline" } else { "attachment" };
    let mut out = outer;
    out.extend_from_slice(
        format!("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(&content_headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    let name = a.name.replace('"', "");
    let mut part = format!(
        "\r\n--{boundary}\r\nContent-Type: {}; name=\"{name}\"\r\nContent-Disposition: {disposition}; filename=\"{name}\"\r\n",
        a.content_type
    );
    if let Some(cid) = &a.content_id {
        part.push_str(&format!("Content-ID: <{cid}>\r\n"));
    }
    part.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    out.extend_from_slice(part.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&a.bytes);
    for chunk in b64.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// `POST /me/messages/{id}/attachments` (files under 3 MB go this way).
pub fn add(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let a = parse_attachment(&req.json_body()?)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    let index = attach(mb, key, &a)?;
    let m = mb.message(key)?;
    let atts = mime::attachments(&m.mime);
    let info = atts.get(index).ok_or_else(GraphError::item_not_found)?;
    let mut body = attachment_json(&m.immutable_id, index, info, false);
    body["@odata.context"] = json!(context(req, ctx, "/messages/attachments/$entity"));
    Ok(json(StatusCode::CREATED, &body))
}

/// `POST /me/messages/{id}/attachments/createUploadSession`
pub fn create_session(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    id: &str,
) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let body = req.json_body()?;
    let item = body
        .get("AttachmentItem")
        .or_else(|| body.get("attachmentItem"))
        .ok_or_else(|| GraphError::bad_request("AttachmentItem is required."))?;
    let size = item.get("size").and_then(Value::as_u64).unwrap_or(0);
    if size == 0 || size > MAX_UPLOAD {
        return Err(GraphError::bad_request(
            "The attachment size must be between 1 byte and 150 MB.",
        ));
    }
    if size as usize > MAX_MESSAGE_BYTES {
        return Err(too_large());
    }
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    let token = ids::token(48);
    let expires = Utc::now() + Duration::hours(24);
    inner.uploads.sessions.insert(
        token.clone(),
        UploadSession {
            mailbox: ctx.mailbox,
            upn: ctx.upn.clone(),
            app: ctx.caller.client_id.clone(),
            message: key,
            name: item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("attachment")
                .to_string(),
            content_type: item
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_string(),
            is_inline: item
                .get("isInline")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content_id: item
                .get("contentId")
                .and_then(Value::as_str)
                .map(str::to_string),
            size,
            data: Vec::new(),
            expires,
        },
    );
    let host = req.base.trim_end_matches("/v1.0");
    let body = json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", req.base),
        "uploadUrl": format!("{host}/_upload/{token}"),
        "expirationDateTime": super::messages::ts(expires),
        "nextExpectedRanges": ["0-"],
    });
    Ok(json(StatusCode::CREATED, &body))
}

fn range_error(msg: &str) -> Response {
    GraphError::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", msg).into_response()
}

/// `bytes a-b/total`
fn parse_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `PUT /_upload/{token}`: one chunk of an upload session (pre-authenticated URL).
pub async fn put_chunk(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The upload host fails now and then like Graph itself (`--error-rate`), before taking
    // the chunk.
    if let Some(fault) = super::faults::inject(shared.faults()).await {
        return fault;
    }
    let Some((start, end, total)) = parse_range(&headers) else {
        return GraphError::bad_request("A Content-Range header 'bytes a-b/total' is required.")
            .into_response();
    };
    if body.len() > MAX_CHUNK {
        return GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ErrorMessageSizeExceeded",
            "A chunk may not exceed 4 MB.",
        )
        .into_response();
    }
    let mut inner = shared.lock();
    let inner = &mut *inner;
    let Some(s) = inner.uploads.sessions.get_mut(&token) else {
        return GraphError::item_not_found().into_response();
    };
    if s.expires <= Utc::now() {
        inner.uploads.sessions.remove(&token);
        return GraphError::item_not_found().into_response();
    }
    let expected = s.data.len() as u64;
    if start != expected
        || end < start
        || end - start + 1 != body.len() as u64
        || total != s.size
        || end >= total
    {
        return range_error(&format!("The next expected range starts at {expected}."));
    }
    if let Err(e) = shared.throttle.upload(&s.app, &s.upn, body.len() as u64) {
        return e.into_response();
    }
    s.data.extend_from_slice(&body);
    if (s.data.len() as u64) < s.size {
        let v = json!({"expirationDateTime": super::messages::ts(s.expires), "nextExpectedRanges": [format!("{}-", s.data.len())]});
        return json(StatusCode::OK, &v);
    }
    let Some(done) = inner.uploads.sessions.remove(&token) else {
        return GraphError::item_not_found().into_response();
    };
    let file = FileAttachment {
        name: done.name,
        content_type: done.content_type,
        bytes: done.data,
        is_inline: done.is_inline,
        content_id: done.content_id,
    };
    let result = inner.tenant.mailbox_mut(done.mailbox).and_then(|mb| {
        attach(mb, done.message, &file)
            .map(|i| (i, mb.message(done.message).map(|m| m.immutable_id.clone())))
    });
    match result {
        Ok((i, Ok(msg_id))) => {
            let mut resp = StatusCode::CREATED.into_response();
            let location = format!(
                "/v1.0/users('{}')/messages('{msg_id}')/attachments('{}')",
                done.upn,
                attachment_id(&msg_id, i)
            );
            if let Ok(v) = location.parse() {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Ok((_, Err(e))) | Err(e) => e.into_response(),
    }
}
