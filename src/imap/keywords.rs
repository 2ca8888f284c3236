//! Graph categories as IMAP keywords, both ways.
//!
//! A category is free text ("Red category", "Kundé"); a keyword is an atom: printable ASCII
//! without spaces or atom-specials. The mapping must be reversible, or a category renamed by
//! the round trip through a client (or a client's keyword renamed by Graph) would change the
//! mail. So: a space is `_`, and everything an atom cannot carry (non-ASCII, atom-specials,
//! controls, and `_` itself) travels in a modified UTF-7 run (`&…-`, RFC 3501 5.1.3), with
//! `&-` for `&`. This is how Thunderbird builds its own tag keywords, so its tags and Outlook's
//! categories meet: Thunderbird's tag "Kundé" is the keyword `Kund&AOk-`, which is the
//! category "Kundé".

use base64::Engine;

/// Characters a keyword can carry as themselves.
fn plain(c: char) -> bool {
    c.is_ascii_graphic() && !"(){%*\"\\]_&".contains(c)
}

/// The keyword a category is shown as.
pub fn keyword_of_category(category: &str) -> String {
    let mut out = String::with_capacity(category.len());
    let mut run: Vec<u16> = Vec::new();
    for c in category.chars() {
        if plain(c) || c == ' ' || c == '&' {
            flush_run(&mut run, &mut out);
            match c {
                ' ' => out.push('_'),
                '&' => out.push(AMPERSAND),
                _ => out.push(c),
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_run(&mut run, &mut out);
    spell_ampersands(out)
}

/// Stands for a category's `&` until it is known how to spell it; never part of a keyword.
const AMPERSAND: char = '\0';

/// A category's `&` is written bare where no run could be read from it (so a client's `R&D`
/// comes back as `R&D`) and as `&-` elsewhere. Right to left, so the text after each one is final.
fn spell_ampersands(mut out: String) -> String {
    while let Some(at) = out.rfind(AMPERSAND) {
        let spelled = if decode_run(&out[at + 1..]).is_some() {
            "&-"
        } else {
            "&"
        };
        out.replace_range(at..at + 1, spelled);
    }
    out
}

fn flush_run(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    out.push_str(
        &base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(bytes)
            .replace('/', ","),
    );
    out.push('-');
    run.clear();
}

/// The category a client's keyword stands for. An `&` that opens no valid run is kept as it
/// is (a keyword such as `R&D` is the category "R&D").
pub fn category_of_keyword(keyword: &str) -> String {
    let mut out = String::with_capacity(keyword.len());
    let mut rest = keyword;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp].replace('_', " "));
        let after = &rest[amp + 1..];
        match decode_run(after) {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(&rest.replace('_', " "));
    out
}

/// Decodes the run after an `&`: its text and how many bytes (the closing `-` included) it took.
fn decode_run(after: &str) -> Option<(String, usize)> {
    let end = after.find('-')?;
    let chunk = &after[..end];
    if chunk.is_empty() {
        return Some(("&".to_string(), 1));
    }
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(chunk.replace(',', "/"))
        .ok()?;
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    Some((String::from_utf16(&units).ok()?, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_categories_become_readable_keywords() {
        assert_eq!(keyword_of_category("Red category"), "Red_category");
        assert_eq!(keyword_of_category("Kunde"), "Kunde");
        assert_eq!(keyword_of_category("Kundé"), "Kund&AOk-");
        assert_eq!(keyword_of_category("R&D"), "R&D");
        assert_eq!(keyword_of_category("&AOk-"), "&-AOk-");
        assert_eq!(keyword_of_category("snake_case"), "snake&AF8-case");
        assert_eq!(
            keyword_of_category("Größe (intern)"),
            "Gr&APYA3w-e_&ACg-intern&ACk-"
        );
    }

    #[test]
    fn every_category_survives_the_round_trip() {
        for category in [
            "Red category",
            "Kundé",
            "Größe (intern)",
            "R&D",
            "&AOk- is not a run here",
            "a&b-c &- &",
            "a_b c",
            "日本語 カテゴリ",
            "emoji 😀 mail",
            "back\\slash \"quoted\" 100% * ]",
            "tab\there",
            "",
        ] {
            let keyword = keyword_of_category(category);
            assert!(
                keyword
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c)),
                "{keyword:?} is not an atom"
            );
            assert_eq!(category_of_keyword(&keyword), category, "via {keyword:?}");
        }
    }

    #[test]
    fn client_keywords_keep_their_spelling() {
        for keyword in [
            "$Label1",
            "$MDNSent",
            "Junk",
            "Red_category",
            "Kund&AOk-",
            "$Not_Junk",
            "R&D",
        ] {
            assert_eq!(keyword_of_category(&category_of_keyword(keyword)), keyword);
        }
        assert_eq!(category_of_keyword("Kund&AOk-"), "Kundé");
        assert_eq!(category_of_keyword("R&D"), "R&D", "a bare & stays");
        assert_eq!(category_of_keyword("a&b-c"), "a&b-c", "not a valid run");
    }
}
