//! Submission: what happens to a message between SMTP's DATA and Graph's sendMail.
//! Checks who may send as whom, adds envelope-only recipients as Bcc (Graph reads recipients
//! from the headers), queues the message durably, and the outbox worker sends it.

pub mod outbox;

use mail_parser::MessageParser;

use crate::auth::Login;
use crate::bridge::Bridge;
use crate::mailstore::{outbox as stored, MailboxRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("you may send only as {allowed}; not as {given}")]
    NotAllowedSender { given: String, allowed: String },
    #[error("the message has no From header")]
    NoFrom,
    #[error("the message is not valid RFC 5322")]
    Unparseable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A message as the SMTP session received it.
pub struct Envelope {
    pub mail_from: String,
    pub recipients: Vec<String>,
}

/// Checks and queues a message; once this returns Ok the message is on disk and will be sent.
pub async fn submit(
    bridge: &Bridge,
    login: &Login,
    envelope: &Envelope,
    message: &[u8],
) -> Result<i64, SubmitError> {
    let mailbox = sending_mailbox(login, &envelope.mail_from)?;
    let parsed = MessageParser::default()
        .parse_headers(message)
        .ok_or(SubmitError::Unparseable)?;
    let from = parsed
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .ok_or(SubmitError::NoFrom)?
        .to_string();
    sending_mailbox(login, &from)?;
    let header_recipients = header_recipients(&parsed);
    let missing: Vec<&String> = envelope
        .recipients
        .iter()
        .filter(|r| !header_recipients.iter().any(|h| h.eq_ignore_ascii_case(r)))
        .collect();
    let message = with_bcc(message, &missing);
    let mailbox_id = mailbox.id;
    let user_id = login.user.id;
    let mail_from = envelope.mail_from.clone();
    let recipients = envelope.recipients.clone();
    let id = bridge
        .store
        .call(move |c| {
            stored::enqueue(
                c,
                mailbox_id,
                Some(user_id),
                &mail_from,
                &recipients,
                &message,
            )
        })
        .await?;
    bridge.outbox_ready.notify_one();
    Ok(id)
}

/// The assigned mailbox whose address is `address`; an empty reverse path sends as the
/// login's own mailbox.
fn sending_mailbox<'a>(login: &'a Login, address: &str) -> Result<&'a MailboxRecord, SubmitError> {
    if address.is_empty() {
        return Ok(&login.primary);
    }
    login
        .mailboxes
        .iter()
        .find(|m| m.address.eq_ignore_ascii_case(address))
        .ok_or_else(|| SubmitError::NotAllowedSender {
            given: address.to_string(),
            allowed: login
                .mailboxes
                .iter()
                .map(|m| m.address.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn header_recipients(message: &mail_parser::Message<'_>) -> Vec<String> {
    [message.to(), message.cc(), message.bcc()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|a| a.address().map(str::to_string))
        .collect()
}

/// Adds a `Bcc:` header naming envelope recipients the headers do not name, so Graph (which
/// reads recipients from the headers) delivers to them; Exchange strips Bcc before delivery.
fn with_bcc(message: &[u8], missing: &[&String]) -> Vec<u8> {
    if missing.is_empty() {
        return message.to_vec();
    }
    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    let mut out = format!("Bcc: {}\r\n", names.join(", ")).into_bytes();
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_only_recipients_become_bcc() {
        let message = b"From: a@x.test\r\nTo: b@x.test\r\n\r\nhi\r\n";
        let extra = "c@x.test".to_string();
        let out = with_bcc(message, &[&extra]);
        assert!(out.starts_with(b"Bcc: c@x.test\r\nFrom: a@x.test"));
        assert_eq!(with_bcc(message, &[]), message.to_vec());
    }
}
