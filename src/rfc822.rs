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
