//! The front of imap-next: ESEARCH (RFC 4731), `[TOOBIG]` for refused literals, and
//! responses encoded outside imap-codec.
//!
//! imap-codec 2.0.0-alpha.10 parses no `SEARCH RETURN (...)` and cannot encode `* ESEARCH`,
//! and imap-next refuses an oversized synchronizing literal itself with a plain `BAD`.
//! [`Frontend`] wraps imap-next's [`Server`] as the state the connection's stream drives:
//!
//! - input: the [`framer`] hands client bytes to the server piece by piece; the first line
//!   of a `tag [UID ]SEARCH RETURN (opts) criteria` command becomes `tag [UID ]SEARCH
//!   criteria`, and the options come back with that command's event
//!   ([`Frontend::take_search_return`]). A malformed or unsupported RETURN is passed on as
//!   sent, so imap-codec refuses it, and the reason is kept for the `BAD`
//!   ([`Frontend::take_refusal`]).
//! - output: bytes encoded outside imap-codec (an ESEARCH answer, or a block of FETCH
//!   responses) take the place of a placeholder `* SEARCH` queued at the same point
//!   ([`Frontend::enqueue_raw`]), so they keep their order among EXISTS, EXPUNGE and the
//!   tagged status; imap-next's refusal of an oversized literal gets `[TOOBIG]`.
//!
//! Nothing else changes: every other byte passes through as it came.

pub mod framer;
pub mod returns;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::response::{
    Code, CodeOther, CommandContinuationRequest, Data, Greeting, Response, Status,
};
use imap_codec::imap_types::ToStatic;
use imap_codec::ResponseCodec;
use imap_next::server::{Error, Event, Options, ResponseHandle, Server};
use imap_next::{Interrupt, Io, State};

pub use framer::{Chunk, Framer};
pub use returns::{encode, Hit, ReturnError, ReturnOptions};

/// Refused-literal answers waiting to be given `[TOOBIG]`; each goes out soon after it is
/// queued, so a handful is plenty, and the bound keeps a confused state from growing.
const MAX_PENDING_REFUSALS: usize = 16;

/// imap-next's server with ESEARCH and `[TOOBIG]` added; see the module documentation.
pub struct Frontend {
    server: Server,
    framer: Framer,
    /// What the command being received asked for, set by its first line.
    armed: Option<Result<ReturnOptions, ReturnError>>,
    /// The RETURN options of the command just received.
    received: Option<ReturnOptions>,
    /// Why the command just refused by imap-codec was a bad `SEARCH RETURN`.
    refusal: Option<ReturnError>,
    /// One entry per queued `* SEARCH`, in order: the bytes that replace it, if any.
    searches: VecDeque<Option<Vec<u8>>>,
    /// imap-next's refusals of oversized literals as it encodes them, and what to send instead.
    refusals: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The text imap-next refuses an oversized literal with.
    reject_text: Text<'static>,
}

impl Frontend {
    pub fn new(options: Options, greeting: Greeting<'static>) -> Frontend {
        let reject_text = options.literal_reject_text().to_static();
        Frontend {
            server: Server::new(options, greeting),
            framer: Framer::default(),
            armed: None,
            received: None,
            refusal: None,
            searches: VecDeque::new(),
            refusals: VecDeque::new(),
            reject_text,
        }
    }

    /// The RETURN options of the command in the `CommandReceived` event just returned, when
    /// it was a `SEARCH RETURN`.
    pub fn take_search_return(&mut self) -> Option<ReturnOptions> {
        self.received.take()
    }

    /// Why the command in the `MalformedMessage` error just returned was refused, when it
    /// was a `SEARCH RETURN` with bad options.
    pub fn take_refusal(&mut self) -> Option<ReturnError> {
        self.refusal.take()
    }

    /// Queues responses encoded elsewhere (an ESEARCH line from [`encode`], FETCH responses),
    /// complete with their CRLFs, at this point of the responses.
    pub fn enqueue_raw(&mut self, responses: Vec<u8>) -> ResponseHandle {
        self.searches.push_back(Some(responses));
        self.server.enqueue_data(Data::Search(Vec::new(), None))
    }

    pub fn enqueue_data(&mut self, data: Data<'static>) -> ResponseHandle {
        if matches!(data, Data::Search(..)) {
            self.searches.push_back(None);
        }
        self.server.enqueue_data(data)
    }

    pub fn enqueue_status(&mut self, status: Status<'static>) -> ResponseHandle {
        self.server.enqueue_status(status)
    }

    pub fn authenticate_continue(
        &mut self,
        request: CommandContinuationRequest<'static>,
    ) -> Result<ResponseHandle, CommandContinuationRequest<'static>> {
        self.server.authenticate_continue(request)
    }

    pub fn authenticate_finish(
        &mut self,
        status: Status<'static>,
    ) -> Result<ResponseHandle, Status<'static>> {
        self.server.authenticate_finish(status)
    }

    pub fn idle_accept(
        &mut self,
        request: CommandContinuationRequest<'static>,
    ) -> Result<ResponseHandle, CommandContinuationRequest<'static>> {
        self.server.idle_accept(request)
    }

    pub fn idle_reject(
        &mut self,
        status: Status<'static>,
    ) -> Result<ResponseHandle, Status<'static>> {
        self.server.idle_reject(status)
    }

    fn feed(&mut self, chunk: Chunk) {
        if chunk.starts_message {
            self.armed = chunk.search;
        }
        self.server.enqueue_input(&chunk.bytes);
    }

    /// Every event that completes a received message settles what its first line armed.
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::GreetingSent { .. } | Event::ResponseSent { .. } => {}
            Event::CommandReceived { .. } => {
                self.received = self.armed.take().and_then(Result::ok);
            }
            Event::CommandAuthenticateReceived { .. }
            | Event::AuthenticateDataReceived { .. }
            | Event::IdleCommandReceived { .. }
            | Event::IdleDoneReceived => {
                self.armed = None;
                self.received = None;
            }
        }
    }

    fn on_error(&mut self, error: &Error) {
        self.received = None;
        self.refusal = self.armed.take().and_then(Result::err);
        if let Error::LiteralTooLong { discarded_bytes } = error {
            self.framer.literal_refused();
            self.expect_refusal(discarded_bytes.declassify());
        }
    }

    /// imap-next has just queued `tag BAD <reject text>` for an oversized synchronizing
    /// literal; remember its bytes so that the `[TOOBIG]` version goes out instead.
    fn expect_refusal(&mut self, message: &[u8]) {
        // imap-next takes the tag as everything before the first space of the message.
        let Some(tag) = message
            .iter()
            .position(|&b| b == b' ' || b == b'\n')
            .filter(|&end| message[end] == b' ')
            .and_then(|end| Tag::try_from(message[..end].to_vec()).ok())
        else {
            return;
        };
        let text = self.reject_text.clone();
        let too_big = Code::Other(CodeOther::unvalidated(&b"TOOBIG"[..]));
        // With a `Text` (already validated) building a BAD cannot fail.
        let Ok(plain) = Status::bad(Some(tag.clone()), None, text.clone());
        let Ok(coded) = Status::bad(Some(tag), Some(too_big), text);
        let codec = ResponseCodec::default();
        let expected = codec.encode(&Response::Status(plain)).dump();
        let replacement = codec.encode(&Response::Status(coded)).dump();
        if self.refusals.len() == MAX_PENDING_REFUSALS {
            self.refusals.pop_front();
        }
        self.refusals.push_back((expected, replacement));
    }

    /// Output of one queued response: an ESEARCH placeholder or a refused-literal answer is
    /// replaced; anything else goes out as encoded.
    fn rewrite_output(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        if is_search_response(&bytes) {
            if let Some(Some(line)) = self.searches.pop_front() {
                return line;
            }
            return bytes;
        }
        if self
            .refusals
            .front()
            .is_some_and(|(expected, _)| *expected == bytes)
        {
            if let Some((_, replacement)) = self.refusals.pop_front() {
                return replacement;
            }
        }
        bytes
    }
}

/// Whether encoded response bytes are a `* SEARCH` response.
fn is_search_response(bytes: &[u8]) -> bool {
    bytes
        .strip_prefix(b"* SEARCH")
        .is_some_and(|rest| matches!(rest.first(), Some(b' ' | b'\r')))
}

impl State for Frontend {
    type Event = Event;
    type Error = Error;

    fn enqueue_input(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    fn next(&mut self) -> Result<Event, Interrupt<Error>> {
        loop {
            match self.server.next() {
                Ok(event) => {
                    self.on_event(&event);
                    return Ok(event);
                }
                Err(Interrupt::Io(Io::Output(bytes))) => {
                    return Err(Interrupt::Io(Io::Output(self.rewrite_output(bytes))));
                }
                // imap-next has consumed everything handed to it: hand it the next piece.
                Err(Interrupt::Io(Io::NeedMoreInput)) => match self.framer.next_chunk() {
                    Some(chunk) => self.feed(chunk),
                    None => return Err(Interrupt::Io(Io::NeedMoreInput)),
                },
                Err(Interrupt::Error(error)) => {
                    self.on_error(&error);
                    return Err(Interrupt::Error(error));
                }
            }
        }
    }
}
