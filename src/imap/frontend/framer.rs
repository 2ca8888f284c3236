//! Splits the client's bytes the way imap-next's receiver does — lines, and the literals
//! they announce — so that the first line of each command can be looked at, and a
//! `SEARCH RETURN` rewritten, before imap-next parses it. Every other byte, literal data
//! above all, passes on unchanged and in order.
//!
//! Pieces are handed on one at a time and never past the end of a line: after a line that
//! announces a literal, only imap-next knows whether the literal follows (it refuses a
//! synchronizing literal over its limit, and the client then never sends it), so the framer
//! waits until imap-next asks for more input ([`Framer::next_chunk`]) or reports the refusal
//! ([`Framer::literal_refused`]).

use std::collections::VecDeque;

use super::returns::{self, Head, ReturnError, ReturnOptions};

/// Longest first line held back to be checked for `SEARCH RETURN`. Longer `SEARCH RETURN`
/// lines are passed on unchanged and refused; this bounds what a connection holds.
pub const MAX_HELD_LINE: usize = 1024 * 1024;

/// A piece of client input for imap-next.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// These are the first bytes of a new command.
    pub starts_message: bool,
    /// The command is a `SEARCH RETURN`: what it asked for (the bytes are then the plain
    /// SEARCH), or why it is refused (the bytes are then the line as sent).
    pub search: Option<Result<ReturnOptions, ReturnError>>,
}

#[derive(Default)]
pub struct Framer {
    /// Bytes received and not handed on yet.
    input: VecDeque<u8>,
    at: Position,
    tail: Tail,
    /// The first line of the current command, held while it may be a `SEARCH RETURN`.
    held: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// Inside a line. `hold`: the command's first line, still held back; `fresh`: no byte of
    /// the command was handed on yet.
    Line {
        hold: bool,
        fresh: bool,
    },
    /// A line was handed on; whether a literal follows is settled when imap-next answers.
    LineEnded {
        literal: Option<u32>,
    },
    Literal {
        remaining: u32,
    },
}

impl Default for Position {
    fn default() -> Position {
        Position::COMMAND_START
    }
}

impl Position {
    const COMMAND_START: Position = Position::Line {
        hold: true,
        fresh: true,
    };
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend(bytes);
    }

    /// imap-next refused the literal the last line announced: the client will not send it,
    /// so a new command starts with the next byte.
    pub fn literal_refused(&mut self) {
        if let Position::LineEnded { literal: Some(_) } = self.at {
            self.at = Position::COMMAND_START;
        }
    }

    /// The next piece to hand to imap-next, which has consumed everything handed so far.
    /// `None` when more input is needed.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        loop {
            match self.at {
                // imap-next took the line and wants more: it accepted the literal.
                Position::LineEnded {
                    literal: Some(remaining),
                } => self.at = Position::Literal { remaining },
                Position::LineEnded { literal: None } => self.at = Position::COMMAND_START,
                Position::Literal { remaining: 0 } => {
                    self.at = Position::Line {
                        hold: false,
                        fresh: false,
                    }
                }
                Position::Literal { remaining } => return self.literal(remaining),
                Position::Line { hold, fresh } => return self.line(hold, fresh),
            }
        }
    }

    fn literal(&mut self, remaining: u32) -> Option<Chunk> {
        if self.input.is_empty() {
            return None;
        }
        let take = self.input.len().min(remaining as usize);
        let bytes: Vec<u8> = self.input.drain(..take).collect();
        self.at = Position::Literal {
            remaining: remaining.saturating_sub(take as u32),
        };
        Some(Chunk::plain(bytes, false))
    }

    fn line(&mut self, hold: bool, fresh: bool) -> Option<Chunk> {
        let (front, back) = self.input.as_slices();
        let mut count = 0;
        let mut ended = None;
        for &byte in front.iter().chain(back) {
            count += 1;
            if let Some(literal) = self.tail.push(byte) {
                ended = Some(literal);
                break;
            }
        }
        let taken: Vec<u8> = self.input.drain(..count).collect();
        if hold {
            self.held.extend_from_slice(&taken);
            return match ended {
                Some(literal) => Some(self.held_line(literal)),
                None => self.partial_held_line(),
            };
        }
        if taken.is_empty() {
            return None;
        }
        self.at = match ended {
            Some(literal) => Position::LineEnded { literal },
            None => Position::Line { hold, fresh: false },
        };
        Some(Chunk::plain(taken, fresh))
    }

    /// A held first line is complete: rewritten when it is a well-formed `SEARCH RETURN`.
    fn held_line(&mut self, literal: Option<u32>) -> Chunk {
        let line = std::mem::take(&mut self.held);
        self.at = Position::LineEnded { literal };
        let Head::Matched {
            search_end,
            options_at,
        } = returns::match_head(&line)
        else {
            return Chunk::plain(line, true);
        };
        match returns::rewrite(&line, search_end, options_at) {
            Ok((plain, options)) => Chunk {
                bytes: plain,
                starts_message: true,
                search: Some(Ok(options)),
            },
            // Passed on as sent: imap-codec cannot parse `SEARCH RETURN`, and the refusal
            // carries the reason.
            Err(error) => Chunk {
                bytes: line,
                starts_message: true,
                search: Some(Err(error)),
            },
        }
    }

    /// Part of a first line: held while it may still be a `SEARCH RETURN`, otherwise handed
    /// on as it comes.
    fn partial_held_line(&mut self) -> Option<Chunk> {
        let head = returns::match_head(&self.held);
        let search = match head {
            Head::No => None,
            Head::Matched { .. } if self.held.len() > MAX_HELD_LINE => {
                Some(Err(ReturnError::TooLong(MAX_HELD_LINE)))
            }
            Head::Matched { .. } | Head::NeedMore => return None,
        };
        self.at = Position::Line {
            hold: false,
            fresh: false,
        };
        Some(Chunk {
            bytes: std::mem::take(&mut self.held),
            starts_message: true,
            search,
        })
    }
}

impl Chunk {
    fn plain(bytes: Vec<u8>, starts_message: bool) -> Chunk {
        Chunk {
            bytes,
            starts_message,
            search: None,
        }
    }
}

/// The end of the line read so far, enough to tell whether it announces a literal: `{n}` or
/// `{n+}` right before the line ending (CRLF, or a bare LF, which imap-next also ends a line
/// at). `n` must fit in 32 bits, as imap-next requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Tail {
    #[default]
    Other,
    Open,
    Digits(u32),
    Plus(u32),
    Closed(u32),
    ClosedCr(u32),
}

impl Tail {
    /// Takes one byte; at the end of a line returns `Some` with the announced literal length.
    fn push(&mut self, byte: u8) -> Option<Option<u32>> {
        if byte == b'\n' {
            let literal = match *self {
                Tail::Closed(n) | Tail::ClosedCr(n) => Some(n),
                _ => None,
            };
            *self = Tail::Other;
            return Some(literal);
        }
        *self = match (*self, byte) {
            (Tail::Closed(n), b'\r') => Tail::ClosedCr(n),
            (_, b'{') => Tail::Open,
            (Tail::Open, b'0'..=b'9') => Tail::Digits(u32::from(byte - b'0')),
            (Tail::Digits(n), b'0'..=b'9') => n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u32::from(byte - b'0')))
                .map_or(Tail::Other, Tail::Digits),
            (Tail::Digits(n), b'+') => Tail::Plus(n),
            (Tail::Digits(n) | Tail::Plus(n), b'}') => Tail::Closed(n),
            _ => Tail::Other,
        };
        None
    }
}
