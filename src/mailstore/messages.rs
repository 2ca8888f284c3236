//! Messages (one row per message per folder, keyed by UID) and their bodies.
//!
//! Bodies are keyed by the mailbox and the Graph immutable id, not by UID: a message moved in
//! Outlook gets a new UID in its new folder but keeps its bytes. Once stored, a body is never
//! replaced, so the bytes served for a UID never change (ARCHITECTURE invariant 2).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::{StoreError, StoreResult};

/// IMAP system flags the bridge keeps, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

impl Flags {
    pub const SEEN: u32 = 1;
    pub const ANSWERED: u32 = 2;
    pub const FLAGGED: u32 = 4;
    pub const DELETED: u32 = 8;
    pub const DRAFT: u32 = 16;
    pub const FORWARDED: u32 = 32;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    pub fn with(self, bit: u32, on: bool) -> Flags {
        if on {
            Flags(self.0 | bit)
        } else {
            Flags(self.0 & !bit)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: u32,
    pub graph_id: String,
    pub flags: Flags,
    /// IMAP keywords (Graph categories), space-separated.
    pub keywords: String,
    /// INTERNALDATE, seconds since the epoch (Graph's receivedDateTime).
    pub internal_date: i64,
    pub modseq: u64,
    /// Length of the stored body; None until the body has been fetched.
    pub size: Option<u64>,
}

/// A message as Graph reports it, to be applied to a folder.
#[derive(Debug, Clone)]
pub struct MessageUpsert {
    pub graph_id: String,
    /// Exchange's size estimate (PR_MESSAGE_SIZE), to plan the body fetch; never served.
    pub size_estimate: Option<i64>,
    pub flags: Flags,
    pub keywords: String,
    pub internal_date: i64,
}

/// What applying a batch of changes did, for notifying IMAP sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl ApplyOutcome {
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.changed == 0 && self.removed == 0
    }
}

const COLUMNS: &str = "m.uid, m.graph_id, m.flags, m.keywords, m.internal_date, m.modseq, b.size";

fn from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        uid: row.get(0)?,
        graph_id: row.get(1)?,
        flags: Flags(row.get(2)?),
        keywords: row.get(3)?,
        internal_date: row.get(4)?,
        modseq: row.get::<_, i64>(5)? as u64,
        size: row.get::<_, Option<i64>>(6)?.map(|s| s as u64),
    })
}

/// All messages of a folder in UID order (which is also IMAP sequence order).
pub fn list_messages(conn: &Connection, folder_id: i64) -> StoreResult<Vec<MessageRecord>> {
    // `b.size` comes from the `bodies_size` index: the `bodies` rows hold the compressed
    // bytes, and seeking through them made listing a 10,000-message folder ten times slower.
    let sql = format!(
        "SELECT {COLUMNS} FROM messages m JOIN folders f ON f.id = m.folder_id
         LEFT JOIN bodies b INDEXED BY bodies_size
           ON b.mailbox_id = f.mailbox_id AND b.graph_id = m.graph_id
         WHERE m.folder_id = ?1 ORDER BY m.uid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([folder_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn message_by_uid(
    conn: &Connection,
    folder_id: i64,
    uid: u32,
) -> StoreResult<Option<MessageRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages m JOIN folders f ON f.id = m.folder_id
         LEFT JOIN bodies b INDEXED BY bodies_size
           ON b.mailbox_id = f.mailbox_id AND b.graph_id = m.graph_id
         WHERE m.folder_id = ?1 AND m.uid = ?2"
    );
    Ok(conn
        .query_row(&sql, params![folder_id, uid], from_row)
        .optional()?)
}

/// Applies created/updated messages and removals to a folder in one transaction. New messages
/// get the next UIDs; every real change gets a new MODSEQ. A change that matches what the store
/// already has (such as the echo of the bridge's own write) changes nothing.
pub fn apply_changes(
    conn: &mut Connection,
    folder_id: i64,
    upserts: &[MessageUpsert],
    removed_graph_ids: &[String],
) -> StoreResult<ApplyOutcome> {
    let tx = conn.transaction()?;
    let mut outcome = ApplyOutcome::default();
    for message in upserts {
        match upsert_one(&tx, folder_id, message)? {
            Upserted::Added => outcome.added += 1,
            Upserted::Changed => outcome.changed += 1,
            Upserted::Same => {}
        }
    }
    let mut gone = Vec::new();
    for graph_id in removed_graph_ids {
        let uid: Option<u32> = tx
            .query_row(
                "DELETE FROM messages WHERE folder_id = ?1 AND graph_id = ?2 RETURNING uid",
                params![folder_id, graph_id],
                |row| row.get(0),
            )
            .optional()?;
        gone.extend(uid);
    }
    outcome.removed = gone.len();
    if !gone.is_empty() {
        // Expunges advance HIGHESTMODSEQ too (RFC 7162), and are remembered for VANISHED.
        record_expunges(&tx, folder_id, &gone)?;
    }
    tx.commit()?;
    Ok(outcome)
}

enum Upserted {
    Added,
    Changed,
    Same,
}

fn upsert_one(tx: &Transaction<'_>, folder_id: i64, m: &MessageUpsert) -> StoreResult<Upserted> {
    let existing: Option<(u32, String)> = tx
        .query_row(
            "SELECT flags, keywords FROM messages WHERE folder_id = ?1 AND graph_id = ?2",
            params![folder_id, m.graph_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match existing {
        Some((flags, keywords)) => {
            // \Deleted is the bridge's own until EXPUNGE: Graph knows nothing of it.
            let kept = Flags(flags).has(Flags::DELETED);
            let new_flags = m.flags.with(Flags::DELETED, kept);
            if new_flags.0 == flags && keywords == m.keywords {
                return Ok(Upserted::Same);
            }
            let modseq = bump_modseq(tx, folder_id)?;
            tx.execute(
                "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5
                 WHERE folder_id = ?1 AND graph_id = ?2",
                params![
                    folder_id,
                    m.graph_id,
                    new_flags.0,
                    m.keywords,
                    modseq as i64
                ],
            )?;
            Ok(Upserted::Changed)
        }
        None => {
            let uid: u32 = tx.query_row(
                "UPDATE folders SET uidnext = uidnext + 1 WHERE id = ?1 RETURNING uidnext - 1",
                [folder_id],
                |row| row.get(0),
            )?;
            let modseq = bump_modseq(tx, folder_id)?;
            tx.execute(
                "INSERT INTO messages (folder_id, uid, graph_id, flags, keywords, internal_date, modseq,
                   size_estimate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![folder_id, uid, m.graph_id, m.flags.0, m.keywords, m.internal_date,
                    modseq as i64, m.size_estimate],
            )?;
            Ok(Upserted::Added)
        }
    }
}

fn bump_modseq(tx: &Connection, folder_id: i64) -> StoreResult<u64> {
    let modseq: i64 = tx.query_row(
        "UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq",
        [folder_id],
        |row| row.get(0),
    )?;
    Ok(modseq as u64)
}

/// Gives a set of expunges one new MODSEQ and remembers each UID with it, so a QRESYNC
/// client can be told which of the UIDs it knew have vanished since its last MODSEQ.
fn record_expunges(tx: &Connection, folder_id: i64, uids: &[u32]) -> StoreResult<u64> {
    let modseq = bump_modseq(tx, folder_id)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO expunged (folder_id, uid, modseq) VALUES (?1, ?2, ?3)
         ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq",
    )?;
    for uid in uids {
        stmt.execute(params![folder_id, uid, modseq as i64])?;
    }
    Ok(modseq)
}

/// The UIDs expunged from a folder after `modseq`, in UID order; None when the folder's
/// expunges are not recorded that far back (it predates the record), so the caller must
/// treat every UID it cannot find as possibly expunged.
pub fn expunged_since(
    conn: &Connection,
    folder_id: i64,
    modseq: u64,
) -> StoreResult<Option<Vec<u32>>> {
    let known_from: i64 = conn.query_row(
        "SELECT expunges_known_from FROM folders WHERE id = ?1",
        [folder_id],
        |row| row.get(0),
    )?;
    let modseq = modseq.min(i64::MAX as u64) as i64;
    if modseq < known_from {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT uid FROM expunged WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid",
    )?;
    let rows = stmt.query_map(params![folder_id, modseq], |row| row.get(0))?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}

/// Sets a message's flags after Graph accepted the change; returns the new MODSEQ.
pub fn set_flags(
    conn: &mut Connection,
    folder_id: i64,
    uid: u32,
    flags: Flags,
    keywords: &str,
) -> StoreResult<u64> {
    let tx = conn.transaction()?;
    let modseq = bump_modseq(&tx, folder_id)?;
    let updated = tx.execute(
        "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5 WHERE folder_id = ?1 AND uid = ?2",
        params![folder_id, uid, flags.0, keywords, modseq as i64],
    )?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("UID {uid}")));
    }
    tx.commit()?;
    Ok(modseq)
}

/// Where a stored body came from. Bytes the bridge was given (APPEND, SMTP) are kept verbatim
/// and win over Graph's regenerated MIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOrigin {
    Graph,
    Bridge,
}

/// Stores a body unless one is already stored: the first bytes served for a message stay.
pub fn put_body(
    conn: &Connection,
    mailbox_id: i64,
    graph_id: &str,
    raw: &[u8],
    origin: BodyOrigin,
) -> StoreResult<()> {
    let compressed = zstd::encode_all(raw, 3)?;
    let origin = match origin {
        BodyOrigin::Graph => "graph",
        BodyOrigin::Bridge => "bridge",
    };
    conn.execute(
        "INSERT INTO bodies (mailbox_id, graph_id, size, zstd, origin) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (mailbox_id, graph_id) DO NOTHING",
        params![mailbox_id, graph_id, raw.len() as i64, compressed, origin],
    )?;
    Ok(())
}

/// Drops a stored body: only for an item that never came to be (an APPEND that failed after
/// Graph had created it); a body of a message that exists is never dropped.
pub fn forget_body(conn: &Connection, mailbox_id: i64, graph_id: &str) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM bodies WHERE mailbox_id = ?1 AND graph_id = ?2",
        params![mailbox_id, graph_id],
    )?;
    Ok(())
}

pub fn get_body(
    conn: &Connection,
    mailbox_id: i64,
    graph_id: &str,
) -> StoreResult<Option<Vec<u8>>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT size, zstd FROM bodies WHERE mailbox_id = ?1 AND graph_id = ?2")?
        .query_row(params![mailbox_id, graph_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((size, compressed)) = row else {
        return Ok(None);
    };
    decompress(&compressed, size)
        .map(Some)
        .map_err(|e| StoreError::CorruptBody(format!("{graph_id}: {e}")))
}

/// A stored body as it lies in the store: compressed, with its length.
pub struct CompressedBody {
    size: i64,
    zstd: Vec<u8>,
}

impl CompressedBody {
    /// The body's bytes. Done by the caller, outside the store's one connection, so that
    /// reading many bodies does not hold up every other session.
    pub fn decompress(&self) -> StoreResult<Vec<u8>> {
        decompress(&self.zstd, self.size).map_err(|e| StoreError::CorruptBody(e.to_string()))
    }
}

/// The stored bodies among `graph_ids`, compressed, in one pass; missing ones are left out.
pub fn get_compressed_bodies(
    conn: &Connection,
    mailbox_id: i64,
    graph_ids: &[String],
) -> StoreResult<HashMap<String, CompressedBody>> {
    let mut stmt = conn
        .prepare_cached("SELECT size, zstd FROM bodies WHERE mailbox_id = ?1 AND graph_id = ?2")?;
    let mut found = HashMap::with_capacity(graph_ids.len());
    for graph_id in graph_ids {
        let row = stmt
            .query_row(params![mailbox_id, graph_id], |row| {
                Ok(CompressedBody {
                    size: row.get(0)?,
                    zstd: row.get(1)?,
                })
            })
            .optional()?;
        if let Some(body) = row {
            found.insert(graph_id.clone(), body);
        }
    }
    Ok(found)
}

thread_local! {
    /// One zstd decompression context per thread: making one costs more than decompressing a
    /// typical message, and FETCH and SEARCH read thousands of bodies in a row.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a stored body of `size` bytes (the length recorded beside it).
fn decompress(compressed: &[u8], size: i64) -> std::io::Result<Vec<u8>> {
    let invalid = |text: String| std::io::Error::new(std::io::ErrorKind::InvalidData, text);
    let capacity = usize::try_from(size).map_err(|_| invalid(format!("size {size}")))?;
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        let raw = decompressor.decompress(compressed, capacity)?;
        if raw.len() != capacity {
            return Err(invalid(format!(
                "{} bytes where {capacity} were stored",
                raw.len()
            )));
        }
        Ok(raw)
    })
}

/// A message whose body is not stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBody {
    pub graph_id: String,
    /// Exchange's size estimate, when delta reported one.
    pub size_estimate: Option<i64>,
}

/// Messages in a mailbox whose bodies are not stored yet, newest first.
pub fn missing_bodies(
    conn: &Connection,
    mailbox_id: i64,
    limit: usize,
) -> StoreResult<Vec<MissingBody>> {
    let mut stmt = conn.prepare(
        "SELECT m.graph_id, MAX(m.size_estimate) FROM messages m JOIN folders f ON f.id = m.folder_id
         WHERE f.mailbox_id = ?1 AND NOT EXISTS (
           SELECT 1 FROM bodies b WHERE b.mailbox_id = f.mailbox_id AND b.graph_id = m.graph_id)
         GROUP BY m.graph_id ORDER BY MAX(m.internal_date) DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![mailbox_id, limit as i64], |row| {
        Ok(MissingBody {
            graph_id: row.get(0)?,
            size_estimate: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Bytes of the bodies stored for a mailbox (uncompressed), for progress reports.
pub fn stored_body_bytes(conn: &Connection, mailbox_id: i64) -> StoreResult<u64> {
    let bytes: i64 = conn.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM bodies WHERE mailbox_id = ?1",
        [mailbox_id],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Applies one message to a folder (as [`apply_changes`] does) and returns its UID: the new
/// one, or the one it already had if a delta pass got there first.
pub fn upsert_returning_uid(
    conn: &mut Connection,
    folder_id: i64,
    message: &MessageUpsert,
) -> StoreResult<u32> {
    apply_changes(conn, folder_id, std::slice::from_ref(message), &[])?;
    conn.query_row(
        "SELECT uid FROM messages WHERE folder_id = ?1 AND graph_id = ?2",
        params![folder_id, message.graph_id],
        |row| row.get(0),
    )
    .map_err(StoreError::from)
}

/// Removes messages by UID (an expunge the bridge did itself); returns how many went.
pub fn remove_uids(conn: &mut Connection, folder_id: i64, uids: &[u32]) -> StoreResult<usize> {
    let tx = conn.transaction()?;
    let mut gone = Vec::new();
    for &uid in uids {
        if tx.execute(
            "DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2",
            params![folder_id, uid],
        )? > 0
        {
            gone.push(uid);
        }
    }
    if !gone.is_empty() {
        record_expunges(&tx, folder_id, &gone)?;
    }
    tx.commit()?;
    Ok(gone.len())
}

/// Gives a copy (a new Graph id) the bytes of its original, so both serve the same message.
pub fn copy_body(conn: &Connection, mailbox_id: i64, from: &str, to: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO bodies (mailbox_id, graph_id, size, zstd, origin)
         SELECT mailbox_id, ?3, size, zstd, origin FROM bodies WHERE mailbox_id = ?1 AND graph_id = ?2
         ON CONFLICT (mailbox_id, graph_id) DO NOTHING",
        params![mailbox_id, from, to],
    )?;
    Ok(())
}

/// The UID a Graph message has in a folder, if the store knows it there.
pub fn uid_by_graph_id(
    conn: &Connection,
    folder_id: i64,
    graph_id: &str,
) -> StoreResult<Option<u32>> {
    Ok(conn
        .query_row(
            "SELECT uid FROM messages WHERE folder_id = ?1 AND graph_id = ?2",
            params![folder_id, graph_id],
            |row| row.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailstore::folders;

    fn upsert(id: &str) -> MessageUpsert {
        MessageUpsert {
            graph_id: id.into(),
            flags: Flags::default(),
            keywords: String::new(),
            internal_date: 0,
            size_estimate: None,
        }
    }

    #[test]
    fn expunges_are_recorded_with_their_modseq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::mailstore::Store::open(&dir.path().join("s.db")).expect("open");
        store
            .call_blocking(|c| -> StoreResult<()> {
                let folder = folders::test_inbox(c)?;
                let all: Vec<_> = ["m1", "m2", "m3"].into_iter().map(upsert).collect();
                apply_changes(c, folder.id, &all, &[])?;
                let before = folders::folder_by_id(c, folder.id)?.highest_modseq;
                assert_eq!(expunged_since(c, folder.id, before)?, Some(vec![]));
                apply_changes(c, folder.id, &[], &["m2".to_string()])?;
                let middle = folders::folder_by_id(c, folder.id)?.highest_modseq;
                assert_eq!(middle, before + 1, "an expunge advances HIGHESTMODSEQ");
                remove_uids(c, folder.id, &[3, 99])?;
                assert_eq!(expunged_since(c, folder.id, before)?, Some(vec![2, 3]));
                assert_eq!(expunged_since(c, folder.id, middle)?, Some(vec![3]));
                assert_eq!(expunged_since(c, folder.id, u64::MAX)?, Some(vec![]));
                // A folder whose expunges were not recorded from the start says so.
                c.execute(
                    "UPDATE folders SET expunges_known_from = ?1",
                    [middle as i64],
                )?;
                assert_eq!(expunged_since(c, folder.id, before)?, None);
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn stored_bodies_decompress_with_a_reused_context() {
        for raw in [b"".to_vec(), b"Subject: a\r\n\r\nb\r\n".repeat(1000)] {
            let compressed = zstd::encode_all(raw.as_slice(), 3).expect("compress");
            for _ in 0..2 {
                let size = raw.len() as i64;
                assert_eq!(decompress(&compressed, size).expect("decompress"), raw);
            }
        }
    }
}
