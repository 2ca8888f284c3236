//! BODY[section] (RFC 3501 6.4.5): finding a part by number and cutting out its
//! header, text, MIME header or selected header fields.
//!
//! Numbering follows RFC 3501: the parts of a multipart are numbered from 1; a
//! message/rfc822 part's numbers are those of the message it holds; a message that is
//! not multipart has one part, numbered 1, which is its body (so `1.MIME` is the
//! message's own header, as Dovecot serves it).

use super::header;
use super::mime::{Entity, Kind};

/// The entity that part number `path` names in the message `root`.
pub(crate) fn find<'e>(root: &'e Entity, path: &[u32]) -> Option<&'e Entity> {
    let (first, rest) = path.split_first()?;
    let mut current = message_child(root, *first)?;
    for &n in rest {
        current = match &current.kind {
            Kind::Multipart(children) => nth(children, n)?,
            Kind::Message(inner) => message_child(inner, n)?,
            Kind::Leaf { .. } => return None,
        };
    }
    Some(current)
}

/// Part `n` of a message: a child of its multipart body, or the message itself as
/// part 1 when it is not multipart.
fn message_child(message: &Entity, n: u32) -> Option<&Entity> {
    match &message.kind {
        Kind::Multipart(children) => nth(children, n),
        _ if n == 1 => Some(message),
        _ => None,
    }
}

fn nth(children: &[Entity], n: u32) -> Option<&Entity> {
    let index = usize::try_from(n).ok()?.checked_sub(1)?;
    children.get(index)
}

/// The message whose HEADER / TEXT a section names: the whole message without a part
/// number, otherwise the message inside a message/rfc822 part.
pub(crate) fn message<'e>(root: &'e Entity, path: Option<&[u32]>) -> Option<&'e Entity> {
    match path {
        None => Some(root),
        Some(path) => match &find(root, path)?.kind {
            Kind::Message(inner) => Some(inner),
            _ => None,
        },
    }
}

/// The header fields of `header_bytes` whose name is (`keep` = true) or is not
/// (`keep` = false) in `names`, verbatim, followed by the blank line — unless the
/// header has none, which RFC 3501 6.4.5 says is then not included either.
pub(crate) fn header_fields(header_bytes: &[u8], names: &[&[u8]], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in header::fields(header_bytes) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(field.name));
        if listed == keep {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if has_blank_line(header_bytes) {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether a header block ends with the blank line that separates it from a body.
fn has_blank_line(header_bytes: &[u8]) -> bool {
    header_bytes.ends_with(b"\n\n")
        || header_bytes.ends_with(b"\n\r\n")
        || header_bytes == b"\r\n"
        || header_bytes == b"\n"
}

#[cfg(test)]
mod tests {
    use super::super::mime::parse;
    use super::*;

    const NESTED: &[u8] = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\nfirst\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner\r\n--o--\r\n";

    fn body_of<'r>(raw: &'r [u8], e: Option<&Entity>) -> Option<&'r [u8]> {
        e.map(|e| &raw[e.body.clone()])
    }

    #[test]
    fn numbering_through_message_parts() {
        let root = parse(NESTED);
        assert_eq!(body_of(NESTED, find(&root, &[1])), Some(&b"first"[..]));
        assert_eq!(
            body_of(NESTED, find(&root, &[2])),
            Some(&b"Subject: in\r\n\r\ninner"[..])
        );
        assert_eq!(body_of(NESTED, find(&root, &[2, 1])), Some(&b"inner"[..]));
        assert!(find(&root, &[2, 2]).is_none());
        assert!(find(&root, &[3]).is_none());
        assert!(find(&root, &[1, 1]).is_none());
        assert!(find(&root, &[0]).is_none());
        assert!(message(&root, Some(&[1])).is_none());
        let inner = message(&root, Some(&[2])).expect("message part");
        assert_eq!(&NESTED[inner.header.clone()], b"Subject: in\r\n\r\n");
    }

    #[test]
    fn single_part_message_has_part_one() {
        let raw = b"Subject: s\r\n\r\nbody\r\n";
        let root = parse(raw);
        let one = find(&root, &[1]).expect("part 1");
        assert_eq!(&raw[one.header.clone()], b"Subject: s\r\n\r\n");
        assert!(find(&root, &[2]).is_none());
        assert!(find(&root, &[1, 1]).is_none());
    }

    #[test]
    fn header_fields_verbatim_with_blank_line() {
        let h = b"From: a@b\r\nX-F: one\r\n two\r\nsubject: s\r\nNo colon here\r\n\r\n";
        assert_eq!(
            header_fields(h, &[b"SUBJECT", b"x-f"], true),
            b"X-F: one\r\n two\r\nsubject: s\r\n\r\n"
        );
        assert_eq!(
            header_fields(h, &[b"from", b"x-f", b"subject"], false),
            b"No colon here\r\n\r\n"
        );
        assert_eq!(header_fields(h, &[b"none"], true), b"\r\n");
        assert_eq!(header_fields(b"A: 1", &[b"a"], true), b"A: 1\r\n");
        assert_eq!(header_fields(b"A: 1\r\n", &[b"b"], true), b"");
    }
}
