//! The matcher against real-world mail: encoded words, quoted-printable and base64 bodies,
//! ISO-8859-1, attachments, broken MIME; criteria parsed by imap-codec as a client sends them.

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::CommandBody;

use super::text::{decode_body, decode_header, header_date, normalize};
use super::{Candidate, Content, Query, Scope};
use crate::mailstore::{Flags, MessageRecord};

const SCOPE: Scope = Scope {
    exists: 5,
    max_uid: 40,
};

/// Criteria as a client writes them; non-ASCII text goes in literals, as UTF-8.
fn query(criteria: &str) -> Query {
    let mut line = Vec::new();
    line.extend_from_slice(b"a SEARCH CHARSET UTF-8 ");
    line.extend_from_slice(criteria.as_bytes());
    line.extend_from_slice(b"\r\n");
    let (_, command) = CommandCodec::default()
        .decode(&line)
        .unwrap_or_else(|e| panic!("{criteria} does not parse: {e:?}"));
    let CommandBody::Search { criteria, .. } = command.body else {
        panic!("not a SEARCH");
    };
    Query::compile(criteria.as_ref(), SCOPE)
}

/// `text` as an IMAP literal.
fn lit(text: &str) -> String {
    format!("{{{}}}\r\n{text}", text.len())
}

fn record(uid: u32) -> MessageRecord {
    MessageRecord {
        uid,
        graph_id: format!("id-{uid}"),
        flags: Flags::default(),
        keywords: String::new(),
        // 2026-01-06T09:15:50Z
        internal_date: 1_767_690_950,
        modseq: 1,
        size: None,
    }
}

/// Whether `raw` (as message 2, UID 20) matches `criteria`.
fn matches(criteria: &str, raw: &[u8]) -> bool {
    let record = record(20);
    let candidate = Candidate {
        seq: 2,
        record: &record,
    };
    query(criteria).matches(candidate, &Content::new(raw))
}

const GROSSBESTELLUNG: &[u8] =
    b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen.mueller@fabrikam.test>\r\n\
To: Contoso Sales <sales@contoso.test>\r\n\
Cc: =?utf-8?b?QW3DqWxpZQ==?= <amelie@adatum.test>\r\n\
Subject: =?UTF-8?Q?Angebot_f=C3=BCr_Gro=C3=9Fbestellung_B=C3=BCrost=C3=BChle?=\r\n\
Date: Tue, 06 Jan 2026 00:15:42 +0100\r\n\
X-Priority: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Guten Tag,\r\n\
wir m\xc3\xb6chten 40 B\xc3\xbcrost\xc3\xbchle bestellen.\r\n\
Mit freundlichen Gr\xc3\xbc\xc3\x9fen\r\n";

const NEWSLETTER: &[u8] = b"From: Northwind Traders <news@northwind.test>\r\n\
To: Contoso Sales <sales@contoso.test>\r\n\
Subject: Northwind spring catalogue is out\r\n\
Date: Wed, 07 Jan 2026 06:30:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"mix\"\r\n\
\r\n\
This is a multi-part message in MIME format (preamble).\r\n\
--mix\r\n\
Content-Type: multipart/alternative; boundary=\"alt-7f3a9c\"\r\n\
\r\n\
--alt-7f3a9c\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
T3VyIHNwcmluZyBjYXRhbG9ndWUgaXMgb3V0OiBnYXJkZW4gY2hhaXJzIGF0IDIw\r\n\
JSBvZmYuIENyw6htZSBicsO7bMOpZSE=\r\n\
--alt-7f3a9c\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<html><body><p>Our <b>spring</b> catalogue: Cr=C3=A8me br=C3=BBl=C3=A9e =\r\n\
and more.</p></body></html>\r\n\
--alt-7f3a9c--\r\n\
--mix\r\n\
Content-Type: application/pdf; name=\"catalogue.pdf\"\r\n\
Content-Disposition: attachment; filename=\"catalogue.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
SGlkZGVuUGRmV29yZA==\r\n\
--mix\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Forwarded Person <fwd@example.test>\r\n\
Subject: Inner subject zebra\r\n\
\r\n\
Inner body giraffe\r\n\
--mix--\r\n\
Epilogue walrus\r\n";

const LATIN1: &[u8] =
    b"From: =?ISO-8859-1?Q?Andr=E9_Fran=E7ois?= <andre.francois@litware.test>\r\n\
To: Contoso Sales <sales@contoso.test>\r\n\
Subject: =?ISO-8859-1?Q?Devis_pour_si=E8ges?=\r\n\
Date: 16 Jan 26 13:10 +0100\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Bonjour, voici le devis pour les si\xe8ges de la r\xe9union. Co\xfbt total : 1\xa0200 \x80.\r\n";

#[test]
fn encoded_words_in_subject_from_and_cc() {
    assert!(matches(
        &format!("SUBJECT {}", lit("großbestellung")),
        GROSSBESTELLUNG
    ));
    assert!(matches(
        &format!("SUBJECT {}", lit("BÜROSTÜHLE")),
        GROSSBESTELLUNG
    ));
    assert!(matches(
        &format!("FROM {}", lit("jürgen müller")),
        GROSSBESTELLUNG
    ));
    assert!(matches("FROM fabrikam.test", GROSSBESTELLUNG));
    assert!(matches(&format!("CC {}", lit("Amélie")), GROSSBESTELLUNG));
    assert!(!matches("SUBJECT =?UTF-8?Q?", GROSSBESTELLUNG));
    assert!(!matches("TO juergen", GROSSBESTELLUNG));
    assert!(!matches("BCC sales", GROSSBESTELLUNG));
}

#[test]
fn header_key_with_empty_string_tests_presence() {
    assert!(matches("HEADER X-Priority \"\"", GROSSBESTELLUNG));
    assert!(matches("HEADER x-priority 1", GROSSBESTELLUNG));
    assert!(!matches("HEADER X-Priority 2", GROSSBESTELLUNG));
    assert!(!matches("HEADER X-Mailer \"\"", GROSSBESTELLUNG));
    assert!(matches(
        "HEADER Content-Type charset=utf-8",
        GROSSBESTELLUNG
    ));
}

#[test]
fn body_of_8bit_utf8_text() {
    assert!(matches(
        &format!("BODY {}", lit("bürostühle")),
        GROSSBESTELLUNG
    ));
    // Simple case mapping, as Dovecot: ß is not SS.
    assert!(!matches(
        &format!("BODY {}", lit("GRÜSSEN")),
        GROSSBESTELLUNG
    ));
    assert!(matches(&format!("BODY {}", lit("Grüßen")), GROSSBESTELLUNG));
    // BODY does not look at the header, TEXT does.
    assert!(!matches("BODY Angebot", GROSSBESTELLUNG));
    assert!(matches("TEXT Angebot", GROSSBESTELLUNG));
    assert!(matches("TEXT \"Subject: Angebot\"", GROSSBESTELLUNG));
}

#[test]
fn base64_and_quoted_printable_parts_are_decoded() {
    assert!(matches("BODY \"garden chairs at 20% off\"", NEWSLETTER));
    assert!(matches(
        &format!("BODY {}", lit("crème brûlée")),
        NEWSLETTER
    ));
    // The quoted-printable soft line break joins the line.
    assert!(matches(
        &format!("BODY {}", lit("brûlée and more")),
        NEWSLETTER
    ));
    // HTML is searched as written, tags included (Dovecot without FTS does the same).
    assert!(matches("BODY \"<b>spring</b>\"", NEWSLETTER));
    assert!(!matches("BODY T3VyIHNwcmluZyBjYXRhbG9n", NEWSLETTER));
}

#[test]
fn attachments_preamble_and_embedded_messages() {
    // Not a text part: an attachment's contents are not searched.
    assert!(!matches("BODY HiddenPdfWord", NEWSLETTER));
    assert!(!matches("TEXT HiddenPdfWord", NEWSLETTER));
    // But its MIME header is part of TEXT.
    assert!(matches("TEXT catalogue.pdf", NEWSLETTER));
    assert!(!matches("BODY catalogue.pdf", NEWSLETTER));
    // Preamble and epilogue belong to no part.
    assert!(!matches("BODY preamble", NEWSLETTER));
    assert!(!matches("BODY walrus", NEWSLETTER));
    // An embedded message: its body is body text, its header is TEXT only.
    assert!(matches("BODY giraffe", NEWSLETTER));
    assert!(!matches("BODY zebra", NEWSLETTER));
    assert!(matches("TEXT zebra", NEWSLETTER));
    // SUBJECT is the message's own header, not the embedded one's.
    assert!(!matches("SUBJECT zebra", NEWSLETTER));
}

#[test]
fn iso_8859_1_header_and_body() {
    assert!(matches(&format!("FROM {}", lit("andré françois")), LATIN1));
    assert!(matches(&format!("SUBJECT {}", lit("SIÈGES")), LATIN1));
    assert!(matches(
        &format!("BODY {}", lit("sièges de la réunion")),
        LATIN1
    ));
    // The no-break space (0xA0) and the euro sign of windows-1252 (0x80).
    assert!(matches(&format!("BODY {}", lit("1\u{a0}200 €")), LATIN1));
    // An accent inside the search string is not ignored, one after its end is.
    assert!(!matches("BODY \"coUt total\"", LATIN1));
    assert!(matches("BODY \"de la RE\"", LATIN1));
}

#[test]
fn accents_compare_like_dovecot() {
    // Decomposed text (as macOS writes it) matches a precomposed search and back.
    let nfd = "Subject: Cafe\u{301} Mu\u{308}ller\r\n\r\nbody\r\n";
    assert!(matches(
        &format!("SUBJECT {}", lit("café müller")),
        nfd.as_bytes()
    ));
    let nfc = "Subject: Café\r\n\r\nbody\r\n";
    assert!(matches(
        &format!("SUBJECT {}", lit("cafe\u{301}")),
        nfc.as_bytes()
    ));
    // A base letter at the end of the search string matches an accented one.
    assert!(matches("SUBJECT cafe", nfc.as_bytes()));
    assert_eq!(normalize("ÄÖÜ"), "a\u{308}o\u{308}u\u{308}");
}

#[test]
fn flags_keywords_dates_and_sets_need_no_body() {
    let mut r = record(20);
    r.flags = Flags(Flags::SEEN | Flags::FLAGGED | Flags::FORWARDED);
    r.keywords = "Kunde\nWichtig Projekt".into();
    let c = Candidate { seq: 2, record: &r };
    let yes = |q: &str| assert_eq!(query(q).decide(c), Some(true), "{q}");
    let no = |q: &str| assert_eq!(query(q).decide(c), Some(false), "{q}");
    yes("ALL");
    yes("SEEN FLAGGED UNANSWERED UNDELETED UNDRAFT");
    no("UNSEEN");
    no("ANSWERED");
    yes("KEYWORD kunde");
    yes("KEYWORD Wichtig_Projekt");
    yes("KEYWORD $Forwarded");
    no("KEYWORD Wichtig");
    yes("UNKEYWORD Wichtig");
    no("RECENT");
    no("NEW");
    yes("OLD");
    yes("2");
    yes("1,2:3");
    no("3:*");
    yes("5:2");
    yes("UID 20");
    yes("UID 1:*");
    no("UID 21:30");
    // `n:*` with n past the largest UID still holds the largest (RFC 3501 6.4.8).
    yes("UID 20:40");
    no("UID 50:*");
    yes("NOT NOT SEEN");
    yes("OR ANSWERED SEEN");
    no("OR ANSWERED DELETED");
    yes("(SEEN (FLAGGED UID 20))");
    // INTERNALDATE is 2026-01-06T09:15:50Z.
    yes("ON 6-Jan-2026");
    yes("SINCE 6-Jan-2026");
    no("BEFORE 6-Jan-2026");
    yes("BEFORE 7-Jan-2026");
    no("SINCE 7-Jan-2026");
    no("ON 5-Jan-2026");
    // Cheap keys decide before the body would be needed.
    no("UNSEEN BODY x");
    yes("OR SEEN BODY x");
    no("NOT OR SEEN BODY x");
    assert_eq!(query("SEEN BODY x").decide(c), None);
    assert_eq!(query("NOT BODY x").decide(c), None);
}

#[test]
fn size_from_the_record_or_the_bytes() {
    let mut r = record(20);
    let raw = b"Subject: s\r\n\r\n0123456789";
    let content = Content::new(raw);
    let c = Candidate { seq: 1, record: &r };
    assert_eq!(query("LARGER 10").decide(c), None);
    assert!(query("LARGER 10").matches(c, &content));
    assert!(query(&format!("SMALLER {}", raw.len() + 1)).matches(c, &content));
    assert!(!query(&format!("SMALLER {}", raw.len())).matches(c, &content));
    assert!(!query(&format!("LARGER {}", raw.len())).matches(c, &content));
    r.size = Some(500);
    let c = Candidate { seq: 1, record: &r };
    assert_eq!(query("LARGER 499").decide(c), Some(true));
    assert_eq!(query("SMALLER 500").decide(c), Some(false));
}

#[test]
fn sent_dates_are_the_date_header_as_written() {
    // Tue, 06 Jan 2026 00:15:42 +0100 is still 5 Jan in UTC; the sender's date counts.
    assert!(matches("SENTON 6-Jan-2026", GROSSBESTELLUNG));
    assert!(matches("SENTSINCE 6-Jan-2026", GROSSBESTELLUNG));
    assert!(!matches("SENTBEFORE 6-Jan-2026", GROSSBESTELLUNG));
    assert!(matches("SENTBEFORE 7-Jan-2026", GROSSBESTELLUNG));
    // Two-digit year, no day of week, no seconds.
    assert!(matches("SENTON 16-Jan-2026", LATIN1));
    // No Date header: counts as sent at the epoch.
    let undated = b"Subject: no date\r\n\r\nx\r\n";
    assert!(matches("SENTBEFORE 1-Jan-1980", undated));
    assert!(!matches("SENTSINCE 1-Jan-1980", undated));
}

#[test]
fn date_header_forms() {
    let d = |s: &str| header_date(s.as_bytes()).map(|d| d.to_string());
    assert_eq!(
        d("Mon, 05 Jan 2026 08:02:11 +0100").as_deref(),
        Some("2026-01-05")
    );
    assert_eq!(
        d("5 jan 2026 08:02 GMT (comment)").as_deref(),
        Some("2026-01-05")
    );
    assert_eq!(
        d("Thu,  1 Jan 98 00:00:00 EST").as_deref(),
        Some("1998-01-01")
    );
    assert_eq!(d("Fri, 31 Feb 2026 00:00 +0000"), None);
    assert_eq!(d("yesterday"), None);
    assert_eq!(d(""), None);
}

#[test]
fn encoded_word_edge_cases() {
    // A UTF-8 character split between two encoded-words.
    assert_eq!(
        decode_header(b"=?UTF-8?B?w6k=?= =?UTF-8?B?qQ==?="),
        "é\u{fffd}"
    );
    assert_eq!(
        decode_header(b"=?UTF-8?Q?caf=C3?=\r\n =?UTF-8?Q?=A9?="),
        "café"
    );
    // Blanks between encoded-words vanish; those next to plain text stay.
    assert_eq!(decode_header(b"a =?utf-8?q?b?= =?utf-8?q?c?= d"), "a bc d");
    // Language tag (RFC 2231), lower-case encoding letter, underscores.
    assert_eq!(decode_header(b"=?iso-8859-1*fr?q?h=E9_h=E9?="), "hé hé");
    // Not encoded-words: left alone.
    assert_eq!(
        decode_header(b"=?utf-8?x?abc?= =? ?="),
        "=?utf-8?x?abc?= =? ?="
    );
    assert_eq!(decode_header(b"price =?"), "price =?");
    // Unknown charset: read as UTF-8.
    assert_eq!(decode_header(b"=?x-unknown?q?ok?="), "ok");
}

#[test]
fn body_decoding() {
    let decode = |cte: &[u8], charset: &[u8], body: &[u8]| decode_body(cte, charset, body);
    assert_eq!(
        decode(b"Quoted-Printable", b"iso-8859-1", b"si=E8ge").as_deref(),
        Some("siège")
    );
    assert_eq!(decode(b" base64 ", b"UTF-8", b"w6k=").as_deref(), Some("é"));
    assert_eq!(decode(b"x-uuencode", b"", b"raw"), None);
    assert_eq!(
        decode(b"", b"us-ascii", b"a\xffb").as_deref(),
        Some("a\u{fffd}b")
    );
}

#[test]
fn broken_input_never_panics() {
    let mut huge = b"Subject: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 200_000));
    huge.extend_from_slice(b"\r\nX-Enc: =?utf-8?b?");
    huge.extend(std::iter::repeat_n(b'Q', 100_000));
    huge.extend_from_slice(b"\r\n\r\nbody");
    let mut unterminated = b"Subject: ".to_vec();
    for _ in 0..2_000 {
        unterminated.extend_from_slice(b"=?utf-8?q?abc ");
    }
    unterminated.extend_from_slice(b"\r\n\r\n");
    let samples: Vec<&[u8]> = vec![
        &unterminated,
        b"",
        b"\r\n",
        b"\xff\xfe\x00\x01",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n",
        b"Subject: =?\r\nFrom: =?utf-8?q?=\r\nDate: 99 Foo 99999999\r\n\r\n=?",
        b"Content-Type: text/plain; charset=\"\xff\xff\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=4",
        &huge,
    ];
    for raw in samples {
        for q in [
            "TEXT x",
            "BODY x",
            "SUBJECT x",
            "HEADER X-Enc a",
            "SENTON 1-Jan-2000",
            "LARGER 1",
        ] {
            let _ = matches(q, raw);
        }
    }
    assert!(matches("SUBJECT xxxxxxxxxx", &huge));
}

#[test]
fn subject_key_compresses_blanks_header_key_does_not() {
    let raw = b"Subject: ugly   spacing\t here\r\n  folded\r\n\r\nbody\r\n";
    assert!(matches("SUBJECT \"ugly spacing here folded\"", raw));
    assert!(!matches("SUBJECT \"ugly   spacing\"", raw));
    assert!(matches("HEADER Subject \"ugly   spacing\"", raw));
    assert!(!matches("HEADER Subject \"ugly spacing\"", raw));
}

#[test]
fn unknown_transfer_encoding_is_not_searched() {
    let raw = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a.txt\r\nend\r\n";
    assert!(!matches("BODY begin", raw));
    assert!(matches("TEXT uuencode", raw));
}
