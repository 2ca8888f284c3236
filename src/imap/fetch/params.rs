//! MIME header values: Content-Type, Content-Disposition, Content-Language and
//! their parameters (RFC 2045, RFC 2183, RFC 3282), with RFC 2231 continuations merged.

use super::lexer::{Lexer, MIME_SPECIALS};
use super::strings::{trim, unfold};

/// A parameter list in header order (names and values as written, quoting removed).
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// A parsed Content-Type (case preserved, as Dovecot and most servers send it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub mtype: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Params,
}

impl ContentType {
    /// `text/plain` without parameters: RFC 2045's default, also used for a
    /// syntactically invalid Content-Type as RFC 2045 section 5.2 recommends.
    pub fn text_plain() -> Self {
        Self::new(b"text", b"plain")
    }

    /// `message/rfc822`, the default inside multipart/digest (RFC 2046 5.1.5).
    pub fn message_rfc822() -> Self {
        Self::new(b"message", b"rfc822")
    }

    fn new(mtype: &[u8], subtype: &[u8]) -> Self {
        ContentType {
            mtype: mtype.to_vec(),
            subtype: subtype.to_vec(),
            params: Vec::new(),
        }
    }

    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }

    pub fn is_type(&self, mtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype.as_bytes())
    }

    /// The value of parameter `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        param(&self.params, name)
    }
}

/// The value of parameter `name` in `params` (ASCII case-insensitive).
pub(crate) fn param<'p>(params: &'p Params, name: &str) -> Option<&'p [u8]> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

/// Parses a Content-Type value; `None` when it is not `type/subtype`.
pub(crate) fn content_type(value: &[u8]) -> Option<ContentType> {
    let mut lx = Lexer::new(value);
    lx.skip_cfws();
    let mtype = lx.token(MIME_SPECIALS).to_vec();
    lx.skip_cfws();
    if mtype.is_empty() || !lx.eat(b'/') {
        return None;
    }
    lx.skip_cfws();
    let subtype = lx.token(MIME_SPECIALS).to_vec();
    if subtype.is_empty() {
        return None;
    }
    Some(ContentType {
        mtype,
        subtype,
        params: params(&mut lx),
    })
}

/// Parses a Content-Disposition value into its type and parameters.
pub(crate) fn disposition(value: &[u8]) -> Option<(Vec<u8>, Params)> {
    let mut lx = Lexer::new(value);
    lx.skip_cfws();
    let kind = lx.token(MIME_SPECIALS).to_vec();
    if kind.is_empty() {
        return None;
    }
    Some((kind, params(&mut lx)))
}

/// Parses a Content-Language value: a comma-separated list of language tags.
pub(crate) fn languages(value: &[u8]) -> Vec<Vec<u8>> {
    let mut lx = Lexer::new(value);
    let mut out = Vec::new();
    loop {
        lx.skip_cfws();
        let tag = lx.token(MIME_SPECIALS);
        if !tag.is_empty() {
            out.push(tag.to_vec());
        }
        lx.skip_until(b",");
        if !lx.eat(b',') {
            return out;
        }
    }
}

/// A value copied as written: folding removed, surrounding blanks trimmed.
pub(crate) fn plain_value(value: &[u8]) -> Vec<u8> {
    trim(&unfold(value)).to_vec()
}

/// Reads `; name=value` pairs up to the end of the value.
fn params(lx: &mut Lexer<'_>) -> Params {
    let mut raw = Vec::new();
    loop {
        lx.skip_until(b";");
        if !lx.eat(b';') {
            break;
        }
        lx.skip_cfws();
        let name = lx.token(MIME_SPECIALS).to_vec();
        lx.skip_cfws();
        if !lx.eat(b'=') {
            continue; // a name without a value carries nothing
        }
        lx.skip_cfws();
        let value = match lx.quoted() {
            Some(v) => v,
            None => lx.token(MIME_SPECIALS).to_vec(),
        };
        raw.push((name, value));
    }
    merge_rfc2231(raw)
}

/// One `name*N[*]` piece of an RFC 2231 parameter.
struct Piece {
    name: Vec<u8>,
    index: u32,
    extended: bool,
    value: Vec<u8>,
}

/// Splits `name*N*` / `name*N` / `name*` into (name, index, extended).
fn rfc2231_name(name: &[u8]) -> Option<(Vec<u8>, u32, bool)> {
    let star = name.iter().position(|&b| b == b'*')?;
    let (base, mut rest) = (&name[..star], &name[star + 1..]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let index = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0);
    rest = &rest[digits..];
    let extended = match rest {
        [] if digits == 0 => true, // `name*`: a single extended value
        [] => false,
        [b'*'] => true,
        _ => return None, // not RFC 2231 syntax: keep the name as written
    };
    Some((base.to_vec(), index, extended))
}

/// Merges RFC 2231 continuations (`name*0`, `name*1*`, ...) into one parameter,
/// keeping plain parameters first, as Dovecot does. An extended value keeps its
/// `charset'lang'` prefix and %-encoding and is named `name*`.
fn merge_rfc2231(raw: Params) -> Params {
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    for (name, value) in raw {
        match rfc2231_name(&name) {
            Some((name, index, extended)) => pieces.push(Piece {
                name,
                index,
                extended,
                value,
            }),
            None => out.push((name, value)),
        }
    }
    pieces.sort_by(|a, b| {
        (a.name.to_ascii_lowercase(), a.index).cmp(&(b.name.to_ascii_lowercase(), b.index))
    });
    let mut rest = pieces.as_slice();
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take_while(|p| p.name.eq_ignore_ascii_case(&first.name))
            .count();
        let (group, tail) = rest.split_at(len);
        out.extend(merge_group(group));
        rest = tail;
    }
    out
}

fn merge_group(group: &[Piece]) -> Params {
    let complete = group.iter().enumerate().all(|(i, p)| p.index as usize == i);
    if !complete {
        // Missing pieces: give them back under their original names.
        return group
            .iter()
            .map(|p| {
                let star = if p.extended { "*" } else { "" };
                let mut name = p.name.clone();
                name.extend_from_slice(format!("*{}{star}", p.index).as_bytes());
                (name, p.value.clone())
            })
            .collect();
    }
    let extended = group.iter().any(|p| p.extended);
    let mut value = Vec::new();
    if extended && !group[0].extended {
        value.extend_from_slice(b"''");
    }
    for p in group {
        value.extend_from_slice(&p.value);
    }
    let mut name = group[0].name.clone();
    if extended {
        name.push(b'*');
    }
    vec![(name, value)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Params {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn parses_type_and_params_preserving_case() {
        let ct = content_type(b"TEXT/PLAIN; CHARSET=\"ISO-8859-1\"; Format=\"flowed\"; delsp=yes")
            .expect("valid");
        assert_eq!(ct.mtype, b"TEXT");
        assert_eq!(ct.subtype, b"PLAIN");
        assert_eq!(
            ct.params,
            p(&[
                ("CHARSET", "ISO-8859-1"),
                ("Format", "flowed"),
                ("delsp", "yes")
            ])
        );
        assert_eq!(ct.param("charset"), Some(&b"ISO-8859-1"[..]));
    }

    #[test]
    fn folded_params_and_comments() {
        let ct = content_type(b"multipart/mixed;\r\n\tboundary=\"----=_Part_1\" (c); x=1")
            .expect("valid");
        assert_eq!(ct.params, p(&[("boundary", "----=_Part_1"), ("x", "1")]));
    }

    #[test]
    fn invalid_types_are_rejected() {
        assert_eq!(content_type(b"garbage"), None);
        assert_eq!(content_type(b"image/"), None);
        assert_eq!(content_type(b""), None);
    }

    #[test]
    fn odd_params_follow_dovecot() {
        let ct = content_type(b"application/x; a=1; b=\"two words\"; c=\"e\\\"q\"; =bad; d")
            .expect("valid");
        assert_eq!(
            ct.params,
            p(&[("a", "1"), ("b", "two words"), ("c", "e\"q"), ("", "bad")])
        );
    }

    #[test]
    fn rfc2231_continuations_merge() {
        let ct = content_type(b"a/b; name*1=\"name.bin\"; x=y; name*0=\"very long file \"")
            .expect("valid");
        assert_eq!(
            ct.params,
            p(&[("x", "y"), ("name", "very long file name.bin")])
        );
        let (_, d) = disposition(b"attachment; filename*=UTF-8''%C3%A9t%C3%A9.bin").expect("ok");
        assert_eq!(d, p(&[("filename*", "UTF-8''%C3%A9t%C3%A9.bin")]));
        let (_, d) = disposition(b"attachment; f*0*=utf-8''a; f*1=b").expect("ok");
        assert_eq!(d, p(&[("f*", "utf-8''ab")]));
        let (_, d) = disposition(b"attachment; f*0=a; f*2=c").expect("ok");
        assert_eq!(d, p(&[("f*0", "a"), ("f*2", "c")]));
    }

    #[test]
    fn languages_split_on_commas() {
        assert_eq!(
            languages(b"en, fr (French)"),
            vec![b"en".to_vec(), b"fr".to_vec()]
        );
        assert!(languages(b"  ").is_empty());
    }
}
