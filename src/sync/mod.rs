//! The sync engine: keeps the store equal to Graph for one Microsoft 365 account and carries
//! the front's writes to Graph.
//!
//! Reads: the folder tree, then a per-folder message delta whose deltaLink is stored, then
//! bodies in the background (newest first) and on demand. Writes (flags, sending) go to Graph
//! first and reach the store only once Graph accepted them (ARCHITECTURE invariant 4).

mod append;
mod bodies;
mod flag_queue;
mod folders;
pub mod foreground;
mod messages;
pub mod push;
mod roles;
mod writes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};

use crate::graph::{GraphClient, GraphError};
use crate::mailstore::{
    accounts, messages as stored, Flags, FolderRecord, SigninState, Store, StoreError,
};

pub use append::AppendError;
pub use messages::{flags_from_graph, CATEGORY_SEPARATOR};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the message is no longer in Microsoft 365")]
    Gone,
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl SyncError {
    pub fn needs_signin(&self) -> bool {
        self.graph_error().is_some_and(GraphError::needs_signin)
    }

    /// True when the message is larger than Graph takes: over Exchange's message size limit
    /// (413 `ErrorMessageSizeExceeded`), or text that no single request can carry.
    pub fn is_too_large(&self) -> bool {
        match self {
            SyncError::Append(AppendError::TextTooLarge { .. }) => true,
            _ => self.graph_error().is_some_and(|e| {
                matches!(e, GraphError::Status { status, code, .. }
                    if *status == 413 || code.eq_ignore_ascii_case("ErrorMessageSizeExceeded"))
            }),
        }
    }

    /// Graph's answer behind this error, if Graph gave one.
    fn graph_error(&self) -> Option<&GraphError> {
        match self {
            SyncError::Graph(e) | SyncError::Append(AppendError::Attachment { source: e, .. }) => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// Sync state of one Graph account (a primary mailbox; its alias mailboxes share it).
pub struct MailboxSync {
    pub account_id: i64,
    graph: Arc<GraphClient>,
    store: Store,
    /// Bumped after every change to the store, so IMAP sessions know to look.
    changes: watch::Sender<u64>,
    /// Well-known folder ids, learnt once: they never change.
    well_known: Mutex<Option<HashMap<String, String>>>,
    /// Serialises sync passes so a poll and an on-demand refresh never interleave.
    pass: Mutex<()>,
    /// Folders open in IMAP sessions, with how many sessions have each open.
    hot: Mutex<HashMap<i64, usize>>,
    wake: tokio::sync::Notify,
    /// Set once Microsoft refused the stored sign-in: the engine stops and the bridge stops
    /// handing it out, so IMAP and SMTP answer "needs sign-in" with the fix.
    signed_out: AtomicBool,
    /// Change-notification subscriptions (when the bridge has a public URL).
    push: std::sync::Mutex<push::PushState>,
    /// Folders a change notification asked to sync now.
    urgent: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Flag changes on their way to Graph, batched when several wait.
    flag_queue: Arc<flag_queue::FlagQueue>,
    /// When the last full pass finished: the poll loop's first full pass waits its turn
    /// after a first sync that ran before the loop started.
    last_full_pass: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// One message's flag change, for [`MailboxSync::store_flags_many`].
#[derive(Debug, Clone)]
pub struct FlagChange {
    pub uid: u32,
    pub graph_id: String,
    pub old_flags: Flags,
    pub old_keywords: String,
    pub new_flags: Flags,
    pub new_keywords: String,
}

/// How often the poll loop asks Graph for changes.
#[derive(Debug, Clone, Copy)]
pub struct PollSchedule {
    /// Folders selected or idled in by a client.
    pub hot: Duration,
    /// Every folder, and the folder tree.
    pub full: Duration,
}

/// Keeps a folder on the fast poll schedule while alive.
pub struct HotFolder {
    sync: Arc<MailboxSync>,
    folder_id: i64,
}

impl Drop for HotFolder {
    fn drop(&mut self) {
        let sync = self.sync.clone();
        let folder_id = self.folder_id;
        // Drop cannot await; the count is fixed up on the runtime right away.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut hot = sync.hot.lock().await;
                if let Some(count) = hot.get_mut(&folder_id) {
                    *count -= 1;
                    if *count == 0 {
                        hot.remove(&folder_id);
                    }
                }
            });
        }
    }
}

impl MailboxSync {
    pub fn new(account_id: i64, graph: Arc<GraphClient>, store: Store) -> Arc<MailboxSync> {
        Arc::new(MailboxSync {
            account_id,
            store,
            changes: watch::channel(0).0,
            well_known: Mutex::new(None),
            pass: Mutex::new(()),
            hot: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            signed_out: AtomicBool::new(false),
            push: std::sync::Mutex::new(push::PushState::default()),
            urgent: std::sync::Mutex::new(std::collections::HashSet::new()),
            flag_queue: flag_queue::FlagQueue::new(graph.clone()),
            last_full_pass: std::sync::Mutex::new(None),
            graph,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The account's Graph client, for the outbox worker's draft-based sends.
    pub fn graph_client(&self) -> Arc<GraphClient> {
        self.graph.clone()
    }

    /// A receiver that wakes up whenever this account's store changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn announce(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// One full pass: folders, then the message delta of every folder that has anything to
    /// tell.
    ///
    /// A folder that Graph reports with `totalItemCount` 0 while the store holds none of its
    /// messages is skipped: its delta could only report items that came and went between two
    /// passes, which leave the store as it is. The folder list is read fresh on every pass,
    /// so the pass after mail arrives in such a folder sees a count above 0 and runs its
    /// delta; a folder a client has open is polled on the fast schedule whatever its count,
    /// and a change notification for it runs its delta at once. A stored deltaLink stays:
    /// replayed later it reports what arrived meanwhile (or, expired, leads to a reconciling
    /// listing). A folder never listed has none: its first listing, once it has mail, reads
    /// everything in it. Until then it is marked empty, which counts as synced.
    pub async fn sync_once(&self) -> Result<(), SyncError> {
        let _pass = self.pass.lock().await;
        let mut pass = self.sync_folders().await?;
        let folders = {
            let account = self.account_id;
            self.store
                .call(move |c| crate::mailstore::folders::list_folders(c, account))
                .await?
        };
        let mut changed = pass.changed;
        for folder in &folders {
            if let Some(page) = pass.started.remove(&folder.graph_id) {
                let outcome = self.continue_listing(folder, page).await?;
                changed |= !outcome.is_empty();
                continue;
            }
            let empty =
                pass.counts.get(&folder.graph_id) == Some(&0) && self.holds_nothing(folder).await?;
            if folder.delta_link.is_none() && folder.empty_unlisted != empty {
                let folder_id = folder.id;
                self.store
                    .call(move |c| {
                        crate::mailstore::folders::set_empty_unlisted(c, folder_id, empty)
                    })
                    .await?;
            }
            if empty {
                continue;
            }
            let outcome = self.sync_folder_messages(folder).await?;
            changed |= !outcome.is_empty();
        }
        if changed {
            self.announce();
        }
        *self
            .last_full_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// Whether a full pass is due: none yet, or the last one `every` ago.
    fn full_pass_due(&self, every: Duration) -> bool {
        self.last_full_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() >= every)
    }

    /// Whether a full pass has brought the folder tree in at least once.
    fn folders_known(&self) -> bool {
        self.last_full_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// True when the store holds no message of the folder.
    async fn holds_nothing(&self, folder: &FolderRecord) -> Result<bool, SyncError> {
        let folder_id = folder.id;
        Ok(self
            .store
            .call(move |c| stored::list_messages(c, folder_id))
            .await?
            .is_empty())
    }

    /// Polls Graph until `shutdown` fires: folders someone has selected (or is idling in)
    /// every `schedule.hot`, everything every `schedule.full`, then missing bodies.
    pub async fn run(self: Arc<Self>, schedule: PollSchedule, mut shutdown: watch::Receiver<bool>) {
        // When this loop last started a full pass, whether it worked or not: a failing pass
        // is retried on the full schedule, not on every wake-up.
        let mut last_full: Option<tokio::time::Instant> = None;
        let mut push: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let full_due = self.full_pass_due(schedule.full)
                && last_full.is_none_or(|t| t.elapsed() >= schedule.full);
            if full_due {
                last_full = Some(tokio::time::Instant::now());
            }
            // A pass stops where it is at shutdown: every page and body is committed on its
            // own, and the delta link only once the folder is done, so nothing is half-applied.
            let result = tokio::select! {
                result = self.poll_pass(full_due) => result,
                _ = shutdown.changed() => break,
            };
            match result {
                Ok(()) => {}
                Err(e) if e.needs_signin() => {
                    self.mark_needs_signin(&e).await;
                    break;
                }
                Err(e) => tracing::warn!(account = self.account_id, error = %e, "sync failed"),
            }
            // Subscriptions once the folders are known; they live as long as this loop.
            if push.is_none() && self.folders_known() && self.push_enabled() {
                push = Some(tokio::spawn(self.clone().run_push(shutdown.clone())));
            }
            tokio::select! {
                _ = tokio::time::sleep(schedule.hot) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        // The push task deletes its subscriptions when the loop's stop signal fires.
        if let Some(push) = push {
            if *shutdown.borrow() {
                let _ = tokio::time::timeout(Duration::from_secs(5), push).await;
            } else {
                // Signed out: without a token the subscriptions cannot be deleted; they expire.
                push.abort();
            }
        }
    }

    /// One pass of the poll loop: everything or the open folders, then missing bodies.
    async fn poll_pass(&self, full: bool) -> Result<(), SyncError> {
        if full {
            self.sync_once().await?;
        } else {
            self.sync_hot_folders().await?;
        }
        self.fetch_missing_bodies().await.map(drop)
    }

    /// A delta pass over the folders IMAP sessions have open.
    async fn sync_hot_folders(&self) -> Result<(), SyncError> {
        let mut hot: Vec<i64> = self.hot.lock().await.keys().copied().collect();
        for folder in self.take_urgent() {
            if !hot.contains(&folder) {
                hot.push(folder);
            }
        }
        if hot.is_empty() {
            return Ok(());
        }
        let _pass = self.pass.lock().await;
        let mut changed = false;
        for folder_id in hot {
            let folder = match self
                .store
                .call(move |c| crate::mailstore::folders::folder_by_id(c, folder_id))
                .await
            {
                Ok(folder) => folder,
                // Deleted meanwhile; the next full pass notices.
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            changed |= !self.sync_folder_messages(&folder).await?.is_empty();
        }
        if changed {
            self.announce();
        }
        Ok(())
    }

    /// Marks a folder as open in an IMAP session until the returned guard is dropped, so it is
    /// polled at the faster rate.
    pub async fn watch_folder(self: &Arc<Self>, folder_id: i64) -> HotFolder {
        *self.hot.lock().await.entry(folder_id).or_insert(0) += 1;
        HotFolder {
            sync: self.clone(),
            folder_id,
        }
    }

    /// Asks the poll loop for a pass now (after a write, or a change notification).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// True once Microsoft refused the stored sign-in (`invalid_grant`).
    pub fn needs_signin(&self) -> bool {
        self.signed_out.load(Ordering::SeqCst)
    }

    /// Records a refused sign-in, for the admin side ("needs sign-in") and for the fronts.
    async fn mark_needs_signin(&self, error: &SyncError) {
        if self.signed_out.swap(true, Ordering::SeqCst) {
            return;
        }
        self.announce();
        let account = self.account_id;
        let text = format!("{error}");
        tracing::error!(account, "Microsoft refused the stored sign-in: {text}");
        let result = self
            .store
            .call(move |c| {
                accounts::set_signin_state(c, account, SigninState::NeedsSignin, Some(&text))
            })
            .await;
        if let Err(e) = result {
            tracing::error!(account, error = %e, "cannot record the sign-in state");
        }
    }

    /// Writes a message's flags and keywords (Graph categories) to Graph, then to the store.
    /// Returns the new MODSEQ.
    pub async fn store_flags(
        &self,
        folder: &FolderRecord,
        uid: u32,
        graph_id: &str,
        old: (Flags, &str),
        new: Flags,
        keywords: &str,
    ) -> Result<u64, SyncError> {
        let change = FlagChange {
            uid,
            graph_id: graph_id.to_string(),
            old_flags: old.0,
            old_keywords: old.1.to_string(),
            new_flags: new,
            new_keywords: keywords.to_string(),
        };
        self.store_flags_many(folder, vec![change])
            .await
            .pop()
            .unwrap_or(Err(SyncError::Unsupported(
                "no answer for the flag change".into(),
            )))
    }

    /// Writes several messages' flags and keywords to Graph (as `$batch`es of up to twenty),
    /// then those Graph accepted to the store. Returns each change's new MODSEQ or why it
    /// failed, in the order given: a change Graph refused is not written to the store, and
    /// its caller hears about it (`Gone` when the message is no longer in Microsoft 365).
    pub async fn store_flags_many(
        &self,
        folder: &FolderRecord,
        changes: Vec<FlagChange>,
    ) -> Vec<Result<u64, SyncError>> {
        let patches: Vec<Option<serde_json::Value>> = changes
            .iter()
            .map(|c| {
                messages::flag_patch(c.old_flags, c.new_flags, &c.old_keywords, &c.new_keywords)
            })
            .collect();
        let to_send: Vec<(String, serde_json::Value)> = changes
            .iter()
            .zip(&patches)
            .filter_map(|(c, p)| p.clone().map(|p| (c.graph_id.clone(), p)))
            .collect();
        let mut sent = self.flag_queue.patch_all(to_send).await.into_iter();
        // Graph's verdict per change; a change Graph holds nothing of (\Deleted) is the
        // store's alone.
        let mut verdicts: Vec<Result<(), SyncError>> = Vec::with_capacity(changes.len());
        for patch in &patches {
            if patch.is_none() {
                verdicts.push(Ok(()));
                continue;
            }
            let verdict = match sent.next() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) if e.is_not_found() => Err(SyncError::Gone),
                Some(Err(e)) => Err(self.noted(e.into()).await),
                None => Err(SyncError::Graph(GraphError::Closed)),
            };
            verdicts.push(verdict);
        }
        let accepted: Vec<(usize, u32, Flags, String)> = changes
            .iter()
            .zip(&verdicts)
            .enumerate()
            .filter(|(_, (_, v))| v.is_ok())
            .map(|(i, (c, _))| (i, c.uid, c.new_flags, c.new_keywords.clone()))
            .collect();
        if accepted.is_empty() {
            return verdicts.into_iter().map(|v| v.map(|()| 0)).collect();
        }
        let folder_id = folder.id;
        let written = self
            .store
            .call(move |c| {
                accepted
                    .into_iter()
                    .map(|(i, uid, flags, keywords)| {
                        stored::set_flags(c, folder_id, uid, flags, &keywords).map(|m| (i, m))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        self.announce();
        let mut out: Vec<Result<u64, SyncError>> =
            verdicts.into_iter().map(|v| v.map(|()| 0)).collect();
        match written {
            Ok(modseqs) => {
                for (i, modseq) in modseqs {
                    out[i] = Ok(modseq);
                }
            }
            // Graph has the changes but the store could not take them: the next delta
            // brings them in; the callers hear the store's failure.
            Err(e) => {
                let text = format!("Graph took the flags but the store did not: {e}");
                for slot in out.iter_mut().filter(|r| r.is_ok()) {
                    *slot = Err(SyncError::Store(StoreError::Invalid(text.clone())));
                }
            }
        }
        out
    }

    /// Sends a MIME message through Graph (which saves it in Sent Items), then syncs so the
    /// copy shows up in IMAP's Sent folder.
    pub async fn send_mime(&self, message: &[u8]) -> Result<(), GraphError> {
        self.graph.send_mime(message).await
    }

    /// Passes an error through, first recording a refused sign-in.
    async fn noted(&self, error: SyncError) -> SyncError {
        if error.needs_signin() {
            self.mark_needs_signin(&error).await;
        }
        error
    }

    /// Runs a sync pass now (after a send, or when a client asks), logging failures.
    pub async fn refresh_now(&self) {
        if let Err(e) = self.sync_once().await {
            if e.needs_signin() {
                self.mark_needs_signin(&e).await;
            } else {
                tracing::warn!(account = self.account_id, error = %e, "sync failed");
            }
        }
    }
}
