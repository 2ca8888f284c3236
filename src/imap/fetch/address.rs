//! RFC 5322 address lists, read the way IMAP's ENVELOPE wants them (RFC 3501 7.4.2):
//! display name, source route, local part and domain, with groups marked by a
//! start entry (host NIL) and an end entry (all NIL).
//!
//! Parsing is forgiving and follows Dovecot where RFC 5322 leaves room: encoded words
//! stay as written, a comment after an addr-spec becomes the name, a quoted string
//! without a domain is a name, and a missing local part or domain is reported as
//! `MISSING_MAILBOX` / `MISSING_DOMAIN` (NIL would wrongly mean a group). Empty list
//! members (`a@b, , c@d`) are skipped, as RFC 5322's obs-addr-list says.

use super::lexer::{Lexer, ATOM_SPECIALS};

pub(crate) const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
pub(crate) const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// One entry of an ENVELOPE address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        local: Vec<u8>,
        domain: Vec<u8>,
    },
    GroupStart(Vec<u8>),
    GroupEnd,
}

/// Parses an address-list header value.
pub(crate) fn parse_list(value: &[u8]) -> Vec<Entry> {
    let mut lx = Lexer::new(value);
    let mut out = Vec::new();
    loop {
        lx.skip_cfws();
        if lx.at_end() {
            return out;
        }
        if lx.eat(b',') {
            continue; // empty member
        }
        if !group(&mut lx, &mut out) {
            out.push(mailbox(&mut lx));
        }
        lx.skip_until(b",");
        lx.eat(b',');
    }
}

/// Reads `name: members;` if a group starts here.
fn group(lx: &mut Lexer<'_>, out: &mut Vec<Entry>) -> bool {
    let start = lx.pos();
    let name = phrase(lx);
    lx.skip_cfws();
    if !lx.eat(b':') {
        lx.set_pos(start);
        return false;
    }
    out.push(Entry::GroupStart(name));
    loop {
        lx.skip_cfws();
        if lx.at_end() || lx.eat(b';') {
            break;
        }
        if lx.eat(b',') {
            continue;
        }
        out.push(mailbox(lx));
        lx.skip_until(b",;");
    }
    out.push(Entry::GroupEnd);
    true
}

/// Reads `[phrase] <route:addr-spec>` or a bare addr-spec.
fn mailbox(lx: &mut Lexer<'_>) -> Entry {
    let start = lx.pos();
    let name = phrase(lx);
    lx.skip_cfws();
    if lx.eat(b'<') {
        lx.skip_cfws();
        let route = route(lx);
        let spec = addr_spec(lx);
        lx.skip_until(b">,");
        lx.eat(b'>');
        return Entry::Mailbox {
            name: (!name.is_empty()).then_some(name),
            route,
            local: spec.local,
            domain: spec.domain,
        };
    }
    lx.set_pos(start);
    let spec = addr_spec(lx);
    let (name, local) = match spec.comment {
        Some(comment) => (Some(comment), spec.local),
        // `"Only a name"`: a quoted string with no domain is a display name.
        None if spec.quoted && spec.domain.is_empty() => (Some(spec.local), Vec::new()),
        None => (None, spec.local),
    };
    Entry::Mailbox {
        name,
        route: None,
        local,
        domain: spec.domain,
    }
}

/// A display name: words (atoms with dots, quoted strings) joined by single spaces.
fn phrase(lx: &mut Lexer<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut words = 0;
    loop {
        lx.skip_cfws();
        let word = match lx.quoted() {
            Some(quoted) => quoted,
            None => {
                let atom = lx.token(ATOM_SPECIALS);
                if atom.is_empty() {
                    return out;
                }
                atom.to_vec()
            }
        };
        if words > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&word);
        words += 1;
    }
}

/// An obsolete source route `@a,@b:`, returned as written without blanks.
fn route(lx: &mut Lexer<'_>) -> Option<Vec<u8>> {
    if lx.peek() != Some(b'@') {
        return None;
    }
    let mut out = Vec::new();
    while lx.eat(b'@') {
        out.push(b'@');
        out.extend_from_slice(&domain(lx));
        lx.skip_cfws();
        if lx.eat(b',') {
            out.push(b',');
            lx.skip_cfws();
        }
    }
    lx.eat(b':');
    Some(out)
}

struct AddrSpec {
    local: Vec<u8>,
    domain: Vec<u8>,
    quoted: bool,
    comment: Option<Vec<u8>>,
}

/// `local-part [@ domain]`, remembering the last comment seen around it.
fn addr_spec(lx: &mut Lexer<'_>) -> AddrSpec {
    lx.last_comment = None;
    lx.skip_cfws();
    let quoted = lx.peek() == Some(b'"');
    let local = local_part(lx);
    lx.skip_cfws();
    let domain = if lx.eat(b'@') { domain(lx) } else { Vec::new() };
    lx.skip_cfws();
    AddrSpec {
        local,
        domain,
        quoted,
        comment: lx.last_comment.take().filter(|c| !c.is_empty()),
    }
}

/// A dot-atom or quoted local part, quoting removed (RFC 3501: "after removing RFC 822
/// quoting").
fn local_part(lx: &mut Lexer<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        lx.skip_cfws();
        match lx.quoted() {
            Some(q) => out.extend_from_slice(&q),
            None => out.extend_from_slice(lx.token(b"()<>[]:;@\\,\".")),
        }
        lx.skip_cfws();
        if !lx.eat(b'.') {
            return out;
        }
        out.push(b'.');
    }
}

/// A dot-atom domain or a `[domain literal]`, kept as written.
fn domain(lx: &mut Lexer<'_>) -> Vec<u8> {
    lx.skip_cfws();
    if lx.peek() == Some(b'[') {
        let rest = lx.rest();
        let len = rest
            .iter()
            .position(|&b| b == b']')
            .map_or(rest.len(), |i| i + 1);
        let literal: Vec<u8> = rest[..len]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        lx.set_pos(lx.pos() + len);
        return literal;
    }
    let mut out = Vec::new();
    loop {
        lx.skip_cfws();
        out.extend_from_slice(lx.token(b"()<>[]:;@\\,\"."));
        lx.skip_cfws();
        if !lx.eat(b'.') {
            return out;
        }
        out.push(b'.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, local: &str, domain: &str) -> Entry {
        Entry::Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            route: None,
            local: local.as_bytes().to_vec(),
            domain: domain.as_bytes().to_vec(),
        }
    }

    #[test]
    fn common_forms() {
        let list = parse_list(
            b"Bob <bob@example.net>, carol@example.org,\r\n \"Doe, Jane\" <jane.doe@example.org>",
        );
        assert_eq!(
            list,
            vec![
                mb(Some("Bob"), "bob", "example.net"),
                mb(None, "carol", "example.org"),
                mb(Some("Doe, Jane"), "jane.doe", "example.org"),
            ]
        );
    }

    #[test]
    fn comments_quotes_and_encoded_words() {
        let list = parse_list(
            b"(comment only) eve@example.com (Eve E.), =?utf-8?q?Gr=C3=BCn?= <g@x>, \"john doe\"@x, Billing Dept. <b@v>",
        );
        assert_eq!(
            list,
            vec![
                mb(Some("Eve E."), "eve", "example.com"),
                mb(Some("=?utf-8?q?Gr=C3=BCn?="), "g", "x"),
                mb(None, "john doe", "x"),
                mb(Some("Billing Dept."), "b", "v"),
            ]
        );
    }

    #[test]
    fn groups_and_routes() {
        let list = parse_list(
            b"Team: alice@example.com, \"Bob B.\" <bob@example.com>;, Empty:;, <@r1.example,@r2.example:l@x>",
        );
        assert_eq!(
            list,
            vec![
                Entry::GroupStart(b"Team".to_vec()),
                mb(None, "alice", "example.com"),
                mb(Some("Bob B."), "bob", "example.com"),
                Entry::GroupEnd,
                Entry::GroupStart(b"Empty".to_vec()),
                Entry::GroupEnd,
                Entry::Mailbox {
                    name: None,
                    route: Some(b"@r1.example,@r2.example".to_vec()),
                    local: b"l".to_vec(),
                    domain: b"x".to_vec(),
                },
            ]
        );
    }

    #[test]
    fn broken_members() {
        let list = parse_list(
            b"\"Only a name\", foo, <>, , @, user@, \"n\" <user>, weird name <w@x> trailing, [1.2.3.4]",
        );
        assert_eq!(
            list,
            vec![
                mb(Some("Only a name"), "", ""),
                mb(None, "foo", ""),
                mb(None, "", ""),
                mb(None, "", ""),
                mb(None, "user", ""),
                mb(Some("n"), "user", ""),
                mb(Some("weird name"), "w", "x"),
                mb(None, "", ""),
            ]
        );
    }

    #[test]
    fn unterminated_things_do_not_loop() {
        for input in [
            &b"\"open"[..],
            b"<a@b",
            b"(x",
            b"g: a@b",
            b";;;",
            b">>>,,",
            b"\\",
        ] {
            let _ = parse_list(input);
        }
        assert_eq!(
            parse_list(b"g: a@b"),
            vec![
                Entry::GroupStart(b"g".to_vec()),
                mb(None, "a", "b"),
                Entry::GroupEnd
            ]
        );
    }

    #[test]
    fn domain_literal_kept() {
        assert_eq!(parse_list(b"a@[1.2.3.4]"), vec![mb(None, "a", "[1.2.3.4]")]);
    }
}
