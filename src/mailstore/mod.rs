//! The local store: the single source of truth for IMAP state.
//!
//! Folders, UIDs, UIDVALIDITY, MODSEQ, flags, the Graph id of each message, bodies, the outbox,
//! users, mailboxes, assignments and tokens live in one SQLite file (WAL mode). SQLite calls are
//! blocking, so async code reaches the database through [`Store::call`], which runs the closure
//! on tokio's blocking pool. Nothing outside this module knows that the store is SQLite.

pub mod accounts;
pub mod activities;
pub mod folders;
pub mod links;
pub mod messages;
pub mod outbox;
mod schema;
pub mod snapshots;

pub use accounts::{Assignment, MailboxRecord, SigninState, StoredTokens, User};
pub use folders::{FolderRecord, FolderUpsert, SpecialUse};
pub use messages::{ApplyOutcome, BodyOrigin, Flags, MessageRecord, MessageUpsert};
pub use outbox::{NewOutboxItem, OutboxItem, OutboxState, SendPhase};

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored body is damaged: {0}")]
    CorruptBody(String),
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the store's worker thread stopped")]
    WorkerGone,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How much of the database file is read through a memory mapping.
const MMAP_BYTES: i64 = 256 << 20;

/// Handle to the store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    snapshots: Arc<snapshots::Snapshots>,
}

impl Store {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a 250 to an SMTP client promises the message survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Bodies are read straight from the mapped file instead of a read() per page: a FETCH
        // of 500 bodies took half again as long without it. The mapped pages are the kernel's
        // page cache, counted in the process's RSS but not its own memory; the mapping is
        // bounded so that the RSS stays readable.
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            snapshots: Arc::default(),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|_| StoreError::WorkerGone)?
    }

    /// A folder's record and messages as they are now, shared with every other caller that
    /// reads the same folder before the next change (see [`snapshots`]).
    pub async fn folder_snapshot(&self, folder_id: i64) -> StoreResult<snapshots::FolderSnapshot> {
        let snapshots = self.snapshots.clone();
        self.call(move |c| snapshots.read(c, folder_id)).await
    }

    /// Runs `f` on the calling thread; for the CLI and for code already off the async runtime.
    pub fn call_blocking<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
