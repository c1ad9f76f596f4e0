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
/// marks, as the app's `BIDI`): in a saved file's name they make `invoice_\u{202E}fdp.exe`
/// read `invoice_exe.pdf` in a file manager.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `attachment` with an ASCII fallback `filename` and the UTF-8 name in `filename*`, both
/// without bidi controls (a name of nothing else becomes `download`): every download (the
/// app, share links, zips) names its file here.
pub fn content_disposition(name: &str) -> String {
    let name: String = name.chars().filter(|c| !is_bidi_control(*c)).collect();
    let name = if name.is_empty() {
        "download"
    } else {
        name.as_str()
    };
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
}
