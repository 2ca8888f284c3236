//! `mailFolders`: list (paged), get by id or well-known name, childFolders.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::errors::{GraphError, GraphResult};
use super::graph::{json, Ctx, Perm, Req};
use super::state::{Folder, FolderKey, Mailbox, MsgKey};
use super::{form, Shared};

/// A folder in v1.0's shape (no `wellKnownName`: that field exists only in beta).
pub fn folder_json(mb: &Mailbox, f: &Folder) -> Value {
    let parent_id = f
        .parent
        .and_then(|p| mb.folders.get(&p))
        .map(|p| p.id.clone())
        // The roots' parent is an internal folder Graph never lists; any stable id will do.
        .unwrap_or_else(|| mb.user_id.clone());
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": parent_id,
        "childFolderCount": mb.children(f.key).len(),
        "unreadItemCount": mb.unread_count(f),
        "totalItemCount": f.messages.len(),
        "isHidden": f.hidden,
    })
}

pub fn context(req: &Req, ctx: &Ctx, suffix: &str) -> String {
    format!(
        "{}/$metadata#users('{}'){suffix}",
        req.base,
        form::escape(&ctx.upn)
    )
}

/// `$top` for a list: 1–1000, default 10.
pub fn page_size(req: &Req, default: usize) -> GraphResult<usize> {
    match req.q("top") {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(GraphError::bad_request(format!(
                "Invalid value '{t}' for the $top query option; it must be between 1 and 1000."
            ))),
        },
    }
}

pub fn skip(req: &Req) -> GraphResult<usize> {
    match req.q("skip") {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| GraphError::bad_request(format!("Invalid value '{s}' for $skip."))),
    }
}

/// A page of a collection with `@odata.nextLink` (`$skip`) while more remain.
pub fn page(req: &Req, context: String, items: Vec<Value>, top: usize, skip: usize) -> Value {
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut body = json!({"@odata.context": context, "value": value});
    if skip + top < total {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skip"))
            .cloned()
            .collect();
        q.push(("$skip".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = json!(req.link_with(&q));
    }
    body
}

/// `GET /me/mailFolders` (parent = root) or `GET /me/mailFolders/{id}/childFolders`.
pub fn list(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    parent: Option<&str>,
) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let top = page_size(req, 10)?;
    let skip = skip(req)?;
    let hidden = req
        .q("includeHiddenFolders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let parent_key = match parent {
        Some(p) => mb.resolve_folder(p)?,
        None => mb.root(),
    };
    let items: Vec<Value> = mb
        .children(parent_key)
        .into_iter()
        .filter(|f| hidden || !f.hidden)
        .map(|f| folder_json(mb, f))
        .collect();
    let suffix = match parent {
        Some(p) => format!("/mailFolders('{p}')/childFolders"),
        None => "/mailFolders".to_string(),
    };
    let total = items.len();
    let body = page(req, context(req, ctx, &suffix), items, top, skip);
    Ok(json(StatusCode::OK, &with_count(body, req, total)?))
}

/// `GET /me/mailFolders/{id|wellKnownName}`
pub fn get(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let f = mb.folder(mb.resolve_folder(id)?)?;
    let mut body = folder_json(mb, f);
    body["@odata.context"] = json!(context(req, ctx, "/mailFolders/$entity"));
    Ok(json(StatusCode::OK, &body))
}

/// `GET /me`: the signed-in user's profile (how a client learns its primary address).
pub fn get_user(shared: &Arc<Shared>, req: &Req, ctx: &Ctx) -> GraphResult<Response> {
    let inner = shared.lock();
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let body = json!({
        "@odata.context": format!("{}/$metadata#users/$entity", req.base),
        "id": mb.user_id,
        "displayName": mb.display_name,
        "mail": mb.upn,
        "userPrincipalName": mb.upn,
    });
    Ok(json(StatusCode::OK, &body))
}

fn folder_exists() -> GraphError {
    GraphError::new(
        StatusCode::CONFLICT,
        "ErrorFolderExists",
        "A folder with the specified name already exists.",
    )
}

/// The `displayName` of a create or rename body.
fn display_name(req: &Req) -> GraphResult<Option<String>> {
    let body = req.json_body()?;
    let obj = body
        .as_object()
        .ok_or_else(|| GraphError::bad_request("The request body must be a JSON object."))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "displayName" | "isHidden") && !k.starts_with('@') {
            return Err(GraphError::bad_request(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.mailFolder' or cannot be set."
            )));
        }
    }
    match obj.get("displayName") {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The folder's display name must be a non-empty string.",
        )),
    }
}

/// Default folders cannot be renamed, moved or deleted *(unverified: the exact codes Exchange
/// returns vary; these are the EWS names)*.
fn distinguished(code: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        code,
        "The operation is not allowed on a distinguished folder.",
    )
}

/// `POST /me/mailFolders` or `POST /me/mailFolders/{id}/childFolders` `{"displayName":"X"}`.
pub fn create(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    parent: Option<&str>,
) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let name = display_name(req)?.ok_or_else(|| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "A displayName is required to create a folder.",
        )
    })?;
    let hidden = req
        .json_body()?
        .get("isHidden")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let parent_key = match parent {
        Some(p) => mb.resolve_folder(p)?,
        None => mb.root(),
    };
    if mb.child_named(parent_key, &name).is_some() {
        return Err(folder_exists());
    }
    let key = mb.add_folder(Some(parent_key), &name, None, hidden);
    let mut body = folder_json(mb, mb.folder(key)?);
    body["@odata.context"] = json!(context(req, ctx, "/mailFolders/$entity"));
    Ok(json(StatusCode::CREATED, &body))
}

/// `PATCH /me/mailFolders/{id}` `{"displayName":"Y"}`
pub fn rename(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let name = display_name(req)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_folder(id)?;
    let f = mb.folder(key)?;
    if let Some(n) = &name {
        if f.well_known.is_some() {
            return Err(distinguished("ErrorCannotRenameDistinguishedFolder"));
        }
        let parent = f.parent.unwrap_or(0);
        if mb.child_named(parent, n).is_some_and(|k| k != key) {
            return Err(folder_exists());
        }
        mb.update_folder(key, Some(n), None);
    }
    let mut body = folder_json(mb, mb.folder(key)?);
    body["@odata.context"] = json!(context(req, ctx, "/mailFolders/$entity"));
    Ok(json(StatusCode::OK, &body))
}

/// `DELETE /me/mailFolders/{id}`: into Deleted Items; a folder already there goes for good.
pub fn delete(shared: &Arc<Shared>, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_folder(id)?;
    let f = mb.folder(key)?;
    if f.well_known.is_some() {
        return Err(distinguished("ErrorDeleteDistinguishedFolder"));
    }
    let deleted = mb.wk("deleteditems")?;
    if mb.is_ancestor(deleted, key) {
        mb.remove_folder(key);
    } else {
        let name = unique_name(mb, deleted, &f.display_name.clone());
        mb.update_folder(key, Some(&name), Some(deleted));
    }
    Ok(super::graph::no_content(StatusCode::NO_CONTENT))
}

/// Exchange keeps both when a same-named folder is deleted twice: the second gets a suffix.
fn unique_name(mb: &Mailbox, parent: u64, name: &str) -> String {
    let mut candidate = name.to_string();
    let mut n = 1;
    while mb.child_named(parent, &candidate).is_some() {
        candidate = format!("{name} {n}");
        n += 1;
    }
    candidate
}

/// `POST /me/mailFolders/{id}/move` `{"destinationId":"…"}` → 201 with the folder.
pub fn move_folder(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_folder(id)?;
    let dest = super::items::destination(mb, req)?;
    let f = mb.folder(key)?;
    if f.well_known.is_some() {
        return Err(distinguished("ErrorMoveDistinguishedFolder"));
    }
    if mb.is_ancestor(key, dest) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMoveCopyFailed",
            "A folder cannot be moved into itself or one of its subfolders.",
        ));
    }
    if mb
        .child_named(dest, &f.display_name)
        .is_some_and(|k| k != key)
    {
        return Err(folder_exists());
    }
    mb.update_folder(key, None, Some(dest));
    let mut body = folder_json(mb, mb.folder(key)?);
    body["@odata.context"] = json!(context(req, ctx, "/mailFolders/$entity"));
    Ok(json(StatusCode::CREATED, &body))
}

/// `POST /me/mailFolders/{id}/copy` `{"destinationId":"…"}` → 201 with the new folder: a copy
/// of the folder, its subfolders and their messages, all with new ids.
pub fn copy_folder(shared: &Arc<Shared>, req: &Req, ctx: &Ctx, id: &str) -> GraphResult<Response> {
    ctx.need(Perm::Write)?;
    let mut inner = shared.lock();
    let mb = inner.tenant.mailbox_mut(ctx.mailbox)?;
    let key = mb.resolve_folder(id)?;
    let dest = super::items::destination(mb, req)?;
    let f = mb.folder(key)?;
    if f.well_known.is_some() {
        return Err(distinguished("ErrorCopyDistinguishedFolder"));
    }
    if mb.is_ancestor(key, dest) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMoveCopyFailed",
            "A folder cannot be copied into itself or one of its subfolders.",
        ));
    }
    if mb.child_named(dest, &f.display_name).is_some() {
        return Err(folder_exists());
    }
    let copy = copy_tree(mb, key, dest)?;
    let mut body = folder_json(mb, mb.folder(copy)?);
    body["@odata.context"] = json!(context(req, ctx, "/mailFolders/$entity"));
    Ok(json(StatusCode::CREATED, &body))
}

fn copy_tree(mb: &mut Mailbox, key: FolderKey, dest: FolderKey) -> GraphResult<FolderKey> {
    let f = mb.folder(key)?;
    let (name, hidden) = (f.display_name.clone(), f.hidden);
    let messages: Vec<MsgKey> = f.messages.iter().copied().collect();
    let children: Vec<FolderKey> = mb.children(key).iter().map(|c| c.key).collect();
    let copy = mb.add_folder(Some(dest), &name, None, hidden);
    for m in messages {
        mb.copy_message(m, copy)?;
    }
    for c in children {
        copy_tree(mb, c, copy)?;
    }
    Ok(copy)
}

/// `$count=true` on a folder list.
fn with_count(mut body: Value, req: &Req, total: usize) -> GraphResult<Value> {
    if super::items::wants_count(req)? {
        body["@odata.count"] = json!(total);
    }
    Ok(body)
}
