//! graphbridge: IMAP and SMTP in front of Microsoft 365 mailboxes reached through Microsoft Graph.
//!
//! The flow: the fronts (`imap`, `smtp`) read the store (`mailstore`) and ask the sync engine
//! (`sync`, over the Graph client in `graph`) for what is missing; their writes go through the
//! sync engine, which answers only once Graph accepted them. `submission` carries a message
//! from SMTP to Graph; `admin` is the HTTP side and the administration shared with the CLI;
//! `emulator` is a stand-in Microsoft 365 used by the demo, the tests and the benchmarks.

// The fronts.
pub mod admin;
pub mod imap;
pub mod smtp;
pub mod submission;

// The store.
pub mod mailstore;

// The back.
pub mod graph;
pub mod sync;

// Shared parts.
pub mod app;
pub mod auth;
pub mod bridge;
pub mod config;
pub mod demo;
pub mod listener;
pub mod rfc822;
pub mod secrets;
pub mod tls;

// Microsoft 365, emulated.
pub mod emulator;
