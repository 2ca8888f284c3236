//! How an APPEND reaches Graph. Graph creates messages from MIME only as drafts, so a
//! non-draft is re-expressed as Graph JSON with PidTagMessageFlags set (graph-facts, "Create
//! from MIME"). Graph's rendering differs from the bytes; the bridge serves its own copy.
//!
//! One Graph request carries at most 4 MB. A message that fits goes in one request; a larger
//! one is created as JSON with the attachments that fit beside its text, and the others are
//! added to it afterwards, each on its own (graph-facts, "Request size"). Exchange's message
//! size limit (35 MB by default) still applies: Graph refuses what is over it.

use base64::Engine;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{json, Value};

use crate::mailstore::Flags;

/// PidTagMessageFlags bits: read (0x1); unsent (0x8) is left off so the item is no draft.
const MSGFLAG_READ: u32 = 0x1;

/// The largest request body the bridge sends Graph. Graph refuses bodies over 4 MB with 413;
/// whether that MB is 10^6 or 2^20 bytes is not documented, so this stays under the smaller
/// with a margin of 5 %.
pub const REQUEST_LIMIT: usize = 3_800_000;

/// Why a message cannot be created in Graph.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the message is not valid RFC 5322")]
    Unparsable,
    #[error(
        "the message's text alone is {size} bytes as Graph JSON, more than the 4 MB Graph \
         takes in one request (attachments can be added one by one, the text cannot)"
    )]
    TextTooLarge { size: usize },
    #[error("cannot attach \"{name}\" ({size} bytes): {source}")]
    Attachment {
        name: String,
        size: usize,
        #[source]
        source: crate::graph::GraphError,
    },
}

/// How the message is created.
#[derive(Debug)]
pub enum Plan {
    /// A draft that fits in one request: created from the client's MIME.
    Mime,
    /// Graph JSON, with the attachments that fit beside the text; `later` are added to the
    /// created message one by one, in their order in the message.
    Json {
        message: Value,
        later: Vec<Attachment>,
    },
}

impl Plan {
    /// The flags and keywords the message has in Graph once created. A MIME-created draft
    /// comes back read, unflagged and without categories; JSON carries read, flagged and the
    /// categories. Neither carries \Answered/$Forwarded (Graph's last-verb property).
    pub fn created_state<'k>(&self, flags: Flags, keywords: &'k str) -> (Flags, &'k str) {
        match self {
            Plan::Mime => (Flags(Flags::SEEN | Flags::DRAFT), ""),
            Plan::Json { .. } => {
                let created = Flags::default()
                    .with(Flags::SEEN, flags.has(Flags::SEEN))
                    .with(Flags::FLAGGED, flags.has(Flags::FLAGGED))
                    .with(Flags::DRAFT, flags.has(Flags::DRAFT));
                (created, keywords)
            }
        }
    }
}

/// A file of the message, as Graph takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    /// Set for an inline part (an image the HTML refers to by `cid:`).
    pub content_id: Option<String>,
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// The `fileAttachment` of a message's `attachments` or of `POST …/attachments`.
    pub fn json(&self) -> Value {
        self.json_with(base64::engine::general_purpose::STANDARD.encode(&self.bytes))
    }

    fn json_with(&self, content_bytes: String) -> Value {
        let mut attachment = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type,
            "contentBytes": content_bytes,
        });
        if let Some(id) = &self.content_id {
            attachment["contentId"] = json!(id);
            attachment["isInline"] = json!(true);
        }
        attachment
    }

    /// The length of `json()` serialized, without encoding the bytes: base64 needs no JSON
    /// escaping, so the encoded bytes add exactly their own length.
    pub fn json_size(&self) -> usize {
        serialized_size(&self.json_with(String::new())) + base64_len(self.bytes.len())
    }

    /// Whether `POST …/attachments` can carry it; otherwise it takes an upload session.
    /// Graph's docs draw the line at 3 MB of file, but a 3 MB file is 4 MB of base64, so the
    /// request size decides (an upload session takes any file up to 150 MB).
    pub fn fits_one_request(&self) -> bool {
        self.json_size() <= REQUEST_LIMIT
    }

    /// The `AttachmentItem` of `createUploadSession`.
    pub fn upload_item(&self) -> Value {
        let mut item = json!({
            "attachmentType": "file",
            "name": self.name,
            "contentType": self.content_type,
            "size": self.bytes.len(),
        });
        if let Some(id) = &self.content_id {
            item["contentId"] = json!(id);
            item["isInline"] = json!(true);
        }
        item
    }
}

/// How to create `raw` in Graph with `flags` and `keywords`: a `\Draft` from its MIME when
/// that fits in one request, anything else as JSON.
pub fn plan(raw: &[u8], flags: Flags, keywords: &str) -> Result<Plan, AppendError> {
    let draft = flags.has(Flags::DRAFT);
    if draft && base64_len(raw.len()) <= REQUEST_LIMIT {
        return Ok(Plan::Mime);
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(AppendError::Unparsable)?;
    let json = message_json(&message, flags, keywords);
    let (message, later) = split(json, attachments(&message), REQUEST_LIMIT)?;
    Ok(Plan::Json { message, later })
}

/// Graph JSON of the message without its attachments. A non-draft carries
/// PidTagMessageFlags without the unsent bit; a draft leaves it out (Graph then makes a
/// draft) and says whether it is read instead.
fn message_json(message: &mail_parser::Message<'_>, flags: Flags, keywords: &str) -> Value {
    let mut json = json!({
        "subject": message.subject().unwrap_or_default(),
        "body": body(message),
        "toRecipients": recipients(message.to()),
        "ccRecipients": recipients(message.cc()),
        "bccRecipients": recipients(message.bcc()),
        "replyTo": recipients(message.reply_to()),
    });
    if flags.has(Flags::DRAFT) {
        json["isRead"] = json!(flags.has(Flags::SEEN));
    } else {
        let message_flags = if flags.has(Flags::SEEN) {
            MSGFLAG_READ
        } else {
            0
        };
        json["singleValueExtendedProperties"] =
            json!([{"id": "Integer 0x0E07", "value": message_flags.to_string()}]);
    }
    if let Some(from) = recipients(message.from())
        .as_array()
        .and_then(|a| a.first())
    {
        json["from"] = from.clone();
    }
    if flags.has(Flags::FLAGGED) {
        json["flag"] = json!({"flagStatus": "flagged"});
    }
    let categories: Vec<&str> = keywords
        .split(super::CATEGORY_SEPARATOR)
        .filter(|c| !c.is_empty())
        .collect();
    if !categories.is_empty() {
        json["categories"] = json!(categories);
    }
    json
}

/// Puts into `message` the attachments that fit beside it in `limit` bytes, smallest first
/// (so the fewest requests follow), and returns it with the rest in their original order.
/// Everything fits: one request. The message alone does not fit: no request can make it.
fn split(
    mut message: Value,
    attachments: Vec<Attachment>,
    limit: usize,
) -> Result<(Value, Vec<Attachment>), AppendError> {
    if attachments.is_empty() {
        let size = serialized_size(&message);
        return if size <= limit {
            Ok((message, attachments))
        } else {
            Err(AppendError::TextTooLarge { size })
        };
    }
    message["attachments"] = json!([]);
    let mut used = serialized_size(&message);
    if used > limit {
        return Err(AppendError::TextTooLarge { size: used });
    }
    let sizes: Vec<usize> = attachments.iter().map(Attachment::json_size).collect();
    let mut by_size: Vec<usize> = (0..attachments.len()).collect();
    by_size.sort_by_key(|&i| sizes[i]);
    let mut inline = vec![false; attachments.len()];
    for (count, i) in by_size.into_iter().enumerate() {
        // A comma separates it from the one before.
        let extra = sizes[i] + usize::from(count > 0);
        if used + extra > limit {
            break;
        }
        used += extra;
        inline[i] = true;
    }
    let mut inlined = Vec::new();
    let mut later = Vec::new();
    for (attachment, inline) in attachments.into_iter().zip(inline) {
        if inline {
            inlined.push(attachment.json());
        } else {
            later.push(attachment);
        }
    }
    if inlined.is_empty() {
        if let Some(object) = message.as_object_mut() {
            object.remove("attachments");
        }
    } else {
        message["attachments"] = Value::Array(inlined);
    }
    Ok((message, later))
}

fn body(message: &mail_parser::Message<'_>) -> Value {
    match message.body_html(0) {
        Some(html) if message.html_body.first() != message.text_body.first() => {
            json!({"contentType": "html", "content": html})
        }
        _ => json!({"contentType": "text", "content": message.body_text(0).unwrap_or_default()}),
    }
}

fn recipients(address: Option<&Address<'_>>) -> Value {
    let Some(address) = address else {
        return json!([]);
    };
    Value::Array(
        address
            .iter()
            .filter_map(|a| {
                let email = a.address()?;
                Some(json!({"emailAddress": {"name": a.name().unwrap_or_default(), "address": email}}))
            })
            .collect(),
    )
}

fn attachments(message: &mail_parser::Message<'_>) -> Vec<Attachment> {
    message
        .attachments()
        .map(|part| Attachment {
            name: part.attachment_name().unwrap_or("attachment").to_string(),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            content_id: part.content_id().map(str::to_string),
            bytes: crate::rfc822::part_bytes(message, part),
        })
        .collect()
}

/// The length of `value` as serde_json writes it (as reqwest sends it), without keeping it.
fn serialized_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Length of the padded base64 of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] =
        b"From: Anna <anna@example.test>\r\nTo: sales@contoso.test\r\nSubject: Offer\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=offer.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQK\r\n--b--\r\n";

    fn json_of(plan: Plan) -> (Value, Vec<Attachment>) {
        match plan {
            Plan::Json { message, later } => (message, later),
            Plan::Mime => panic!("expected JSON"),
        }
    }

    fn file(name: &str, size: usize) -> Attachment {
        Attachment {
            name: name.into(),
            content_type: "application/octet-stream".into(),
            content_id: None,
            bytes: vec![b'x'; size],
        }
    }

    /// A message with files of the given sizes, base64 at 76 columns.
    fn with_files(sizes: &[usize]) -> Vec<u8> {
        let mut raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: Files\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nFiles.\r\n"
            .to_vec();
        for (i, size) in sizes.iter().enumerate() {
            raw.extend_from_slice(
                format!(
                    "--b\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=f{i}.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                )
                .as_bytes(),
            );
            let data = base64::engine::general_purpose::STANDARD.encode(vec![i as u8; *size]);
            for line in data.as_bytes().chunks(76) {
                raw.extend_from_slice(line);
                raw.extend_from_slice(b"\r\n");
            }
        }
        raw.extend_from_slice(b"--b--\r\n");
        raw
    }

    #[test]
    fn a_read_message_with_attachment_becomes_non_draft_json() {
        let (json, later) = json_of(plan(OFFER, Flags(Flags::SEEN), "Kunde").expect("plan"));
        assert!(later.is_empty());
        assert_eq!(json["subject"], "Offer");
        assert_eq!(json["from"]["emailAddress"]["address"], "anna@example.test");
        assert_eq!(
            json["singleValueExtendedProperties"][0]["id"],
            "Integer 0x0E07"
        );
        assert_eq!(json["singleValueExtendedProperties"][0]["value"], "1");
        assert_eq!(json["attachments"][0]["name"], "offer.pdf");
        assert_eq!(json["attachments"][0]["contentType"], "application/pdf");
        assert_eq!(json["attachments"][0]["contentBytes"], "JVBERi0xLjQK");
        assert_eq!(json["categories"][0], "Kunde");
        assert_eq!(
            json["body"]["content"].as_str().map(str::trim),
            Some("See attached.")
        );
    }

    #[test]
    fn unread_is_flag_zero() {
        let plan = plan(b"Subject: x\r\n\r\nbody\r\n", Flags::default(), "").expect("plan");
        let (json, _) = json_of(plan);
        assert_eq!(json["singleValueExtendedProperties"][0]["value"], "0");
        assert!(json.get("attachments").is_none());
    }

    #[test]
    fn a_small_draft_goes_as_mime() {
        let plan = plan(OFFER, Flags(Flags::DRAFT), "").expect("plan");
        assert!(matches!(plan, Plan::Mime));
        assert_eq!(
            plan.created_state(Flags(Flags::DRAFT), "Kunde"),
            (Flags(Flags::SEEN | Flags::DRAFT), "")
        );
    }

    #[test]
    fn a_large_draft_goes_as_json_without_message_flags() {
        let raw = with_files(&[3_500_000]);
        let flags = Flags(Flags::DRAFT | Flags::FLAGGED);
        let plan = plan(&raw, flags, "Kunde").expect("plan");
        assert_eq!(
            plan.created_state(flags, "Kunde"),
            (Flags(Flags::DRAFT | Flags::FLAGGED), "Kunde")
        );
        let (json, later) = json_of(plan);
        assert!(json.get("singleValueExtendedProperties").is_none());
        assert_eq!(json["isRead"], false);
        assert_eq!(json["flag"]["flagStatus"], "flagged");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].name, "f0.bin");
        assert_eq!(later[0].bytes, vec![0u8; 3_500_000]);
    }

    #[test]
    fn what_fits_goes_in_one_request() {
        let raw = with_files(&[1_000_000, 1_000_000]);
        assert!(raw.len() > 2_600_000);
        let (json, later) = json_of(plan(&raw, Flags::default(), "").expect("plan"));
        assert!(later.is_empty());
        assert_eq!(json["attachments"].as_array().map(Vec::len), Some(2));
        assert!(serialized_size(&json) <= REQUEST_LIMIT);
    }

    #[test]
    fn files_that_do_not_fit_are_added_later_in_their_order() {
        // 6 MB and 1 MB files: the small one rides with the message, the big one follows.
        let raw = with_files(&[6_000_000, 1_000_000]);
        let (json, later) = json_of(plan(&raw, Flags(Flags::SEEN), "").expect("plan"));
        assert!(serialized_size(&json) <= REQUEST_LIMIT);
        let inline: Vec<&str> = json["attachments"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(inline, vec!["f1.bin"]);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].name, "f0.bin");
        assert!(!later[0].fits_one_request());
        // Three files of 1.3 MB: two fit beside the text, the third follows on its own POST.
        let raw = with_files(&[1_300_000, 1_300_000, 1_300_000]);
        let (json, later) = json_of(plan(&raw, Flags::default(), "").expect("plan"));
        assert_eq!(json["attachments"].as_array().map(Vec::len), Some(2));
        assert_eq!(later.len(), 1);
        assert!(later[0].fits_one_request());
    }

    #[test]
    fn the_split_keeps_small_files_first_and_the_order_of_the_rest() {
        let message = json!({"subject": "s"});
        let files = vec![
            file("a", 300),
            file("b", 30),
            file("c", 3000),
            file("d", 200),
        ];
        let (json, later) = split(message.clone(), files.clone(), 900).expect("split");
        let names: Vec<&str> = json["attachments"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["b", "d"]);
        let later: Vec<&str> = later.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(later, vec!["a", "c"]);
        assert!(serialized_size(&json) <= 900);
        // Everything fits: all of them, in order.
        let (json, later) = split(message.clone(), files.clone(), 100_000).expect("split");
        assert!(later.is_empty());
        assert_eq!(json["attachments"][0]["name"], "a");
        assert_eq!(json["attachments"][3]["name"], "d");
        // Nothing fits beside the text: no empty list is sent.
        let (json, later) = split(message, files, 60).expect("split");
        assert!(json.get("attachments").is_none());
        assert_eq!(later.len(), 4);
    }

    #[test]
    fn the_size_is_exact_at_the_limit() {
        let message = json!({"subject": "s"});
        let files = vec![file("a", 100), file("b", 100)];
        let mut whole = message.clone();
        whole["attachments"] = json!([files[0].json(), files[1].json()]);
        let exact = serialized_size(&whole);
        let (_, later) = split(message.clone(), files.clone(), exact).expect("split");
        assert!(later.is_empty());
        let (_, later) = split(message, files, exact - 1).expect("split");
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn text_over_the_limit_cannot_be_created() {
        let mut raw = b"Subject: long\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'a', REQUEST_LIMIT + 10));
        raw.extend_from_slice(b"\r\n");
        let error = plan(&raw, Flags::default(), "").expect_err("too large");
        assert!(matches!(error, AppendError::TextTooLarge { .. }), "{error}");
        // With files the text still has to fit alone.
        let (message, files) = (json!({"subject": "x".repeat(100)}), vec![file("a", 10)]);
        let error = split(message, files, 50).expect_err("too large");
        assert!(matches!(error, AppendError::TextTooLarge { .. }), "{error}");
    }

    #[test]
    fn attachment_size_is_measured_without_encoding() {
        for size in [0, 1, 2, 3, 4, 1000] {
            let mut attachment = file("name \"quoted\" ü", size);
            assert_eq!(
                attachment.json_size(),
                serde_json::to_vec(&attachment.json())
                    .map(|v| v.len())
                    .unwrap_or(0)
            );
            attachment.content_id = Some("img1@x".into());
            assert_eq!(
                attachment.json_size(),
                serde_json::to_vec(&attachment.json())
                    .map(|v| v.len())
                    .unwrap_or(0)
            );
        }
    }

    #[test]
    fn text_files_keep_their_bytes() {
        let binary: Vec<u8> = (0..=255u8).collect();
        let raw = format!(
            "Subject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nBody.\r\n\
--b\r\nContent-Type: text/plain; name=bin.txt\r\nContent-Disposition: attachment; filename=bin.txt\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=qp.txt\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe=\r\n aus K=F6ln\r\n\
--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=plain.csv\r\n\r\n\
a;b\r\n1;2\r\n--b--\r\n",
            base64::engine::general_purpose::STANDARD.encode(&binary)
        );
        let (json, _) = json_of(plan(raw.as_bytes(), Flags::default(), "").expect("plan"));
        let files: Vec<(String, Vec<u8>)> = json["attachments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(x["contentBytes"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        (x["name"].as_str().unwrap_or_default().to_string(), bytes)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            files,
            vec![
                ("bin.txt".to_string(), binary),
                ("qp.txt".to_string(), b"Gr\xfc\xdfe aus K\xf6ln".to_vec()),
                ("plain.csv".to_string(), b"a;b\r\n1;2".to_vec()),
            ]
        );
    }

    #[test]
    fn inline_parts_keep_their_content_id() {
        let raw = b"Subject: pic\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n\
<img src=\"cid:img1@x\">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--r--\r\n";
        let (json, _) = json_of(plan(raw, Flags::default(), "").expect("plan"));
        assert_eq!(json["attachments"][0]["isInline"], true);
        assert_eq!(json["attachments"][0]["contentId"], "img1@x");
        let item = Attachment {
            content_id: Some("img1@x".into()),
            ..file("pic.png", 10)
        }
        .upload_item();
        assert_eq!(item["contentId"], "img1@x");
        assert_eq!(item["isInline"], true);
        assert_eq!(item["size"], 10);
    }
}
