//! The outbox: messages accepted over SMTP, durable before the client hears `250`.
//!
//! Each item walks through phases that are written down *before* the Graph call they
//! announce, so that after a crash the worker knows which Graph state it may find:
//! `new` (nothing in Graph) → `drafting` (a tagged draft may exist) → `sending` (the draft may
//! have been sent) → `sent`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{now_unix, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Queued,
    Sent,
    Failed,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> OutboxState {
        match text {
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            _ => OutboxState::Queued,
        }
    }
}

/// How far the send of an item got in Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPhase {
    /// Nothing was asked of Graph yet.
    New,
    /// A draft carrying the item's tag may exist.
    Drafting,
    /// The draft may have been sent.
    Sending,
    Sent,
}

impl SendPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SendPhase::New => "new",
            SendPhase::Drafting => "drafting",
            SendPhase::Sending => "sending",
            SendPhase::Sent => "sent",
        }
    }

    fn parse(text: &str) -> SendPhase {
        match text {
            "drafting" => SendPhase::Drafting,
            "sending" => SendPhase::Sending,
            "sent" => SendPhase::Sent,
            _ => SendPhase::New,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub mailbox_id: i64,
    pub user_id: Option<i64>,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub state: OutboxState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub phase: SendPhase,
    /// Random value of the extended property that marks this item's draft and sent copy.
    pub tag: String,
    pub draft_id: Option<String>,
    pub sent_graph_id: Option<String>,
    pub next_attempt_at: i64,
    pub message_id: Option<String>,
    pub fingerprint: Option<String>,
    pub recipient_count: u32,
    /// URLs of the download links the message carries.
    pub links: Vec<String>,
    /// False when the client's own copy is the Sent copy (`sent_copy = client`).
    pub save_copy: bool,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// What `enqueue_item` stores.
#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    pub mailbox_id: i64,
    pub user_id: Option<i64>,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub tag: String,
    pub message_id: Option<String>,
    pub fingerprint: Option<String>,
    pub links: Vec<String>,
    pub save_copy: bool,
    /// The worker leaves the item alone until then (the SMTP session tries first).
    pub not_before: i64,
}

/// Queues a message. The store runs with `synchronous = FULL`, so once this returns the
/// message survives a crash or power cut.
pub fn enqueue(
    conn: &Connection,
    mailbox_id: i64,
    user_id: Option<i64>,
    mail_from: &str,
    recipients: &[String],
    message: &[u8],
) -> StoreResult<i64> {
    enqueue_item(
        conn,
        &NewOutboxItem {
            mailbox_id,
            user_id,
            mail_from: mail_from.to_string(),
            recipients: recipients.to_vec(),
            message: message.to_vec(),
            tag: format!("legacy-{}", now_unix()),
            message_id: None,
            fingerprint: None,
            links: Vec::new(),
            save_copy: true,
            not_before: 0,
        },
    )
}

pub fn enqueue_item(conn: &Connection, item: &NewOutboxItem) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO outbox (mailbox_id, user_id, mail_from, recipients, message, created_at,
           tag, message_id, fingerprint, recipient_count, links, save_copy, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            item.mailbox_id,
            item.user_id,
            item.mail_from,
            item.recipients.join("\n"),
            item.message,
            now_unix(),
            item.tag,
            item.message_id,
            item.fingerprint,
            item.recipients.len() as i64,
            item.links.join("\n"),
            item.save_copy,
            item.not_before,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

const COLUMNS: &str = "id, mailbox_id, user_id, mail_from, recipients, message, state, attempts,
    last_error, phase, tag, draft_id, sent_graph_id, next_attempt_at, message_id, fingerprint,
    recipient_count, links, save_copy, created_at, sent_at";

fn lines(text: String) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let state: String = row.get(6)?;
    let phase: String = row.get(9)?;
    let tag: Option<String> = row.get(10)?;
    let id: i64 = row.get(0)?;
    Ok(OutboxItem {
        id,
        mailbox_id: row.get(1)?,
        user_id: row.get(2)?,
        mail_from: row.get(3)?,
        recipients: lines(row.get(4)?),
        message: row.get(5)?,
        state: OutboxState::parse(&state),
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        phase: SendPhase::parse(&phase),
        tag: tag.unwrap_or_else(|| format!("outbox-{id}")),
        draft_id: row.get(11)?,
        sent_graph_id: row.get(12)?,
        next_attempt_at: row.get(13)?,
        message_id: row.get(14)?,
        fingerprint: row.get(15)?,
        recipient_count: row.get(16)?,
        links: lines(row.get(17)?),
        save_copy: row.get(18)?,
        created_at: row.get(19)?,
        sent_at: row.get(20)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> StoreResult<Option<OutboxItem>> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

pub fn queued(conn: &Connection) -> StoreResult<Vec<OutboxItem>> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE state = 'queued' ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Queued items whose next attempt is due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64) -> StoreResult<Vec<OutboxItem>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?1 ORDER BY id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([now], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next queued item falls due, if any.
pub fn next_due_at(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'queued'",
        [],
        |row| row.get(0),
    )?)
}

pub fn mark(
    conn: &Connection,
    id: i64,
    state: OutboxState,
    error: Option<&str>,
) -> StoreResult<()> {
    let sent_at = (state == OutboxState::Sent).then(now_unix);
    conn.execute(
        "UPDATE outbox SET state = ?2, last_error = ?3, attempts = attempts + 1,
           sent_at = COALESCE(?4, sent_at) WHERE id = ?1",
        params![id, state.as_str(), error, sent_at],
    )?;
    Ok(())
}

/// Records how far the send got; written before the Graph call the phase announces.
pub fn set_phase(
    conn: &Connection,
    id: i64,
    phase: SendPhase,
    draft_id: Option<&str>,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE outbox SET phase = ?2, draft_id = COALESCE(?3, draft_id) WHERE id = ?1",
        params![id, phase.as_str(), draft_id],
    )?;
    Ok(())
}

/// Graph accepted the message: it will not be sent again.
pub fn mark_sent(
    conn: &Connection,
    id: i64,
    sent_graph_id: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE outbox SET state = 'sent', phase = 'sent', sent_graph_id = ?2, sent_at = ?3,
           attempts = attempts + 1, last_error = NULL WHERE id = ?1",
        params![id, sent_graph_id, now],
    )?;
    Ok(())
}

/// A transient failure: try again at `next_at`. The phase is kept, so the next attempt
/// first looks for what this one may have left in Graph.
pub fn reschedule(conn: &Connection, id: i64, next_at: i64, error: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?2
         WHERE id = ?1",
        params![id, next_at, error],
    )?;
    Ok(())
}

/// Delays an item without counting an attempt (pacing).
pub fn defer(conn: &Connection, id: i64, next_at: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1",
        params![id, next_at],
    )?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, id: i64, error: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}

/// (sent_at, recipients) of the messages the account's mailboxes sent since `since`.
pub fn sends_since(conn: &Connection, account_id: i64, since: i64) -> StoreResult<Vec<(i64, u32)>> {
    let mut stmt = conn.prepare(
        "SELECT o.sent_at, o.recipient_count FROM outbox o JOIN mailboxes m ON m.id = o.mailbox_id
         WHERE o.state = 'sent' AND o.sent_at >= ?2 AND (m.id = ?1 OR m.alias_of = ?1)
         ORDER BY o.sent_at",
    )?;
    let rows = stmt.query_map(params![account_id, since], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sent items of the account with this Message-ID, sent since `since`:
/// (Graph id of the Sent Items copy, content fingerprint).
pub fn sent_with_message_id(
    conn: &Connection,
    account_id: i64,
    message_id: &str,
    since: i64,
) -> StoreResult<Vec<(String, Option<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT o.sent_graph_id, o.fingerprint FROM outbox o JOIN mailboxes m ON m.id = o.mailbox_id
         WHERE o.state = 'sent' AND o.save_copy = 1 AND o.sent_graph_id IS NOT NULL
           AND o.message_id = ?2 AND o.sent_at >= ?3 AND (m.id = ?1 OR m.alias_of = ?1)
         ORDER BY o.id DESC",
    )?;
    let rows = stmt.query_map(params![account_id, message_id, since], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// True when the bridge queued a message with this Message-ID (so it is not an outside send).
pub fn has_message_id(conn: &Connection, message_id: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM outbox WHERE message_id = ?1 LIMIT 1",
            [message_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// True when the bridge's own send produced this Sent Items item.
pub fn has_sent_graph_id(conn: &Connection, graph_id: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM outbox WHERE sent_graph_id = ?1 LIMIT 1",
            [graph_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Serial-mail history: messages with attachments, by attachment digest.
pub fn record_attachment_send(
    conn: &Connection,
    mailbox_id: i64,
    digest: &str,
    recipients: &[String],
    at: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO attachment_sends (mailbox_id, digest, recipients, at) VALUES (?1, ?2, ?3, ?4)",
        params![mailbox_id, digest, recipients.join("\n"), at],
    )?;
    conn.execute("DELETE FROM attachment_sends WHERE at < ?1", [at - 86_400])?;
    Ok(())
}

/// Recipient lists of earlier messages with the same attachments since `since`.
pub fn attachment_sends_since(
    conn: &Connection,
    mailbox_id: i64,
    digest: &str,
    since: i64,
) -> StoreResult<Vec<Vec<String>>> {
    let mut stmt = conn.prepare(
        "SELECT recipients FROM attachment_sends WHERE mailbox_id = ?1 AND digest = ?2 AND at >= ?3",
    )?;
    let rows = stmt.query_map(params![mailbox_id, digest, since], |row| {
        row.get::<_, String>(0).map(lines)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Remembers that Microsoft 365 would not send from this alias mailbox.
pub fn record_alias_refusal(
    conn: &Connection,
    mailbox_id: i64,
    detail: &str,
    at: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO alias_refusals (mailbox_id, refused_at, detail) VALUES (?1, ?2, ?3)
         ON CONFLICT (mailbox_id) DO UPDATE SET refused_at = excluded.refused_at,
           detail = excluded.detail",
        params![mailbox_id, at, detail],
    )?;
    Ok(())
}

/// When Microsoft 365 last refused sending from this alias mailbox, if it did.
pub fn alias_refused_at(conn: &Connection, mailbox_id: i64) -> StoreResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT refused_at FROM alias_refusals WHERE mailbox_id = ?1",
            [mailbox_id],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn clear_alias_refusal(conn: &Connection, mailbox_id: i64) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM alias_refusals WHERE mailbox_id = ?1",
        [mailbox_id],
    )?;
    Ok(())
}
