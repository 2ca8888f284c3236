//! `POST /me/sendMail` (MIME and JSON forms) and what happens after: the Sent Items copy,
//! the From check, and delivery to mailboxes of the tenant.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::Response;
use base64::Engine;
use chrono::Utc;
use serde_json::Value;

use super::errors::{GraphError, GraphResult};
use super::graph::{no_content, Ctx, Perm, Req};
use super::mime::{self, EmailAddr, Parsed};
use super::state::{NewMessage, Tenant};
use super::{compose, Shared};

fn send_as_denied() -> GraphError {
    GraphError::new(
        StatusCode::FORBIDDEN,
        "ErrorSendAsDenied",
        "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
    )
}

/// The request carries MIME when its Content-Type is `text/plain`.
pub fn is_mime(req: &Req) -> bool {
    req.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"))
}

/// Decodes a base64 MIME body (line breaks allowed) → `400 ErrorMimeContentInvalidBase64String`.
pub fn decode_mime_body(body: &[u8]) -> GraphResult<Vec<u8>> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        })?;
    if decoded.is_empty() {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        ));
    }
    Ok(decoded)
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost")
}

/// `POST /me/sendMail`
pub async fn send_mail(shared: &Arc<Shared>, req: &Req, ctx: &Ctx) -> GraphResult<Response> {
    ctx.need(Perm::Send)?;
    let (raw, save) = if is_mime(req) {
        // MIME sends always save a copy to Sent Items.
        (decode_mime_body(&req.body)?, true)
    } else {
        let body = req.json_body()?;
        let message = body.get("message").ok_or_else(|| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidParameter",
                "The value of the parameter 'Message' is empty.",
            )
        })?;
        let save = body
            .get("saveToSentItems")
            .map(|v| v.as_bool().unwrap_or(true))
            .unwrap_or(true);
        let inner = shared.lock();
        let mb = inner.tenant.mailbox(ctx.mailbox)?;
        let me = EmailAddr {
            name: mb.display_name.clone(),
            address: mb.upn.clone(),
        };
        drop(inner);
        (
            compose::mime_from_json(message, Some(&me), domain_of(&me.address))?,
            save,
        )
    };
    shared
        .throttle
        .check_send(&ctx.upn, recipient_count(&raw))?;
    let mut inner = shared.lock();
    submit(&mut inner.tenant, ctx.mailbox, raw, save)?;
    Ok(no_content(StatusCode::ACCEPTED))
}

/// Checks From, saves the Sent Items copy (Bcc kept), delivers inside the tenant (Bcc stripped).
/// Returns the message as it went out (From rewritten, Message-ID and Date added).
pub fn submit(
    tenant: &mut Tenant,
    mailbox: usize,
    raw: Vec<u8>,
    save: bool,
) -> GraphResult<Vec<u8>> {
    let parsed = mime::parse(&raw).map_err(|_| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentConversionFailed",
            "The MIME content could not be converted.",
        )
    })?;
    let recipients: Vec<String> = parsed
        .to
        .iter()
        .chain(&parsed.cc)
        .chain(&parsed.bcc)
        .map(|a| a.address.to_ascii_lowercase())
        .collect();
    if recipients.is_empty() {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient is required, but none were found.",
        ));
    }
    let raw = check_from(tenant, mailbox, raw, &parsed)?;
    let upn = tenant.mailbox(mailbox)?.upn.clone();
    let raw = mime::ensure_id_and_date(raw, domain_of(&upn));
    let parsed = mime::parse(&raw).unwrap_or(parsed);
    if save {
        let mb = tenant.mailbox_mut(mailbox)?;
        let sent = mb.wk("sentitems")?;
        mb.insert_message(sent, stored(raw.clone(), parsed.clone(), true));
    }
    deliver_internal(tenant, &raw, &recipients);
    Ok(raw)
}

/// To + Cc + Bcc of a message (0 when it does not parse; `submit` refuses it then).
pub fn recipient_count(raw: &[u8]) -> usize {
    mime::parse(raw)
        .map(|p| p.to.len() + p.cc.len() + p.bcc.len())
        .unwrap_or(0)
}

fn stored(raw: Vec<u8>, parsed: Parsed, is_read: bool) -> NewMessage {
    NewMessage {
        mime: raw.into(),
        parsed,
        is_read,
        is_draft: false,
        flag_status: "notFlagged".into(),
        categories: Vec::new(),
        received: Utc::now(),
    }
}

/// The From must be the mailbox, one of its aliases (when the tenant allows sending from
/// aliases), or a mailbox that granted send-as. With alias sending off, Exchange rewrites an
/// alias From to the primary address instead of refusing it.
fn check_from(
    tenant: &Tenant,
    mailbox: usize,
    raw: Vec<u8>,
    parsed: &Parsed,
) -> GraphResult<Vec<u8>> {
    let mb = tenant.mailbox(mailbox)?;
    let Some(from) = &parsed.from else {
        let value = format!("{} <{}>", mb.display_name, mb.upn);
        return Ok(set_header(&raw, "From", &value));
    };
    let addr = from.address.to_ascii_lowercase();
    if addr == mb.upn {
        return Ok(raw);
    }
    if mb.aliases.contains(&addr) {
        if tenant.send_from_alias {
            return Ok(raw);
        }
        let value = format!("{} <{}>", mb.display_name, mb.upn);
        return Ok(set_header(&raw, "From", &value));
    }
    let granted = tenant
        .mailbox_index(&addr)
        .and_then(|i| tenant.mailboxes.get(i))
        .is_some_and(|other| other.send_as.contains(&mb.upn));
    if granted {
        Ok(raw)
    } else {
        Err(send_as_denied())
    }
}

/// Replaces (or adds) one header field, folded lines included.
pub fn set_header(raw: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut out = format!("{name}: {value}\r\n").into_bytes();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut in_header = true;
    let mut skipping = false;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_header {
            if line == b"\r\n" || line == b"\n" {
                in_header = false;
            } else if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                if skipping {
                    continue;
                }
            } else {
                skipping = line.len() >= prefix.len()
                    && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
                if skipping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// Mail to an address of an emulated mailbox lands in its Inbox, once per mailbox.
pub fn deliver_internal(tenant: &mut Tenant, raw: &[u8], recipients: &[String]) {
    let for_recipients = mime::strip_bcc(raw);
    let Ok(parsed) = mime::parse(&for_recipients) else {
        return;
    };
    let mut targets: Vec<usize> = recipients
        .iter()
        .filter_map(|r| tenant.mailbox_index(r))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    for idx in targets {
        let Some(mb) = tenant.mailboxes.get_mut(idx) else {
            continue;
        };
        let Ok(inbox) = mb.wk("inbox") else { continue };
        mb.insert_message(inbox, stored(for_recipients.clone(), parsed.clone(), false));
    }
}

/// Delivery from outside the tenant (the `/_emulator/.../deliver` control endpoint).
pub fn deliver_external(
    tenant: &mut Tenant,
    mailbox: usize,
    folder: &str,
    raw: Vec<u8>,
) -> GraphResult<Value> {
    let parsed = mime::parse(&raw)
        .map_err(|_| GraphError::bad_request("The body is not an RFC 822 message."))?;
    let mb = tenant.mailbox_mut(mailbox)?;
    let folder = mb.resolve_folder(folder)?;
    let key = mb.insert_message(folder, stored(raw, parsed, false));
    let m = mb.message(key)?;
    Ok(serde_json::json!({"id": m.rest_id, "immutableId": m.immutable_id}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_folded_field() {
        let raw = b"From: a\r\n b\r\nTo: c\r\n\r\nFrom: body\r\n";
        let out = set_header(raw, "From", "X <x@y>");
        assert_eq!(
            out,
            b"From: X <x@y>\r\nTo: c\r\n\r\nFrom: body\r\n".to_vec()
        );
    }
}
