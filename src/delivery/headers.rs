//! The HTTP details of a shared file: byte ranges, RFC 6266 Content-Disposition, HTTP dates.

use std::ops::Range;
use std::time::SystemTime;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 5987 `attr-char`s stay as they are; everything else is percent-encoded.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// URL path segments keep unreserved characters only.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters that reorder the text around them (bidi embeddings, overrides, isolates and
/// marks, the Arabic letter mark; as the app's `BIDI`): in a saved file's name they make
/// `invoice_\u{202E}fdp.exe` read `invoice_exe.pdf` in a file manager.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The name a download gives a file (its `Content-Disposition`, a zip entry's segment): the
/// name without bidi controls, `download` when nothing else is left. The one rule of every
/// name Kura hands a browser to save.
pub fn saved_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| !is_bidi_control(*c)).collect();
    if name.is_empty() {
        "download".into()
    } else {
        name
    }
}

/// A `Content-Disposition` a client stored (S3 object metadata) as served: its bidi controls
/// removed, raw or percent-encoded (`filename*=UTF-8''a%E2%80%AEb`), so a name it gives is
/// saved as `saved_name` would give it; anything else is left as stored.
pub fn stored_disposition(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some(n) = encoded_bidi(rest) {
            rest = &rest[n..];
            continue;
        }
        if !is_bidi_control(c) {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of the percent-encoded UTF-8 bidi control `s` starts with, if it does.
fn encoded_bidi(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let byte = |i: usize| -> Option<u8> {
        let t = b.get(i * 3..i * 3 + 3)?;
        (t[0] == b'%').then_some(())?;
        u8::from_str_radix(std::str::from_utf8(&t[1..]).ok()?, 16).ok()
    };
    let lead = byte(0)?;
    let n = match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => return None,
    };
    let bytes: Vec<u8> = (0..n).map(byte).collect::<Option<_>>()?;
    let c = std::str::from_utf8(&bytes).ok()?.chars().next()?;
    is_bidi_control(c).then_some(n * 3)
}

/// `attachment` with an ASCII fallback `filename` and the UTF-8 name in `filename*`, both
/// the `saved_name` of `name`: every download (the app, share links, zips) names its file here.
pub fn content_disposition(name: &str) -> String {
    let name = saved_name(name);
    let name = name.as_str();
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    )
}

/// One path segment, percent-encoded for a link.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The outcome of a `Range` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No (usable) range: the whole file.
    Whole,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range beyond the end (416).
    Unsatisfiable,
}

/// Parses a single `bytes=` range; several ranges or unknown units serve the whole file.
pub fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // the last b bytes
        match b.parse::<u64>() {
            Ok(0) => return Ranged::Unsatisfiable,
            Ok(n) => size.saturating_sub(n)..size,
            Err(_) => return Ranged::Whole,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ranged::Whole;
        };
        let end = if b.is_empty() {
            size
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => (e + 1).min(size),
                _ => return Ranged::Whole,
            }
        };
        start..end
    };
    if range.start >= size {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part(range)
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from(t).format(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Ranged::Part(0..5));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ranged::Part(5..10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ranged::Part(7..10));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ranged::Part(8..10));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ranged::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn disposition_carries_utf8_names() {
        assert_eq!(
            content_disposition("Grüße \"2024\".pdf"),
            "attachment; filename=\"Gr__e _2024_.pdf\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%222024%22.pdf"
        );
        assert_eq!(
            content_disposition("invoice_\u{202E}fdp.exe"),
            "attachment; filename=\"invoice_fdp.exe\"; filename*=UTF-8''invoice_fdp.exe"
        );
        assert_eq!(
            content_disposition("\u{2067}\u{200F}"),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
        assert_eq!(
            http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(784111777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    /// Attack: an S3 object stored with a Content-Disposition whose name carries bidi
    /// controls, raw or percent-encoded in any case; the rest of the value stays as stored.
    #[test]
    fn stored_dispositions_lose_their_bidi_controls() {
        assert_eq!(
            stored_disposition("inline; filename*=UTF-8''invoice_%E2%80%aefdp.exe"),
            "inline; filename*=UTF-8''invoice_fdp.exe"
        );
        assert_eq!(
            stored_disposition("attachment; filename=\"a\u{2066}b\u{061C}.txt\""),
            "attachment; filename=\"ab.txt\""
        );
        assert_eq!(
            stored_disposition("attachment; filename*=UTF-8''%D8%9Ca%E2%81%A9%C3%BC%E2%80%8F%"),
            "attachment; filename*=UTF-8''a%C3%BC%"
        );
        let plain = "attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe%E2%82%AC%2";
        assert_eq!(stored_disposition(plain), plain);
        assert_eq!(saved_name("\u{202E}"), "download");
        assert_eq!(saved_name("a\u{202D}b"), "ab");
    }
}
