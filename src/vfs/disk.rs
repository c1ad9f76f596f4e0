//! Files on the local disk (`fs` backend) in few blocking calls. Uploads: a temporary file
//! written in batches of up to 1 MiB, fsynced once all bytes are in, renamed into place at the
//! commit. Downloads: open and first read in one call, then one call per chunk.
//!
//! OpenDAL's `fs` writer makes seven or eight blocking-pool calls for one small file (mkdir,
//! exists, open, dup, write, dup, rename) and fsyncs on a runtime thread; each call is two
//! thread wake-ups, which on a VM cost more than the file itself (docs/performance.md).

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::Stream;
use tempfile::NamedTempFile;

/// Bytes held before they go to the file: bounds memory per upload, sets the write batch.
const BATCH: usize = 1 << 20;

/// A temporary file becoming `target`; removed when dropped before `close` renamed it into place,
/// also when the future awaiting a write is dropped (the file travels with the blocking call).
pub(super) struct DiskTemp {
    dir: PathBuf,
    target: PathBuf,
    file: Option<NamedTempFile>,
    pending: Vec<Bytes>,
    pending_len: usize,
    synced: bool,
    /// Mode of the stored file (`disk_umask`).
    mode: u32,
    /// fsync the bytes before the commit (`durable_commits`).
    durable: bool,
}

impl DiskTemp {
    /// An upload to `target`, its temporary file to be made in `dir` (same filesystem).
    pub(super) fn new(dir: PathBuf, target: PathBuf, mode: u32, durable: bool) -> Self {
        DiskTemp {
            dir,
            target,
            file: None,
            pending: Vec::new(),
            pending_len: 0,
            synced: false,
            mode,
            durable,
        }
    }

    pub(super) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= BATCH {
            let file = self.spill(Ok).await?;
            self.file = Some(file);
        }
        Ok(())
    }

    /// Writes what is left and fsyncs: done before the commit's transaction, so that the
    /// write lock is held for the rename only, not for the fsync of a large file.
    pub(super) async fn sync(&mut self) -> std::io::Result<()> {
        let durable = self.durable;
        let file = self
            .spill(move |f| {
                if durable {
                    f.as_file().sync_all()?;
                }
                Ok(f)
            })
            .await?;
        self.file = Some(file);
        self.synced = true;
        Ok(())
    }

    /// The temporary file, once `sync` has written and fsynced every byte (the journaled
    /// commit renames it into place itself).
    pub(super) fn sealed_path(&self) -> Option<PathBuf> {
        match &self.file {
            Some(f) if self.synced && self.pending.is_empty() => Some(f.path().to_path_buf()),
            _ => None,
        }
    }

    /// Forgets the temporary file once a commit has renamed it into place.
    pub(super) fn disarm(&mut self) {
        if let Some(f) = self.file.take() {
            // the path is the stored file now: keep() only stops the removal on drop
            let _ = f.into_temp_path().keep();
        }
    }

    /// Renames the file into place (creating missing folders), after `sync`.
    pub(super) async fn close(&mut self) -> std::io::Result<()> {
        let target = self.target.clone();
        let synced = (self.synced && self.pending.is_empty()) || !self.durable;
        self.spill(move |f| {
            if !synced {
                f.as_file().sync_all()?;
            }
            persist(f, &target)
        })
        .await
    }

    /// Writes the pending bytes in one blocking call (creating the file first), then hands
    /// the file to `then` in that same call.
    async fn spill<R, F>(&mut self, then: F) -> std::io::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(NamedTempFile) -> std::io::Result<R> + Send + 'static,
    {
        let file = self.file.take();
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let (dir, mode) = (self.dir.clone(), self.mode);
        tokio::task::spawn_blocking(move || {
            let mut f = match file {
                Some(f) => f,
                // it becomes the stored file: the mode `disk_umask` gives stored files, exactly
                // (set again, since the process umask applies at creation)
                None => {
                    let f = tempfile::Builder::new()
                        .permissions(std::fs::Permissions::from_mode(mode))
                        .tempfile_in(&dir)?;
                    f.as_file()
                        .set_permissions(std::fs::Permissions::from_mode(mode))?;
                    f
                }
            };
            for c in &chunks {
                f.write_all(c)?;
            }
            then(f)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Renames the temporary file to `target`; a missing parent folder is created once.
fn persist(f: NamedTempFile, target: &Path) -> std::io::Result<()> {
    match f.persist(target) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            e.file.persist(target).map(|_| ()).map_err(|e| e.error)
        }
        Err(e) => Err(e.error),
    }
}

/// A file on the local disk being read: opened at the first read (so a reader keeps the version
/// it started with), each read one blocking call (of at most `wire::PIECE` for a stream, which
/// holds at most that much ahead of a client that stops reading).
pub(super) struct DiskFile {
    path: PathBuf,
    file: OnceLock<Arc<File>>,
    /// The whole file, read with the open when it is at most `WHOLE` bytes: a small GET is
    /// one blocking call, not two.
    whole: Option<Bytes>,
}

/// Files up to this size are read whole when opened.
const WHOLE: u64 = 64 * 1024;

impl DiskFile {
    /// Opens the file now and checks it holds one of `sizes` bytes (returned with it), so that
    /// a reply never promises bytes it cannot send; `Ok(None)` when the size differs.
    pub(super) async fn open_sized(
        path: PathBuf,
        sizes: Vec<u64>,
        inline: bool,
    ) -> std::io::Result<Option<(Self, u64)>> {
        // a small file whose pages are cached is read right here: a blocking-pool round trip
        // (two thread wake-ups) costs more than its open and read (nginx reads so too); only
        // on a local disk (`inline`), where an open never waits for a network
        let small = inline && sizes.iter().all(|&n| n <= WHOLE);
        let file = match small.then(|| open_whole(&path, &sizes, true)) {
            Some(Ok(Opened::Found(f, len, whole))) => Some((f, len, whole)),
            Some(Ok(Opened::SizeDiffers)) => None,
            Some(Err(e)) => return Err(e),
            Some(Ok(Opened::NotCached)) | None => {
                let p = path.clone();
                let opened = tokio::task::spawn_blocking(move || open_whole(&p, &sizes, false))
                    .await
                    .map_err(std::io::Error::other)??;
                match opened {
                    Opened::Found(f, len, whole) => Some((f, len, whole)),
                    _ => None,
                }
            }
        };
        Ok(file.map(|(f, len, whole)| {
            let file = DiskFile {
                path,
                file: OnceLock::from(Arc::new(f)),
                whole,
            };
            (file, len)
        }))
    }

    /// Exactly `len` bytes at `offset` (the caller keeps within the recorded size).
    pub(super) async fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        if let Some(b) = self.held(offset, len) {
            return Ok(b);
        }
        let (file, bytes) = read(self.file.get().cloned(), self.path.clone(), offset, len).await?;
        let _ = self.file.set(file);
        Ok(bytes)
    }

    /// The `len` bytes at `offset` when the file was read whole at the open.
    fn held(&self, offset: u64, len: usize) -> Option<Bytes> {
        let whole = self.whole.as_ref()?;
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        (end <= whole.len()).then(|| whole.slice(start..end))
    }

    /// The bytes of `range` in pieces of at most `wire::PIECE`.
    pub(super) fn stream(
        self,
        range: Range<u64>,
    ) -> std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static>> {
        if let Some(b) = usize::try_from(range.end.saturating_sub(range.start))
            .ok()
            .and_then(|len| self.held(range.start, len))
        {
            return Box::pin(futures_util::stream::iter((!b.is_empty()).then_some(Ok(b))));
        }
        let path = self.path;
        let end = range.end;
        Box::pin(futures_util::stream::try_unfold(
            (self.file.into_inner(), range.start),
            move |(file, pos)| {
                let path = path.clone();
                async move {
                    if pos >= end {
                        return Ok(None);
                    }
                    let len = (end - pos).min(crate::wire::PIECE as u64) as usize;
                    let (file, bytes) = read(file, path, pos, len).await?;
                    Ok(Some((bytes, (Some(file), pos + len as u64))))
                }
            },
        ))
    }
}

/// Whether `dir` is on a local disk's file system (ext4, XFS, Btrfs, ZFS, F2FS, tmpfs,
/// overlayfs), where opening a file waits for the disk at worst; not on NFS, SMB, FUSE or any
/// other whose open may wait for a network (or hang with it), nor when unknown.
pub(super) fn local_file_system(dir: &Path) -> bool {
    const LOCAL: [i64; 7] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x2FC1_2FC1, // ZFS
        0xF2F5_2010, // F2FS
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
    ];
    // `f_type` is an i64 on x86_64 and a u32 or u64 elsewhere
    #[allow(clippy::useless_conversion)]
    let local = |t| i64::try_from(t).is_ok_and(|t| LOCAL.contains(&t));
    rustix::fs::statfs(dir).is_ok_and(|s| local(s.f_type))
}

/// What `open_whole` found.
enum Opened {
    /// The file, its length, and its bytes when it is at most `WHOLE` long.
    Found(File, u64, Option<Bytes>),
    /// Its length is none of those expected.
    SizeDiffers,
    /// Not all of its bytes are in the page cache (`nowait` only).
    NotCached,
}

/// Opens `p`, checks its length is one of `sizes`, and reads it whole when it is at most
/// `WHOLE` long; with `nowait`, only from the page cache (`RWF_NOWAIT`), so that a caller on a
/// runtime thread never waits for the disk to read.
fn open_whole(p: &Path, sizes: &[u64], nowait: bool) -> std::io::Result<Opened> {
    let f = open_stored(p)?;
    let len = f.metadata()?.len();
    if !sizes.contains(&len) {
        return Ok(Opened::SizeDiffers);
    }
    if len > WHOLE {
        return Ok(Opened::Found(f, len, None));
    }
    let mut buf = vec![0; len as usize];
    if nowait {
        let flags = rustix::io::ReadWriteFlags::NOWAIT;
        let mut slices = [std::io::IoSliceMut::new(&mut buf)];
        match rustix::io::preadv2(&f, &mut slices, 0, flags) {
            Ok(n) if n as u64 == len => {}
            // a short read, pages to fetch, or a file system without the flag
            _ => return Ok(Opened::NotCached),
        }
    } else {
        f.read_exact_at(&mut buf, 0)?;
    }
    Ok(Opened::Found(f, len, Some(Bytes::from(buf))))
}

/// Opens a stored file for reading, never through a symbolic link: `files/` holds only what
/// Kura put there, so a link is something planted behind its back (pointing at a host file,
/// say), which `kura fsck` reports and no request may read through.
fn open_stored(p: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
}

/// Opens the file unless open, and reads `len` bytes at `offset`, in one blocking call.
async fn read(
    file: Option<Arc<File>>,
    path: PathBuf,
    offset: u64,
    len: usize,
) -> std::io::Result<(Arc<File>, Bytes)> {
    tokio::task::spawn_blocking(move || {
        let file = match file {
            Some(f) => f,
            None => Arc::new(open_stored(&path)?),
        };
        let mut buf = vec![0; len];
        // a file shorter than its recorded size fails here rather than ending a body early
        file.read_exact_at(&mut buf, offset)?;
        Ok((file, Bytes::from(buf)))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    /// The folder the tests run in is on a local file system; /proc is not one of those.
    #[test]
    fn local_file_systems_are_told_from_others() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::local_file_system(dir.path()));
        assert!(!super::local_file_system(std::path::Path::new("/proc")));
        assert!(!super::local_file_system(std::path::Path::new(
            "/no/such/folder"
        )));
    }

    #[tokio::test]
    async fn a_planted_link_is_never_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host-secret");
        std::fs::write(&host, b"SEC").unwrap();
        let stored = dir.path().join("stored");
        std::os::unix::fs::symlink(&host, &stored).unwrap();
        for inline in [true, false] {
            assert!(super::DiskFile::open_sized(stored.clone(), vec![3], inline)
                .await
                .is_err());
            let plain = super::DiskFile::open_sized(host.clone(), vec![3], inline)
                .await
                .unwrap();
            assert_eq!(plain.map(|(_, len)| len), Some(3));
        }
    }
}
