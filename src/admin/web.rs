//! The web admin's routes: log in with the admin password, then the mailbox list, a page per
//! mailbox (sign-in, users, settings, activities, download links, removal) and the users
//! page. Every form posts back with the session's CSRF token and gets a redirect (303) to a
//! page that shows what happened.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::core::{self, AdminError, ErrorKind, Role};
use super::session::{self, form_value, Notice, Session, LOGIN_COOKIE, SESSION_COOKIE};
use super::{encode_segment, html, AdminState};

type Shared = Arc<AdminState>;
type FormData = Form<Vec<(String, String)>>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(mailbox_list))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/mailboxes", post(import))
        .route("/mailboxes/{address}", get(mailbox_page))
        .route("/mailboxes/{address}/{action}", post(mailbox_action))
        .route("/users", get(users_page).post(add_user))
        .route("/users/{name}/{action}", post(user_action))
        .route("/oauth/callback", get(oauth_callback))
}

/// A request from a logged-in admin. Without a session, pages send the browser to the login
/// form and everything else is refused.
pub struct Admin(Session);

impl FromRequestParts<Shared> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        if parts.method == Method::GET {
            if let Some(elsewhere) = canonical_redirect(state, &parts.headers, &parts.uri) {
                return Err(elsewhere);
            }
        }
        match state.sessions.find(&parts.headers) {
            Some(session) => Ok(Admin(session)),
            None if parts.method == Method::GET => Err(Redirect::to("/login").into_response()),
            None => Err(forbidden(
                "You are not logged in, or your session has ended: log in again.",
            )),
        }
    }
}

/// Sends a page request that came through another host name (`127.0.0.1` for `localhost`)
/// to the canonical origin, so that the session cookie lives where sign-in comes back.
fn canonical_redirect(
    state: &Shared,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Option<Response> {
    let canonical = state.canonical_origin()?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok())?;
    let canonical_host = canonical
        .split_once("://")
        .map_or(canonical.as_str(), |(_, h)| h);
    if host.eq_ignore_ascii_case(canonical_host) {
        return None;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Some(Redirect::to(&format!("{canonical}{path}")).into_response())
}

fn forbidden(text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(html::page(
            "Refused",
            None,
            Some(Notice::Error(text.into())),
            "<p><a href=\"/login\">Log in</a></p>",
        )),
    )
        .into_response()
}

fn csrf_refused() -> Response {
    forbidden("The form came without its security token (CSRF). Reload the page and try again.")
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Turns the outcome of a form into a notice on the next page.
fn after_form(
    state: &Shared,
    session: &Session,
    result: Result<String, AdminError>,
    to: &str,
) -> Response {
    let notice = match result {
        Ok(done) => Notice::Done(done),
        Err(e) => {
            if e.kind() == ErrorKind::Internal {
                tracing::error!(error = %e, "web admin action failed");
            }
            Notice::Error(e.to_string())
        }
    };
    state.sessions.set_notice(session, notice);
    see_other(to)
}

fn error_page(e: AdminError) -> Response {
    let status = match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Internal => {
            tracing::error!(error = %e, "web admin page failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let body = html::page(
        "Error",
        None,
        Some(Notice::Error(e.to_string())),
        "<p><a href=\"/\">Back to the mailboxes</a></p>",
    );
    (status, Html(body)).into_response()
}

fn mailbox_url(address: &str) -> String {
    format!("/mailboxes/{}", encode_segment(address))
}

// ---------------------------------------------------------------------------------------------
// Logging in

async fn login_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(elsewhere) = canonical_redirect(&state, &headers, &uri) {
        return elsewhere;
    }
    let configured = state.run(core::admin_password_set).await.unwrap_or(false);
    let token = core::random_token(24);
    let cookie = session::set_cookie(LOGIN_COOKIE, &token, state.secure_cookies(), Some(3600));
    (
        [(header::SET_COOKIE, cookie)],
        Html(html::login(&token, configured, None)),
    )
        .into_response()
}

async fn login(State(state): State<Shared>, headers: HeaderMap, Form(form): FormData) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE);
    let sent = form_value(&form, "csrf");
    let csrf_ok = matches!((expected.as_deref(), sent), (Some(a), Some(b)) if core::constant_time_eq(a.as_bytes(), b.as_bytes()));
    if !csrf_ok {
        return csrf_refused();
    }
    let password = form_value(&form, "password").unwrap_or("").to_string();
    let ok = state
        .run(move |s| core::check_admin_password(s, &password))
        .await;
    match ok {
        Ok(true) => {
            let cookie = state.sessions.create();
            let set = session::set_cookie(SESSION_COOKIE, &cookie, state.secure_cookies(), None);
            ([(header::SET_COOKIE, set)], Redirect::to("/")).into_response()
        }
        Ok(false) => {
            let token = expected.unwrap_or_default();
            (
                StatusCode::UNAUTHORIZED,
                Html(html::login(&token, true, Some("Wrong password."))),
            )
                .into_response()
        }
        Err(e) => error_page(e),
    }
}

async fn logout(
    State(state): State<Shared>,
    Admin(session): Admin,
    Form(form): FormData,
) -> Response {
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    state.sessions.end(&session);
    let clear = session::set_cookie(SESSION_COOKIE, "", state.secure_cookies(), Some(0));
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

// ---------------------------------------------------------------------------------------------
// Mailboxes

async fn mailbox_list(State(state): State<Shared>, Admin(session): Admin) -> Response {
    match state.run(core::list_mailboxes).await {
        Ok(list) => {
            let notice = state.sessions.take_notice(&session);
            Html(html::mailbox_list(&session.csrf, notice, &list)).into_response()
        }
        Err(e) => error_page(e),
    }
}

async fn import(
    State(state): State<Shared>,
    Admin(session): Admin,
    Form(form): FormData,
) -> Response {
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let address = form_value(&form, "address")
        .unwrap_or("")
        .trim()
        .to_string();
    let alias_of = form_value(&form, "alias_of")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let result = state
        .run(move |s| core::import_mailbox(s, &address, alias_of.as_deref()))
        .await;
    match result {
        Ok(record) => {
            let done = format!(
                "{} imported. Assign users, then sign in with Microsoft.",
                record.address
            );
            after_form(&state, &session, Ok(done), &mailbox_url(&record.address))
        }
        Err(e) => after_form(&state, &session, Err(e), "/"),
    }
}

async fn mailbox_page(
    State(state): State<Shared>,
    Admin(session): Admin,
    Path(address): Path<String>,
) -> Response {
    let loaded = state
        .run(move |s| {
            Ok((
                core::mailbox_overview(s, &address)?,
                core::settings(s, &address)?,
                core::list_users(s)?,
                core::activities(s, &address)?,
                core::download_links(s, &address)?,
            ))
        })
        .await;
    match loaded {
        Ok((overview, settings, users, activities, links)) => {
            let notice = state.sessions.take_notice(&session);
            let page = html::MailboxPage {
                overview: &overview,
                settings: &settings,
                all_users: &users,
                activities: activities.as_ref(),
                download_links: links.as_ref(),
            };
            Html(html::mailbox_page(&session.csrf, notice, &page)).into_response()
        }
        Err(e) => error_page(e),
    }
}

async fn mailbox_action(
    State(state): State<Shared>,
    Admin(session): Admin,
    headers: HeaderMap,
    Path((address, action)): Path<(String, String)>,
    Form(form): FormData,
) -> Response {
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let back = mailbox_url(&address);
    let user = form_value(&form, "user").unwrap_or("").to_string();
    let result = match action.as_str() {
        "signin" => return start_signin(&state, &session, &headers, address).await,
        "assign" => {
            let role = if form_value(&form, "main") == Some("yes") {
                Role::Main
            } else {
                Role::Member
            };
            let a = address.clone();
            state
                .run(move |s| core::assign(s, &a, &user, role).map(|()| format!("{user} assigned")))
                .await
        }
        "main" => {
            let a = address.clone();
            state
                .run(move |s| {
                    core::assign(s, &a, &user, Role::ReplaceMain)
                        .map(|()| format!("{user} is now the main user"))
                })
                .await
        }
        "unassign" => {
            let a = address.clone();
            state
                .run(move |s| core::unassign(s, &a, &user).map(|()| format!("{user} unassigned")))
                .await
        }
        "settings" => {
            let changes: Vec<(String, String)> = form
                .iter()
                .filter(|(k, _)| core::SETTING_KEYS.contains(&k.as_str()))
                .cloned()
                .collect();
            let a = address.clone();
            let result = state
                .run(move |s| core::update_settings(s, &a, &changes))
                .await;
            if result.is_ok() {
                apply_poll_interval(&state, &address).await;
            }
            result.map(|_| "Settings saved".to_string())
        }
        "remove" => return remove_mailbox(&state, &session, address, &form).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    after_form(&state, &session, result, &back)
}

/// A changed poll interval takes effect by restarting the account's sync loop.
async fn apply_poll_interval(state: &Shared, address: &str) {
    let address = address.to_string();
    let Ok(record) = state.run(move |s| core::mailbox(s, &address)).await else {
        return;
    };
    if record.alias_of.is_none() && state.bridge.sync_for(&record).is_some() {
        if let Err(e) = state.bridge.restart_sync(record.id).await {
            tracing::warn!(mailbox = %record.address, error = %e, "cannot restart sync");
        }
    }
}

async fn remove_mailbox(
    state: &Shared,
    session: &Session,
    address: String,
    form: &[(String, String)],
) -> Response {
    if form_value(form, "confirm") != Some("yes") {
        let e =
            "Tick the box to confirm that the mailbox and its cached mail are deleted.".to_string();
        state.sessions.set_notice(session, Notice::Error(e));
        return see_other(&mailbox_url(&address));
    }
    let result = state.run(move |s| core::remove_mailbox(s, &address)).await;
    match result {
        Ok(record) => {
            state.bridge.detach_account(record.id);
            after_form(
                state,
                session,
                Ok(format!("{} removed", record.address)),
                "/",
            )
        }
        Err(e) => after_form(state, session, Err(e), "/"),
    }
}

async fn start_signin(
    state: &Shared,
    session: &Session,
    headers: &HeaderMap,
    address: String,
) -> Response {
    let back = mailbox_url(&address);
    let target = {
        let a = address.clone();
        state.run(move |s| core::signin_target(s, &a)).await
    };
    let record = match target {
        Ok(record) => record,
        Err(e) => return after_form(state, session, Err(e), &back),
    };
    let return_to = format!("{}{}", origin(state, headers), back);
    match state
        .signins
        .start(&state.bridge, record, &state.redirect_uri(), return_to)
    {
        Ok(url) => see_other(&url),
        Err(e) => {
            state
                .sessions
                .set_notice(session, Notice::Error(e.to_string()));
            see_other(&back)
        }
    }
}

/// The origin the admin's browser uses (scheme and Host), so the sign-in comes back to the
/// same site the session cookie belongs to; the public URL when the Host header is odd.
fn origin(state: &Shared, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let plausible = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !plausible {
        return state.public_url();
    }
    let scheme = if state.secure_cookies() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

async fn oauth_callback(
    State(state): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match state.signins.finish(&state.bridge, &params).await {
        Ok(finished) => Html(html::signed_in(
            &finished.mailbox.address,
            &finished.return_to,
        ))
        .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Html(html::signin_failed(&e.to_string())),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Users

async fn users_page(State(state): State<Shared>, Admin(session): Admin) -> Response {
    match state.run(core::list_users).await {
        Ok(users) => {
            let notice = state.sessions.take_notice(&session);
            Html(html::users_page(&session.csrf, notice, &users)).into_response()
        }
        Err(e) => error_page(e),
    }
}

async fn add_user(
    State(state): State<Shared>,
    Admin(session): Admin,
    Form(form): FormData,
) -> Response {
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let name = form_value(&form, "name").unwrap_or("").trim().to_string();
    let password = form_value(&form, "password").unwrap_or("").to_string();
    let result = state
        .run(move |s| core::add_user(s, &name, &password).map(|u| format!("user {} added", u.name)))
        .await;
    after_form(&state, &session, result, "/users")
}

async fn user_action(
    State(state): State<Shared>,
    Admin(session): Admin,
    Path((name, action)): Path<(String, String)>,
    Form(form): FormData,
) -> Response {
    if !session.csrf_ok(&form) {
        return csrf_refused();
    }
    let result = match action.as_str() {
        "password" => {
            let password = form_value(&form, "password").unwrap_or("").to_string();
            state
                .run(move |s| {
                    core::set_password(s, &name, &password)
                        .map(|()| format!("password of {name} changed"))
                })
                .await
        }
        "remove" => {
            state
                .run(move |s| core::remove_user(s, &name).map(|()| format!("user {name} removed")))
                .await
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    after_form(&state, &session, result, "/users")
}
