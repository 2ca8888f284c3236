//! The Graph side: request parsing (path segments, OData keys, query options, `Prefer`),
//! authentication, mailbox resolution, and routing to the handlers.
//!
//! Routing is by hand rather than through axum so that `$batch` can run inner requests through
//! exactly the same code, and so that Graph's case-insensitive segments and OData key syntax
//! (`mailFolders('inbox')`) work everywhere.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::{GraphError, GraphResult};
use super::oauth::AccessToken;
use super::{attachments, delta, folders, form, items, messages, send, Shared};

/// Parsed `Prefer` header values that change a response.
#[derive(Clone, Debug, Default)]
pub struct Prefer {
    pub immutable_ids: bool,
    pub max_page_size: Option<usize>,
    pub body_text: bool,
}

impl Prefer {
    /// Values combine in one header (`IdType="ImmutableId", odata.maxpagesize=200`) or repeat.
    pub fn parse(headers: &HeaderMap) -> Prefer {
        let mut p = Prefer::default();
        for v in headers.get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            for item in v.split(',') {
                let item = item.trim();
                let Some((k, val)) = item.split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "idtype" => p.immutable_ids = val.eq_ignore_ascii_case("ImmutableId"),
                    "odata.maxpagesize" => p.max_page_size = val.parse().ok().filter(|n| *n > 0),
                    "outlook.body-content-type" => p.body_text = val.eq_ignore_ascii_case("text"),
                    _ => {}
                }
            }
        }
        p
    }
}

/// One Graph request, from the wire or from inside a `$batch`.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    /// Path after `/v1.0`, as sent (still percent-encoded).
    pub raw_path: String,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `http://host/v1.0`, for absolute links.
    pub base: String,
    pub prefer: Prefer,
}

impl Req {
    pub fn new(method: Method, path_and_query: &str, headers: HeaderMap, body: Bytes) -> Req {
        let (raw_path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        Req {
            method,
            raw_path: raw_path.to_string(),
            segs: split_segments(raw_path),
            query: form::decode(query),
            prefer: Prefer::parse(&headers),
            headers,
            body,
            base: format!("http://{host}/v1.0"),
        }
    }

    /// A query option, with or without the `$` (Graph accepts both), case-insensitive.
    pub fn q(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    pub fn json_body(&self) -> GraphResult<Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            GraphError::bad_request(format!("Unable to read JSON request payload: {e}"))
        })
    }

    /// The link to the same resource with other query options (for `@odata.nextLink`).
    pub fn link_with(&self, query: &[(String, String)]) -> String {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    form::escape(k).replace("%24", "$"),
                    form::escape(v)
                )
            })
            .collect();
        if qs.is_empty() {
            format!("{}{}", self.base, self.raw_path)
        } else {
            format!("{}{}?{}", self.base, self.raw_path, qs.join("&"))
        }
    }
}

/// Splits a path into decoded segments; `name('key')` becomes `name`, `key`.
pub fn split_segments(raw_path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in raw_path.split('/').filter(|s| !s.is_empty()) {
        let s = form::unescape(s, false);
        match (s.find('('), s.ends_with(')')) {
            (Some(open), true) => {
                out.push(s[..open].to_string());
                let key = &s[open + 1..s.len() - 1];
                out.push(key.trim_matches('\'').to_string());
            }
            _ => out.push(s),
        }
    }
    out
}

/// Who is calling, and whose mailbox the path names.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub caller: AccessToken,
    pub mailbox: usize,
    pub upn: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Perm {
    Read,
    Write,
    Send,
}

impl Ctx {
    /// The delegated permission a route needs (`.Shared` when it is someone else's mailbox).
    pub fn need(&self, perm: Perm) -> GraphResult<()> {
        let own = self.caller.account.eq_ignore_ascii_case(&self.upn);
        let suffix = if own { "" } else { ".Shared" };
        let names: Vec<String> = match perm {
            Perm::Read => vec![
                format!("Mail.Read{suffix}"),
                format!("Mail.ReadWrite{suffix}"),
            ],
            Perm::Write => vec![format!("Mail.ReadWrite{suffix}")],
            Perm::Send => vec![format!("Mail.Send{suffix}")],
        };
        if self
            .caller
            .scopes
            .iter()
            .any(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s)))
        {
            Ok(())
        } else {
            Err(GraphError::access_denied())
        }
    }
}

/// JSON response with Graph's content type.
pub fn json(status: StatusCode, v: &Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    resp
}

pub fn no_content(status: StatusCode) -> Response {
    status.into_response()
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> GraphResult<AccessToken> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return Err(GraphError::unauthenticated("Access token is empty."));
    }
    let inner = shared.lock();
    let Some(t) = inner.oauth.access.get(token) else {
        // Real Graph tokens are JWTs; an unknown string fails JWT parsing first.
        return Err(GraphError::unauthenticated(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    };
    if t.expires <= chrono::Utc::now() {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(t.clone())
}

/// Resolves `/me` or `/users/{id|upn}` and checks the caller may open that mailbox.
fn resolve_user(
    shared: &Shared,
    caller: AccessToken,
    segs: &[String],
) -> GraphResult<(Ctx, usize)> {
    let first = segs
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let (who, used) = match first.as_str() {
        "me" => (caller.account.clone(), 1),
        "users" if segs.len() >= 2 => (segs[1].clone(), 2),
        _ => {
            return Err(GraphError::no_route(
                segs.first().map(String::as_str).unwrap_or(""),
            ))
        }
    };
    let inner = shared.lock();
    let idx = inner.tenant.mailbox_index(&who).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{who}' is invalid."),
        )
    })?;
    let mb = inner.tenant.mailbox(idx)?;
    let own = mb.upn.eq_ignore_ascii_case(&caller.account);
    if !own
        && !mb
            .full_access
            .contains(&caller.account.to_ascii_lowercase())
    {
        return Err(GraphError::access_denied());
    }
    let upn = mb.upn.clone();
    Ok((
        Ctx {
            caller,
            mailbox: idx,
            upn,
        },
        used,
    ))
}

/// Runs one Graph request (the `/v1.0/...` catch-all route and `$batch` both land here).
/// Boxed because `$batch` calls back into it.
pub fn dispatch(shared: Arc<Shared>, req: Req) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(async move {
        match dispatch_inner(&shared, &req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    })
}

async fn dispatch_inner(shared: &Arc<Shared>, req: &Req) -> GraphResult<Response> {
    if req.body.len() > super::MAX_REQUEST_BYTES {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ErrorMessageSizeExceeded",
            "The request body is larger than the 4 MB Graph accepts in one request.",
        ));
    }
    let caller = authenticate(shared, &req.headers)?;
    if req.segs.len() == 1 && req.segs[0].eq_ignore_ascii_case("$batch") {
        if req.method != Method::POST {
            return Err(GraphError::no_route("$batch"));
        }
        return super::batch::run(shared.clone(), req).await;
    }
    if req
        .segs
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("subscriptions"))
    {
        return subscription_route(shared, req, &caller).await;
    }
    let (ctx, used) = resolve_user(shared, caller, &req.segs)?;
    let label = super::throttle::route_label(req.method.as_str(), &req.segs);
    // Held until the response is built: the request occupies one of the mailbox's slots.
    let _permit = shared.throttle.admit(
        &ctx.caller.client_id,
        &ctx.upn,
        &label,
        req.body.len() as u64,
    )?;
    if let Some(fault) = super::faults::inject(shared.faults()).await {
        return Ok(fault);
    }
    let rest: Vec<String> = normalise_child_paths(&req.segs[used..]);
    let resp = route(shared, req, &ctx, &rest).await;
    // Whatever the request changed goes out to change-notification subscribers.
    super::notify::flush(shared);
    let resp = resp?;
    let out = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .unwrap_or(0);
    shared.throttle.bytes_out(&ctx.upn, out);
    Ok(resp)
}

/// `/subscriptions[/{id}]`: not under a user, owned by the calling application.
async fn subscription_route(
    shared: &Arc<Shared>,
    req: &Req,
    caller: &AccessToken,
) -> GraphResult<Response> {
    use super::subscriptions as subs;
    let id = req.segs.get(1).map(String::as_str);
    match (id, &req.method, req.segs.len()) {
        (None, &Method::POST, 1) => subs::create(shared, req, caller).await,
        (None, &Method::GET, 1) => subs::get(shared, req, caller, None),
        (Some(id), &Method::GET, 2) => subs::get(shared, req, caller, Some(id)),
        (Some(id), &Method::PATCH, 2) => subs::renew(shared, req, caller, id),
        (Some(id), &Method::DELETE, 2) => subs::delete(shared, caller, id),
        _ => Err(GraphError::no_route(&req.segs.join("/"))),
    }
}

/// `mailFolders/{a}/childFolders/{b}/…` addresses folder `b` directly: fold it to `mailFolders/{b}/…`.
fn normalise_child_paths(segs: &[String]) -> Vec<String> {
    let mut v = segs.to_vec();
    while v.len() >= 4
        && v[0].eq_ignore_ascii_case("mailfolders")
        && v[2].eq_ignore_ascii_case("childfolders")
    {
        v.drain(1..3);
    }
    // `mailFolders/{f}/messages/{id}/…` is the same item as `messages/{id}/…`.
    if v.len() >= 4
        && v[0].eq_ignore_ascii_case("mailfolders")
        && v[2].eq_ignore_ascii_case("messages")
        && !v[3].eq_ignore_ascii_case("delta")
        && !v[3].eq_ignore_ascii_case("$count")
    {
        v.drain(0..2);
    }
    v
}

async fn route(
    shared: &Arc<Shared>,
    req: &Req,
    ctx: &Ctx,
    segs: &[String],
) -> GraphResult<Response> {
    let lc: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lc.iter().map(String::as_str).collect();
    let m = &req.method;
    let id1 = || segs[1].as_str();
    match (l.as_slice(), m) {
        ([], &Method::GET) => folders::get_user(shared, req, ctx),
        (["mailfolders"], &Method::GET) => folders::list(shared, req, ctx, None),
        (["mailfolders"], &Method::POST) => folders::create(shared, req, ctx, None),
        (["mailfolders", "delta"], &Method::GET) => delta::folders(shared, req, ctx),
        (["mailfolders", _], &Method::GET) => folders::get(shared, req, ctx, id1()),
        (["mailfolders", _], &Method::PATCH) => folders::rename(shared, req, ctx, id1()),
        (["mailfolders", _], &Method::DELETE) => folders::delete(shared, ctx, id1()),
        (["mailfolders", _, "move"], &Method::POST) => {
            folders::move_folder(shared, req, ctx, id1())
        }
        (["mailfolders", _, "copy"], &Method::POST) => {
            folders::copy_folder(shared, req, ctx, id1())
        }
        (["mailfolders", _, "messages", "$count"], &Method::GET) => {
            items::count(shared, req, ctx, Some(id1()))
        }
        (["messages", "$count"], &Method::GET) => items::count(shared, req, ctx, None),
        (["mailfolders", _, "childfolders"], &Method::GET) => {
            folders::list(shared, req, ctx, Some(id1()))
        }
        (["mailfolders", _, "childfolders"], &Method::POST) => {
            folders::create(shared, req, ctx, Some(id1()))
        }
        (["mailfolders", _, "messages"], &Method::GET) => {
            items::list(shared, req, ctx, Some(id1()))
        }
        (["mailfolders", _, "messages"], &Method::POST) => {
            items::create(shared, req, ctx, Some(id1()))
        }
        (["mailfolders", _, "messages", "delta"], &Method::GET) => {
            delta::messages(shared, req, ctx, id1())
        }
        (["messages"], &Method::GET) => items::list(shared, req, ctx, None),
        (["messages"], &Method::POST) => items::create(shared, req, ctx, None),
        (["messages", _], &Method::GET) => messages::get(shared, req, ctx, id1()),
        (["messages", _], &Method::PATCH) => messages::patch(shared, req, ctx, id1()),
        (["messages", _], &Method::DELETE) => items::delete(shared, ctx, id1()),
        (["messages", _, "$value"], &Method::GET) => messages::value(shared, req, ctx, id1()),
        (["messages", _, "move"], &Method::POST) => {
            items::move_or_copy(shared, req, ctx, id1(), false)
        }
        (["messages", _, "copy"], &Method::POST) => {
            items::move_or_copy(shared, req, ctx, id1(), true)
        }
        (["messages", _, "permanentdelete"], &Method::POST) => {
            items::permanent_delete(shared, ctx, id1())
        }
        (["messages", _, "send"], &Method::POST) => items::send_draft(shared, ctx, id1()),
        (["messages", _, "attachments"], &Method::GET) => {
            attachments::list(shared, req, ctx, id1())
        }
        (["messages", _, "attachments"], &Method::POST) => {
            attachments::add(shared, req, ctx, id1())
        }
        (["messages", _, "attachments", "createuploadsession"], &Method::POST) => {
            attachments::create_session(shared, req, ctx, id1())
        }
        (["messages", _, "attachments", _], &Method::GET) => {
            attachments::get(shared, req, ctx, id1(), &segs[3])
        }
        (["sendmail"], &Method::POST) => send::send_mail(shared, req, ctx).await,
        _ => Err(unbuilt(segs, m)),
    }
}

/// A route the emulator does not serve: 501 for Graph operations it lacks, 400 otherwise.
fn unbuilt(segs: &[String], m: &Method) -> GraphError {
    let known = [
        "mailfolders",
        "messages",
        "sendmail",
        "childfolders",
        "attachments",
        "move",
        "copy",
        "send",
        "permanentdelete",
        "createuploadsession",
        "delta",
    ];
    let lc: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    if lc.first().is_some_and(|f| known.contains(&f.as_str())) {
        GraphError::not_implemented(&format!("{m} /{}", segs.join("/")))
    } else {
        GraphError::no_route(segs.first().map(String::as_str).unwrap_or(""))
    }
}
