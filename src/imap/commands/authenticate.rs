//! LOGIN and AUTHENTICATE PLAIN (with SASL-IR).

use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::core::{AString, Tag};
use imap_next::imap_types::response::{CommandContinuationRequest, Data};
use imap_next::imap_types::secret::Secret;
use imap_next::types::CommandAuthenticate;

use super::{capabilities, Outcome};
use crate::auth::{self, AuthError};
use crate::imap::names::VisibleMailbox;
use crate::imap::session::{LoggedIn, Session};
use crate::imap::throttle;

pub enum Step {
    Continue(CommandContinuationRequest<'static>),
    Done(Tag<'static>, Outcome),
}

pub async fn login(
    session: &mut Session,
    username: AString<'static>,
    password: Secret<AString<'static>>,
) -> Outcome {
    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
    let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
    log_in(session, &user, &pass, None).await
}

pub async fn start(session: &mut Session, command: CommandAuthenticate) -> Step {
    if session.login.is_some() {
        return Step::Done(command.tag, Outcome::bad("Already logged in"));
    }
    if !session.login_allowed() {
        return Step::Done(command.tag, privacy_required());
    }
    if command.mechanism != AuthMechanism::Plain {
        return Step::Done(
            command.tag,
            Outcome::no("Only AUTHENTICATE PLAIN is supported").with_atom_code("CANNOT"),
        );
    }
    match command.initial_response {
        Some(response) => plain(session, command.tag, response.declassify()).await,
        None => {
            session.authenticating = Some(command.tag);
            match CommandContinuationRequest::basic(None, " ") {
                Ok(request) => Step::Continue(request),
                Err(_) => Step::Continue(CommandContinuationRequest::base64(Vec::new())),
            }
        }
    }
}

pub async fn data(session: &mut Session, data: AuthenticateData<'static>) -> Step {
    let Some(tag) = session.authenticating.take() else {
        // imap-next only delivers data during an exchange; nothing to answer otherwise.
        return Step::Done(
            Tag::unvalidated("*"),
            Outcome::bad("No authentication in progress"),
        );
    };
    match data {
        AuthenticateData::Cancel => Step::Done(tag, Outcome::bad("Authentication cancelled")),
        AuthenticateData::Continue(response) => plain(session, tag, response.declassify()).await,
    }
}

async fn plain(session: &mut Session, tag: Tag<'static>, response: &[u8]) -> Step {
    let decoded = match auth::decode_sasl_plain(response) {
        Ok(decoded) => decoded,
        Err(_) => {
            return Step::Done(tag, Outcome::bad("Malformed PLAIN response"));
        }
    };
    let outcome = log_in(
        session,
        &decoded.authcid,
        &decoded.password,
        decoded.authzid.as_deref(),
    )
    .await;
    Step::Done(tag, outcome)
}

async fn log_in(
    session: &mut Session,
    user: &str,
    password: &str,
    authzid: Option<&str>,
) -> Outcome {
    if !session.login_allowed() {
        return privacy_required();
    }
    match auth::authenticate(&session.bridge.store, user, password, authzid).await {
        Ok(login) => {
            let visible = VisibleMailbox::layout(&login.mailboxes);
            tracing::debug!(peer = %session.peer, user = %login.user.name, "IMAP login");
            throttle::login_succeeded(session.peer.ip());
            session.login = Some(LoggedIn { visible });
            session
                .pending
                .push(Data::Capability(capabilities(session)).into());
            Outcome::ok("Logged in")
        }
        Err(AuthError::BadCredentials) | Err(AuthError::Malformed) => {
            // The pause grows with each failure from this address (see `throttle`).
            let pause = throttle::login_failed(session.peer.ip());
            tracing::info!(peer = %session.peer, user, ?pause, "IMAP login failed");
            tokio::time::sleep(pause).await;
            Outcome::no("Invalid user name or password").with_atom_code("AUTHENTICATIONFAILED")
        }
        Err(e @ AuthError::NotAssigned { .. }) | Err(e @ AuthError::NoMailbox(_)) => {
            Outcome::no(e.to_string()).with_atom_code("AUTHORIZATIONFAILED")
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "store failed during login");
            Outcome::no("Temporary failure, try again").with_atom_code("UNAVAILABLE")
        }
    }
}

/// RFC 3501 LOGINDISABLED: no password crosses a connection others could overhear.
fn privacy_required() -> Outcome {
    Outcome::no("Log in only after STARTTLS (or on the implicit TLS port)")
        .with_atom_code("PRIVACYREQUIRED")
}
