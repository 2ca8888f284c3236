use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::response::{CommandContinuationRequest, Greeting, Status};
use imap_codec::{decode::Decoder, CommandCodec};
use imap_next::server::{Error, Event, Options};
use imap_next::{Interrupt, Io, State};

use super::returns::{match_head, rewrite, Head};
use super::*;

/// A command stream mixing everything the framer must leave alone with SEARCH RETURNs.
const STREAM: &[u8] = b"a1 SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n\
a2 APPEND INBOX {28}\r\na3 SEARCH RETURN (MIN) ALL\r\n\r\n\
a4 uid search return () UNSEEN\r\n\
a5 APPEND INBOX {17+}\r\nX SEARCH RETURN\r\n\r\n\
a6 NOOP\r\n\
a7 SEARCH RETURN (SAVE) ALL\r\n\
a8 SEARCH RETURN (COUNT) SUBJECT {3}\r\nabc\r\n\
a9 SEARCH RETURN (MIN FOO) ALL\r\n\
b1 SEARCH ALL\r\n";

/// What imap-next should receive for [`STREAM`].
const PLAIN: &[u8] = b"a1 SEARCH ALL\r\n\
a2 APPEND INBOX {28}\r\na3 SEARCH RETURN (MIN) ALL\r\n\r\n\
a4 uid search UNSEEN\r\n\
a5 APPEND INBOX {17+}\r\nX SEARCH RETURN\r\n\r\n\
a6 NOOP\r\n\
a7 SEARCH RETURN (SAVE) ALL\r\n\
a8 SEARCH SUBJECT {3}\r\nabc\r\n\
a9 SEARCH RETURN (MIN FOO) ALL\r\n\
b1 SEARCH ALL\r\n";

fn options(min: bool, max: bool, count: bool, all: bool) -> ReturnOptions {
    ReturnOptions {
        min,
        max,
        count,
        all,
    }
}

/// The RETURN outcomes the framer reports for [`STREAM`], in order.
fn expected_searches() -> Vec<Result<ReturnOptions, ReturnError>> {
    vec![
        Ok(options(true, true, true, true)),
        Ok(options(false, false, false, true)),
        Err(ReturnError::Save),
        Ok(options(false, false, true, false)),
        Err(ReturnError::Unknown("FOO".into())),
    ]
}

/// Everything the framer hands on until it needs input, as a server that accepts every
/// literal would take it.
fn drain(
    framer: &mut Framer,
    out: &mut Vec<u8>,
    searches: &mut Vec<Result<ReturnOptions, ReturnError>>,
) {
    while let Some(chunk) = framer.next_chunk() {
        out.extend_from_slice(&chunk.bytes);
        searches.extend(chunk.search);
    }
}

#[test]
fn framer_rewrites_only_search_return_first_lines_split_anywhere() {
    for split in 0..=STREAM.len() {
        let mut framer = Framer::default();
        let (mut out, mut searches) = (Vec::new(), Vec::new());
        framer.push(&STREAM[..split]);
        drain(&mut framer, &mut out, &mut searches);
        framer.push(&STREAM[split..]);
        drain(&mut framer, &mut out, &mut searches);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(PLAIN),
            "split at {split}"
        );
        assert_eq!(searches, expected_searches(), "split at {split}");
    }
}

#[test]
fn framer_byte_by_byte() {
    let mut framer = Framer::default();
    let (mut out, mut searches) = (Vec::new(), Vec::new());
    for byte in STREAM {
        framer.push(&[*byte]);
        drain(&mut framer, &mut out, &mut searches);
    }
    assert_eq!(out, PLAIN);
    assert_eq!(searches, expected_searches());
}

#[test]
fn refused_literal_is_not_skipped() {
    let mut framer = Framer::default();
    framer.push(b"t1 APPEND INBOX {999999999}\r\nt2 SEARCH RETURN (COUNT) ALL\r\n");
    let first = framer.next_chunk().expect("the APPEND line");
    assert_eq!(first.bytes, b"t1 APPEND INBOX {999999999}\r\n");
    framer.literal_refused();
    let second = framer.next_chunk().expect("the next command");
    assert_eq!(second.bytes, b"t2 SEARCH ALL\r\n");
    assert_eq!(second.search, Some(Ok(options(false, false, true, false))));
}

#[test]
fn literal_announcements_as_imap_next_sees_them() {
    for (line, literal) in [
        (&b"a X {5}\r\n"[..], Some(5)),
        (b"a X {5+}\r\n", Some(5)),
        (b"a X {5}\n", Some(5)),
        (b"a X {005}\r\n", Some(5)),
        (b"a X {12{5}\r\n", Some(5)),
        (b"a X {5}\r\r\n", None),
        (b"a X {5} \r\n", None),
        (b"a X {+5}\r\n", None),
        (b"a X {5++}\r\n", None),
        (b"a X {}\r\n", None),
        (b"a X {99999999999}\r\n", None),
    ] {
        let mut framer = Framer::default();
        framer.push(line);
        let chunk = framer.next_chunk().expect("the line");
        assert_eq!(chunk.bytes, line);
        // A literal of 5 takes 5 of the next bytes; a new command is held (all tag chars).
        framer.push(b"0123456789");
        let next = framer.next_chunk().map(|c| c.bytes.len() as u32);
        assert_eq!(next, literal, "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn search_return_heads() {
    assert!(matches!(
        match_head(b"a SEARCH RETURN (MIN) ALL\r\n"),
        Head::Matched { .. }
    ));
    assert!(matches!(
        match_head(b"tag.1 Uid SeArCh return (MIN) ALL"),
        Head::Matched { .. }
    ));
    for partial in [&b""[..], b"a", b"a ", b"a U", b"a UID S", b"a SEARCH RET"] {
        assert_eq!(match_head(partial), Head::NeedMore, "{partial:?}");
    }
    for other in [
        &b"a SEARCH ALL\r\n"[..],
        b"a UIDX",
        b"a FETCH 1 RETURN",
        b"+ SEARCH RETURN",
        b"a  SEARCH RETURN (MIN) ALL",
        b"a SEARCH RETURNED",
        b"* SEARCH RETURN",
    ] {
        assert_eq!(match_head(other), Head::No, "{other:?}");
    }
}

fn rewritten(line: &[u8]) -> Result<(String, ReturnOptions), ReturnError> {
    let Head::Matched {
        search_end,
        options_at,
    } = match_head(line)
    else {
        panic!("not a SEARCH RETURN: {line:?}");
    };
    rewrite(line, search_end, options_at).map(|(l, o)| (String::from_utf8_lossy(&l).into(), o))
}

#[test]
fn return_options_parse_or_give_a_reason() {
    assert_eq!(
        rewritten(b"a SEARCH RETURN (min Max COUNT all) CHARSET UTF-8 ALL\r\n"),
        Ok((
            "a SEARCH CHARSET UTF-8 ALL\r\n".into(),
            options(true, true, true, true)
        ))
    );
    assert_eq!(
        rewritten(b"a UID SEARCH RETURN () 1:*\r\n"),
        Ok((
            "a UID SEARCH 1:*\r\n".into(),
            options(false, false, false, true)
        ))
    );
    for (line, error) in [
        (&b"a SEARCH RETURN (SAVE) ALL\r\n"[..], ReturnError::Save),
        (b"a SEARCH RETURN (MIN SAVE) ALL\r\n", ReturnError::Save),
        (
            b"a SEARCH RETURN (PARTIAL 1:5) ALL\r\n",
            ReturnError::Unknown("PARTIAL".into()),
        ),
        (b"a SEARCH RETURN MIN ALL\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN (MIN ALL\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN (MIN  MAX) ALL\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN ( MIN) ALL\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN (MIN)ALL\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN\r\n", ReturnError::Syntax),
        (b"a SEARCH RETURN (MIN)\r\n", ReturnError::NoCriteria),
        (b"a SEARCH RETURN (MIN) \r\n", ReturnError::NoCriteria),
    ] {
        assert_eq!(
            rewritten(line),
            Err(error),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn imap_codec_refuses_search_return_as_sent() {
    // A refused SEARCH RETURN is passed on unchanged so that imap-codec refuses it.
    for line in [
        &b"a SEARCH RETURN (SAVE) ALL\r\n"[..],
        b"a UID SEARCH RETURN (MIN FOO) ALL\r\n",
        b"a SEARCH RETURN ALL\r\n",
    ] {
        assert!(CommandCodec::default().decode(line).is_err(), "{line:?}");
    }
}

fn hits(numbers: &[(u32, u64)]) -> Vec<Hit> {
    numbers
        .iter()
        .map(|&(number, modseq)| Hit { number, modseq })
        .collect()
}

#[test]
fn esearch_lines() {
    let found = hits(&[(7, 10), (2, 30), (3, 5), (4, 1), (9, 2)]);
    let line = |tag, uid, o, h: &[Hit], m| String::from_utf8(encode(tag, uid, o, h, m)).unwrap();
    assert_eq!(
        line("a1", false, options(true, true, true, true), &found, false),
        "* ESEARCH (TAG \"a1\") MIN 2 MAX 9 COUNT 5 ALL 2:4,7,9\r\n"
    );
    assert_eq!(
        line("a2", true, options(false, false, false, true), &found, true),
        "* ESEARCH (TAG \"a2\") UID ALL 2:4,7,9 MODSEQ 30\r\n"
    );
    // MIN alone returns one message, and so its MODSEQ.
    assert_eq!(
        line(
            "a3",
            false,
            options(true, false, false, false),
            &found,
            true
        ),
        "* ESEARCH (TAG \"a3\") MIN 2 MODSEQ 30\r\n"
    );
    assert_eq!(
        line(
            "a4",
            false,
            options(false, true, false, false),
            &found,
            true
        ),
        "* ESEARCH (TAG \"a4\") MAX 9 MODSEQ 2\r\n"
    );
    // No match: MIN, MAX and ALL are left out, COUNT is 0, no MODSEQ.
    assert_eq!(
        line("a5", true, options(true, true, true, true), &[], true),
        "* ESEARCH (TAG \"a5\") UID COUNT 0\r\n"
    );
    assert_eq!(
        line("a6", false, options(true, false, false, false), &[], false),
        "* ESEARCH (TAG \"a6\")\r\n"
    );
    let run: Vec<Hit> = (1..=100_000)
        .map(|n| Hit {
            number: n,
            modseq: 1,
        })
        .collect();
    assert_eq!(
        line("a7", false, options(false, false, false, true), &run, false),
        "* ESEARCH (TAG \"a7\") ALL 1:100000\r\n"
    );
}

/// A small session over the frontend: SEARCH finds messages 2, 3, 4 and 7; APPEND records
/// the message; every command is answered OK.
struct Harness {
    frontend: Frontend,
    output: Vec<u8>,
    appended: Vec<Vec<u8>>,
}

impl Harness {
    fn new(max_literal: u32) -> Harness {
        let mut options = Options::default();
        options.max_literal_size = max_literal;
        options.max_command_size = max_literal + 1024;
        let _ = options.set_literal_reject_text("Literal too big".into());
        let greeting = Greeting::ok(None, "ready").expect("greeting");
        Harness {
            frontend: Frontend::new(options, greeting),
            output: Vec::new(),
            appended: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.frontend.enqueue_input(bytes);
        loop {
            match self.frontend.next() {
                Ok(event) => self.handle(event),
                Err(Interrupt::Io(Io::Output(bytes))) => self.output.extend(bytes),
                Err(Interrupt::Io(Io::NeedMoreInput)) => return,
                Err(Interrupt::Error(error)) => self.refuse(error),
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::CommandReceived { command } => {
                self.command(command.tag.clone(), command.body);
                let status = Status::ok(Some(command.tag), None, "done").expect("status");
                self.frontend.enqueue_status(status);
            }
            Event::IdleCommandReceived { .. } => {
                let request = CommandContinuationRequest::basic(None, "idling").expect("ccr");
                let _ = self.frontend.idle_accept(request);
            }
            Event::IdleDoneReceived => {
                let status = Status::ok(None, None, "idle done").expect("status");
                self.frontend.enqueue_status(status);
            }
            Event::CommandAuthenticateReceived { .. } => {
                let request = CommandContinuationRequest::basic(None, "go on").expect("ccr");
                let _ = self.frontend.authenticate_continue(request);
            }
            Event::AuthenticateDataReceived { .. } => {
                let status = Status::no(None, None, "no such user").expect("status");
                let _ = self.frontend.authenticate_finish(status);
            }
            Event::GreetingSent { .. } | Event::ResponseSent { .. } => {}
        }
    }

    fn command(&mut self, tag: Tag<'static>, body: CommandBody<'static>) {
        match body {
            CommandBody::Search { uid, .. } => {
                let found = hits(&[(2, 1), (3, 1), (4, 1), (7, 1)]);
                match self.frontend.take_search_return() {
                    Some(options) => {
                        let line = encode(tag.as_ref(), uid, options, &found, false);
                        self.frontend.enqueue_raw(line);
                    }
                    None => {
                        let numbers = found
                            .iter()
                            .filter_map(|h| std::num::NonZeroU32::new(h.number))
                            .collect();
                        self.frontend.enqueue_data(Data::Search(numbers, None));
                    }
                }
            }
            CommandBody::Append { message, .. } => {
                let bytes = match message {
                    LiteralOrLiteral8::Literal(l) => l.as_ref().to_vec(),
                    LiteralOrLiteral8::Literal8(l) => l.data.as_ref().to_vec(),
                };
                self.appended.push(bytes);
            }
            _ => {}
        }
    }

    fn refuse(&mut self, error: Error) {
        if matches!(error, Error::LiteralTooLong { .. }) {
            return;
        }
        let text = self
            .frontend
            .take_refusal()
            .map_or("malformed".to_string(), |e| e.to_string());
        let status = Status::bad(None, None, text).expect("status");
        self.frontend.enqueue_status(status);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

const SESSION: &[u8] = b"a1 SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n\
a2 APPEND INBOX {28+}\r\nb1 SEARCH RETURN (MIN) ALL\r\n\r\n\
a3 UID SEARCH RETURN () ALL\r\n\
a4 SEARCH ALL\r\n\
a5 SEARCH RETURN (SAVE) ALL\r\n\
a6 IDLE\r\nDONE\r\n\
a7 AUTHENTICATE PLAIN\r\nAGZvbwBiYXI=\r\n\
a8 SEARCH RETURN (COUNT) ALL\r\n";

fn check_session(harness: &Harness) {
    let text = harness.text();
    let expected = [
        "* ESEARCH (TAG \"a1\") MIN 2 MAX 7 COUNT 4 ALL 2:4,7\r\na1 OK",
        "a2 OK",
        "* ESEARCH (TAG \"a3\") UID ALL 2:4,7\r\na3 OK",
        "* SEARCH 2 3 4 7\r\na4 OK",
        "BAD SEARCH RETURN (SAVE) needs SEARCHRES",
        "+ idling\r\n* OK idle done",
        "+ go on\r\n* NO no such user",
        "* ESEARCH (TAG \"a8\") COUNT 4\r\na8 OK",
    ];
    let mut from = 0;
    for piece in expected {
        let at = text[from..]
            .find(piece)
            .unwrap_or_else(|| panic!("{piece:?} not in order in:\n{text}"));
        from += at + piece.len();
    }
    assert_eq!(
        harness.appended,
        vec![b"b1 SEARCH RETURN (MIN) ALL\r\n".to_vec()]
    );
    assert!(!text.contains("b1"), "{text}");
}

#[test]
fn frontend_session_split_at_every_position() {
    for split in 0..=SESSION.len() {
        let mut harness = Harness::new(1024);
        harness.send(&SESSION[..split]);
        harness.send(&SESSION[split..]);
        check_session(&harness);
    }
}

#[test]
fn frontend_session_byte_by_byte() {
    let mut harness = Harness::new(1024);
    for byte in SESSION {
        harness.send(&[*byte]);
    }
    check_session(&harness);
}

#[test]
fn oversized_synchronizing_literal_gets_toobig() {
    let mut harness = Harness::new(64);
    harness.send(b"t1 APPEND INBOX {65}\r\nt2 SEARCH RETURN (COUNT) ALL\r\n");
    // LITERAL+ over the limit: read to its end and dropped by imap-next.
    let mut big = b"t3 APPEND INBOX {70+}\r\n".to_vec();
    big.extend_from_slice(&[b'x'; 70]);
    big.extend_from_slice(b"\r\nt4 NOOP\r\nt5 APPEND INBOX {3}\r\n");
    harness.send(&big);
    harness.send(b"abc\r\n");
    let text = harness.text();
    assert!(
        text.contains("t1 BAD [TOOBIG] Literal too big\r\n"),
        "{text}"
    );
    assert!(
        text.contains("* ESEARCH (TAG \"t2\") COUNT 4\r\nt2 OK"),
        "{text}"
    );
    assert!(text.contains("t4 OK"), "{text}");
    assert!(text.contains("t5 OK"), "{text}");
    assert_eq!(harness.appended, vec![b"abc".to_vec()]);
}

#[test]
fn the_esearch_placeholder_is_told_apart_from_plain_search() {
    // An empty plain SEARCH queued before an ESEARCH keeps its own answer.
    let mut harness = Harness::new(1024);
    harness.send(b"");
    harness
        .frontend
        .enqueue_data(Data::Search(Vec::new(), None));
    harness
        .frontend
        .enqueue_raw(b"* ESEARCH (TAG \"x\") COUNT 0\r\n".to_vec());
    harness.send(b"");
    assert!(
        harness
            .text()
            .ends_with("* SEARCH\r\n* ESEARCH (TAG \"x\") COUNT 0\r\n"),
        "{}",
        harness.text()
    );
}
