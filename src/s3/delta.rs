//! Delta transfer between Kura nodes (docs/replication.md, "Delta transfer"), next to S3 and
//! signed like it: `GET /api/replication/v1/chunks?bucket&key[&avg]` answers the chunk list
//! of a file's current version, `PUT /api/replication/v1/delta?bucket&key` takes a delta
//! of it. Only a peer key may use them, as its user (read rights for the list and the
//! version a delta copies from, and the write rights, locks and quota of any shipment).

use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::http::Extensions;
use s3s::route::S3Route;
use s3s::{s3_error, Body, S3Request, S3Response, S3Result};

use crate::auth::AccessKeys;
use crate::replication::delta::{WireList, CHUNKS_PATH, DELTA_PATH};
use crate::replication::ReplError;
use crate::vfs::chunks::{avg_for, valid_avg};
use crate::vfs::replica::Peer;
use crate::vfs::{Caller, VPath, Vfs};

/// The chunk list and delta endpoints as an s3s custom route.
#[derive(Clone)]
pub struct DeltaRoute {
    /// Who a key belongs to.
    pub keys: AccessKeys,
    /// Owners looked up with the secret.
    pub owners: super::auth::Owners,
    /// The core.
    pub vfs: Vfs,
}

/// The file a request names: `bucket` and `key` (and `avg`, for a chunk list).
fn parse(uri: &Uri, list: bool) -> S3Result<(VPath, Option<u32>)> {
    let (mut bucket, mut key, mut avg) = (None, None, None);
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "bucket" => bucket = Some(v.into_owned()),
            "key" => key = Some(v.into_owned()),
            "avg" if list => {
                avg = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|a| valid_avg(*a))
                        .ok_or_else(|| s3_error!(InvalidArgument, "avg: not a chunk size"))?,
                )
            }
            _ => return Err(s3_error!(InvalidArgument, "unknown parameter {k}")),
        }
    }
    let bucket = bucket
        .filter(|b| s3s::path::check_bucket_name(b))
        .ok_or_else(|| s3_error!(InvalidArgument, "bucket: a valid bucket name is required"))?;
    let key = key
        .filter(|k| !k.is_empty() && k.len() <= 1024)
        .ok_or_else(|| s3_error!(InvalidArgument, "key: an object key is required"))?;
    let path = VPath::parse(&format!("/{bucket}/{key}"))
        .map_err(|_| s3_error!(InvalidArgument, "key: not an object key"))?;
    Ok((path, avg))
}

impl DeltaRoute {
    /// The peer and its key's user, or a refusal for anyone else.
    async fn who(&self, req: &S3Request<Body>) -> S3Result<(Peer, Caller)> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let Some(peer) = super::auth::peer_of(&self.keys, Some(&cred.access_key)).await? else {
            self.owners.take_key(&cred.access_key);
            return Err(s3_error!(
                AccessDenied,
                "only a peer key (kura peer key) may use delta transfer"
            ));
        };
        let caller = super::auth::caller(&self.keys, &self.owners, req).await?;
        Ok((peer, caller))
    }

    async fn chunks(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let (_, c) = self.who(&req).await?;
        let (path, avg) = parse(&req.uri, true)?;
        let avg = match avg {
            Some(a) => a,
            None => {
                let e = self
                    .vfs
                    .may_read(&c, &path)
                    .await
                    .map_err(super::errors::object_error)?;
                avg_for(e.size)
            }
        };
        let (_, _, list) = self
            .vfs
            .open_chunked(&c, &path, avg)
            .await
            .map_err(super::errors::object_error)?;
        let body =
            serde_json::to_vec(&WireList::of(&list)).map_err(|_| s3_error!(InternalError))?;
        let mut resp =
            S3Response::with_status(Body::from(bytes::Bytes::from(body)), StatusCode::OK);
        resp.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }

    async fn delta(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let (peer, c) = self.who(&req).await?;
        let (path, _) = parse(&req.uri, false)?;
        match crate::replication::delta_recv::receive(
            &self.vfs,
            &c,
            &peer,
            &path,
            Box::pin(req.input),
        )
        .await
        {
            Ok(e) => {
                let mut resp = S3Response::with_status(Body::empty(), StatusCode::OK);
                if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", e.etag)) {
                    resp.headers.insert(http::header::ETAG, v);
                }
                Ok(resp)
            }
            Err(ReplError::Vfs(e)) => Err(super::errors::object_error(e)),
            Err(ReplError::Invalid(m)) => {
                tracing::warn!(peer = %peer.name, %path, error = %m, "replication: a delta was refused");
                Err(s3_error!(InvalidRequest, "{m}"))
            }
            Err(ReplError::Unreachable(m)) => Err(s3_error!(IncompleteBody, "{m}")),
            Err(e) => {
                tracing::error!(peer = %peer.name, %path, error = %e, "replication: a delta failed");
                Err(s3_error!(InternalError))
            }
        }
    }
}

#[async_trait::async_trait]
impl S3Route for DeltaRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        (method == Method::GET && uri.path() == CHUNKS_PATH)
            || (method == Method::PUT && uri.path() == DELTA_PATH)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if req.method == Method::PUT {
            self.delta(req).await
        } else {
            self.chunks(req).await
        }
    }
}

/// The routes next to S3 that only peers use: the journal feed and delta transfer.
pub struct PeerRoutes {
    /// `GET /api/replication/v1/journal`.
    pub feed: super::feed::FeedRoute,
    /// The chunk list and delta endpoints.
    pub delta: DeltaRoute,
}

#[async_trait::async_trait]
impl S3Route for PeerRoutes {
    fn is_match(&self, m: &Method, u: &Uri, h: &HeaderMap, x: &mut Extensions) -> bool {
        self.feed.is_match(m, u, h, x) || self.delta.is_match(m, u, h, x)
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if self
            .delta
            .is_match(&req.method, &req.uri, &req.headers, &mut req.extensions)
        {
            self.delta.call(req).await
        } else {
            self.feed.call(req).await
        }
    }
}
