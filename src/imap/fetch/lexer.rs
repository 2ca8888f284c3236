//! A forgiving RFC 822 / RFC 2045 scanner over header values.
//!
//! It never fails: malformed input yields whatever could be read, and every method
//! either consumes input or reports that it did not, so callers always make progress.

/// A position in a header value.
pub(crate) struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    /// The text of the last comment skipped, used as a display name fallback.
    pub last_comment: Option<Vec<u8>>,
}

/// RFC 2045 `tspecials` and RFC 822 `specials` differ; callers pick their own set.
pub(crate) const MIME_SPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";
/// RFC 5322 specials; `.` is left to the caller since phrases and dot-atoms allow it.
pub(crate) const ATOM_SPECIALS: &[u8] = b"()<>[]:;@\\,\"";

impl<'a> Lexer<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Lexer {
            s,
            pos: 0,
            last_comment: None,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace, folding and (nested) comments.
    pub fn skip_cfws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => self.comment(),
                _ => break,
            }
        }
    }

    fn comment(&mut self) {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    if depth > 0 {
                        text.push(b);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    text.push(b);
                }
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        text.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => text.push(b),
            }
        }
        self.last_comment = Some(text);
    }

    /// A run of bytes that are not whitespace, controls or in `specials`.
    pub fn token(&mut self, specials: &[u8]) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b <= b' ' || b == 0x7f || specials.contains(&b) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// A quoted string with its quoting removed, if one starts here. An unterminated
    /// string runs to the end of the value.
    pub fn quoted(&mut self) -> Option<Vec<u8>> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        out.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        Some(out)
    }

    /// Skips to the next top-level byte in `stops` (not consuming it), stepping over
    /// quoted strings and comments.
    pub fn skip_until(&mut self, stops: &[u8]) {
        while let Some(b) = self.peek() {
            if stops.contains(&b) {
                break;
            }
            match b {
                b'"' => {
                    self.quoted();
                }
                b'(' => self.comment(),
                _ => self.pos += 1,
            }
        }
    }

    /// The rest of the value, untouched.
    pub fn rest(&self) -> &'a [u8] {
        &self.s[self.pos.min(self.s.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_nest_and_are_remembered() {
        let mut l = Lexer::new(b" (a (b) \\) c) x");
        l.skip_cfws();
        assert_eq!(l.last_comment.as_deref(), Some(&b"a (b) ) c"[..]));
        assert_eq!(l.token(ATOM_SPECIALS), b"x");
        assert!(l.at_end());
    }

    #[test]
    fn quoted_unescapes_and_survives_unterminated() {
        let mut l = Lexer::new(b"\"a\\\"b\" \"open");
        assert_eq!(l.quoted().as_deref(), Some(&b"a\"b"[..]));
        l.skip_cfws();
        assert_eq!(l.quoted().as_deref(), Some(&b"open"[..]));
        assert!(l.at_end());
    }

    #[test]
    fn unterminated_comment_ends_at_end() {
        let mut l = Lexer::new(b"(never closed");
        l.skip_cfws();
        assert!(l.at_end());
    }
}
