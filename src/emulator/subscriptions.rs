//! Change notifications: `/subscriptions` create (with the validation handshake), get, list,
//! renew (PATCH) and delete. Delivery of the notifications is in `notify.rs`.
//!
//! The emulator accepts `http://` notification URLs so tests can run a local receiver; Graph
//! itself requires HTTPS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::http::{header, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::changes::EventKind;
use super::errors::{GraphError, GraphResult};
use super::graph::{json, no_content, split_segments, Ctx, Perm, Req};
use super::oauth::AccessToken;
use super::state::FolderKey;
use super::{form, ids, Shared};

/// Longest lifetime of a subscription to Outlook messages: under 7 days.
const MAX_MINUTES: i64 = 10_080;
/// Time the notification endpoint has to answer the validation request.
const VALIDATION_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Longest `clientState` Graph accepts.
const MAX_CLIENT_STATE: usize = 128;

#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub app: String,
    pub creator: String,
    pub mailbox: usize,
    /// `None`: every message of the mailbox (`me/messages`).
    pub folder: Option<FolderKey>,
    pub resource: String,
    pub change_types: Vec<EventKind>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expires: DateTime<Utc>,
    /// Created with `Prefer: IdType="ImmutableId"`: notifications carry immutable ids.
    pub immutable: bool,
}

impl Subscription {
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires > now
    }

    fn change_type(&self) -> String {
        let v: Vec<&str> = self.change_types.iter().map(|k| k.as_str()).collect();
        v.join(",")
    }

    fn to_json(&self, base: &str) -> Value {
        json!({
            "@odata.context": format!("{base}/$metadata#subscriptions/$entity"),
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app,
            "changeType": self.change_type(),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "creatorId": self.creator,
            "includeResourceData": false,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationQueryOptions": null,
            "notificationUrlAppId": null,
        })
    }
}

#[derive(Debug, Default)]
pub struct Subscriptions {
    pub by_id: HashMap<String, Subscription>,
}

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn not_found() -> GraphError {
    // *(unverified: the code Graph uses for an unknown or foreign subscription id)*
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

fn parse_change_types(v: Option<&Value>) -> GraphResult<Vec<EventKind>> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("changeType is required."))?;
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let kind = match part {
            "created" => EventKind::Created,
            "updated" => EventKind::Updated,
            "deleted" => EventKind::Deleted,
            other => return Err(invalid(format!("'{other}' is not a valid changeType."))),
        };
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

/// `expirationDateTime`: in the future, and less than 10,080 minutes away.
fn parse_expiry(v: Option<&Value>, now: DateTime<Utc>) -> GraphResult<DateTime<Utc>> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("expirationDateTime is required."))?;
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|_| invalid(format!("'{s}' is not a valid expirationDateTime.")))?
        .with_timezone(&Utc);
    if t <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    if t > now + Duration::minutes(MAX_MINUTES) {
        // *(unverified: Graph's exact wording for an over-long expiry)*
        return Err(invalid(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    Ok(t)
}

/// `me/mailFolders('inbox')/messages`, `users/{id}/messages`, … → (mailbox, folder).
fn parse_resource(
    shared: &Shared,
    caller: &AccessToken,
    resource: &str,
) -> GraphResult<(Ctx, Option<FolderKey>)> {
    let segs = split_segments(resource.trim_start_matches('/'));
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let (who, rest) = match lower.first().map(String::as_str) {
        Some("me") => (caller.account.clone(), &segs[1..]),
        Some("users") if segs.len() > 2 => (segs[1].clone(), &segs[2..]),
        _ => return Err(invalid(format!("Resource '{resource}' is not supported."))),
    };
    let rl: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let folder = match rl.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["messages"] => None,
        ["mailfolders", _, "messages"] => Some(rest[1].clone()),
        _ => return Err(invalid(format!("Resource '{resource}' is not supported."))),
    };
    let inner = shared.lock();
    let idx = inner
        .tenant
        .mailbox_index(&who)
        .ok_or_else(|| invalid(format!("Resource '{resource}' names no mailbox.")))?;
    let mb = inner.tenant.mailbox(idx)?;
    let own = mb.upn.eq_ignore_ascii_case(&caller.account);
    if !own
        && !mb
            .full_access
            .contains(&caller.account.to_ascii_lowercase())
    {
        return Err(GraphError::access_denied());
    }
    let folder = match folder {
        Some(f) => Some(mb.resolve_folder(&f)?),
        None => None,
    };
    let ctx = Ctx {
        caller: caller.clone(),
        mailbox: idx,
        upn: mb.upn.clone(),
    };
    Ok((ctx, folder))
}

/// The client notifications and validation requests go out with.
pub fn http_client() -> GraphResult<reqwest::Client> {
    // Whoever embeds the emulator may not have chosen a TLS provider yet: the house one is ring.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            GraphError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UnknownError",
                e.to_string(),
            )
        })
}

fn validation_failed(message: &str) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
}

/// `POST notificationUrl?validationToken=…`; the endpoint must echo the token as `text/plain`
/// with 200 within 10 seconds.
async fn validate(client: &reqwest::Client, url: &str) -> GraphResult<()> {
    let token = format!("Validation: {}", ids::token(24));
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}validationToken={}", form::escape(&token));
    let failed = || {
        validation_failed(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let resp = client
        .post(&full)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(VALIDATION_TIMEOUT)
        .send()
        .await
        .map_err(|_| failed())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(failed());
    }
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
    let body = resp.text().await.map_err(|_| failed())?;
    // *(unverified: whether Graph insists on the text/plain content type, as documented)*
    if !plain || body != token {
        return Err(validation_failed(
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

fn str_field(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_string)
}

/// `POST /subscriptions`
pub async fn create(
    shared: &Arc<Shared>,
    req: &Req,
    caller: &AccessToken,
) -> GraphResult<Response> {
    let body = req.json_body()?;
    let now = Utc::now();
    let change_types = parse_change_types(body.get("changeType"))?;
    let expires = parse_expiry(body.get("expirationDateTime"), now)?;
    let url = str_field(&body, "notificationUrl")
        .ok_or_else(|| invalid("notificationUrl is required."))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            "The notificationUrl must be an absolute HTTPS URL.",
        ));
    }
    let resource = str_field(&body, "resource").ok_or_else(|| invalid("resource is required."))?;
    let client_state = str_field(&body, "clientState");
    if client_state
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CLIENT_STATE)
    {
        return Err(invalid("clientState must be at most 128 characters."));
    }
    let (ctx, folder) = parse_resource(shared, caller, &resource)?;
    ctx.need(Perm::Read)?;
    validate(&http_client()?, &url).await?;
    let sub = Subscription {
        id: ids::guid(),
        app: caller.client_id.clone(),
        creator: caller.account.clone(),
        mailbox: ctx.mailbox,
        folder,
        resource,
        change_types,
        notification_url: url,
        lifecycle_url: str_field(&body, "lifecycleNotificationUrl"),
        client_state,
        expires,
        immutable: req.prefer.immutable_ids,
    };
    let out = sub.to_json(&req.base);
    let mut inner = shared.lock();
    if let Ok(mb) = inner.tenant.mailbox_mut(ctx.mailbox) {
        mb.record_events = true;
    }
    inner.subs.by_id.insert(sub.id.clone(), sub);
    Ok(json(StatusCode::CREATED, &out))
}

/// The caller's application's subscription with this id (others' are invisible).
fn owned<'a>(
    subs: &'a mut Subscriptions,
    id: &str,
    caller: &AccessToken,
) -> GraphResult<&'a mut Subscription> {
    subs.by_id
        .get_mut(id)
        .filter(|s| s.app == caller.client_id && s.live(Utc::now()))
        .ok_or_else(not_found)
}

/// `GET /subscriptions` and `GET /subscriptions/{id}`
pub fn get(
    shared: &Arc<Shared>,
    req: &Req,
    caller: &AccessToken,
    id: Option<&str>,
) -> GraphResult<Response> {
    let mut inner = shared.lock();
    if let Some(id) = id {
        let s = owned(&mut inner.subs, id, caller)?;
        return Ok(json(StatusCode::OK, &s.to_json(&req.base)));
    }
    let now = Utc::now();
    let mut list: Vec<&Subscription> = inner
        .subs
        .by_id
        .values()
        .filter(|s| s.app == caller.client_id && s.live(now))
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let value: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut v = s.to_json(&req.base);
            if let Some(o) = v.as_object_mut() {
                o.remove("@odata.context");
            }
            v
        })
        .collect();
    let body =
        json!({"@odata.context": format!("{}/$metadata#subscriptions", req.base), "value": value});
    Ok(json(StatusCode::OK, &body))
}

/// `PATCH /subscriptions/{id}` `{"expirationDateTime":"…"}`: renew.
pub fn renew(
    shared: &Arc<Shared>,
    req: &Req,
    caller: &AccessToken,
    id: &str,
) -> GraphResult<Response> {
    let body = req.json_body()?;
    let expires = parse_expiry(body.get("expirationDateTime"), Utc::now())?;
    let mut inner = shared.lock();
    let s = owned(&mut inner.subs, id, caller)?;
    s.expires = expires;
    Ok(json(StatusCode::OK, &s.to_json(&req.base)))
}

/// `DELETE /subscriptions/{id}`
pub fn delete(shared: &Arc<Shared>, caller: &AccessToken, id: &str) -> GraphResult<Response> {
    let mut inner = shared.lock();
    owned(&mut inner.subs, id, caller)?;
    inner.subs.by_id.remove(id);
    Ok(no_content(StatusCode::NO_CONTENT))
}
