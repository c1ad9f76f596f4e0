//! Content-defined chunks of a file (FastCDC 2020) with their BLAKE3 hashes: what two
//! replication peers compare so that only the changed parts of a large file travel
//! (docs/replication.md, "Delta transfer"). Lists are cut from the plaintext bytes as they
//! stream past (memory: one largest chunk), and kept per version and chunk size.

use fastcdc::v2020;

use super::{Caller, Download, Entry, VPath, Vfs, VfsError};
use crate::store::ChunkRow;

/// Smallest average chunk size (files up to 1 GiB).
pub const AVG_MIN: u32 = 64 * 1024;
/// Largest average chunk size (FastCDC 2020's limit).
pub const AVG_MAX: u32 = 4 * 1024 * 1024;
/// Largest chunk any list may hold (4 x `AVG_MAX`).
pub const CHUNK_MAX: u32 = 4 * AVG_MAX;
/// The number of chunks a list stays near: the average size doubles past it.
const TARGET_CHUNKS: u64 = 16 * 1024;
/// Bytes read from storage at a time.
const READ: usize = 1 << 20;
/// Bytes per chunk in a packed list: length (u32 LE) and BLAKE3 hash.
pub const PACKED: usize = 4 + 32;

/// The average chunk size for a file of `size` bytes: 64 KiB up to 1 GiB, doubled for
/// each doubling past it (at most 4 MiB), so a list holds about 16,384 chunks.
pub fn avg_for(size: u64) -> u32 {
    let mut avg = AVG_MIN;
    while avg < AVG_MAX && size > u64::from(avg) * TARGET_CHUNKS {
        avg *= 2;
    }
    avg
}

/// Whether `avg` is one of the average sizes `avg_for` gives.
pub fn valid_avg(avg: u32) -> bool {
    avg.is_power_of_two() && (AVG_MIN..=AVG_MAX).contains(&avg)
}

/// One chunk of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// BLAKE3 of its bytes.
    pub hash: [u8; 32],
}

/// The chunks of one version of a file, in order, covering it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkList {
    /// The version (ETag) they were cut from.
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// The average chunk size they were cut with.
    pub avg: u32,
    /// BLAKE3 of the whole version.
    pub blake3: [u8; 32],
    /// The chunks.
    pub chunks: Vec<Chunk>,
}

impl ChunkList {
    /// The chunks packed: per chunk its length (u32 LE) and hash.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.len() * PACKED);
        for c in &self.chunks {
            out.extend_from_slice(&c.len.to_le_bytes());
            out.extend_from_slice(&c.hash);
        }
        out
    }

    /// A list from its packed chunks; None unless they are well formed, no longer than
    /// `CHUNK_MAX` each, none empty, and add up to `size`.
    pub fn unpack(
        etag: String,
        size: u64,
        avg: u32,
        blake3: [u8; 32],
        packed: &[u8],
    ) -> Option<ChunkList> {
        if !packed.len().is_multiple_of(PACKED) || !valid_avg(avg) {
            return None;
        }
        let mut chunks = Vec::with_capacity(packed.len() / PACKED);
        let mut offset = 0u64;
        for p in packed.chunks_exact(PACKED) {
            let len = u32::from_le_bytes(p[..4].try_into().ok()?);
            if len == 0 || len > CHUNK_MAX {
                return None;
            }
            chunks.push(Chunk {
                offset,
                len,
                hash: p[4..].try_into().ok()?,
            });
            offset += u64::from(len);
        }
        (offset == size).then_some(ChunkList {
            etag,
            size,
            avg,
            blake3,
            chunks,
        })
    }

    fn row(&self) -> ChunkRow {
        ChunkRow {
            etag: self.etag.clone(),
            size: self.size as i64,
            blake3: hex::encode(self.blake3),
            list: self.pack(),
        }
    }

    fn from_row(row: ChunkRow, avg: u32) -> Option<ChunkList> {
        let blake3 = hex::decode(&row.blake3).ok()?.try_into().ok()?;
        ChunkList::unpack(row.etag, row.size as u64, avg, blake3, &row.list)
    }
}

/// Cuts bytes into chunks as they stream past; holds at most one largest chunk (plus what
/// one `push` brings).
pub struct Chunker {
    avg: u32,
    min: usize,
    max: usize,
    masks: (u64, u64),
    buf: Vec<u8>,
    at: u64,
    whole: blake3::Hasher,
    chunks: Vec<Chunk>,
}

impl Chunker {
    /// A chunker for average size `avg` (minimum a quarter of it, maximum four times).
    pub fn new(avg: u32) -> Chunker {
        let avg = avg.clamp(AVG_MIN, AVG_MAX).next_power_of_two();
        let bits = v2020::logarithm2(avg) as usize;
        // normalisation level 1, as FastCDC::new uses
        let masks = (v2020::MASKS[bits + 1], v2020::MASKS[bits - 1]);
        Chunker {
            avg,
            min: (avg / 4) as usize,
            max: (avg * 4) as usize,
            masks,
            buf: Vec::new(),
            at: 0,
            whole: blake3::Hasher::new(),
            chunks: Vec::new(),
        }
    }

    /// Takes the next bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        self.buf.extend_from_slice(bytes);
        self.cut(false);
    }

    /// Cuts what the buffer holds: chunks up to the last full `max` bytes, or all at the end.
    fn cut(&mut self, end: bool) {
        let mut start = 0;
        while self.buf.len() - start >= self.max || (end && start < self.buf.len()) {
            let src = &self.buf[start..];
            let (_, len) = v2020::cut(
                src,
                self.min,
                self.avg as usize,
                self.max,
                self.masks.0,
                self.masks.1,
                self.masks.0 << 1,
                self.masks.1 << 1,
            );
            let len = len.clamp(1, src.len());
            self.chunks.push(Chunk {
                offset: self.at,
                len: len as u32,
                hash: *blake3::hash(&src[..len]).as_bytes(),
            });
            self.at += len as u64;
            start += len;
        }
        self.buf.drain(..start);
    }

    /// The list of the bytes pushed, for the version `etag`.
    pub fn finish(mut self, etag: String) -> ChunkList {
        self.cut(true);
        ChunkList {
            etag,
            size: self.at,
            avg: self.avg,
            blake3: *self.whole.finalize().as_bytes(),
            chunks: self.chunks,
        }
    }
}

impl Vfs {
    /// Opens the file `path` for `c` (who must be allowed to read it) with the chunk list of
    /// the version opened, cut at average size `avg` (or kept from an earlier cut).
    pub async fn open_chunked(
        &self,
        c: &Caller,
        path: &VPath,
        avg: u32,
    ) -> Result<(Entry, Download, ChunkList), VfsError> {
        let (entry, d) = self.open_read(c, path).await?;
        let list = self.chunks_of(&entry, &d, avg).await?;
        Ok((entry, d, list))
    }

    /// `open_chunked` for the node itself (a replication sender), without a permission check.
    pub async fn open_chunked_unchecked(
        &self,
        path: &VPath,
        avg: u32,
    ) -> Result<(Entry, Download, ChunkList), VfsError> {
        let held = self.path_locks.read(path.as_str()).await;
        let entry = self
            .lookup(path)
            .await?
            .filter(|e| !e.is_dir)
            .ok_or(VfsError::NotFound)?;
        let d = self.open_unchecked(&entry, None).await;
        drop(held);
        let d = d?;
        let list = self.chunks_of(&entry, &d, avg).await?;
        Ok((entry, d, list))
    }

    /// The list of the version `entry` (opened as `d`): kept, or cut now and kept.
    async fn chunks_of(
        &self,
        entry: &Entry,
        d: &Download,
        avg: u32,
    ) -> Result<ChunkList, VfsError> {
        if !valid_avg(avg) {
            return Err(VfsError::InvalidArgument("not an average chunk size"));
        }
        let path = entry.path.as_str();
        if let Some(row) = self.store.chunk_row(path, avg).await? {
            if row.etag == entry.etag && row.size as u64 == entry.size {
                if let Some(list) = ChunkList::from_row(row, avg) {
                    return Ok(list);
                }
            }
        }
        let mut chunker = Chunker::new(avg);
        let mut at = 0u64;
        while at < entry.size {
            let buf = d.read_at(at, READ).await?;
            if buf.is_empty() {
                return Err(VfsError::Incomplete {
                    expected: entry.size,
                    got: at,
                });
            }
            at += buf.len() as u64;
            chunker.push(&buf);
        }
        let list = chunker.finish(entry.etag.clone());
        self.store.put_chunk_row(path, avg, &list.row()).await?;
        Ok(list)
    }

    /// Keeps a list cut while the version `etag` of `path` was written (a rebuilt delta).
    pub async fn keep_chunks(&self, path: &VPath, list: &ChunkList) -> Result<(), VfsError> {
        self.store
            .put_chunk_row(path.as_str(), list.avg, &list.row())
            .await?;
        Ok(())
    }

    /// Drops the kept lists of versions that are no longer current.
    pub async fn prune_chunks(&self) -> Result<u64, VfsError> {
        Ok(self.store.prune_chunk_rows().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cut(bytes: &[u8], piece: usize) -> ChunkList {
        let mut c = Chunker::new(AVG_MIN);
        for p in bytes.chunks(piece) {
            c.push(p);
        }
        c.finish("e".into())
    }

    #[test]
    fn the_cut_does_not_depend_on_how_the_bytes_arrive() {
        let data = noise(3 << 20, 7);
        let a = cut(&data, 1 << 20);
        assert_eq!(a, cut(&data, 4093));
        assert_eq!(a.size, data.len() as u64);
        assert_eq!(a.blake3, *blake3::hash(&data).as_bytes());
        assert!(
            a.chunks.len() > 20 && a.chunks.len() < 200,
            "{}",
            a.chunks.len()
        );
        let sum: u64 = a.chunks.iter().map(|c| u64::from(c.len)).sum();
        assert_eq!(sum, data.len() as u64);
        // the library's own cut of the whole buffer agrees
        let whole: Vec<usize> = v2020::FastCDC::new(&data, 16 << 10, 64 << 10, 256 << 10)
            .map(|c| c.length)
            .collect();
        let ours: Vec<usize> = a.chunks.iter().map(|c| c.len as usize).collect();
        assert_eq!(ours, whole);
    }

    #[test]
    fn an_edit_in_the_middle_changes_few_chunks() {
        let mut data = noise(4 << 20, 3);
        let before = cut(&data, 1 << 20);
        for b in &mut data[2 << 20..(2 << 20) + 1000] {
            *b ^= 0x5a;
        }
        let after = cut(&data, 1 << 20);
        let old: std::collections::HashSet<_> = before.chunks.iter().map(|c| c.hash).collect();
        let new = after
            .chunks
            .iter()
            .filter(|c| !old.contains(&c.hash))
            .count();
        assert!(new <= 3, "{new} chunks changed");
    }

    #[test]
    fn a_packed_list_round_trips_and_lies_are_refused() {
        let l = cut(&noise(1 << 20, 5), 1 << 16);
        let p = l.pack();
        assert_eq!(
            ChunkList::unpack(l.etag.clone(), l.size, l.avg, l.blake3, &p),
            Some(l.clone())
        );
        assert!(ChunkList::unpack("e".into(), l.size + 1, l.avg, l.blake3, &p).is_none());
        assert!(ChunkList::unpack("e".into(), l.size, l.avg, l.blake3, &p[1..]).is_none());
        assert!(ChunkList::unpack("e".into(), l.size, 1000, l.blake3, &p).is_none());
    }

    #[test]
    fn larger_files_get_larger_chunks() {
        assert_eq!(avg_for(0), AVG_MIN);
        assert_eq!(avg_for(1 << 30), AVG_MIN);
        assert_eq!(avg_for((1 << 30) + 1), 2 * AVG_MIN);
        assert_eq!(avg_for(1 << 50), AVG_MAX);
        assert!(valid_avg(avg_for(1 << 40)));
    }
}
