//! LIST and LSUB: every folder of every mailbox the login may see, with SPECIAL-USE roles.

use imap_next::imap_types::core::{Atom, QuotedChar};
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::Data;

use super::Outcome;
use crate::imap::names::{self, list_matches, wire_mailbox, SHARED_PREFIX};
use crate::imap::session::Session;
use crate::mailstore::{folders, SpecialUse};

struct Entry {
    name: String,
    attributes: Vec<FlagNameAttribute<'static>>,
    subscribed: bool,
}

pub async fn list(
    session: &mut Session,
    reference: Mailbox<'static>,
    pattern: ListMailbox<'static>,
    subscribed_only: bool,
) -> Outcome {
    let Some(reference) = names::mailbox_name(&reference) else {
        return Outcome::bad("Reference is not valid modified UTF-7");
    };
    let pattern_bytes = match &pattern {
        ListMailbox::Token(token) => token.as_ref().to_vec(),
        ListMailbox::String(string) => string.as_ref().to_vec(),
    };
    let Some(pattern) = names::decode_mutf7(&pattern_bytes) else {
        return Outcome::bad("Pattern is not valid modified UTF-7");
    };
    if pattern.is_empty() {
        // RFC 3501: an empty pattern asks for the delimiter and the root of the reference.
        session
            .pending
            .push(list_data(subscribed_only, "", vec![FlagNameAttribute::Noselect]).into());
        return Outcome::ok("LIST completed");
    }
    let full_pattern = format!("{reference}{pattern}");
    let entries = match all_entries(session).await {
        Ok(entries) => entries,
        Err(text) => return Outcome::no(text),
    };
    for entry in entries {
        if list_matches(&full_pattern, &entry.name) && (entry.subscribed || !subscribed_only) {
            session
                .pending
                .push(list_data(subscribed_only, &entry.name, entry.attributes).into());
        }
    }
    Outcome::ok(if subscribed_only {
        "LSUB completed"
    } else {
        "LIST completed"
    })
}

/// Every name a LIST may show: the folders, and `Shared` and `Shared/<address>` as
/// non-selectable parents of the other mailboxes.
async fn all_entries(session: &Session) -> Result<Vec<Entry>, String> {
    let Some(logged_in) = &session.login else {
        return Err("Not logged in".into());
    };
    let mut entries = Vec::new();
    for mailbox in &logged_in.visible {
        if !mailbox.prefix.is_empty() {
            if !entries.iter().any(|e: &Entry| e.name == SHARED_PREFIX) {
                entries.push(Entry {
                    name: SHARED_PREFIX.into(),
                    attributes: vec![FlagNameAttribute::Noselect],
                    subscribed: false,
                });
            }
            entries.push(Entry {
                name: mailbox.prefix.trim_end_matches('/').to_string(),
                attributes: vec![FlagNameAttribute::Noselect],
                subscribed: false,
            });
        }
        let account = mailbox.record.account_id();
        let folders = session
            .bridge
            .store
            .call(move |c| folders::list_folders(c, account))
            .await
            .map_err(|e| format!("Cannot read folders: {e}"))?;
        for folder in folders {
            entries.push(Entry {
                name: mailbox.full_name(&folder.path),
                attributes: folder
                    .special_use
                    .and_then(special_use_attribute)
                    .into_iter()
                    .collect(),
                subscribed: folder.subscribed,
            });
        }
    }
    Ok(entries)
}

/// RFC 6154 attribute for a role (the inbox has none).
fn special_use_attribute(role: SpecialUse) -> Option<FlagNameAttribute<'static>> {
    let atom = match role {
        SpecialUse::Inbox => return None,
        SpecialUse::Sent => "Sent",
        SpecialUse::Drafts => "Drafts",
        SpecialUse::Trash => "Trash",
        SpecialUse::Junk => "Junk",
        SpecialUse::Archive => "Archive",
    };
    Atom::try_from(atom).ok().map(FlagNameAttribute::from)
}

fn list_data(lsub: bool, name: &str, items: Vec<FlagNameAttribute<'static>>) -> Data<'static> {
    let mailbox = wire_mailbox(name).unwrap_or(Mailbox::Inbox);
    let delimiter = QuotedChar::try_from('/').ok();
    if lsub {
        Data::Lsub {
            items,
            delimiter,
            mailbox,
        }
    } else {
        Data::List {
            items,
            delimiter,
            mailbox,
        }
    }
}
