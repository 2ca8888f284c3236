//! IMAP command handlers, one file per command family. Each handler pushes untagged data to
//! `session.pending` and returns the [`Outcome`] that becomes the tagged status.

pub mod authenticate;
pub mod fetch;
pub mod list;
pub mod search;
pub mod select;
pub mod store;

use imap_next::imap_types::core::{Tag, Text, Vec1};
use imap_next::imap_types::response::{Capability, Code, CodeOther, Data, Status};

use super::session::Session;

/// How a command ended: becomes `tag OK|NO|BAD [code] text`.
pub struct Outcome {
    kind: Kind,
    code: Option<Code<'static>>,
    text: String,
}

enum Kind {
    Ok,
    No,
    Bad,
}

impl Outcome {
    pub fn ok(text: impl Into<String>) -> Outcome {
        Outcome {
            kind: Kind::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub fn no(text: impl Into<String>) -> Outcome {
        Outcome {
            kind: Kind::No,
            code: None,
            text: text.into(),
        }
    }

    pub fn bad(text: impl Into<String>) -> Outcome {
        Outcome {
            kind: Kind::Bad,
            code: None,
            text: text.into(),
        }
    }

    pub fn with_code(mut self, code: Code<'static>) -> Outcome {
        self.code = Some(code);
        self
    }

    /// A response code imap-types has no variant for, such as `AUTHENTICATIONFAILED`.
    pub fn with_atom_code(self, atom: &'static str) -> Outcome {
        self.with_code(Code::Other(CodeOther::unvalidated(atom.as_bytes())))
    }

    pub fn into_status(self, tag: Tag<'static>) -> Status<'static> {
        // Text must be non-empty and free of CR/LF; anything else is replaced, not sent raw.
        let cleaned: String = self
            .text
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        let text = Text::try_from(cleaned).unwrap_or_else(|_| Text::unvalidated("done"));
        let status = match self.kind {
            Kind::Ok => Status::ok(Some(tag.clone()), self.code.clone(), text.clone()),
            Kind::No => Status::no(Some(tag.clone()), self.code.clone(), text.clone()),
            Kind::Bad => Status::bad(Some(tag.clone()), self.code.clone(), text.clone()),
        };
        status.unwrap_or_else(|_| {
            Status::bad(Some(tag), None, Text::unvalidated("internal error"))
                .unwrap_or_else(|_| unreachable_status())
        })
    }
}

/// Only reached if imap-types refuses a plain tagged BAD, which it never does for a parsed tag.
fn unreachable_status() -> Status<'static> {
    Status::bye(None, Text::unvalidated("internal error")).unwrap_or_else(|_| {
        Status::Bye(imap_next::imap_types::response::Bye {
            code: None,
            text: Text::unvalidated("internal error"),
        })
    })
}

/// What this server advertises. Only what fully works is listed.
pub fn capabilities(logged_in: bool) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    if !logged_in {
        caps.push(Capability::Auth(
            imap_next::imap_types::auth::AuthMechanism::Plain,
        ));
        caps.push(Capability::SaslIr);
    }
    caps.push(Capability::Idle);
    caps.push(Capability::Binary);
    caps.push(Capability::try_from("SPECIAL-USE").unwrap_or(Capability::Imap4Rev1));
    caps.dedup();
    Vec1::unvalidated(caps)
}

pub fn capability(session: &mut Session) -> Outcome {
    session
        .pending
        .push(Data::Capability(capabilities(session.login.is_some())).into());
    Outcome::ok("CAPABILITY completed")
}

/// The session sends the untagged BYE before this tagged OK and then closes.
pub fn logout(session: &mut Session) -> Outcome {
    session.logout = true;
    Outcome::ok("LOGOUT completed")
}
