//! Message delta per folder: `GET /me/mailFolders/{id}/messages/delta`.
//!
//! The first round lists the folder; its pages are linked by `$skiptoken`, and the last page
//! carries a `$deltatoken` meaning "changes after sequence N". Tokens are opaque keys into a
//! server-side table, so expiring them all (a control endpoint) is clearing that table, and an
//! unknown token is `410 syncStateNotFound`.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Utc;

use super::delta_tokens::TokenStore;
use serde_json::{json, Value};

use super::errors::{GraphError, GraphResult};
use super::graph::{json, Ctx, Perm, Req};
use super::messages::{parse_select, render, Render};
use super::state::{FolderKey, Mailbox, MsgKey};
use super::{extprops, filter, ids, Shared};

/// Page size when the client sends no `Prefer: odata.maxpagesize` *(unverified: Graph's
/// documentation does not state the default for message delta)*.
const DEFAULT_PAGE: usize = 10;
/// Largest page the emulator hands out whatever the client asks *(unverified)*.
const MAX_PAGE: usize = 1000;
/// A first round restricted by `$filter=receivedDateTime ge …` returns at most this many items.
const FILTERED_CAP: usize = 5000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

/// Options given on the first call; Graph encodes them into the links.
#[derive(Clone, Debug, Default)]
struct Opts {
    select: Option<Vec<&'static str>>,
    expand_ext: Option<Vec<String>>,
    change_type: Option<ChangeType>,
    top: Option<usize>,
}

#[derive(Clone, Debug)]
enum Item {
    Upsert(MsgKey),
    /// Boxed: a first round holds one `Item` per message, most of them `Upsert`.
    Removed(Box<(String, String)>),
    Folder(FolderKey),
    FolderRemoved(String),
}

#[derive(Clone, Debug)]
enum Kind {
    /// A page inside a round: the round's items and where the next page starts.
    Skip {
        items: Arc<Vec<Item>>,
        offset: usize,
        upto: u64,
    },
    /// The end of a round: report changes after `since`.
    Delta { since: u64 },
}

#[derive(Clone, Debug)]
pub struct Cursor {
    mailbox: usize,
    /// The folder whose messages are tracked; `None` for folder delta.
    folder: Option<FolderKey>,
    kind: Kind,
    opts: Opts,
}

/// Every live skip and delta token (message and folder delta alike).
#[derive(Debug, Default)]
pub struct DeltaStore {
    tokens: TokenStore<Cursor>,
}

impl DeltaStore {
    /// Forgets every token: the next use of any of them answers `410 syncStateNotFound`.
    pub fn expire_all(&mut self) -> usize {
        self.tokens.clear()
    }

    pub fn live(&self) -> usize {
        self.tokens.len()
    }
}

fn parse_opts(req: &Req, messages: bool) -> GraphResult<Opts> {
    let change_type = match req.q("changeType") {
        None => None,
        Some("created") => Some(ChangeType::Created),
        Some("updated") => Some(ChangeType::Updated),
        Some("deleted") => Some(ChangeType::Deleted),
        Some(other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid changeType '{other}': expected created, updated or deleted."
            )))
        }
    };
    let top = match req.q("top") {
        None => None,
        Some(t) => Some(
            t.parse()
                .map_err(|_| GraphError::bad_request("Invalid $top."))?,
        ),
    };
    Ok(Opts {
        // Folder delta returns whole folders: a `$select` there is not applied.
        select: if messages {
            parse_select(req.q("select"))?
        } else {
            None
        },
        expand_ext: extprops::parse_expand(req.q("expand"))?,
        change_type,
        top,
    })
}

/// The whole folder for a first round, newest first (optionally filtered on receivedDateTime).
fn initial_items(mb: &Mailbox, folder: FolderKey, since: Option<&filter::Received>) -> Vec<Item> {
    let Some(f) = mb.folders.get(&folder) else {
        return Vec::new();
    };
    let cap = if since.is_some() {
        FILTERED_CAP
    } else {
        usize::MAX
    };
    f.by_received
        .iter()
        .rev()
        .filter(|(t, _)| since.is_none_or(|s| s.matches(*t)))
        .take(cap)
        .map(|(_, k)| Item::Upsert(*k))
        .collect()
}

/// What changed in a folder after `since`: tombstones first, then created/updated items.
/// Reads only the changes (the mailbox's change index), not the folder.
fn changes(
    mb: &Mailbox,
    folder: FolderKey,
    since: u64,
    ct: Option<ChangeType>,
    immutable: bool,
) -> Vec<Item> {
    let mut out = Vec::new();
    if ct.is_none_or(|c| c == ChangeType::Deleted) {
        for t in mb.tombstones_after(since).filter(|t| t.folder == folder) {
            // An item that left and came back keeps its immutable id: it is not removed.
            let back = immutable
                && mb
                    .msg_by_id
                    .get(&t.immutable_id)
                    .and_then(|k| mb.messages.get(k))
                    .is_some_and(|m| m.folder == folder);
            if !back {
                out.push(Item::Removed(Box::new((
                    t.rest_id.clone(),
                    t.immutable_id.clone(),
                ))));
            }
        }
    }
    out.extend(
        mb.changed_after(since)
            .filter(|m| m.folder == folder)
            .filter(|m| match ct {
                None => true,
                Some(ChangeType::Created) => m.entered_seq > since,
                Some(ChangeType::Updated) => m.entered_seq <= since,
                Some(ChangeType::Deleted) => false,
            })
            .map(|m| Item::Upsert(m.key)),
    );
    out
}

fn render_item(mb: &Mailbox, item: &Item, r: &Render) -> Option<Value> {
    match item {
        Item::Removed(ids) => Some(json!({
            "@odata.type": "#microsoft.graph.message",
            "id": if r.immutable { &ids.1 } else { &ids.0 },
            "@removed": {"reason": "deleted"},
        })),
        Item::Upsert(k) => {
            let m = mb.messages.get(k)?;
            let mut o = serde_json::Map::new();
            o.insert("@odata.type".into(), json!("#microsoft.graph.message"));
            o.extend(render(mb, m, r));
            Some(Value::Object(o))
        }
        Item::Folder(k) => {
            let f = mb.folders.get(k)?;
            let mut v = super::folders::folder_json(mb, f);
            v["@odata.type"] = json!("#microsoft.graph.mailFolder");
            Some(v)
        }
        Item::FolderRemoved(id) => Some(json!({
            "@odata.type": "#microsoft.graph.mailFolder",
            "id": id,
            "@removed": {"reason": "deleted"},
        })),
    }
}

/// Every folder below the root, parents before children.
fn all_folders(mb: &Mailbox) -> Vec<FolderKey> {
    let mut out = Vec::new();
    let mut stack = vec![mb.root()];
    while let Some(k) = stack.pop() {
        let kids = mb.children(k);
        for c in kids.iter().rev() {
            stack.push(c.key);
        }
        if k != mb.root() {
            out.push(k);
        }
    }
    out
}

fn folder_changes(mb: &Mailbox, since: u64) -> Vec<Item> {
    let mut out: Vec<Item> = mb
        .folder_tombstones
        .iter()
        .filter(|(seq, _)| *seq > since)
        .map(|(_, id)| Item::FolderRemoved(id.clone()))
        .collect();
    out.extend(
        all_folders(mb)
            .into_iter()
            .filter(|k| mb.folders.get(k).is_some_and(|f| f.seq > since))
            .map(Item::Folder),
    );
    out
}

/// `GET /me/mailFolders/{id}/messages/delta`
pub fn messages(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    folder_id: &str,
) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    let folder = {
        let inner = shared.lock();
        inner
            .tenant
            .mailbox(ctx.mailbox)?
            .resolve_folder(folder_id)?
    };
    run(shared, req, ctx, Some(folder))
}

/// `GET /me/mailFolders/delta`: the folder hierarchy as a flat list *(unverified: whether hidden
/// folders are included; they are, with `isHidden`)*.
pub fn folders(shared: &Arc<Shared>, req: &Req, ctx: &Ctx) -> GraphResult<Response> {
    ctx.need(Perm::Read)?;
    run(shared, req, ctx, None)
}

/// The first round's items, or the changes after a delta token.
fn round(
    mb: &Mailbox,
    req: &Req,
    scope: Option<FolderKey>,
    since: Option<u64>,
    opts: &Opts,
) -> GraphResult<Vec<Item>> {
    Ok(match (scope, since) {
        (None, None) => all_folders(mb).into_iter().map(Item::Folder).collect(),
        (None, Some(s)) => folder_changes(mb, s),
        (Some(f), Some(s)) => changes(mb, f, s, opts.change_type, req.prefer.immutable_ids),
        (Some(f), None) => {
            let received = filter::parse_received(req.q("filter"))?;
            // A first round with changeType=deleted has nothing to list yet.
            if opts.change_type == Some(ChangeType::Deleted) {
                Vec::new()
            } else {
                initial_items(mb, f, received.as_ref())
            }
        }
    })
}

fn run(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    scope: Option<FolderKey>,
) -> GraphResult<Response> {
    let mut inner = shared.lock();
    let inner = &mut *inner;
    inner
        .tenant
        .mailbox_mut(ctx.mailbox)?
        .prune_tombstones(Utc::now());
    let mb = inner.tenant.mailbox(ctx.mailbox)?;
    let lookup = |tok: &str| -> GraphResult<Cursor> {
        let c = inner
            .delta
            .tokens
            .get(tok)
            .cloned()
            .ok_or_else(GraphError::sync_state_not_found)?;
        if c.mailbox != ctx.mailbox || c.folder != scope {
            return Err(GraphError::sync_state_not_found());
        }
        Ok(c)
    };
    let (items, offset, upto, opts) = if let Some(tok) = req.q("skiptoken") {
        let c = lookup(tok)?;
        match c.kind {
            Kind::Skip {
                items,
                offset,
                upto,
            } => (items, offset, upto, c.opts),
            Kind::Delta { .. } => return Err(GraphError::sync_state_not_found()),
        }
    } else if let Some(tok) = req.q("deltatoken") {
        let c = lookup(tok)?;
        let Kind::Delta { since } = c.kind else {
            return Err(GraphError::sync_state_not_found());
        };
        // Tombstones this token would need are gone: it cannot be answered completely.
        if !mb.can_replay(since) {
            return Err(GraphError::sync_state_not_found());
        }
        let items = round(mb, req, scope, Some(since), &c.opts)?;
        (Arc::new(items), 0, mb.seq, c.opts)
    } else {
        let opts = parse_opts(req, scope.is_some())?;
        let items = round(mb, req, scope, None, &opts)?;
        (Arc::new(items), 0, mb.seq, opts)
    };
    let size = req
        .prefer
        .max_page_size
        .or(opts.top)
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let r = Render {
        immutable: req.prefer.immutable_ids,
        body_text: req.prefer.body_text,
        select: opts.select.clone(),
        expand_ext: opts.expand_ext.clone(),
    };
    let end = (offset + size).min(items.len());
    let value: Vec<Value> = items
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| render_item(mb, i, &r))
        .collect();
    let token = ids::token(48);
    let (link_name, query_name, kind) = if end < items.len() {
        let kind = Kind::Skip {
            items: items.clone(),
            offset: end,
            upto,
        };
        ("@odata.nextLink", "$skiptoken", kind)
    } else {
        (
            "@odata.deltaLink",
            "$deltatoken",
            Kind::Delta { since: upto },
        )
    };
    let skip = matches!(kind, Kind::Skip { .. });
    inner.delta.tokens.insert(
        token.clone(),
        skip,
        Cursor {
            mailbox: ctx.mailbox,
            folder: scope,
            kind,
            opts,
        },
    );
    let collection = if scope.is_some() {
        "message"
    } else {
        "mailFolder"
    };
    let body = json!({
        "@odata.context": format!("{}/$metadata#Collection({collection})", req.base),
        link_name: req.link_with(&[(query_name.to_string(), token)]),
        "value": value,
    });
    let mut resp = json(StatusCode::OK, &body);
    if let Some(n) = req.prefer.max_page_size {
        if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={n}")) {
            resp.headers_mut().insert("preference-applied", v);
        }
    }
    Ok(resp)
}
