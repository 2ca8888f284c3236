//! `SEARCH RETURN (...)` (RFC 4731): recognising the command line, turning it into the plain
//! SEARCH imap-codec parses, and encoding the `* ESEARCH` answer.

use thiserror::Error;

/// Longest tag looked at when deciding whether a line is a `SEARCH RETURN`. Real tags are a
/// few characters; a longer one is simply passed on (imap-codec answers it BAD).
const MAX_TAG: usize = 1024;

/// What `RETURN (...)` asked for (RFC 4731 3.1). An empty list means ALL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnOptions {
    pub min: bool,
    pub max: bool,
    pub count: bool,
    pub all: bool,
}

/// Why a `SEARCH RETURN` command is refused with BAD; the text is the answer's text.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReturnError {
    #[error("SEARCH RETURN (SAVE) needs SEARCHRES (RFC 5182), which this server does not offer")]
    Save,
    #[error("Unknown SEARCH RETURN option {0:?}: only MIN, MAX, COUNT and ALL are supported")]
    Unknown(String),
    #[error("SEARCH RETURN options must be a parenthesised list such as (MIN MAX COUNT ALL)")]
    Syntax,
    #[error("SEARCH RETURN (...) must be followed by search criteria")]
    NoCriteria,
    #[error("SEARCH RETURN command line is longer than {0} bytes")]
    TooLong(usize),
}

/// How far a (possibly partial) first line of a command matches `tag [UID ]SEARCH RETURN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// It is one: `search_end` is the index just after `SEARCH`, `options_at` just after
    /// `RETURN`.
    Matched {
        search_end: usize,
        options_at: usize,
    },
    /// It is not one; the line is passed on untouched.
    No,
    /// Not enough bytes yet to tell.
    NeedMore,
}

/// Matches the start of a command line against `tag SP [UID SP] SEARCH SP RETURN`, keywords
/// in any case. `line` may be incomplete (then `NeedMore` is possible) or a whole line.
pub(super) fn match_head(line: &[u8]) -> Head {
    let Some(tag_end) = line.iter().position(|&b| !is_tag_char(b)) else {
        return if line.len() > MAX_TAG {
            Head::No
        } else {
            Head::NeedMore
        };
    };
    if tag_end == 0 || tag_end > MAX_TAG || line.get(tag_end) != Some(&b' ') {
        return Head::No;
    }
    let mut at = tag_end + 1;
    match keyword(line, at, "UID") {
        Word::Found(end) if line.get(end) == Some(&b' ') => at = end + 1,
        Word::Found(_) => return Head::No,
        // "", "U" or "UI" may still become UID (or, for "", SEARCH).
        Word::Partial => return Head::NeedMore,
        Word::Other => {}
    }
    let search_end = match keyword(line, at, "SEARCH") {
        Word::Found(end) if line.get(end) == Some(&b' ') => end,
        Word::Found(_) | Word::Other => return Head::No,
        Word::Partial => return Head::NeedMore,
    };
    match keyword(line, search_end + 1, "RETURN") {
        Word::Found(options_at) => Head::Matched {
            search_end,
            options_at,
        },
        Word::Partial => Head::NeedMore,
        Word::Other => Head::No,
    }
}

enum Word {
    /// The word at the position is the keyword, followed by a delimiter at this index.
    Found(usize),
    /// The bytes end inside a word that may still become the keyword.
    Partial,
    Other,
}

/// Whether the word starting at `at` (ended by SP, CR or LF) is `keyword`, any case.
fn keyword(line: &[u8], at: usize, keyword: &str) -> Word {
    let keyword = keyword.as_bytes();
    let rest = line.get(at..).unwrap_or_default();
    match rest.iter().position(|&b| matches!(b, b' ' | b'\r' | b'\n')) {
        Some(len) if rest[..len].eq_ignore_ascii_case(keyword) => Word::Found(at + len),
        Some(_) => Word::Other,
        None if rest.len() <= keyword.len() && keyword[..rest.len()].eq_ignore_ascii_case(rest) => {
            Word::Partial
        }
        None => Word::Other,
    }
}

/// RFC 3501's tag: ASTRING-CHAR except `+` — printable ASCII other than the atom-specials
/// `( ) { SP % * " \`, with `]` allowed.
pub(super) fn is_tag_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
}

/// Turns a whole `tag [UID ]SEARCH RETURN (opts) criteria` line (with its line ending) into
/// `tag [UID ]SEARCH criteria`, which imap-codec parses, and the options it asked for.
pub(super) fn rewrite(
    line: &[u8],
    search_end: usize,
    options_at: usize,
) -> Result<(Vec<u8>, ReturnOptions), ReturnError> {
    let rest = line.get(options_at..).unwrap_or_default();
    let list = rest.strip_prefix(b" (").ok_or(ReturnError::Syntax)?;
    let close = list
        .iter()
        .position(|&b| b == b')')
        .ok_or(ReturnError::Syntax)?;
    let options = parse_options(&list[..close])?;
    let after = &list[close + 1..];
    let criteria = after.strip_prefix(b" ").ok_or(match after.first() {
        Some(b'\r' | b'\n') | None => ReturnError::NoCriteria,
        Some(_) => ReturnError::Syntax,
    })?;
    if matches!(criteria.first(), None | Some(b'\r' | b'\n')) {
        return Err(ReturnError::NoCriteria);
    }
    let mut plain = Vec::with_capacity(line.len());
    plain.extend_from_slice(&line[..search_end]);
    plain.push(b' ');
    plain.extend_from_slice(criteria);
    Ok((plain, options))
}

/// The inside of `RETURN (...)`: options separated by single spaces, or nothing.
fn parse_options(list: &[u8]) -> Result<ReturnOptions, ReturnError> {
    let mut options = ReturnOptions::default();
    if list.is_empty() {
        options.all = true;
        return Ok(options);
    }
    for word in list.split(|&b| b == b' ') {
        if word.is_empty() || word.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'(')) {
            return Err(ReturnError::Syntax);
        }
        let flag = match word.to_ascii_uppercase().as_slice() {
            b"MIN" => &mut options.min,
            b"MAX" => &mut options.max,
            b"COUNT" => &mut options.count,
            b"ALL" => &mut options.all,
            b"SAVE" => return Err(ReturnError::Save),
            _ => {
                let shown: String = String::from_utf8_lossy(word).chars().take(40).collect();
                return Err(ReturnError::Unknown(shown));
            }
        };
        *flag = true;
    }
    Ok(options)
}

/// One message found by a search: its number (sequence number or UID, as the command asked)
/// and its MODSEQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub number: u32,
    pub modseq: u64,
}

/// The `* ESEARCH` line (with CRLF) answering a `SEARCH RETURN` (RFC 4731 3.1, 7162 3.1.5).
///
/// `hits` are the matches in any order; `with_modseq` when the search used MODSEQ, so the
/// answer ends with the highest MODSEQ of the messages it returns.
pub fn encode(
    tag: &str,
    uid: bool,
    options: ReturnOptions,
    hits: &[Hit],
    with_modseq: bool,
) -> Vec<u8> {
    let mut hits = hits.to_vec();
    hits.sort_unstable();
    hits.dedup_by_key(|h| h.number);
    let mut line = format!("* ESEARCH (TAG {})", quoted(tag));
    if uid {
        line.push_str(" UID");
    }
    // With no match, MIN, MAX and ALL are left out; COUNT 0 is still given (RFC 4731 3.1).
    let (first, last) = (hits.first(), hits.last());
    if let (true, Some(first)) = (options.min, first) {
        line.push_str(&format!(" MIN {}", first.number));
    }
    if let (true, Some(last)) = (options.max, last) {
        line.push_str(&format!(" MAX {}", last.number));
    }
    if options.count {
        line.push_str(&format!(" COUNT {}", hits.len()));
    }
    if options.all && !hits.is_empty() {
        line.push_str(&format!(" ALL {}", compact_set(&hits)));
    }
    if let Some(modseq) = returned_modseq(options, &hits).filter(|_| with_modseq) {
        line.push_str(&format!(" MODSEQ {modseq}"));
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// RFC 4731 3.2: the highest MODSEQ of the messages the answer returns — every match for ALL
/// or COUNT, otherwise only the MIN and/or MAX message.
fn returned_modseq(options: ReturnOptions, hits: &[Hit]) -> Option<u64> {
    let (first, last) = (hits.first()?, hits.last()?);
    let modseq = if options.all || options.count {
        hits.iter().map(|h| h.modseq).max()?
    } else {
        let min = options.min.then_some(first.modseq);
        let max = options.max.then_some(last.modseq);
        min.max(max)?
    };
    (modseq > 0).then_some(modseq)
}

/// Sorted, distinct numbers as the shortest sequence set: `1:3,5,7:9`.
fn compact_set(hits: &[Hit]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = hits.iter().map(|h| h.number).peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == end.checked_add(1).as_ref() {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
    }
    parts.join(",")
}

/// A tag as an IMAP quoted string. Tags cannot hold `"` or `\`; escaping keeps the answer
/// well-formed even so.
fn quoted(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len() + 2);
    out.push('"');
    for c in tag.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
