//! What a FETCH reads besides the view: stored bodies a run at a time, a body from Graph when
//! none is stored yet, and the cached ENVELOPE/BODY/BODYSTRUCTURE that spare both.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use imap_next::imap_types::fetch::MessageDataItemName;

use super::fetch::FetchFailure;
use crate::imap::fetch::structure_cache::{Structure, StructureCache};
use crate::imap::selected::Selected;
use crate::mailstore::messages::{self as stored, CompressedBody};
use crate::mailstore::MessageRecord;
use crate::sync::SyncError;

/// Most bodies read from the store in one go, and most bytes: a FETCH of a whole folder reads
/// its bodies a run at a time instead of one store round trip per message.
const BODIES_PER_READ: usize = 256;
const BYTES_PER_READ: u64 = 8 << 20;

/// One message a FETCH answers for, with its cached structure (looked up once).
pub(super) struct Target {
    pub seq: NonZeroU32,
    /// Its place in the session's view of the folder.
    pub index: usize,
    /// ENVELOPE/BODY/BODYSTRUCTURE when the FETCH asks for one and they are cached.
    pub structure: Option<Arc<Structure>>,
}

impl Target {
    fn needs_body(&self, selected: &Selected, names: &[MessageDataItemName<'_>]) -> bool {
        needs_body(
            names,
            &selected.messages[self.index],
            self.structure.is_some(),
        )
    }
}

/// The messages `resolved` names, each with its cached structure.
pub(super) fn with_structures(
    selected: &Selected,
    cache: &StructureCache,
    resolved: &[(NonZeroU32, usize)],
    names: &[MessageDataItemName<'static>],
) -> Vec<Target> {
    resolved
        .iter()
        .map(|&(seq, index)| Target {
            seq,
            index,
            structure: cached(selected, cache, names, &selected.messages[index]),
        })
        .collect()
}

/// `targets` cut into runs whose stored bodies are read together.
pub(super) fn body_chunks<'t>(
    selected: &Selected,
    targets: &'t [Target],
    names: &[MessageDataItemName<'static>],
) -> Vec<&'t [Target]> {
    if !targets.iter().any(|t| t.needs_body(selected, names)) {
        return vec![targets];
    }
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (at, target) in targets.iter().enumerate() {
        bytes += selected.messages[target.index].size.unwrap_or(0);
        if at + 1 - start >= BODIES_PER_READ || bytes >= BYTES_PER_READ {
            chunks.push(&targets[start..=at]);
            (start, bytes) = (at + 1, 0);
        }
    }
    if start < targets.len() {
        chunks.push(&targets[start..]);
    }
    chunks
}

/// The stored bodies of the messages in `chunk` that need one, read in one store call. A body
/// not stored yet is missing here and fetched from Graph on its own.
pub(super) async fn stored_bodies(
    selected: &Selected,
    chunk: &[Target],
    names: &[MessageDataItemName<'static>],
) -> HashMap<String, CompressedBody> {
    let graph_ids: Vec<String> = chunk
        .iter()
        .filter(|t| selected.messages[t.index].size.is_some() && t.needs_body(selected, names))
        .map(|t| selected.messages[t.index].graph_id.clone())
        .collect();
    if graph_ids.is_empty() {
        return HashMap::new();
    }
    let mailbox = selected.folder.mailbox_id;
    selected
        .sync
        .store()
        .call(move |c| stored::get_compressed_bodies(c, mailbox, &graph_ids))
        .await
        .unwrap_or_else(|e| {
            // Each message then reads its body on its own, and reports what fails.
            tracing::warn!(error = %e, "reading a run of stored bodies failed");
            HashMap::new()
        })
}

/// The cached structure of `message`, when the FETCH asks for a structure item.
fn cached(
    selected: &Selected,
    cache: &StructureCache,
    names: &[MessageDataItemName<'static>],
    message: &MessageRecord,
) -> Option<Arc<Structure>> {
    if !names.iter().any(is_structure_item) {
        return None;
    }
    cache.get(selected.folder.mailbox_id, &message.graph_id)
}

pub(super) fn is_structure_item(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::Envelope
            | MessageDataItemName::Body
            | MessageDataItemName::BodyStructure
    )
}

/// Whether the items need the message's bytes: not for the structure items when their
/// computed values are cached (`structure_cached`), nor for the size once it is known.
pub(super) fn needs_body(
    names: &[MessageDataItemName<'_>],
    message: &MessageRecord,
    structure_cached: bool,
) -> bool {
    names.iter().any(|n| match n {
        MessageDataItemName::Flags
        | MessageDataItemName::Uid
        | MessageDataItemName::ModSeq
        | MessageDataItemName::InternalDate => false,
        MessageDataItemName::Rfc822Size => message.size.is_none(),
        name if is_structure_item(name) => !structure_cached,
        _ => true,
    })
}

pub(super) async fn load_body(
    selected: &Selected,
    message: &MessageRecord,
) -> Result<Vec<u8>, FetchFailure> {
    match selected.sync.body(&message.graph_id).await {
        Ok(raw) => Ok(raw),
        Err(SyncError::Gone) => Err(FetchFailure::Gone),
        Err(e) => Err(FetchFailure::Other(format!(
            "Cannot read the message from Microsoft 365: {e}"
        ))),
    }
}
