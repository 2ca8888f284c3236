//! Facts about RFC 822 message bytes that the store, the sync engine and the fronts share.

use std::borrow::Cow;

/// `raw` with every bare LF turned into CRLF, as IMAP requires; borrowed when there
/// is nothing to change.
pub fn normalize_line_endings(raw: &[u8]) -> Cow<'_, [u8]> {
    let bare_lf = |i: usize| raw[i] == b'\n' && (i == 0 || raw[i - 1] != b'\r');
    if !(0..raw.len()).any(bare_lf) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for (i, &b) in raw.iter().enumerate() {
        if bare_lf(i) {
            out.push(b'\r');
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// A file's bytes as the client sent them. mail_parser hands a text part out converted from
/// its charset to UTF-8 (lossily, for bytes that are not text in that charset), so such a
/// part is taken from the raw message and only its transfer encoding undone.
pub fn part_bytes(
    message: &mail_parser::Message<'_>,
    part: &mail_parser::MessagePart<'_>,
) -> Vec<u8> {
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    use mail_parser::{Encoding, PartType};
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
        return part.contents().to_vec();
    }
    let raw = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let decoded = match part.encoding {
        Encoding::Base64 => base64_decode(raw),
        Encoding::QuotedPrintable => quoted_printable_decode(raw),
        Encoding::None => Some(raw.to_vec()),
    };
    decoded.unwrap_or_else(|| part.contents().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_attachment_keeps_its_bytes() {
        // Latin-1 "Grüße" and a byte that is no text in any charset, quoted-printable.
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nbody\r\n--b\r\n\
Content-Type: text/csv; charset=iso-8859-1\r\n\
Content-Disposition: attachment; filename=list.csv\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe;=FF\r\n--b--\r\n";
        let message = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .expect("parsed");
        let part = message.attachments().next().expect("the attachment");
        // The CRLF before the boundary belongs to the boundary (RFC 2046).
        assert_eq!(part_bytes(&message, part), b"Gr\xfc\xdfe;\xff");
    }

    #[test]
    fn line_endings() {
        assert_eq!(&*normalize_line_endings(b"a\nb\r\nc"), b"a\r\nb\r\nc");
    }
}
