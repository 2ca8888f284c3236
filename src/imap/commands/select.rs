//! SELECT, EXAMINE, CLOSE, UNSELECT and NOOP: entering and leaving a folder, and hearing what
//! changed in it.

use std::num::NonZeroU32;

use imap_next::imap_types::command::SelectParameter;
use imap_next::imap_types::flag::{Flag, FlagPerm};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, Status};

use super::condstore::{self, highest_modseq_status};
use super::Outcome;
use crate::imap::selected::Selected;
use crate::imap::session::Session;
use crate::mailstore::Flags;

pub async fn select(
    session: &mut Session,
    mailbox: Mailbox<'static>,
    read_only: bool,
    parameters: Vec<SelectParameter>,
) -> Outcome {
    let options = match condstore::select_options(session, parameters) {
        Ok(options) => options,
        Err(outcome) => return outcome,
    };
    // RFC 3501: a failed SELECT leaves no folder selected.
    session.selected = None;
    if options.condstore {
        condstore::enable_condstore(session);
    }
    let located = match super::locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let Some(folder) = located.folder else {
        return Outcome::no(format!("No such mailbox: {}", located.path))
            .with_atom_code("NONEXISTENT");
    };
    // The folder's counters and its messages are read together, so HIGHESTMODSEQ and UIDNEXT
    // describe exactly the messages announced.
    let snapshot = match session.bridge.store.folder_snapshot(folder.id).await {
        Ok(snapshot) => snapshot,
        Err(e) => return Outcome::no(format!("Cannot open the mailbox: {e}")),
    };
    let (folder, list) = (snapshot.folder, snapshot.messages);
    let selected = Selected {
        mailbox: located.mailbox,
        changes: located.sync.subscribe(),
        _hot: located.sync.watch_folder(folder.id).await,
        sync: located.sync,
        folder,
        read_only,
        condstore: session.condstore,
        qresync: session.qresync,
        messages: list,
    };
    announce(session, &selected);
    let code = if read_only {
        Code::ReadOnly
    } else {
        Code::ReadWrite
    };
    session.selected = Some(selected);
    if let Some(qresync) = options.qresync {
        if let Err(e) = condstore::qresync_select(session, qresync).await {
            session.selected = None;
            return Outcome::no(format!("Cannot read what changed in the mailbox: {e}"));
        }
    }
    Outcome::ok(if read_only {
        "EXAMINE completed"
    } else {
        "SELECT completed"
    })
    .with_code(code)
}

/// The untagged responses RFC 3501 requires after a successful SELECT or EXAMINE.
fn announce(session: &mut Session, selected: &Selected) {
    let system = [
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ];
    session.pending.push(Data::Flags(system.to_vec()).into());
    session.pending.push(Data::Exists(selected.exists()).into());
    session.pending.push(Data::Recent(0).into());
    let mut untagged = Vec::new();
    if let Some(first_unseen) = selected
        .messages
        .iter()
        .position(|m| !m.flags.has(Flags::SEEN))
        .and_then(|i| NonZeroU32::new(i as u32 + 1))
    {
        untagged.push((Code::Unseen(first_unseen), "First unseen"));
    }
    let permanent = if selected.read_only {
        Vec::new()
    } else {
        // Only \Seen and \Flagged reach Graph for now; the others would not survive.
        vec![FlagPerm::Flag(Flag::Seen), FlagPerm::Flag(Flag::Flagged)]
    };
    untagged.push((Code::PermanentFlags(permanent), "Flags that are kept"));
    if let Some(validity) = NonZeroU32::new(selected.folder.uidvalidity) {
        untagged.push((Code::UidValidity(validity), "UIDs valid"));
    }
    if let Some(next) = NonZeroU32::new(selected.folder.uidnext) {
        untagged.push((Code::UidNext(next), "Predicted next UID"));
    }
    for (code, text) in untagged {
        if let Ok(status) = Status::ok(None, Some(code), text) {
            session.pending.push(status.into());
        }
    }
    // Every SELECT and EXAMINE reports HIGHESTMODSEQ: MODSEQs are kept for good (RFC 7162
    // 3.1.2.1).
    if let Some(status) = highest_modseq_status(selected) {
        session.pending.push(status.into());
    }
}

pub fn close(session: &mut Session) -> Outcome {
    // Nothing is marked \Deleted yet (no EXPUNGE support), so CLOSE only leaves the folder.
    session.selected = None;
    Outcome::ok("Closed")
}

/// NOOP: refresh the folder from the store and report what changed.
pub async fn noop(session: &mut Session) -> Outcome {
    if let Some(selected) = session.selected.as_mut() {
        match selected.refresh(true).await {
            Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
            Err(e) => return Outcome::no(format!("Cannot read the mailbox: {e}")),
        }
    }
    Outcome::ok("NOOP completed")
}
