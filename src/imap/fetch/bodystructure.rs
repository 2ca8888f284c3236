//! BODY and BODYSTRUCTURE (RFC 3501 7.4.2) from the MIME tree.
//!
//! Sizes are body octets as served; line counts (for text/* and message/rfc822) are
//! the number of LF in the body, the boundary's line end excluded — Dovecot counts the
//! same way. Extension data is always written in full (MD5, disposition, language,
//! location), NIL where absent.

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, Vec1};

use super::envelope::envelope;
use super::header;
use super::mime::{Entity, Kind};
use super::params::{self, ContentType, Params};
use super::strings::{istring, nstring, unfold};

/// The BODYSTRUCTURE (or, without extension data, BODY) of `entity`.
pub(crate) fn body_structure(raw: &[u8], entity: &Entity, ext: bool) -> BodyStructure<'static> {
    match &entity.kind {
        Kind::Multipart(children) => multipart(raw, entity, children, ext),
        Kind::Message(inner) => single(raw, entity, Some(inner), ext),
        Kind::Leaf { .. } => single(raw, entity, None, ext),
    }
}

fn multipart(
    raw: &[u8],
    entity: &Entity,
    children: &[Entity],
    ext: bool,
) -> BodyStructure<'static> {
    let bodies: Vec<_> = children
        .iter()
        .map(|c| body_structure(raw, c, ext))
        .collect();
    // RFC 3501 requires at least one part; a multipart without any (no boundary
    // found) is shown with one empty text/plain part, as Dovecot does.
    let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_part(ext)));
    let header_bytes = &raw[entity.header.clone()];
    BodyStructure::Multi {
        bodies,
        subtype: istring(&entity.content_type.subtype),
        extension_data: ext.then(|| MultiPartExtensionData {
            parameter_list: param_list(&entity.content_type.params),
            tail: Some(disposition_chain(header_bytes)),
        }),
    }
}

fn single(
    raw: &[u8],
    entity: &Entity,
    inner: Option<&Entity>,
    ext: bool,
) -> BodyStructure<'static> {
    let header_bytes = &raw[entity.header.clone()];
    let body_bytes = &raw[entity.body.clone()];
    let opaque = matches!(entity.kind, Kind::Leaf { opaque: true });
    let ct = if opaque {
        // A container nested too deep to parse is served as opaque data.
        params::content_type(b"application/octet-stream").unwrap_or_else(ContentType::text_plain)
    } else {
        entity.content_type.clone()
    };
    let basic = basic_fields(header_bytes, &ct, body_bytes.len());
    let lines = count_lines(body_bytes);
    let specific = match inner {
        Some(inner) => SpecificFields::Message {
            envelope: Box::new(envelope(&raw[inner.header.clone()])),
            body_structure: Box::new(body_structure(raw, inner, ext)),
            number_of_lines: lines,
        },
        None if ct.is_type("text") => SpecificFields::Text {
            subtype: istring(&ct.subtype),
            number_of_lines: lines,
        },
        None => SpecificFields::Basic {
            r#type: istring(&ct.mtype),
            subtype: istring(&ct.subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: ext.then(|| single_extension(header_bytes)),
    }
}

fn basic_fields(header_bytes: &[u8], ct: &ContentType, size: usize) -> BasicFields<'static> {
    let get = |name: &str| header::first(header_bytes, name).map(unfold);
    let mut params = ct.params.clone();
    // RFC 3501 / RFC 2045: text defaults to charset us-ascii.
    if ct.is_type("text") && ct.param("charset").is_none() {
        params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    let encoding = header::first(header_bytes, "Content-Transfer-Encoding")
        .map(cte_token)
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| b"7bit".to_vec());
    BasicFields {
        parameter_list: param_list(&params),
        id: nstring(get("Content-ID").as_deref()),
        description: nstring(get("Content-Description").as_deref()),
        content_transfer_encoding: istring(&encoding),
        size: u32::try_from(size).unwrap_or(u32::MAX),
    }
}

/// The Content-Transfer-Encoding mechanism as written (case kept).
pub(crate) fn cte_token(value: &[u8]) -> Vec<u8> {
    let mut lx = super::lexer::Lexer::new(value);
    lx.skip_cfws();
    lx.token(super::lexer::MIME_SPECIALS).to_vec()
}

fn single_extension(header_bytes: &[u8]) -> SinglePartExtensionData<'static> {
    let md5 = header::first(header_bytes, "Content-MD5").map(unfold);
    SinglePartExtensionData {
        md5: nstring(md5.as_deref()),
        tail: Some(disposition_chain(header_bytes)),
    }
}

/// Disposition, language and location, the extension data shared by both kinds.
fn disposition_chain(header_bytes: &[u8]) -> Disposition<'static> {
    let disposition = header::first(header_bytes, "Content-Disposition")
        .and_then(params::disposition)
        .map(|(kind, p)| (istring(&kind), param_list(&p)));
    let language = header::first(header_bytes, "Content-Language")
        .map(params::languages)
        .unwrap_or_default();
    let location = header::first(header_bytes, "Content-Location")
        .map(params::plain_value)
        .filter(|l| !l.is_empty());
    Disposition {
        disposition,
        tail: Some(Language {
            language: language.iter().map(|l| istring(l)).collect(),
            tail: Some(Location {
                location: nstring(location.as_deref()),
                extensions: Vec::new(),
            }),
        }),
    }
}

fn param_list(params: &Params) -> Vec<(IString<'static>, IString<'static>)> {
    params
        .iter()
        .map(|(n, v)| (istring(n), istring(v)))
        .collect()
}

fn count_lines(body: &[u8]) -> u32 {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn empty_part(ext: bool) -> BodyStructure<'static> {
    let basic = BasicFields {
        parameter_list: vec![(istring(b"charset"), istring(b"us-ascii"))],
        id: NString(None),
        description: NString(None),
        content_transfer_encoding: istring(b"7bit"),
        size: 0,
    };
    BodyStructure::Single {
        body: Body {
            basic,
            specific: SpecificFields::Text {
                subtype: istring(b"plain"),
                number_of_lines: 0,
            },
        },
        extension_data: ext.then(|| single_extension(b"")),
    }
}
