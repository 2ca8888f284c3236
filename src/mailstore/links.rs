//! Download links: a token, the files behind it (sealed files in the data folder, named
//! here), and agreement acceptances.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub id: i64,
    pub token: String,
    pub mailbox_id: i64,
    pub label: String,
    /// Some: the recipient must accept this text before downloading.
    pub agreement_text: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFile {
    pub position: u32,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// File name inside the links folder of the data folder.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    pub address: String,
    pub accepted_at: i64,
    pub remote: Option<String>,
}

pub fn insert_link(conn: &Connection, link: &LinkRecord, files: &[LinkFile]) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO download_links (token, mailbox_id, label, agreement_text, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            link.token,
            link.mailbox_id,
            link.label,
            link.agreement_text,
            link.created_at,
            link.expires_at
        ],
    )?;
    let id = conn.last_insert_rowid();
    for f in files {
        conn.execute(
            "INSERT INTO download_files (link_id, position, name, content_type, size, file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                f.position,
                f.name,
                f.content_type,
                f.size as i64,
                f.file
            ],
        )?;
    }
    Ok(id)
}

const COLUMNS: &str = "id, token, mailbox_id, label, agreement_text, created_at, expires_at";

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<LinkRecord> {
    Ok(LinkRecord {
        id: row.get(0)?,
        token: row.get(1)?,
        mailbox_id: row.get(2)?,
        label: row.get(3)?,
        agreement_text: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
    })
}

pub fn link_by_token(conn: &Connection, token: &str) -> StoreResult<Option<LinkRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM download_links WHERE token = ?1");
    Ok(conn.query_row(&sql, [token], link_from_row).optional()?)
}

pub fn files_of(conn: &Connection, link_id: i64) -> StoreResult<Vec<LinkFile>> {
    let mut stmt = conn.prepare(
        "SELECT position, name, content_type, size, file FROM download_files WHERE link_id = ?1
         ORDER BY position",
    )?;
    let rows = stmt.query_map([link_id], |row| {
        Ok(LinkFile {
            position: row.get(0)?,
            name: row.get(1)?,
            content_type: row.get(2)?,
            size: row.get::<_, i64>(3)?.max(0) as u64,
            file: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn record_acceptance(
    conn: &Connection,
    link_id: i64,
    address: &str,
    at: i64,
    remote: Option<&str>,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO link_acceptances (link_id, address, accepted_at, remote) VALUES (?1, ?2, ?3, ?4)",
        params![link_id, address, at, remote],
    )?;
    Ok(())
}

pub fn acceptances(conn: &Connection, link_id: i64) -> StoreResult<Vec<Acceptance>> {
    let mut stmt = conn.prepare(
        "SELECT address, accepted_at, remote FROM link_acceptances WHERE link_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([link_id], |row| {
        Ok(Acceptance {
            address: row.get(0)?,
            accepted_at: row.get(1)?,
            remote: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes links expired before `now`; returns the file names to delete.
pub fn remove_expired(conn: &mut Connection, now: i64) -> StoreResult<Vec<String>> {
    let tx = conn.transaction()?;
    let files = {
        let mut stmt = tx.prepare(
            "SELECT f.file FROM download_files f JOIN download_links l ON l.id = f.link_id
             WHERE l.expires_at <= ?1",
        )?;
        let rows = stmt.query_map([now], |row| row.get(0))?;
        rows.collect::<Result<Vec<String>, _>>()?
    };
    tx.execute("DELETE FROM download_links WHERE expires_at <= ?1", [now])?;
    tx.commit()?;
    Ok(files)
}

/// Every file name still referenced (the sweeper deletes the others).
pub fn all_files(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare("SELECT file FROM download_files")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
