//! graphbridge: IMAP and SMTP in front of Microsoft 365 mailboxes reached through Microsoft Graph.
//!
//! The flow is described in ARCHITECTURE terms: the front (`imap`, `smtp`) talks to the
//! store (`mailstore`) and asks the back (`sync`, `graph`) for what is missing; the
//! `emulator` is a stand-in Microsoft 365 used by the demo, the tests and the benchmarks.

pub mod admin;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod config;
pub mod demo;
pub mod emulator;
pub mod graph;
pub mod imap;
pub mod listener;
pub mod mailstore;
pub mod rfc822;
pub mod secrets;
pub mod smtp;
pub mod submission;
pub mod sync;
pub mod tls;
