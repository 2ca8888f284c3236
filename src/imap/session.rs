//! One IMAP connection: the imap-next event loop, the RFC 3501 states, and the dispatch of
//! each command to its family's handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{Tag, Text};
use imap_next::imap_types::response::{Code, CommandContinuationRequest, Data, Greeting, Status};
use imap_next::server::{Event, Options, ResponseHandle};
use imap_next::stream::{Error as StreamError, Stream};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::commands::{self, Outcome};
use super::frontend::{Frontend, ReturnOptions};
use super::names::VisibleMailbox;
use super::selected::Selected;
use crate::bridge::Bridge;

/// RFC 3501 says at least 30 minutes of inactivity before an autologout. The same holds
/// during IDLE, so a client that renews its IDLE every 29 minutes (RFC 2177) stays; anything
/// the server sends meanwhile starts the count again.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest literal accepted (APPEND of a 35 MB message plus transfer-encoding slack).
const MAX_LITERAL: u32 = 64 * 1024 * 1024;
/// Largest command, literals included: a literal at the limit plus a long command line.
const MAX_COMMAND: u32 = MAX_LITERAL + 64 * 1024;
const _: () = assert!(MAX_LITERAL < MAX_COMMAND, "imap-next requires it");

pub(super) struct Session {
    pub bridge: Arc<Bridge>,
    pub peer: SocketAddr,
    pub login: Option<LoggedIn>,
    pub selected: Option<Selected>,
    /// Untagged responses produced by the command being handled.
    pub pending: Vec<Untagged>,
    /// SASL exchange in progress: the tag of the AUTHENTICATE command.
    pub authenticating: Option<Tag<'static>>,
    /// The tag of the IDLE command in progress.
    pub idling: Option<Tag<'static>>,
    pub logout: bool,
    /// The connection runs TLS (implicit, or after STARTTLS).
    pub tls: bool,
    /// Present when STARTTLS can be offered.
    pub acceptor: Option<TlsAcceptor>,
    /// STARTTLS was accepted: the TLS handshake follows the OK.
    pub starttls: bool,
    /// CONDSTORE is enabled (RFC 7162): by ENABLE or by the first command that uses it.
    pub condstore: bool,
    /// QRESYNC is enabled (ENABLE QRESYNC): expunges are reported as VANISHED.
    pub qresync: bool,
}

/// An untagged response: data, a status such as `* OK [UIDVALIDITY 3]`, or responses encoded
/// already: an `* ESEARCH` line (imap-types has no ESEARCH response) or a block of FETCH
/// responses (see `imap::fetch::response`).
pub(super) enum Untagged {
    Data(Data<'static>),
    Status(Status<'static>),
    /// Responses encoded already (ESEARCH, FETCH), CRLFs included.
    Raw(Vec<u8>),
}

impl From<Data<'static>> for Untagged {
    fn from(data: Data<'static>) -> Untagged {
        Untagged::Data(data)
    }
}

impl From<Status<'static>> for Untagged {
    fn from(status: Status<'static>) -> Untagged {
        Untagged::Status(status)
    }
}

pub(super) struct LoggedIn {
    /// The mailboxes this login reaches, the personal one first.
    pub visible: Vec<VisibleMailbox>,
}

pub(super) async fn run(
    bridge: Arc<Bridge>,
    mut stream: Stream,
    tls: bool,
    acceptor: Option<TlsAcceptor>,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut session = Session {
        bridge,
        peer,
        tls,
        acceptor,
        login: None,
        selected: None,
        pending: Vec::new(),
        authenticating: None,
        idling: None,
        logout: false,
        starttls: false,
        condstore: false,
        qresync: false,
    };
    let Some(mut server) = new_server(&session, true) else {
        return;
    };
    loop {
        let event = tokio::select! {
            event = tokio::time::timeout(IDLE_TIMEOUT, stream.next(&mut server)) => event,
            _ = session.selected_changed(), if session.idling.is_some() => {
                session.push_updates(&mut server).await;
                continue;
            }
            _ = shutdown.changed() => {
                if let Ok(bye) = Status::bye(None, "graphbridge is shutting down") {
                    server.enqueue_status(bye);
                    flush(&mut stream, &mut server).await;
                }
                return;
            }
        };
        let event = match event {
            Err(_elapsed) => {
                if let Ok(bye) = Status::bye(None, "Autologout: idle for too long") {
                    server.enqueue_status(bye);
                    flush(&mut stream, &mut server).await;
                }
                return;
            }
            Ok(Ok(event)) => event,
            Ok(Err(StreamError::State(error))) => {
                session.malformed(&mut server, error).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "IMAP connection closed");
                return;
            }
        };
        if let Some(upgrade) = session.handle_event(&mut server, event).await {
            let Some(upgraded) = start_tls(&mut session, stream, &mut server, upgrade).await else {
                return;
            };
            stream = upgraded;
            let Some(fresh) = new_server(&session, false) else {
                return;
            };
            server = fresh;
            continue;
        }
        if session.logout {
            flush(&mut stream, &mut server).await;
            return;
        }
    }
}

/// The imap-next state machine for a connection, with ESEARCH and `[TOOBIG]` added. After
/// STARTTLS a fresh one is made, so no byte the client sent in plaintext survives into the
/// TLS session (RFC 3501 6.2.1); its greeting is dropped unsent, as no greeting follows
/// STARTTLS.
fn new_server(session: &Session, greet: bool) -> Option<Frontend> {
    let greeting = Greeting::ok(
        Some(Code::Capability(commands::capabilities(session))),
        "graphbridge IMAP ready",
    )
    .ok()?;
    let mut options = Options::default();
    options.max_literal_size = MAX_LITERAL;
    options.max_command_size = MAX_COMMAND;
    // imap-next answers a synchronizing literal over the limit itself, with this text; the
    // frontend adds [TOOBIG] to that answer. LITERAL+ and long lines get [TOOBIG] below.
    let _ = options.set_literal_reject_text(format!(
        "Literal too big: the limit is {} MiB",
        MAX_LITERAL / (1024 * 1024)
    ));
    let mut server = Frontend::new(options, greeting);
    if !greet {
        use imap_next::{Interrupt, Io, State};
        while let Err(Interrupt::Io(Io::Output(_))) = State::next(&mut server) {}
    }
    Some(server)
}

/// Sends the tagged OK of STARTTLS, then runs the TLS handshake on the same TCP connection.
async fn start_tls(
    session: &mut Session,
    mut stream: Stream,
    server: &mut Frontend,
    ok: ResponseHandle,
) -> Option<Stream> {
    // Write out everything up to the OK, and nothing after it.
    loop {
        match stream.next(&mut *server).await {
            Ok(Event::ResponseSent { handle, .. }) if handle == ok => break,
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    let acceptor = session.acceptor.clone()?;
    let tcp: TcpStream = stream.into();
    let upgraded = super::handshake(&acceptor, tcp).await?;
    session.tls = true;
    session.starttls = false;
    Some(upgraded)
}

/// Writes out whatever is queued (the BYE of a LOGOUT, say) before the connection closes.
async fn flush(stream: &mut Stream, server: &mut Frontend) {
    // Progressing the state sends queued responses; a short timeout keeps a dead peer from
    // holding the task.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) =
            stream.next(&mut *server).await
        {}
    })
    .await;
    let _ = stream.flush().await;
}

impl Session {
    pub fn offers_starttls(&self) -> bool {
        !self.tls && self.acceptor.is_some()
    }

    /// Whether LOGIN and AUTHENTICATE may be used on this connection now.
    pub fn login_allowed(&self) -> bool {
        let imap = &self.bridge.config.imap;
        self.tls
            || !imap.require_tls_for_login
            || (imap.allow_plain_login_on_loopback && self.peer.ip().is_loopback())
    }

    /// Handles one event; returns the handle of STARTTLS's OK when the connection must now
    /// switch to TLS.
    async fn handle_event(
        &mut self,
        server: &mut Frontend,
        event: Event,
    ) -> Option<ResponseHandle> {
        match event {
            Event::GreetingSent { .. } | Event::ResponseSent { .. } => {}
            Event::CommandReceived { command } => {
                let tag = command.tag.clone();
                let returns = server.take_search_return();
                let outcome = self.dispatch(command, returns).await;
                let handle = self.finish(server, tag, outcome);
                if self.starttls {
                    return Some(handle);
                }
            }
            Event::CommandAuthenticateReceived {
                command_authenticate,
            } => {
                let status = commands::authenticate::start(self, command_authenticate).await;
                self.finish_authenticate(server, status);
            }
            Event::AuthenticateDataReceived { authenticate_data } => {
                let status = commands::authenticate::data(self, authenticate_data).await;
                self.finish_authenticate(server, status);
            }
            Event::IdleCommandReceived { tag } => self.start_idle(server, tag).await,
            Event::IdleDoneReceived => {
                if let Some(tag) = self.idling.take() {
                    self.finish(server, tag, Outcome::ok("IDLE terminated"));
                }
            }
        }
        None
    }

    /// Runs one command; `returns` are the RETURN options of a `SEARCH RETURN` (RFC 4731).
    async fn dispatch(
        &mut self,
        command: Command<'static>,
        returns: Option<ReturnOptions>,
    ) -> Outcome {
        let logged_in = self.login.is_some();
        let selected = self.selected.is_some();
        match command.body {
            CommandBody::Capability => commands::capability(self),
            CommandBody::StartTLS => commands::starttls(self),
            CommandBody::Noop => commands::select::noop(self).await,
            CommandBody::Logout => commands::logout(self),
            CommandBody::Login { username, password } if !logged_in => {
                commands::authenticate::login(self, username, password).await
            }
            CommandBody::Login { .. } => Outcome::bad("Already logged in"),
            _ if !logged_in => Outcome::bad("Log in first (LOGIN or AUTHENTICATE PLAIN)"),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => commands::list::list(self, reference, mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => commands::list::list(self, reference, mailbox_wildcard, true).await,
            CommandBody::Enable { capabilities } => commands::enable::enable(self, capabilities),
            CommandBody::Select {
                mailbox,
                parameters,
            } => commands::select::select(self, mailbox, false, parameters).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => commands::select::select(self, mailbox, true, parameters).await,
            CommandBody::Namespace => commands::namespace(self),
            CommandBody::Id { parameters } => commands::id(self, parameters),
            CommandBody::Create { mailbox } => commands::mailbox::create(self, mailbox).await,
            CommandBody::Delete { mailbox } => commands::mailbox::delete(self, mailbox).await,
            CommandBody::Rename { from, to } => commands::mailbox::rename(self, from, to).await,
            CommandBody::Subscribe { mailbox } => {
                commands::mailbox::subscribe(self, mailbox, true).await
            }
            CommandBody::Unsubscribe { mailbox } => {
                commands::mailbox::subscribe(self, mailbox, false).await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => commands::mailbox::status(self, mailbox, &item_names).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => commands::append::append(self, mailbox, flags, date, message).await,
            CommandBody::Check if selected => commands::select::noop(self).await,
            CommandBody::Close if selected => commands::expunge::close(self).await,
            CommandBody::Unselect if selected => commands::select::close(self),
            CommandBody::Expunge if selected => commands::expunge::expunge(self, None, true).await,
            CommandBody::ExpungeUid { sequence_set } if selected => {
                commands::expunge::expunge(self, Some(sequence_set), true).await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } if selected => {
                commands::copy::copy_or_move(self, sequence_set, mailbox, uid, false).await
            }
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } if selected => {
                commands::copy::copy_or_move(self, sequence_set, mailbox, uid, true).await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } if selected => {
                commands::fetch::fetch(self, sequence_set, macro_or_item_names, uid, modifiers)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } if selected => {
                commands::store::store(self, sequence_set, kind, response, flags, uid, modifiers)
                    .await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } if selected => {
                let esearch = returns.map(|options| commands::search::Esearch {
                    tag: command.tag.as_ref().to_string(),
                    options,
                });
                commands::search::search(self, charset, criteria, uid, esearch).await
            }
            CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Search { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
            | CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Check
                if !selected =>
            {
                Outcome::bad("No mailbox selected")
            }
            other => Outcome::no(format!(
                "{} is not supported by this bridge yet",
                other.name()
            )),
        }
    }

    /// IDLE (RFC 2177): accepted when logged in; changes to the selected folder are pushed
    /// as they reach the store.
    async fn start_idle(&mut self, server: &mut Frontend, tag: Tag<'static>) {
        if self.login.is_none() {
            if let Ok(status) = Status::bad(Some(tag), None, "Log in first") {
                let _ = server.idle_reject(status);
            }
            return;
        }
        let Ok(request) = CommandContinuationRequest::basic(None, "idling") else {
            return;
        };
        if server.idle_accept(request).is_ok() {
            self.idling = Some(tag);
            // Anything that changed since the last command goes out at once.
            self.push_updates(server).await;
        }
    }

    async fn selected_changed(&mut self) {
        match self.selected.as_mut() {
            Some(selected) => selected.changed().await,
            None => std::future::pending().await,
        }
    }

    /// Sends what changed in the selected folder as untagged responses.
    async fn push_updates(&mut self, server: &mut Frontend) {
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        match selected.refresh(true).await {
            Ok(updates) => {
                for data in updates {
                    server.enqueue_data(data);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the selected folder"),
        }
    }

    /// Queues the untagged data a command produced, then its tagged status.
    fn finish(
        &mut self,
        server: &mut Frontend,
        tag: Tag<'static>,
        outcome: Outcome,
    ) -> ResponseHandle {
        for untagged in self.pending.drain(..) {
            match untagged {
                Untagged::Data(data) => server.enqueue_data(data),
                Untagged::Status(status) => server.enqueue_status(status),
                Untagged::Raw(bytes) => server.enqueue_raw(bytes),
            };
        }
        if self.logout {
            if let Ok(bye) = Status::bye(None, "graphbridge logging out") {
                server.enqueue_status(bye);
            }
        }
        server.enqueue_status(outcome.into_status(tag))
    }

    fn finish_authenticate(&mut self, server: &mut Frontend, step: commands::authenticate::Step) {
        match step {
            commands::authenticate::Step::Continue(request) => {
                let _ = server.authenticate_continue(request);
            }
            commands::authenticate::Step::Done(tag, outcome) => {
                let _ = server.authenticate_finish(outcome.into_status(tag));
            }
        }
    }

    /// A command imap-codec could not parse: the extended LIST (RFC 5258 syntax, for
    /// LIST-STATUS) is read here; anything else is answered BAD.
    async fn malformed(&mut self, server: &mut Frontend, error: imap_next::server::Error) {
        use imap_next::server::Error;
        if let Error::MalformedMessage { discarded_bytes } = &error {
            let bytes = discarded_bytes.declassify().to_vec();
            if let Some((tag, outcome)) = commands::list::extended(self, &bytes).await {
                self.finish(server, tag, outcome);
                return;
            }
        }
        self.reject_malformed(server, error);
    }

    /// A line imap-codec could not parse: answer BAD (tagged when a tag can be made out) and
    /// keep the session.
    fn reject_malformed(&mut self, server: &mut Frontend, error: imap_next::server::Error) {
        use imap_next::server::Error;
        let (bytes, text) = match &error {
            Error::ExpectedCrlfGotLf { discarded_bytes } => (
                discarded_bytes.declassify().to_vec(),
                "Lines must end with CRLF",
            ),
            Error::MalformedMessage { discarded_bytes } => (
                discarded_bytes.declassify().to_vec(),
                "Unknown command or invalid arguments",
            ),
            // imap-next already answered the tagged BAD for a refused literal.
            Error::LiteralTooLong { .. } => return,
            Error::CommandTooLong { discarded_bytes } => (
                discarded_bytes.declassify().to_vec(),
                "Command line too long",
            ),
        };
        let tag = bytes
            .split(|b| *b == b' ')
            .next()
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| Tag::try_from(t.to_string()).ok());
        // A LITERAL+ literal over the limit is read to its end and dropped (the client does
        // not wait to be told); it arrives here as a malformed command.
        let oversized_literal = matches!(error, Error::MalformedMessage { .. })
            && announced_literal(&bytes).is_some_and(|n| n > u64::from(MAX_LITERAL));
        // A SEARCH RETURN with options this server refuses: say which and why.
        let refusal = server.take_refusal().map(|reason| reason.to_string());
        let text = match (&refusal, oversized_literal) {
            (Some(reason), _) => reason.as_str(),
            (None, true) => "Literal too big",
            (None, false) => text,
        };
        let too_big = oversized_literal || matches!(error, Error::CommandTooLong { .. });
        let code = too_big.then(|| {
            Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(
                &b"TOOBIG"[..],
            ))
        });
        let text = Text::try_from(text).unwrap_or_else(|_| Text::unvalidated("Bad command"));
        let Ok(status) = Status::bad(tag, code, text);
        server.enqueue_status(status.into_static());
    }
}

/// The length of the first literal a command announces (`{n}` or `{n+}` ending its first line).
fn announced_literal(bytes: &[u8]) -> Option<u64> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = bytes[..end].strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = std::str::from_utf8(&line[open + 1..]).ok()?;
    digits.trim_end_matches('+').parse().ok()
}

use imap_next::imap_types::IntoStatic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements() {
        assert_eq!(announced_literal(b"a APPEND x {12+}\r\nabc"), Some(12));
        assert_eq!(
            announced_literal(b"a APPEND x {99999999999}\r\n"),
            Some(99_999_999_999)
        );
        assert_eq!(announced_literal(b"a NOOP\r\n"), None);
        assert_eq!(announced_literal(b"a APPEND x {1a}\r\n"), None);
    }

    #[test]
    fn limits() {
        // RFC 3501 5.4: at least 30 minutes; RFC 2177 clients renew IDLE every 29.
        assert!(IDLE_TIMEOUT >= Duration::from_secs(30 * 60));
        // Exchange Online takes messages up to 35 MB, base64 makes them a third larger.
        assert!(u64::from(MAX_LITERAL) >= 35 * 1_000_000 * 4 / 3);
    }
}
