//! The front's writes, carried to Graph first and reflected into the store only once Graph
//! accepted them (ARCHITECTURE invariant 4). The delta that later reports the same change
//! finds the store already equal and changes nothing.

use super::append::{self, Attachment, Plan};
use super::{AppendError, MailboxSync, SyncError};
use crate::graph::GraphError;
use crate::mailstore::{folders, messages as stored, FolderRecord, MessageRecord, MessageUpsert};
use crate::mailstore::{BodyOrigin, Flags, StoreError};

impl MailboxSync {
    /// Creates a folder under `parent` (or at the top) and returns it with its new UIDVALIDITY.
    pub async fn create_folder(
        &self,
        parent: Option<&FolderRecord>,
        name: &str,
    ) -> Result<FolderRecord, SyncError> {
        let _pass = self.pass.lock().await;
        let created = self
            .graph
            .create_folder(parent.map(|p| p.graph_id.as_str()), name)
            .await?;
        self.sync_folders().await?;
        self.announce();
        self.folder_by_graph_id(&created.id).await
    }

    /// Renames and/or moves a folder; UIDVALIDITY and UIDs stay (Graph folder ids are stable).
    pub async fn rename_folder(
        &self,
        folder: &FolderRecord,
        new_parent: Option<&FolderRecord>,
        new_name: &str,
    ) -> Result<(), SyncError> {
        let _pass = self.pass.lock().await;
        if folder.display_name != new_name {
            self.graph.rename_folder(&folder.graph_id, new_name).await?;
        }
        let parent_changed =
            new_parent.map(|p| p.graph_id.as_str()) != folder.parent_graph_id.as_deref();
        if parent_changed {
            let destination = match new_parent {
                Some(parent) => parent.graph_id.as_str(),
                None => "msgfolderroot",
            };
            self.graph
                .move_folder(&folder.graph_id, destination)
                .await?;
        }
        self.sync_folders().await?;
        self.announce();
        Ok(())
    }

    /// Deletes a folder in Graph (Exchange moves it to Deleted Items) and forgets it here.
    pub async fn delete_folder(&self, folder: &FolderRecord) -> Result<(), SyncError> {
        let _pass = self.pass.lock().await;
        match self.graph.delete_folder(&folder.graph_id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let folder_id = folder.id;
        self.store
            .call(move |c| folders::remove_folder(c, folder_id))
            .await?;
        self.sync_folders().await?;
        self.announce();
        Ok(())
    }

    /// Moves a message; returns its UID in the destination. The immutable id, and so the
    /// stored body, comes along.
    pub async fn move_message(
        &self,
        from: &FolderRecord,
        message: &MessageRecord,
        to: &FolderRecord,
    ) -> Result<u32, SyncError> {
        let moved = self
            .graph
            .move_message(&message.graph_id, &to.graph_id, false)
            .await
            .map_err(gone_if_missing)?;
        let (source, uid) = (from.id, message.uid);
        self.store
            .call(move |c| stored::remove_uids(c, source, &[uid]))
            .await?;
        let new_uid = self.insert_known(to, message, &moved.id).await?;
        self.announce();
        Ok(new_uid)
    }

    /// Copies a message; returns the copy's UID. The copy serves the original's bytes.
    pub async fn copy_message(
        &self,
        message: &MessageRecord,
        to: &FolderRecord,
    ) -> Result<u32, SyncError> {
        let copy = self
            .graph
            .move_message(&message.graph_id, &to.graph_id, true)
            .await
            .map_err(gone_if_missing)?;
        let (account, original, new_id) =
            (self.account_id, message.graph_id.clone(), copy.id.clone());
        self.store
            .call(move |c| stored::copy_body(c, account, &original, &new_id))
            .await?;
        let uid = self.insert_known(to, message, &copy.id).await?;
        self.announce();
        Ok(uid)
    }

    /// Deletes a message in Graph (to Deleted Items, or for good) and expunges it here.
    pub async fn delete_message(
        &self,
        folder: &FolderRecord,
        message: &MessageRecord,
        permanent: bool,
    ) -> Result<(), SyncError> {
        match self
            .graph
            .delete_message(&message.graph_id, permanent)
            .await
        {
            Ok(()) => {}
            // Already gone in Outlook: the expunge stands.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let (folder_id, uid) = (folder.id, message.uid);
        self.store
            .call(move |c| stored::remove_uids(c, folder_id, &[uid]))
            .await?;
        self.announce();
        Ok(())
    }

    /// Creates a message in a folder from the client's bytes (APPEND) and returns its UID.
    /// The bytes are stored as given and served byte for byte; Graph's copy is its own
    /// rendering of them. A message without `\Draft` is created as a non-draft (the
    /// PidTagMessageFlags workaround in graph-facts); one too large for a single Graph request
    /// gets its remaining attachments after creation (see `append.rs`).
    pub async fn append(
        &self,
        folder: &FolderRecord,
        raw: &[u8],
        flags: Flags,
        keywords: &str,
        internal_date: i64,
    ) -> Result<u32, SyncError> {
        let plan = append::plan(raw, flags, keywords)?;
        let created = match &plan {
            Plan::Mime => {
                self.graph
                    .create_mime_message(&folder.graph_id, raw)
                    .await?
            }
            Plan::Json { message, .. } => {
                self.graph
                    .create_json_message(&folder.graph_id, message.clone())
                    .await?
            }
        };
        // The client's bytes are stored before anything else can happen to the new item: a
        // delta pass that meets it while its attachments are still being added (a large
        // message takes a while) must not fetch and keep Graph's rendering in their place.
        let graph_id = created.id.clone();
        let account = self.account_id;
        let bytes = raw.to_vec();
        self.store
            .call(move |c| stored::put_body(c, account, &graph_id, &bytes, BodyOrigin::Bridge))
            .await?;
        if let Err(e) = self
            .complete_created(&created.id, &plan, flags, keywords)
            .await
        {
            // Take the item back out of Graph, so a failed APPEND (or cross-mailbox COPY)
            // leaves nothing behind; a delta that listed it meanwhile expunges it next time.
            // Should that fail, the item stays, and so do the bytes it was made from.
            match self.graph.delete_message(&created.id, true).await {
                Ok(()) => {
                    let graph_id = created.id.clone();
                    self.store
                        .call(move |c| stored::forget_body(c, account, &graph_id))
                        .await?;
                }
                Err(undo) => tracing::warn!(error = %undo, "cannot remove a half-created message"),
            }
            return Err(e);
        }
        let upsert = MessageUpsert {
            size_estimate: Some(raw.len() as i64),
            graph_id: created.id,
            flags,
            keywords: keywords.to_string(),
            internal_date,
        };
        let folder_id = folder.id;
        let uid = self
            .store
            .call(move |c| stored::upsert_returning_uid(c, folder_id, &upsert))
            .await?;
        self.announce();
        Ok(uid)
    }

    /// Adds to a just-created message the attachments and the flags its creation could not
    /// carry. Graph's last-verb property (\Answered/$Forwarded) is never set at creation, and
    /// the next delta would otherwise take it away again.
    async fn complete_created(
        &self,
        graph_id: &str,
        plan: &Plan,
        flags: Flags,
        keywords: &str,
    ) -> Result<(), SyncError> {
        if let Plan::Json { later, .. } = plan {
            for attachment in later {
                self.attach(graph_id, attachment).await?;
            }
        }
        let (graph_state, graph_keywords) = plan.created_state(flags, keywords);
        if let Some(patch) =
            super::messages::flag_patch(graph_state, flags, graph_keywords, keywords)
        {
            self.graph.patch_message(graph_id, patch).await?;
        }
        Ok(())
    }

    /// One attachment in one request when it fits, else through an upload session.
    async fn attach(&self, graph_id: &str, attachment: &Attachment) -> Result<(), SyncError> {
        let added = if attachment.fits_one_request() {
            self.graph.add_attachment(graph_id, attachment.json()).await
        } else {
            self.graph
                .upload_attachment_item(graph_id, attachment.upload_item(), &attachment.bytes)
                .await
        };
        added.map_err(|source| {
            SyncError::Append(AppendError::Attachment {
                name: attachment.name.clone(),
                size: attachment.bytes.len(),
                source,
            })
        })
    }

    /// Records a message Graph just put into `to` under `graph_id`, keeping the flags and
    /// INTERNALDATE it had before.
    async fn insert_known(
        &self,
        to: &FolderRecord,
        message: &MessageRecord,
        graph_id: &str,
    ) -> Result<u32, SyncError> {
        let upsert = MessageUpsert {
            size_estimate: message.size.map(|s| s as i64),
            graph_id: graph_id.to_string(),
            // \Deleted does not travel: it marked the message in its old folder only.
            flags: message.flags.with(Flags::DELETED, false),
            keywords: message.keywords.clone(),
            internal_date: message.internal_date,
        };
        let folder_id = to.id;
        Ok(self
            .store
            .call(move |c| stored::upsert_returning_uid(c, folder_id, &upsert))
            .await?)
    }

    async fn folder_by_graph_id(&self, graph_id: &str) -> Result<FolderRecord, SyncError> {
        let account = self.account_id;
        let id = graph_id.to_string();
        self.store
            .call(move |c| {
                folders::list_folders(c, account)?
                    .into_iter()
                    .find(|f| f.graph_id == id)
                    .ok_or_else(|| StoreError::NotFound(format!("folder {id}")))
            })
            .await
            .map_err(SyncError::from)
    }
}

fn gone_if_missing(error: GraphError) -> SyncError {
    if error.is_not_found() {
        SyncError::Gone
    } else {
        SyncError::Graph(error)
    }
}
