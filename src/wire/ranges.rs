//! Multi-range requests kept cheap: a `Range` header whose ranges overlap, are out of order, or
//! number more than `MAX_RANGES` is dropped, so the whole file is sent once (200), as Apache
//! does beyond `MaxRanges`. A thousand overlapping ranges of a file could otherwise make a
//! response a thousand times its size.

use http::{header, HeaderMap};

/// Most ranges served as `multipart/byteranges`.
pub const MAX_RANGES: usize = 16;

/// Removes a `Range` header that would cost more than the file itself.
pub fn tame(headers: &mut HeaderMap) {
    let Some(value) = headers.get(header::RANGE) else {
        return;
    };
    let keep = value.to_str().ok().is_some_and(acceptable);
    if !keep {
        headers.remove(header::RANGE);
    }
}

/// One range, or up to `MAX_RANGES` ascending, disjoint `first-last` ranges (suffix and
/// open-ended ranges only alone, since their position depends on the size).
fn acceptable(value: &str) -> bool {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        // another unit: dav-server ignores it anyway
        return true;
    };
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    if parts.len() == 1 {
        return true;
    }
    if parts.len() > MAX_RANGES {
        return false;
    }
    let mut end_of_last: Option<u64> = None;
    for p in parts {
        let Some((a, b)) = p.split_once('-') else {
            return false;
        };
        let (Ok(first), Ok(last)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
            return false;
        };
        if last < first || end_of_last.is_some_and(|e| first <= e) {
            return false;
        }
        end_of_last = Some(last);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_excessive_ranges_are_dropped() {
        assert!(acceptable("bytes=0-99"));
        assert!(acceptable("bytes=-5"));
        assert!(acceptable("bytes=0-9, 20-29"));
        assert!(!acceptable("bytes=0-9,5-20"));
        assert!(!acceptable("bytes=20-29,0-9"));
        assert!(!acceptable("bytes=0-,-5"));
        let many = (0..17)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>();
        assert!(!acceptable(&format!("bytes={}", many.join(","))));
        assert!(acceptable(&format!("bytes={}", many[..16].join(","))));
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, "bytes=0-1048575,0-1048575".parse().unwrap());
        tame(&mut h);
        assert!(h.get(header::RANGE).is_none());
    }
}
