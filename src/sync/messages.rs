//! Per-folder message delta, and the mapping between IMAP flags and Graph's fields.

use std::collections::HashSet;

use serde_json::json;

use super::{MailboxSync, SyncError};
use crate::graph::types::DeltaMessage;
use crate::mailstore::{folders as stored_folders, messages as stored, ApplyOutcome};
use crate::mailstore::{Flags, FolderRecord, MessageUpsert};

impl MailboxSync {
    /// Applies the folder's message delta since its stored deltaLink. A dead deltaLink (410,
    /// `syncStateNotFound`) starts a fresh delta and reconciles by Graph id: known messages
    /// keep their UIDs, only truly new ones get new UIDs, and UIDVALIDITY stays.
    pub(super) async fn sync_folder_messages(
        &self,
        folder: &FolderRecord,
    ) -> Result<ApplyOutcome, SyncError> {
        if let Some(link) = folder.delta_link.clone() {
            match self.run_delta(folder, link, None).await {
                Err(SyncError::Graph(e)) if e.is_sync_state_lost() => {
                    tracing::info!(folder = %folder.path, "delta token expired, reconciling");
                }
                other => return other,
            }
        }
        let start = self.graph.delta_start_url(&folder.graph_id);
        self.run_delta(folder, start, Some(HashSet::new())).await
    }

    /// Follows nextLinks to the deltaLink, applying each page in one transaction. With
    /// `seen`, this is a full listing: messages not listed are removed at the end.
    async fn run_delta(
        &self,
        folder: &FolderRecord,
        mut url: String,
        mut seen: Option<HashSet<String>>,
    ) -> Result<ApplyOutcome, SyncError> {
        let mut total = ApplyOutcome::default();
        loop {
            let page = self.graph.delta_page(&url).await?;
            let (upserts, removed) = split_page(page.value);
            if let Some(seen) = seen.as_mut() {
                seen.extend(upserts.iter().map(|m| m.graph_id.clone()));
            }
            let folder_id = folder.id;
            let outcome = self
                .store
                .call(move |c| stored::apply_changes(c, folder_id, &upserts, &removed))
                .await?;
            add(&mut total, &outcome);
            if let Some(next) = page.next_link {
                url = next;
                continue;
            }
            if let Some(seen) = seen {
                let outcome = self.remove_unseen(folder_id, seen).await?;
                add(&mut total, &outcome);
            }
            let link = page.delta_link;
            self.store
                .call(move |c| stored_folders::set_delta_link(c, folder_id, link.as_deref()))
                .await?;
            return Ok(total);
        }
    }

    async fn remove_unseen(
        &self,
        folder_id: i64,
        seen: HashSet<String>,
    ) -> Result<ApplyOutcome, SyncError> {
        Ok(self
            .store
            .call(move |c| {
                let gone: Vec<String> = stored::list_messages(c, folder_id)?
                    .into_iter()
                    .map(|m| m.graph_id)
                    .filter(|id| !seen.contains(id))
                    .collect();
                stored::apply_changes(c, folder_id, &[], &gone)
            })
            .await?)
    }
}

fn add(total: &mut ApplyOutcome, page: &ApplyOutcome) {
    total.added += page.added;
    total.changed += page.changed;
    total.removed += page.removed;
}

fn split_page(items: Vec<DeltaMessage>) -> (Vec<MessageUpsert>, Vec<String>) {
    let mut upserts = Vec::new();
    let mut removed = Vec::new();
    for item in items {
        if item.removed.is_some() {
            removed.push(item.id);
        } else {
            upserts.push(MessageUpsert {
                flags: flags_from_graph(&item),
                keywords: item.categories.clone().unwrap_or_default().join(" "),
                internal_date: item
                    .received_date_time
                    .as_deref()
                    .and_then(parse_graph_time)
                    .unwrap_or(0),
                graph_id: item.id,
            });
        }
    }
    (upserts, removed)
}

/// IMAP system flags from a Graph message (see the flag table in graph-facts).
pub fn flags_from_graph(message: &DeltaMessage) -> Flags {
    let flagged = message
        .flag
        .as_ref()
        .is_some_and(|f| f.flag_status == "flagged");
    Flags::default()
        .with(Flags::SEEN, message.is_read.unwrap_or(false))
        .with(Flags::FLAGGED, flagged)
        .with(Flags::DRAFT, message.is_draft.unwrap_or(false))
}

/// The PATCH body that carries a flag change to Graph, or None when Graph holds none of it.
pub(super) fn flag_patch(old: Flags, new: Flags) -> Option<serde_json::Value> {
    let mut patch = serde_json::Map::new();
    if old.has(Flags::SEEN) != new.has(Flags::SEEN) {
        patch.insert("isRead".into(), json!(new.has(Flags::SEEN)));
    }
    if old.has(Flags::FLAGGED) != new.has(Flags::FLAGGED) {
        let status = if new.has(Flags::FLAGGED) {
            "flagged"
        } else {
            "notFlagged"
        };
        patch.insert("flag".into(), json!({ "flagStatus": status }));
    }
    (!patch.is_empty()).then_some(serde_json::Value::Object(patch))
}

/// Parses Graph's `2026-01-05T09:30:00Z` (fractional seconds allowed) to Unix seconds.
pub fn parse_graph_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(json: serde_json::Value) -> DeltaMessage {
        serde_json::from_value(json).expect("delta item")
    }

    #[test]
    fn graph_fields_map_to_imap_flags() {
        let m = delta(json!({"id":"a","isRead":true,"flag":{"flagStatus":"flagged"},"isDraft":false}));
        let f = flags_from_graph(&m);
        assert!(f.has(Flags::SEEN) && f.has(Flags::FLAGGED) && !f.has(Flags::DRAFT));
        let m = delta(json!({"id":"b","isRead":false,"flag":{"flagStatus":"complete"},"isDraft":true}));
        let f = flags_from_graph(&m);
        assert!(!f.has(Flags::SEEN) && !f.has(Flags::FLAGGED) && f.has(Flags::DRAFT));
    }

    #[test]
    fn patch_carries_only_what_changed() {
        let seen = Flags::default().with(Flags::SEEN, true);
        assert_eq!(flag_patch(seen, seen), None);
        assert_eq!(
            flag_patch(Flags::default(), seen),
            Some(json!({"isRead": true}))
        );
        let flagged = seen.with(Flags::FLAGGED, true);
        assert_eq!(
            flag_patch(seen, flagged),
            Some(json!({"flag": {"flagStatus": "flagged"}}))
        );
        // \Deleted is the bridge's own: nothing goes to Graph.
        assert_eq!(flag_patch(seen, seen.with(Flags::DELETED, true)), None);
    }

    #[test]
    fn removed_items_and_times_are_read() {
        let items = vec![
            delta(json!({"id":"gone","@removed":{"reason":"deleted"}})),
            delta(json!({"id":"new","receivedDateTime":"2026-01-05T09:30:00Z","isRead":false,"categories":["Red"]})),
        ];
        let (upserts, removed) = split_page(items);
        assert_eq!(removed, vec!["gone"]);
        assert_eq!(upserts[0].internal_date, 1_767_605_400);
        assert_eq!(upserts[0].keywords, "Red");
    }
}
