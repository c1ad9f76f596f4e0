//! `kura encryption enable` / `disable`: the files of a bucket rewritten in place into the form
//! its setting asks (sealed or plain), online and resumable (docs/encryption.md).
//!
//! Each file: its plaintext is streamed into the new form in `tmp/convert-*`; one statement
//! marks the row (if unchanged since read) as holding either form (`sealing::EITHER`, told
//! apart by the stored length); one write transaction, if the mark is still there, renames the
//! new bytes over the old and records the new form. A kill at any point leaves a readable file;
//! the next run settles marked rows by what is on disk and sweeps the temporary files.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::sealing::{key_of, stored_lens, EITHER};
use super::storage::io_err;
use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{Committed, ToConvert};

/// Files read per query of a conversion.
const BATCH: i64 = 200;
/// Prefix of a conversion's temporary files in `tmp/`.
const TEMP: &str = "convert-";

/// What a conversion did.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Files to convert when it started.
    pub total: u64,
    /// Files rewritten into the new form.
    pub converted: u64,
    /// Files a write replaced while they were rewritten (the write took the bucket's form,
    /// or a next run converts it).
    pub skipped: u64,
    /// Files an interrupted run left switching, settled by what is on disk.
    pub settled: u64,
}

impl Vfs {
    /// Turns `bucket`'s encryption on (`seal`) or off, then rewrites each of its current files
    /// stored in the other form: online (every file readable throughout, a write meanwhile
    /// wins), resumable, with no version made and no usage changed. Its owner or an
    /// administrator; local disk (`fs`) storage only. `progress` gets (done, total).
    pub async fn convert_bucket(
        &self,
        c: &Caller,
        bucket: &VPath,
        seal: bool,
        progress: impl Fn(u64, u64),
    ) -> Result<Conversion, VfsError> {
        if bucket.is_root() || !bucket.parent().is_root() {
            return Err(VfsError::InvalidPath(format!("{bucket} is not a bucket")));
        }
        let Some(local) = self.local.clone() else {
            return Err(VfsError::Conflict(
                "converting a bucket in place needs the local disk (fs) storage",
            ));
        };
        // new writes take the new form first; this checks the caller's rights too
        self.set_bucket_encrypted(c, bucket, seal).await?;
        let _lock = lock(&local.tmp)?;
        sweep(&local.tmp)?;
        let mut out = Conversion {
            settled: self.settle(bucket, &local.root).await?,
            ..Default::default()
        };
        out.total = self.store.count_to_convert(bucket.as_str(), seal).await?;
        progress(0, out.total);
        let mut after = String::new();
        loop {
            let batch = self
                .store
                .files_to_convert(bucket.as_str(), seal, &after, BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.path.clone();
            for f in batch {
                if self.convert_file(&local, &f, seal).await? {
                    out.converted += 1;
                } else {
                    out.skipped += 1;
                }
                progress(out.converted + out.skipped, out.total);
            }
        }
        Ok(out)
    }

    /// Rewrites one file into the other form; `false` when a write changed it meanwhile.
    async fn convert_file(
        &self,
        local: &super::LocalFs,
        f: &ToConvert,
        seal: bool,
    ) -> Result<bool, VfsError> {
        let path = VPath::parse(&f.path)?;
        let size = f.size as u64;
        let download = match self.open_stored(&path, size, f.sealed.as_deref()).await {
            Ok(d) => d,
            // replaced or removed since it was listed: the next run sees it as it is now
            Err(_) => return Ok(false),
        };
        let key = if seal {
            Some(self.new_data_key().await?)
        } else {
            None
        };
        let temp = local
            .tmp
            .join(format!("{TEMP}{}", uuid::Uuid::new_v4().simple()));
        let written = write_temp(&temp, local.file_mode, download, size, key.as_ref()).await;
        let mut temp = Armed(Some(temp));
        if written.is_err() {
            // the file changed under the read (a write replaced it): left for the next run
            return Ok(false);
        }
        let (marked, form) = match (&key, &f.sealed) {
            (Some((_, wrapped)), _) => (format!("{wrapped}{EITHER}"), Some(wrapped.clone())),
            (None, Some(old)) => (format!("{}{EITHER}", key_of(old)), None),
            (None, None) => return Ok(false),
        };
        if !self.store.mark_converting(f, &marked).await? {
            return Ok(false);
        }
        let to = local.root.join(path.storage_key(false));
        let from = temp.0.clone().unwrap_or_default();
        let done = self
            .store
            .finish_converting(&f.path, &marked, form.as_deref(), || {
                std::fs::rename(&from, &to)
            })
            .await;
        match done {
            Ok(true) => {
                temp.0 = None;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(Committed::Meta(e)) => Err(e.into()),
            Err(Committed::Finish(e)) => {
                // the mark stays, the old bytes are in place: settled on the next run
                Err(io_err(e))
            }
        }
    }

    /// Records the form on disk of the files of `bucket` an interrupted run left marked.
    async fn settle(&self, bucket: &VPath, root: &Path) -> Result<u64, VfsError> {
        let marked = self.store.sealed_ending(bucket.as_str(), EITHER).await?;
        let mut n = 0;
        for (p, sealed, size) in marked {
            let path = VPath::parse(&p)?;
            let file = root.join(path.storage_key(false));
            let Ok(len) = std::fs::metadata(&file).map(|m| m.len()) else {
                continue;
            };
            let size = size as u64;
            let form = if len == size {
                None
            } else if stored_lens(size, Some(&sealed)).contains(&len) {
                Some(key_of(&sealed))
            } else {
                continue;
            };
            let r = self
                .store
                .finish_converting(&p, &sealed, form, || Ok::<_, VfsError>(()))
                .await;
            match r {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(Committed::Meta(e)) => return Err(e.into()),
                Err(Committed::Finish(e)) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Streams the plaintext of `download` into `temp`, sealed with `key` when given; synced.
async fn write_temp(
    temp: &Path,
    mode: u32,
    download: super::Download,
    size: u64,
    key: Option<&(crate::seal::DataKey, String)>,
) -> Result<(), VfsError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp)
        .await
        .map_err(io_err)?;
    let mut sealer = key.map(|(k, _)| crate::seal::Sealer::new(k));
    let mut body = Box::pin(download.into_stream(0..size).await?);
    let mut n = 0;
    while let Some(chunk) = body.try_next().await.map_err(io_err)? {
        n += chunk.len() as u64;
        let out = match sealer.as_mut() {
            Some(s) => Bytes::from(s.push(&chunk)),
            None => chunk,
        };
        file.write_all(&out).await.map_err(io_err)?;
    }
    if n != size {
        return Err(VfsError::Incomplete {
            expected: size,
            got: n,
        });
    }
    if let Some(s) = sealer {
        file.write_all(&s.finish()).await.map_err(io_err)?;
    }
    file.sync_all().await.map_err(io_err)?;
    Ok(())
}

/// A temporary file removed when dropped unless taken.
struct Armed(Option<PathBuf>);

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One conversion at a time per data dir: the lock is held while it runs.
fn lock(tmp: &Path) -> Result<std::fs::File, VfsError> {
    use fs4::fs_std::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(tmp.join("convert.lock"))
        .map_err(io_err)?;
    if !file.try_lock_exclusive().map_err(io_err)? {
        return Err(VfsError::Conflict("another conversion is running"));
    }
    Ok(file)
}

/// Removes the temporary files of a conversion that was killed.
fn sweep(tmp: &Path) -> Result<(), VfsError> {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return Ok(());
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP) {
            std::fs::remove_file(e.path()).map_err(io_err)?;
        }
    }
    Ok(())
}
