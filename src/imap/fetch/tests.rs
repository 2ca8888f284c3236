//! MessageView on real-world mail, checked down to the encoded IMAP bytes.

use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{AString, NString, Vec1};
use imap_codec::imap_types::fetch::{MessageDataItem, Part, Section};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::ResponseCodec;

use super::*;

const ALTERNATIVE: &[u8] = include_bytes!("../../../fixtures/mime/01-alternative.eml");
const PDF: &[u8] = include_bytes!("../../../fixtures/mime/02-mixed-pdf.eml");
const RFC2047: &[u8] = include_bytes!("../../../fixtures/mime/04-rfc2047.eml");
const NESTED: &[u8] = include_bytes!("../../../fixtures/mime/06-nested-rfc822.eml");
const GROUPS: &[u8] = include_bytes!("../../../fixtures/mime/08-groups.eml");
const NO_BOUNDARY: &[u8] =
    include_bytes!("../../../fixtures/mime/14-no-content-type-multipart-no-boundary.eml");
const UNKNOWN_CTE: &[u8] = include_bytes!("../../../fixtures/mime/13-rfc2231.eml");

fn encode(item: MessageDataItem<'static>) -> String {
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    String::from_utf8_lossy(&ResponseCodec::default().encode(&response).dump()).into_owned()
}

fn part(numbers: &[u32]) -> Part {
    let numbers: Vec<NonZeroU32> = numbers.iter().filter_map(|&n| NonZeroU32::new(n)).collect();
    Part(Vec1::try_from(numbers).expect("non-empty part"))
}

fn names(list: &[&'static str]) -> Vec1<AString<'static>> {
    let v: Vec<AString<'static>> = list
        .iter()
        .map(|n| AString::try_from(*n).expect("atom"))
        .collect();
    Vec1::try_from(v).expect("non-empty")
}

fn section(view: &MessageView<'_>, s: Section<'_>) -> Option<Vec<u8>> {
    view.section(Some(&s)).map(|c| c.into_owned())
}

#[test]
fn envelope_keeps_encoded_words_and_defaults_sender() {
    let view = MessageView::parse(RFC2047);
    assert_eq!(
        encode(MessageDataItem::Envelope(view.envelope())),
        "* 1 FETCH (ENVELOPE (\"Fri, 07 Mar 2025 09:30:00 +0100 (CET)\" \
         \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= =?UTF-8?Q?_und_Berlin?=\" \
         ((\"=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?=\" NIL \"juergen\" \"example.de\")) \
         ((\"=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?=\" NIL \"juergen\" \"example.de\")) \
         ((\"=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?=\" NIL \"juergen\" \"example.de\")) \
         ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\")) \
         NIL NIL NIL \"<rfc2047@example.de>\"))\r\n"
    );
}

#[test]
fn envelope_groups_routes_and_comments() {
    let view = MessageView::parse(GROUPS);
    let text = encode(MessageDataItem::Envelope(view.envelope()));
    assert!(text.contains("((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"));
    assert!(text.contains("((NIL \"@relay.example,@relay2.example\" \"list\" \"lists.example\"))"));
    assert!(text.contains("((\"Eve E.\" NIL \"eve\" \"example.com\"))"));
    assert!(text.contains("(NIL NIL \"Team\" NIL)(NIL NIL \"alice\" \"example.com\")"));
}

#[test]
fn bodystructure_of_alternative_with_extension_data() {
    let view = MessageView::parse(ALTERNATIVE);
    assert_eq!(
        encode(MessageDataItem::BodyStructure(view.body_structure(true))),
        "* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"plain\" (\"charset\" \"UTF-8\") NIL NIL \
         \"quoted-printable\" 155 6 NIL NIL NIL NIL)(\"TEXT\" \"html\" (\"charset\" \"UTF-8\") \
         NIL NIL \"quoted-printable\" 88 2 NIL NIL NIL NIL) \"alternative\" \
         (\"boundary\" \"000000000000b1c2d3e4f5\") NIL NIL NIL))\r\n"
    );
    assert_eq!(
        encode(MessageDataItem::Body(view.body_structure(false))),
        "* 1 FETCH (BODY ((\"TEXT\" \"plain\" (\"charset\" \"UTF-8\") NIL NIL \
         \"quoted-printable\" 155 6)(\"TEXT\" \"html\" (\"charset\" \"UTF-8\") NIL NIL \
         \"quoted-printable\" 88 2) \"alternative\"))\r\n"
    );
}

#[test]
fn bodystructure_of_attachment_has_disposition_and_language() {
    let view = MessageView::parse(PDF);
    let text = encode(MessageDataItem::BodyStructure(view.body_structure(true)));
    assert!(text.contains(
        "(\"application\" \"pdf\" (\"name\" \"invoice 4711.pdf\") \"<part1.4711@vendor.example>\" \
         \"Invoice PDF\" \"base64\" 188 NIL (\"attachment\" (\"filename\" \"invoice 4711.pdf\" \
         \"size\" \"312\")) NIL NIL)"
    ), "{text}");
    assert!(text.ends_with("\"mixed\" (\"boundary\" \"----=_Part_12345_67890.1741161600000\") NIL (\"en-US\") NIL))\r\n"));
}

#[test]
fn multipart_without_boundary_gets_one_empty_part() {
    let view = MessageView::parse(NO_BOUNDARY);
    assert_eq!(
        encode(MessageDataItem::Body(view.body_structure(false))),
        "* 1 FETCH (BODY ((\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\"))\r\n"
    );
    assert_eq!(section(&view, Section::Part(part(&[1]))), None);
}

#[test]
fn sections_of_nested_message() {
    let view = MessageView::parse(NESTED);
    let header = section(&view, Section::Header(Some(part(&[2])))).expect("2.HEADER");
    assert!(header.starts_with(b"From: Original Sender"));
    assert!(header.ends_with(b"boundary=\"inner\"\r\n\r\n"));
    assert_eq!(
        section(&view, Section::Part(part(&[2, 1]))).as_deref(),
        Some(&b"Original plain text."[..])
    );
    assert_eq!(
        section(&view, Section::Mime(part(&[3, 1]))).as_deref(),
        Some(&b"From: someone@example.net\r\nSubject: Second, not multipart\r\n\r\n"[..])
    );
    assert_eq!(
        section(&view, Section::Text(Some(part(&[3])))).as_deref(),
        Some(&b"Just a body.\r\nTwo lines.\r\n"[..])
    );
    assert_eq!(section(&view, Section::Text(Some(part(&[1])))), None);
    assert_eq!(section(&view, Section::Part(part(&[4]))), None);
    assert_eq!(
        section(
            &view,
            Section::HeaderFields(None, names(&["subject", "FROM"]))
        )
        .as_deref(),
        Some(&b"From: Forwarder <fwd@example.com>\r\nSubject: Fwd: Original subject\r\n\r\n"[..])
    );
    let not = section(
        &view,
        Section::HeaderFieldsNot(
            Some(part(&[2])),
            names(&["From", "To", "Date", "Message-ID", "MIME-Version"]),
        ),
    );
    assert_eq!(
        not.as_deref(),
        Some(&b"Subject: Original subject\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"[..])
    );
}

#[test]
fn whole_message_and_partial_and_encoding() {
    let view = MessageView::parse(NESTED);
    assert_eq!(view.section(None).as_deref(), Some(NESTED));
    assert_eq!(view.size() as usize, NESTED.len());
    let text = view.section(Some(&Section::Text(None))).expect("TEXT");
    assert_eq!(partial(&text, 0, 7), b"--outer");
    assert_eq!(partial(&text, u32::MAX, 7), b"");
    assert_eq!(partial(b"abc", 1, u32::MAX), b"bc");
    let item = MessageDataItem::BodyExt {
        section: Some(Section::Text(None)),
        origin: Some(0),
        data: NString::try_from(partial(&text, 0, 7).to_vec()).expect("nstring"),
    };
    assert_eq!(encode(item), "* 1 FETCH (BODY[TEXT]<0> \"--outer\")\r\n");
}

#[test]
fn binary_decodes_and_reports_unknown_encodings() {
    let view = MessageView::parse(RFC2047);
    assert_eq!(
        view.binary(&[1]),
        Ok(Some("Grüße aus München!\n".as_bytes().to_vec()))
    );
    assert_eq!(view.binary_size(&[1]), Ok(Some(22)));
    assert_eq!(view.binary(&[2]), Ok(None));
    let view = MessageView::parse(UNKNOWN_CTE);
    assert_eq!(view.binary(&[1]), Ok(Some(vec![0, 1, 2])));
    assert_eq!(
        view.binary(&[2]),
        Err(BinaryError::UnknownCte("x-uuencode".into()))
    );
}

#[test]
fn line_endings_are_normalized_once() {
    assert!(matches!(
        normalize_line_endings(b"a\r\nb\r\n"),
        Cow::Borrowed(_)
    ));
    assert_eq!(
        normalize_line_endings(b"a\nb\r\n\n").as_ref(),
        b"a\r\nb\r\n\r\n"
    );
}

#[test]
fn never_panics_on_hostile_input() {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n".to_vec(),
        b"\n\n\n".to_vec(),
        b":".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n----\r\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r".to_vec(),
        b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
        b"From: \"\\\r\nTo: (((\r\nCc: <<<@@@>>>,;:\r\nBcc: a:b:c;d;\r\n\r\n\0\xff".to_vec(),
        b"Content-Type: text/plain; charset*0*=x; charset*99=y; =; ;;\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=4".to_vec(),
    ];
    let mut deep = Vec::new();
    for i in 0..300 {
        deep.extend_from_slice(
            format!("Content-Type: message/rfc822\r\n\r\nSubject: {i}\r\n").as_bytes(),
        );
    }
    inputs.push(deep);
    let mut many = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n".to_vec();
    for _ in 0..12_000 {
        many.extend_from_slice(b"--m\r\n\r\nx\r\n");
    }
    inputs.push(many);
    for raw in &inputs {
        let view = MessageView::parse(raw);
        let _ = encode(MessageDataItem::Envelope(view.envelope()));
        let _ = encode(MessageDataItem::BodyStructure(view.body_structure(true)));
        for p in [&[1u32][..], &[1, 1], &[2], &[10_001]] {
            let _ = view.section(Some(&Section::Part(part(p))));
            let _ = view.section(Some(&Section::Mime(part(p))));
            let _ = view.section(Some(&Section::Header(Some(part(p)))));
            let _ = view.binary(p);
        }
        assert_eq!(view.section(None).as_deref(), Some(raw.as_slice()));
    }
}
