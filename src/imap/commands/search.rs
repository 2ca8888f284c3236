//! SEARCH and UID SEARCH (RFC 3501 6.4.4 and 6.4.8), answered with `* ESEARCH` when the
//! command carried RETURN options (RFC 4731).
//!
//! Flags, keywords, dates, sizes and sets are answered from the store's records; message
//! bytes are read (and fetched from Graph when not stored yet) only for the messages whose
//! outcome still depends on them, after the cheap keys had their say.

use std::num::{NonZeroU32, NonZeroU64};

use futures::stream::{self, StreamExt};
use imap_next::imap_types::core::{Charset, Vec1};
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::search::SearchKey;

use super::Outcome;
use crate::imap::frontend::{self as esearch, Hit, ReturnOptions};
use crate::imap::search::{Candidate, Content, Query, Scope};
use crate::imap::selected::Selected;
use crate::imap::session::{Session, Untagged};
use crate::sync::SyncError;

/// Bodies read at once while searching: Graph allows four concurrent requests per mailbox.
const BODY_CONCURRENCY: usize = 4;

/// A `SEARCH RETURN (...)`: the command's tag (ESEARCH names it) and what to return.
pub struct Esearch {
    pub tag: String,
    pub options: ReturnOptions,
}

pub async fn search(
    session: &mut Session,
    charset: Option<Charset<'static>>,
    criteria: Vec1<SearchKey<'static>>,
    uid: bool,
    esearch: Option<Esearch>,
) -> Outcome {
    if let Some(charset) = &charset {
        if !supported(charset) {
            let allowed = ["UTF-8", "US-ASCII"]
                .into_iter()
                .filter_map(|c| Charset::try_from(c).ok())
                .collect();
            return Outcome::no("Only UTF-8 and US-ASCII searches are supported")
                .with_code(Code::BadCharset { allowed });
        }
    }
    let uses_modseq = Query::uses_modseq(criteria.as_ref());
    if uses_modseq {
        super::condstore::enable_condstore(session);
    }
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    // New messages and flag changes are reported first, so the results can name them;
    // expunges wait (RFC 3501 7.4.1).
    match selected.refresh(false).await {
        Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
        Err(e) => tracing::warn!(error = %e, "refresh before SEARCH failed"),
    }
    let scope = Scope {
        exists: selected.exists(),
        max_uid: selected.messages.last().map_or(0, |m| m.uid),
    };
    let query = Query::compile(criteria.as_ref(), scope);

    let mut found = Vec::new();
    let mut undecided = Vec::new();
    for (index, record) in selected.messages.iter().enumerate() {
        let seq = index as u32 + 1;
        match query.decide(Candidate { seq, record }) {
            Some(true) => found.push(index),
            Some(false) => {}
            None => undecided.push(index),
        }
    }

    if !undecided.is_empty() {
        let sync = selected.sync.clone();
        let messages = &selected.messages;
        let mut bodies = stream::iter(undecided.iter().copied())
            .map(|index| {
                let sync = sync.clone();
                let graph_id = messages[index].graph_id.clone();
                async move { (index, sync.body(&graph_id).await) }
            })
            .buffered(BODY_CONCURRENCY);
        while let Some((index, body)) = bodies.next().await {
            let raw = match body {
                Ok(raw) => raw,
                // Deleted in Microsoft 365 meanwhile: it matches nothing any more.
                Err(SyncError::Gone) => continue,
                Err(e) => {
                    return Outcome::no(format!(
                        "Cannot read a message from Microsoft 365 to search it: {e}"
                    ))
                }
            };
            let content = Content::new(&raw);
            let candidate = Candidate {
                seq: index as u32 + 1,
                record: &messages[index],
            };
            if query.matches(candidate, &content) {
                found.push(index);
            }
        }
        found.sort_unstable();
    }

    let answer = match esearch {
        Some(esearch) => esearch_answer(selected, &found, uid, uses_modseq, &esearch),
        None => search_answer(selected, found, uid, uses_modseq),
    };
    session.pending.push(answer);
    Outcome::ok(if uid {
        "UID SEARCH completed"
    } else {
        "SEARCH completed"
    })
}

/// `* SEARCH n...`, with `(MODSEQ n)` for a search by MODSEQ.
fn search_answer(selected: &Selected, found: Vec<usize>, uid: bool, uses_modseq: bool) -> Untagged {
    // RFC 7162 3.1.5: a search by MODSEQ answers with the highest MODSEQ among the results.
    let highest = found
        .iter()
        .map(|&index| selected.messages[index].modseq)
        .max()
        .filter(|_| uses_modseq)
        .and_then(NonZeroU64::new);
    let numbers: Vec<NonZeroU32> = found
        .into_iter()
        .filter_map(|index| NonZeroU32::new(number(selected, index, uid)))
        .collect();
    Data::Search(numbers, highest).into()
}

/// `* ESEARCH (TAG "t") ...` with what RETURN asked for (and MODSEQ for a search by MODSEQ).
fn esearch_answer(
    selected: &Selected,
    found: &[usize],
    uid: bool,
    uses_modseq: bool,
    esearch: &Esearch,
) -> Untagged {
    let hits: Vec<Hit> = found
        .iter()
        .map(|&index| Hit {
            number: number(selected, index, uid),
            modseq: selected.messages[index].modseq,
        })
        .collect();
    Untagged::Raw(esearch::encode(
        &esearch.tag,
        uid,
        esearch.options,
        &hits,
        uses_modseq,
    ))
}

/// The number a search result names a message by: its UID, or its sequence number.
fn number(selected: &Selected, index: usize, uid: bool) -> u32 {
    if uid {
        selected.messages[index].uid
    } else {
        index as u32 + 1
    }
}

fn supported(charset: &Charset<'_>) -> bool {
    let name: &str = match charset {
        Charset::Atom(atom) => atom.as_ref(),
        Charset::Quoted(quoted) => quoted.as_ref(),
    };
    ["UTF-8", "US-ASCII"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
}
