//! The download-link pages recipients open: `/d/{token}` lists the files (after the agreement
//! form for `_agreementLink`), `/d/{token}/{n}` downloads one with its name and type.
//! Unknown links answer 404, expired ones 410.
//!
//! An accepted agreement is proven to the download URLs by `?ok=`, the acceptance sealed
//! with the bridge's key: it cannot be made without going through the form, which records
//! who accepted and when.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;

use super::clock::{self, Clock};
use super::message::escape_html;
use crate::bridge::Bridge;
use crate::mailstore::links::{self as stored, LinkFile, LinkRecord};

#[derive(Clone)]
struct Links {
    bridge: Arc<Bridge>,
    clock: Arc<dyn Clock>,
}

/// The routes, for merging into the HTTP server's router.
pub fn router<S: Clone + Send + Sync + 'static>(bridge: Arc<Bridge>) -> Router<S> {
    router_with_clock(bridge, clock::system())
}

/// The routes with a given clock (tests move time to see links expire).
pub fn router_with_clock<S: Clone + Send + Sync + 'static>(
    bridge: Arc<Bridge>,
    clock: Arc<dyn Clock>,
) -> Router<S> {
    Router::new()
        .route("/d/{token}", get(page).post(accept))
        .route("/d/{token}/{position}", get(download))
        .with_state(Links { bridge, clock })
}

enum Lookup {
    Found(LinkRecord, Vec<LinkFile>),
    Expired,
    Unknown,
    Failed,
}

async fn lookup(links: &Links, token: &str) -> Lookup {
    let token = token.to_string();
    let found = links
        .bridge
        .store
        .call(move |c| {
            let Some(link) = stored::link_by_token(c, &token)? else {
                return Ok(None);
            };
            let files = stored::files_of(c, link.id)?;
            Ok(Some((link, files)))
        })
        .await;
    match found {
        Ok(Some((link, _))) if link.expires_at <= links.clock.now() => Lookup::Expired,
        Ok(Some((link, files))) => Lookup::Found(link, files),
        Ok(None) => Lookup::Unknown,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a download link");
            Lookup::Failed
        }
    }
}

fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{0}</title>\
         <meta name=robots content=noindex></head><body><h1>{0}</h1>{body}</body></html>",
        escape_html(title)
    );
    let mut response = (status, Html(page)).into_response();
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn not_found() -> Response {
    html_page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<p>This download link does not exist. Check that it was copied completely.</p>",
    )
}

fn gone() -> Response {
    html_page(
        StatusCode::GONE,
        "Link expired",
        "<p>This download link has expired and its files were deleted. Ask the sender for a new one.</p>",
    )
}

fn failed() -> Response {
    html_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Try again later",
        "<p>The files cannot be read right now.</p>",
    )
}

/// `GET /d/{token}`: the agreement form, or the list of files.
async fn page(
    State(links): State<Links>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (link, files) = match lookup(&links, &token).await {
        Lookup::Found(link, files) => (link, files),
        Lookup::Expired => return gone(),
        Lookup::Unknown => return not_found(),
        Lookup::Failed => return failed(),
    };
    let proof = query.get("ok").cloned();
    if let Some(text) = &link.agreement_text {
        if !proof_valid(&links, &link, proof.as_deref()) {
            return agreement_form(&link, text);
        }
    }
    let suffix = proof.map(|p| format!("?ok={p}")).unwrap_or_default();
    let items: String = files
        .iter()
        .map(|f| {
            format!(
                "<li><a href=\"/d/{}/{}{}\">{}</a> ({}, {} bytes)</li>",
                escape_html(&link.token),
                f.position,
                escape_html(&suffix),
                escape_html(&f.name),
                escape_html(&f.content_type),
                f.size
            )
        })
        .collect();
    let until = clock::rfc3339(link.expires_at);
    html_page(
        StatusCode::OK,
        &link.label,
        &format!("<ul>{items}</ul><p>Available until {until}.</p>"),
    )
}

fn agreement_form(link: &LinkRecord, text: &str) -> Response {
    let body = format!(
        "<p>Please read and accept the following before downloading:</p>\
         <blockquote>{}</blockquote>\
         <form method=post action=\"/d/{}\">\
         <label>Your email address <input type=email name=address required></label>\
         <label><input type=checkbox name=accept value=yes required> I accept</label>\
         <button type=submit>Accept and continue</button></form>",
        escape_html(text),
        escape_html(&link.token)
    );
    html_page(StatusCode::OK, &link.label, &body)
}

/// `POST /d/{token}` (form: address, accept=yes): records the acceptance, then shows the files.
async fn accept(
    State(links): State<Links>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let link = match lookup(&links, &token).await {
        Lookup::Found(link, _) => link,
        Lookup::Expired => return gone(),
        Lookup::Unknown => return not_found(),
        Lookup::Failed => return failed(),
    };
    let Some(text) = link.agreement_text.clone() else {
        return Redirect::to(&format!("/d/{}", link.token)).into_response();
    };
    let address = form.get("address").map(|a| a.trim()).unwrap_or("");
    let accepted = form.get("accept").is_some_and(|v| v == "yes");
    if !accepted || !address.contains('@') || address.len() > 320 {
        return agreement_form(&link, &text);
    }
    let (id, now, address) = (link.id, links.clock.now(), address.to_string());
    let remote: Option<String> = None;
    let recorded = links
        .bridge
        .store
        .call(move |c| stored::record_acceptance(c, id, &address, now, remote.as_deref()))
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "cannot record an agreement acceptance");
        return failed();
    }
    let proof = make_proof(&links, &link);
    Redirect::to(&format!("/d/{}?ok={proof}", link.token)).into_response()
}

fn make_proof(links: &Links, link: &LinkRecord) -> String {
    let sealed = links
        .bridge
        .secrets
        .seal(format!("accepted:{}", link.id).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

fn proof_valid(links: &Links, link: &LinkRecord, proof: Option<&str>) -> bool {
    let Some(proof) = proof else { return false };
    let Ok(sealed) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(proof) else {
        return false;
    };
    links
        .bridge
        .secrets
        .open(&sealed)
        .is_ok_and(|plain| plain == format!("accepted:{}", link.id).as_bytes())
}

/// `GET /d/{token}/{n}`: one file, with its name and type.
async fn download(
    State(links): State<Links>,
    Path((token, position)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (link, files) = match lookup(&links, &token).await {
        Lookup::Found(link, files) => (link, files),
        Lookup::Expired => return gone(),
        Lookup::Unknown => return not_found(),
        Lookup::Failed => return failed(),
    };
    if link.agreement_text.is_some()
        && !proof_valid(&links, &link, query.get("ok").map(String::as_str))
    {
        return Redirect::to(&format!("/d/{}", link.token)).into_response();
    }
    let Some(file) = position
        .parse::<u32>()
        .ok()
        .and_then(|p| files.into_iter().find(|f| f.position == p))
    else {
        return not_found();
    };
    let Some(bytes) = super::links::read_file(
        &links.bridge.secrets,
        &links.bridge.config.data_dir,
        &file.file,
    ) else {
        return failed();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names_utf8_files_safely() {
        assert_eq!(
            content_disposition("Angebot Müller.pdf"),
            "attachment; filename=\"Angebot M_ller.pdf\"; filename*=UTF-8''Angebot%20M%C3%BCller.pdf"
        );
        assert!(!content_disposition("a\"b\r\n.pdf").contains('\r'));
    }
}
