//! The side of a delta transfer that holds the new version of a large file (push), and the
//! side that fetches one (pull): both ask the other node for its chunk list, plan, and
//! move only the chunks it lacks. Any refusal of the delta itself (an old peer, a base that
//! changed, a hash that does not match) answers "not done", and the file travels whole.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::delta::{self, Head, Op, Rebuild, WireList};
use super::remote::Remote;
use super::ReplError;
use crate::vfs::chunks::{avg_for, ChunkList};
use crate::vfs::replica::{Peer, ReplicaMeta};
use crate::vfs::{Caller, Download, UploadOptions, VPath, Vfs, VfsError};

/// Bytes of new data read from storage (and sent) at a time.
const READ: u64 = 1 << 20;
/// Largest range a puller fetches in one GET.
const RANGE: u64 = 8 << 20;

/// A request to the peer's delta endpoints, signed with our key there.
fn signed(
    remote: &Remote,
    put: bool,
    path: &str,
    query: &[(&str, String)],
) -> Result<reqwest::RequestBuilder, ReplError> {
    let base = remote.endpoint();
    let url = reqwest::Url::parse(&format!("{base}{path}"))
        .map_err(|e| ReplError::Invalid(format!("bad endpoint {base}: {e}")))?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let now = time::OffsetDateTime::now_utc();
    let (key, secret) = (remote.access_key(), remote.secret());
    let headers = if put {
        super::sign::sign_put(&host, path, query, key, secret, now)
    } else {
        super::sign::sign_get(&host, path, query, key, secret, now)
    };
    let qs = query
        .iter()
        .map(|(k, v)| format!("{k}={}", super::sign::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{base}{path}?{qs}");
    let mut req = if put {
        remote.client().put(url)
    } else {
        remote.client().get(url)
    };
    for (k, v) in headers {
        req = req.header(k, v);
    }
    Ok(req)
}

/// A refusal of our key by the peer (the rule waits) or the peer unreachable (it retries):
/// errors; anything else the peer answers means "no delta this time".
fn classify(status: u16, text: String) -> Result<(), ReplError> {
    let e = ReplError::Pull(status, text);
    if super::remote::is_refused(&e) {
        return Err(e);
    }
    tracing::info!(error = %super::remote::describe(&e), "replication: no delta, the file travels whole");
    Ok(())
}

/// The peer's chunk list of `key` in `bucket` (at average chunk size `avg`, or the one it
/// picks), with the bytes it took; None when it has no such file or will not tell.
async fn their_list(
    remote: &Remote,
    peer: &str,
    direction: &'static str,
    bucket: &str,
    key: &str,
    avg: Option<u32>,
) -> Result<Option<ChunkList>, ReplError> {
    let mut query = vec![("bucket", bucket.to_string()), ("key", key.to_string())];
    if let Some(a) = avg {
        query.insert(0, ("avg", a.to_string()));
    }
    let resp = signed(remote, false, delta::CHUNKS_PATH, &query)?
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(|e| ReplError::Unreachable(format!("chunk list: {}", crate::causes::chain(&e))))?;
    let status = resp.status();
    if resp
        .content_length()
        .is_some_and(|n| n > delta::LIST_MAX as u64)
    {
        return Ok(None);
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ReplError::Unreachable(format!("chunk list: {e}")))?;
    crate::metrics::get().replication_bytes(peer, direction, "lists", body.len() as u64);
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).to_string();
        classify(status.as_u16(), text)?;
        return Ok(None);
    }
    if body.len() > delta::LIST_MAX {
        return Ok(None);
    }
    let wire: WireList = serde_json::from_slice(&body)
        .map_err(|e| ReplError::Invalid(format!("the peer's chunk list is unreadable: {e}")))?;
    wire.into_list().map(Some)
}

/// Pushes the current version of the file at `path` (key `key` on the peer) as a delta
/// against the version the peer holds, with the shipment headers `headers`. Returns false
/// when it sent nothing (a small file, nothing there, an old peer, a refusal of the delta):
/// the caller ships the file whole.
#[allow(clippy::too_many_arguments)]
pub async fn push(
    vfs: &Vfs,
    remote: &Remote,
    peer: &str,
    bucket: &str,
    key: &str,
    path: &VPath,
    etag: &str,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
) -> Result<bool, ReplError> {
    let Some(theirs) = their_list(remote, peer, "push", bucket, key, None).await? else {
        return Ok(false);
    };
    let (entry, d, ours) = match vfs.open_chunked_unchecked(path, theirs.avg).await {
        Ok(o) => o,
        Err(VfsError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if entry.etag != etag || !delta::eligible(ours.size) {
        return Ok(false);
    }
    let ops = delta::plan(&theirs, &ours);
    if !delta::worth_it(&ops, ours.size) {
        return Ok(false);
    }
    let head = Head {
        of: theirs.etag.clone(),
        avg: theirs.avg,
        size: ours.size,
        blake3: hex::encode(ours.blake3),
        content_type,
        headers,
    };
    let head =
        serde_json::to_vec(&head).map_err(|e| ReplError::Invalid(format!("delta head: {e}")))?;
    if head.len() > delta::HEAD_MAX as usize {
        return Ok(false);
    }
    let mut prefix = delta::MAGIC.to_vec();
    prefix.extend_from_slice(&(head.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&head);
    let len = prefix.len() as u64 + ops.iter().map(Op::wire_len).sum::<u64>() + 1;
    let new = delta::new_bytes(&ops);
    let body = Body {
        d,
        prefix: Some(Bytes::from(prefix)),
        ops: ops.into(),
        data: None,
        done: false,
    };
    let query = [("bucket", bucket.to_string()), ("key", key.to_string())];
    let resp = signed(remote, true, delta::DELTA_PATH, &query)?
        .header(http::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(body.stream()))
        .send()
        .await
        .map_err(|e| ReplError::Unreachable(format!("delta: {}", crate::causes::chain(&e))))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        classify(status.as_u16(), text.chars().take(512).collect())?;
        return Ok(false);
    }
    crate::metrics::get().replication_bytes(peer, "push", "delta", len);
    tracing::info!(%peer, %path, size = ours.size, sent = len, new, "replication: shipped a delta");
    Ok(true)
}

/// A delta body being sent: the prefix, then each op with its new bytes read as it goes.
struct Body {
    d: Download,
    prefix: Option<Bytes>,
    ops: VecDeque<Op>,
    /// New bytes of the current op still to send (from, to).
    data: Option<(u64, u64)>,
    done: bool,
}

impl Body {
    fn stream(self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::try_unfold(self, |mut b| async move {
            let next = b.next().await.map_err(std::io::Error::other)?;
            Ok(next.map(|bytes| (bytes, b)))
        })
    }

    async fn next(&mut self) -> Result<Option<Bytes>, VfsError> {
        if let Some(p) = self.prefix.take() {
            return Ok(Some(p));
        }
        if let Some((at, to)) = self.data {
            let buf = self.d.read_at(at, (to - at).min(READ) as usize).await?;
            if buf.is_empty() {
                return Err(VfsError::Incomplete {
                    expected: to,
                    got: at,
                });
            }
            let at = at + buf.len() as u64;
            self.data = (at < to).then_some((at, to));
            return Ok(Some(buf));
        }
        match self.ops.pop_front() {
            Some(Op::Copy { first, count }) => {
                let mut op = vec![delta::OP_COPY];
                op.extend_from_slice(&first.to_le_bytes());
                op.extend_from_slice(&count.to_le_bytes());
                Ok(Some(Bytes::from(op)))
            }
            Some(Op::Data { offset, len }) => {
                let mut op = vec![delta::OP_DATA];
                op.extend_from_slice(&len.to_le_bytes());
                self.data = Some((offset, offset + u64::from(len)));
                Ok(Some(Bytes::from(op)))
            }
            None if !self.done => {
                self.done = true;
                Ok(Some(Bytes::from_static(&[delta::OP_END])))
            }
            None => Ok(None),
        }
    }
}

/// Applies the peer's new version of `key` (its feed entry's `meta` and `opts`) as a delta
/// against this node's version at `path`, fetching only the ranges this node lacks, as the
/// user `c`. Returns false when it changed nothing and the caller should fetch the file
/// whole; a refusal by this node (a lock, the quota, a permission) is an error, as for a
/// whole file.
#[allow(clippy::too_many_arguments)]
pub async fn pull(
    vfs: &Vfs,
    remote: &Remote,
    c: &Caller,
    peer: &Peer,
    path: &VPath,
    key: &str,
    meta: &ReplicaMeta,
    opts: &UploadOptions,
) -> Result<bool, ReplError> {
    let local = match vfs.stat(c, path).await {
        Ok(e) if !e.is_dir && delta::eligible(e.size) => e,
        _ => return Ok(false),
    };
    let avg = avg_for(local.size);
    let bucket = path.as_str()[1..].split('/').next().unwrap_or_default();
    let Some(theirs) = their_list(remote, &peer.name, "pull", bucket, key, Some(avg)).await? else {
        return Ok(false);
    };
    if theirs.avg != avg
        || !delta::eligible(theirs.size)
        || meta.etag.as_deref().is_some_and(|e| e != theirs.etag)
    {
        return Ok(false);
    }
    let (_, d, ours) = match vfs.open_chunked(c, path, avg).await {
        Ok(o) => o,
        // gone, unreadable for this user, or opening only with its client's key (SSE-C)
        Err(e) => {
            tracing::debug!(%path, error = %e, "replication: no delta from this node's version");
            return Ok(false);
        }
    };
    let ops = delta::plan(&ours, &theirs);
    if !delta::worth_it(&ops, theirs.size) {
        return Ok(false);
    }
    let opts = UploadOptions {
        expected_size: Some(theirs.size),
        ..opts.clone()
    };
    let up = vfs
        .receive_shipment(c, peer, path, meta.clone(), opts)
        .await?;
    let mut rebuild = Rebuild::new(up, avg);
    match fill(&mut rebuild, remote, key, &d, &ours, &ops).await {
        Ok(fetched) => {
            crate::metrics::get().replication_bytes(&peer.name, "pull", "delta", fetched);
        }
        Err(e) => {
            rebuild.abort().await;
            return match e {
                // gone on the peer since its list: the feed's later entry says so
                ReplError::Remote(o) if o.kind() == opendal::ErrorKind::NotFound => Ok(false),
                e => Err(e),
            };
        }
    }
    match rebuild.finish(vfs, theirs.size, &theirs.blake3).await {
        Ok(_) => {
            tracing::info!(peer = %peer.name, %path, size = theirs.size, fetched = delta::new_bytes(&ops),
                "replication: pulled a delta");
            Ok(true)
        }
        Err(ReplError::Vfs(VfsError::BadDigest(why))) => {
            tracing::warn!(peer = %peer.name, %path, %why, "replication: a pulled delta did not add up; fetching the file whole");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Writes the new version into `rebuild`: runs of our chunks from `d`, the rest fetched from
/// the peer by range (adjacent new chunks in one GET). Returns the bytes fetched.
async fn fill(
    rebuild: &mut Rebuild,
    remote: &Remote,
    key: &str,
    d: &Download,
    ours: &ChunkList,
    ops: &[Op],
) -> Result<u64, ReplError> {
    let reader = remote.op.reader(key).await?;
    let mut fetched = 0;
    let mut i = 0;
    while i < ops.len() {
        match ops[i] {
            Op::Copy { first, count } => {
                rebuild.copy(d, ours, first, count).await?;
                i += 1;
            }
            Op::Data { offset, len } => {
                // the new chunks that follow this one in the file come in the same GET
                let mut to = offset + u64::from(len);
                i += 1;
                while let Some(Op::Data { offset: o, len: l }) = ops.get(i) {
                    if *o != to || to - offset >= RANGE {
                        break;
                    }
                    to += u64::from(*l);
                    i += 1;
                }
                let mut at = offset;
                while at < to {
                    let end = (at + READ * 4).min(to);
                    let buf = reader.read(at..end).await?.to_bytes();
                    if buf.is_empty() {
                        return Err(VfsError::Incomplete {
                            expected: to,
                            got: at,
                        }
                        .into());
                    }
                    at += buf.len() as u64;
                    fetched += buf.len() as u64;
                    rebuild.write(buf).await?;
                }
            }
        }
    }
    Ok(fetched)
}
