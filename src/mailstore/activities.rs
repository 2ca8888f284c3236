//! Activities: one row per message sent from a mailbox, booked exactly once (the dedup key
//! is unique), with the state of its webhook delivery.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreResult;

/// Where the sent message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivitySource {
    /// Sent through the bridge's SMTP.
    Bridge,
    /// Found in Sent Items (Outlook, a phone).
    External,
}

impl ActivitySource {
    fn as_str(self) -> &'static str {
        match self {
            ActivitySource::Bridge => "bridge",
            ActivitySource::External => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Activity {
    pub id: i64,
    pub mailbox: String,
    pub source: ActivitySource,
    /// `Email – Outbox`
    #[serde(rename = "type")]
    pub kind: String,
    /// `External email dispatch`
    pub action: String,
    /// The mailbox's main user.
    pub supervisor: Option<String>,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub sent_at: i64,
    pub links: Vec<String>,
}

/// An activity to book; `dedup_key` makes booking idempotent.
#[derive(Debug, Clone)]
pub struct NewActivity {
    pub dedup_key: String,
    pub mailbox_id: i64,
    pub source: ActivitySource,
    pub kind: String,
    pub action: String,
    pub supervisor: Option<String>,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub sent_at: i64,
    pub links: Vec<String>,
    pub webhook: bool,
}

/// Books an activity; false when one with the same key exists already.
pub fn book(conn: &Connection, a: &NewActivity) -> StoreResult<bool> {
    let changed = conn.execute(
        "INSERT INTO activities (dedup_key, mailbox_id, source, kind, action, supervisor, sender,
           recipients, subject, message_id, sent_at, links, webhook_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (dedup_key) DO NOTHING",
        params![
            a.dedup_key,
            a.mailbox_id,
            a.source.as_str(),
            a.kind,
            a.action,
            a.supervisor,
            a.sender,
            a.recipients.join("\n"),
            a.subject,
            a.message_id,
            a.sent_at,
            a.links.join("\n"),
            if a.webhook { "pending" } else { "none" },
        ],
    )?;
    Ok(changed > 0)
}

const COLUMNS: &str = "a.id, m.address, a.source, a.kind, a.action, a.supervisor, a.sender,
    a.recipients, a.subject, a.message_id, a.sent_at, a.links";

fn split(text: String) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Activity> {
    let source: String = row.get(2)?;
    Ok(Activity {
        id: row.get(0)?,
        mailbox: row.get(1)?,
        source: if source == "external" {
            ActivitySource::External
        } else {
            ActivitySource::Bridge
        },
        kind: row.get(3)?,
        action: row.get(4)?,
        supervisor: row.get(5)?,
        sender: row.get(6)?,
        recipients: split(row.get(7)?),
        subject: row.get(8)?,
        message_id: row.get(9)?,
        sent_at: row.get(10)?,
        links: split(row.get(11)?),
    })
}

/// Activities, oldest first, optionally of one mailbox and since a time.
pub fn list(
    conn: &Connection,
    mailbox: Option<&str>,
    since: Option<i64>,
) -> StoreResult<Vec<Activity>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM activities a JOIN mailboxes m ON m.id = a.mailbox_id
         WHERE (?1 IS NULL OR m.address = ?1 COLLATE NOCASE) AND (?2 IS NULL OR a.sent_at >= ?2)
         ORDER BY a.sent_at, a.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![mailbox, since], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Activities whose webhook delivery is due.
pub fn webhook_due(conn: &Connection, now: i64, limit: usize) -> StoreResult<Vec<(Activity, u32)>> {
    let sql = format!(
        "SELECT {COLUMNS}, a.webhook_attempts FROM activities a JOIN mailboxes m ON m.id = a.mailbox_id
         WHERE a.webhook_state = 'pending' AND a.webhook_next_at <= ?1 ORDER BY a.id LIMIT ?2"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![now, limit as i64], |row| {
        Ok((from_row(row)?, row.get(12)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn webhook_done(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE activities SET webhook_state = 'done' WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

pub fn webhook_retry(conn: &Connection, id: i64, next_at: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE activities SET webhook_attempts = webhook_attempts + 1, webhook_next_at = ?2
         WHERE id = ?1",
        params![id, next_at],
    )?;
    Ok(())
}

/// The Sent Items watermark of a folder: (uidvalidity, last UID looked at).
pub fn watermark(conn: &Connection, folder_id: i64) -> StoreResult<Option<(u32, u32)>> {
    Ok(conn
        .query_row(
            "SELECT uidvalidity, last_uid FROM sent_watermarks WHERE folder_id = ?1",
            [folder_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

pub fn set_watermark(
    conn: &Connection,
    folder_id: i64,
    uidvalidity: u32,
    last_uid: u32,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sent_watermarks (folder_id, uidvalidity, last_uid) VALUES (?1, ?2, ?3)
         ON CONFLICT (folder_id) DO UPDATE SET uidvalidity = excluded.uidvalidity,
           last_uid = excluded.last_uid",
        params![folder_id, uidvalidity, last_uid],
    )?;
    Ok(())
}

/// The main user's name of a mailbox (the activity's supervisor).
pub fn main_user(conn: &Connection, mailbox_id: i64) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT u.name FROM assignments a JOIN users u ON u.id = a.user_id
             WHERE a.mailbox_id = ?1 ORDER BY a.is_main DESC, u.id LIMIT 1",
            [mailbox_id],
            |row| row.get(0),
        )
        .optional()?)
}
