//! Delivery status notifications (RFC 3464) for messages the bridge accepted but could not
//! send. The notice is created in the sender's INBOX through Graph, as a received (not draft)
//! message: Graph builds its MIME from JSON, so the machine-readable part travels as a
//! `message/delivery-status` attachment beside the original header.

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
    let sync = match bridge.sync_for(&mailbox) {
        Some(sync) => sync,
        None => bridge.attach_account(mailbox.account_id()).await?,
    };
    let domain = mailbox
        .address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "localhost".into());
    let notice = notice_json(item, &mailbox.address, reason, &domain);
    sync.graph_client()
        .create_in_folder("inbox", notice)
        .await?;
    sync.wake();
    Ok(())
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
    fn original_header_stops_at_the_blank_line() {
        assert_eq!(
            original_header(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(original_header(b"A: 1"), b"A: 1");
    }
}
