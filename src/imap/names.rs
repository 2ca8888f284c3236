//! Mailbox names: modified UTF-7 on the wire (RFC 3501 5.1.3), and the namespaces a login
//! sees: the personal mailbox's folders at the top, every other assigned mailbox under
//! `Shared/<address>/`.

use base64::Engine;

use crate::mailstore::MailboxRecord;

pub const SHARED_PREFIX: &str = "Shared";

/// One Microsoft 365 mailbox as a session sees it.
#[derive(Debug, Clone)]
pub struct VisibleMailbox {
    pub record: MailboxRecord,
    /// Prefix of its folders' IMAP names: "" for the personal namespace,
    /// `Shared/<address>/` for the others.
    pub prefix: String,
}

impl VisibleMailbox {
    pub fn layout(mailboxes: &[MailboxRecord]) -> Vec<VisibleMailbox> {
        mailboxes
            .iter()
            .enumerate()
            .map(|(i, record)| VisibleMailbox {
                prefix: if i == 0 {
                    String::new()
                } else {
                    format!("{SHARED_PREFIX}/{}/", record.address)
                },
                record: record.clone(),
            })
            .collect()
    }

    /// The client-visible name of one of this mailbox's folders.
    pub fn full_name(&self, folder_path: &str) -> String {
        format!("{}{}", self.prefix, folder_path)
    }
}

/// Finds which mailbox a client-visible name belongs to and the folder path inside it.
pub fn resolve<'a>(
    visible: &'a [VisibleMailbox],
    name: &str,
) -> Option<(&'a VisibleMailbox, String)> {
    // The longest matching prefix decides, so a shared mailbox's names never fall through to
    // the personal namespace.
    let owner = visible
        .iter()
        .filter(|v| {
            name.get(..v.prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(&v.prefix))
        })
        .max_by_key(|v| v.prefix.len())?;
    let rest = name.get(owner.prefix.len()..)?;
    (!rest.is_empty()).then(|| (owner, rest.to_string()))
}

/// Decodes a modified UTF-7 mailbox name; None when it is not valid modified UTF-7.
pub fn decode_mutf7(wire: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(wire).ok()?;
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let chunk = &after[..end];
        if chunk.is_empty() {
            out.push('&');
        } else {
            let b64 = chunk.replace(',', "/");
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64)
                .ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a name as modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        out.push('&');
        out.push_str(&b64.replace('/', ","));
        out.push('-');
        pending.clear();
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Matches a LIST pattern (`*` any, `%` any but the delimiter) against a name.
pub fn list_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('%', rest)) => (0..=n.len())
                .take_while(|i| *i == 0 || n[i - 1] != '/')
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // INBOX is case-insensitive: compare it in one case on both sides.
    if name.eq_ignore_ascii_case("INBOX") || name.to_ascii_uppercase().starts_with("INBOX/") {
        let p: Vec<char> = uppercase_inbox(pattern).chars().collect();
        return go(&p, &n);
    }
    go(&p, &n)
}

fn uppercase_inbox(pattern: &str) -> String {
    match (pattern.get(..5), pattern.get(5..)) {
        (Some(head), Some(tail)) if head.eq_ignore_ascii_case("INBOX") => format!("INBOX{tail}"),
        _ => pattern.to_string(),
    }
}

/// The client's mailbox argument as a Unicode name (`INBOX` for any case of inbox).
pub fn mailbox_name(mailbox: &imap_next::imap_types::mailbox::Mailbox<'_>) -> Option<String> {
    use imap_next::imap_types::mailbox::Mailbox;
    match mailbox {
        Mailbox::Inbox => Some("INBOX".to_string()),
        Mailbox::Other(other) => decode_mutf7(other.as_ref()),
    }
}

/// A Unicode name as the wire form of a mailbox.
pub fn wire_mailbox(name: &str) -> Option<imap_next::imap_types::mailbox::Mailbox<'static>> {
    imap_next::imap_types::mailbox::Mailbox::try_from(encode_mutf7(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailstore::SigninState;

    #[test]
    fn mutf7_round_trips() {
        for name in [
            "Entwürfe",
            "Gelöschte Elemente",
            "A&B",
            "日本語",
            "plain",
            "Ça/été",
        ] {
            let wire = encode_mutf7(name);
            assert!(wire.is_ascii());
            assert_eq!(decode_mutf7(wire.as_bytes()).as_deref(), Some(name));
        }
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode_mutf7("A&B"), "A&-B");
        assert_eq!(decode_mutf7(b"&Jjo-!"), Some("☺!".to_string()));
        assert_eq!(decode_mutf7(b"broken&AP"), None);
    }

    #[test]
    fn list_patterns() {
        assert!(list_matches("*", "Projects/2026"));
        assert!(!list_matches("%", "Projects/2026"));
        assert!(list_matches("%", "Projects"));
        assert!(list_matches("Projects/%", "Projects/2026"));
        assert!(list_matches("inbox", "INBOX"));
        assert!(list_matches("Inbox/*", "INBOX/Sub"));
        assert!(!list_matches("Sent", "Sent Items"));
        assert!(!list_matches("Entwü*", "INBOX"));
    }

    #[test]
    fn shared_mailboxes_resolve_by_prefix() {
        let record = |id, address: &str| MailboxRecord {
            id,
            address: address.into(),
            alias_of: None,
            signin_state: SigninState::SignedIn,
            last_error: None,
        };
        let visible =
            VisibleMailbox::layout(&[record(1, "sales@x.test"), record(2, "info@x.test")]);
        let (m, path) = resolve(&visible, "Shared/info@x.test/INBOX").expect("shared");
        assert_eq!((m.record.id, path.as_str()), (2, "INBOX"));
        let (m, path) = resolve(&visible, "Projects/2026").expect("personal");
        assert_eq!((m.record.id, path.as_str()), (1, "Projects/2026"));
        assert!(resolve(&visible, "Shared/info@x.test/").is_none());
        // A multi-byte character where the prefix would end must not panic.
        assert!(resolve(&visible, "Entwürfe-über-alles-und-mehr").is_some());
    }
}
