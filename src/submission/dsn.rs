//! Delivery status notifications (RFC 3464) for messages the bridge accepted but could not
//! send. The notice is created in the sender's INBOX through Graph, as a received (not draft)
//! message. Graph builds its own MIME from JSON (there the machine-readable part travels as a
//! `message/delivery-status` attachment beside the original header); IMAP clients are served
//! the bridge's own `multipart/report` bytes for it, stored as the message's body.

use base64::Engine;
use serde_json::json;

use crate::bridge::Bridge;
use crate::mailstore::{accounts, OutboxItem};

#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    #[error(transparent)]
    Store(#[from] crate::mailstore::StoreError),
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
}

/// The `message/delivery-status` body: per-message fields, then one block per recipient.
pub fn delivery_status(
    reporting: &str,
    recipients: &[String],
    reason: &str,
    arrival: i64,
) -> String {
    let arrival = chrono::DateTime::from_timestamp(arrival, 0)
        .unwrap_or_default()
        .to_rfc2822();
    let reason = reason.replace(['\r', '\n'], " ");
    let mut out = format!("Reporting-MTA: dns; {reporting}\r\nArrival-Date: {arrival}\r\n");
    for r in recipients {
        out.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.0.0\r\n\
             Diagnostic-Code: smtp; {reason}\r\n"
        ));
    }
    out
}

/// The original message's header (the part before the first blank line).
pub fn original_header(raw: &[u8]) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(raw.len());
    raw[..end].to_vec()
}

/// Graph JSON for the notice, created non-draft and unread (PidTagMessageFlags = 0).
pub fn notice_json(
    item: &OutboxItem,
    sender: &str,
    reason: &str,
    reporting: &str,
) -> serde_json::Value {
    let subject = super::message::analyse(&item.message)
        .map(|a| a.subject)
        .unwrap_or_default();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let text = format!(
        "This is the mail system at {reporting}.\r\n\r\nYour message \"{subject}\" could not be \
         sent through Microsoft 365 to:\r\n\r\n{}\r\n\r\nReason: {reason}\r\n",
        item.recipients.join("\r\n")
    );
    let status = delivery_status(reporting, &item.recipients, reason, item.created_at);
    json!({
        "subject": format!("Undelivered Mail Returned to Sender: {subject}"),
        "body": {"contentType": "text", "content": text},
        "from": {"emailAddress": {"name": "Mail Delivery System", "address": format!("postmaster@{reporting}")}},
        "toRecipients": [{"emailAddress": {"address": sender}}],
        "attachments": [
            {"@odata.type": "#microsoft.graph.fileAttachment", "name": "delivery-status.txt",
             "contentType": "message/delivery-status", "contentBytes": b64(status.as_bytes())},
            {"@odata.type": "#microsoft.graph.fileAttachment", "name": "original-header.txt",
             "contentType": "text/rfc822-headers", "contentBytes": b64(&original_header(&item.message))},
        ],
        "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "0"}],
    })
}

/// Creates the notice in the INBOX of the account the item was sent from.
pub async fn deliver(bridge: &Bridge, item: &OutboxItem, reason: &str) -> Result<(), DsnError> {
    let mailbox_id = item.mailbox_id;
    let mailbox = bridge
        .store
        .call(move |c| accounts::mailbox_by_id(c, mailbox_id))
        .await?;
    let sync = bridge.sync_or_attach(&mailbox).await?;
    let domain = mailbox
        .address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "localhost".into());
    let notice = notice_json(item, &mailbox.address, reason, &domain);
    let id = sync
        .graph_client()
        .create_in_folder("inbox", notice)
        .await?;
    let report = report_mime(item, &mailbox.address, reason, &domain);
    let account = mailbox.account_id();
    bridge
        .store
        .call(move |c| {
            crate::mailstore::messages::put_body(
                c,
                account,
                &id,
                &report,
                crate::mailstore::BodyOrigin::Bridge,
            )
        })
        .await?;
    sync.wake();
    Ok(())
}

/// The notice as RFC 3464 wants it: `multipart/report; report-type=delivery-status` with a
/// human-readable part, the `message/delivery-status` part and the original header.
pub fn report_mime(item: &OutboxItem, sender: &str, reason: &str, reporting: &str) -> Vec<u8> {
    let subject = super::message::analyse(&item.message)
        .map(|a| a.subject)
        .unwrap_or_default()
        .replace(['\r', '\n'], " ");
    let now = chrono::Utc::now();
    let boundary = format!("dsn-{}-{}", item.id, now.timestamp());
    let text = format!(
        "This is the mail system at {reporting}.\r\n\r\nYour message \"{subject}\" could not be \
         sent through Microsoft 365 to:\r\n\r\n{}\r\n\r\nReason: {}\r\n",
        item.recipients.join("\r\n"),
        reason.replace(['\r', '\n'], " ")
    );
    let status = delivery_status(reporting, &item.recipients, reason, item.created_at);
    let mut out = format!(
        "From: Mail Delivery System <postmaster@{reporting}>\r\nTo: <{sender}>\r\n\
         Subject: =?UTF-8?B?{}?=\r\nDate: {}\r\nMessage-ID: <{boundary}@{reporting}>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{status}\r\n\
         --{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n",
        base64::engine::general_purpose::STANDARD
            .encode(format!("Undelivered Mail Returned to Sender: {subject}")),
        now.to_rfc2822(),
    )
    .into_bytes();
    out.extend_from_slice(&original_header(&item.message));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_status_has_one_block_per_recipient() {
        let text = delivery_status(
            "contoso.test",
            &["a@x".into(), "b@x".into()],
            "boom\r\nx",
            0,
        );
        assert!(text.starts_with("Reporting-MTA: dns; contoso.test\r\n"));
        assert_eq!(text.matches("Final-Recipient: rfc822;").count(), 2);
        assert!(text.contains("Diagnostic-Code: smtp; boom  x\r\n"));
        assert!(text.contains("Action: failed\r\nStatus: 5.0.0"));
    }

    #[test]
    fn the_report_is_a_multipart_report_with_three_parts() {
        let item = OutboxItem {
            id: 7,
            mailbox_id: 1,
            user_id: None,
            mail_from: "sales@contoso.test".into(),
            recipients: vec!["a@x.test".into()],
            message: b"Subject: Offer\r\nTo: a@x.test\r\n\r\nbody".to_vec(),
            state: crate::mailstore::OutboxState::Queued,
            attempts: 0,
            last_error: None,
            phase: crate::mailstore::outbox::SendPhase::New,
            tag: String::new(),
            draft_id: None,
            sent_graph_id: None,
            next_attempt_at: 0,
            message_id: None,
            fingerprint: None,
            recipient_count: 1,
            links: Vec::new(),
            save_copy: true,
            created_at: 0,
            sent_at: None,
        };
        let raw = report_mime(&item, "sales@contoso.test", "refused", "contoso.test");
        let view = crate::imap::fetch::MessageView::parse(&raw);
        let structure = format!("{:?}", view.body_structure(false));
        assert!(
            structure.to_ascii_lowercase().contains("report"),
            "{structure}"
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains(
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; contoso.test"
        ));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: Offer\r\n"));
        assert!(text.ends_with("--\r\n"));
    }

    #[test]
    fn original_header_stops_at_the_blank_line() {
        assert_eq!(
            original_header(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(original_header(b"A: 1"), b"A: 1");
    }
}
