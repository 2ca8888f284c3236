//! Users, mailboxes, assignments and sign-in tokens.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{now_unix, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
}

/// Where a mailbox stands with Microsoft sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninState {
    /// Imported, nobody has signed in yet.
    Never,
    SignedIn,
    /// The refresh token was refused: someone must sign in again.
    NeedsSignin,
}

impl SigninState {
    pub fn as_str(self) -> &'static str {
        match self {
            SigninState::Never => "never",
            SigninState::SignedIn => "signed_in",
            SigninState::NeedsSignin => "needs_signin",
        }
    }

    fn parse(text: &str) -> SigninState {
        match text {
            "signed_in" => SigninState::SignedIn,
            "needs_signin" => SigninState::NeedsSignin,
            _ => SigninState::Never,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRecord {
    pub id: i64,
    pub address: String,
    /// For an alias mailbox: the mailbox whose folders it reads and whose account sends.
    pub alias_of: Option<i64>,
    pub signin_state: SigninState,
    pub last_error: Option<String>,
}

impl MailboxRecord {
    /// The mailbox whose Graph account and folders serve this one.
    pub fn account_id(&self) -> i64 {
        self.alias_of.unwrap_or(self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub mailbox_id: i64,
    pub user_id: i64,
    pub is_main: bool,
}

/// Tokens as stored: sealed by the caller (see `crate::secrets`), opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub refresh_token: Vec<u8>,
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<i64>,
}

pub fn add_user(conn: &Connection, name: &str, password_hash: &str) -> StoreResult<User> {
    conn.execute(
        "INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
        params![name, password_hash, now_unix()],
    )
    .map_err(|e| unique_violation(e, format!("user {name} already exists")))?;
    Ok(User {
        id: conn.last_insert_rowid(),
        name: name.to_string(),
        password_hash: password_hash.to_string(),
    })
}

pub fn user_by_name(conn: &Connection, name: &str) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            "SELECT id, name, password_hash FROM users WHERE name = ?1",
            [name],
            user_from_row,
        )
        .optional()?)
}

pub fn list_users(conn: &Connection) -> StoreResult<Vec<User>> {
    let mut stmt = conn.prepare("SELECT id, name, password_hash FROM users ORDER BY name")?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        password_hash: row.get(2)?,
    })
}

pub fn add_mailbox(
    conn: &Connection,
    address: &str,
    alias_of: Option<i64>,
) -> StoreResult<MailboxRecord> {
    conn.execute(
        "INSERT INTO mailboxes (address, alias_of, created_at) VALUES (?1, ?2, ?3)",
        params![address, alias_of, now_unix()],
    )
    .map_err(|e| unique_violation(e, format!("mailbox {address} is already imported")))?;
    Ok(MailboxRecord {
        id: conn.last_insert_rowid(),
        address: address.to_string(),
        alias_of,
        signin_state: SigninState::Never,
        last_error: None,
    })
}

const MAILBOX_COLUMNS: &str = "id, address, alias_of, signin_state, last_error";

fn mailbox_from_row(row: &Row<'_>) -> rusqlite::Result<MailboxRecord> {
    let state: String = row.get(3)?;
    Ok(MailboxRecord {
        id: row.get(0)?,
        address: row.get(1)?,
        alias_of: row.get(2)?,
        signin_state: SigninState::parse(&state),
        last_error: row.get(4)?,
    })
}

pub fn mailbox_by_address(conn: &Connection, address: &str) -> StoreResult<Option<MailboxRecord>> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE address = ?1");
    Ok(conn.query_row(&sql, [address], mailbox_from_row).optional()?)
}

pub fn mailbox_by_id(conn: &Connection, id: i64) -> StoreResult<MailboxRecord> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?1");
    conn.query_row(&sql, [id], mailbox_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
}

pub fn list_mailboxes(conn: &Connection) -> StoreResult<Vec<MailboxRecord>> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes ORDER BY address");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], mailbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Mailboxes a user is assigned to, their default (main, then oldest) first.
pub fn mailboxes_of_user(conn: &Connection, user_id: i64) -> StoreResult<Vec<MailboxRecord>> {
    let sql = format!(
        "SELECT m.id, m.address, m.alias_of, m.signin_state, m.last_error FROM mailboxes m
         JOIN assignments a ON a.mailbox_id = m.id WHERE a.user_id = ?1
         ORDER BY a.is_main DESC, m.alias_of IS NOT NULL, m.id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([user_id], mailbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn set_signin_state(
    conn: &Connection,
    mailbox_id: i64,
    state: SigninState,
    last_error: Option<&str>,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE mailboxes SET signin_state = ?2, last_error = ?3 WHERE id = ?1",
        params![mailbox_id, state.as_str(), last_error],
    )?;
    Ok(())
}

/// Assigns a user; `is_main` makes them the mailbox's one main user (the previous one stays
/// assigned, without the crown).
pub fn assign(conn: &mut Connection, mailbox_id: i64, user_id: i64, is_main: bool) -> StoreResult<()> {
    let tx = conn.transaction()?;
    if is_main {
        tx.execute(
            "UPDATE assignments SET is_main = 0 WHERE mailbox_id = ?1",
            [mailbox_id],
        )?;
    }
    tx.execute(
        "INSERT INTO assignments (mailbox_id, user_id, is_main) VALUES (?1, ?2, ?3)
         ON CONFLICT (mailbox_id, user_id) DO UPDATE SET is_main = excluded.is_main",
        params![mailbox_id, user_id, is_main],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn assignments_of_mailbox(conn: &Connection, mailbox_id: i64) -> StoreResult<Vec<Assignment>> {
    let mut stmt = conn.prepare(
        "SELECT mailbox_id, user_id, is_main FROM assignments WHERE mailbox_id = ?1
         ORDER BY is_main DESC, user_id",
    )?;
    let rows = stmt.query_map([mailbox_id], |row| {
        Ok(Assignment {
            mailbox_id: row.get(0)?,
            user_id: row.get(1)?,
            is_main: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn save_tokens(conn: &Connection, mailbox_id: i64, tokens: &StoredTokens) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO tokens (mailbox_id, refresh_token, access_token, access_expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (mailbox_id) DO UPDATE SET refresh_token = excluded.refresh_token,
           access_token = excluded.access_token, access_expires_at = excluded.access_expires_at,
           updated_at = excluded.updated_at",
        params![
            mailbox_id,
            tokens.refresh_token,
            tokens.access_token,
            tokens.access_expires_at,
            now_unix()
        ],
    )?;
    Ok(())
}

pub fn load_tokens(conn: &Connection, mailbox_id: i64) -> StoreResult<Option<StoredTokens>> {
    Ok(conn
        .query_row(
            "SELECT refresh_token, access_token, access_expires_at FROM tokens WHERE mailbox_id = ?1",
            [mailbox_id],
            |row| {
                Ok(StoredTokens {
                    refresh_token: row.get(0)?,
                    access_token: row.get(1)?,
                    access_expires_at: row.get(2)?,
                })
            },
        )
        .optional()?)
}

fn unique_violation(err: rusqlite::Error, message: String) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Invalid(message)
        }
        _ => StoreError::Sqlite(err),
    }
}
