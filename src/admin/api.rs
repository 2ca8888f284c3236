//! The JSON API under `/api/v1`, for a CRM that administers the bridge: the same operations as
//! the web admin, authenticated with the bearer token made by `graphbridge admin token`.
//! Errors come as `{"error":{"code":"…","message":"…"}}` with a matching status.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::core::{self, AdminError, ErrorKind, MailboxOverview, Role, UserOverview};
use super::AdminState;
use crate::mailstore::accounts::Rows;

type Shared = Arc<AdminState>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/mailboxes", get(list_mailboxes).post(import))
        .route("/mailboxes/{address}", get(mailbox).delete(remove_mailbox))
        .route(
            "/mailboxes/{address}/settings",
            get(settings).patch(update_settings),
        )
        .route("/mailboxes/{address}/assignments", get(assignments))
        .route(
            "/mailboxes/{address}/assignments/{user}",
            put(assign).delete(unassign),
        )
        .route("/mailboxes/{address}/activities", get(activities))
        .route("/mailboxes/{address}/download-links", get(download_links))
        .route("/mailboxes/{address}/signin", post(signin))
        .route("/activities", get(all_activities))
        .route("/users", get(list_users).post(add_user))
        .route("/users/{name}", axum::routing::delete(remove_user))
        .route("/users/{name}/password", put(set_password))
}

/// A request that carried the API token.
pub struct ApiAuth;

impl FromRequestParts<Shared> for ApiAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let ok = match token {
            Some(token) if !token.is_empty() => {
                state.run(move |s| core::check_api_token(s, &token)).await
            }
            _ => Ok(false),
        };
        match ok {
            Ok(true) => Ok(ApiAuth),
            Ok(false) => Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(error_body(
                    "unauthorized",
                    "a valid bearer token is required",
                )),
            )
                .into_response()),
            Err(e) => Err(ApiError(e).into_response()),
        }
    }
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// An admin-core error as an HTTP answer.
pub struct ApiError(AdminError);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self.0.kind() {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Internal => {
                tracing::error!(error = %self.0, "API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, Json(error_body(code, &self.0.to_string()))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

pub fn mailbox_json(o: &MailboxOverview) -> Value {
    json!({
        "address": o.record.address,
        "kind": if o.alias_of.is_some() { "alias" } else { "microsoft365" },
        "alias_of": o.alias_of,
        "signin_state": o.signin_state.as_str(),
        "last_error": o.last_error,
        "main_user": o.main_user(),
        "users": o.users.iter().map(|u| json!({"name": u.name, "main": u.is_main})).collect::<Vec<_>>(),
        "sync": {
            "folders": o.progress.folders,
            "folders_synced": o.progress.folders_synced,
            "messages": o.progress.messages,
            "bodies": o.progress.bodies,
            "complete": o.progress.is_complete(),
        },
    })
}

fn user_json(u: &UserOverview) -> Value {
    json!({
        "name": u.name,
        "mailboxes": u.mailboxes.iter().map(|(a, main)| json!({"address": a, "main": main})).collect::<Vec<_>>(),
    })
}

fn rows_json(rows: Option<Rows>) -> Value {
    match rows {
        None => json!({"available": false, "items": []}),
        Some(r) => {
            let items: Vec<Value> = r
                .rows
                .iter()
                .map(|row| {
                    let object: serde_json::Map<String, Value> = r
                        .columns
                        .iter()
                        .cloned()
                        .zip(row.iter().map(|v| Value::String(v.clone())))
                        .collect();
                    Value::Object(object)
                })
                .collect();
            json!({"available": true, "items": items})
        }
    }
}

async fn list_mailboxes(State(state): State<Shared>, _: ApiAuth) -> ApiResult {
    let list = state.run(core::list_mailboxes).await?;
    ok(json!({"mailboxes": list.iter().map(mailbox_json).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
struct ImportBody {
    address: String,
    #[serde(default)]
    alias_of: Option<String>,
}

async fn import(
    State(state): State<Shared>,
    _: ApiAuth,
    Json(body): Json<ImportBody>,
) -> ApiResult {
    let overview = state
        .run(move |s| {
            let record = core::import_mailbox(s, body.address.trim(), body.alias_of.as_deref())?;
            core::mailbox_overview(s, &record.address)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(mailbox_json(&overview))).into_response())
}

async fn mailbox(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let overview = state
        .run(move |s| core::mailbox_overview(s, &address))
        .await?;
    ok(mailbox_json(&overview))
}

async fn remove_mailbox(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let record = state
        .run(move |s| core::remove_mailbox(s, &address))
        .await?;
    state.bridge.detach_account(record.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn settings_json(s: &crate::mailstore::accounts::MailboxSettings) -> Value {
    json!({
        "sent_copy": s.sent_copy.as_str(),
        "book_external_sends": s.book_external_sends,
        "attachment_policy": s.attachment_policy.as_str(),
        "recipient_limit": s.recipient_limit,
        "poll_interval_secs": s.poll_interval_secs,
        "delete_behaviour": s.delete_behaviour.as_str(),
        "agreement_text": s.agreement_text,
    })
}

async fn settings(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let settings = state.run(move |s| core::settings(s, &address)).await?;
    ok(settings_json(&settings))
}

/// `PATCH` with an object of the settings to change; all change or none.
async fn update_settings(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
    Json(body): Json<serde_json::Map<String, Value>>,
) -> ApiResult {
    let changes: Vec<(String, String)> = body
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Null => "default".into(),
                Value::Bool(b) => if b { "yes" } else { "no" }.into(),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let settings = state
        .run(move |s| core::update_settings(s, &address, &changes))
        .await?;
    ok(settings_json(&settings))
}

async fn assignments(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let overview = state
        .run(move |s| core::mailbox_overview(s, &address))
        .await?;
    ok(json!({"users": mailbox_json(&overview)["users"]}))
}

#[derive(Deserialize, Default)]
struct AssignBody {
    #[serde(default)]
    main: bool,
    /// Take the crown from the current main user.
    #[serde(default)]
    replace_main: bool,
}

async fn assign(
    State(state): State<Shared>,
    _: ApiAuth,
    Path((address, user)): Path<(String, String)>,
    body: Option<Json<AssignBody>>,
) -> ApiResult {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let role = match (body.main, body.replace_main) {
        (_, true) => Role::ReplaceMain,
        (true, false) => Role::Main,
        (false, false) => Role::Member,
    };
    let overview = state
        .run(move |s| {
            core::assign(s, &address, &user, role)?;
            core::mailbox_overview(s, &address)
        })
        .await?;
    ok(json!({"users": mailbox_json(&overview)["users"]}))
}

async fn unassign(
    State(state): State<Shared>,
    _: ApiAuth,
    Path((address, user)): Path<(String, String)>,
) -> ApiResult {
    state
        .run(move |s| core::unassign(s, &address, &user))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn activities(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let rows = state.run(move |s| core::activities(s, &address)).await?;
    ok(rows_json(rows))
}

#[derive(serde::Deserialize)]
struct ActivityQuery {
    mailbox: Option<String>,
    since: Option<String>,
}

/// Every booked activity, as a CRM reads them: `?mailbox=ADDRESS&since=RFC3339|date|seconds`.
async fn all_activities(
    State(state): State<Shared>,
    _: ApiAuth,
    axum::extract::Query(query): axum::extract::Query<ActivityQuery>,
) -> ApiResult {
    let since = match query
        .since
        .as_deref()
        .map(crate::submission::activities::parse_since)
    {
        None => None,
        Some(Ok(since)) => Some(since),
        Some(Err(e)) => {
            return Ok((
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response())
        }
    };
    match crate::submission::activities::list(&state.bridge.store, query.mailbox, since).await {
        Ok(list) => ok(json!({ "activities": list })),
        Err(e) => Err(ApiError(AdminError::Store(e))),
    }
}

async fn download_links(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(address): Path<String>,
) -> ApiResult {
    let rows = state
        .run(move |s| core::download_links(s, &address))
        .await?;
    ok(rows_json(rows))
}

/// Starts a sign-in: the CRM opens `authorize_url` in the person's browser; Microsoft sends it
/// back to the bridge, which stores the tokens.
async fn signin(State(state): State<Shared>, _: ApiAuth, Path(address): Path<String>) -> ApiResult {
    let record = state.run(move |s| core::signin_target(s, &address)).await?;
    let back = format!(
        "{}/mailboxes/{}",
        state.public_url(),
        super::encode_segment(&record.address)
    );
    let redirect_uri = state.redirect_uri();
    match state
        .signins
        .start(&state.bridge, record, &redirect_uri, back)
    {
        Ok(url) => ok(json!({
            "authorize_url": url,
            "redirect_uri": redirect_uri,
            "warning": super::html::SHARED_WARNING,
        })),
        Err(e) => Ok((
            StatusCode::BAD_GATEWAY,
            Json(error_body("signin", &e.to_string())),
        )
            .into_response()),
    }
}

async fn list_users(State(state): State<Shared>, _: ApiAuth) -> ApiResult {
    let users = state.run(core::list_users).await?;
    ok(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
struct UserBody {
    name: String,
    password: String,
}

async fn add_user(
    State(state): State<Shared>,
    _: ApiAuth,
    Json(body): Json<UserBody>,
) -> ApiResult {
    let user = state
        .run(move |s| core::add_user(s, body.name.trim(), &body.password))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": user.name, "mailboxes": []})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(name): Path<String>,
    Json(body): Json<PasswordBody>,
) -> ApiResult {
    state
        .run(move |s| core::set_password(s, &name, &body.password))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_user(
    State(state): State<Shared>,
    _: ApiAuth,
    Path(name): Path<String>,
) -> ApiResult {
    state.run(move |s| core::remove_user(s, &name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
