//! ENVELOPE (RFC 3501 7.4.2) from a header block.
//!
//! Strings are the header values as written: encoded words (RFC 2047) are not
//! decoded, because IMAP clients decode them. Folding is removed; Subject and display
//! names also get their whitespace runs collapsed, like Dovecot sends them.

use imap_codec::imap_types::envelope::{Address, Envelope};

use super::address::{self, Entry, MISSING_DOMAIN, MISSING_MAILBOX};
use super::header;
use super::strings::{humanize, nstring, unfold};

/// The ENVELOPE of the message whose header block is `header_bytes`.
pub(crate) fn envelope(header_bytes: &[u8]) -> Envelope<'static> {
    let get = |name: &str| header::first(header_bytes, name);
    let addresses = |name: &str| get(name).map(address::parse_list).unwrap_or_default();
    let from = addresses("From");
    // RFC 3501: a missing (or empty) Sender or Reply-To is set to From.
    let or_from = |list: Vec<Entry>| if list.is_empty() { from.clone() } else { list };
    let sender = or_from(addresses("Sender"));
    let reply_to = or_from(addresses("Reply-To"));
    Envelope {
        date: nstring(get("Date").map(unfold).as_deref()),
        subject: nstring(get("Subject").map(humanize).as_deref()),
        from: to_imap(&from),
        sender: to_imap(&sender),
        reply_to: to_imap(&reply_to),
        to: to_imap(&addresses("To")),
        cc: to_imap(&addresses("Cc")),
        bcc: to_imap(&addresses("Bcc")),
        in_reply_to: nstring(get("In-Reply-To").map(unfold).as_deref()),
        message_id: nstring(get("Message-ID").map(unfold).as_deref()),
    }
}

fn to_imap(list: &[Entry]) -> Vec<Address<'static>> {
    list.iter().map(entry_to_address).collect()
}

fn entry_to_address(entry: &Entry) -> Address<'static> {
    match entry {
        Entry::Mailbox {
            name,
            route,
            local,
            domain,
        } => Address {
            name: nstring(name.as_deref().map(humanize).as_deref()),
            adl: nstring(route.as_deref()),
            mailbox: nstring(Some(or(local, MISSING_MAILBOX))),
            host: nstring(Some(or(domain, MISSING_DOMAIN))),
        },
        Entry::GroupStart(name) => Address {
            name: nstring(None),
            adl: nstring(None),
            mailbox: nstring(Some(&humanize(name))),
            host: nstring(None),
        },
        Entry::GroupEnd => Address {
            name: nstring(None),
            adl: nstring(None),
            mailbox: nstring(None),
            host: nstring(None),
        },
    }
}

fn or<'v>(value: &'v [u8], missing: &'v [u8]) -> &'v [u8] {
    if value.is_empty() {
        missing
    } else {
        value
    }
}
