//! FETCH and UID FETCH: every item is computed from the one stored copy of the message's
//! bytes, so RFC822.SIZE, ENVELOPE, BODYSTRUCTURE and BODY[...] always agree (ARCHITECTURE
//! invariant 2). A body not stored yet is fetched from Graph first.

use std::num::NonZeroU32;
use std::sync::Arc;

use imap_next::imap_types::command::FetchModifier;
use imap_next::imap_types::core::{IString, Literal, LiteralMode, NString, NString8};
use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::extensions::binary::Literal8;
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_next::imap_types::sequence::SequenceSet;

use super::condstore::{enable_condstore, vanished_earlier};
use super::fetch_bodies::{
    body_chunks, is_structure_item, load_body, needs_body, stored_bodies, with_structures, Target,
};
use super::Outcome;
use crate::imap::fetch::response::FetchResponse;
use crate::imap::fetch::structure_cache::{Structure, StructureCache};
use crate::imap::fetch::{partial, MessageView};
use crate::imap::selected::{flag_list, modseq_item, set_ranges, Selected};
use crate::imap::session::{Session, Untagged};
use crate::mailstore::messages::CompressedBody;
use crate::mailstore::{Flags, MessageRecord};
use crate::sync::SyncError;

/// A FETCH's responses go to the client in blocks of about this size: one write each, while
/// a FETCH of a large folder never holds more than a block beyond what it has queued.
const BLOCK_BYTES: usize = 256 * 1024;

pub async fn fetch(
    session: &mut Session,
    set: SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers: Vec<FetchModifier>,
) -> Outcome {
    let mut names = match names {
        MacroOrMessageDataItemNames::Macro(m) => {
            m.expand().into_iter().map(|n| n.into_static()).collect()
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    if uid && !names.contains(&MessageDataItemName::Uid) {
        names.insert(0, MessageDataItemName::Uid);
    }
    // RFC 7162: CHANGEDSINCE limits the FETCH to messages changed after a MODSEQ and implies
    // MODSEQ; VANISHED (UID FETCH only, with QRESYNC enabled) also reports the UIDs expunged
    // since then.
    let mut changed_since = None;
    let mut vanished = false;
    for modifier in &modifiers {
        match modifier {
            FetchModifier::ChangedSince(modseq) => changed_since = Some(modseq.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished && !(uid && session.qresync && changed_since.is_some()) {
        return Outcome::bad(
            "VANISHED needs UID FETCH, CHANGEDSINCE and an enabled QRESYNC (RFC 7162 3.2.6)",
        );
    }
    if changed_since.is_some() && !names.contains(&MessageDataItemName::ModSeq) {
        names.push(MessageDataItemName::ModSeq);
    }
    if names.contains(&MessageDataItemName::ModSeq) {
        enable_condstore(session);
    }
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    let mut resolved = selected.resolve(&set, uid);
    if resolved.is_empty() && !uid {
        return Outcome::bad("No messages in that sequence set");
    }
    if let Some(since) = changed_since {
        if vanished {
            let largest = selected
                .folder
                .uidnext
                .saturating_sub(1)
                .max(selected.messages.last().map_or(0, |m| m.uid));
            match vanished_earlier(selected, since, &set_ranges(&set, largest)).await {
                Ok(Some(data)) => session.pending.push(data.into()),
                Ok(None) => {}
                Err(e) => return Outcome::no(format!("Cannot read the expunged messages: {e}")),
            }
        }
        resolved.retain(|&(_, index)| selected.messages[index].modseq > since);
    }
    let bridge = session.bridge.clone();
    let cache = &bridge.structures;
    let mut failures = 0;
    let mut block = Vec::new();
    let targets = with_structures(selected, cache, &resolved, &names);
    for chunk in body_chunks(selected, &targets, &names) {
        let mut stored = stored_bodies(selected, chunk, &names).await;
        for target in chunk {
            let preloaded = stored.remove(&selected.messages[target.index].graph_id);
            let start = block.len();
            let written = fetch_one(selected, cache, target, &names, preloaded, &mut block).await;
            if written.is_err() {
                block.truncate(start);
            }
            match written {
                Ok(()) => {}
                Err(FetchFailure::Gone) => failures += 1,
                Err(FetchFailure::UnknownCte) => {
                    push_block(&mut session.pending, block);
                    return Outcome::no(
                        "A part has a content transfer encoding this server cannot decode",
                    )
                    .with_atom_code("UNKNOWN-CTE");
                }
                Err(FetchFailure::Other(text)) => {
                    push_block(&mut session.pending, block);
                    return Outcome::no(text);
                }
            }
            if block.len() >= BLOCK_BYTES {
                push_block(&mut session.pending, std::mem::take(&mut block));
            }
        }
    }
    push_block(&mut session.pending, block);
    match selected.refresh(false).await {
        Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
        Err(e) => tracing::warn!(error = %e, "refresh after FETCH failed"),
    }
    if failures > 0 {
        return Outcome::no(format!(
            "{failures} message(s) were deleted in Microsoft 365 and could not be fetched"
        ));
    }
    Outcome::ok("FETCH completed")
}

/// Queues the responses written so far, if any.
fn push_block(pending: &mut Vec<Untagged>, block: Vec<u8>) {
    if !block.is_empty() {
        pending.push(Untagged::Raw(block));
    }
}

pub(super) enum FetchFailure {
    Gone,
    /// BINARY of a part whose Content-Transfer-Encoding is unknown (RFC 3516).
    UnknownCte,
    Other(String),
}

/// Writes the FETCH response for one message to the end of `out`; on failure part of it may
/// be there, which the caller takes back out.
async fn fetch_one(
    selected: &mut Selected,
    cache: &StructureCache,
    target: &Target,
    names: &[MessageDataItemName<'static>],
    preloaded: Option<CompressedBody>,
    out: &mut Vec<u8>,
) -> Result<(), FetchFailure> {
    let (seq, index) = (target.seq, target.index);
    let mut structure = target.structure.clone();
    let raw = match preloaded {
        _ if !needs_body(names, &selected.messages[index], structure.is_some()) => None,
        Some(body) => Some(
            body.decompress()
                .map_err(|e| FetchFailure::Other(format!("Cannot read the stored message: {e}")))?,
        ),
        None => Some(load_body(selected, &selected.messages[index]).await?),
    };
    let sets_seen = !selected.read_only && names.iter().any(sets_seen_flag);
    if sets_seen && !selected.messages[index].flags.has(Flags::SEEN) {
        mark_seen(selected, index).await?;
    }
    let message = &selected.messages[index];
    // Items that need no body never look at the view, so an empty one serves them.
    let raw = raw.unwrap_or_default();
    let view = MessageView::parse(&raw);
    if structure.is_none() && names.iter().any(is_structure_item) {
        let computed = Arc::new(Structure::of(&view));
        cache.insert(
            selected.folder.mailbox_id,
            &message.graph_id,
            computed.clone(),
        );
        structure = Some(computed);
    }
    let mut response = FetchResponse::start(out, seq);
    for name in names {
        match (name, &structure) {
            (MessageDataItemName::Envelope, Some(s)) => response.encoded(&s.envelope),
            (MessageDataItemName::Body, Some(s)) => response.encoded(&s.body),
            (MessageDataItemName::BodyStructure, Some(s)) => response.encoded(&s.body_structure),
            (MessageDataItemName::Uid, _) => response.uid(message.uid.max(1)),
            (MessageDataItemName::Flags, _) => response.flags(&flag_list(message)),
            (MessageDataItemName::ModSeq, _) => response.modseq(message.modseq.max(1)),
            (MessageDataItemName::InternalDate, _) => response.internal_date(message.internal_date),
            (MessageDataItemName::Rfc822Size, _) => {
                response.rfc822_size(rfc822_size(message, &raw))
            }
            (MessageDataItemName::Rfc822, _) => response.literal("RFC822", &raw),
            (
                MessageDataItemName::BodyExt {
                    section: None,
                    partial: None,
                    ..
                },
                _,
            ) => response.literal("BODY[]", &raw),
            _ => response.item(item(name, message, &raw, &view)?),
        }
    }
    if sets_seen && !names.contains(&MessageDataItemName::Flags) {
        response.flags(&flag_list(message));
        // A flag change carries its MODSEQ once CONDSTORE is on (RFC 7162 3.1.4.1).
        if selected.condstore && !names.contains(&MessageDataItemName::ModSeq) {
            response.modseq(message.modseq.max(1));
        }
    }
    response.finish();
    Ok(())
}

fn sets_seen_flag(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Binary { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// Sets \Seen through Graph (implicitly, as BODY[] asks) and in the session's view.
async fn mark_seen(selected: &mut Selected, index: usize) -> Result<(), FetchFailure> {
    let message = selected.messages[index].clone();
    let new = message.flags.with(Flags::SEEN, true);
    let result = selected
        .sync
        .store_flags(
            &selected.folder,
            message.uid,
            &message.graph_id,
            (message.flags, &message.keywords),
            new,
            &message.keywords,
        )
        .await;
    match result {
        Ok(modseq) => {
            let known = &mut Arc::make_mut(&mut selected.messages)[index];
            known.flags = new;
            known.modseq = modseq;
            Ok(())
        }
        Err(SyncError::Gone) => Err(FetchFailure::Gone),
        Err(e) => Err(FetchFailure::Other(format!(
            "Cannot set \\Seen in Microsoft 365: {e}"
        ))),
    }
}

/// One FETCH data item computed from a message's record and bytes, exactly as a FETCH
/// response carries it; None where the session would answer NO (BINARY of an unknown
/// Content-Transfer-Encoding). Pure: used by the fuzz targets.
pub fn compute_item(
    name: &MessageDataItemName<'static>,
    message: &MessageRecord,
    raw: &[u8],
    view: &MessageView<'_>,
) -> Option<MessageDataItem<'static>> {
    item(name, message, raw, view).ok()
}

fn item(
    name: &MessageDataItemName<'static>,
    message: &MessageRecord,
    raw: &[u8],
    view: &MessageView<'_>,
) -> Result<MessageDataItem<'static>, FetchFailure> {
    Ok(match name {
        MessageDataItemName::Uid => {
            MessageDataItem::Uid(NonZeroU32::new(message.uid).unwrap_or(NonZeroU32::MIN))
        }
        MessageDataItemName::Flags => MessageDataItem::Flags(flag_list(message)),
        MessageDataItemName::ModSeq => modseq_item(message),
        MessageDataItemName::InternalDate => MessageDataItem::InternalDate(internal_date(message)),
        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(rfc822_size(message, raw)),
        MessageDataItemName::Envelope => MessageDataItem::Envelope(view.envelope()),
        MessageDataItemName::Body => MessageDataItem::Body(view.body_structure(false)),
        MessageDataItemName::BodyStructure => {
            MessageDataItem::BodyStructure(view.body_structure(true))
        }
        MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(nstring(raw.to_vec())),
        MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(nstring(
            section_bytes(view, Some(&Section::Header(None))).unwrap_or_default(),
        )),
        MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(nstring(
            section_bytes(view, Some(&Section::Text(None))).unwrap_or_default(),
        )),
        MessageDataItemName::BodyExt {
            section,
            partial: range,
            ..
        } => {
            let bytes = section_bytes(view, section.as_ref());
            // A part that does not exist is sent as an empty string, as Dovecot does.
            let bytes = bytes.unwrap_or_default();
            let (origin, data) = match range {
                None => (None, nstring(bytes)),
                Some((start, length)) => (
                    Some(*start),
                    nstring(partial(&bytes, *start, length.get()).to_vec()),
                ),
            };
            MessageDataItem::BodyExt {
                section: section.clone(),
                origin,
                data,
            }
        }
        MessageDataItemName::Binary {
            section,
            partial: range,
            ..
        } => {
            let numbers: Vec<u32> = section.iter().map(|n| n.get()).collect();
            let decoded = view
                .binary(&numbers)
                .map_err(|_| FetchFailure::UnknownCte)?;
            let value = match decoded {
                None => NString8::NString(NString(None)),
                Some(bytes) => {
                    let bytes = match range {
                        Some((start, length)) => partial(&bytes, *start, length.get()).to_vec(),
                        None => bytes,
                    };
                    NString8::Literal8(Literal8 {
                        data: bytes.into(),
                        mode: LiteralMode::Sync,
                    })
                }
            };
            MessageDataItem::Binary {
                section: section.clone(),
                value,
            }
        }
        MessageDataItemName::BinarySize { section } => {
            let numbers: Vec<u32> = section.iter().map(|n| n.get()).collect();
            let size = view
                .binary_size(&numbers)
                .map_err(|_| FetchFailure::UnknownCte)?
                .unwrap_or(0);
            MessageDataItem::BinarySize {
                section: section.clone(),
                size,
            }
        }
    })
}

/// The size of the stored bytes: known once stored, else the bytes at hand.
fn rfc822_size(message: &MessageRecord, raw: &[u8]) -> u32 {
    message
        .size
        .unwrap_or(raw.len() as u64)
        .min(u32::MAX as u64) as u32
}

/// The bytes of `BODY[section]`; None when the message has no such part.
fn section_bytes(view: &MessageView<'_>, section: Option<&Section<'_>>) -> Option<Vec<u8>> {
    view.section(section).map(|bytes| bytes.to_vec())
}

fn internal_date(message: &MessageRecord) -> DateTime {
    let utc = chrono::DateTime::from_timestamp(message.internal_date, 0).unwrap_or_default();
    let fixed = utc.fixed_offset();
    DateTime::try_from(fixed).unwrap_or_else(|_| DateTime::unvalidated(fixed))
}

/// Message bytes as a literal; IMAP4rev1 literals cannot hold NUL, which only broken mail has,
/// and which is then sent as it is rather than altered.
fn nstring(bytes: Vec<u8>) -> NString<'static> {
    let literal = Literal::try_from(bytes.clone()).unwrap_or_else(|_| Literal::unvalidated(bytes));
    NString(Some(IString::Literal(literal)))
}

use imap_next::imap_types::IntoStatic;
