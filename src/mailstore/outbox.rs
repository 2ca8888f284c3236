//! The outbox: messages accepted over SMTP, durable before the client hears `250`.

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
    conn.execute(
        "INSERT INTO outbox (mailbox_id, user_id, mail_from, recipients, message, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            mailbox_id,
            user_id,
            mail_from,
            recipients.join("\n"),
            message,
            now_unix()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

const COLUMNS: &str =
    "id, mailbox_id, user_id, mail_from, recipients, message, state, attempts, last_error";

fn from_row(row: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let recipients: String = row.get(4)?;
    let state: String = row.get(6)?;
    Ok(OutboxItem {
        id: row.get(0)?,
        mailbox_id: row.get(1)?,
        user_id: row.get(2)?,
        mail_from: row.get(3)?,
        recipients: recipients.lines().map(str::to_string).collect(),
        message: row.get(5)?,
        state: OutboxState::parse(&state),
        attempts: row.get(7)?,
        last_error: row.get(8)?,
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
