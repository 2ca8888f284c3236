//! SEARCH and UID SEARCH against the demo over raw IMAP, and Dovecot as the oracle.
//!
//! The oracle test copies every message of the demo folders out of the bridge (bytes,
//! flags, keywords and INTERNALDATE, as FETCH reports them) into a throwaway Dovecot
//! (Debian's `dovecot-imapd`, started on a free loopback port), then sends the same list
//! of searches to both and compares the results, ESEARCH answers included. Without Dovecot it prints
//! `SKIPPED: dovecot not installed` and passes, except in CI (`CI` set), where it fails.

mod common;

#[allow(dead_code)]
mod dovecot_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{start_demo, Imap};
use dovecot_support::{Dovecot, DOVECOT};
use graphbridge::demo::{DEMO_PASSWORD, DEMO_USER};
use graphbridge::imap::fetch::normalize_line_endings;
use graphbridge::imap::search::{Candidate, Content, Query, Scope};
use graphbridge::mailstore::{Flags, MessageRecord};
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::CommandCodec;

/// The numbers of the `* SEARCH` response of a reply.
fn numbers(reply: &common::Reply) -> Vec<u32> {
    let line = reply
        .untagged
        .iter()
        .find(|l| l.starts_with("* SEARCH"))
        .unwrap_or_else(|| panic!("no SEARCH response: {:#?}", reply.untagged));
    line["* SEARCH".len()..]
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// Sends `tag SEARCH ...` with `literal` as a synchronising literal after `before`.
async fn with_literal(imap: &mut Imap, tag: &str, before: &str, literal: &str) -> common::Reply {
    imap.send_raw(format!("{tag} {before} {{{}}}\r\n", literal.len()).as_bytes())
        .await;
    let cont = imap.read_line().await;
    assert!(cont.starts_with('+'), "no continuation request: {cont}");
    imap.send_raw(format!("{literal}\r\n").as_bytes()).await;
    imap.read_until_tag(tag).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_keys_over_the_demo_inbox() {
    let demo = start_demo(None).await;
    let mut imap = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;

    let early = imap.cmd("SEARCH ALL").await;
    assert!(early.status.starts_with("BAD"), "{}", early.status);

    imap.cmd("SELECT INBOX").await.assert_ok();
    // UID and subject of every message, to name results by subject.
    let listing = imap
        .cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    listing.assert_ok();
    let uids: Vec<u32> = listing
        .untagged
        .iter()
        .map(|l| {
            l.split("UID ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("UID")
        })
        .collect();
    let subject_of = |seq: u32| listing.untagged[seq as usize - 1].clone();
    let exists = uids.len() as u32;
    assert!(exists >= 10, "demo inbox has {exists} messages");

    let all = imap.cmd("SEARCH ALL").await;
    all.assert_ok();
    assert_eq!(numbers(&all), (1..=exists).collect::<Vec<_>>());
    let all_uids = imap.cmd("UID SEARCH ALL").await;
    assert_eq!(numbers(&all_uids), uids);
    assert!(all_uids.status.starts_with("OK"), "{}", all_uids.status);

    // Flags and keywords from mailbox.json: 02, 04 and 09 are flagged; 02 has category Kunde.
    let flagged = numbers(&imap.cmd("SEARCH FLAGGED").await);
    assert_eq!(flagged.len(), 3, "{flagged:?}");
    let kunde = numbers(&imap.cmd("SEARCH KEYWORD Kunde").await);
    assert!(!kunde.is_empty());
    let unseen = numbers(&imap.cmd("SEARCH UNSEEN").await);
    let seen = numbers(&imap.cmd("SEARCH SEEN").await);
    assert_eq!(unseen.len() + seen.len(), exists as usize);
    let not_seen = numbers(&imap.cmd("SEARCH NOT SEEN").await);
    assert_eq!(not_seen, unseen);
    let either = numbers(&imap.cmd("SEARCH OR SEEN UNSEEN").await);
    assert_eq!(either.len(), exists as usize);
    assert!(numbers(&imap.cmd("SEARCH RECENT").await).is_empty());
    assert!(numbers(&imap.cmd("SEARCH NEW").await).is_empty());

    // Sets.
    assert_eq!(numbers(&imap.cmd("SEARCH 2,4:5").await), vec![2, 4, 5]);
    assert_eq!(numbers(&imap.cmd("SEARCH *").await), vec![exists]);
    let last_uid = uids[uids.len() - 1];
    let uid_tail = imap
        .cmd(&format!("UID SEARCH UID {}:*", last_uid + 100))
        .await;
    assert_eq!(numbers(&uid_tail), vec![last_uid]);
    assert_eq!(
        numbers(&imap.cmd(&format!("SEARCH UID {}", uids[2])).await),
        vec![3]
    );

    // Header and body text.
    let pricing = numbers(&imap.cmd("SEARCH SUBJECT \"q1 PRICING\"").await);
    assert_eq!(pricing.len(), 2, "{pricing:?}");
    for seq in &pricing {
        assert!(subject_of(*seq).contains("Q1 pricing"));
    }
    let umlaut = with_literal(
        &mut imap,
        "L1",
        "SEARCH CHARSET UTF-8 SUBJECT",
        "BÜROSTÜHLE",
    )
    .await;
    umlaut.assert_ok();
    let umlaut = numbers(&umlaut);
    assert_eq!(umlaut.len(), 1);
    assert!(kunde.contains(&umlaut[0]));
    let body = with_literal(&mut imap, "L2", "UID SEARCH CHARSET UTF-8 BODY", "sièges").await;
    assert_eq!(
        numbers(&body).len(),
        1,
        "ISO-8859-1 body: {:#?}",
        body.untagged
    );
    let from = with_literal(&mut imap, "L3", "SEARCH FROM", "André").await;
    assert_eq!(
        numbers(&from),
        numbers(&body)
            .iter()
            .map(|uid| { uids.iter().position(|u| u == uid).expect("uid") as u32 + 1 })
            .collect::<Vec<_>>()
    );
    let text_and_flag = numbers(&imap.cmd("SEARCH TEXT fabrikam UNFLAGGED").await);
    let text = numbers(&imap.cmd("SEARCH TEXT fabrikam").await);
    assert!(text_and_flag.len() < text.len());
    assert!(text_and_flag
        .iter()
        .all(|s| text.contains(s) && !flagged.contains(s)));
    assert!(numbers(&imap.cmd("SEARCH BODY \"no such words anywhere\"").await).is_empty());
    let header = numbers(&imap.cmd("SEARCH HEADER Content-Type multipart").await);
    assert!(!header.is_empty() && header.len() < exists as usize);
    let present = numbers(&imap.cmd("SEARCH HEADER Subject \"\"").await);
    assert_eq!(present.len(), exists as usize);

    // Sizes and dates.
    let larger = numbers(&imap.cmd("SEARCH LARGER 3000").await);
    let smaller = numbers(&imap.cmd("SEARCH SMALLER 3001").await);
    assert_eq!(larger.len() + smaller.len(), exists as usize);
    assert_eq!(
        numbers(&imap.cmd("SEARCH ON 6-Jan-2026").await).len(),
        1,
        "one message received on 6 January"
    );
    let since = numbers(&imap.cmd("SEARCH SINCE 15-Jan-2026").await);
    let before = numbers(&imap.cmd("SEARCH BEFORE 15-Jan-2026").await);
    assert_eq!(since.len() + before.len(), exists as usize);
    let sent = numbers(
        &imap
            .cmd("SEARCH SENTSINCE 15-Jan-2026 SENTBEFORE 17-Jan-2026")
            .await,
    );
    assert_eq!(sent.len(), 2, "{sent:?}");

    // Charsets: US-ASCII and UTF-8 accepted, others refused with the list.
    imap.cmd("SEARCH CHARSET US-ASCII ALL").await.assert_ok();
    let refused = imap.cmd("SEARCH CHARSET ISO-8859-1 ALL").await;
    assert!(
        refused
            .status
            .starts_with("NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{}",
        refused.status
    );
    let bad = imap.cmd("SEARCH NOSUCHKEY").await;
    assert!(bad.status.starts_with("BAD"), "{}", bad.status);

    // A flag set with STORE is found at once.
    let unflagged = numbers(&imap.cmd("SEARCH UNFLAGGED").await);
    let target = unflagged[0];
    imap.cmd(&format!("STORE {target} +FLAGS (\\Flagged)"))
        .await
        .assert_ok();
    assert!(numbers(&imap.cmd("SEARCH FLAGGED").await).contains(&target));
    imap.cmd(&format!("STORE {target} -FLAGS (\\Flagged)"))
        .await
        .assert_ok();
    assert!(!numbers(&imap.cmd("SEARCH FLAGGED").await).contains(&target));

    // Another session expunges the last message: SEARCH must not report it (RFC 3501
    // 7.4.1), a later NOOP does.
    let mut other = Imap::login(demo.running.imap, DEMO_USER, DEMO_PASSWORD).await;
    other.cmd("SELECT INBOX").await.assert_ok();
    other
        .cmd(&format!("STORE {exists} +FLAGS (\\Deleted)"))
        .await
        .assert_ok();
    other.cmd("EXPUNGE").await.assert_ok();
    let during = imap.cmd("SEARCH ALL").await;
    during.assert_ok();
    assert!(
        during.untagged.iter().all(|l| !l.ends_with(" EXPUNGE")),
        "{:#?}",
        during.untagged
    );
    assert_eq!(numbers(&during).len(), exists as usize);
    let noop = imap.cmd("NOOP").await;
    assert!(
        noop.find(&format!("* {exists} EXPUNGE")).is_some(),
        "{:#?}",
        noop.untagged
    );
    assert_eq!(
        numbers(&imap.cmd("SEARCH ALL").await),
        (1..exists).collect::<Vec<_>>()
    );
}

/// Searches sent to both servers. `«…»` is sent as a literal (UTF-8 text).
/// RECENT, NEW and OLD are left out: Dovecot marks appended mail \Recent, the bridge has no
/// \Recent (SELECT answers RECENT 0, as RFC 9051 allows).
const QUERIES: &[&str] = &[
    "ALL",
    "ANSWERED",
    "UNANSWERED",
    "DELETED",
    "UNDELETED",
    "DRAFT",
    "UNDRAFT",
    "FLAGGED",
    "UNFLAGGED",
    "SEEN",
    "UNSEEN",
    "KEYWORD Kunde",
    "UNKEYWORD Kunde",
    "KEYWORD $Forwarded",
    "1:3",
    "2,4:*",
    "*",
    "BEFORE 10-Jan-2026",
    "ON 6-Jan-2026",
    "SINCE 14-Jan-2026",
    "SENTBEFORE 9-Jan-2026",
    "SENTON 6-Jan-2026",
    "SENTON 13-Jan-2026",
    "SENTSINCE 15-Jan-2026",
    "LARGER 1500",
    "SMALLER 1500",
    "LARGER 20000",
    "FROM fabrikam",
    "FROM \"Priya Natarajan\"",
    "FROM contoso.test",
    "TO info@contoso.test",
    "TO sales",
    "CC contoso",
    "BCC contoso",
    "SUBJECT \"q1 pricing\"",
    "SUBJECT RE:",
    "SUBJECT invoice",
    "HEADER Content-Type multipart",
    "HEADER Message-ID \"\"",
    "HEADER In-Reply-To \"\"",
    "HEADER References fabrikam",
    "HEADER X-Nonexistent \"\"",
    "BODY pricing",
    "BODY \"volume discount\"",
    "BODY \"<p>\"",
    "BODY logo",
    "BODY pdf",
    "TEXT fabrikam",
    "TEXT pdf",
    "TEXT \"Content-Transfer-Encoding\"",
    "TEXT multipart",
    "TEXT base64",
    "BODY \"\"",
    "OR FLAGGED SEEN",
    "NOT SEEN",
    "(SEEN FLAGGED)",
    "NOT (OR FROM fabrikam SUBJECT invoice)",
    "OR (SUBJECT pricing FROM priya) BODY discount",
    "UID 1:*",
    "CHARSET UTF-8 SUBJECT «Großbestellung»",
    "CHARSET UTF-8 SUBJECT «réunion»",
    "CHARSET UTF-8 FROM «Jürgen»",
    "CHARSET UTF-8 FROM «amélie»",
    "CHARSET UTF-8 BODY «Bürostühle»",
    "CHARSET UTF-8 BODY «sièges»",
    "CHARSET UTF-8 BODY «é»",
    "CHARSET UTF-8 BODY «€»",
    "CHARSET UTF-8 BODY «—»",
    "CHARSET UTF-8 TEXT «müller»",
    "CHARSET UTF-8 TEXT «Muller»",
    "CHARSET UTF-8 TEXT «grüße»",
    "CHARSET UTF-8 SUBJECT «für»",
    "CHARSET UTF-8 BODY «lieferzeit»",
];

/// Deliberate differences from Dovecot 2.3, each with the reason; printed, not compared.
/// Searches sent with RETURN options to both servers (flags and sets, where the two agree).
const ESEARCH_QUERIES: &[&str] = &[
    "ALL",
    "FLAGGED",
    "UNSEEN",
    "SEEN NOT FLAGGED",
    "2:4",
    "LARGER 1000000000",
];

fn known_difference(_folder: &str, query: &str) -> Option<&'static str> {
    match query {
        "2,4:*" => Some(
            "with fewer than 4 messages, RFC 3501 9 makes `4:*` the range from 4 to the \
             largest number in use, which includes it (as FETCH does); Dovecot reads `*` as \
             infinity here and finds nothing",
        ),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_results_match_dovecot() {
    if !Path::new(DOVECOT).exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: dovecot not installed (apt-get install dovecot-imapd)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "dovecot is required in CI for the SEARCH oracle"
        );
        return;
    }
    let demo = start_demo(None).await;
    let bridge_addr = demo.running.imap;
    tokio::task::spawn_blocking(move || compare_with_dovecot(bridge_addr))
        .await
        .expect("oracle thread");
}

/// Text searches over the MIME corpus of `fixtures/mime/` (the ugly kind: 8-bit headers,
/// folded encoded-words, unknown transfer encodings, digests, nested messages).
const CORPUS_QUERIES: &[&str] = &[
    "SUBJECT «grüße aus münchen und berlin»",
    "SUBJECT «MÜNCHEN UND»",
    "FROM «Jürgen Müller»",
    "TO «andré pirard»",
    "BODY «grüße aus»",
    "SUBJECT «Grüße»",
    "FROM «Jörg»",
    "BODY «schöne»",
    "BODY forwarded",
    "BODY «Original plain text»",
    "BODY «<p>»",
    "BODY «Just a body»",
    "SUBJECT original",
    "TEXT «Second, not multipart»",
    "TEXT «orig@example.org»",
    "HEADER X-Folded second",
    "HEADER X-Folded «first second»",
    "HEADER X-Empty \"\"",
    "HEADER X-Empty x",
    "SUBJECT «ugly   spacing»",
    "SUBJECT «ugly spacing»",
    "BODY «café au lait»",
    "BODY «lait=»",
    "TO «quoted \"name\" here»",
    "TO «plain comment»",
    "BODY «Item one»",
    "TEXT «first digest item»",
    "BODY «explicit text»",
    "BODY «hello, world»",
    "BODY «soft break»",
    "BODY «=ZZ»",
    "BODY «trailing space  »",
    "BODY «begin 644»",
    "TEXT «name*0»",
    "BODY AAEC",
    "BCC «grün»",
    "CC «weird name»",
    "HEADER In-Reply-To «<c@d>»",
    "SUBJECT \"\"",
    "SUBJECT «leading spaces»",
    "SENTON 17-Mar-2025",
    "SENTON 7-Mar-2025",
    "SENTON 13-Mar-2025",
    "SENTBEFORE 10-Mar-2025",
    "SENTSINCE 10-Mar-2025",
    "SENTBEFORE 1-Jan-2000",
    "LARGER 600",
    "SMALLER 600",
    "TEXT example",
    "BODY the",
    "BODY nothing",
    "TEXT «nothing but headers»",
    "HEADER Content-Type text/plain",
    "HEADER MIME-Version 1.0",
    "TEXT «content-type: text/plain»",
    "TEXT «Content-Transfer-Encoding: base64»",
    "BODY «LF only»",
    "TEXT «garbage»",
    "NOT BODY the",
    "OR SUBJECT digest BODY «café»",
];

/// The matcher alone, message by message, against Dovecot over `fixtures/mime/`.
#[test]
fn matcher_agrees_with_dovecot_on_the_mime_corpus() {
    if !Path::new(DOVECOT).exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: dovecot not installed (apt-get install dovecot-imapd)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "dovecot is required in CI for the SEARCH oracle"
        );
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mime");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures/mime")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    // The bridge stores bodies with CRLF line ends; Dovecot gets the same bytes.
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .map(|p| normalize_line_endings(&fs::read(p).expect("fixture")).into_owned())
        .collect();
    assert!(corpus.len() >= 15);
    let dovecot = Dovecot::start("search-oracle", "");
    let mut oracle = Client::connect(
        SocketAddr::from(([127, 0, 0, 1], dovecot.port)),
        "tester secret",
    );
    for message in &corpus {
        let (_, done) = oracle.append("INBOX", "", "01-Mar-2025 12:00:00 +0000", message);
        assert!(done.contains(" OK"), "APPEND: {done}");
    }
    let (_, done) = oracle.command("SELECT INBOX");
    assert!(done.contains(" OK"), "{done}");
    let mut failures = Vec::new();
    for query in CORPUS_QUERIES {
        let theirs = oracle.search(&format!("SEARCH CHARSET UTF-8 {query}"));
        let ours = local_search(query, &corpus);
        if theirs != Ok(ours.clone()) {
            let names: Vec<String> = ours
                .iter()
                .map(|n| files[*n as usize - 1].display().to_string())
                .collect();
            failures.push(format!(
                "SEARCH {query}\n  dovecot: {theirs:?}\n  ours:    {ours:?} {names:?}"
            ));
        }
    }
    for f in &failures {
        println!("MISMATCH: {f}");
    }
    println!(
        "oracle: {} corpus searches compared, {} mismatches",
        CORPUS_QUERIES.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches with Dovecot",
        failures.len()
    );
}

/// Sequence numbers of the corpus messages matching `query` (with `«…»` literals).
fn local_search(query: &str, corpus: &[Vec<u8>]) -> Vec<u32> {
    let mut line = b"a SEARCH CHARSET UTF-8 ".to_vec();
    let mut pieces = query.split('«');
    line.extend_from_slice(pieces.next().unwrap_or_default().as_bytes());
    for piece in pieces {
        let (literal, rest) = piece.split_once('»').expect("closing »");
        line.extend_from_slice(format!("{{{}}}\r\n{literal}{rest}", literal.len()).as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    let (_, command) = CommandCodec::default()
        .decode(&line)
        .unwrap_or_else(|e| panic!("{query}: {e:?}"));
    let CommandBody::Search { criteria, .. } = command.body else {
        panic!("not a SEARCH");
    };
    let scope = Scope {
        exists: corpus.len() as u32,
        max_uid: corpus.len() as u32,
    };
    let compiled = Query::compile(criteria.as_ref(), scope);
    let mut found = Vec::new();
    for (index, raw) in corpus.iter().enumerate() {
        let record = MessageRecord {
            uid: index as u32 + 1,
            graph_id: String::new(),
            flags: Flags::default(),
            keywords: String::new(),
            internal_date: 1_740_830_400,
            modseq: 1,
            size: None,
        };
        let candidate = Candidate {
            seq: index as u32 + 1,
            record: &record,
        };
        if compiled.matches(candidate, &Content::new(raw)) {
            found.push(index as u32 + 1);
        }
    }
    found
}

/// The demo folders compared, with their IMAP names on the bridge.
const FOLDERS: &[&str] = &[
    "INBOX",
    "\"Sent Items\"",
    "Drafts",
    "\"Deleted Items\"",
    "Archive",
    "Projects",
    "Projects/2026",
];

fn compare_with_dovecot(bridge_addr: SocketAddr) {
    let dovecot = Dovecot::start("search-oracle", "");
    let mut bridge = Client::connect(bridge_addr, &format!("{DEMO_USER} {DEMO_PASSWORD}"));
    let mut oracle = Client::connect(
        SocketAddr::from(([127, 0, 0, 1], dovecot.port)),
        "tester secret",
    );
    let mut compared = 0;
    let mut known = Vec::new();
    let mut failures = Vec::new();
    for (index, folder) in FOLDERS.iter().enumerate() {
        let copy = format!("copy{index}");
        let (_, done) = oracle.command(&format!("CREATE {copy}"));
        assert!(done.contains(" OK"), "CREATE: {done}");
        let (_, done) = bridge.command(&format!("EXAMINE {folder}"));
        assert!(done.contains(" OK"), "EXAMINE {folder}: {done}");
        let (fetched, done) = bridge.command("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
        assert!(done.contains(" OK"), "FETCH {folder}: {done}");
        let mut bridge_uids = Vec::new();
        for response in &fetched {
            let message = Fetched::parse(response);
            bridge_uids.push(message.uid);
            let flags = message.flags.replace("\\Recent", "");
            let (_, done) = oracle.append(&copy, flags.trim(), &message.date, &message.body);
            assert!(done.contains(" OK"), "APPEND to Dovecot: {done}");
        }
        let (_, done) = oracle.command(&format!("SELECT {copy}"));
        assert!(done.contains(" OK"), "SELECT {copy}: {done}");
        let (_, done) = oracle.command("UID SEARCH ALL");
        assert!(done.contains(" OK"), "{done}");
        for query in QUERIES {
            let theirs = oracle.search(&format!("SEARCH {query}"));
            let ours = bridge.search(&format!("SEARCH {query}"));
            compared += 1;
            if theirs == ours {
                continue;
            }
            let line =
                format!("{folder} SEARCH {query}\n  dovecot: {theirs:?}\n  ours:    {ours:?}");
            match known_difference(folder, query) {
                Some(why) => known.push(format!("{line}\n  why: {why}")),
                None => failures.push(line),
            }
        }
        // ESEARCH (RFC 4731): the same MIN, MAX, COUNT and ALL, whatever their order.
        for query in ESEARCH_QUERIES {
            for options in ["(MIN MAX COUNT ALL)", "()", "(COUNT)"] {
                let command = format!("SEARCH RETURN {options} {query}");
                let theirs = oracle.esearch(&command);
                let ours = bridge.esearch(&command);
                compared += 1;
                if theirs != ours || ours.is_err() {
                    failures.push(format!(
                        "{folder} {command}\n  dovecot: {theirs:?}\n  ours:    {ours:?}"
                    ));
                }
            }
        }
        // UID SEARCH names the same messages (UIDs differ between the servers).
        let ours = bridge.search("UID SEARCH FLAGGED");
        let by_seq = bridge.search("SEARCH FLAGGED");
        let mapped: Result<Vec<u32>, String> =
            by_seq.map(|seqs| seqs.iter().map(|s| bridge_uids[*s as usize - 1]).collect());
        assert_eq!(ours, mapped, "{folder}: UID SEARCH and SEARCH disagree");
    }
    println!(
        "oracle: {compared} searches compared, {} known differences, {} mismatches",
        known.len(),
        failures.len()
    );
    for k in &known {
        println!("known difference: {k}");
    }
    for f in &failures {
        println!("MISMATCH: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with Dovecot",
        failures.len()
    );
    assert!(compared >= 400, "too few searches compared: {compared}");
}

/// One `* n FETCH (UID u FLAGS (...) INTERNALDATE "..." BODY[] {n}...)` response.
struct Fetched {
    uid: u32,
    flags: String,
    date: String,
    body: Vec<u8>,
}

impl Fetched {
    fn parse(response: &[u8]) -> Fetched {
        let open = response.iter().position(|&b| b == b'{').expect("a literal");
        let head = String::from_utf8_lossy(&response[..open]).into_owned();
        let close = open + response[open..].iter().position(|&b| b == b'}').expect("}");
        let len: usize = String::from_utf8_lossy(&response[open + 1..close])
            .parse()
            .expect("length");
        let start = close + 3;
        let body = response[start..start + len].to_vec();
        let between = |from: &str, to: &str| {
            let rest = head.split(from).nth(1).expect("item present");
            rest.split(to).next().expect("item end").to_string()
        };
        Fetched {
            uid: between("UID ", " ").parse().expect("UID"),
            flags: between("FLAGS (", ")"),
            date: between("INTERNALDATE \"", "\""),
            body,
        }
    }
}

/// A blocking IMAP client that keeps response bytes as they are (message bodies may be
/// ISO-8859-1) and sends `«…»` parts of a command as synchronising literals.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Client {
    fn connect(addr: SocketAddr, credentials: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = client.read_response();
        assert!(greeting.starts_with(b"* OK"), "greeting {greeting:?}");
        let (_, done) = client.command(&format!("LOGIN {credentials}"));
        assert!(done.contains(" OK"), "LOGIN: {done}");
        client
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Sends a command; returns the untagged responses and the tagged completion.
    fn command(&mut self, command: &str) -> (Vec<Vec<u8>>, String) {
        let tag = self.next_tag();
        let mut pieces = command.split('«');
        let first = pieces.next().unwrap_or_default();
        let mut pending = format!("{tag} {first}");
        for piece in pieces {
            let (literal, rest) = piece.split_once('»').expect("closing »");
            pending.push_str(&format!("{{{}}}\r\n", literal.len()));
            self.writer.write_all(pending.as_bytes()).expect("send");
            let cont = self.read_response();
            assert!(cont.starts_with(b"+"), "no continuation: {cont:?}");
            pending = format!("{literal}{rest}");
        }
        pending.push_str("\r\n");
        self.writer.write_all(pending.as_bytes()).expect("send");
        self.until_tagged(&tag)
    }

    /// The numbers of a SEARCH, or the completion line when it failed.
    fn search(&mut self, command: &str) -> Result<Vec<u32>, String> {
        let (untagged, done) = self.command(command);
        if !done.contains(" OK") {
            return Err(done
                .split_once(' ')
                .map_or(done.clone(), |(_, s)| s.trim().into()));
        }
        let line = untagged
            .iter()
            .find(|l| l.starts_with(b"* SEARCH"))
            .ok_or_else(|| "no SEARCH response".to_string())?;
        let mut found: Vec<u32> = String::from_utf8_lossy(&line[8..])
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The items of an ESEARCH answer (without its TAG correlator) as name → value, or the
    /// completion line when it failed.
    fn esearch(&mut self, command: &str) -> Result<BTreeMap<String, String>, String> {
        let (untagged, done) = self.command(command);
        if !done.contains(" OK") {
            return Err(done);
        }
        let line = untagged
            .iter()
            .find(|l| l.starts_with(b"* ESEARCH"))
            .ok_or_else(|| "no ESEARCH response".to_string())?;
        let text = String::from_utf8_lossy(line);
        let items = match text.split_once(") ") {
            Some((_, items)) if text.contains("(TAG ") => items.trim().to_string(),
            _ if text.contains("(TAG ") => String::new(),
            _ => return Err(format!("no TAG correlator: {text}")),
        };
        let words: Vec<&str> = items.split_whitespace().collect();
        Ok(words
            .chunks(2)
            .map(|pair| (pair[0].to_string(), pair.get(1).unwrap_or(&"").to_string()))
            .collect())
    }

    fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        date: &str,
        message: &[u8],
    ) -> (Vec<Vec<u8>>, String) {
        let tag = self.next_tag();
        let head = format!(
            "{tag} APPEND {mailbox} ({flags}) \"{date}\" {{{}}}\r\n",
            message.len()
        );
        self.writer.write_all(head.as_bytes()).expect("send");
        let cont = self.read_response();
        assert!(cont.starts_with(b"+"), "no continuation: {cont:?}");
        self.writer.write_all(message).expect("send");
        self.writer.write_all(b"\r\n").expect("send");
        self.until_tagged(&tag)
    }

    fn until_tagged(&mut self, tag: &str) -> (Vec<Vec<u8>>, String) {
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response();
            if response.starts_with(format!("{tag} ").as_bytes()) {
                return (
                    untagged,
                    String::from_utf8_lossy(&response).trim_end().to_string(),
                );
            }
            untagged.push(response);
        }
    }

    /// One response with the literals it carries.
    fn read_response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self.reader.read_until(b'\n', &mut out).expect("read");
            assert!(n > 0, "server closed the connection");
            match literal_len(&out[start..]) {
                Some(len) => {
                    let mut data = vec![0; len];
                    self.reader.read_exact(&mut data).expect("literal");
                    out.extend_from_slice(&data);
                }
                None => return out,
            }
        }
    }
}

/// The length of the literal announced at the end of `line`, if any.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}\r\n")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..])
        .ok()?
        .trim_end_matches('+')
        .parse()
        .ok()
}
