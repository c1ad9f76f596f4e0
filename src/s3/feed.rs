//! `GET /api/replication/v1/journal`: a node's journal, for a peer that cannot be reached
//! and pulls instead (docs/replication.md, "Pull"). Signed like any S3 request (s3s checks
//! the signature first); only a peer key may read it, and only for a bucket this node
//! replicates to that peer. The bytes themselves are fetched with ordinary GetObjects.

use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::http::Extensions;
use s3s::route::S3Route;
use s3s::{s3_error, Body, S3Request, S3Response, S3Result};

use crate::auth::AccessKeys;
use crate::replication::feed::{Feed, MAX_PAGE, PATH};
use crate::replication::ReplError;

/// The journal feed as an s3s custom route.
#[derive(Clone)]
pub struct FeedRoute {
    /// Who a key belongs to.
    pub keys: AccessKeys,
    /// Owners looked up with the secret (taken out so they do not pile up).
    pub owners: super::auth::Owners,
    /// The journal.
    pub feed: Feed,
}

/// The query of a feed request: `bucket`, `after`, `node` (the puller's node id) and an
/// optional `limit`.
struct Query {
    bucket: String,
    after: i64,
    node: String,
    limit: i64,
    key: Option<String>,
}

fn parse(uri: &Uri) -> S3Result<Query> {
    let (mut bucket, mut after, mut node, mut limit, mut key) = (None, None, None, MAX_PAGE, None);
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "bucket" => bucket = Some(v.into_owned()),
            "after" => after = v.parse::<i64>().ok().filter(|a| *a >= 0),
            "node" => node = Some(v.into_owned()),
            "key" => {
                key = Some(v.into_owned()).filter(|k| {
                    !k.is_empty()
                        && k.len() <= 1024
                        && k.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
                });
                if key.is_none() {
                    return Err(s3_error!(InvalidArgument, "key: not an object key"));
                }
            }
            "limit" => {
                limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| s3_error!(InvalidArgument, "limit is 1 to 256"))?
            }
            _ => return Err(s3_error!(InvalidArgument, "unknown parameter {k}")),
        }
    }
    let bucket = bucket
        .filter(|b| s3s::path::check_bucket_name(b))
        .ok_or_else(|| s3_error!(InvalidArgument, "bucket: a valid bucket name is required"))?;
    let after = after.ok_or_else(|| s3_error!(InvalidArgument, "after: a seq >= 0 is required"))?;
    let node = node
        .filter(|n| {
            n.len() <= 64
                && n.starts_with("kura-")
                && n[5..].bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .ok_or_else(|| s3_error!(InvalidArgument, "node: the puller's node id is required"))?;
    Ok(Query {
        bucket,
        after,
        node,
        limit,
        key,
    })
}

#[async_trait::async_trait]
impl S3Route for FeedRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        method == Method::GET && uri.path() == PATH
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        self.owners.take_key(&cred.access_key);
        let Some(peer) = super::auth::peer_of(&self.keys, Some(&cred.access_key)).await? else {
            return Err(s3_error!(
                AccessDenied,
                "only a peer key (kura peer key) may read the journal"
            ));
        };
        let q = parse(&req.uri)?;
        let page = match self
            .feed
            .page(
                &peer,
                &q.node,
                &q.bucket,
                q.after,
                q.limit,
                q.key.as_deref(),
            )
            .await
        {
            Ok(p) => p,
            Err(ReplError::Invalid(m)) => return Err(s3_error!(AccessDenied, "{m}")),
            Err(e) => {
                tracing::error!(error = %e, "replication feed failed");
                return Err(s3_error!(InternalError));
            }
        };
        let body = serde_json::to_vec(&page).map_err(|_| s3_error!(InternalError))?;
        let mut resp =
            S3Response::with_status(Body::from(bytes::Bytes::from(body)), StatusCode::OK);
        resp.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}
