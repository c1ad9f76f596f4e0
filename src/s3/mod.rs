//! S3 adapter (s3s): SigV2/SigV4 and streaming payloads are s3s's; every operation is a core call.

mod access;
mod acl;
mod auth;
mod bucket;
mod checksum;
mod cors;
mod dto;
mod encryption;
mod errors;
mod feed;
mod gate;
mod host;
mod lifecycle;
mod list;
mod multipart;
mod names;
mod object;
mod post;
mod post_policy;
mod public;
mod retention;
mod service;
mod sse_c;
mod tagging;
mod versioning;

use crate::wire::ReqBody;
use http::{Request, Response};
use http_body_util::BodyExt;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::auth::AccessKeys;
use crate::vfs::{VPath, Vfs};
use crate::wire::RespBody;

/// The S3 front end shared by all connections.
pub struct S3Front {
    service: S3Service,
    /// The core, for the bucket's CORS rules (read for every request with `Origin`).
    vfs: Vfs,
    /// Which bucket a virtual-host-style request names.
    host: host::KuraHost,
    /// The operations, for POST Object (parsed here, stored through PutObject).
    s3: service::KuraS3,
}

impl S3Front {
    /// Builds the s3s service over the core; `base_domain` enables virtual-host-style buckets.
    /// `feed` serves the journal to peers that pull.
    pub fn new(
        vfs: Vfs,
        keys: AccessKeys,
        base_domain: Option<String>,
        feed: crate::replication::feed::Feed,
    ) -> Self {
        let owners = auth::Owners::default();
        let host = host::KuraHost::new(base_domain);
        let s3 = service::KuraS3 {
            vfs: vfs.clone(),
            keys: keys.clone(),
            owners: owners.clone(),
        };
        let mut b = S3ServiceBuilder::new(s3.clone());
        b.set_route(feed::FeedRoute {
            keys: keys.clone(),
            owners: owners.clone(),
            feed,
        });
        b.set_auth(auth::KuraAuth { keys, owners });
        b.set_access(access::KuraAccess);
        b.set_host(host.clone());
        b.set_config(std::sync::Arc::new(StaticConfigProvider::new(
            std::sync::Arc::new(limits()),
        )));
        S3Front {
            service: b.build(),
            vfs,
            host,
            s3,
        }
    }

    /// Serves one S3 request (signature checks included); unsigned, stale or overlong
    /// presigned requests are refused before their body is read. `OPTIONS` is a CORS
    /// preflight, answered from the bucket's rules and nothing else; any other request with
    /// `Origin` gets the CORS headers of the rule that allows it, whatever its status.
    pub async fn handle(&self, req: Request<ReqBody>) -> Response<RespBody> {
        let target = self.cors_target(&req);
        if req.method() == http::Method::OPTIONS {
            let rules = match &target {
                Some((bucket, _, _)) => self.cors_rules(bucket).await,
                None => None,
            };
            let object = target.as_ref().is_some_and(|t| t.2);
            return cors::preflight(&req, rules.as_deref(), object);
        }
        let method = req.method().clone();
        let mut resp = self.serve(req).await;
        if let Some((bucket, origin, _)) = target {
            if let Some(rules) = self.cors_rules(&bucket).await {
                cors::decorate(resp.headers_mut(), &rules, &origin, &method);
            }
        }
        resp
    }

    /// The bucket a request addresses, its `Origin` (absent: no CORS) and whether it names
    /// an object; `None` for the service root, unreadable origins and invalid bucket names.
    fn cors_target<B>(&self, req: &Request<B>) -> Option<(VPath, String, bool)> {
        let origin = req.headers().get(http::header::ORIGIN);
        let origin = match origin {
            Some(v) => v.to_str().ok()?.to_string(),
            // a preflight without Origin still needs its answer (400)
            None if req.method() == http::Method::OPTIONS => String::new(),
            None => return None,
        };
        let path = req.uri().path().trim_start_matches('/');
        let vhost = req
            .headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| self.host.bucket_of(h));
        let (bucket, key) = match vhost {
            Some(b) => (b, path),
            None => path.split_once('/').unwrap_or((path, "")),
        };
        if !s3s::path::check_bucket_name(bucket) {
            return None;
        }
        let bucket = names::bucket(bucket).ok()?;
        Some((bucket, origin, !key.is_empty()))
    }

    /// The bucket's CORS rules, if it has any.
    async fn cors_rules(&self, bucket: &VPath) -> Option<Vec<cors::Rule>> {
        match self.vfs.public_bucket_setting(bucket, cors::SETTING).await {
            Ok(v) => cors::parse(&v?),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a bucket's CORS rules");
                None
            }
        }
    }

    async fn serve(&self, req: Request<ReqBody>) -> Response<RespBody> {
        // a browser form's signature is in its fields, which s3s would read into memory
        if let Some(bucket) = post::target(&req, &self.host) {
            return post::handle(&self.s3, req, bucket).await;
        }
        if let Err(refused) = gate::admit(&req) {
            return refused;
        }
        let req = req.map(s3s::Body::http_body);
        match self.service.call(req).await {
            Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed_unsync()),
            Err(e) => {
                tracing::error!(error = ?e, "S3 request failed");
                let mut r = Response::new(crate::wire::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

/// Largest XML body an S3 operation may send (checked by the access hook, since s3s answers a
/// longer streamed one with a 500).
const XML_MAX_BODY: usize = 2 * 1024 * 1024;

/// s3s's limits on what it holds in memory, set small: the largest XML body Kura needs is a
/// CompleteMultipartUpload of 10,000 parts (about 1.2 MB); POST Object (browser form uploads)
/// never reaches s3s (post.rs streams it), so its form and file limits only bound what a
/// request that slips past `post::target` may cost.
fn limits() -> S3Config {
    let mut c = S3Config::default();
    c.xml_max_body_size = XML_MAX_BODY;
    c.post_object_max_file_size = 1024 * 1024;
    c.form_max_field_size = 16 * 1024;
    c.form_max_fields_size = 64 * 1024;
    c.form_max_parts = 32;
    c
}

pub use gate::{is_paced, slow_down};

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
