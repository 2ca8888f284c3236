//! The IMAP front: what the server computes for clients from a message's bytes.
//!
//! `fetch` answers the message-content items of IMAP FETCH (ENVELOPE, BODYSTRUCTURE,
//! BODY[section], BINARY[section]) from the raw RFC 822 bytes the server serves.

pub mod fetch;
