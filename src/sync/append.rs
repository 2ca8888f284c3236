//! APPEND of a non-draft: Graph creates messages from MIME only as drafts, so the client's
//! message is re-expressed as Graph JSON with PidTagMessageFlags set (graph-facts, "Create
//! from MIME"). Graph's rendering differs from the bytes; the bridge serves its own copy.

use base64::Engine;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{json, Value};

use crate::mailstore::Flags;

/// PidTagMessageFlags bits: read (0x1); unsent (0x8) is left off so the item is no draft.
const MSGFLAG_READ: u32 = 0x1;

/// Graph JSON for a non-draft copy of `raw`, or why it cannot be made.
pub fn graph_json(raw: &[u8], flags: Flags, keywords: &str) -> Result<Value, String> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| "the message is not valid RFC 5322".to_string())?;
    let message_flags = if flags.has(Flags::SEEN) {
        MSGFLAG_READ
    } else {
        0
    };
    let mut json = json!({
        "subject": message.subject().unwrap_or_default(),
        "body": body(&message),
        "toRecipients": recipients(message.to()),
        "ccRecipients": recipients(message.cc()),
        "bccRecipients": recipients(message.bcc()),
        "replyTo": recipients(message.reply_to()),
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": message_flags.to_string()}
        ],
    });
    if let Some(from) = recipients(message.from())
        .as_array()
        .and_then(|a| a.first())
    {
        json["from"] = from.clone();
    }
    if flags.has(Flags::FLAGGED) {
        json["flag"] = json!({"flagStatus": "flagged"});
    }
    let categories: Vec<&str> = keywords
        .split(super::CATEGORY_SEPARATOR)
        .filter(|c| !c.is_empty())
        .collect();
    if !categories.is_empty() {
        json["categories"] = json!(categories);
    }
    let attachments = attachments(&message);
    if !attachments.is_empty() {
        json["attachments"] = Value::Array(attachments);
    }
    Ok(json)
}

fn body(message: &mail_parser::Message<'_>) -> Value {
    match message.body_html(0) {
        Some(html) if message.html_body.first() != message.text_body.first() => {
            json!({"contentType": "html", "content": html})
        }
        _ => json!({"contentType": "text", "content": message.body_text(0).unwrap_or_default()}),
    }
}

fn recipients(address: Option<&Address<'_>>) -> Value {
    let Some(address) = address else {
        return json!([]);
    };
    Value::Array(
        address
            .iter()
            .filter_map(|a| {
                let email = a.address()?;
                Some(json!({"emailAddress": {"name": a.name().unwrap_or_default(), "address": email}}))
            })
            .collect(),
    )
}

fn attachments(message: &mail_parser::Message<'_>) -> Vec<Value> {
    message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            let mut attachment = json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": part.attachment_name().unwrap_or("attachment"),
                "contentType": content_type,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(part.contents()),
            });
            if let Some(id) = part.content_id() {
                attachment["contentId"] = json!(id);
                attachment["isInline"] = json!(true);
            }
            attachment
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_message_with_attachment_becomes_non_draft_json() {
        let raw = b"From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: Offer\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=offer.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQK\r\n--b--\r\n";
        let json = graph_json(raw, Flags(Flags::SEEN), "Kunde").expect("json");
        assert_eq!(json["subject"], "Offer");
        assert_eq!(json["from"]["emailAddress"]["address"], "anna@example.test");
        assert_eq!(json["singleValueExtendedProperties"][0]["value"], "1");
        assert_eq!(json["attachments"][0]["name"], "offer.pdf");
        assert_eq!(json["attachments"][0]["contentType"], "application/pdf");
        assert_eq!(json["categories"][0], "Kunde");
        assert_eq!(
            json["body"]["content"].as_str().map(str::trim),
            Some("See attached.")
        );
    }

    #[test]
    fn unread_is_flag_zero() {
        let json = graph_json(b"Subject: x\r\n\r\nbody\r\n", Flags::default(), "").expect("json");
        assert_eq!(json["singleValueExtendedProperties"][0]["value"], "0");
    }
}
