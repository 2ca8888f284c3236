//! CONDSTORE and QRESYNC (RFC 7162): MODSEQ comes from the store, where every change to a
//! message (and every expunge) takes the folder's next MODSEQ; expunged UIDs are recorded with
//! theirs, so a client that comes back can be told exactly what vanished meanwhile.

use std::num::{NonZeroU32, NonZeroU64};

use imap_next::imap_types::command::SelectParameter;
use imap_next::imap_types::response::{Code, Data, Status};

use super::Outcome;
use crate::imap::selected::{ranges_set, set_ranges, Selected};
use crate::imap::session::Session;
use crate::mailstore::{messages, StoreResult};

/// Turns CONDSTORE on for the session (any CONDSTORE-enabling command does, RFC 7162 3.1).
/// When a mailbox is selected, its HIGHESTMODSEQ is announced at once.
pub fn enable_condstore(session: &mut Session) {
    session.condstore = true;
    let Some(selected) = session.selected.as_mut() else {
        return;
    };
    if selected.condstore {
        return;
    }
    selected.condstore = true;
    if let Some(status) = highest_modseq_status(selected) {
        session.pending.push(status.into());
    }
}

/// `* OK [HIGHESTMODSEQ n]` for the selected folder.
pub fn highest_modseq_status(selected: &Selected) -> Option<Status<'static>> {
    let highest = NonZeroU64::new(selected.folder.highest_modseq)?;
    Status::ok(None, Some(Code::HighestModSeq(highest)), "Highest").ok()
}

/// What a QRESYNC client remembers: UIDVALIDITY, its last MODSEQ and the UIDs it knows
/// (sorted, merged ranges; None for all).
pub type QresyncState = (NonZeroU32, NonZeroU64, Option<Vec<(u32, u32)>>);

/// What SELECT/EXAMINE's parameters ask for, checked before anything is selected.
pub struct SelectOptions {
    pub condstore: bool,
    pub qresync: Option<QresyncState>,
}

pub fn select_options(
    session: &Session,
    parameters: Vec<SelectParameter>,
) -> Result<SelectOptions, Outcome> {
    let mut options = SelectOptions {
        condstore: false,
        qresync: None,
    };
    for parameter in parameters {
        match parameter {
            SelectParameter::CondStore => options.condstore = true,
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                // Only a hint for servers that do not remember expunges; this one does.
                seq_match_data: _,
            } => {
                if !session.qresync {
                    return Err(Outcome::bad(
                        "QRESYNC must be enabled first (ENABLE QRESYNC)",
                    ));
                }
                let known = known_uids.map(|set| normalize(set_ranges(&set, u32::MAX)));
                options.qresync = Some((uid_validity, mod_sequence_value, known));
            }
        }
    }
    Ok(options)
}

/// After a QRESYNC SELECT (RFC 7162 3.2.5): the known UIDs expunged since the client's MODSEQ
/// as `VANISHED (EARLIER)`, then every message changed since then with UID, FLAGS and MODSEQ.
/// A client whose UIDVALIDITY is stale gets nothing more: it must start over.
pub async fn qresync_select(
    session: &mut Session,
    (uidvalidity, since, known): QresyncState,
) -> StoreResult<()> {
    let Some(selected) = session.selected.as_ref() else {
        return Ok(());
    };
    if selected.folder.uidvalidity != uidvalidity.get() {
        return Ok(());
    }
    let since = since.get();
    let known = known.unwrap_or_else(|| vec![(1, u32::MAX)]);
    if let Some(vanished) = vanished_earlier(selected, since, &known).await? {
        session.pending.push(vanished.into());
    }
    let mut changed = Vec::new();
    for (index, message) in selected.messages.iter().enumerate() {
        if message.modseq > since && in_ranges(&known, message.uid) {
            if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
                changed.push(selected.flags_data(seq, message, true));
            }
        }
    }
    session.pending.extend(changed.into_iter().map(Into::into));
    Ok(())
}

/// `VANISHED (EARLIER)` for the UIDs within `ranges` expunged after `since`; None when there
/// are none. UIDs the view still holds are left for the VANISHED that removes them from it.
/// For a folder whose expunges are not recorded that far back, every UID in `ranges` below
/// UIDNEXT that is not in the folder is reported, as RFC 7162 3.2.5.1 allows.
pub async fn vanished_earlier(
    selected: &Selected,
    since: u64,
    ranges: &[(u32, u32)],
) -> StoreResult<Option<Data<'static>>> {
    let ranges = normalize(ranges.to_vec());
    let folder_id = selected.folder.id;
    let recorded = selected
        .sync
        .store()
        .call(move |c| messages::expunged_since(c, folder_id, since))
        .await?;
    let gone: Vec<(u32, u32)> = match recorded {
        Some(uids) => runs(
            uids.into_iter()
                .filter(|&uid| in_ranges(&ranges, uid) && selected.index_of_uid(uid).is_none()),
        ),
        None => {
            let below = selected.folder.uidnext.saturating_sub(1);
            let mut gaps = Vec::new();
            for &(lo, hi) in &ranges {
                let hi = hi.min(below);
                if lo > hi {
                    continue;
                }
                let mut next = lo;
                let start = selected.messages.partition_point(|m| m.uid < lo);
                for message in &selected.messages[start..] {
                    if message.uid > hi {
                        break;
                    }
                    if message.uid > next {
                        gaps.push((next, message.uid - 1));
                    }
                    next = message.uid.saturating_add(1);
                }
                if next <= hi && next >= lo {
                    gaps.push((next, hi));
                }
            }
            gaps
        }
    };
    Ok(ranges_set(&gone).map(|known_uids| Data::Vanished {
        earlier: true,
        known_uids,
    }))
}

/// Sorted, merged ranges.
fn normalize(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some((_, end)) if lo <= end.saturating_add(1) => *end = (*end).max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Whether `n` is in sorted, merged ranges.
pub fn in_ranges(ranges: &[(u32, u32)], n: u32) -> bool {
    let i = ranges.partition_point(|&(_, hi)| hi < n);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= n)
}

/// Ascending numbers folded into runs.
fn runs(sorted: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(n) => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_match() {
        let r = normalize(vec![(5, 9), (1, 2), (3, 3), (20, 30), (8, 12)]);
        assert_eq!(r, vec![(1, 3), (5, 12), (20, 30)]);
        assert!(in_ranges(&r, 1) && in_ranges(&r, 12) && in_ranges(&r, 25));
        assert!(!in_ranges(&r, 4) && !in_ranges(&r, 13) && !in_ranges(&r, 31));
        assert_eq!(
            runs([1, 2, 3, 7, 9, 10].into_iter()),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert_eq!(normalize(vec![(1, u32::MAX), (4, 5)]), vec![(1, u32::MAX)]);
    }
}
