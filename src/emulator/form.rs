//! `application/x-www-form-urlencoded` and query-string decoding, and URL encoding of the
//! pieces the emulator puts into links.

/// Decodes `a=1&b=x%20y` into pairs. Invalid escapes are kept literally (never a panic).
pub fn decode(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (unescape(k, true), unescape(v, true)),
            None => (unescape(pair, true), String::new()),
        })
        .collect()
}

/// Percent-decoding; `+` means space only in form bodies and query strings.
pub fn unescape(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// First value of a key, case-sensitive as OAuth parameters are.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_survives_bad_escapes() {
        let p = decode("a=1&b=x%20y+z&c=%zz&d=%4");
        assert_eq!(get(&p, "b"), Some("x y z"));
        assert_eq!(get(&p, "c"), Some("%zz"));
        assert_eq!(get(&p, "d"), Some("%4"));
        assert_eq!(escape("a b/é"), "a%20b%2F%C3%A9");
    }
}
