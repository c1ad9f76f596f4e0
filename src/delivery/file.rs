//! One file as an HTTP answer: its span (Range), then the response with the headers every
//! download carries (type, length, ETag, dates, RFC 6266 name, nosniff and sandbox CSP).

use std::ops::Range;

use http::{header, HeaderValue, Response, StatusCode};

use super::headers::{content_disposition, http_date, parse_range, Ranged};
use crate::vfs::Entry;
use crate::wire::{full, RespBody};

/// What a `Range` header asks of `entry`: 200 and the whole file, 206 and one range, or the
/// 416 answer to send as it is.
#[allow(clippy::result_large_err)]
pub fn span(
    entry: &Entry,
    range: Option<&str>,
) -> Result<(StatusCode, Range<u64>), Response<RespBody>> {
    match parse_range(range, entry.size) {
        Ranged::Whole => Ok((StatusCode::OK, 0..entry.size)),
        Ranged::Part(r) => Ok((StatusCode::PARTIAL_CONTENT, r)),
        Ranged::Unsatisfiable => {
            let mut r = Response::new(full("range not satisfiable\n"));
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
            set(
                &mut r,
                header::CONTENT_RANGE,
                &format!("bytes */{}", entry.size),
            );
            Err(r)
        }
    }
}

/// The answer carrying `body` (the bytes of `span` of `entry`, or nothing for HEAD), as an
/// attachment or (`inline`) shown in place, always sandboxed.
pub fn response(
    entry: &Entry,
    (status, span): (StatusCode, Range<u64>),
    body: RespBody,
    inline: bool,
) -> Response<RespBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, &entry.content_type);
    set(
        &mut r,
        header::CONTENT_LENGTH,
        &(span.end - span.start).to_string(),
    );
    set(&mut r, header::ACCEPT_RANGES, "bytes");
    set(&mut r, header::ETAG, &format!("\"{}\"", entry.etag));
    set(
        &mut r,
        header::LAST_MODIFIED,
        &http_date(entry.http_mtime()),
    );
    let disposition = content_disposition(entry.path.name());
    let disposition = match inline {
        true => disposition.replacen("attachment", "inline", 1),
        false => disposition,
    };
    set(&mut r, header::CONTENT_DISPOSITION, &disposition);
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{}", span.start, span.end - 1, entry.size),
        );
    }
    set(&mut r, header::CACHE_CONTROL, "private, no-store");
    crate::wire::protect(r.headers_mut());
    r
}

fn set(r: &mut Response<RespBody>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}
