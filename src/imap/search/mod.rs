//! SEARCH evaluation (RFC 3501 6.4.4): criteria compiled into a [`Query`], tested against a
//! message's record in the store and, only where a key needs them, its bytes.
//!
//! Text keys (HEADER, FROM, SUBJECT, BODY, TEXT, …) are matched case-insensitively as
//! substrings of the decoded text, as Dovecot does: see [`text`].

mod matcher;
pub mod text;

pub use matcher::{Candidate, Query, Scope};
pub use text::Content;

#[cfg(test)]
mod tests;
