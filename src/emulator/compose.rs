//! A Graph message in JSON (`sendMail`'s `message`, `POST /me/messages`) turned into MIME.

use axum::http::StatusCode;
use base64::Engine;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use serde_json::Value;

use super::errors::{GraphError, GraphResult};
use super::mime::EmailAddr;

fn invalid_recipients(msg: &str) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ErrorInvalidRecipients", msg)
}

/// `{"emailAddress":{"name","address"}}`
pub fn parse_addr(v: &Value) -> GraphResult<EmailAddr> {
    let e = v.get("emailAddress").unwrap_or(v);
    let address = e
        .get("address")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|a| a.contains('@'))
        .ok_or_else(|| {
            invalid_recipients("A recipient's emailAddress.address is missing or invalid.")
        })?;
    let name = e
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(address)
        .to_string();
    Ok(EmailAddr {
        name,
        address: address.to_string(),
    })
}

pub fn parse_addrs(v: Option<&Value>) -> GraphResult<Vec<EmailAddr>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(parse_addr).collect(),
        Some(_) => Err(invalid_recipients("Recipients must be an array.")),
    }
}

fn to_list(v: &[EmailAddr]) -> Address<'static> {
    Address::new_list(
        v.iter()
            .map(|a| Address::new_address(Some(a.name.clone()), a.address.clone()))
            .collect(),
    )
}

/// A file attachment from JSON (`#microsoft.graph.fileAttachment`).
#[derive(Clone, Debug)]
pub struct FileAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub is_inline: bool,
    pub content_id: Option<String>,
}

pub fn parse_attachment(v: &Value) -> GraphResult<FileAttachment> {
    let kind = v.get("@odata.type").and_then(Value::as_str).unwrap_or("");
    if !kind.eq_ignore_ascii_case("#microsoft.graph.fileAttachment") {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "Only #microsoft.graph.fileAttachment is supported by the emulator.",
        ));
    }
    let b64 = v.get("contentBytes").and_then(Value::as_str).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| GraphError::bad_request("contentBytes is not valid base64."))?;
    Ok(FileAttachment {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("attachment")
            .to_string(),
        content_type: v
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_string(),
        bytes,
        is_inline: v.get("isInline").and_then(Value::as_bool).unwrap_or(false),
        content_id: v
            .get("contentId")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Builds MIME from a Graph message object. `default_from` is used when `from` is absent.
pub fn mime_from_json(
    m: &Value,
    default_from: Option<&EmailAddr>,
    domain: &str,
) -> GraphResult<Vec<u8>> {
    if !m.is_object() {
        return Err(GraphError::bad_request(
            "The message must be a JSON object.",
        ));
    }
    let from = match m.get("from") {
        Some(v) if !v.is_null() => Some(parse_addr(v)?),
        _ => default_from.cloned(),
    };
    let mut b = MessageBuilder::new().message_id(format!("{}@{}", super::ids::token(18), domain));
    if let Some(f) = &from {
        b = b.from(Address::new_address(
            Some(f.name.clone()),
            f.address.clone(),
        ));
    }
    for (key, header) in [
        ("toRecipients", "To"),
        ("ccRecipients", "Cc"),
        ("bccRecipients", "Bcc"),
        ("replyTo", "Reply-To"),
    ] {
        let list = parse_addrs(m.get(key))?;
        if !list.is_empty() {
            b = b.header(header, to_list(&list));
        }
    }
    if let Some(s) = m.get("subject").and_then(Value::as_str) {
        b = b.subject(s.to_string());
    }
    if let Some(imp) = m.get("importance").and_then(Value::as_str) {
        if imp != "normal" {
            b = b.header("Importance", Raw::new(imp.to_string()));
        }
    }
    if let Some(Value::Array(hs)) = m.get("internetMessageHeaders") {
        for h in hs {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("");
            let value = h.get("value").and_then(Value::as_str).unwrap_or("");
            // Graph accepts only custom `X-` headers here.
            if !name.to_ascii_lowercase().starts_with("x-") {
                return Err(GraphError::bad_request(format!(
                    "The internet message header name '{name}' should start with 'x-' or 'X-'."
                )));
            }
            b = b.header(name.to_string(), Raw::new(value.to_string()));
        }
    }
    let body = m.get("body");
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let is_html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    b = if is_html {
        b.html_body(content)
    } else {
        b.text_body(content)
    };
    if let Some(Value::Array(atts)) = m.get("attachments") {
        for a in atts {
            let a = parse_attachment(a)?;
            b = match (a.is_inline, a.content_id) {
                (true, Some(cid)) => b.inline(a.content_type, cid, a.bytes),
                _ => b.attachment(a.content_type, a.name, a.bytes),
            };
        }
    }
    b.write_to_vec()
        .map_err(|e| GraphError::bad_request(format!("The message could not be built: {e}")))
}
