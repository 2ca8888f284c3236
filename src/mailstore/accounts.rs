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
    Ok(conn
        .query_row(&sql, [address], mailbox_from_row)
        .optional()?)
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
    let sql = "SELECT m.id, m.address, m.alias_of, m.signin_state, m.last_error FROM mailboxes m
         JOIN assignments a ON a.mailbox_id = m.id WHERE a.user_id = ?1
         ORDER BY a.is_main DESC, m.alias_of IS NOT NULL, m.id";
    let mut stmt = conn.prepare(sql)?;
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
pub fn assign(
    conn: &mut Connection,
    mailbox_id: i64,
    user_id: i64,
    is_main: bool,
) -> StoreResult<()> {
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

pub fn user_by_id(conn: &Connection, id: i64) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            "SELECT id, name, password_hash FROM users WHERE id = ?1",
            [id],
            user_from_row,
        )
        .optional()?)
}

pub fn set_password_hash(conn: &Connection, user_id: i64, password_hash: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![user_id, password_hash],
    )?;
    Ok(())
}

/// Removes a user and their assignments (the outbox keeps their queued mail, without them).
pub fn remove_user(conn: &Connection, user_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    Ok(())
}

pub fn unassign(conn: &Connection, mailbox_id: i64, user_id: i64) -> StoreResult<bool> {
    let removed = conn.execute(
        "DELETE FROM assignments WHERE mailbox_id = ?1 AND user_id = ?2",
        params![mailbox_id, user_id],
    )?;
    Ok(removed > 0)
}

/// Alias mailboxes that belong to `mailbox_id`.
pub fn aliases_of(conn: &Connection, mailbox_id: i64) -> StoreResult<Vec<MailboxRecord>> {
    let sql =
        format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE alias_of = ?1 ORDER BY address");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([mailbox_id], mailbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes a mailbox with everything stored for it: tokens, folders, messages, bodies,
/// outbox, settings and assignments (all by foreign-key cascade).
pub fn remove_mailbox(conn: &Connection, mailbox_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM mailboxes WHERE id = ?1", [mailbox_id])?;
    Ok(())
}

pub fn has_tokens(conn: &Connection, mailbox_id: i64) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM tokens WHERE mailbox_id = ?1",
            [mailbox_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// How far the first sync of an account has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    pub folders: u64,
    /// Folders whose message delta has completed at least once (a deltaLink is stored), or
    /// that Graph reported empty before they needed a listing.
    pub folders_synced: u64,
    /// Distinct messages known in the account's folders.
    pub messages: u64,
    /// Of those, how many have their body stored.
    pub bodies: u64,
}

impl SyncProgress {
    /// Every folder listed and every body stored.
    pub fn is_complete(&self) -> bool {
        self.folders > 0 && self.folders_synced == self.folders && self.bodies == self.messages
    }
}

pub fn sync_progress(conn: &Connection, account_id: i64) -> StoreResult<SyncProgress> {
    let (folders, folders_synced): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE delta_link IS NOT NULL OR empty_unlisted)
         FROM folders WHERE mailbox_id = ?1",
        [account_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let (messages, bodies): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COUNT(b.graph_id) FROM
           (SELECT DISTINCT m.graph_id FROM messages m JOIN folders f ON f.id = m.folder_id
            WHERE f.mailbox_id = ?1) AS known
         LEFT JOIN bodies b ON b.mailbox_id = ?1 AND b.graph_id = known.graph_id",
        [account_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(SyncProgress {
        folders: count(folders),
        folders_synced: count(folders_synced),
        messages: count(messages),
        bodies: count(bodies),
    })
}

/// Where the bridge's copy of a sent message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentCopy {
    /// Graph saves it to Sent Items; a client's own copy (IMAP APPEND) is not stored twice.
    Graph,
    /// The client stores its own copy; Graph is asked not to save one.
    Client,
}

/// What happens to attachments of mail that Microsoft's limits would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentPolicy {
    /// Send them as they are.
    Keep,
    /// Replace them by download links (valid 14 days).
    DownloadLink,
    /// Refuse the message.
    Refuse,
}

/// What an IMAP expunge does in Microsoft 365.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBehaviour {
    /// Move to Deleted Items, as Outlook does.
    Trash,
    /// Delete permanently.
    Permanent,
}

macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

text_enum!(SentCopy { Graph = "graph", Client = "client" });
text_enum!(AttachmentPolicy { Keep = "keep", DownloadLink = "download_link", Refuse = "refuse" });
text_enum!(DeleteBehaviour { Trash = "trash", Permanent = "permanent" });

/// Per-mailbox settings; a mailbox without a stored row has the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSettings {
    pub sent_copy: SentCopy,
    /// Book mail sent from external clients as activities.
    pub book_external_sends: bool,
    pub attachment_policy: AttachmentPolicy,
    /// Most recipients per message (Microsoft 365 mailboxes: 10 by default).
    pub recipient_limit: u32,
    /// None: the configured `sync.poll_interval_secs`.
    pub poll_interval_secs: Option<u64>,
    pub delete_behaviour: DeleteBehaviour,
    /// The text shown with `_agreementLink` download links.
    pub agreement_text: String,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        MailboxSettings {
            sent_copy: SentCopy::Graph,
            book_external_sends: true,
            attachment_policy: AttachmentPolicy::Keep,
            recipient_limit: 10,
            poll_interval_secs: None,
            delete_behaviour: DeleteBehaviour::Trash,
            agreement_text: String::new(),
        }
    }
}

pub fn mailbox_settings(conn: &Connection, mailbox_id: i64) -> StoreResult<MailboxSettings> {
    Ok(stored_mailbox_settings(conn, mailbox_id)?.unwrap_or_default())
}

/// The settings an administrator stored for a mailbox; None when they never set any.
pub fn stored_mailbox_settings(
    conn: &Connection,
    mailbox_id: i64,
) -> StoreResult<Option<MailboxSettings>> {
    let row = conn
        .query_row(
            "SELECT sent_copy, book_external_sends, attachment_policy, recipient_limit,
                    poll_interval_secs, delete_behaviour, agreement_text
             FROM mailbox_settings WHERE mailbox_id = ?1",
            [mailbox_id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((sent, book, attach, limit, poll, delete, agreement)) = row else {
        return Ok(None);
    };
    let defaults = MailboxSettings::default();
    // Values are written only through `save_mailbox_settings`; an unknown one (from a newer
    // version, say) falls back to the default rather than failing every read.
    Ok(Some(MailboxSettings {
        sent_copy: SentCopy::parse(&sent).unwrap_or(defaults.sent_copy),
        book_external_sends: book,
        attachment_policy: AttachmentPolicy::parse(&attach).unwrap_or(defaults.attachment_policy),
        recipient_limit: u32::try_from(limit).unwrap_or(defaults.recipient_limit),
        poll_interval_secs: poll.and_then(|p| u64::try_from(p).ok()),
        delete_behaviour: DeleteBehaviour::parse(&delete).unwrap_or(defaults.delete_behaviour),
        agreement_text: agreement,
    }))
}

pub fn save_mailbox_settings(
    conn: &Connection,
    mailbox_id: i64,
    settings: &MailboxSettings,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO mailbox_settings (mailbox_id, sent_copy, book_external_sends,
           attachment_policy, recipient_limit, poll_interval_secs, delete_behaviour, agreement_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (mailbox_id) DO UPDATE SET sent_copy = excluded.sent_copy,
           book_external_sends = excluded.book_external_sends,
           attachment_policy = excluded.attachment_policy,
           recipient_limit = excluded.recipient_limit,
           poll_interval_secs = excluded.poll_interval_secs,
           delete_behaviour = excluded.delete_behaviour,
           agreement_text = excluded.agreement_text",
        params![
            mailbox_id,
            settings.sent_copy.as_str(),
            settings.book_external_sends,
            settings.attachment_policy.as_str(),
            settings.recipient_limit,
            settings
                .poll_interval_secs
                .and_then(|p| i64::try_from(p).ok()),
            settings.delete_behaviour.as_str(),
            settings.agreement_text,
        ],
    )?;
    Ok(())
}

/// An administration credential: the web admin password or the JSON API token, stored as a
/// hash only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    WebPassword,
    ApiToken,
}

impl Credential {
    fn key(self) -> &'static str {
        match self {
            Credential::WebPassword => "web_password",
            Credential::ApiToken => "api_token",
        }
    }
}

pub fn credential_hash(conn: &Connection, which: Credential) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT hash FROM admin_credentials WHERE name = ?1",
            [which.key()],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn set_credential_hash(conn: &Connection, which: Credential, hash: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO admin_credentials (name, hash, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
        params![which.key(), hash, now_unix()],
    )?;
    Ok(())
}

/// Records kept by other parts of the bridge (activities, download links) that the admin
/// shows as they are: column names and values as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Tables the admin may show through [`mailbox_rows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTable {
    Activities,
    DownloadLinks,
}

impl RecordTable {
    fn name(self) -> &'static str {
        match self {
            RecordTable::Activities => "activities",
            RecordTable::DownloadLinks => "download_links",
        }
    }
}

/// The newest rows of `table` for a mailbox, or None when this store has no such table.
/// Download links that carry an `expires_at` are shown only while they are live.
pub fn mailbox_rows(
    conn: &Connection,
    table: RecordTable,
    mailbox_id: i64,
    limit: usize,
) -> StoreResult<Option<Rows>> {
    let name = table.name();
    let columns = table_columns(conn, name)?;
    if columns.is_empty() {
        return Ok(None);
    }
    if !columns.iter().any(|c| c == "mailbox_id") {
        return Ok(Some(Rows::default()));
    }
    let live = if table == RecordTable::DownloadLinks && columns.iter().any(|c| c == "expires_at") {
        " AND expires_at > ?3"
    } else {
        " AND ?3 IS NOT NULL"
    };
    // `name` comes from the fixed list above, never from input.
    let sql =
        format!("SELECT * FROM {name} WHERE mailbox_id = ?1{live} ORDER BY rowid DESC LIMIT ?2");
    let mut stmt = conn.prepare(&sql)?;
    let width = stmt.column_count();
    let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let rows = stmt.query_map(params![mailbox_id, limit as i64, now_unix()], |row| {
        (0..width).map(|i| row.get_ref(i).map(value_text)).collect()
    })?;
    Ok(Some(Rows {
        columns: names,
        rows: rows.collect::<Result<_, _>>()?,
    }))
}

fn table_columns(conn: &Connection, table: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let rows = stmt.query_map([table], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn value_text(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("({} bytes)", b.len()),
    }
}
