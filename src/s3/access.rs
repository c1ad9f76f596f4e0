//! s3s's access hook, used for what must happen before s3s builds a response: signed requests
//! only, but for anonymous GetObject and HeadObject, which may not rewrite the response's
//! headers (`response-*` parameters: AWS refuses them unsigned too, so a link to a public
//! file cannot make it a page or set how long caches keep it), and a GetObject
//! `response-content-type` that would make a browser render or run the file is dropped, and a
//! `response-content-disposition` loses its bidi controls, since s3s copies them into the
//! response itself.

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{GetObjectInput, HeadObjectInput};
use s3s::{s3_error, S3Request, S3Result};

use super::XML_MAX_BODY;

/// Whether a GetObject or HeadObject input asks to rewrite response headers (`response-*`).
macro_rules! rewrites {
    ($i:expr) => {
        $i.response_cache_control.is_some()
            || $i.response_content_disposition.is_some()
            || $i.response_content_encoding.is_some()
            || $i.response_content_language.is_some()
            || $i.response_content_type.is_some()
            || $i.response_expires.is_some()
    };
}

/// Operations whose body streams to storage instead of being read whole.
const STREAMED: &[&str] = &["PutObject", "UploadPart", "PostObject"];

/// The body length a request declares (the decoded one for aws-chunked bodies), 0 if none.
fn declared_length(h: &http::HeaderMap) -> usize {
    ["x-amz-decoded-content-length", "content-length"]
        .iter()
        .filter_map(|n| h.get(*n)?.to_str().ok()?.trim().parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

/// Kura's access hook.
pub struct KuraAccess;

#[async_trait::async_trait]
impl S3Access for KuraAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // s3s reads the XML body of other operations whole after this hook, and answers one
        // over its limit with a 500 when it streams: refused here from its declared length
        if !STREAMED.contains(&cx.s3_op().name()) && declared_length(cx.headers()) > XML_MAX_BODY {
            return Err(s3_error!(
                MaxMessageLengthExceeded,
                "an XML request body has at most 2 MiB"
            ));
        }
        // anonymous callers may only read objects (what is public, the core decides)
        match (cx.credentials(), cx.s3_op().name()) {
            (Some(_), _) | (None, "GetObject" | "HeadObject") => Ok(()),
            (None, _) => Err(s3_error!(
                AccessDenied,
                "anonymous callers may only GET or HEAD public objects"
            )),
        }
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        if req.credentials.is_none() && rewrites!(req.input) {
            return Err(anonymous_rewrite());
        }
        if req
            .input
            .response_content_type
            .as_deref()
            .is_some_and(crate::wire::is_active_type)
        {
            req.input.response_content_type = None;
        }
        without_bidi(&mut req.input.response_content_disposition);
        Ok(())
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        if req.credentials.is_none() && rewrites!(req.input) {
            return Err(anonymous_rewrite());
        }
        without_bidi(&mut req.input.response_content_disposition);
        Ok(())
    }
}

/// A `response-content-disposition` (which s3s sends as it is) as a stored one is served: a
/// signed link cannot name a download with bidi controls either.
fn without_bidi(asked: &mut Option<String>) {
    if let Some(v) = asked.as_deref() {
        *asked = Some(crate::delivery::headers::stored_disposition(v));
    }
}

/// AWS's answer to `response-*` parameters on an unsigned request.
fn anonymous_rewrite() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "Request specific response headers cannot be used for anonymous GET requests."
    )
}
