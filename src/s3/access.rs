//! s3s's access hook, used for what must happen before s3s builds a response: signed requests
//! only, but for anonymous GetObject and HeadObject, and a GetObject `response-content-type` that would make a
//! browser render or run the file is dropped, since s3s copies it into the response itself.

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::GetObjectInput;
use s3s::{s3_error, S3Request, S3Result};

/// Kura's access hook.
pub struct KuraAccess;

#[async_trait::async_trait]
impl S3Access for KuraAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
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
        if req
            .input
            .response_content_type
            .as_deref()
            .is_some_and(crate::wire::is_active_type)
        {
            req.input.response_content_type = None;
        }
        Ok(())
    }
}
