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
    // 3: exactly-once sending (phases, Graph ids, retry schedule), download links,
    // serial-mail history, alias refusals, activities.
    r#"
    ALTER TABLE outbox ADD COLUMN phase TEXT NOT NULL DEFAULT 'new';
    ALTER TABLE outbox ADD COLUMN tag TEXT;
    ALTER TABLE outbox ADD COLUMN draft_id TEXT;
    ALTER TABLE outbox ADD COLUMN sent_graph_id TEXT;
    ALTER TABLE outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN message_id TEXT;
    ALTER TABLE outbox ADD COLUMN fingerprint TEXT;
    ALTER TABLE outbox ADD COLUMN recipient_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN links TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN save_copy INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_message_id ON outbox(message_id);
    CREATE TABLE download_links (
        id INTEGER PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        agreement_text TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE download_files (
        link_id INTEGER NOT NULL REFERENCES download_links(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        file TEXT NOT NULL,
        PRIMARY KEY (link_id, position)
    ) WITHOUT ROWID;
    CREATE TABLE link_acceptances (
        id INTEGER PRIMARY KEY,
        link_id INTEGER NOT NULL REFERENCES download_links(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        accepted_at INTEGER NOT NULL,
        remote TEXT
    );
    CREATE TABLE attachment_sends (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        recipients TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX attachment_sends_by_digest ON attachment_sends(mailbox_id, digest, at);
    CREATE TABLE alias_refusals (
        mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
        refused_at INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE activities (
        id INTEGER PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        supervisor TEXT,
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT,
        sent_at INTEGER NOT NULL,
        links TEXT NOT NULL DEFAULT '',
        webhook_state TEXT NOT NULL DEFAULT 'pending',
        webhook_attempts INTEGER NOT NULL DEFAULT 0,
        webhook_next_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX activities_by_time ON activities(sent_at);
    CREATE TABLE sent_watermarks (
        folder_id INTEGER PRIMARY KEY REFERENCES folders(id) ON DELETE CASCADE,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL
    );
    "#,
    // 4: Exchange's size estimate of each message: plans body fetches, never served.
    r#"
    ALTER TABLE messages ADD COLUMN size_estimate INTEGER;
    "#,
    // 5: expunged UIDs with the MODSEQ of their expunge, for QRESYNC's VANISHED (RFC 7162).
    // Folders that existed before record their expunges only from their current HIGHESTMODSEQ
    // on; older expunges are not known one by one.
    r#"
    CREATE TABLE expunged (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX expunged_by_modseq ON expunged(folder_id, modseq);
    ALTER TABLE folders ADD COLUMN expunges_known_from INTEGER NOT NULL DEFAULT 0;
    UPDATE folders SET expunges_known_from = highest_modseq;
    "#,
    // 6: the stored size of each body without its bytes: listing a folder (every SELECT,
    // every refresh of a session) joins it, and the table's rows carry the compressed bodies.
    r#"
    CREATE INDEX bodies_size ON bodies(mailbox_id, graph_id, size);
    "#,
    // 7: a folder Graph reported empty before it was ever listed: it counts as synced, and
    // its first listing waits until Graph reports mail in it.
    r#"
    ALTER TABLE folders ADD COLUMN empty_unlisted INTEGER NOT NULL DEFAULT 0;
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
