//! SEARCH criteria compiled once per command and evaluated per message.
//!
//! Evaluation is three-valued: [`Query::decide`] answers from the message's record alone
//! (flags, keywords, INTERNALDATE, UID, sequence number, and the size once known) and
//! says "unknown" only when the outcome depends on the message's bytes. The command then
//! loads the bytes of just those messages and finishes with [`Query::matches`]. Within an
//! AND, cheap keys are placed first, so a message is ruled out before its text is read.

use chrono::NaiveDate;
use imap_next::imap_types::core::AString;
use imap_next::imap_types::search::SearchKey;

use super::text::{normalize, Content};
use crate::imap::keywords::keyword_of_category;
use crate::mailstore::{Flags, MessageRecord};
use crate::sync::CATEGORY_SEPARATOR;

/// What `*` stands for in the sequence sets of a search.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Number of messages in the mailbox (the largest sequence number).
    pub exists: u32,
    /// The largest UID in use.
    pub max_uid: u32,
}

/// The message being tested: its sequence number and its record in the store.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'m> {
    pub seq: u32,
    pub record: &'m MessageRecord,
}

#[derive(Debug, Clone)]
pub struct Query {
    root: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateField {
    /// INTERNALDATE (BEFORE, ON, SINCE).
    Internal,
    /// The Date header (SENTBEFORE, SENTON, SENTSINCE).
    Sent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateOp {
    Before,
    On,
    Since,
}

#[derive(Debug, Clone)]
enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// Sequence numbers, as inclusive ranges.
    Seq(Vec<(u32, u32)>),
    /// UIDs, as inclusive ranges.
    Uid(Vec<(u32, u32)>),
    /// A system flag bit is set (or, with `false`, not set).
    Flag(u32, bool),
    /// A keyword is set (or not); lower case.
    Keyword(String, bool),
    Date(DateField, DateOp, NaiveDate),
    Larger(u32),
    Smaller(u32),
    /// A header field (lower-case name) contains the normalised text.
    Header(String, String),
    /// SUBJECT: the Subject header with its blanks compressed.
    Subject(String),
    Body(String),
    Text(String),
    /// MODSEQ (RFC 7162): the message's MODSEQ is at least this. The store keeps one MODSEQ
    /// per message, which stands for each of its flags too.
    ModSeq(u64),
}

impl Node {
    /// Evaluation cost class: cheaper keys are tested first.
    fn cost(&self) -> u8 {
        match self {
            Node::Const(_)
            | Node::Seq(_)
            | Node::Uid(_)
            | Node::Flag(..)
            | Node::Keyword(..)
            | Node::ModSeq(_) => 0,
            Node::Date(DateField::Internal, ..) => 0,
            Node::Larger(_) | Node::Smaller(_) => 1,
            Node::Date(DateField::Sent, ..) | Node::Header(..) | Node::Subject(_) => 2,
            Node::Body(_) => 3,
            Node::Text(_) => 4,
            Node::Not(inner) => inner.cost(),
            Node::Or(a, b) => a.cost().max(b.cost()),
            Node::And(all) => all.iter().map(Node::cost).max().unwrap_or(0),
        }
    }
}

impl Query {
    /// Compiles the criteria of one SEARCH command (implicitly ANDed).
    pub fn compile(criteria: &[SearchKey<'_>], scope: Scope) -> Query {
        let mut all: Vec<Node> = criteria.iter().map(|k| node(k, scope)).collect();
        all.sort_by_key(Node::cost);
        Query {
            root: Node::And(all),
        }
    }

    /// Whether the criteria name MODSEQ, so the answer must carry the highest MODSEQ found.
    pub fn uses_modseq(criteria: &[SearchKey<'_>]) -> bool {
        criteria.iter().any(|key| match key {
            SearchKey::ModSequence { .. } => true,
            SearchKey::And(keys) => Query::uses_modseq(keys.as_ref()),
            SearchKey::Not(inner) => Query::uses_modseq(std::slice::from_ref(inner.as_ref())),
            SearchKey::Or(a, b) => {
                Query::uses_modseq(std::slice::from_ref(a.as_ref()))
                    || Query::uses_modseq(std::slice::from_ref(b.as_ref()))
            }
            _ => false,
        })
    }

    /// Whether the criteria need anything beyond the store's records: header or body
    /// text, the Date header, or a size not known yet.
    pub fn decide(&self, message: Candidate<'_>) -> Option<bool> {
        eval(&self.root, message, None)
    }

    /// The outcome for a message whose bytes are at hand.
    pub fn matches(&self, message: Candidate<'_>, content: &Content<'_>) -> bool {
        eval(&self.root, message, Some(content)).unwrap_or(false)
    }
}

fn text_of(s: &AString<'_>) -> String {
    normalize(&String::from_utf8_lossy(s.as_ref()))
}

fn node(key: &SearchKey<'_>, scope: Scope) -> Node {
    use SearchKey as K;
    let header = |name: &str, s: &AString<'_>| Node::Header(name.to_string(), text_of(s));
    match key {
        K::And(keys) => {
            let mut all: Vec<Node> = keys.as_ref().iter().map(|k| node(k, scope)).collect();
            all.sort_by_key(Node::cost);
            Node::And(all)
        }
        K::SequenceSet(set) => Node::Seq(crate::imap::selected::set_ranges(set, scope.exists)),
        K::Uid(set) => Node::Uid(crate::imap::selected::set_ranges(set, scope.max_uid)),
        K::All => Node::Const(true),
        K::Answered => Node::Flag(Flags::ANSWERED, true),
        K::Deleted => Node::Flag(Flags::DELETED, true),
        K::Draft => Node::Flag(Flags::DRAFT, true),
        K::Flagged => Node::Flag(Flags::FLAGGED, true),
        K::Seen => Node::Flag(Flags::SEEN, true),
        K::Unanswered => Node::Flag(Flags::ANSWERED, false),
        K::Undeleted => Node::Flag(Flags::DELETED, false),
        K::Undraft => Node::Flag(Flags::DRAFT, false),
        K::Unflagged => Node::Flag(Flags::FLAGGED, false),
        K::Unseen => Node::Flag(Flags::SEEN, false),
        K::Keyword(atom) => Node::Keyword(atom.as_ref().to_ascii_lowercase(), true),
        K::Unkeyword(atom) => Node::Keyword(atom.as_ref().to_ascii_lowercase(), false),
        // The bridge gives no session \Recent (SELECT reports RECENT 0), as RFC 9051 allows.
        K::Recent | K::New => Node::Const(false),
        K::Old => Node::Const(true),
        K::Before(d) => Node::Date(DateField::Internal, DateOp::Before, *d.as_ref()),
        K::On(d) => Node::Date(DateField::Internal, DateOp::On, *d.as_ref()),
        K::Since(d) => Node::Date(DateField::Internal, DateOp::Since, *d.as_ref()),
        K::SentBefore(d) => Node::Date(DateField::Sent, DateOp::Before, *d.as_ref()),
        K::SentOn(d) => Node::Date(DateField::Sent, DateOp::On, *d.as_ref()),
        K::SentSince(d) => Node::Date(DateField::Sent, DateOp::Since, *d.as_ref()),
        K::Larger(n) => Node::Larger(*n),
        K::Smaller(n) => Node::Smaller(*n),
        K::Bcc(s) => header("bcc", s),
        K::Cc(s) => header("cc", s),
        K::From(s) => header("from", s),
        K::To(s) => header("to", s),
        K::Subject(s) => Node::Subject(text_of(s)),
        K::Header(name, s) => Node::Header(
            String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase(),
            text_of(s),
        ),
        K::Body(s) => Node::Body(text_of(s)),
        K::Text(s) => Node::Text(text_of(s)),
        K::Not(inner) => Node::Not(Box::new(node(inner, scope))),
        K::Or(a, b) => Node::Or(Box::new(node(a, scope)), Box::new(node(b, scope))),
        K::ModSequence { modseq, .. } => Node::ModSeq(*modseq),
        // Keys of extensions this server does not advertise (WITHIN) match nothing.
        #[allow(unreachable_patterns)]
        _ => Node::Const(false),
    }
}

fn in_ranges(ranges: &[(u32, u32)], n: u32) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= n && n <= hi)
}

fn has_keyword(record: &MessageRecord, wanted: &str) -> bool {
    if wanted == "$forwarded" && record.flags.has(Flags::FORWARDED) {
        return true;
    }
    record
        .keywords
        .split(CATEGORY_SEPARATOR)
        .filter(|k| !k.is_empty())
        .any(|k| keyword_of_category(k).eq_ignore_ascii_case(wanted))
}

fn compare(op: DateOp, date: NaiveDate, wanted: NaiveDate) -> bool {
    match op {
        DateOp::Before => date < wanted,
        DateOp::On => date == wanted,
        DateOp::Since => date >= wanted,
    }
}

/// The UTC date of INTERNALDATE, as FETCH INTERNALDATE shows it.
fn internal_date(record: &MessageRecord) -> NaiveDate {
    chrono::DateTime::from_timestamp(record.internal_date, 0)
        .unwrap_or_default()
        .date_naive()
}

/// `None` when the answer needs the message's bytes and `content` is None.
fn eval(node: &Node, m: Candidate<'_>, content: Option<&Content<'_>>) -> Option<bool> {
    let r = m.record;
    Some(match node {
        Node::Const(b) => *b,
        Node::And(all) => {
            let mut unknown = false;
            for n in all {
                match eval(n, m, content) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => unknown = true,
                }
            }
            return if unknown { None } else { Some(true) };
        }
        Node::Or(a, b) => match (eval(a, m, content), eval(b, m, content)) {
            (Some(true), _) | (_, Some(true)) => true,
            (Some(false), Some(false)) => false,
            _ => return None,
        },
        Node::Not(inner) => !eval(inner, m, content)?,
        Node::Seq(ranges) => in_ranges(ranges, m.seq),
        Node::Uid(ranges) => in_ranges(ranges, r.uid),
        Node::Flag(bit, set) => r.flags.has(*bit) == *set,
        Node::Keyword(k, set) => has_keyword(r, k) == *set,
        Node::Date(DateField::Internal, op, wanted) => compare(*op, internal_date(r), *wanted),
        Node::Date(DateField::Sent, op, wanted) => {
            // A message without a readable Date header counts as sent at the epoch, as
            // in Dovecot.
            let sent = content?.sent_date().unwrap_or_default();
            compare(*op, sent, *wanted)
        }
        Node::Larger(n) => size(r, content)? > u64::from(*n),
        Node::Smaller(n) => size(r, content)? < u64::from(*n),
        Node::Header(name, needle) => content?.header_contains(name, needle),
        Node::Subject(needle) => content?.subject_contains(needle),
        Node::Body(needle) => content?.body_contains(needle),
        Node::Text(needle) => content?.text_contains(needle),
        Node::ModSeq(n) => r.modseq >= *n,
    })
}

fn size(record: &MessageRecord, content: Option<&Content<'_>>) -> Option<u64> {
    record.size.or_else(|| content.map(Content::size))
}
