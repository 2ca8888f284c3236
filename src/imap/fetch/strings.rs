//! Turning header bytes into IMAP strings.
//!
//! Header values may hold any byte. IMAP quoted strings only carry 7-bit text without
//! CR/LF, literals carry anything but NUL, so NUL is mapped to 0x80 (as Dovecot does)
//! and everything else picks the cheapest form that can hold it.

use imap_codec::imap_types::core::{IString, Literal, NString, Quoted};

/// An IMAP string holding `bytes` (NUL replaced by 0x80).
pub(crate) fn istring(bytes: &[u8]) -> IString<'static> {
    let clean: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    if let Ok(quoted) = Quoted::try_from(clean.clone()) {
        return IString::Quoted(quoted);
    }
    match Literal::try_from(clean) {
        Ok(literal) => IString::Literal(literal),
        // Unreachable after the NUL mapping; an empty string is a safe answer anyway.
        Err(_) => IString::Quoted(Quoted::unvalidated("")),
    }
}

/// `NIL` for `None`, an IMAP string otherwise.
pub(crate) fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(istring))
}

/// A header value with its folding removed: CR and LF dropped, whitespace kept.
///
/// This is RFC 5322 unfolding; Dovecot applies the same rule to Date, Message-ID,
/// In-Reply-To and the MIME header values it copies into BODYSTRUCTURE.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

/// A header value made readable: runs of whitespace (folding included) become one
/// space and the ends are trimmed. Used for Subject and display names, where the
/// spacing carries no meaning and clients show the text as is.
pub(crate) fn humanize(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for word in value
        .split(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}

/// `bytes` without leading and trailing whitespace (space, tab, CR, LF).
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_quoted_for_text_and_literal_for_8bit() {
        assert!(matches!(istring(b"plain"), IString::Quoted(_)));
        assert!(matches!(istring(b"J\xf6rg"), IString::Literal(_)));
        assert!(matches!(istring(b"a\r\nb"), IString::Literal(_)));
        assert_eq!(istring(b"a\0b").as_ref(), b"a\x80b");
    }

    #[test]
    fn humanize_collapses_and_trims() {
        assert_eq!(humanize(b"  ugly   spacing\t here  "), b"ugly spacing here");
        assert_eq!(humanize(b"=?a?Q?x?=\r\n =?a?Q?y?="), b"=?a?Q?x?= =?a?Q?y?=");
        assert_eq!(humanize(b" \t "), b"");
    }

    #[test]
    fn unfold_keeps_whitespace() {
        assert_eq!(unfold(b"<a@b> (c)\r\n <c@d>  "), b"<a@b> (c) <c@d>  ");
    }

    #[test]
    fn trim_handles_all_space() {
        assert_eq!(trim(b"  x y \r\n"), b"x y");
        assert_eq!(trim(b" \t"), b"");
    }
}
