//! Delta transfer of large files (docs/replication.md, "Delta transfer"): the format both
//! directions share. A peer's chunk list (`GET /api/replication/v1/chunks`) tells which
//! chunks of a file it holds; a plan says how to rebuild the new version from them (copy a
//! run of the old version's chunks, or take new bytes); a rebuild writes the result
//! through the core's ordinary shipment path and commits it only when its size and
//! whole-file BLAKE3 are the ones the new version has.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ReplError;
use crate::vfs::chunks::{ChunkList, Chunker, CHUNK_MAX};
use crate::vfs::replica::Shipment;
use crate::vfs::{Download, Entry, Vfs, VfsError};

/// Where a node serves the chunk list of one of its files (a peer key's GET).
pub const CHUNKS_PATH: &str = "/api/replication/v1/chunks";
/// Where a node takes a delta of one of its files (a peer key's PUT).
pub const DELTA_PATH: &str = "/api/replication/v1/delta";
/// Files smaller than this travel whole: a delta saves little and costs two requests.
pub const DELTA_MIN: u64 = 8 << 20;
/// The first bytes of a delta body.
pub const MAGIC: &[u8; 8] = b"KURADLT1";
/// Largest head (JSON) a delta body may start with.
pub const HEAD_MAX: u32 = 64 * 1024;
/// Largest chunk list answer a node reads (a 4 TiB file at 4 MiB chunks, base64).
pub const LIST_MAX: usize = 64 << 20;
/// A delta is worth sending only when it leaves out at least a tenth of the file.
const WORTH: u64 = 10;
/// Bytes copied from the old version at a time.
const READ: u64 = 1 << 20;

/// Op tags of a delta body.
pub const OP_COPY: u8 = b'C';
/// New bytes follow (u32 length, then the bytes).
pub const OP_DATA: u8 = b'D';
/// The end: nothing may follow.
pub const OP_END: u8 = b'E';

/// A chunk list as it travels (the answer of `GET /api/replication/v1/chunks`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireList {
    /// The version's ETag.
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// The average chunk size it was cut with.
    pub avg: u32,
    /// BLAKE3 of the whole version (hex).
    pub blake3: String,
    /// The packed chunks (length u32 LE and BLAKE3, per chunk), base64.
    pub chunks: String,
}

impl WireList {
    /// The list of `l` for the wire.
    pub fn of(l: &ChunkList) -> WireList {
        WireList {
            etag: l.etag.clone(),
            size: l.size,
            avg: l.avg,
            blake3: hex::encode(l.blake3),
            chunks: base64::engine::general_purpose::STANDARD.encode(l.pack()),
        }
    }

    /// The list again; an error unless it is well formed.
    pub fn into_list(self) -> Result<ChunkList, ReplError> {
        let bad = || ReplError::Invalid("the peer's chunk list is malformed".into());
        let blake3 = parse_hash(&self.blake3).ok_or_else(bad)?;
        let packed = base64::engine::general_purpose::STANDARD
            .decode(self.chunks.as_bytes())
            .map_err(|_| bad())?;
        ChunkList::unpack(self.etag, self.size, self.avg, blake3, &packed).ok_or_else(bad)
    }
}

/// A BLAKE3 hash from hex.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// What a delta body rebuilds (its first part, after `MAGIC` and a u32 LE length).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Head {
    /// The receiver's version (ETag) whose chunks the copies name.
    pub of: String,
    /// The average chunk size of that version's list.
    pub avg: u32,
    /// Size of the new version.
    pub size: u64,
    /// BLAKE3 of the new version (hex).
    pub blake3: String,
    /// Its content type.
    pub content_type: Option<String>,
    /// The headers a whole shipment of it would carry (`x-amz-meta-kura-*` included).
    pub headers: BTreeMap<String, String>,
}

/// One step of a rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Copy chunks `first .. first + count` of the old version.
    Copy { first: u32, count: u32 },
    /// Take `len` new bytes (at `offset` in the new version).
    Data { offset: u64, len: u32 },
}

impl Op {
    /// Bytes of this op in a delta body.
    pub fn wire_len(&self) -> u64 {
        match self {
            Op::Copy { .. } => 9,
            Op::Data { len, .. } => 5 + u64::from(*len),
        }
    }
}

/// How to rebuild `new` from `old`: runs of chunks `old` holds are copied, the others are
/// new bytes (one op per chunk).
pub fn plan(old: &ChunkList, new: &ChunkList) -> Vec<Op> {
    let mut index: HashMap<&[u8; 32], u32> = HashMap::with_capacity(old.chunks.len());
    for (i, c) in old.chunks.iter().enumerate().rev() {
        index.insert(&c.hash, i as u32);
    }
    let mut ops: Vec<Op> = Vec::new();
    for c in &new.chunks {
        let found = index
            .get(&c.hash)
            .filter(|&&i| old.chunks[i as usize].len == c.len);
        match (found, ops.last_mut()) {
            (Some(&i), Some(Op::Copy { first, count })) if *first + *count == i => *count += 1,
            (Some(&i), _) => ops.push(Op::Copy { first: i, count: 1 }),
            (None, _) => ops.push(Op::Data {
                offset: c.offset,
                len: c.len,
            }),
        }
    }
    ops
}

/// New bytes a plan sends.
pub fn new_bytes(ops: &[Op]) -> u64 {
    ops.iter()
        .map(|o| match o {
            Op::Data { len, .. } => u64::from(*len),
            Op::Copy { .. } => 0,
        })
        .sum()
}

/// Whether a plan saves enough of a `size`-byte file to be worth it.
pub fn worth_it(ops: &[Op], size: u64) -> bool {
    new_bytes(ops) * WORTH < size * (WORTH - 1)
}

/// A new version being written from the old one's chunks and new bytes, hashed as it goes.
pub struct Rebuild {
    up: Shipment,
    cut: Chunker,
    written: u64,
}

impl Rebuild {
    /// Writes into `up`, cutting the result into chunks of average size `avg`.
    pub fn new(up: Shipment, avg: u32) -> Rebuild {
        Rebuild {
            up,
            cut: Chunker::new(avg),
            written: 0,
        }
    }

    /// Appends new bytes.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), ReplError> {
        self.written += bytes.len() as u64;
        self.cut.push(&bytes);
        Ok(self.up.write(bytes).await?)
    }

    /// Appends chunks `first .. first + count` of the old version (`list`, opened as `old`);
    /// an error when the run is out of the list.
    pub async fn copy(
        &mut self,
        old: &Download,
        list: &ChunkList,
        first: u32,
        count: u32,
    ) -> Result<(), ReplError> {
        let end = first.checked_add(count).map(|e| e as usize);
        let (Some(end), true) = (end, count > 0) else {
            return Err(ReplError::Invalid("a copy of no chunk".into()));
        };
        if end > list.chunks.len() {
            return Err(ReplError::Invalid(format!(
                "a copy of chunks {first}..{end} of a version of {} chunks",
                list.chunks.len()
            )));
        }
        let from = list.chunks[first as usize].offset;
        let last = &list.chunks[end - 1];
        let to = last.offset + u64::from(last.len);
        let mut at = from;
        while at < to {
            let buf = old.read_at(at, (to - at).min(READ) as usize).await?;
            if buf.is_empty() {
                return Err(VfsError::Incomplete {
                    expected: to,
                    got: at,
                }
                .into());
            }
            at += buf.len() as u64;
            self.write(buf).await?;
        }
        Ok(())
    }

    /// Commits the new version if it has `size` bytes and BLAKE3 `blake3`; otherwise
    /// discards it (`BadDigest`) and nothing changes. Keeps the new version's chunk list.
    pub async fn finish(
        mut self,
        vfs: &Vfs,
        size: u64,
        blake3: &[u8; 32],
    ) -> Result<Entry, ReplError> {
        let got = self.written;
        let list = self.cut.finish(String::new());
        if got != size || &list.blake3 != blake3 {
            self.up.abort().await;
            return Err(VfsError::BadDigest(format!(
                "the rebuilt version ({got} bytes, BLAKE3 {}) is not the one sent ({size} bytes, BLAKE3 {})",
                hex::encode(list.blake3),
                hex::encode(blake3)
            ))
            .into());
        }
        let entry = self.up.commit().await?;
        if entry.size == size {
            let list = ChunkList {
                etag: entry.etag.clone(),
                ..list
            };
            if let Err(e) = vfs.keep_chunks(&entry.path, &list).await {
                tracing::warn!(path = %entry.path, error = %e, "replication: cannot keep a chunk list");
            }
        }
        Ok(entry)
    }

    /// Discards what was written.
    pub async fn abort(mut self) {
        self.up.abort().await
    }
}

/// Whether a delta is worth trying for a file of `size` bytes (small files travel whole).
pub fn eligible(size: u64) -> bool {
    size >= DELTA_MIN
}

/// Refuses new bytes of no length or longer than the largest chunk.
pub fn check_data_len(len: u32) -> Result<(), ReplError> {
    if len == 0 || len > CHUNK_MAX {
        return Err(ReplError::Invalid(format!(
            "new bytes of {len} in one op (1 to {CHUNK_MAX})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::chunks::Chunk;

    fn list(hashes: &[u8]) -> ChunkList {
        let chunks: Vec<Chunk> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| Chunk {
                offset: i as u64 * 10,
                len: 10,
                hash: [*h; 32],
            })
            .collect();
        ChunkList {
            etag: "e".into(),
            size: chunks.len() as u64 * 10,
            avg: crate::vfs::chunks::AVG_MIN,
            blake3: [0; 32],
            chunks,
        }
    }

    #[test]
    fn runs_of_known_chunks_are_copied_in_one_op() {
        let old = list(&[1, 2, 3, 4, 5]);
        let new = list(&[1, 2, 9, 4, 5, 6]);
        assert_eq!(
            plan(&old, &new),
            vec![
                Op::Copy { first: 0, count: 2 },
                Op::Data {
                    offset: 20,
                    len: 10
                },
                Op::Copy { first: 3, count: 2 },
                Op::Data {
                    offset: 50,
                    len: 10
                },
            ]
        );
        assert_eq!(new_bytes(&plan(&old, &new)), 20);
        assert!(worth_it(&plan(&old, &new), 60));
        assert!(!worth_it(&plan(&list(&[]), &new), 60));
    }

    #[test]
    fn a_wire_list_round_trips_and_a_forged_one_is_refused() {
        let l = list(&[1, 2, 3]);
        assert_eq!(WireList::of(&l).into_list().ok(), Some(l.clone()));
        let mut w = WireList::of(&l);
        w.size += 1;
        assert!(w.into_list().is_err());
        let mut w = WireList::of(&l);
        w.chunks = "!!".into();
        assert!(w.into_list().is_err());
    }
}
