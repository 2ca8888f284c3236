//! Fuzz harnesses for graphbridge, one function per target. They are plain functions so that
//! the main crate's `tests/fuzz_regressions.rs` can run every seed and every crash input
//! through the very same code under `cargo test` (it includes this file by path).
//!
//! Each harness feeds untrusted bytes to the bridge's pure parts the way the server does:
//! - `imap_command`: bytes → the bridge's frontend over imap-next's server state machine
//!   (framing, literals, IDLE, AUTHENTICATE, the `SEARCH RETURN` rewrite) → for FETCH, SEARCH
//!   and APPEND the bridge's own item computation, sequence-set resolution and search
//!   evaluation over a small fixed mailbox → responses encoded by imap-codec, ESEARCH by the
//!   bridge.
//! - `smtp_session`: bytes → smtp-proto's request, DATA and BDAT receivers as the SMTP
//!   session drives them → SASL decoding and the submission analysis of each message.
//! - `mime_structure`: a message → ENVELOPE, BODY, BODYSTRUCTURE, sections, BINARY, search
//!   text; checks that BODY[] is the bytes given and RFC822.SIZE their length.
//! - `link_macros`: the download-link macro finder and rewriter, on text and on a message.
//! - `graph_json`: the Graph JSON decoders (pages of folders and delta messages, flags).

use std::num::NonZeroU32;

use graphbridge::graph::types::{DeltaMessage, MailFolder, Page};
use graphbridge::imap::fetch::MessageView;
use graphbridge::imap::frontend::{self as esearch, Frontend, Hit, ReturnOptions};
use graphbridge::imap::search::{Candidate, Content, Query, Scope};
use graphbridge::mailstore::{Flags, MessageRecord};
use graphbridge::submission::message as submission;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{Text, Vec1};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::response::{CommandContinuationRequest, Data, Greeting, Status};
use imap_codec::imap_types::IntoStatic;
use imap_next::server::{Event, Options};
use imap_next::{Interrupt, Io, State};

/// The mailbox every IMAP command runs against: a few real-world messages.
const MAILBOX: [&[u8]; 4] = [
    include_bytes!("../../fixtures/mime/01-alternative.eml"),
    include_bytes!("../../fixtures/mime/06-nested-rfc822.eml"),
    include_bytes!("../../fixtures/mime/13-rfc2231.eml"),
    include_bytes!("../../fixtures/mime/16-binary-base64-with-junk.eml"),
];

/// Most events handled for one input: a bound, so that no input loops forever.
const MAX_EVENTS: usize = 20_000;

fn records() -> Vec<MessageRecord> {
    MAILBOX
        .iter()
        .enumerate()
        .map(|(i, raw)| MessageRecord {
            uid: (i as u32 + 1) * 7,
            graph_id: format!("AAMk{i}"),
            flags: Flags(if i % 2 == 0 {
                Flags::SEEN
            } else {
                Flags::FLAGGED
            }),
            keywords: if i == 1 {
                "$label1 work".into()
            } else {
                String::new()
            },
            internal_date: 1_700_000_000 + i as i64 * 86_400,
            modseq: i as u64 + 1,
            size: Some(raw.len() as u64),
        })
        .collect()
}

/// Bytes → IMAP server state machine → bridge command handling → encoded responses.
pub fn imap_command(data: &[u8]) {
    let mut options = Options::default();
    options.max_literal_size = 256 * 1024;
    options.max_command_size = 1024 * 1024;
    let Ok(greeting) = Greeting::ok(None, "graphbridge ready") else {
        return;
    };
    let mut server = Frontend::new(options, greeting);
    let records = records();
    // Fed in two halves, so that a command split across reads is exercised too.
    let (first, second) = data.split_at(data.len() / 2);
    let mut chunks = [first, second].into_iter();
    let mut output = 0usize;
    let mut events = 0;
    if let Some(chunk) = chunks.next() {
        server.enqueue_input(chunk);
    }
    while events < MAX_EVENTS {
        events += 1;
        match server.next() {
            Ok(Event::CommandReceived { command }) => {
                let tag = command.tag.clone();
                let returns = server.take_search_return();
                let (untagged, ok) = imap_handle(command.body, &records);
                for data in untagged {
                    match (returns, data) {
                        (Some(options), Data::Search(found, _)) => {
                            server.enqueue_raw(esearch_line(tag.as_ref(), options, &found));
                        }
                        (_, data) => {
                            server.enqueue_data(data);
                        }
                    }
                }
                let status = if ok {
                    Status::ok(Some(tag), None, "done")
                } else {
                    Status::no(Some(tag), None, "refused")
                };
                if let Ok(status) = status {
                    server.enqueue_status(status);
                }
            }
            Ok(Event::CommandAuthenticateReceived {
                command_authenticate,
            }) => {
                if let Some(initial) = &command_authenticate.initial_response {
                    let _ = graphbridge::auth::decode_sasl_plain(initial.declassify());
                }
                if let Ok(no) = Status::no(Some(command_authenticate.tag), None, "no") {
                    let _ = server.authenticate_finish(no);
                }
            }
            Ok(Event::AuthenticateDataReceived { .. }) => {
                if let Ok(no) = Status::no(None, None, "no") {
                    let _ = server.authenticate_finish(no);
                }
            }
            Ok(Event::IdleCommandReceived { .. }) => {
                if let Ok(cont) = CommandContinuationRequest::basic(None, "idling") {
                    let _ = server.idle_accept(cont);
                }
            }
            Ok(Event::IdleDoneReceived) => {
                if let Ok(ok) = Status::ok(None, None, "IDLE terminated") {
                    server.enqueue_status(ok);
                }
            }
            Ok(Event::GreetingSent { .. }) | Ok(Event::ResponseSent { .. }) => {}
            Err(Interrupt::Io(Io::Output(bytes))) => output += bytes.len(),
            Err(Interrupt::Io(Io::NeedMoreInput)) => match chunks.next() {
                Some(chunk) => server.enqueue_input(chunk),
                None => break,
            },
            // Malformed input: the session answers BAD and reads on.
            Err(Interrupt::Error(_)) => {
                let reason = server.take_refusal().map(|e| e.to_string());
                if let Ok(bad) = Status::bad(None, None, reason.unwrap_or("malformed".into())) {
                    server.enqueue_status(bad);
                }
            }
        }
    }
    std::hint::black_box(output);
}

/// The ESEARCH line for a search's numbers (its MODSEQs made up from the numbers).
fn esearch_line(tag: &str, options: ReturnOptions, found: &[NonZeroU32]) -> Vec<u8> {
    let hits: Vec<Hit> = found
        .iter()
        .map(|n| Hit {
            number: n.get(),
            modseq: u64::from(n.get() % 5),
        })
        .collect();
    esearch::encode(tag, false, options, &hits, true)
}

/// One command against the fixed mailbox: the untagged data, and whether it succeeded.
fn imap_handle(
    body: CommandBody<'static>,
    records: &[MessageRecord],
) -> (Vec<Data<'static>>, bool) {
    let mut out = Vec::new();
    match body {
        CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            ..
        } => {
            let mut names = match macro_or_item_names {
                MacroOrMessageDataItemNames::Macro(m) => m
                    .expand()
                    .into_iter()
                    .map(IntoStatic::into_static)
                    .collect(),
                MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
            };
            if uid && !names.contains(&MessageDataItemName::Uid) {
                names.insert(0, MessageDataItemName::Uid);
            }
            for (seq, index) in resolve(records, &sequence_set, uid) {
                let raw = MAILBOX[index];
                let view = MessageView::parse(raw);
                let mut items = Vec::new();
                for name in &names {
                    match graphbridge::imap::fetch_item(name, &records[index], raw, &view) {
                        Some(item) => items.push(item),
                        None => return (out, false),
                    }
                }
                if let Ok(items) = Vec1::try_from(items) {
                    out.push(Data::Fetch { seq, items });
                }
            }
            (out, true)
        }
        CommandBody::Search { criteria, uid, .. } => {
            let scope = Scope {
                exists: records.len() as u32,
                max_uid: records.last().map_or(0, |m| m.uid),
            };
            let query = Query::compile(criteria.as_ref(), scope);
            let mut found = Vec::new();
            for (index, record) in records.iter().enumerate() {
                let candidate = Candidate {
                    seq: index as u32 + 1,
                    record,
                };
                let hit = match query.decide(candidate) {
                    Some(hit) => hit,
                    None => query.matches(candidate, &Content::new(MAILBOX[index])),
                };
                if hit {
                    let n = if uid { record.uid } else { index as u32 + 1 };
                    found.extend(NonZeroU32::new(n));
                }
            }
            out.push(Data::Search(found, None));
            (out, true)
        }
        CommandBody::Append { message, .. } => {
            let bytes: &[u8] = match &message {
                imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                    l.as_ref()
                }
                imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                    l.data.as_ref()
                }
            };
            mime_structure(bytes);
            (out, true)
        }
        CommandBody::Login { .. } | CommandBody::Noop | CommandBody::Capability => (out, true),
        _ => (out, false),
    }
}

/// The bridge's sequence-set resolution (as `Selected::resolve` does it).
fn resolve(
    records: &[MessageRecord],
    set: &imap_codec::imap_types::sequence::SequenceSet,
    uid: bool,
) -> Vec<(NonZeroU32, usize)> {
    let Some(last) = records.last() else {
        return Vec::new();
    };
    let largest = if uid { last.uid } else { records.len() as u32 };
    let Some(largest) = NonZeroU32::new(largest) else {
        return Vec::new();
    };
    let Some(set) = graphbridge::imap::clamp_set(set, largest) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in set.iter(largest) {
        let index = if uid {
            records.iter().position(|r| r.uid == n.get())
        } else {
            Some(n.get() as usize - 1).filter(|i| *i < records.len())
        };
        if let Some(index) = index {
            if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
                out.push((seq, index));
            }
        }
    }
    out
}

/// A message → everything FETCH and SEARCH compute from it.
pub fn mime_structure(raw: &[u8]) {
    // The header-only items are read without the MIME tree: they must be what the tree says.
    let lazy = MessageView::parse(raw);
    let lazy_header = lazy
        .section(Some(&Section::Header(None)))
        .map(|h| h.into_owned());
    let lazy_envelope = lazy.envelope();
    let view = MessageView::parse(raw);
    let _ = view.body_structure(true);
    assert_eq!(
        lazy_header,
        view.section(Some(&Section::Header(None)))
            .map(|h| h.into_owned()),
        "the header read alone is the MIME tree's"
    );
    assert_eq!(
        lazy_envelope,
        view.envelope(),
        "ENVELOPE without the MIME tree"
    );
    assert_eq!(view.raw(), raw, "BODY[] must be the bytes given");
    assert_eq!(view.size() as usize, raw.len().min(u32::MAX as usize));
    let envelope = view.envelope();
    let body = view.body_structure(false);
    let structure = view.body_structure(true);
    let sections = [
        None,
        Some(Section::Header(None)),
        Some(Section::Text(None)),
        part(&[1]).map(Section::Part),
        part(&[1]).map(Section::Mime),
        part(&[1, 1]).map(Section::Part),
        part(&[2]).map(Section::Part),
        part(&[2]).map(|p| Section::Header(Some(p))),
        part(&[2, 1]).map(|p| Section::Text(Some(p))),
        part(&[1, 2, 3]).map(Section::Part),
    ];
    let mut total = 0usize;
    for section in sections.iter() {
        if let Some(bytes) = view.section(section.as_ref()) {
            total += bytes.len();
        }
    }
    for numbers in [&[][..], &[1], &[2], &[1, 1], &[2, 1]] {
        let _ = view.binary_size(numbers);
    }
    // The items as a FETCH response carries them, encoded as they go on the wire.
    let record = MessageRecord {
        uid: 1,
        graph_id: "AAMk".into(),
        flags: Flags(0),
        keywords: String::new(),
        internal_date: 0,
        modseq: 1,
        size: None,
    };
    let mut items = vec![
        imap_codec::imap_types::fetch::MessageDataItem::Envelope(envelope),
        imap_codec::imap_types::fetch::MessageDataItem::Body(body),
        imap_codec::imap_types::fetch::MessageDataItem::BodyStructure(structure),
    ];
    items.extend(graphbridge::imap::fetch_item(
        &MessageDataItemName::Rfc822Size,
        &record,
        raw,
        &view,
    ));
    if let Ok(items) = Vec1::try_from(items) {
        let data = Data::Fetch {
            seq: NonZeroU32::MIN,
            items,
        };
        let encoded = imap_codec::encode::Encoder::encode(
            &imap_codec::ResponseCodec::default(),
            &imap_codec::imap_types::response::Response::Data(data),
        )
        .dump();
        total += encoded.len();
    }
    // Search text.
    let content = Content::new(raw);
    let _ = content.header_contains("subject", "a");
    let _ = content.subject_contains("re");
    let _ = content.body_contains("the");
    let _ = content.text_contains("x");
    let _ = content.sent_date();
    std::hint::black_box(total);
}

fn part(numbers: &[u32]) -> Option<Part> {
    let numbers: Vec<NonZeroU32> = numbers.iter().filter_map(|n| NonZeroU32::new(*n)).collect();
    Vec1::try_from(numbers).ok().map(Part)
}

/// Bytes → SMTP command, DATA and BDAT receivers (as the session drives them) → SASL
/// decoding and the submission analysis of every message received.
pub fn smtp_session(data: &[u8]) {
    use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
    use smtp_proto::Request;

    enum Phase {
        Command,
        Data(DataReceiver),
        Bdat(BdatReceiver),
        AuthLine,
    }
    const MAX_MESSAGE: usize = 1024 * 1024;

    let mut receiver = RequestReceiver::default();
    let mut phase = Phase::Command;
    let mut message = Vec::new();
    let mut line = Vec::new();
    let mut bytes = data.iter();
    let mut steps = 0;
    while bytes.len() > 0 && steps < MAX_EVENTS {
        steps += 1;
        phase = match phase {
            Phase::Command => match receiver.ingest(&mut bytes) {
                Ok(request) => match request {
                    Request::Data => Phase::Data(DataReceiver::new()),
                    Request::Bdat { chunk_size, .. } if chunk_size <= MAX_MESSAGE => {
                        Phase::Bdat(BdatReceiver::new(chunk_size, false))
                    }
                    Request::Auth {
                        initial_response, ..
                    } => {
                        if initial_response.is_empty() {
                            Phase::AuthLine
                        } else {
                            sasl(&initial_response);
                            Phase::Command
                        }
                    }
                    Request::Rset => {
                        message.clear();
                        Phase::Command
                    }
                    _ => Phase::Command,
                },
                Err(smtp_proto::Error::NeedsMoreData { .. }) => Phase::Command,
                Err(_) => Phase::Command,
            },
            Phase::Data(mut receiver) => {
                if receiver.ingest(&mut bytes, &mut message) {
                    submitted(&message);
                    message.clear();
                    Phase::Command
                } else if message.len() > MAX_MESSAGE {
                    message.clear();
                    Phase::Command
                } else {
                    Phase::Data(receiver)
                }
            }
            Phase::Bdat(mut receiver) => {
                if receiver.ingest(&mut bytes, &mut message) {
                    submitted(&message);
                    message.clear();
                    Phase::Command
                } else {
                    Phase::Bdat(receiver)
                }
            }
            Phase::AuthLine => {
                for b in bytes.by_ref() {
                    if *b == b'\n' {
                        break;
                    }
                    line.push(*b);
                }
                sasl(&String::from_utf8_lossy(&line));
                line.clear();
                Phase::Command
            }
        };
    }
}

fn sasl(text: &str) {
    if let Ok(decoded) = graphbridge::auth::decode_base64(text) {
        let _ = graphbridge::auth::decode_sasl_plain(&decoded);
    }
}

/// What the submission path computes from a message before queuing it.
fn submitted(raw: &[u8]) {
    if let Some(analysis) = submission::analyse(raw) {
        std::hint::black_box(analysis.attachments.len() + analysis.macros.len());
    }
    let _ = submission::fingerprint(raw);
    let _ = submission::strip_bcc(raw);
    let (with_id, _) = submission::ensure_message_id(raw.to_vec(), "example.com");
    std::hint::black_box(with_id.len());
}

/// The download-link macro finder and rewriter: on the input as text, and on the input as a
/// message whose files are replaced by links.
pub fn link_macros(data: &[u8]) {
    use graphbridge::submission::message::LinkKind;
    // Each URL carries one character of its own: counting it tells how many links were
    // written, which no concatenation of input and output can fake.
    const DOWNLOAD_MARK: char = '\u{E000}';
    const AGREEMENT_MARK: char = '\u{E001}';
    let links = [
        submission::RenderedLink {
            kind: LinkKind::Download,
            url: format!("https://bridge.example/d/abc?x=1&y=\"2\"#{DOWNLOAD_MARK}"),
        },
        submission::RenderedLink {
            kind: LinkKind::Agreement,
            url: format!("https://bridge.example/a/def#{AGREEMENT_MARK}"),
        },
    ];
    let text = String::from_utf8_lossy(data);
    let found = submission::find_macros(&text);
    let plain = submission::substitute_text(&text, &links);
    let html = submission::substitute_html(&text, &links);
    if found.is_empty() {
        assert_eq!(plain, text, "text without macros is left alone");
    }
    // Every macro found is replaced by exactly one link, in one pass: a link's label that
    // spells a macro together with the text before it is not substituted again.
    for (kind, mark) in [
        (LinkKind::Download, DOWNLOAD_MARK),
        (LinkKind::Agreement, AGREEMENT_MARK),
    ] {
        let count = |s: &str| s.chars().filter(|c| *c == mark).count();
        let macros = found.iter().filter(|m| m.kind == kind).count();
        assert_eq!(
            count(&plain),
            count(&text) + macros,
            "one link per {kind:?} macro"
        );
        assert_eq!(
            count(&html),
            count(&text) + macros,
            "one link per {kind:?} macro"
        );
    }
    std::hint::black_box(html.len());
    if let Some(rewritten) = submission::replace_attachments(data, &links) {
        // The rewritten message is parsed again on its way to Graph.
        let _ = submission::analyse(&rewritten);
    }
    let _ = submission::without_attachments(data);
    let _ = submission::sanitize_name(&text);
}

/// The Graph JSON decoders: pages of folders and delta messages, and what sync derives.
pub fn graph_json(data: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<Page<DeltaMessage>>(data) {
        for message in &page.value {
            let _ = graphbridge::sync::flags_from_graph(message);
            for name in [
                graphbridge::graph::types::LAST_VERB,
                graphbridge::graph::types::MESSAGE_SIZE,
            ] {
                let _ = message.property(name);
            }
        }
    }
    let _ = serde_json::from_slice::<Page<MailFolder>>(data);
    let _ = serde_json::from_slice::<DeltaMessage>(data);
    let text = String::from_utf8_lossy(data);
    let _ = graphbridge::graph::types::property_is(&text, graphbridge::graph::types::LAST_VERB);
    let _ = Text::try_from(text.as_ref());
}
