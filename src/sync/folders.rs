//! Folder tree sync: Graph's folders become IMAP names (`/`-separated, the inbox as `INBOX`),
//! with SPECIAL-USE roles from Graph's well-known folders.

use std::collections::{HashMap, HashSet};

use super::{MailboxSync, SyncError};
use crate::graph::types::{DeltaMessage, MailFolder, Page};
use crate::mailstore::{folders as stored, FolderUpsert, SpecialUse};

/// IMAP's hierarchy delimiter.
pub const DELIMITER: char = '/';

/// What a folder pass found besides the folders it stored.
pub(super) struct FolderPass {
    /// Whether a folder was added, removed or renamed.
    pub changed: bool,
    /// Graph's `totalItemCount` of every folder by Graph id (the pass leaves alone folders
    /// that are empty on both sides).
    pub counts: HashMap<String, u32>,
    /// First listings begun while finding the special folders, by folder Graph id: each is
    /// the page that named its folder, to be carried on by the folder's message sync (a
    /// caller that drops them leaves those folders to a fresh listing).
    pub started: HashMap<String, Page<DeltaMessage>>,
}

impl MailboxSync {
    /// Brings the store's folders in line with Graph's; see [`FolderPass`] for what it returns.
    pub(super) async fn sync_folders(&self) -> Result<FolderPass, SyncError> {
        let graph_folders = self.graph.folder_tree().await?;
        let visible = visible_folders(graph_folders);
        let roles = self.roles(&visible).await?;
        let counts = visible
            .iter()
            .map(|f| (f.id.clone(), f.total_item_count))
            .collect();
        let upserts = folder_upserts(&visible, &roles.by_folder);
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
        Ok(FolderPass {
            changed,
            counts,
            started: roles.started,
        })
    }
}

/// The folders an IMAP client sees: hidden folders and everything below them left out (a
/// tree walk without `includeHiddenFolders` never reaches those either).
fn visible_folders(folders: Vec<MailFolder>) -> Vec<MailFolder> {
    let hidden: HashSet<&str> = folders
        .iter()
        .filter(|f| f.is_hidden)
        .map(|f| f.id.as_str())
        .collect();
    let parents: HashMap<&str, Option<&str>> = folders
        .iter()
        .map(|f| (f.id.as_str(), f.parent_folder_id.as_deref()))
        .collect();
    let under_hidden = |start: &str| {
        let mut current = Some(start);
        // Bounded: a malformed answer with a parent cycle must not loop forever.
        for _ in 0..=folders.len() {
            match current {
                Some(id) if hidden.contains(id) => return true,
                Some(id) => current = parents.get(id).copied().flatten(),
                None => return false,
            }
        }
        false
    };
    let keep: Vec<bool> = folders.iter().map(|f| !under_hidden(&f.id)).collect();
    folders
        .into_iter()
        .zip(keep)
        .filter_map(|(f, keep)| keep.then_some(f))
        .collect()
}

/// Computes each folder's IMAP name from its parent chain. Graph's flat folder list promises
/// no order, so parents are looked up by id wherever they are; folders whose parent is not
/// listed (children of the hidden root) are top level. The result lists parents first.
fn folder_upserts(
    folders: &[MailFolder],
    roles: &HashMap<String, SpecialUse>,
) -> Vec<FolderUpsert> {
    let by_id: HashMap<&str, &MailFolder> = folders.iter().map(|f| (f.id.as_str(), f)).collect();
    let own_name = |folder: &MailFolder| {
        if roles.get(&folder.id) == Some(&SpecialUse::Inbox) {
            "INBOX".to_string()
        } else {
            imap_safe_name(&folder.display_name)
        }
    };
    let mut upserts: Vec<(usize, FolderUpsert)> = folders
        .iter()
        .map(|folder| {
            // The chain up to the top, bounded by the folder count against parent cycles.
            let mut names = vec![own_name(folder)];
            let mut parent = folder.parent_folder_id.as_deref();
            while let Some(p) = parent.and_then(|id| by_id.get(id)) {
                if names.len() > folders.len() {
                    break;
                }
                names.push(own_name(p));
                parent = p.parent_folder_id.as_deref();
            }
            let depth = names.len();
            names.reverse();
            let upsert = FolderUpsert {
                graph_id: folder.id.clone(),
                parent_graph_id: folder.parent_folder_id.clone(),
                display_name: folder.display_name.clone(),
                path: names.join(&DELIMITER.to_string()),
                special_use: roles.get(&folder.id).copied(),
            };
            (depth, upsert)
        })
        .collect();
    // Stable: folders of one depth keep Graph's order.
    upserts.sort_by_key(|(depth, _)| *depth);
    upserts.into_iter().map(|(_, u)| u).collect()
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
            vec!["INBOX", "Projects", "A_B", "Projects/2026", "INBOX/Sub"]
        );
    }

    #[test]
    fn children_listed_before_their_parents_get_full_paths() {
        let folders = vec![
            folder("q", "Q1", "y"),
            folder("y", "2026", "p"),
            folder("p", "Projects", "root"),
        ];
        let upserts = folder_upserts(&folders, &HashMap::new());
        let paths: Vec<&str> = upserts.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["Projects", "Projects/2026", "Projects/2026/Q1"]);
    }

    #[test]
    fn hidden_folders_and_their_children_are_left_out() {
        let mut hidden = folder("h", "Conversation Action Settings", "root");
        hidden.is_hidden = true;
        let folders = vec![
            folder("c", "Below hidden", "h"),
            hidden,
            folder("p", "Projects", "root"),
        ];
        let ids: Vec<String> = visible_folders(folders).into_iter().map(|f| f.id).collect();
        assert_eq!(ids, vec!["p"]);
    }

    #[test]
    fn a_parent_cycle_does_not_hang() {
        let folders = vec![folder("a", "A", "b"), folder("b", "B", "a")];
        assert_eq!(folder_upserts(&folders, &HashMap::new()).len(), 2);
        assert_eq!(visible_folders(folders).len(), 2);
    }

    #[test]
    fn a_folder_named_inbox_does_not_clash() {
        assert_eq!(imap_safe_name("inbox"), "inbox_");
        assert_eq!(imap_safe_name(""), "_");
    }
}
