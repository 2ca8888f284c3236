//! Header blocks: where they end and which fields they hold, by byte offset.
//!
//! Everything here is tolerant: bare LF line ends, 8-bit bytes, lines without a colon
//! and a missing blank line are all accepted, because real mail has all of them.

/// The end of the line starting at `start`: (end of its content, start of the next line).
pub(crate) fn line_end(raw: &[u8], start: usize) -> (usize, usize) {
    match raw[start.min(raw.len())..].iter().position(|&b| b == b'\n') {
        Some(i) => {
            let lf = start + i;
            let content_end = if lf > start && raw[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            (content_end, lf + 1)
        }
        None => (raw.len(), raw.len()),
    }
}

/// One header field as it appears in the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// The field name (for a line without a colon, the whole line).
    pub name: &'a [u8],
    /// The value after the colon and its leading blanks, folding included, without the
    /// final line end.
    pub value: &'a [u8],
    /// The whole field, continuation lines and final line end included, verbatim.
    pub raw: &'a [u8],
}

/// The fields of a header block, stopping at the blank line that ends it.
pub(crate) fn fields(header: &[u8]) -> Fields<'_> {
    Fields { header, pos: 0 }
}

/// Iterator returned by [`fields`].
pub(crate) struct Fields<'a> {
    header: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let h = self.header;
        let start = self.pos;
        if start >= h.len() {
            return None;
        }
        let (mut content_end, mut next) = line_end(h, start);
        if content_end == start {
            return None; // the blank line
        }
        // Continuation lines start with a blank.
        while next < h.len() && matches!(h[next], b' ' | b'\t') {
            (content_end, next) = line_end(h, next);
        }
        self.pos = next;
        let text = &h[start..content_end];
        Some(split_field(text, &h[start..next]))
    }
}

fn split_field<'a>(text: &'a [u8], raw: &'a [u8]) -> Field<'a> {
    match text.iter().position(|&b| b == b':') {
        Some(colon) => {
            let name = &text[..colon];
            let name_end = name
                .iter()
                .rposition(|b| !matches!(b, b' ' | b'\t'))
                .map_or(0, |i| i + 1);
            let mut value = &text[colon + 1..];
            while let [b' ' | b'\t', rest @ ..] = value {
                value = rest;
            }
            Field {
                name: &name[..name_end],
                value,
                raw,
            }
        }
        None => Field {
            name: text,
            value: &[],
            raw,
        },
    }
}

/// The value of the first field called `name` (ASCII case-insensitive).
pub(crate) fn first<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    fields(header)
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_folded_and_colonless_fields() {
        let h =
            b"From: a@b\r\nBroken line\r\nX-F: one\r\n two\r\n\tthree\r\nSubject :  x\r\n\r\nbody";
        let all: Vec<_> = fields(h).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].name, b"From");
        assert_eq!(all[0].raw, b"From: a@b\r\n");
        assert_eq!(all[1].name, b"Broken line");
        assert_eq!(all[1].value, b"");
        assert_eq!(all[2].value, b"one\r\n two\r\n\tthree");
        assert_eq!(all[2].raw, b"X-F: one\r\n two\r\n\tthree\r\n");
        assert_eq!(all[3].name, b"Subject");
        assert_eq!(all[3].value, b"x");
    }

    #[test]
    fn handles_lf_only_and_missing_final_newline() {
        let h = b"A: 1\nB: 2";
        let all: Vec<_> = fields(h).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].raw, b"B: 2");
        assert_eq!(first(h, "b"), Some(&b"2"[..]));
        assert_eq!(first(h, "c"), None);
    }

    #[test]
    fn line_end_reports_next_line() {
        assert_eq!(line_end(b"ab\r\ncd", 0), (2, 4));
        assert_eq!(line_end(b"ab\ncd", 3), (5, 5));
        assert_eq!(line_end(b"", 0), (0, 0));
    }
}
