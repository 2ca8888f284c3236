//! Folders: one row per Graph mail folder, with the IMAP state that must outlive restarts
//! (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) and the folder's delta link.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{now_unix, StoreError, StoreResult};

/// IMAP SPECIAL-USE roles, learnt from Graph's well-known folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "inbox",
            SpecialUse::Sent => "sent",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Trash => "trash",
            SpecialUse::Junk => "junk",
            SpecialUse::Archive => "archive",
        }
    }

    pub fn parse(text: &str) -> Option<SpecialUse> {
        Some(match text {
            "inbox" => SpecialUse::Inbox,
            "sent" => SpecialUse::Sent,
            "drafts" => SpecialUse::Drafts,
            "trash" => SpecialUse::Trash,
            "junk" => SpecialUse::Junk,
            "archive" => SpecialUse::Archive,
            _ => return None,
        })
    }

    /// Graph's well-known folder name for this role.
    pub fn well_known_name(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "inbox",
            SpecialUse::Sent => "sentitems",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Trash => "deleteditems",
            SpecialUse::Junk => "junkemail",
            SpecialUse::Archive => "archive",
        }
    }

    pub const ALL: [SpecialUse; 6] = [
        SpecialUse::Inbox,
        SpecialUse::Sent,
        SpecialUse::Drafts,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRecord {
    pub id: i64,
    pub mailbox_id: i64,
    pub graph_id: String,
    pub parent_graph_id: Option<String>,
    pub display_name: String,
    /// The IMAP name, `/`-separated, `INBOX` for the inbox.
    pub path: String,
    pub special_use: Option<SpecialUse>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub delta_link: Option<String>,
    pub subscribed: bool,
    /// Never listed, because Graph reported it empty (see `set_empty_unlisted`).
    pub empty_unlisted: bool,
}

/// What the sync engine knows of a folder from Graph.
#[derive(Debug, Clone)]
pub struct FolderUpsert {
    pub graph_id: String,
    pub parent_graph_id: Option<String>,
    pub display_name: String,
    pub path: String,
    pub special_use: Option<SpecialUse>,
}

const COLUMNS: &str = "id, mailbox_id, graph_id, parent_graph_id, display_name, path, special_use,
    uidvalidity, uidnext, highest_modseq, delta_link, subscribed, empty_unlisted";

fn from_row(row: &Row<'_>) -> rusqlite::Result<FolderRecord> {
    let special: Option<String> = row.get(6)?;
    Ok(FolderRecord {
        id: row.get(0)?,
        mailbox_id: row.get(1)?,
        graph_id: row.get(2)?,
        parent_graph_id: row.get(3)?,
        display_name: row.get(4)?,
        path: row.get(5)?,
        special_use: special.as_deref().and_then(SpecialUse::parse),
        uidvalidity: row.get(7)?,
        uidnext: row.get(8)?,
        highest_modseq: row.get::<_, i64>(9)? as u64,
        delta_link: row.get(10)?,
        subscribed: row.get(11)?,
        empty_unlisted: row.get(12)?,
    })
}

pub fn list_folders(conn: &Connection, mailbox_id: i64) -> StoreResult<Vec<FolderRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM folders WHERE mailbox_id = ?1 ORDER BY path");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([mailbox_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn folder_by_id(conn: &Connection, folder_id: i64) -> StoreResult<FolderRecord> {
    let sql = format!("SELECT {COLUMNS} FROM folders WHERE id = ?1");
    conn.query_row(&sql, [folder_id], from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("folder {folder_id}")))
}

/// Looks a folder up by IMAP name; `INBOX` matches case-insensitively, as RFC 3501 says.
pub fn folder_by_path(
    conn: &Connection,
    mailbox_id: i64,
    path: &str,
) -> StoreResult<Option<FolderRecord>> {
    let path = if path.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        path
    };
    let sql = format!("SELECT {COLUMNS} FROM folders WHERE mailbox_id = ?1 AND path = ?2");
    Ok(conn
        .query_row(&sql, params![mailbox_id, path], from_row)
        .optional()?)
}

pub fn folder_by_special_use(
    conn: &Connection,
    mailbox_id: i64,
    special: SpecialUse,
) -> StoreResult<Option<FolderRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM folders WHERE mailbox_id = ?1 AND special_use = ?2");
    Ok(conn
        .query_row(&sql, params![mailbox_id, special.as_str()], from_row)
        .optional()?)
}

/// Inserts a new folder or updates name, place and role of a known one. A known folder keeps
/// its UIDVALIDITY and UIDs: Graph folder ids are stable, so a rename or move is not a new folder.
pub fn upsert_folder(
    conn: &Connection,
    mailbox_id: i64,
    folder: &FolderUpsert,
) -> StoreResult<FolderRecord> {
    let special = folder.special_use.map(SpecialUse::as_str);
    let updated = conn.execute(
        "UPDATE folders SET parent_graph_id = ?3, display_name = ?4, path = ?5, special_use = ?6
         WHERE mailbox_id = ?1 AND graph_id = ?2",
        params![
            mailbox_id,
            folder.graph_id,
            folder.parent_graph_id,
            folder.display_name,
            folder.path,
            special
        ],
    )?;
    if updated == 0 {
        let uidvalidity = next_uidvalidity(conn, mailbox_id)?;
        conn.execute(
            "INSERT INTO folders (mailbox_id, graph_id, parent_graph_id, display_name, path,
               special_use, uidvalidity) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                mailbox_id,
                folder.graph_id,
                folder.parent_graph_id,
                folder.display_name,
                folder.path,
                special,
                uidvalidity
            ],
        )?;
    }
    let sql = format!("SELECT {COLUMNS} FROM folders WHERE mailbox_id = ?1 AND graph_id = ?2");
    Ok(conn.query_row(&sql, params![mailbox_id, folder.graph_id], from_row)?)
}

/// UIDVALIDITY comes from the clock (seconds), and is strictly greater than any this mailbox
/// has used, so a folder that is truly replaced never gets an old value back.
fn next_uidvalidity(conn: &Connection, mailbox_id: i64) -> StoreResult<u32> {
    let highest: Option<i64> = conn.query_row(
        "SELECT MAX(uidvalidity) FROM folders WHERE mailbox_id = ?1",
        [mailbox_id],
        |row| row.get(0),
    )?;
    let clock = now_unix().clamp(1, u32::MAX as i64);
    let next = match highest {
        Some(h) if h >= clock => h + 1,
        _ => clock,
    };
    u32::try_from(next).map_err(|_| StoreError::Invalid("UIDVALIDITY space exhausted".into()))
}

/// Removes folders Graph no longer has (deleted in Outlook); their messages go with them.
pub fn remove_folders_except(
    conn: &Connection,
    mailbox_id: i64,
    keep_graph_ids: &[String],
) -> StoreResult<Vec<FolderRecord>> {
    let removed: Vec<FolderRecord> = list_folders(conn, mailbox_id)?
        .into_iter()
        .filter(|f| !keep_graph_ids.contains(&f.graph_id))
        .collect();
    for folder in &removed {
        conn.execute("DELETE FROM folders WHERE id = ?1", [folder.id])?;
    }
    Ok(removed)
}

pub fn set_delta_link(conn: &Connection, folder_id: i64, link: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "UPDATE folders SET delta_link = ?2 WHERE id = ?1",
        params![folder_id, link],
    )?;
    Ok(())
}

/// Marks a folder that has no deltaLink as empty in Graph (it then counts as synced without a
/// listing) or not (it is listed on the next pass).
pub fn set_empty_unlisted(conn: &Connection, folder_id: i64, empty: bool) -> StoreResult<()> {
    conn.execute(
        "UPDATE folders SET empty_unlisted = ?2 WHERE id = ?1",
        params![folder_id, empty],
    )?;
    Ok(())
}

pub fn set_subscribed(conn: &Connection, folder_id: i64, subscribed: bool) -> StoreResult<()> {
    conn.execute(
        "UPDATE folders SET subscribed = ?2 WHERE id = ?1",
        params![folder_id, subscribed],
    )?;
    Ok(())
}

/// Removes one folder and its messages (after Graph deleted it).
pub fn remove_folder(conn: &Connection, folder_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM folders WHERE id = ?1", [folder_id])?;
    Ok(())
}

/// A mailbox (id 1) with an INBOX, for the store's own tests.
#[cfg(test)]
pub(crate) fn test_inbox(conn: &Connection) -> StoreResult<FolderRecord> {
    conn.execute(
        "INSERT INTO mailboxes (id, address, created_at) VALUES (1, 'a@b.test', 0)",
        [],
    )?;
    upsert_folder(
        conn,
        1,
        &FolderUpsert {
            graph_id: "f".into(),
            parent_graph_id: None,
            display_name: "Inbox".into(),
            path: "INBOX".into(),
            special_use: None,
        },
    )
}
