//! Folder tree sync: Graph's folders become IMAP names (`/`-separated, the inbox as `INBOX`),
//! with SPECIAL-USE roles from Graph's well-known folders.

use std::collections::HashMap;

use super::{MailboxSync, SyncError};
use crate::graph::types::MailFolder;
use crate::mailstore::{folders as stored, FolderUpsert, SpecialUse};

/// IMAP's hierarchy delimiter.
pub const DELIMITER: char = '/';

impl MailboxSync {
    /// Brings the store's folders in line with Graph's; true when anything changed.
    pub(super) async fn sync_folders(&self) -> Result<bool, SyncError> {
        let roles = self.well_known_ids().await?;
        let graph_folders = self.graph.all_folders().await?;
        let upserts = folder_upserts(&graph_folders, &roles);
        let account = self.account_id;
        let changed = self
            .store
            .call(move |conn| {
                let before = stored::list_folders(conn, account)?;
                let tx = conn.transaction()?;
                for folder in &upserts {
                    stored::upsert_folder(&tx, account, folder)?;
                }
                let keep: Vec<String> = upserts.iter().map(|f| f.graph_id.clone()).collect();
                stored::remove_folders_except(&tx, account, &keep)?;
                tx.commit()?;
                let after = stored::list_folders(conn, account)?;
                Ok(before.len() != after.len()
                    || before
                        .iter()
                        .zip(&after)
                        .any(|(a, b)| a.graph_id != b.graph_id || a.path != b.path))
            })
            .await?;
        Ok(changed)
    }

    /// Graph id → role of the well-known folders this mailbox has (asked once, then cached).
    async fn well_known_ids(&self) -> Result<HashMap<String, SpecialUse>, SyncError> {
        let mut cache = self.well_known.lock().await;
        if cache.is_none() {
            let mut found = HashMap::new();
            for role in SpecialUse::ALL {
                if let Some(folder) = self.graph.well_known_folder(role.well_known_name()).await? {
                    found.insert(role.well_known_name().to_string(), folder.id);
                }
            }
            *cache = Some(found);
        }
        let by_name = cache.as_ref().cloned().unwrap_or_default();
        Ok(SpecialUse::ALL
            .iter()
            .filter_map(|role| {
                by_name
                    .get(role.well_known_name())
                    .map(|id| (id.clone(), *role))
            })
            .collect())
    }
}

/// Computes each folder's IMAP name from its parent chain. Graph lists parents before
/// children; folders whose parent is not listed (children of the hidden root) are top level.
fn folder_upserts(
    folders: &[MailFolder],
    roles: &HashMap<String, SpecialUse>,
) -> Vec<FolderUpsert> {
    let mut paths: HashMap<&str, String> = HashMap::new();
    let mut upserts = Vec::with_capacity(folders.len());
    for folder in folders {
        let role = roles.get(&folder.id).copied();
        let own_name = if role == Some(SpecialUse::Inbox) {
            "INBOX".to_string()
        } else {
            imap_safe_name(&folder.display_name)
        };
        let parent_path = folder
            .parent_folder_id
            .as_deref()
            .and_then(|parent| paths.get(parent));
        let path = match parent_path {
            Some(parent) => format!("{parent}{DELIMITER}{own_name}"),
            None => own_name,
        };
        paths.insert(folder.id.as_str(), path.clone());
        upserts.push(FolderUpsert {
            graph_id: folder.id.clone(),
            parent_graph_id: folder.parent_folder_id.clone(),
            display_name: folder.display_name.clone(),
            path,
            special_use: role,
        });
    }
    upserts
}

/// A display name as one level of an IMAP name: the delimiter cannot appear inside a level,
/// so Outlook names containing `/` show it as `_`. A top-level folder Outlook named "INBOX"
/// in another case would clash with the real inbox; it gets a suffix.
fn imap_safe_name(display_name: &str) -> String {
    let name = display_name.replace(DELIMITER, "_");
    if name.eq_ignore_ascii_case("INBOX") {
        format!("{name}_")
    } else if name.is_empty() {
        "_".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str, name: &str, parent: &str) -> MailFolder {
        MailFolder {
            id: id.into(),
            display_name: name.into(),
            parent_folder_id: Some(parent.into()),
            child_folder_count: 0,
            total_item_count: 0,
            is_hidden: false,
        }
    }

    #[test]
    fn paths_follow_the_parent_chain_and_inbox_is_inbox() {
        let folders = vec![
            folder("i", "Posteingang", "root"),
            folder("p", "Projects", "root"),
            folder("y", "2026", "p"),
            folder("c", "Sub", "i"),
            folder("s", "A/B", "root"),
        ];
        let roles = HashMap::from([("i".to_string(), SpecialUse::Inbox)]);
        let paths: Vec<String> = folder_upserts(&folders, &roles)
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            paths,
            vec!["INBOX", "Projects", "Projects/2026", "INBOX/Sub", "A_B"]
        );
    }

    #[test]
    fn a_folder_named_inbox_does_not_clash() {
        assert_eq!(imap_safe_name("inbox"), "inbox_");
        assert_eq!(imap_safe_name(""), "_");
    }
}
