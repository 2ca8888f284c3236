//! Which folder plays which SPECIAL-USE role (Inbox, Sent, Drafts, Trash, Junk, Archive).
//!
//! Graph v1.0 folders carry no `wellKnownName`, but every path takes a well-known name where
//! a folder id goes. So a first sync starts each role's message delta by name, asking for
//! `parentFolderId`: the first message listed names the folder, and that delta goes on as the
//! folder's first listing, which the sync needed anyway. Only a role whose folder turns out
//! empty costs a lookup by name, all of them in one `$batch`. Folder ids are stable and the
//! store keeps each role with its folder, so after a restart only roles the store does not
//! know yet are looked for. A role Graph answers 404 for (a mailbox without an archive) is
//! remembered as absent until the restart.

use std::collections::{HashMap, HashSet};

use super::{MailboxSync, SyncError};
use crate::graph::batch::BatchRequest;
use crate::graph::types::{DeltaMessage, MailFolder, Page};
use crate::graph::{GraphClient, GraphError};
use crate::mailstore::{folders as stored, SpecialUse};

/// The roles of this pass, and the listings begun while finding them.
pub(super) struct Roles {
    /// Graph id → role.
    pub by_folder: HashMap<String, SpecialUse>,
    /// By folder Graph id: the page of a listing begun by well-known name.
    pub started: HashMap<String, Page<DeltaMessage>>,
}

/// What a listing begun by well-known name found out.
enum ByName {
    /// The folder's id, from its first message, and the page that carried it.
    Named(String, Page<DeltaMessage>),
    /// The whole listing held no message: the last page, with its deltaLink.
    Empty(Page<DeltaMessage>),
    /// The mailbox has no folder of this role.
    Absent,
}

impl MailboxSync {
    /// The roles of `visible`'s folders; finds those not known yet (see the module).
    pub(super) async fn roles(&self, visible: &[MailFolder]) -> Result<Roles, SyncError> {
        let mut cache = self.well_known.lock().await;
        let mut started = HashMap::new();
        if cache.is_none() {
            let mut found = self.stored_roles().await?;
            let missing: Vec<SpecialUse> = SpecialUse::ALL
                .iter()
                .copied()
                .filter(|r| !found.contains_key(r.well_known_name()))
                .collect();
            let visible_ids: HashSet<&str> = visible.iter().map(|f| f.id.as_str()).collect();
            let mut empty = Vec::new();
            for role in missing {
                match self.list_by_name(role).await? {
                    ByName::Named(id, page) if visible_ids.contains(id.as_str()) => {
                        found.insert(role.well_known_name().to_string(), id.clone());
                        started.insert(id, page);
                    }
                    // A message naming a folder the tree does not show: ask the folder itself.
                    ByName::Named(..) => empty.push((role, None)),
                    ByName::Empty(page) => empty.push((role, Some(page))),
                    ByName::Absent => {}
                }
            }
            let roles: Vec<SpecialUse> = empty.iter().map(|(role, _)| *role).collect();
            let looked_up = self.look_up_roles(&roles).await?;
            for (role, page) in empty {
                if let Some(id) = looked_up.get(role.well_known_name()) {
                    found.insert(role.well_known_name().to_string(), id.clone());
                    if let Some(page) = page.filter(|_| visible_ids.contains(id.as_str())) {
                        started.insert(id.clone(), page);
                    }
                }
            }
            *cache = Some(found);
        }
        let by_name = cache.as_ref().cloned().unwrap_or_default();
        let by_folder = SpecialUse::ALL
            .iter()
            .filter_map(|role| {
                by_name
                    .get(role.well_known_name())
                    .map(|id| (id.clone(), *role))
            })
            .collect();
        Ok(Roles { by_folder, started })
    }

    /// Well-known name → folder id of the roles the store keeps.
    async fn stored_roles(&self) -> Result<HashMap<String, String>, SyncError> {
        let account = self.account_id;
        let folders = self
            .store
            .call(move |c| stored::list_folders(c, account))
            .await?;
        Ok(folders
            .into_iter()
            .filter_map(|f| {
                f.special_use
                    .map(|r| (r.well_known_name().to_string(), f.graph_id))
            })
            .collect())
    }

    /// Begins the message delta of the role's folder by its well-known name, up to the
    /// first page with a message in it.
    async fn list_by_name(&self, role: SpecialUse) -> Result<ByName, SyncError> {
        let mut url = self.graph.delta_start_url_by_name(role.well_known_name());
        loop {
            let page = match self.graph.delta_page(&url).await {
                Ok(page) => page,
                Err(e) if e.is_not_found() => return Ok(ByName::Absent),
                Err(e) => return Err(e.into()),
            };
            if let Some(id) = page.value.iter().find_map(|m| m.parent_folder_id.clone()) {
                return Ok(ByName::Named(id, page));
            }
            match page.next_link.clone() {
                Some(next) => url = next,
                None => return Ok(ByName::Empty(page)),
            }
        }
    }

    /// Asks Graph for the folders of these roles in one `$batch`; well-known name → id of
    /// those the mailbox has. Each lookup still counts against the budget on its own.
    async fn look_up_roles(
        &self,
        roles: &[SpecialUse],
    ) -> Result<HashMap<String, String>, SyncError> {
        let mut found = HashMap::new();
        if roles.is_empty() {
            return Ok(found);
        }
        let requests: Vec<BatchRequest> = roles
            .iter()
            .map(|r| BatchRequest::get(GraphClient::well_known_path(r.well_known_name())))
            .collect();
        let results = self.graph.batch(&requests).await?;
        for (role, result) in roles.iter().zip(results) {
            match result {
                Ok(bytes) => {
                    let folder: MailFolder = serde_json::from_slice(&bytes)
                        .map_err(|e| GraphError::Decode(e.to_string()))?;
                    found.insert(role.well_known_name().to_string(), folder.id);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    }
}
