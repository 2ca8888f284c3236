//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS: folders as Graph mail folders.

use std::num::NonZeroU32;

use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::{locate, sync_failure, Located, Outcome};
use crate::imap::names::wire_mailbox;
use crate::imap::session::Session;
use crate::mailstore::{folders, messages, Flags, FolderRecord};
use crate::sync::{MailboxSync, SyncError};

pub async fn create(session: &mut Session, mailbox: Mailbox<'static>) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    // A trailing delimiter only says the client means to create children later.
    let path = located.path.trim_end_matches('/').to_string();
    if path.eq_ignore_ascii_case("INBOX") || located.folder.is_some() {
        return Outcome::no(format!("{path} already exists")).with_atom_code("ALREADYEXISTS");
    }
    if path.split('/').any(str::is_empty) {
        return Outcome::bad("Mailbox names cannot have empty levels");
    }
    match ensure_path(&located.sync, &path).await {
        Ok(_) => Outcome::ok("CREATE completed"),
        Err(e) => creation_failure(&path, e),
    }
}

/// Creates every missing level of `path` (RFC 3501: intermediate levels are created too)
/// and returns the deepest folder.
async fn ensure_path(sync: &MailboxSync, path: &str) -> Result<FolderRecord, SyncError> {
    let mut parent: Option<FolderRecord> = None;
    let mut so_far = String::new();
    for level in path.split('/') {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(level);
        let folder = match find(sync, &so_far).await? {
            Some(existing) => existing,
            None => sync.create_folder(parent.as_ref(), level).await?,
        };
        parent = Some(folder);
    }
    parent.ok_or_else(|| SyncError::Unsupported("empty mailbox name".into()))
}

async fn find(sync: &MailboxSync, path: &str) -> Result<Option<FolderRecord>, SyncError> {
    let (account, path) = (sync.account_id, path.to_string());
    Ok(sync
        .store()
        .call(move |c| folders::folder_by_path(c, account, &path))
        .await?)
}

fn creation_failure(path: &str, error: SyncError) -> Outcome {
    match &error {
        SyncError::Graph(crate::graph::GraphError::Status { status: 409, .. }) => {
            Outcome::no(format!("{path} already exists in Microsoft 365"))
                .with_atom_code("ALREADYEXISTS")
        }
        _ => sync_failure(&format!("Cannot create {path}"), error),
    }
}

pub async fn delete(session: &mut Session, mailbox: Mailbox<'static>) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let folder = match existing(&located) {
        Ok(folder) => folder,
        Err(outcome) => return outcome,
    };
    if folder.special_use.is_some() {
        return Outcome::no(format!(
            "{} is a default folder of Microsoft 365 and cannot be deleted",
            located.path
        ))
        .with_atom_code("CANNOT");
    }
    if has_children(&located.sync, &folder).await {
        return Outcome::no(format!(
            "{} has subfolders; delete them first (Microsoft 365 would delete them with it)",
            located.path
        ))
        .with_atom_code("INUSE");
    }
    if session
        .selected
        .as_ref()
        .is_some_and(|s| s.folder.id == folder.id)
    {
        session.selected = None;
    }
    match located.sync.delete_folder(&folder).await {
        Ok(()) => Outcome::ok("DELETE completed"),
        Err(e) => sync_failure(&format!("Cannot delete {}", located.path), e),
    }
}

async fn has_children(sync: &MailboxSync, folder: &FolderRecord) -> bool {
    let (account, prefix) = (sync.account_id, format!("{}/", folder.path));
    sync.store()
        .call(move |c| folders::list_folders(c, account))
        .await
        .map(|all| all.iter().any(|f| f.path.starts_with(&prefix)))
        .unwrap_or(true)
}

fn existing(located: &Located) -> Result<FolderRecord, Outcome> {
    located.folder.clone().ok_or_else(|| {
        Outcome::no(format!("No such mailbox: {}", located.path)).with_atom_code("NONEXISTENT")
    })
}

pub async fn rename(
    session: &mut Session,
    from: Mailbox<'static>,
    to: Mailbox<'static>,
) -> Outcome {
    let source = match locate(session, &from).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let target = match locate(session, &to).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let folder = match existing(&source) {
        Ok(folder) => folder,
        Err(outcome) => return outcome,
    };
    if source.mailbox.record.account_id() != target.mailbox.record.account_id() {
        return Outcome::no("Folders cannot be moved between Microsoft 365 mailboxes")
            .with_atom_code("CANNOT");
    }
    let new_path = target.path.trim_end_matches('/').to_string();
    if target.folder.is_some() || new_path.eq_ignore_ascii_case("INBOX") {
        return Outcome::no(format!("{new_path} already exists")).with_atom_code("ALREADYEXISTS");
    }
    if new_path.starts_with(&format!("{}/", folder.path)) {
        return Outcome::no("A folder cannot be moved into itself").with_atom_code("CANNOT");
    }
    if folder.path == "INBOX" {
        return rename_inbox(&source.sync, &folder, &new_path).await;
    }
    if folder.special_use.is_some() {
        return Outcome::no(format!(
            "{} is a default folder of Microsoft 365 and cannot be renamed",
            source.path
        ))
        .with_atom_code("CANNOT");
    }
    let (parent_path, name) = match new_path.rsplit_once('/') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, new_path.as_str()),
    };
    let parent = match parent_path {
        Some(parent) => match ensure_path(&source.sync, parent).await {
            Ok(parent) => Some(parent),
            Err(e) => return creation_failure(parent, e),
        },
        None => None,
    };
    match source
        .sync
        .rename_folder(&folder, parent.as_ref(), name)
        .await
    {
        Ok(()) => Outcome::ok("RENAME completed"),
        Err(e) => sync_failure(&format!("Cannot rename {}", source.path), e),
    }
}

/// RFC 3501: renaming INBOX moves all its messages to a new folder and leaves INBOX empty.
async fn rename_inbox(sync: &MailboxSync, inbox: &FolderRecord, new_path: &str) -> Outcome {
    let target = match ensure_path(sync, new_path).await {
        Ok(target) => target,
        Err(e) => return creation_failure(new_path, e),
    };
    let inbox_id = inbox.id;
    let list = match sync
        .store()
        .call(move |c| messages::list_messages(c, inbox_id))
        .await
    {
        Ok(list) => list,
        Err(e) => return Outcome::no(format!("Cannot read INBOX: {e}")),
    };
    for message in &list {
        match sync.move_message(inbox, message, &target).await {
            Ok(_) | Err(SyncError::Gone) => {}
            Err(e) => return sync_failure("Cannot move INBOX's messages", e),
        }
    }
    Outcome::ok("RENAME completed: INBOX's messages moved")
}

pub async fn subscribe(session: &mut Session, mailbox: Mailbox<'static>, on: bool) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let folder = match existing(&located) {
        Ok(folder) => folder,
        Err(outcome) => return outcome,
    };
    let folder_id = folder.id;
    match session
        .bridge
        .store
        .call(move |c| folders::set_subscribed(c, folder_id, on))
        .await
    {
        Ok(()) if on => Outcome::ok("SUBSCRIBE completed"),
        Ok(()) => Outcome::ok("UNSUBSCRIBE completed"),
        Err(e) => Outcome::no(format!("Cannot record the subscription: {e}")),
    }
}

pub async fn status(
    session: &mut Session,
    mailbox: Mailbox<'static>,
    items: &[StatusDataItemName],
) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let folder = match existing(&located) {
        Ok(folder) => folder,
        Err(outcome) => return outcome,
    };
    let folder_id = folder.id;
    let list = match session
        .bridge
        .store
        .call(move |c| {
            let folder = folders::folder_by_id(c, folder_id)?;
            Ok((folder, messages::list_messages(c, folder_id)?))
        })
        .await
    {
        Ok(found) => found,
        Err(e) => return Outcome::no(format!("Cannot read the mailbox: {e}")),
    };
    let (folder, list) = list;
    if items.contains(&StatusDataItemName::HighestModSeq) {
        super::condstore::enable_condstore(session);
    }
    let size = if items.contains(&StatusDataItemName::Size) {
        match mailbox_size(&located.sync, &list).await {
            Ok(size) => size,
            Err(e) => return sync_failure("Cannot compute the mailbox size", e),
        }
    } else {
        0
    };
    let mut answer = Vec::new();
    for item in items {
        answer.push(match item {
            StatusDataItemName::Messages => StatusDataItem::Messages(list.len() as u32),
            StatusDataItemName::Recent => StatusDataItem::Recent(0),
            StatusDataItemName::UidNext => {
                StatusDataItem::UidNext(NonZeroU32::new(folder.uidnext).unwrap_or(NonZeroU32::MIN))
            }
            StatusDataItemName::UidValidity => StatusDataItem::UidValidity(
                NonZeroU32::new(folder.uidvalidity).unwrap_or(NonZeroU32::MIN),
            ),
            StatusDataItemName::Unseen => StatusDataItem::Unseen(
                list.iter().filter(|m| !m.flags.has(Flags::SEEN)).count() as u32,
            ),
            StatusDataItemName::Deleted => StatusDataItem::Deleted(
                list.iter().filter(|m| m.flags.has(Flags::DELETED)).count() as u32,
            ),
            StatusDataItemName::HighestModSeq => {
                StatusDataItem::HighestModSeq(folder.highest_modseq)
            }
            StatusDataItemName::Size => StatusDataItem::Size(size),
            other => {
                return Outcome::bad(format!("STATUS item {other:?} is not supported"));
            }
        });
    }
    let Some(wire) = wire_mailbox(&located.mailbox.full_name(&folder.path)) else {
        return Outcome::no("The mailbox name cannot be sent");
    };
    session.pending.push(
        Data::Status {
            mailbox: wire,
            items: answer.into(),
        }
        .into(),
    );
    Outcome::ok("STATUS completed")
}

/// Bodies read at once for STATUS SIZE: Graph allows four concurrent requests per mailbox.
const SIZE_CONCURRENCY: usize = 4;

/// STATUS SIZE (RFC 8438): the sum of every message's RFC822.SIZE, which is the length of the
/// bytes served; bodies not stored yet are fetched (and kept) first, so the sum is exact.
async fn mailbox_size(
    sync: &std::sync::Arc<MailboxSync>,
    list: &[crate::mailstore::MessageRecord],
) -> Result<u64, SyncError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let known: u64 = list.iter().filter_map(|m| m.size).sum();
    let missing: Vec<String> = list
        .iter()
        .filter(|m| m.size.is_none())
        .map(|m| m.graph_id.clone())
        .collect();
    let fetched: Vec<u64> = stream::iter(missing)
        .map(|id| {
            let sync = sync.clone();
            async move {
                match sync.body(&id).await {
                    Ok(raw) => Ok(raw.len() as u64),
                    // Deleted in Microsoft 365 meanwhile: no longer part of the mailbox.
                    Err(SyncError::Gone) => Ok(0),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(SIZE_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(known + fetched.iter().sum::<u64>())
}
