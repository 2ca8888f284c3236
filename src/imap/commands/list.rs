//! LIST and LSUB: every folder of every mailbox the login may see, with SPECIAL-USE roles and
//! `\HasChildren`/`\HasNoChildren` (RFC 3348). The extended form `LIST [(options)] ref
//! pattern(s) RETURN (...)` (RFC 5258's syntax) is read by [`extended`], for LIST-STATUS
//! (RFC 5819): `RETURN (STATUS (...))` adds a STATUS response after each selectable mailbox.

use imap_next::imap_types::core::{Atom, QuotedChar, Tag};
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::status::StatusDataItemName;

use super::Outcome;
use crate::imap::names::{self, list_matches, wire_mailbox, SHARED_PREFIX};
use crate::imap::session::Session;
use crate::mailstore::{folders, SpecialUse};

#[derive(Clone)]
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
    let request = match Request::new(&reference, vec![pattern]) {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let request = Request {
        lsub: subscribed_only,
        subscribed_only,
        ..request
    };
    run(session, request).await
}

/// What one LIST asks for.
struct Request {
    /// Answer with LSUB responses.
    lsub: bool,
    reference: String,
    patterns: Vec<String>,
    /// Only subscribed mailboxes (LSUB, or the SUBSCRIBED selection option).
    subscribed_only: bool,
    /// Mark subscribed mailboxes `\Subscribed` (RFC 5258).
    mark_subscribed: bool,
    /// STATUS items to return after each selectable mailbox (RFC 5819).
    status: Option<Vec<StatusDataItemName>>,
}

impl Request {
    fn new(reference: &Mailbox<'_>, patterns: Vec<ListMailbox<'_>>) -> Result<Request, Outcome> {
        let Some(reference) = names::mailbox_name(reference) else {
            return Err(Outcome::bad("Reference is not valid modified UTF-7"));
        };
        let mut decoded = Vec::new();
        for pattern in patterns {
            let bytes = match &pattern {
                ListMailbox::Token(token) => token.as_ref().to_vec(),
                ListMailbox::String(string) => string.as_ref().to_vec(),
            };
            let Some(pattern) = names::decode_mutf7(&bytes) else {
                return Err(Outcome::bad("Pattern is not valid modified UTF-7"));
            };
            decoded.push(pattern);
        }
        Ok(Request {
            lsub: false,
            reference,
            patterns: decoded,
            subscribed_only: false,
            mark_subscribed: false,
            status: None,
        })
    }
}

async fn run(session: &mut Session, request: Request) -> Outcome {
    let done = if request.lsub {
        "LSUB completed"
    } else {
        "LIST completed"
    };
    if request.patterns.len() == 1 && request.patterns[0].is_empty() {
        // RFC 3501: an empty pattern asks for the delimiter and the root of the reference.
        session
            .pending
            .push(list_data(request.lsub, "", vec![FlagNameAttribute::Noselect]).into());
        return Outcome::ok(done);
    }
    let entries = match all_entries(session).await {
        Ok(entries) => entries,
        Err(text) => return Outcome::no(text),
    };
    let full_patterns: Vec<String> = request
        .patterns
        .iter()
        .map(|p| format!("{}{p}", request.reference))
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        if !full_patterns.iter().any(|p| list_matches(p, &entry.name))
            || (request.subscribed_only && !entry.subscribed)
        {
            continue;
        }
        let prefix = format!("{}/", entry.name);
        let has_children = entries.iter().any(|e| e.name.starts_with(&prefix));
        let mut attributes = entry.attributes.clone();
        attributes.extend(atom_attribute(if has_children {
            "HasChildren"
        } else {
            "HasNoChildren"
        }));
        if request.mark_subscribed && entry.subscribed {
            attributes.extend(atom_attribute("Subscribed"));
        }
        let selectable = !entry.attributes.contains(&FlagNameAttribute::Noselect);
        session
            .pending
            .push(list_data(request.lsub, &entry.name, attributes).into());
        if let (Some(items), true) = (&request.status, selectable) {
            if let Some(mailbox) = wire_mailbox(&entries[i].name) {
                let items = items.clone();
                // A mailbox whose STATUS cannot be had is listed without one (RFC 5819 2).
                let outcome = super::mailbox::status(session, mailbox, &items).await;
                if !outcome.is_ok() {
                    tracing::debug!(mailbox = %entries[i].name, ?outcome, "no STATUS in LIST");
                }
            }
        }
    }
    Outcome::ok(done)
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
    atom_attribute(atom)
}

/// `\<atom>` as a mailbox attribute.
fn atom_attribute(atom: &str) -> Option<FlagNameAttribute<'static>> {
    Atom::try_from(atom.to_string())
        .ok()
        .map(FlagNameAttribute::from)
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

/// LIST in RFC 5258's extended form, which imap-codec does not parse: `tag LIST [(selection
/// options)] reference pattern-or-(patterns) [RETURN (options)]`, taken from the bytes of a
/// command that failed to parse. None when the bytes are no such command; then the caller
/// answers BAD as for any unparsable line.
pub async fn extended(session: &mut Session, bytes: &[u8]) -> Option<(Tag<'static>, Outcome)> {
    let mut tokens = extended::tokens(bytes)?;
    if tokens.len() < 4 || !tokens[1].eq_ignore_ascii_case(b"LIST") {
        return None;
    }
    let tag = Tag::try_from(std::str::from_utf8(&tokens[0]).ok()?.to_string()).ok()?;
    if session.login.is_none() {
        return Some((
            tag,
            Outcome::bad("Log in first (LOGIN or AUTHENTICATE PLAIN)"),
        ));
    }
    let outcome = match extended::parse(&mut tokens) {
        Ok(parsed) => {
            let request = match Request::new(&parsed.reference, parsed.patterns) {
                Ok(request) => request,
                Err(outcome) => return Some((tag, outcome)),
            };
            let request = Request {
                subscribed_only: parsed.subscribed,
                mark_subscribed: parsed.subscribed || parsed.return_subscribed,
                status: parsed.status,
                ..request
            };
            run(session, request).await
        }
        Err(text) => Outcome::bad(text),
    };
    Some((tag, outcome))
}

mod extended {
    //! Reading the extended LIST: a small tokenizer for atoms, quoted strings, literals and
    //! parenthesised lists; mailbox names, patterns and STATUS items are then handed to
    //! imap-codec inside plain commands, so they are decoded exactly as everywhere else.

    use imap_codec::decode::Decoder;
    use imap_codec::CommandCodec;
    use imap_next::imap_types::command::CommandBody;
    use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
    use imap_next::imap_types::status::StatusDataItemName;
    use imap_next::imap_types::IntoStatic;

    pub struct Parsed {
        pub subscribed: bool,
        pub return_subscribed: bool,
        pub reference: Mailbox<'static>,
        pub patterns: Vec<ListMailbox<'static>>,
        pub status: Option<Vec<StatusDataItemName>>,
    }

    /// The top-level tokens of a command (a parenthesised list is one token, with its
    /// parentheses); None when the bytes do not split into tokens.
    pub fn tokens(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
        let bytes = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b' ' {
                i += 1;
                continue;
            }
            let end = token_end(bytes, i)?;
            out.push(bytes[i..end].to_vec());
            i = end;
        }
        Some(out)
    }

    /// Where the token starting at `start` ends (exclusive).
    fn token_end(bytes: &[u8], start: usize) -> Option<usize> {
        match bytes[start] {
            b'"' => {
                let mut i = start + 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => return Some(i + 1),
                        _ => i += 1,
                    }
                }
                None
            }
            b'{' => {
                let close = start + bytes[start..].iter().position(|&b| b == b'}')?;
                let digits = std::str::from_utf8(&bytes[start + 1..close]).ok()?;
                let length: usize = digits.trim_end_matches('+').parse().ok()?;
                let data = close + 1 + 2;
                (bytes.get(close + 1..data)? == b"\r\n").then_some(())?;
                let end = data.checked_add(length)?;
                (end <= bytes.len()).then_some(end)
            }
            b'(' => {
                let mut depth = 0usize;
                let mut i = start;
                while i < bytes.len() {
                    match bytes[i] {
                        b'(' => depth += 1,
                        b')' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                return Some(i + 1);
                            }
                        }
                        b'"' | b'{' => {
                            i = token_end(bytes, i)?;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                None
            }
            _ => Some(
                start
                    + bytes[start..]
                        .iter()
                        .position(|&b| matches!(b, b' ' | b'(' | b')'))
                        .unwrap_or(bytes.len() - start),
            ),
        }
    }

    /// The inside of a parenthesised token, split into tokens.
    fn inner(token: &[u8]) -> Option<Vec<Vec<u8>>> {
        let inside = token.strip_prefix(b"(")?.strip_suffix(b")")?;
        tokens(inside)
    }

    fn decode(command: Vec<u8>) -> Option<CommandBody<'static>> {
        let (rest, command) = CommandCodec::default().decode(&command).ok()?;
        rest.is_empty().then(|| command.body.into_static())
    }

    /// Reads `tokens` (tag and LIST included) into what the command asks for.
    pub fn parse(tokens: &mut Vec<Vec<u8>>) -> Result<Parsed, &'static str> {
        let mut rest: Vec<Vec<u8>> = tokens.split_off(2);
        let mut subscribed = false;
        if rest.first().is_some_and(|t| t.starts_with(b"(")) {
            let options = rest.remove(0);
            for option in inner(&options).ok_or("Malformed selection options")? {
                match option.to_ascii_uppercase().as_slice() {
                    b"SUBSCRIBED" => subscribed = true,
                    b"REMOTE" => {}
                    b"RECURSIVEMATCH" => {
                        return Err("RECURSIVEMATCH is not supported by this server")
                    }
                    _ => return Err("Unknown LIST selection option"),
                }
            }
        }
        if rest.len() < 2 {
            return Err("LIST needs a reference and a pattern");
        }
        let reference = rest.remove(0);
        let patterns_token = rest.remove(0);
        let patterns: Vec<Vec<u8>> = if patterns_token.starts_with(b"(") {
            inner(&patterns_token).ok_or("Malformed pattern list")?
        } else {
            vec![patterns_token]
        };
        if patterns.is_empty() {
            return Err("LIST needs a pattern");
        }
        let mut return_subscribed = false;
        let mut status = None;
        if !rest.is_empty() {
            if rest.len() != 2 || !rest[0].eq_ignore_ascii_case(b"RETURN") {
                return Err("Unexpected arguments after the LIST pattern");
            }
            let options = inner(&rest[1]).ok_or("Malformed RETURN options")?;
            let mut i = 0;
            while i < options.len() {
                match options[i].to_ascii_uppercase().as_slice() {
                    b"SUBSCRIBED" => return_subscribed = true,
                    // Always returned by this server.
                    b"CHILDREN" | b"SPECIAL-USE" => {}
                    b"STATUS" => {
                        let items = options.get(i + 1).ok_or("STATUS needs its items")?;
                        let mut command = b"S STATUS INBOX ".to_vec();
                        command.extend_from_slice(items);
                        command.extend_from_slice(b"\r\n");
                        match decode(command) {
                            Some(CommandBody::Status { item_names, .. }) => {
                                status = Some(item_names.into_owned())
                            }
                            _ => return Err("Malformed STATUS items"),
                        }
                        i += 1;
                    }
                    _ => return Err("Unknown LIST return option"),
                }
                i += 1;
            }
        }
        let mut reference_out = None;
        let mut list = Vec::new();
        for pattern in patterns {
            let mut command = b"L LIST ".to_vec();
            command.extend_from_slice(&reference);
            command.push(b' ');
            command.extend_from_slice(&pattern);
            command.extend_from_slice(b"\r\n");
            match decode(command) {
                Some(CommandBody::List {
                    reference,
                    mailbox_wildcard,
                }) => {
                    reference_out = Some(reference);
                    list.push(mailbox_wildcard);
                }
                _ => return Err("Malformed reference or pattern"),
            }
        }
        Ok(Parsed {
            subscribed,
            return_subscribed,
            reference: reference_out.ok_or("LIST needs a pattern")?,
            patterns: list,
            status,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn splits_tokens() {
            let t = tokens(
                b"a LIST (SUBSCRIBED) \"\" (\"A b\" {3}\r\nx)y %) RETURN (STATUS (MESSAGES))\r\n",
            )
            .expect("tokens");
            assert_eq!(t.len(), 7, "{t:?}");
            assert_eq!(t[4], b"(\"A b\" {3}\r\nx)y %)".to_vec());
            assert!(tokens(b"a LIST \"open").is_none());
            assert!(tokens(b"a LIST ((").is_none());
            assert!(tokens(b"a LIST {99}\r\nab").is_none());
        }

        #[test]
        fn parses_options_patterns_and_status() {
            let mut t = tokens(
                b"a LIST (SUBSCRIBED REMOTE) \"\" (INBOX \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN SIZE))\r\n",
            )
            .expect("tokens");
            let parsed = parse(&mut t).expect("parsed");
            assert!(parsed.subscribed && !parsed.return_subscribed);
            assert_eq!(parsed.patterns.len(), 2);
            assert_eq!(
                parsed.status,
                Some(vec![
                    StatusDataItemName::Messages,
                    StatusDataItemName::Unseen,
                    StatusDataItemName::Size
                ])
            );
            for bad in [
                &b"a LIST \"\" * RETURN (STATUS)\r\n"[..],
                b"a LIST \"\" * RETURN (BOGUS)\r\n",
                b"a LIST (RECURSIVEMATCH) \"\" *\r\n",
                b"a LIST \"\" * EXTRA\r\n",
                b"a LIST \"\" ()\r\n",
            ] {
                let mut t = tokens(bad).expect("tokens");
                assert!(parse(&mut t).is_err(), "{}", String::from_utf8_lossy(bad));
            }
        }
    }
}
