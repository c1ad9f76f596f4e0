//! The receiving side of a pushed delta (`PUT /api/replication/v1/delta`): reads the body
//! as it arrives, rebuilds the new version from this node's current one and the new bytes
//! through the ordinary shipment path (the peer key user's rights, locks and quota, the
//! bucket's encryption and versions), and commits it only when it is byte for byte the
//! version the sender has. A malformed body, a copy out of range, a wrong hash: an error,
//! and nothing changes.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::delta::{self, Head, Rebuild};
use super::ReplError;
use crate::vfs::replica::{Peer, ReplicaMeta};
use crate::vfs::{Caller, Entry, UploadOptions, VPath, Vfs, VfsError};

/// Reads a request body in the pieces a delta is made of.
struct Reader<S> {
    body: S,
    buf: BytesMut,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads more of the body; false at its end.
    async fn more(&mut self) -> Result<bool, ReplError> {
        match self.body.next().await {
            Some(Ok(b)) => {
                self.buf.extend_from_slice(&b);
                Ok(true)
            }
            Some(Err(e)) => Err(ReplError::Unreachable(format!("reading the delta: {e}"))),
            None => Ok(false),
        }
    }

    /// Exactly `n` bytes (n is small: a tag, a length, the head).
    async fn exact(&mut self, n: usize) -> Result<Bytes, ReplError> {
        while self.buf.len() < n {
            if !self.more().await? {
                return Err(ReplError::Invalid("the delta body ends too early".into()));
            }
        }
        Ok(self.buf.split_to(n).freeze())
    }

    async fn u32(&mut self) -> Result<u32, ReplError> {
        let mut b = self.exact(4).await?;
        Ok(b.get_u32_le())
    }

    /// The next piece of at most `n` bytes (at least one).
    async fn some(&mut self, n: usize) -> Result<Bytes, ReplError> {
        if self.buf.is_empty() && !self.more().await? {
            return Err(ReplError::Invalid("the delta body ends too early".into()));
        }
        let n = n.min(self.buf.len());
        Ok(self.buf.split_to(n).freeze())
    }

    /// Whether the body is over.
    async fn at_end(&mut self) -> Result<bool, ReplError> {
        Ok(self.buf.is_empty() && !self.more().await?)
    }
}

/// Reads a delta of `path` from `body` sent by `peer`, whose key's user is `c`, and commits
/// the version it rebuilds.
pub async fn receive<S, E>(
    vfs: &Vfs,
    c: &Caller,
    peer: &Peer,
    path: &VPath,
    body: S,
) -> Result<Entry, ReplError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut r = Reader {
        body,
        buf: BytesMut::new(),
    };
    if &r.exact(delta::MAGIC.len()).await?[..] != delta::MAGIC {
        return Err(ReplError::Invalid("not a delta body".into()));
    }
    let n = r.u32().await?;
    if n > delta::HEAD_MAX {
        return Err(ReplError::Invalid(format!(
            "a delta head of {n} bytes (at most {})",
            delta::HEAD_MAX
        )));
    }
    let head: Head = serde_json::from_slice(&r.exact(n as usize).await?)
        .map_err(|e| ReplError::Invalid(format!("the delta head is unreadable: {e}")))?;
    let want = delta::parse_hash(&head.blake3)
        .ok_or_else(|| ReplError::Invalid("the delta head has no BLAKE3".into()))?;
    let mut headers = head.headers;
    let meta = ReplicaMeta::take_from(&mut headers)
        .ok_or_else(|| ReplError::Invalid("the delta head has no origin".into()))?;
    // the version the copies name, opened as the peer key's user (who must be able to read it)
    let (entry, old, list) = vfs.open_chunked(c, path, head.avg).await?;
    if entry.etag != head.of {
        return Err(VfsError::PreconditionFailed(
            "the version the delta was made against is no longer the current one",
        )
        .into());
    }
    let opts = UploadOptions {
        create_parents: true,
        content_type: head.content_type,
        headers,
        expected_size: Some(head.size),
        ..Default::default()
    };
    let up = vfs.receive_shipment(c, peer, path, meta, opts).await?;
    let mut rebuild = Rebuild::new(up, head.avg);
    let ops = async {
        loop {
            let tag = r.exact(1).await?[0];
            match tag {
                delta::OP_COPY => {
                    let (first, count) = (r.u32().await?, r.u32().await?);
                    rebuild.copy(&old, &list, first, count).await?;
                }
                delta::OP_DATA => {
                    let len = r.u32().await?;
                    delta::check_data_len(len)?;
                    let mut left = len as usize;
                    while left > 0 {
                        let piece = r.some(left).await?;
                        left -= piece.len();
                        rebuild.write(piece).await?;
                    }
                }
                delta::OP_END => break,
                t => return Err(ReplError::Invalid(format!("unknown delta op {t:#04x}"))),
            }
        }
        if !r.at_end().await? {
            return Err(ReplError::Invalid(
                "bytes after the end of the delta".into(),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(e) = ops {
        rebuild.abort().await;
        return Err(e);
    }
    rebuild.finish(vfs, head.size, &want).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        parts: Vec<&'static [u8]>,
    ) -> Reader<impl Stream<Item = Result<Bytes, String>> + Unpin> {
        Reader {
            body: futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))),
            buf: BytesMut::new(),
        }
    }

    #[tokio::test]
    async fn pieces_are_read_across_the_body_s_chunks() {
        let mut r = body(vec![b"KURA", b"DLT1\x05", b"\x00\x00\x00hel", b"lo"]);
        assert_eq!(&r.exact(8).await.unwrap()[..], delta::MAGIC);
        assert_eq!(r.u32().await.unwrap(), 5);
        assert_eq!(&r.some(5).await.unwrap()[..], b"hel");
        assert_eq!(&r.some(5).await.unwrap()[..], b"lo");
        assert!(r.at_end().await.unwrap());
        assert!(r.exact(1).await.is_err());
    }
}
