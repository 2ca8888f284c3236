//! BINARY[section] (RFC 3516): a part's body with its Content-Transfer-Encoding
//! undone.
//!
//! Decoding is lenient, as RFC 2045 asks of robust implementations: base64 skips
//! characters outside its alphabet, quoted-printable keeps a malformed `=XX` as
//! written. Only an encoding the server does not know is an error.

use thiserror::Error;

/// Why a BINARY fetch cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one RFC 2045 defines; the server
    /// answers `NO [UNKNOWN-CTE]` (RFC 3516 section 4.3).
    #[error("unknown Content-Transfer-Encoding {0:?}")]
    UnknownCte(String),
}

/// Decodes `body` according to the Content-Transfer-Encoding `cte` (as written;
/// matched case-insensitively, absent means 7bit).
pub(crate) fn decode(cte: &[u8], body: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let cte = cte.to_ascii_lowercase();
    match cte.as_slice() {
        b"" | b"7bit" | b"8bit" | b"binary" => Ok(body.to_vec()),
        b"base64" => Ok(base64(body)),
        b"quoted-printable" => Ok(quoted_printable(body)),
        other => Err(BinaryError::UnknownCte(
            String::from_utf8_lossy(other).into_owned(),
        )),
    }
}

fn base64_value(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Base64 without strictness: whitespace and junk are skipped, decoding stops at
/// padding, and leftover bits of an incomplete quantum are dropped.
fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = base64_value(b) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable per RFC 2045 6.7: `=XX` escapes, `=` soft line breaks, and
/// trailing blanks on a line removed; line ends are kept as they are.
fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (content, eol) = split_eol(line);
        let content = trim_end_blanks(content);
        let (content, soft) = match content.strip_suffix(b"=") {
            Some(c) => (c, true),
            None => (content, false),
        };
        decode_qp_line(content, &mut out);
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

fn split_eol(line: &[u8]) -> (&[u8], &[u8]) {
    let content_len = if line.ends_with(b"\r\n") {
        line.len() - 2
    } else if line.ends_with(b"\n") {
        line.len() - 1
    } else {
        line.len()
    };
    line.split_at(content_len)
}

fn trim_end_blanks(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &s[..end]
}

fn decode_qp_line(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'=' {
            let pair = line
                .get(i + 1)
                .copied()
                .and_then(hex)
                .zip(line.get(i + 2).copied().and_then(hex));
            if let Some((hi, lo)) = pair {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(line[i]);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_whitespace_and_junk() {
        assert_eq!(
            base64(b"SGVs bG8s\r\nIHdv cmxk\r\nIQ==\r\n"),
            b"Hello, world!"
        );
        assert_eq!(
            base64(b"AAECAwQFBgcICQ==\r\n"),
            (0u8..10).collect::<Vec<_>>()
        );
        assert_eq!(base64(b"QQ"), b"A");
        assert_eq!(base64(b"!!!"), b"");
    }

    #[test]
    fn quoted_printable_rules() {
        assert_eq!(
            quoted_printable(b"Caf=E9 =\r\nau lait=3D=0Agood\r\n"),
            b"Caf\xe9 au lait=\ngood\r\n"
        );
        assert_eq!(
            quoted_printable(b"trailing space =20  \r\nx"),
            b"trailing space  \r\nx"
        );
        assert_eq!(quoted_printable(b"bad =ZZ and =4"), b"bad =ZZ and =4");
        assert_eq!(quoted_printable(b"soft=  \r\nbreak"), b"softbreak");
    }

    #[test]
    fn unknown_encoding_is_an_error() {
        assert_eq!(decode(b"Base64", b"QQ=="), Ok(b"A".to_vec()));
        assert_eq!(decode(b"8BIT", b"\xff"), Ok(b"\xff".to_vec()));
        assert_eq!(
            decode(b"x-uuencode", b""),
            Err(BinaryError::UnknownCte("x-uuencode".into()))
        );
    }
}
