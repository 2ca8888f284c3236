//! Message collection operations: list, create (MIME or JSON), delete, permanentDelete, move,
//! copy, and sending a draft.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::errors::{GraphError, GraphResult};
use super::folders::{context, page_size, skip};
use super::graph::{json, no_content, Ctx, Perm, Req};
use super::messages::{render, Render};
use super::state::{FolderKey, Mailbox, NewMessage};
use super::{compose, extprops, filter, mime, send, Shared};

/// Exchange Online's default maximum message size.
pub const MAX_MESSAGE_BYTES: usize = 35 * 1024 * 1024;

pub fn too_large() -> GraphError {
    GraphError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ErrorMessageSizeExceeded",
        "The message exceeds the maximum supported size.",
    )
}

/// `GET /me/messages` (whole mailbox) or `GET /me/mailFolders/{id}/messages`.
pub fn list(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    folder: Option<&str>,
) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let r = Render::from_req(req)?;
    let top = page_size(req, 10)?;
    let skip = skip(req)?;
    let received = filter::parse_received(req.q("filter"))?;
    let ascending = parse_orderby(req.q("orderby"))?;
    let count = wants_count(req)?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    // Walk the received-time index in the asked order: a page costs $skip + $top, not a sort
    // of the folder.
    let (index, ipm_only) = match folder {
        Some(f) => (&mb.folder(mb.resolve_folder(f)?)?.by_received, false),
        None => (&mb.by_received, true),
    };
    let root = mb.root();
    let matching = |ascending: bool| {
        let ordered: Box<dyn Iterator<Item = &(DateTime<Utc>, u64)>> = if ascending {
            Box::new(index.iter())
        } else {
            Box::new(index.iter().rev())
        };
        ordered
            .filter(|(t, _)| received.as_ref().is_none_or(|f| f.matches(*t)))
            .filter_map(|(_, k)| mb.messages.get(k))
            // `/me/messages` covers the folders below the root only.
            .filter(move |m| !ipm_only || mb.is_ancestor(root, m.folder))
    };
    let mut page = matching(ascending).skip(skip);
    let value: Vec<Value> = page
        .by_ref()
        .take(top)
        .map(|m| Value::Object(render(mb, m, &r)))
        .collect();
    let more = page.next().is_some();
    let total = count.then(|| matching(true).count());
    let suffix = match folder {
        Some(f) => format!("/mailFolders('{f}')/messages"),
        None => "/messages".into(),
    };
    let mut body = json!({"@odata.context": context(req, ctx, &suffix)});
    if let Some(n) = total {
        body["@odata.count"] = json!(n);
    }
    body["value"] = Value::Array(value);
    if more {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skip"))
            .cloned()
            .collect();
        q.push(("$skip".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = json!(req.link_with(&q));
    }
    Ok(json(StatusCode::OK, &body))
}

/// `GET /me/messages/$count` or `/me/mailFolders/{id}/messages/$count`: the number, as text.
pub fn count(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    folder: Option<&str>,
) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let received = filter::parse_received(req.q("filter"))?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let root = mb.root();
    let n = match folder {
        Some(f) => {
            let f = mb.folder(mb.resolve_folder(f)?)?;
            match &received {
                None => f.messages.len(),
                Some(r) => f.by_received.iter().filter(|(t, _)| r.matches(*t)).count(),
            }
        }
        None => mb
            .by_received
            .iter()
            .filter(|(t, _)| received.as_ref().is_none_or(|r| r.matches(*t)))
            .filter_map(|(_, k)| mb.messages.get(k))
            .filter(|m| mb.is_ancestor(root, m.folder))
            .count(),
    };
    let mut resp = Response::new(axum::body::Body::from(n.to_string()));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

/// `$count=true` asks for `@odata.count` (the number of matching items) in the response.
pub fn wants_count(req: &Req) -> GraphResult<bool> {
    match req.q("count") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(GraphError::bad_request(format!(
            "Invalid value '{v}' for the $count query option; expected true or false."
        ))),
    }
}

/// `$orderby=receivedDateTime [asc|desc]`; true means ascending. Default: newest first.
fn parse_orderby(v: Option<&str>) -> GraphResult<bool> {
    let Some(v) = v else { return Ok(false) };
    let parts: Vec<&str> = v.split_whitespace().collect();
    match parts.as_slice() {
        [p] if p.eq_ignore_ascii_case("receivedDateTime") => Ok(true),
        [p, d] if p.eq_ignore_ascii_case("receivedDateTime") => {
            match d.to_ascii_lowercase().as_str() {
                "asc" => Ok(true),
                "desc" => Ok(false),
                _ => Err(GraphError::bad_request(format!("Invalid $orderby '{v}'."))),
            }
        }
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidProperty",
            format!("The emulator sorts only by receivedDateTime, not '{v}'."),
        )),
    }
}

/// Fields a JSON create may carry.
const CREATE_FIELDS: &[&str] = &[
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "from",
    "sender",
    "replyTo",
    "importance",
    "internetMessageHeaders",
    "attachments",
    "categories",
    "isRead",
    "flag",
    "singleValueExtendedProperties",
];

/// `POST /me/messages` or `/me/mailFolders/{id}/messages`: from MIME (always a draft) or JSON.
pub fn create(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    folder: Option<&str>,
) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let r = Render {
        immutable: req.prefer.immutable_ids,
        body_text: req.prefer.body_text,
        ..Render::default()
    };
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let dest = match folder {
        Some(f) => mb.resolve_folder(f)?,
        None => mb.wk("drafts")?,
    };
    let key = if send::is_mime(req) {
        let raw = send::decode_mime_body(&req.body)?;
        if raw.len() > MAX_MESSAGE_BYTES {
            return Err(too_large());
        }
        let parsed = mime::parse(&raw).map_err(|_| mime_failed())?;
        // A message created from MIME is always a draft: isDraft is fixed at creation.
        mb.insert_message(dest, draft(raw, parsed, true))
    } else {
        create_json(mb, dest, &req.json_body()?)?
    };
    let m = mb.message(key)?;
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(req, ctx, "/messages/$entity")),
    );
    body.extend(render(mb, m, &r));
    Ok(json(StatusCode::CREATED, &Value::Object(body)))
}

fn mime_failed() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorMimeContentConversionFailed",
        "The MIME content could not be converted.",
    )
}

fn draft(raw: Vec<u8>, parsed: mime::Parsed, is_draft: bool) -> NewMessage {
    NewMessage {
        mime: raw.into(),
        parsed,
        is_read: true,
        is_draft,
        flag_status: "notFlagged".into(),
        categories: Vec::new(),
        received: Utc::now(),
    }
}

/// JSON create. `singleValueExtendedProperties` with PidTagMessageFlags (`Integer 0x0E07`)
/// decides read and draft state, which is how a non-draft copy can be made.
fn create_json(mb: &mut Mailbox, dest: FolderKey, v: &Value) -> GraphResult<u64> {
    let obj = v
        .as_object()
        .ok_or_else(|| GraphError::bad_request("The request body must be a JSON object."))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !k.starts_with('@') && !CREATE_FIELDS.contains(&k.as_str()))
    {
        return Err(GraphError::bad_request(format!(
            "The property '{k}' does not exist on type 'microsoft.graph.message' or cannot be set on create."
        )));
    }
    let domain = mb
        .upn
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let raw = compose::mime_from_json(v, None, &domain)?;
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(too_large());
    }
    let parsed = mime::parse(&raw).map_err(|_| mime_failed())?;
    let ext = match obj.get("singleValueExtendedProperties") {
        Some(p) => extprops::parse_patch(p)?,
        None => Vec::new(),
    };
    let flags = ext
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Integer 0xe07"))
        .and_then(|(_, v)| v.trim().parse::<u32>().ok());
    let mut nm = draft(raw, parsed, flags.is_none_or(|f| f & 0x8 != 0));
    if let Some(f) = flags {
        nm.is_read = f & 0x1 != 0;
    }
    if let Some(b) = obj.get("isRead").and_then(Value::as_bool) {
        nm.is_read = b;
    }
    if let Some(c) = obj.get("categories").and_then(Value::as_array) {
        nm.categories = c
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    if let Some(s) = obj
        .get("flag")
        .and_then(|f| f.get("flagStatus"))
        .and_then(Value::as_str)
    {
        nm.flag_status = s.to_string();
    }
    let key = mb.insert_message(dest, nm);
    if let Some(m) = mb.messages.get_mut(&key) {
        for (k, v) in ext
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("Integer 0xe07"))
        {
            m.ext.insert(k, v);
        }
    }
    Ok(key)
}

/// `DELETE /me/messages/{id}`: to Deleted Items; from Deleted Items, to the recoverable items.
pub fn delete(shared: &Arc<Shared>, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    let deleted = mb.wk("deleteditems")?;
    let dest = if mb.message(key)?.folder == deleted {
        mb.wk("recoverableitemsdeletions")?
    } else {
        deleted
    };
    mb.move_message(key, dest)?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /me/messages/{id}/permanentDelete`
pub fn permanent_delete(shared: &Arc<Shared>, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    mb.remove_message(key)?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `{"destinationId":"<id|wellKnownName>"}` → a folder that can hold mail.
pub fn destination(mb: &Mailbox, req: &Req) -> GraphResult<FolderKey> {
    let body = req.json_body()?;
    let dest = body
        .get("destinationId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidParameter",
                "The value of the parameter 'DestinationId' is empty.",
            )
        })?;
    let key = mb.resolve_folder(dest)?;
    if mb.wk("searchfolders").ok() == Some(key) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMoveCopyFailed",
            "The move or copy operation failed.",
        ));
    }
    Ok(key)
}

/// `POST /me/messages/{id}/move` or `/copy` → 201 with the message in its new place.
pub fn move_or_copy(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    id: &str,
    copy: bool,
) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let r = Render {
        immutable: req.prefer.immutable_ids,
        body_text: req.prefer.body_text,
        ..Render::default()
    };
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_message(id)?;
    let dest = destination(mb, req)?;
    let key = if copy {
        mb.copy_message(key, dest)?
    } else {
        mb.move_message(key, dest)?;
        key
    };
    let m = mb.message(key)?;
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(req, ctx, "/messages/$entity")),
    );
    body.extend(render(mb, m, &r));
    Ok(json(StatusCode::CREATED, &Value::Object(body)))
}

/// `POST /me/messages/{id}/send`: the draft goes out and becomes the Sent Items item.
pub fn send_draft(shared: &Arc<Shared>, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Send)?;
    let mut inner = shared.lock();
    let tenant = &mut inner.tenant;
    let (key, raw) = {
        let mb = tenant.mailbox(ctx.mailbox)?;
        let key = mb.resolve_message(id)?;
        let m = mb.message(key)?;
        if !m.is_draft {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidOperation",
                "Only draft messages can be sent.",
            ));
        }
        (key, m.mime.to_vec())
    };
    shared
        .throttle
        .check_send(&ctx.upn, send::recipient_count(&raw))?;
    let sent_raw = send::submit(tenant, ctx.mailbox, raw, false)?;
    let mb = tenant.mailbox_mut(ctx.mailbox)?;
    let sent = mb.wk("sentitems")?;
    let parsed = mime::parse(&sent_raw).map_err(|_| mime_failed())?;
    if let Some(m) = mb.messages.get_mut(&key) {
        m.mime = sent_raw.into();
        m.parsed = Arc::new(parsed);
        m.is_draft = false;
        m.is_read = true;
        m.received = Utc::now();
    }
    mb.move_message(key, sent)?;
    Ok(no_content(StatusCode::ACCEPTED))
}
