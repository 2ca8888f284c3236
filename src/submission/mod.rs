//! Submission: what happens to a message between SMTP's DATA and Graph.
//!
//! Checks who may send as whom and Microsoft 365's rules (recipient limit, serial mail with
//! attachments, size), turns attachments into download links when the body asks for it (or
//! the mailbox's policy does), adds envelope-only recipients as Bcc (Graph reads recipients
//! from the headers), and queues the message durably; the outbox worker sends it.

pub mod activities;
pub mod clock;
pub mod dsn;
pub mod links;
pub mod links_http;
pub mod message;
pub mod outbox;
pub mod policy;
pub mod sent_copy;

pub use sent_copy::recent_send_matching;

use crate::auth::Login;
use crate::bridge::Bridge;
use crate::config::{LargeAttachments, MailboxPolicy, SentCopy};
use crate::mailstore::links as stored_links;
use crate::mailstore::{outbox as stored, MailboxRecord, NewOutboxItem, StoreError};
use message::{Analysis, LinkKind, RenderedLink};

/// Raw bytes that still fit Graph's 4 MB request once base64-encoded.
pub const GRAPH_MIME_LIMIT: usize = 3_000_000;
/// How long a refusal to send from an alias is remembered before the bridge tries again.
pub const ALIAS_RECHECK_SECS: i64 = 24 * 3600;
const SEND_FROM_ALIAS_HINT: &str = "the Microsoft 365 administrator must run \
    `Set-OrganizationConfig -SendFromAliasEnabled $true` (admin centre: Settings » Org settings \
    » Mail flow » allow sending from aliases)";

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("you may send only as {allowed}; not as {given}")]
    NotAllowedSender { given: String, allowed: String },
    #[error("the message has no From header")]
    NoFrom,
    #[error("the message is not valid RFC 5322")]
    Unparseable,
    #[error(
        "Microsoft 365 mailboxes send to at most {limit} recipients per message (To, Cc, Bcc \
         and envelope, each counted once); this one has {count}. Nothing was sent. Send \
         attachments to many people with _downloadLink(Text) or _agreementLink(Text) and \
         split the recipients"
    )]
    TooManyRecipients { count: usize, limit: usize },
    #[error(
        "serial mail with attachments cannot go through Microsoft 365 ({reason}). Nothing was \
         sent. Put _downloadLink(Text) or _agreementLink(Text) in the text: the attachments \
         are then offered as a download link, valid for {days} days"
    )]
    SerialMail { reason: String, days: u32 },
    #[error(
        "this mailbox does not send attachments (its attachment policy is \"refuse\"). Nothing \
         was sent. Put _downloadLink(Text) or _agreementLink(Text) in the text to offer them as a \
         download link instead"
    )]
    AttachmentsRefused,
    #[error("the message has {size} bytes; the mailbox accepts at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("Microsoft 365 does not send from the alias {alias} ({detail}); {hint}")]
    AliasRefused {
        alias: String,
        detail: String,
        hint: &'static str,
    },
    #[error("cannot store the attachments for download: {0}")]
    Links(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// The SMTP reply line for this refusal.
    pub fn smtp_reply(&self) -> String {
        let code = match self {
            SubmitError::NotAllowedSender { .. } => "550 5.7.1",
            SubmitError::NoFrom | SubmitError::Unparseable => "550 5.6.0",
            SubmitError::TooManyRecipients { .. } => "550 5.5.3",
            SubmitError::SerialMail { .. } | SubmitError::AttachmentsRefused => "550 5.7.0",
            SubmitError::TooLarge { .. } => "552 5.3.4",
            SubmitError::AliasRefused { .. } => "550 5.7.60",
            SubmitError::Links(_) | SubmitError::Store(_) => {
                return "451 4.3.0 Cannot queue the message now, try again".into()
            }
        };
        format!("{code} {self}")
    }

    pub fn alias_refused(alias: &str, detail: &str) -> SubmitError {
        SubmitError::AliasRefused {
            alias: alias.to_string(),
            detail: detail.to_string(),
            hint: SEND_FROM_ALIAS_HINT,
        }
    }
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
    submit_at(
        bridge,
        login,
        envelope,
        message,
        crate::mailstore::now_unix(),
    )
    .await
}

/// [`submit`] at a given time (the serial-mail window and link expiry are computed from it).
/// The worker leaves the item alone for `smtp.send_wait_secs`, while the session tries it.
pub async fn submit_at(
    bridge: &Bridge,
    login: &Login,
    envelope: &Envelope,
    message: &[u8],
    now: i64,
) -> Result<i64, SubmitError> {
    sending_mailbox(login, &envelope.mail_from)?;
    let analysis = message::analyse(message).ok_or(SubmitError::Unparseable)?;
    let from = analysis.from.clone().ok_or(SubmitError::NoFrom)?;
    let mailbox = sending_mailbox(login, &from)?.clone();
    let policy = policy::for_mailbox(bridge, &mailbox);
    let limit = policy
        .max_message_bytes
        .min(bridge.config.smtp.max_message_bytes);
    if message.len() > limit {
        return Err(SubmitError::TooLarge {
            size: message.len(),
            limit,
        });
    }
    let recipients = policy::distinct_recipients(
        envelope
            .recipients
            .iter()
            .chain(&analysis.header_recipients),
    );
    if policy.refuse_attachments && !analysis.attachments.is_empty() && analysis.macros.is_empty() {
        return Err(SubmitError::AttachmentsRefused);
    }
    if recipients.len() > policy.max_recipients {
        return Err(SubmitError::TooManyRecipients {
            count: recipients.len(),
            limit: policy.max_recipients,
        });
    }
    check_alias(bridge, &mailbox, now).await?;
    let digest = message::attachments_digest(&analysis.attachments);
    let kinds = link_kinds(
        bridge,
        &mailbox,
        &policy,
        &analysis,
        &digest,
        &recipients,
        message.len(),
        now,
    )
    .await?;
    let missing: Vec<&String> = envelope
        .recipients
        .iter()
        .filter(|r| {
            !analysis
                .header_recipients
                .iter()
                .any(|h| h.eq_ignore_ascii_case(r))
        })
        .collect();
    let domain = mailbox
        .address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("localhost");
    let (original, message_id) = message::ensure_message_id(with_bcc(message, &missing), domain);
    let public_url = bridge.config.public_url();
    let fingerprint = message::fingerprint(&original);
    let (queued, prepared) = if kinds.is_empty() {
        (original, Vec::new())
    } else {
        convert_to_links(bridge, &mailbox, &policy, &analysis, &original, &kinds, now)?
    };
    let item = NewOutboxItem {
        mailbox_id: mailbox.id,
        user_id: Some(login.user.id),
        mail_from: envelope.mail_from.clone(),
        recipients: recipients.clone(),
        message: queued,
        tag: links::random_token(),
        message_id: Some(message_id),
        fingerprint,
        links: prepared
            .iter()
            .map(|p| links::url(&public_url, &p.record.token))
            .collect(),
        save_copy: policy.sent_copy == SentCopy::Graph,
        not_before: now + bridge.config.smtp.send_wait_secs as i64 + 5,
    };
    let had_files = !analysis.attachments.is_empty();
    let mailbox_id = mailbox.id;
    let id = bridge
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            for link in &prepared {
                stored_links::insert_link(&tx, &link.record, &link.files)?;
            }
            let id = stored::enqueue_item(&tx, &item)?;
            if had_files {
                stored::record_attachment_send(&tx, mailbox_id, &digest, &recipients, now)?;
            }
            tx.commit()?;
            Ok(id)
        })
        .await?;
    bridge.outbox_ready.notify_one();
    Ok(id)
}

/// Refuses up front while Microsoft 365 is known to refuse sending from this alias.
async fn check_alias(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    now: i64,
) -> Result<(), SubmitError> {
    if mailbox.alias_of.is_none() {
        return Ok(());
    }
    let id = mailbox.id;
    let refused = bridge
        .store
        .call(move |c| stored::alias_refused_at(c, id))
        .await?;
    match refused {
        Some(at) if now - at < ALIAS_RECHECK_SECS => Err(SubmitError::alias_refused(
            &mailbox.address,
            "it refused or rewrote an earlier message",
        )),
        _ => Ok(()),
    }
}

/// Which links the message gets: those its macros ask for; one download link when the
/// policy converts serial, bulk or oversized mail; none otherwise. Serial or bulk mail with
/// attachments and neither is refused.
#[allow(clippy::too_many_arguments)]
async fn link_kinds(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    policy: &MailboxPolicy,
    analysis: &Analysis,
    digest: &str,
    recipients: &[String],
    size: usize,
    now: i64,
) -> Result<Vec<LinkKind>, SubmitError> {
    if analysis.attachments.is_empty() {
        return Ok(Vec::new());
    }
    let mut kinds: Vec<LinkKind> = Vec::new();
    for m in &analysis.macros {
        if !kinds.contains(&m.kind) {
            kinds.push(m.kind);
        }
    }
    if !kinds.is_empty() {
        return Ok(kinds);
    }
    let serial = serial_reason(bridge, mailbox, policy, analysis, digest, recipients, now).await?;
    if let Some(reason) = serial {
        if policy.auto_links {
            return Ok(vec![LinkKind::Download]);
        }
        return Err(SubmitError::SerialMail {
            reason,
            days: bridge.config.submission.link_validity_days,
        });
    }
    if size > GRAPH_MIME_LIMIT && policy.large_attachments == LargeAttachments::Links {
        return Ok(vec![LinkKind::Download]);
    }
    Ok(Vec::new())
}

async fn serial_reason(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    policy: &MailboxPolicy,
    analysis: &Analysis,
    digest: &str,
    recipients: &[String],
    now: i64,
) -> Result<Option<String>, SubmitError> {
    if analysis.bulk {
        return Ok(Some("it is marked as bulk mail".into()));
    }
    let (id, digest_owned) = (mailbox.id, digest.to_string());
    let since = now - policy.serial_window_mins as i64 * 60;
    let earlier = bridge
        .store
        .call(move |c| stored::attachment_sends_since(c, id, &digest_owned, since))
        .await?;
    if policy::is_serial(policy.serial_copies, &earlier, recipients) {
        return Ok(Some(format!(
            "the same attachments went to other recipients {} times in the last {} minutes",
            earlier.len(),
            policy.serial_window_mins
        )));
    }
    Ok(None)
}

/// Seals the attachments into links and rewrites the message to carry them.
fn convert_to_links(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    policy: &MailboxPolicy,
    analysis: &Analysis,
    original: &[u8],
    kinds: &[LinkKind],
    now: i64,
) -> Result<(Vec<u8>, Vec<links::PreparedLink>), SubmitError> {
    let public_url = bridge.config.public_url();
    let mut prepared = Vec::new();
    for &kind in kinds {
        let label = analysis
            .macros
            .iter()
            .find(|m| m.kind == kind && !m.label.is_empty())
            .map(|m| m.label.clone())
            .unwrap_or_else(|| message::default_label(kind).to_string());
        let request = links::LinkRequest {
            mailbox_id: mailbox.id,
            kind,
            label: &label,
            agreement_text: &policy.agreement_text,
            now,
            validity_days: bridge.config.submission.link_validity_days,
        };
        let link = links::prepare(
            &bridge.secrets,
            &bridge.config.data_dir,
            &request,
            &analysis.attachments,
        )
        .map_err(SubmitError::Links)?;
        prepared.push(link);
    }
    let rendered: Vec<RenderedLink> = prepared
        .iter()
        .map(|p| RenderedLink {
            kind: p.kind,
            url: links::url(&public_url, &p.record.token),
        })
        .collect();
    let rewritten =
        message::replace_attachments(original, &rendered).ok_or(SubmitError::Unparseable)?;
    Ok((rewritten, prepared))
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

    #[test]
    fn refusals_carry_the_codes_the_help_page_promises() {
        let e = SubmitError::TooManyRecipients {
            count: 11,
            limit: 10,
        };
        let reply = e.smtp_reply();
        assert!(reply.starts_with("550 5.5.3 "), "{reply}");
        assert!(reply.contains("_downloadLink(Text)") && reply.contains("10"));
        let e = SubmitError::alias_refused("info@contoso.test", "x");
        let reply = e.smtp_reply();
        assert!(reply.starts_with("550 5.7.60 "));
        assert!(reply.contains("Set-OrganizationConfig -SendFromAliasEnabled $true"));
        let e = SubmitError::SerialMail {
            reason: "bulk".into(),
            days: 14,
        };
        assert!(e.smtp_reply().starts_with("550 5.7.0 "));
        assert!(e.smtp_reply().contains("_downloadLink(Text)"));
    }
}
