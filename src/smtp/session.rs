//! One SMTP connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{
    BdatReceiver, DataReceiver, DummyDataReceiver, RequestReceiver,
};
use smtp_proto::{Error as ParseError, Request, AUTH_LOGIN, AUTH_PLAIN};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::conn::Conn;
use crate::auth::{self, AuthError, Login};
use crate::bridge::{Bridge, BridgeError};
use crate::mailstore::MailboxRecord;
use crate::submission::outbox::{self, Immediate};
use crate::submission::{self, Envelope};

/// RFC 5321 4.5.3.2: the server should wait at least 5 minutes for the next command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Most recipients one transaction takes (RFC 5321 asks servers to take at least 100). The
/// Microsoft 365 limit is checked on the whole message, so it can name all of them.
const MAX_RECIPIENTS: usize = 100;

enum Phase {
    Command,
    Data(DataReceiver),
    /// The message grew past the size limit: read to its end, then refuse it.
    Discard(DummyDataReceiver),
    Bdat(BdatReceiver, bool),
    /// A BDAT chunk read only to stay in step: of a message already past the size limit
    /// (Some(last)), or of a refused BDAT command (None: already answered).
    BdatDiscard(DummyDataReceiver, Option<bool>),
    /// AUTH PLAIN without initial response: waiting for the base64 line.
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword(String),
}

struct Session {
    bridge: Arc<Bridge>,
    peer: SocketAddr,
    tls: bool,
    can_starttls: bool,
    helo: bool,
    login: Option<Login>,
    mail_from: Option<String>,
    recipients: Vec<String>,
    message: Vec<u8>,
    /// The message in progress went past the size limit (BDAT keeps reading to its end).
    oversize: bool,
    out: Vec<u8>,
    quit: bool,
    /// STARTTLS was accepted: the handshake follows the reply.
    start_tls: bool,
}

pub async fn run(
    bridge: Arc<Bridge>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    implicit: bool,
) -> std::io::Result<()> {
    let mut conn = Conn::Plain(tcp);
    if implicit {
        let Some(acceptor) = &tls else {
            return Ok(());
        };
        conn.upgrade(acceptor).await?;
    }
    let mut session = Session {
        bridge,
        peer,
        tls: conn.is_tls(),
        can_starttls: tls.is_some() && !conn.is_tls(),
        helo: false,
        login: None,
        mail_from: None,
        recipients: Vec::new(),
        message: Vec::new(),
        oversize: false,
        out: Vec::new(),
        quit: false,
        start_tls: false,
    };
    conn.write_all(b"220 graphbridge ESMTP submission ready\r\n")
        .await?;
    let mut receiver = RequestReceiver::default();
    let mut phase = Phase::Command;
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(COMMAND_TIMEOUT, conn.read(&mut buf)).await {
            Ok(read) => read?,
            Err(_) => {
                conn.write_all(b"421 4.4.2 Idle for too long, closing\r\n")
                    .await?;
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        let mut bytes = buf[..n].iter();
        while !bytes.as_slice().is_empty() {
            phase = session
                .step(phase, &mut receiver, &mut bytes, &mut line)
                .await;
            if !session.out.is_empty() {
                conn.write_all(&session.out).await?;
                session.out.clear();
            }
            if session.quit {
                return Ok(());
            }
            if session.start_tls {
                break;
            }
        }
        if session.start_tls {
            // RFC 3207: anything the client pipelined after STARTTLS is discarded.
            let Some(acceptor) = &tls else {
                return Ok(());
            };
            conn.upgrade(acceptor).await?;
            session.after_tls();
            receiver = RequestReceiver::default();
            phase = Phase::Command;
            line.clear();
        }
    }
}

impl Session {
    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
        self.message.clear();
        self.oversize = false;
    }

    /// RFC 3207: after the handshake the client starts over with EHLO.
    fn after_tls(&mut self) {
        self.reset();
        self.tls = true;
        self.can_starttls = false;
        self.start_tls = false;
        self.helo = false;
        self.login = None;
    }

    /// AUTH needs TLS unless the configuration or a loopback peer says otherwise.
    fn auth_allowed(&self) -> bool {
        let smtp = &self.bridge.config.smtp;
        self.tls
            || !smtp.require_tls_for_auth
            || (smtp.allow_plain_auth_on_loopback && self.peer.ip().is_loopback())
    }

    /// The largest message this session takes: the server's, lowered by the logged-in
    /// mailbox's policy.
    fn size_limit(&self) -> usize {
        let server = self.bridge.config.smtp.max_message_bytes;
        match &self.login {
            Some(login) => server.min(
                crate::submission::policy::for_mailbox(&self.bridge, &login.primary)
                    .max_message_bytes,
            ),
            None => server,
        }
    }

    /// Consumes as much of `bytes` as the current phase takes and returns the next phase.
    async fn step(
        &mut self,
        phase: Phase,
        receiver: &mut RequestReceiver,
        bytes: &mut std::slice::Iter<'_, u8>,
        line: &mut Vec<u8>,
    ) -> Phase {
        match phase {
            Phase::Command => match receiver.ingest(bytes) {
                Ok(request) => {
                    let request = request.into_owned();
                    self.command(request).await
                }
                Err(ParseError::NeedsMoreData { .. }) => Phase::Command,
                Err(e) => {
                    self.syntax_error(e);
                    Phase::Command
                }
            },
            Phase::Data(mut data) => {
                let done = data.ingest(bytes, &mut self.message);
                if done {
                    self.finish_message().await;
                    Phase::Command
                } else if self.message.len() > self.size_limit() {
                    self.message.clear();
                    Phase::Discard(DummyDataReceiver::new_data(&data))
                } else {
                    Phase::Data(data)
                }
            }
            Phase::Discard(mut dummy) => {
                if dummy.ingest(bytes) {
                    self.refuse_oversize();
                    Phase::Command
                } else {
                    Phase::Discard(dummy)
                }
            }
            Phase::Bdat(mut chunk, last) => {
                if chunk.ingest(bytes, &mut self.message) {
                    self.end_chunk(last).await;
                    Phase::Command
                } else {
                    Phase::Bdat(chunk, last)
                }
            }
            Phase::BdatDiscard(mut dummy, last) => {
                if dummy.ingest(bytes) {
                    if let Some(last) = last {
                        self.end_chunk(last).await;
                    }
                    Phase::Command
                } else {
                    Phase::BdatDiscard(dummy, last)
                }
            }
            Phase::AuthPlain | Phase::AuthLoginUser | Phase::AuthLoginPassword(_) => {
                let Some(text) = take_line(bytes, line) else {
                    return phase;
                };
                self.auth_continue(phase, &text).await
            }
        }
    }

    fn refuse_oversize(&mut self) {
        let limit = self.size_limit();
        self.reply(&format!(
            "552 5.3.4 Message exceeds the limit of {limit} bytes"
        ));
        self.reset();
    }

    fn syntax_error(&mut self, error: ParseError) {
        let text = match error {
            ParseError::UnknownCommand => "500 5.5.1 Unknown command".to_string(),
            ParseError::ResponseTooLong => "500 5.5.2 Line too long".to_string(),
            ParseError::InvalidSenderAddress => "501 5.1.7 Invalid sender address".to_string(),
            ParseError::InvalidRecipientAddress => {
                "501 5.1.3 Invalid recipient address".to_string()
            }
            ParseError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
            ParseError::InvalidParameter { param } => {
                format!("501 5.5.4 Invalid parameter {param}")
            }
            ParseError::UnsupportedParameter { param } => {
                format!("555 5.5.4 Unsupported parameter {param}")
            }
            _ => "500 5.5.2 Syntax error".to_string(),
        };
        self.reply(&text);
    }

    async fn command(&mut self, request: Request<String>) -> Phase {
        match request {
            Request::Ehlo { host } => self.ehlo(&host),
            Request::Helo { host } => {
                self.helo = true;
                self.reset();
                self.reply(&format!("250 graphbridge greets {host}"));
            }
            Request::Lhlo { .. } => self.reply("500 5.5.1 This is a submission server, not LMTP"),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth_start(mechanism, initial_response).await,
            Request::Mail { from } => self.mail(from.address, from.size).await,
            Request::Rcpt { to } => self.rcpt(to.address),
            Request::Data => return self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.reset();
                self.reply("250 2.0.0 Reset");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 OK"),
            Request::Quit => {
                self.reply("221 2.0.0 Bye");
                self.quit = true;
            }
            Request::Vrfy { .. } | Request::Expn { .. } => {
                self.reply("252 2.5.2 Cannot verify; send and see")
            }
            Request::Help { .. } => self.reply("214 2.0.0 See RFC 6409"),
            _ => self.reply("502 5.5.1 Command not implemented"),
        }
        Phase::Command
    }

    fn ehlo(&mut self, host: &str) {
        self.helo = true;
        self.reset();
        let limit = self.size_limit();
        self.reply(&format!("250-graphbridge greets {host}"));
        self.reply(&format!("250-SIZE {limit}"));
        self.reply("250-8BITMIME");
        self.reply("250-SMTPUTF8");
        self.reply("250-PIPELINING");
        self.reply("250-CHUNKING");
        if self.can_starttls {
            self.reply("250-STARTTLS");
        }
        if self.auth_allowed() && self.login.is_none() {
            self.reply("250-AUTH PLAIN LOGIN");
        }
        self.reply("250 ENHANCEDSTATUSCODES");
    }

    fn starttls(&mut self) {
        if self.tls {
            return self.reply("503 5.5.1 TLS is already active");
        }
        if !self.can_starttls {
            return self.reply("454 4.7.0 TLS not available");
        }
        self.reply("220 2.0.0 Ready to start TLS");
        self.start_tls = true;
    }

    async fn mail(&mut self, from: String, declared_size: usize) {
        let Some(mailbox) = self.login.as_ref().map(|l| l.primary.clone()) else {
            return self.reply("530 5.7.0 Authentication required");
        };
        if !self.helo {
            return self.reply("503 5.5.1 Say EHLO first");
        }
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 MAIL already given");
        }
        if let Some(refusal) = signin_refusal(&self.bridge, &mailbox).await {
            return self.reply(&refusal);
        }
        let limit = self.size_limit();
        if declared_size > limit {
            return self.reply(&format!(
                "552 5.3.4 Message size exceeds the limit of {limit} bytes"
            ));
        }
        self.mail_from = Some(from);
        self.message.clear();
        self.oversize = false;
        self.reply("250 2.1.0 Sender OK");
    }

    fn rcpt(&mut self, to: String) {
        if self.mail_from.is_none() {
            return self.reply("503 5.5.1 MAIL first");
        }
        if self.recipients.len() >= MAX_RECIPIENTS {
            return self.reply("452 4.5.3 Too many recipients");
        }
        if !self.recipients.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
            self.recipients.push(to);
        }
        self.reply("250 2.1.5 Recipient OK");
    }

    fn data(&mut self) -> Phase {
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 MAIL first");
            return Phase::Command;
        }
        if self.recipients.is_empty() {
            self.reply("554 5.5.1 No valid recipients");
            return Phase::Command;
        }
        if !self.message.is_empty() {
            self.reply("503 5.5.1 BDAT already started; DATA cannot follow");
            return Phase::Command;
        }
        self.reply("354 Go ahead, end with <CRLF>.<CRLF>");
        Phase::Data(DataReceiver::new())
    }

    /// RFC 3030: the chunk is read even when the command is refused, so the stream stays in
    /// step; the refusal is the reply to the chunk.
    async fn bdat(&mut self, size: usize, last: bool) -> Phase {
        let refusal = if self.mail_from.is_none() {
            Some("503 5.5.1 MAIL first")
        } else if self.recipients.is_empty() {
            Some("554 5.5.1 No valid recipients")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.reply(refusal);
            return match size {
                0 => Phase::Command,
                _ => Phase::BdatDiscard(DummyDataReceiver::new_bdat(size), None),
            };
        }
        if self.oversize || self.message.len().saturating_add(size) > self.size_limit() {
            self.oversize = true;
            self.message.clear();
            if size == 0 {
                self.end_chunk(last).await;
                return Phase::Command;
            }
            return Phase::BdatDiscard(DummyDataReceiver::new_bdat(size), Some(last));
        }
        if size == 0 {
            self.end_chunk(last).await;
            return Phase::Command;
        }
        Phase::Bdat(BdatReceiver::new(size, last), last)
    }

    async fn end_chunk(&mut self, last: bool) {
        if !last {
            let n = self.message.len();
            return self.reply(&format!("250 2.0.0 {n} octets received"));
        }
        if self.oversize || self.mail_from.is_none() {
            if self.mail_from.is_some() {
                self.refuse_oversize();
            }
            return;
        }
        self.finish_message().await;
    }

    /// Queues the message (durably), tries it at once, and answers.
    async fn finish_message(&mut self) {
        let (Some(login), Some(mail_from)) = (self.login.clone(), self.mail_from.clone()) else {
            self.reply("503 5.5.1 MAIL first");
            return;
        };
        let envelope = Envelope {
            mail_from,
            recipients: self.recipients.clone(),
        };
        let message = std::mem::take(&mut self.message);
        let result = submission::submit(&self.bridge, &login, &envelope, &message).await;
        self.reset();
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                if matches!(
                    e,
                    submission::SubmitError::Store(_) | submission::SubmitError::Links(_)
                ) {
                    tracing::error!(error = %e, "cannot queue a message");
                }
                return self.reply(&e.smtp_reply());
            }
        };
        outbox::crash_point("after_enqueue");
        let wait = Duration::from_secs(self.bridge.config.smtp.send_wait_secs);
        match outbox::send_now(&self.bridge, id, wait).await {
            Immediate::Sent => self.reply(&format!("250 2.0.0 Sent as {id}")),
            Immediate::Queued => self.reply(&format!("250 2.0.0 Queued as {id}")),
            Immediate::Refused(reply) => self.reply(&reply),
        }
    }

    async fn auth_start(&mut self, mechanism: u64, initial: String) -> Phase {
        if self.login.is_some() {
            self.reply("503 5.5.1 Already authenticated");
            return Phase::Command;
        }
        if !self.auth_allowed() {
            self.reply("538 5.7.11 Encryption required: use STARTTLS first");
            return Phase::Command;
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.reply("334 ");
                Phase::AuthPlain
            }
            AUTH_PLAIN => self.auth_continue(Phase::AuthPlain, &initial).await,
            AUTH_LOGIN if initial.is_empty() => {
                self.reply("334 VXNlcm5hbWU6");
                Phase::AuthLoginUser
            }
            AUTH_LOGIN => self.auth_continue(Phase::AuthLoginUser, &initial).await,
            _ => {
                self.reply("504 5.5.4 Unrecognized authentication mechanism");
                Phase::Command
            }
        }
    }

    async fn auth_continue(&mut self, phase: Phase, text: &str) -> Phase {
        if text == "*" {
            self.reply("501 5.0.0 Authentication cancelled");
            return Phase::Command;
        }
        let Ok(decoded) = auth::decode_base64(text) else {
            self.reply("501 5.5.2 Invalid base64");
            return Phase::Command;
        };
        match phase {
            Phase::AuthPlain => match auth::decode_sasl_plain(&decoded) {
                Ok(plain) => {
                    self.finish_auth(&plain.authcid, &plain.password, plain.authzid.as_deref())
                        .await
                }
                Err(_) => self.reply("501 5.5.2 Malformed PLAIN response"),
            },
            Phase::AuthLoginUser => {
                self.reply("334 UGFzc3dvcmQ6");
                return Phase::AuthLoginPassword(String::from_utf8_lossy(&decoded).into_owned());
            }
            Phase::AuthLoginPassword(user) => {
                let password = String::from_utf8_lossy(&decoded).into_owned();
                self.finish_auth(&user, &password, None).await
            }
            _ => self.reply("503 5.5.1 No authentication in progress"),
        }
        Phase::Command
    }

    async fn finish_auth(&mut self, user: &str, password: &str, authzid: Option<&str>) {
        match auth::authenticate(&self.bridge.store, user, password, authzid).await {
            Ok(login) => {
                self.login = Some(login);
                self.reply("235 2.7.0 Authentication successful");
            }
            Err(AuthError::BadCredentials) | Err(AuthError::Malformed) => {
                tracing::info!(peer = %self.peer, user, "SMTP login failed");
                tokio::time::sleep(FAILURE_DELAY).await;
                self.reply("535 5.7.8 Invalid user name or password");
            }
            Err(e @ (AuthError::NotAssigned { .. } | AuthError::NoMailbox(_))) => {
                self.reply(&format!("535 5.7.8 {e}"))
            }
            Err(AuthError::Store(e)) => {
                tracing::error!(error = %e, "store failed during login");
                self.reply("454 4.7.0 Temporary authentication failure");
            }
        }
    }
}

/// Takes one CRLF- (or LF-) terminated line from `bytes`, buffering partial lines in `line`.
fn take_line(bytes: &mut std::slice::Iter<'_, u8>, line: &mut Vec<u8>) -> Option<String> {
    for &b in bytes.by_ref() {
        if b == b'\n' {
            let text = String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string();
            line.clear();
            return Some(text);
        }
        if line.len() < 16 * 1024 {
            line.push(b);
        }
    }
    None
}

/// The answer to MAIL when the mailbox has no usable Microsoft sign-in: a message accepted now
/// could only fail later in the outbox. Temporary (4xx), as an administrator can fix it.
async fn signin_refusal(bridge: &Bridge, mailbox: &MailboxRecord) -> Option<String> {
    match bridge.sync_or_attach(mailbox).await {
        Ok(sync) if !sync.needs_signin() => None,
        Ok(_) | Err(BridgeError::NotSignedIn(_)) => Some(format!(
            "451 4.7.0 {} has no usable Microsoft sign-in; an administrator must run `graphbridge mailbox signin {}`",
            mailbox.address, mailbox.address
        )),
        Err(e) => Some(format!("451 4.7.0 {e}")),
    }
}
