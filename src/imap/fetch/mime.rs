//! The MIME tree of a message, as byte ranges into its raw bytes.
//!
//! Parsing is a single forward pass, like Dovecot's: a boundary line ends the part
//! being read if it belongs to any enclosing multipart, and a boundary is matched as a
//! prefix of the line, the longest match winning (RFC 2046 forbids a boundary from
//! being a prefix of another one, so prefix matching is what robust parsers do).
//! Missing end boundaries, missing blank lines and bare-LF line ends are all accepted.

use std::ops::Range;

use super::header::{self, line_end};
use super::params::{self, ContentType};

/// Deeper nesting than this is served as opaque leaves instead of being parsed.
pub(crate) const MAX_DEPTH: usize = 100;
/// More parts than this are not broken out; the rest stays inside its container.
pub(crate) const MAX_PARTS: usize = 10_000;

/// One MIME entity: the whole message, a body part, or an embedded message.
#[derive(Debug)]
pub(crate) struct Entity {
    /// The header block, including the blank line that ends it (absent when the
    /// message has none, or when that line end belongs to a following boundary).
    pub header: Range<usize>,
    /// The body, without the line end that belongs to a following boundary.
    pub body: Range<usize>,
    pub content_type: ContentType,
    pub kind: Kind,
}

/// What an entity's body holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Data, or a container that was not parsed because of the depth or part limits.
    Leaf { opaque: bool },
    /// A multipart's children (possibly none, when no boundary was found).
    Multipart(Vec<Entity>),
    /// A message/rfc822 body parsed as a message.
    Message(Box<Entity>),
}

/// Where reading an entity stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Eof,
    /// At the start of a boundary line of the multipart at `level` of the stack.
    Boundary {
        level: usize,
        line: usize,
    },
}

/// Parses `raw` as a message. Never fails.
pub(crate) fn parse(raw: &[u8]) -> Entity {
    let mut parser = Parser {
        raw,
        boundaries: Vec::new(),
        parts: 0,
    };
    parser.entity(0, 0, false).0
}

/// The message's own header block, as `parse(raw).header` has it, without reading the body:
/// ENVELOPE and `BODY[HEADER...]` of a whole folder need no more.
pub(crate) fn root_header(raw: &[u8]) -> Range<usize> {
    let parser = Parser {
        raw,
        boundaries: Vec::new(),
        parts: 0,
    };
    parser.header(0).0
}

struct Parser<'a> {
    raw: &'a [u8],
    boundaries: Vec<Vec<u8>>,
    parts: usize,
}

impl Parser<'_> {
    /// Reads one entity starting at `start`; `digest` selects the multipart/digest
    /// default type for it.
    fn entity(&mut self, start: usize, depth: usize, digest: bool) -> (Entity, Stop) {
        let (header, body_start) = self.header(start);
        let content_type = parse_content_type(&self.raw[header.clone()], digest);
        let may_nest = depth < MAX_DEPTH && self.parts < MAX_PARTS;
        let (kind, stop) = if content_type.is_type("multipart") && may_nest {
            self.multipart(body_start, depth, &content_type)
        } else if content_type.is("message", "rfc822") && may_nest {
            self.parts += 1;
            let (inner, stop) = self.entity(body_start, depth + 1, false);
            (Kind::Message(Box::new(inner)), stop)
        } else {
            let opaque = content_type.is_type("multipart") || content_type.is("message", "rfc822");
            (Kind::Leaf { opaque }, self.scan(body_start))
        };
        let body = body_start..self.end_before(stop, body_start);
        let header = self.blank_line_to_boundary(header, stop);
        let entity = Entity {
            header,
            body,
            content_type,
            kind,
        };
        (entity, stop)
    }

    /// The header block starting at `start` and where the body starts. The header ends
    /// after the first blank line, at a boundary line, or at the end of the input.
    fn header(&self, start: usize) -> (Range<usize>, usize) {
        let mut pos = start;
        while pos < self.raw.len() {
            let (content_end, next) = line_end(self.raw, pos);
            if content_end == pos {
                return (start..next, next);
            }
            if self.boundary_at(pos).is_some() {
                return (start..pos, pos);
            }
            pos = next;
        }
        (start..self.raw.len(), self.raw.len())
    }

    /// When an enclosing boundary directly follows the header's blank line, that line
    /// end belongs to the boundary (RFC 2046 5.1.1): the part has a header, no blank
    /// line and no body.
    fn blank_line_to_boundary(&self, header: Range<usize>, stop: Stop) -> Range<usize> {
        let Stop::Boundary { line, .. } = stop else {
            return header;
        };
        let h = &self.raw[header.clone()];
        if line != header.end || !(h.ends_with(b"\n\n") || h.ends_with(b"\n\r\n")) {
            return header;
        }
        let eol = if h.ends_with(b"\r\n") { 2 } else { 1 };
        header.start..header.end - eol
    }

    /// Reads a multipart body: preamble, parts, epilogue.
    fn multipart(&mut self, body_start: usize, depth: usize, ct: &ContentType) -> (Kind, Stop) {
        let boundary = ct.param("boundary").unwrap_or_default().to_vec();
        if boundary.is_empty() {
            return (Kind::Multipart(Vec::new()), self.scan(body_start));
        }
        let digest = ct.subtype.eq_ignore_ascii_case(b"digest");
        self.boundaries.push(boundary);
        let level = self.boundaries.len() - 1;
        let mut children = Vec::new();
        let mut stop = self.scan(body_start);
        while let Stop::Boundary { level: l, line } = stop {
            if l != level {
                break; // an enclosing multipart's boundary ends this one too
            }
            let after = line + 2 + self.boundaries[level].len();
            let next_line = line_end(self.raw, line).1;
            if self.raw.get(after..after + 2) == Some(b"--") {
                // Close delimiter: the epilogue runs to an enclosing boundary.
                self.boundaries.pop();
                return (Kind::Multipart(children), self.scan(next_line));
            }
            if self.parts >= MAX_PARTS {
                stop = self.scan(next_line);
                continue;
            }
            self.parts += 1;
            let (child, child_stop) = self.entity(next_line, depth + 1, digest);
            children.push(child);
            stop = child_stop;
        }
        self.boundaries.pop();
        (Kind::Multipart(children), stop)
    }

    /// The first boundary line at or after `pos`.
    fn scan(&self, mut pos: usize) -> Stop {
        while pos < self.raw.len() {
            if let Some(level) = self.boundary_at(pos) {
                return Stop::Boundary { level, line: pos };
            }
            pos = line_end(self.raw, pos).1;
        }
        Stop::Eof
    }

    /// Which multipart's boundary the line at `pos` is. Boundaries match as prefixes
    /// of the line; the longest match wins, then the innermost (as in Dovecot), so
    /// `--ct2` is not taken for `--ct`.
    fn boundary_at(&self, pos: usize) -> Option<usize> {
        let line = self.raw.get(pos..)?.strip_prefix(b"--")?;
        let mut best: Option<usize> = None;
        for (level, b) in self.boundaries.iter().enumerate().rev() {
            let longer = best.is_none_or(|l| self.boundaries[l].len() < b.len());
            if line.starts_with(b) && longer {
                best = Some(level);
            }
        }
        best
    }

    /// Where a body starting at `body_start` ends, given where reading stopped: the
    /// line end before a boundary line belongs to the boundary (RFC 2046 5.1.1).
    fn end_before(&self, stop: Stop, body_start: usize) -> usize {
        let line = match stop {
            Stop::Eof => return self.raw.len(),
            Stop::Boundary { line, .. } => line,
        };
        let mut end = line;
        if end > body_start && self.raw[end - 1] == b'\n' {
            end -= 1;
            if end > body_start && self.raw[end - 1] == b'\r' {
                end -= 1;
            }
        }
        end.max(body_start)
    }
}

/// The entity's Content-Type, or the default for its context when it is missing or
/// invalid.
fn parse_content_type(header_bytes: &[u8], digest: bool) -> ContentType {
    header::first(header_bytes, "Content-Type")
        .and_then(params::content_type)
        .unwrap_or_else(|| {
            if digest {
                ContentType::message_rfc822()
            } else {
                ContentType::text_plain()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'r>(raw: &'r [u8], e: &Entity) -> &'r [u8] {
        &raw[e.body.clone()]
    }

    fn children(e: &Entity) -> &[Entity] {
        match &e.kind {
            Kind::Multipart(c) => c,
            _ => &[],
        }
    }

    #[test]
    fn single_part_message() {
        let raw = b"Subject: x\r\n\r\nhello\r\n";
        let root = parse(raw);
        assert_eq!(&raw[root.header.clone()], b"Subject: x\r\n\r\n");
        assert_eq!(body(raw, &root), b"hello\r\n");
        assert!(matches!(root.kind, Kind::Leaf { opaque: false }));
    }

    #[test]
    fn multipart_parts_exclude_boundary_line_end() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\ntwo\r\n\r\n--b--\r\nepi\r\n";
        let root = parse(raw);
        let c = children(&root);
        assert_eq!(c.len(), 2);
        assert_eq!(body(raw, &c[0]), b"one");
        assert_eq!(
            &raw[c[1].header.clone()],
            b"Content-Type: text/html\r\n\r\n"
        );
        assert_eq!(body(raw, &c[1]), b"two\r\n");
        assert_eq!(body(raw, &root), &raw[root.header.end..]);
        assert!(body(raw, &root).starts_with(b"pre\r\n--b"));
    }

    #[test]
    fn inner_boundary_sharing_a_prefix_wins() {
        let raw = b"Content-Type: multipart/mixed; boundary=ct\n\n--ct\nContent-Type: multipart/alternative; boundary=ct2\n\n--ct2\n\ninner\n--ct2--\n--ct--\n";
        let root = parse(raw);
        let c = children(&root);
        assert_eq!(c.len(), 1);
        let inner = children(&c[0]);
        assert_eq!(inner.len(), 1);
        assert_eq!(body(raw, &inner[0]), b"inner");
    }

    #[test]
    fn missing_end_boundary_runs_to_eof() {
        let raw =
            b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n\r\na\r\n--X\r\n\r\nlast\r\n";
        let root = parse(raw);
        let c = children(&root);
        assert_eq!(c.len(), 2);
        assert_eq!(body(raw, &c[1]), b"last\r\n");
    }

    #[test]
    fn message_rfc822_ends_at_outer_boundary() {
        let raw = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner body\r\n\r\n--o--\r\n";
        let root = parse(raw);
        let c = children(&root);
        let Kind::Message(inner) = &c[0].kind else {
            panic!("expected message");
        };
        assert_eq!(&raw[inner.header.clone()], b"Subject: in\r\n\r\n");
        assert_eq!(body(raw, inner), b"inner body\r\n");
        assert_eq!(body(raw, &c[0]), b"Subject: in\r\n\r\ninner body\r\n");
    }

    #[test]
    fn digest_children_default_to_message() {
        let raw = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: a\r\n\r\nA\r\n--d--\r\n";
        let root = parse(raw);
        assert!(matches!(children(&root)[0].kind, Kind::Message(_)));
    }

    #[test]
    fn blank_line_before_boundary_belongs_to_it() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n--b--\r\n";
        let root = parse(raw);
        let part = &children(&root)[0];
        assert_eq!(&raw[part.header.clone()], b"Content-Type: text/plain\r\n");
        assert_eq!(body(raw, part), b"");
    }

    #[test]
    fn longest_boundary_wins() {
        let raw = b"Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=a\n\n--a\n\nx\n--ab--\n";
        let root = parse(raw);
        let outer = children(&root);
        assert_eq!(outer.len(), 1);
        assert_eq!(children(&outer[0]).len(), 1);
        assert_eq!(body(raw, &children(&outer[0])[0]), b"x");
    }

    #[test]
    fn no_blank_line_means_all_header() {
        let raw = b"From: a@b\r\nSubject: x\r\n";
        let root = parse(raw);
        assert_eq!(root.header, 0..raw.len());
        assert_eq!(root.body, raw.len()..raw.len());
    }

    #[test]
    fn deep_nesting_is_capped() {
        let mut raw = Vec::new();
        for i in 0..150 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}x\r\n\r\n--b{i}x\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\ndeep\r\n");
        let root = parse(&raw);
        let mut e = &root;
        let mut depth = 0;
        while let Kind::Multipart(c) = &e.kind {
            let Some(first) = c.first() else { break };
            e = first;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert!(matches!(e.kind, Kind::Leaf { opaque: true }));
    }
}
