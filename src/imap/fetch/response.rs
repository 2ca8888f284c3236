//! FETCH responses written straight to bytes.
//!
//! A FETCH of a whole folder answers one response per message. Built as imap-types values
//! and encoded by imap-codec one queued response at a time, each cost more than its items:
//! the values are cloned, every string is escaped again, and each response is a write of its
//! own. Here the frequent items are written directly, ENVELOPE/BODY/BODYSTRUCTURE arrive
//! already encoded from the structure cache, BODY[] and RFC822 are copied once into a
//! literal, and everything else goes through imap-codec, so the bytes are the same as
//! imap-codec's. The session sends a run of these responses as one block.

use std::io::Write;
use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::ResponseCodec;

/// One `* n FETCH (...)` response being written to the end of a buffer.
pub struct FetchResponse<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> FetchResponse<'o> {
    pub fn start(out: &'o mut Vec<u8>, seq: NonZeroU32) -> FetchResponse<'o> {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "* {seq} FETCH (");
        FetchResponse { out, empty: true }
    }

    /// The buffer, positioned for the next item.
    fn next_item(&mut self) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b' ');
        }
        self.empty = false;
        self.out
    }

    pub fn uid(&mut self, uid: u32) {
        let _ = write!(self.next_item(), "UID {uid}");
    }

    pub fn rfc822_size(&mut self, size: u32) {
        let _ = write!(self.next_item(), "RFC822.SIZE {size}");
    }

    pub fn modseq(&mut self, modseq: u64) {
        let _ = write!(self.next_item(), "MODSEQ ({modseq})");
    }

    /// INTERNALDATE from seconds since the epoch, in UTC.
    pub fn internal_date(&mut self, unix: i64) {
        let utc = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
        let _ = write!(
            self.next_item(),
            "INTERNALDATE \"{}\"",
            utc.format("%d-%b-%Y %H:%M:%S +0000")
        );
    }

    pub fn flags(&mut self, flags: &[FlagFetch<'_>]) {
        let out = self.next_item();
        out.extend_from_slice(b"FLAGS (");
        for (at, flag) in flags.iter().enumerate() {
            if at > 0 {
                out.push(b' ');
            }
            match flag {
                FlagFetch::Recent => out.extend_from_slice(b"\\Recent"),
                FlagFetch::Flag(flag) => write_flag(out, flag),
            }
        }
        out.push(b')');
    }

    /// An item encoded beforehand (a cached ENVELOPE, say), name included.
    pub fn encoded(&mut self, item: &[u8]) {
        self.next_item().extend_from_slice(item);
    }

    /// `name` followed by `data` as a literal: `BODY[] {n}` CRLF and the bytes.
    pub fn literal(&mut self, name: &str, data: &[u8]) {
        let out = self.next_item();
        let _ = write!(out, "{name} {{{}}}\r\n", data.len());
        out.extend_from_slice(data);
    }

    /// Any other item, as imap-codec encodes it.
    pub fn item(&mut self, item: MessageDataItem<'_>) {
        let encoded = encode_item(item);
        self.next_item().extend_from_slice(&encoded);
    }

    pub fn finish(self) {
        self.out.extend_from_slice(b")\r\n");
    }
}

fn write_flag(out: &mut Vec<u8>, flag: &Flag<'_>) {
    match flag {
        Flag::Seen => out.extend_from_slice(b"\\Seen"),
        Flag::Answered => out.extend_from_slice(b"\\Answered"),
        Flag::Flagged => out.extend_from_slice(b"\\Flagged"),
        Flag::Deleted => out.extend_from_slice(b"\\Deleted"),
        Flag::Draft => out.extend_from_slice(b"\\Draft"),
        Flag::Keyword(atom) => out.extend_from_slice(atom.as_ref().as_bytes()),
        Flag::Extension(_) => {
            let _ = write!(out, "{flag}");
        }
    }
}

/// One FETCH item as imap-codec writes it inside a response (`ENVELOPE (...)`, say).
pub fn encode_item(item: MessageDataItem<'_>) -> Vec<u8> {
    const PREFIX: &[u8] = b"* 1 FETCH (";
    const SUFFIX: &[u8] = b")\r\n";
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    let mut bytes = ResponseCodec::default().encode(&response).dump();
    if bytes.starts_with(PREFIX) && bytes.ends_with(SUFFIX) {
        bytes.truncate(bytes.len() - SUFFIX.len());
        bytes.drain(..PREFIX.len());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use imap_codec::imap_types::core::{Atom, IString, Literal, NString};
    use imap_codec::imap_types::datetime::DateTime;
    use imap_codec::imap_types::flag::Flag;

    use super::*;

    fn codec(seq: u32, items: Vec<MessageDataItem<'static>>) -> Vec<u8> {
        let response = Response::Data(Data::Fetch {
            seq: NonZeroU32::new(seq).expect("seq"),
            items: Vec1::try_from(items).expect("items"),
        });
        ResponseCodec::default().encode(&response).dump()
    }

    #[test]
    fn written_items_are_imap_codecs_bytes() {
        let flags = vec![
            FlagFetch::Flag(Flag::Seen),
            FlagFetch::Flag(Flag::Answered),
            FlagFetch::Flag(Flag::Flagged),
            FlagFetch::Flag(Flag::Deleted),
            FlagFetch::Flag(Flag::Draft),
            FlagFetch::Recent,
            FlagFetch::Flag(Flag::Keyword(Atom::try_from("Kund&AOk-").expect("atom"))),
        ];
        let unix = 1_767_603_600; // 05-Jan-2026 09:00:00 UTC
        let utc = chrono::DateTime::from_timestamp(unix, 0).expect("date");
        let date = DateTime::try_from(utc.fixed_offset()).expect("date");
        let body = b"Subject: x\r\n\r\nHello\r\n".to_vec();
        let expected = codec(
            42,
            vec![
                MessageDataItem::Uid(NonZeroU32::new(7).expect("uid")),
                MessageDataItem::Flags(flags.clone()),
                MessageDataItem::Rfc822Size(12345),
                MessageDataItem::InternalDate(date),
                MessageDataItem::ModSeq(NonZeroU64::new(99).expect("modseq")),
                MessageDataItem::BodyExt {
                    section: None,
                    origin: None,
                    data: NString(Some(IString::Literal(
                        Literal::try_from(body.clone()).expect("literal"),
                    ))),
                },
                MessageDataItem::Rfc822Size(0),
            ],
        );
        let mut out = Vec::new();
        let mut response = FetchResponse::start(&mut out, NonZeroU32::new(42).expect("seq"));
        response.uid(7);
        response.flags(&flags);
        response.rfc822_size(12345);
        response.internal_date(unix);
        response.modseq(99);
        response.literal("BODY[]", &body);
        response.item(MessageDataItem::Rfc822Size(0));
        response.finish();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn an_empty_flag_list() {
        let mut out = Vec::new();
        let mut response = FetchResponse::start(&mut out, NonZeroU32::MIN);
        response.flags(&[]);
        response.finish();
        assert_eq!(out, codec(1, vec![MessageDataItem::Flags(vec![])]));
    }

    use std::num::NonZeroU64;
}
