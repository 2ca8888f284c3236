//! The identity platform's endpoints: `/{tenant}/oauth2/v2.0/{devicecode,token,authorize}` and
//! the `/devicelogin` page. Tokens are opaque random strings bound to an account and a client.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::form;
use super::ids;
use super::Shared;
use std::sync::Arc;

const GRAPH: &str = "https://graph.microsoft.com/";
/// What a token for `.default` (or for no Graph scope at all) grants in the emulated tenant.
const DEFAULT_SCOPES: &[&str] = &["Mail.ReadWrite", "Mail.Send", "User.Read"];

#[derive(Debug)]
pub struct DeviceGrant {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires: DateTime<Utc>,
    pub approved: Option<String>,
    pub declined: bool,
    pub redeemed: bool,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub account: String,
    pub client_id: String,
    /// Graph permission names without the resource prefix (`Mail.ReadWrite`).
    pub scopes: Vec<String>,
    pub expires: DateTime<Utc>,
}

#[derive(Debug)]
pub struct RefreshToken {
    pub account: String,
    pub client_id: String,
    pub scope: String,
    pub revoked: bool,
    pub expires: DateTime<Utc>,
}

#[derive(Debug)]
pub struct AuthCode {
    pub account: String,
    pub client_id: String,
    pub scope: String,
    pub redirect_uri: String,
    pub challenge: Option<(String, String)>,
    pub expires: DateTime<Utc>,
    pub redeemed: bool,
}

#[derive(Debug, Default)]
pub struct OAuthState {
    pub device: HashMap<String, DeviceGrant>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, AuthCode>,
}

impl OAuthState {
    /// Refresh tokens from a dump: clients signed in before a restart stay signed in.
    pub fn restore_refresh(&mut self, tokens: Vec<super::format::RefreshEntry>) {
        for t in tokens {
            self.refresh.insert(
                t.token,
                RefreshToken {
                    account: t.account.to_ascii_lowercase(),
                    client_id: t.client_id,
                    scope: t.scope,
                    revoked: t.revoked,
                    expires: t.expires,
                },
            );
        }
    }

    /// Revokes every refresh token of an account (as an admin's "revoke sessions" does).
    /// Access tokens already issued stay valid until they expire, as with Entra ID.
    pub fn revoke_account(&mut self, account: &str) -> usize {
        let mut n = 0;
        for t in self.refresh.values_mut() {
            if t.account.eq_ignore_ascii_case(account) && !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        n
    }
}

/// An OAuth error in Entra ID's shape (`error`, `error_description` with an AADSTS code, …).
fn oauth_error(status: StatusCode, error: &str, aadsts: u32, text: &str) -> Response {
    let trace = ids::guid();
    let correlation = ids::guid();
    let now = Utc::now();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{aadsts}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}",
            now.format("%Y-%m-%d %H:%M:%SZ")
        ),
        "error_codes": [aadsts],
        "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
    });
    (status, Json(body)).into_response()
}

fn missing(param: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
    )
}

/// `--client-id` restricts the accepted application; otherwise any client id is fine.
fn check_client(shared: &Shared, client_id: &str) -> Result<(), Box<Response>> {
    match &shared.args.client_id {
        Some(only) if only != client_id => Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        ))),
        _ => Ok(()),
    }
}

/// The Graph permissions a scope string grants, without the resource prefix.
pub fn graph_scopes(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split_whitespace() {
        let name = s.strip_prefix(GRAPH).unwrap_or(s);
        match name {
            "offline_access" | "openid" | "profile" | "email" => {}
            ".default" => out.extend(DEFAULT_SCOPES.iter().map(|d| d.to_string())),
            other => out.push(other.to_string()),
        }
    }
    if out.is_empty() {
        out.extend(DEFAULT_SCOPES.iter().map(|d| d.to_string()));
    }
    out.dedup();
    out
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`
pub async fn devicecode(
    State(shared): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form::decode(&String::from_utf8_lossy(&body));
    let Some(client_id) = form::get(&params, "client_id") else {
        return missing("client_id");
    };
    if let Err(r) = check_client(&shared, client_id) {
        return *r;
    }
    let Some(scope) = form::get(&params, "scope") else {
        return missing("scope");
    };
    let device_code = ids::token(48);
    let user_code = user_code();
    let grant = DeviceGrant {
        user_code: user_code.clone(),
        client_id: client_id.to_string(),
        scope: scope.to_string(),
        expires: Utc::now() + Duration::seconds(900),
        approved: shared.args.auto_consent.clone(),
        declined: false,
        redeemed: false,
    };
    shared
        .lock()
        .oauth
        .device
        .insert(device_code.clone(), grant);
    let uri = format!("http://{}/devicelogin", host_of(&headers));
    Json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": 900,
        "interval": 5,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

fn user_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..9)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(shared): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    body: Bytes,
) -> Response {
    let params = form::decode(&String::from_utf8_lossy(&body));
    let Some(grant_type) = form::get(&params, "grant_type") else {
        return missing("grant_type");
    };
    let Some(client_id) = form::get(&params, "client_id") else {
        return missing("client_id");
    };
    if let Err(r) = check_client(&shared, client_id) {
        return *r;
    }
    match grant_type {
        "urn:ietf:params:oauth:grant-type:device_code" => device_grant(&shared, client_id, &params),
        "refresh_token" => refresh_grant(&shared, client_id, &params),
        "authorization_code" => code_grant(&shared, client_id, &params),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

fn device_grant(shared: &Shared, client_id: &str, params: &[(String, String)]) -> Response {
    let Some(code) = form::get(params, "device_code") else {
        return missing("device_code");
    };
    let mut inner = shared.lock();
    let Some(g) = inner.oauth.device.get_mut(code) else {
        return invalid_grant(70000, "Provided grant is invalid or malformed.");
    };
    if g.client_id != client_id {
        return invalid_grant(70000, "The provided grant was issued to another client.");
    }
    if g.redeemed || g.expires <= Utc::now() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "expired_token",
            70019,
            "Verification code expired.",
        );
    }
    if g.declined {
        // Microsoft's documentation names this error `authorization_declined`.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "authorization_declined",
            70020,
            "The end user denied the authorization request.",
        );
    }
    let Some(account) = g.approved.clone() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        );
    };
    g.redeemed = true;
    let scope = g.scope.clone();
    drop(inner);
    issue(shared, &account, client_id, &scope)
}

fn invalid_grant(code: u32, text: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", code, text)
}

fn refresh_grant(shared: &Shared, client_id: &str, params: &[(String, String)]) -> Response {
    let Some(rt) = form::get(params, "refresh_token") else {
        return missing("refresh_token");
    };
    let inner = shared.lock();
    let Some(t) = inner.oauth.refresh.get(rt) else {
        return invalid_grant(9002313, "Invalid request. Request is malformed or invalid.");
    };
    if t.revoked {
        return invalid_grant(
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        );
    }
    if t.expires <= Utc::now() {
        return invalid_grant(700082, "The refresh token has expired due to inactivity.");
    }
    if t.client_id != client_id {
        return invalid_grant(70000, "The refresh token was issued to a different client.");
    }
    let account = t.account.clone();
    // A refresh may narrow the scope; without one the original grant is reused.
    let scope = form::get(params, "scope")
        .map(str::to_string)
        .unwrap_or_else(|| t.scope.clone());
    drop(inner);
    issue(shared, &account, client_id, &scope)
}

fn code_grant(shared: &Shared, client_id: &str, params: &[(String, String)]) -> Response {
    let Some(code) = form::get(params, "code") else {
        return missing("code");
    };
    let redirect_uri = form::get(params, "redirect_uri").unwrap_or("");
    let verifier = form::get(params, "code_verifier");
    let mut inner = shared.lock();
    let Some(c) = inner.oauth.codes.get_mut(code) else {
        return invalid_grant(9002313, "Invalid request. Request is malformed or invalid.");
    };
    if c.redeemed {
        return invalid_grant(54005, "OAuth2 Authorization code was already redeemed.");
    }
    if c.expires <= Utc::now() {
        return invalid_grant(70008, "The provided authorization code has expired.");
    }
    if c.client_id != client_id || c.redirect_uri != redirect_uri {
        return invalid_grant(
            50148,
            "The code_verifier or redirect_uri does not match the authorization request.",
        );
    }
    if let Some((challenge, method)) = &c.challenge {
        let Some(v) = verifier else {
            return missing("code_verifier");
        };
        if !pkce_matches(challenge, method, v) {
            return invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    c.redeemed = true;
    let (account, scope) = (c.account.clone(), c.scope.clone());
    drop(inner);
    issue(shared, &account, client_id, &scope)
}

fn pkce_matches(challenge: &str, method: &str, verifier: &str) -> bool {
    if method.eq_ignore_ascii_case("plain") {
        return challenge == verifier;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
}

/// Issues an access token (and a new refresh token when `offline_access` was asked for).
fn issue(shared: &Shared, account: &str, client_id: &str, scope: &str) -> Response {
    let lifetime = shared.args.token_lifetime_secs;
    let scopes = graph_scopes(scope);
    let access = ids::token(64);
    let mut inner = shared.lock();
    inner.oauth.access.insert(
        access.clone(),
        AccessToken {
            account: account.to_string(),
            client_id: client_id.to_string(),
            scopes: scopes.clone(),
            expires: Utc::now() + Duration::seconds(lifetime as i64),
        },
    );
    let granted: Vec<String> = scopes.iter().map(|s| format!("{GRAPH}{s}")).collect();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if scope.split_whitespace().any(|s| s == "offline_access") {
        let refresh = ids::token(96);
        inner.oauth.refresh.insert(
            refresh.clone(),
            RefreshToken {
                account: account.to_string(),
                client_id: client_id.to_string(),
                scope: scope.to_string(),
                revoked: false,
                expires: Utc::now() + Duration::days(90),
            },
        );
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: with `--auto-consent` it redirects at once, otherwise
/// it shows a sign-in page listing the emulated accounts.
pub async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = validate_authorize(&shared, &q) {
        return *r;
    }
    if let Some(account) = shared.args.auto_consent.clone() {
        return redirect_with_code(&shared, &q, &account);
    }
    let accounts: Vec<String> = shared
        .lock()
        .tenant
        .mailboxes
        .iter()
        .map(|m| m.upn.clone())
        .collect();
    let hidden: String = q
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let buttons: String = accounts
        .iter()
        .map(|a| {
            format!(
                "<button name=\"account\" value=\"{0}\">{0}</button><br>",
                html_escape(a)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Sign in</title><h1>Pick an account</h1><form method=\"post\">{hidden}{buttons}</form>"
    ))
    .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/authorize` from the sign-in page.
pub async fn authorize_post(
    State(shared): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    body: Bytes,
) -> Response {
    let q: HashMap<String, String> = form::decode(&String::from_utf8_lossy(&body))
        .into_iter()
        .collect();
    if let Err(r) = validate_authorize(&shared, &q) {
        return *r;
    }
    let Some(account) = q.get("account").cloned() else {
        return missing("account");
    };
    if shared.lock().tenant.mailbox_index(&account).is_none() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50034,
            "The user account does not exist in the directory.",
        );
    }
    redirect_with_code(&shared, &q, &account)
}

fn validate_authorize(shared: &Shared, q: &HashMap<String, String>) -> Result<(), Box<Response>> {
    for p in ["client_id", "response_type", "redirect_uri", "scope"] {
        if !q.contains_key(p) {
            return Err(Box::new(missing(p)));
        }
    }
    check_client(shared, q.get("client_id").map(String::as_str).unwrap_or(""))?;
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            70005,
            "The provided value for the input parameter 'response_type' is not allowed for this request.",
        )));
    }
    match q.get("code_challenge_method").map(String::as_str) {
        None | Some("S256") | Some("plain") => Ok(()),
        Some(_) => Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            501491,
            "Invalid code_challenge_method.",
        ))),
    }
}

fn redirect_with_code(shared: &Shared, q: &HashMap<String, String>, account: &str) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let code = ids::token(64);
    let challenge = q.get("code_challenge").map(|c| {
        let method = q
            .get("code_challenge_method")
            .cloned()
            .unwrap_or_else(|| "plain".into());
        (c.clone(), method)
    });
    shared.lock().oauth.codes.insert(
        code.clone(),
        AuthCode {
            account: account.to_ascii_lowercase(),
            client_id: get("client_id"),
            scope: get("scope"),
            redirect_uri: get("redirect_uri"),
            challenge,
            expires: Utc::now() + Duration::minutes(10),
            redeemed: false,
        },
    );
    let redirect = get("redirect_uri");
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut target = format!("{redirect}{sep}code={}", form::escape(&code));
    if let Some(state) = q.get("state") {
        target.push_str(&format!("&state={}", form::escape(state)));
    }
    // The identity platform answers 302 Found.
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /devicelogin`: where a person types the user code and picks an account.
pub async fn devicelogin_page(State(shared): State<Arc<Shared>>) -> Response {
    let options: String = shared
        .lock()
        .tenant
        .mailboxes
        .iter()
        .map(|m| format!("<option>{}</option>", html_escape(&m.upn)))
        .collect();
    Html(format!(
        "<!doctype html><title>Enter code</title><h1>Enter code</h1><form method=\"post\">\
         <input name=\"code\" placeholder=\"Code\"> <select name=\"account\">{options}</select> \
         <button name=\"action\" value=\"approve\">Sign in</button> \
         <button name=\"action\" value=\"decline\">Cancel</button></form>"
    ))
    .into_response()
}

/// `POST /devicelogin` with `code`, `account`, `action=approve|decline`.
pub async fn devicelogin_submit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let params = form::decode(&String::from_utf8_lossy(&body));
    let code = form::get(&params, "code")
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    let account = form::get(&params, "account")
        .unwrap_or("")
        .to_ascii_lowercase();
    let decline = form::get(&params, "action") == Some("decline");
    let mut inner = shared.lock();
    if !decline && inner.tenant.mailbox_index(&account).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Html("Unknown account.".to_string()),
        )
            .into_response();
    }
    let now = Utc::now();
    let grant = inner
        .oauth
        .device
        .values_mut()
        .find(|g| g.user_code == code && g.expires > now && !g.redeemed);
    let Some(g) = grant else {
        return (
            StatusCode::BAD_REQUEST,
            Html("That code is not valid or has expired.".to_string()),
        )
            .into_response();
    };
    if decline {
        g.declined = true;
        return Html("Sign-in cancelled.".to_string()).into_response();
    }
    g.approved = Some(account.clone());
    Html(format!(
        "Signed in as {}. You may close this window.",
        html_escape(&account)
    ))
    .into_response()
}
