//! IMAP command handlers, one file per command family. Each handler pushes untagged data to
//! `session.pending` and returns the [`Outcome`] that becomes the tagged status.

pub mod append;
pub mod authenticate;
pub mod condstore;
pub mod copy;
pub mod cross_copy;
pub mod enable;
pub mod expunge;
pub mod fetch;
mod fetch_bodies;
pub mod list;
pub mod mailbox;
pub mod search;
pub mod select;
pub mod store;

use imap_next::imap_types::core::{Tag, Text, Vec1};
use imap_next::imap_types::response::{Capability, Code, CodeOther, Data, Status};

use std::sync::Arc;

use imap_next::imap_types::mailbox::Mailbox;

use super::names::{self, VisibleMailbox};
use super::session::Session;
use crate::bridge::BridgeError;
use crate::mailstore::{folders, FolderRecord, SigninState};
use crate::sync::MailboxSync;

/// How a command ended: becomes `tag OK|NO|BAD [code] text`.
#[derive(Debug)]
pub struct Outcome {
    kind: Kind,
    code: Option<Code<'static>>,
    text: String,
}

#[derive(Debug)]
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

    pub fn is_ok(&self) -> bool {
        matches!(self.kind, Kind::Ok)
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

/// What this server advertises to this session. Only what fully works is listed.
pub fn capabilities(session: &Session) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    if session.login.is_none() {
        if session.offers_starttls() {
            caps.push(Capability::StartTls);
        }
        if session.login_allowed() {
            caps.push(Capability::Auth(
                imap_next::imap_types::auth::AuthMechanism::Plain,
            ));
            caps.push(Capability::SaslIr);
        } else {
            caps.push(Capability::LoginDisabled);
        }
    }
    caps.push(Capability::Idle);
    caps.push(Capability::Binary);
    caps.push(Capability::LiteralPlus);
    caps.push(Capability::UidPlus);
    caps.push(Capability::Move);
    caps.push(Capability::Unselect);
    caps.push(Capability::Namespace);
    caps.push(Capability::Id);
    caps.push(Capability::Enable);
    caps.push(Capability::CondStore);
    caps.push(Capability::QResync);
    caps.push(Capability::StatusSize);
    // ESEARCH (RFC 4731): imap-next is driven through `frontend::Frontend`, which handles it.
    for name in ["CHILDREN", "LIST-STATUS", "ESEARCH"] {
        if let Ok(capability) = Capability::try_from(name) {
            caps.push(capability);
        }
    }
    caps.push(Capability::try_from("SPECIAL-USE").unwrap_or(Capability::Imap4Rev1));
    caps.dedup();
    Vec1::unvalidated(caps)
}

pub fn capability(session: &mut Session) -> Outcome {
    session
        .pending
        .push(Data::Capability(capabilities(session)).into());
    Outcome::ok("CAPABILITY completed")
}

/// STARTTLS (RFC 3501 6.2.1): the OK goes out in plaintext, then the TLS handshake starts.
pub fn starttls(session: &mut Session) -> Outcome {
    if session.tls {
        return Outcome::bad("TLS is already active");
    }
    if session.login.is_some() {
        return Outcome::bad("STARTTLS is only allowed before logging in");
    }
    if !session.offers_starttls() {
        return Outcome::no("TLS is not available: the server has no certificate");
    }
    session.starttls = true;
    Outcome::ok("Begin TLS negotiation now")
}

/// NAMESPACE (RFC 2342): the personal mailbox at the top, the others under `Shared/`.
pub fn namespace(session: &mut Session) -> Outcome {
    use imap_next::imap_types::core::{IString, QuotedChar};
    use imap_next::imap_types::extensions::namespace::Namespace;
    let delimiter = QuotedChar::try_from('/').ok();
    let space = |prefix: &str| {
        IString::try_from(prefix.to_string())
            .ok()
            .map(|p| vec![Namespace::new(p, delimiter)])
            .unwrap_or_default()
    };
    let has_shared = session.login.as_ref().is_some_and(|l| l.visible.len() > 1);
    let shared = if has_shared {
        space(&format!("{}/", names::SHARED_PREFIX))
    } else {
        Vec::new()
    };
    session.pending.push(
        Data::Namespace {
            personal: space(""),
            other: Vec::new(),
            shared,
        }
        .into(),
    );
    Outcome::ok("NAMESPACE completed")
}

/// ID (RFC 2971): says who this server is; what the client says is only logged.
pub fn id(
    session: &mut Session,
    parameters: Option<
        Vec<(
            imap_next::imap_types::core::IString<'static>,
            imap_next::imap_types::core::NString<'static>,
        )>,
    >,
) -> Outcome {
    use imap_next::imap_types::core::{IString, NString};
    if let Some(parameters) = &parameters {
        let text: Vec<String> = parameters
            .iter()
            .map(|(k, v)| {
                let value =
                    v.0.as_ref()
                        .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned());
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k.as_ref()),
                    value.unwrap_or_default()
                )
            })
            .collect();
        tracing::debug!(peer = %session.peer, client = text.join(", "), "IMAP ID");
    }
    let pair = |k: &str, v: &str| -> Option<(IString<'static>, NString<'static>)> {
        Some((
            IString::try_from(k.to_string()).ok()?,
            NString(Some(IString::try_from(v.to_string()).ok()?)),
        ))
    };
    let ours: Vec<_> = [
        pair("name", "graphbridge"),
        pair("version", env!("CARGO_PKG_VERSION")),
        pair("vendor", "graphbridge"),
    ]
    .into_iter()
    .flatten()
    .collect();
    session.pending.push(
        Data::Id {
            parameters: Some(ours),
        }
        .into(),
    );
    Outcome::ok("ID completed")
}

/// The session sends the untagged BYE before this tagged OK and then closes.
pub fn logout(session: &mut Session) -> Outcome {
    session.logout = true;
    Outcome::ok("LOGOUT completed")
}

/// A client-named folder, found: the mailbox it is in, that mailbox's sync engine, the folder.
pub struct Located {
    pub mailbox: VisibleMailbox,
    pub sync: Arc<MailboxSync>,
    /// The folder path inside the mailbox (without the `Shared/<address>/` prefix).
    pub path: String,
    pub folder: Option<FolderRecord>,
}

/// Finds the mailbox and folder a client-given name refers to. `Err` is the answer to give.
pub async fn locate(session: &Session, mailbox: &Mailbox<'_>) -> Result<Located, Outcome> {
    let Some(name) = names::mailbox_name(mailbox) else {
        return Err(Outcome::bad("Mailbox name is not valid modified UTF-7"));
    };
    let Some(logged_in) = &session.login else {
        return Err(Outcome::bad("Not logged in"));
    };
    let Some((visible, path)) = names::resolve(&logged_in.visible, &name) else {
        return Err(Outcome::no(format!("No such mailbox: {name}")).with_atom_code("NONEXISTENT"));
    };
    let sync = match session.bridge.sync_or_attach(&visible.record).await {
        Ok(sync) if !sync.needs_signin() => sync,
        // Signed in when the session began: Microsoft has refused the sign-in since.
        Ok(_) | Err(BridgeError::NotSignedIn(_)) => {
            let state = match visible.record.signin_state {
                SigninState::SignedIn => SigninState::NeedsSignin,
                other => other,
            };
            return Err(not_signed_in(&visible.record.address, state));
        }
        Err(e) => return Err(Outcome::no(e.to_string()).with_atom_code("UNAVAILABLE")),
    };
    let account = visible.record.account_id();
    let lookup = path.clone();
    let folder = session
        .bridge
        .store
        .call(move |c| folders::folder_by_path(c, account, &lookup))
        .await
        .map_err(|e| Outcome::no(format!("Cannot read folders: {e}")))?;
    Ok(Located {
        mailbox: visible.clone(),
        sync,
        path,
        folder,
    })
}

/// The answer when a mailbox has no usable Microsoft sign-in.
pub fn not_signed_in(address: &str, state: SigninState) -> Outcome {
    let text = match state {
        SigninState::NeedsSignin => format!(
            "Microsoft refused the stored sign-in of {address}; an administrator must run `graphbridge mailbox signin {address}`"
        ),
        _ => format!(
            "{address} is not signed in to Microsoft yet; an administrator must run `graphbridge mailbox signin {address}`"
        ),
    };
    Outcome::no(text).with_atom_code("UNAVAILABLE")
}

/// A sync failure as the tagged answer, with the reason.
pub fn sync_failure(what: &str, error: crate::sync::SyncError) -> Outcome {
    match error {
        crate::sync::SyncError::Gone => Outcome::no(format!(
            "{what}: the message was deleted in Microsoft 365 meanwhile"
        ))
        .with_atom_code("EXPUNGEISSUED"),
        e if e.needs_signin() => Outcome::no(format!("{what}: {e}")).with_atom_code("UNAVAILABLE"),
        // RFC 4469/7889: [TOOBIG] tells the client that retrying will not help.
        e if e.is_too_large() => {
            Outcome::no(format!("{what}: Microsoft 365 refused: {e}")).with_atom_code("TOOBIG")
        }
        other => Outcome::no(format!("{what}: Microsoft 365 refused: {other}")),
    }
}
