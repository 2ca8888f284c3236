//! Schema migrations, applied in order at open. Each entry is applied once, inside a
//! transaction, and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreResult;

const MIGRATIONS: &[&str] = &[
    // 1: accounts, folders, messages, bodies, outbox.
    r#"
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE COLLATE NOCASE,
        alias_of INTEGER REFERENCES mailboxes(id) ON DELETE CASCADE,
        signin_state TEXT NOT NULL DEFAULT 'never',
        last_error TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE assignments (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        is_main INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (mailbox_id, user_id)
    );
    CREATE UNIQUE INDEX one_main_user ON assignments(mailbox_id) WHERE is_main = 1;
    CREATE TABLE tokens (
        mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
        refresh_token BLOB NOT NULL,
        access_token BLOB,
        access_expires_at INTEGER,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        graph_id TEXT NOT NULL,
        parent_graph_id TEXT,
        display_name TEXT NOT NULL,
        path TEXT NOT NULL,
        special_use TEXT,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 1,
        delta_link TEXT,
        subscribed INTEGER NOT NULL DEFAULT 1,
        UNIQUE (mailbox_id, graph_id)
    );
    CREATE TABLE messages (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        graph_id TEXT NOT NULL,
        flags INTEGER NOT NULL DEFAULT 0,
        keywords TEXT NOT NULL DEFAULT '',
        internal_date INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (folder_id, uid),
        UNIQUE (folder_id, graph_id)
    ) WITHOUT ROWID;
    CREATE TABLE bodies (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        graph_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        zstd BLOB NOT NULL,
        origin TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, graph_id)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        mail_from TEXT NOT NULL,
        recipients TEXT NOT NULL,
        message BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        sent_at INTEGER
    );
    "#,
    // 2: administration: per-mailbox settings and the web admin's password and API token.
    r#"
    CREATE TABLE mailbox_settings (
        mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
        sent_copy TEXT NOT NULL DEFAULT 'graph',
        book_external_sends INTEGER NOT NULL DEFAULT 1,
        attachment_policy TEXT NOT NULL DEFAULT 'keep',
        recipient_limit INTEGER NOT NULL DEFAULT 10,
        poll_interval_secs INTEGER,
        delete_behaviour TEXT NOT NULL DEFAULT 'trash',
        agreement_text TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE admin_credentials (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    "#,
    // 3: Exchange's size estimate of each message: plans body fetches, never served.
    r#"
    ALTER TABLE messages ADD COLUMN size_estimate INTEGER;
    "#,
];

pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
