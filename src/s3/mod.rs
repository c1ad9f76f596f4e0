//! S3 adapter (s3s): SigV2/SigV4 and streaming payloads are s3s's; every operation is a core call.

mod auth;
mod bucket;
mod checksum;
mod errors;
mod host;
mod list;
mod multipart;
mod names;
mod object;
mod service;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::http::RespBody;
use crate::keys::Vault;
use crate::store::Store;
use crate::vfs::Vfs;

/// The S3 front end shared by all connections.
pub struct S3Front {
    service: S3Service,
}

impl S3Front {
    /// Builds the s3s service over the core; `base_domain` enables virtual-host-style buckets.
    pub fn new(vfs: Vfs, store: Store, vault: Vault, base_domain: Option<String>) -> Self {
        let owners = auth::Owners::default();
        let mut b = S3ServiceBuilder::new(service::KuraS3 {
            vfs,
            store: store.clone(),
            owners: owners.clone(),
        });
        b.set_auth(auth::KuraAuth {
            store,
            vault,
            owners,
        });
        b.set_host(host::KuraHost::new(base_domain));
        S3Front { service: b.build() }
    }

    /// Serves one S3 request (signature checks included).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<RespBody> {
        let req = req.map(s3s::Body::from);
        match self.service.call(req).await {
            Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed_unsync()),
            Err(e) => {
                tracing::error!(error = ?e, "S3 request failed");
                let mut r = Response::new(crate::http::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

/// True for requests signed for S3 (header or query signatures, or S3-only headers).
pub fn is_signed<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    let auth = h
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.starts_with("AWS4-HMAC-SHA256 ") || auth.starts_with("AWS ") {
        return true;
    }
    if h.contains_key("x-amz-content-sha256") || h.contains_key("x-amz-date") {
        return true;
    }
    let q = req.uri().query().unwrap_or("");
    let has = |k: &str| q.split('&').any(|p| p.split('=').next() == Some(k));
    (has("X-Amz-Algorithm") && has("X-Amz-Signature"))
        || (has("AWSAccessKeyId") && has("Signature"))
}
