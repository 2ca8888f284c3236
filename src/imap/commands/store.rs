//! STORE and UID STORE: flag changes are written to Graph first and answered OK only once
//! Graph accepted them (ARCHITECTURE invariant 4). \Seen, \Flagged, \Answered, $Forwarded and
//! keywords (as Graph categories) reach Graph; \Deleted is the bridge's own until EXPUNGE;
//! \Draft is fixed when Graph creates a message and cannot change.

use std::num::NonZeroU32;
use std::sync::Arc;

use imap_next::imap_types::command::StoreModifier;
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::sequence::SequenceSet;

use super::condstore::enable_condstore;
use super::{sync_failure, Outcome};
use crate::imap::keywords::{category_of_keyword, keyword_of_category};
use crate::imap::selected::{modseq_item, sequence_set, Selected};
use crate::imap::session::Session;
use crate::mailstore::{Flags, MessageRecord};
use crate::sync::{FlagChange, SyncError, CATEGORY_SEPARATOR};

const FORWARDED: &str = "$Forwarded";

/// The flag bits and the keywords (other than $Forwarded) of a flag list. Keywords are
/// returned as Graph categories joined by the separator; a keyword that names one of
/// `existing`'s categories keeps that category's exact text.
pub fn flags_and_keywords(flags: &[Flag<'_>], existing: &str) -> Result<(Flags, String), Outcome> {
    let mut bits = Flags::default();
    let mut categories: Vec<String> = Vec::new();
    for flag in flags {
        match flag {
            Flag::Seen => bits = bits.with(Flags::SEEN, true),
            Flag::Flagged => bits = bits.with(Flags::FLAGGED, true),
            Flag::Answered => bits = bits.with(Flags::ANSWERED, true),
            Flag::Deleted => bits = bits.with(Flags::DELETED, true),
            Flag::Draft => bits = bits.with(Flags::DRAFT, true),
            Flag::Keyword(atom) if atom.as_ref().eq_ignore_ascii_case(FORWARDED) => {
                bits = bits.with(Flags::FORWARDED, true)
            }
            Flag::Keyword(atom) => {
                let category = category_for(atom.as_ref(), existing);
                if !categories.contains(&category) {
                    categories.push(category);
                }
            }
            Flag::Extension(_) => {
                return Err(Outcome::bad(format!(
                    "{flag} is not a flag a client may set"
                )))
            }
        }
    }
    Ok((bits, categories.join(CATEGORY_SEPARATOR)))
}

fn category_for(keyword: &str, existing: &str) -> String {
    existing
        .split(CATEGORY_SEPARATOR)
        .find(|c| keyword_of_category(c).eq_ignore_ascii_case(keyword))
        .map(str::to_string)
        .unwrap_or_else(|| category_of_keyword(keyword))
}

pub async fn store(
    session: &mut Session,
    set: SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: Vec<Flag<'static>>,
    uid: bool,
    modifiers: Vec<StoreModifier>,
) -> Outcome {
    // RFC 7162 3.1.3: UNCHANGEDSINCE changes only messages whose MODSEQ is not above it and
    // names the others in [MODIFIED].
    let unchanged_since = modifiers
        .iter()
        .map(|StoreModifier::UnchangedSince(modseq)| *modseq)
        .next();
    if unchanged_since.is_some() {
        enable_condstore(session);
    }
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    if selected.read_only {
        return Outcome::no("The mailbox is open read-only (EXAMINE)").with_atom_code("READ-ONLY");
    }
    if unchanged_since.is_some() {
        // The test is against what the store holds now, not what this session last saw;
        // changes found on the way are reported (expunges wait, RFC 3501 7.4.1).
        match selected.refresh(false).await {
            Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
            Err(e) => return Outcome::no(format!("Cannot read the mailbox: {e}")),
        }
    }
    let targets = selected.resolve(&set, uid);
    let mut answers = Vec::new();
    let mut modified = Vec::new();
    // A run of messages at a time: their changes go to Graph together (as `$batch`es), and a
    // failure stops the STORE before the next run.
    for run in targets.chunks(STORE_RUN) {
        let mut planned = Vec::with_capacity(run.len());
        for &(seq, index) in run {
            let message = &selected.messages[index];
            if unchanged_since.is_some_and(|limit| message.modseq > limit) {
                modified.push(if uid { message.uid } else { seq.get() });
                continue;
            }
            match apply(message, kind, &flags) {
                Ok((new_flags, new_keywords)) => {
                    planned.push((seq, index, new_flags, new_keywords))
                }
                Err(outcome) => {
                    session.pending.extend(answers.into_iter().map(Into::into));
                    return outcome;
                }
            }
        }
        if let Err(e) = store_run(selected, &planned, uid, response, &mut answers).await {
            session.pending.extend(answers.into_iter().map(Into::into));
            return sync_failure("STORE failed", e);
        }
    }
    session.pending.extend(answers.into_iter().map(Into::into));
    match selected.refresh(false).await {
        Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
        Err(e) => tracing::warn!(error = %e, "refresh after STORE failed"),
    }
    modified.sort_unstable();
    match sequence_set(&modified) {
        Some(set) => {
            Outcome::ok("Conditional STORE failed for some messages").with_code(Code::Modified(set))
        }
        None => Outcome::ok("STORE completed"),
    }
}

/// Messages whose flag changes are sent to Graph together.
const STORE_RUN: usize = 100;

/// Sends the changes of one run to Graph, updates the view with what Graph took, and collects
/// the FETCH answers. The first failure (other than a message deleted in Outlook meanwhile,
/// which the next NOOP expunges) is returned after the successes are recorded.
async fn store_run(
    selected: &mut Selected,
    planned: &[(NonZeroU32, usize, Flags, String)],
    uid: bool,
    response: StoreResponse,
    answers: &mut Vec<Data<'static>>,
) -> Result<(), SyncError> {
    let changed: Vec<usize> = (0..planned.len())
        .filter(|&i| {
            let (_, index, new_flags, new_keywords) = &planned[i];
            let message = &selected.messages[*index];
            *new_flags != message.flags || *new_keywords != message.keywords
        })
        .collect();
    let changes: Vec<FlagChange> = changed
        .iter()
        .map(|&i| {
            let (_, index, new_flags, new_keywords) = &planned[i];
            let message = &selected.messages[*index];
            FlagChange {
                uid: message.uid,
                graph_id: message.graph_id.clone(),
                old_flags: message.flags,
                old_keywords: message.keywords.clone(),
                new_flags: *new_flags,
                new_keywords: new_keywords.clone(),
            }
        })
        .collect();
    let results = if changes.is_empty() {
        Vec::new()
    } else {
        selected
            .sync
            .store_flags_many(&selected.folder, changes)
            .await
    };
    let mut verdicts: Vec<Option<Result<u64, SyncError>>> = Vec::new();
    verdicts.resize_with(planned.len(), || None);
    for (i, result) in changed.into_iter().zip(results) {
        verdicts[i] = Some(result);
    }
    let mut first_failure = None;
    for (i, verdict) in verdicts.into_iter().enumerate() {
        let (seq, index, new_flags, new_keywords) = &planned[i];
        match verdict {
            Some(Ok(modseq)) => {
                let known = &mut Arc::make_mut(&mut selected.messages)[*index];
                known.flags = *new_flags;
                known.keywords = new_keywords.clone();
                known.modseq = modseq;
            }
            Some(Err(SyncError::Gone)) => continue,
            Some(Err(e)) => {
                first_failure.get_or_insert(e);
                continue;
            }
            None => {}
        }
        if let Some(data) = answer(selected, *seq, uid, response, *index) {
            answers.push(data);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// The FETCH a STORE answers with: the new flags (with UID and MODSEQ as CONDSTORE and
/// UID STORE want); for .SILENT under CONDSTORE only the new MODSEQ (RFC 7162 3.1.3).
fn answer(
    selected: &Selected,
    seq: NonZeroU32,
    uid: bool,
    response: StoreResponse,
    index: usize,
) -> Option<Data<'static>> {
    let message = &selected.messages[index];
    match response {
        StoreResponse::Answer => Some(selected.flags_data(seq, message, uid)),
        StoreResponse::Silent if selected.condstore => {
            let mut items = Vec::new();
            if uid {
                items.push(MessageDataItem::Uid(NonZeroU32::new(message.uid)?));
            }
            items.push(modseq_item(message));
            Some(Data::Fetch {
                seq,
                items: Vec1::unvalidated(items),
            })
        }
        StoreResponse::Silent => None,
    }
}

/// The flags and categories a message has after the STORE.
fn apply(
    message: &MessageRecord,
    kind: StoreType,
    flags: &[Flag<'_>],
) -> Result<(Flags, String), Outcome> {
    let (bits, keywords) = flags_and_keywords(flags, &message.keywords)?;
    let old_categories: Vec<&str> = message
        .keywords
        .split(CATEGORY_SEPARATOR)
        .filter(|c| !c.is_empty())
        .collect();
    let given: Vec<&str> = keywords
        .split(CATEGORY_SEPARATOR)
        .filter(|c| !c.is_empty())
        .collect();
    let (new_flags, categories): (Flags, Vec<&str>) = match kind {
        StoreType::Add => {
            let mut all = old_categories.clone();
            all.extend(given.iter().filter(|g| !old_categories.contains(g)));
            (Flags(message.flags.0 | bits.0), all)
        }
        StoreType::Remove => (
            Flags(message.flags.0 & !bits.0),
            old_categories
                .into_iter()
                .filter(|c| !given.contains(c))
                .collect(),
        ),
        // \Draft cannot change, so a replacement that leaves it out keeps it.
        StoreType::Replace => (
            bits.with(
                Flags::DRAFT,
                bits.has(Flags::DRAFT) || message.flags.has(Flags::DRAFT),
            ),
            given,
        ),
    };
    if new_flags.has(Flags::DRAFT) != message.flags.has(Flags::DRAFT) {
        return Err(Outcome::no(
            "\\Draft cannot change: Microsoft 365 fixes it when a message is created",
        ));
    }
    Ok((new_flags, categories.join(CATEGORY_SEPARATOR)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_next::imap_types::core::Atom;

    fn record(flags: u32, keywords: &str) -> MessageRecord {
        MessageRecord {
            uid: 1,
            graph_id: "x".into(),
            flags: Flags(flags),
            keywords: keywords.into(),
            internal_date: 0,
            modseq: 1,
            size: None,
        }
    }

    fn keyword(k: &str) -> Flag<'static> {
        Flag::Keyword(Atom::try_from(k.to_string()).expect("atom"))
    }

    #[test]
    fn store_kinds() {
        let m = record(Flags::DELETED | Flags::SEEN, "Red category\nKunde");
        let (flags, cats) = apply(&m, StoreType::Replace, &[Flag::Flagged]).expect("replace");
        assert_eq!(flags, Flags(Flags::FLAGGED));
        assert_eq!(cats, "");
        let (flags, cats) = apply(
            &m,
            StoreType::Remove,
            &[Flag::Seen, keyword("Red_category")],
        )
        .expect("remove");
        assert_eq!(flags, Flags(Flags::DELETED));
        assert_eq!(cats, "Kunde", "the keyword names the category it came from");
        let (flags, cats) = apply(
            &m,
            StoreType::Add,
            &[keyword("$Forwarded"), keyword("Urgent")],
        )
        .expect("add");
        assert!(flags.has(Flags::FORWARDED) && flags.has(Flags::SEEN));
        assert_eq!(cats, "Red category\nKunde\nUrgent");
    }

    #[test]
    fn new_keywords_become_readable_categories() {
        let (_, cats) =
            flags_and_keywords(&[keyword("Kund&AOk-"), keyword("New_tag")], "").expect("keywords");
        assert_eq!(cats, "Kundé\nNew tag");
    }

    #[test]
    fn draft_cannot_change() {
        let m = record(0, "");
        assert!(apply(&m, StoreType::Add, &[Flag::Draft]).is_err());
        let d = record(Flags::DRAFT, "");
        assert!(apply(&d, StoreType::Add, &[Flag::Seen]).is_ok());
        let (flags, _) = apply(&d, StoreType::Replace, &[Flag::Seen]).expect("replace keeps draft");
        assert!(flags.has(Flags::DRAFT));
    }
}
