//! `kura encryption enable` / `disable`: every stored object a bucket owns (its current files,
//! then its kept versions and trashed files) rewritten in place into the form its setting asks
//! (sealed or plain), online and resumable (docs/encryption.md).
//!
//! Each object: its plaintext is streamed into the new form in `tmp/convert-*`; one statement
//! marks its row (if unchanged since read) as holding either form (`sealing::EITHER`, told
//! apart by the stored length); one write transaction, if the mark is still there, renames the
//! new bytes over the old and records the new form. A kill at any point leaves readable bytes;
//! the next run settles marked rows by what is on disk and sweeps the temporary files. The
//! parts of unfinished uploads are left as they are: they leave with their upload.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::sealing::{key_of, settled_form, EITHER};
use super::storage::{io_err, LocalFs};
use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{Committed, KeptToConvert, ToConvert, WrappedRow};

/// Rows read per query of a conversion.
const BATCH: i64 = 200;
/// Prefix of a conversion's temporary files in `tmp/`.
const TEMP: &str = "convert-";

/// What a conversion did.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Objects to convert when it started (current files, kept versions and trashed files).
    pub total: u64,
    /// Current files rewritten into the new form.
    pub converted: u64,
    /// Kept versions and trashed files rewritten into the new form.
    pub kept: u64,
    /// Objects a write replaced (or a restore or purge took) while they were rewritten (a
    /// write took the bucket's form, or a next run converts it).
    pub skipped: u64,
    /// Objects an interrupted run (or a write racing this one) left switching, settled by
    /// what is on disk.
    pub settled: u64,
    /// Parts of unfinished uploads to the bucket still in the other form (left as they are).
    pub parts_left: u64,
}

/// One stored object a conversion rewrites.
enum One<'a> {
    /// A current file.
    File(&'a ToConvert),
    /// A kept version's or trashed file's bytes.
    Kept(&'a KeptToConvert),
}

impl One<'_> {
    /// The form recorded when it was read.
    fn sealed(&self) -> Option<&str> {
        match self {
            One::File(f) => f.sealed.as_deref(),
            One::Kept(v) => v.sealed.as_deref(),
        }
    }

    /// Its plaintext size.
    fn size(&self) -> u64 {
        match self {
            One::File(f) => f.size as u64,
            One::Kept(v) => v.size as u64,
        }
    }

    /// The row recording its form.
    fn row(&self) -> WrappedRow {
        match self {
            One::File(f) => WrappedRow::Entry(f.path.clone()),
            One::Kept(v) => WrappedRow::Version(v.id.clone()),
        }
    }
}

/// Where the bytes of the object recorded in `row` (at `key` in the versions store for a kept
/// version) are on disk.
fn disk_of(local: &LocalFs, row: &WrappedRow, key: &str) -> Result<PathBuf, VfsError> {
    Ok(match row {
        WrappedRow::Entry(path) => local.root.join(VPath::parse(path)?.storage_key(false)),
        _ => local.versions.join(key),
    })
}

impl Vfs {
    /// Turns `bucket`'s encryption on (`seal`) or off, then rewrites each of its current files,
    /// kept versions and trashed files stored in the other form: online (everything readable
    /// throughout, a write meanwhile wins), resumable, with no version made and no usage
    /// changed. Its owner or an administrator; local disk (`fs`) storage only. `progress` gets
    /// (done, total).
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
        let b = bucket.as_str();
        let mut out = Conversion {
            settled: self.settle(b, &local).await?,
            ..Default::default()
        };
        out.total = self.store.count_to_convert(b, seal).await?
            + self.store.count_kept_to_convert(b, seal).await?;
        progress(0, out.total);
        let mut done = 0;
        let mut step = |out: &mut Conversion, converted: bool, kept: bool| {
            match (converted, kept) {
                (true, false) => out.converted += 1,
                (true, true) => out.kept += 1,
                (false, _) => out.skipped += 1,
            }
            done += 1;
            progress(done, out.total.max(done));
        };
        // current files first: one a write replaces meanwhile leaves its old bytes as a kept
        // version, which the pass over the kept ones then finds
        let mut after = String::new();
        loop {
            let batch = self.store.files_to_convert(b, seal, &after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.path.clone();
            for f in &batch {
                let ok = self.convert_one(&local, One::File(f), seal, TEMP).await?;
                step(&mut out, ok, false);
            }
        }
        let mut after = String::new();
        loop {
            let batch = self.store.kept_to_convert(b, seal, &after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.id.clone();
            for v in &batch {
                let ok = self.convert_one(&local, One::Kept(v), seal, TEMP).await?;
                step(&mut out, ok, true);
            }
        }
        // marks a write copied meanwhile (a file kept as a version, a folder brought back
        // from the trash, while one of their objects was switching)
        out.settled += self.settle(b, &local).await?;
        out.parts_left = self.store.parts_in_form(b, seal).await?;
        Ok(out)
    }

    /// Rewrites one object into the other form; `false` when a write changed it meanwhile (or
    /// a kept version left).
    async fn convert_one(
        &self,
        local: &LocalFs,
        one: One<'_>,
        seal: bool,
        prefix: &str,
    ) -> Result<bool, VfsError> {
        let size = one.size();
        let opened = match &one {
            // bytes replaced (or moved away) since the row was listed are no error to log
            One::File(f) => {
                let path = VPath::parse(&f.path)?;
                self.try_open_stored((&path, None), size, f.sealed.as_deref(), None)
                    .await
                    .map(|o| o.ok())
            }
            One::Kept(v) => self
                .open_kept_bytes(&v.key, size, v.sealed.as_deref(), None)
                .await
                .map(Some),
        };
        let download = match opened {
            Ok(Some(d)) => d,
            // replaced or removed since it was listed: the next run sees it as it is now
            Ok(None) | Err(_) => return Ok(false),
        };
        let key = if seal {
            Some(self.new_data_key().await?)
        } else {
            None
        };
        let path = local
            .tmp
            .join(format!("{prefix}{}", uuid::Uuid::new_v4().simple()));
        // armed before the first byte: a request dropped mid-write (a client gone from a MOVE
        // into an encrypted bucket) leaves no temporary file behind
        let mut temp = Armed(Some(path.clone()));
        let written = write_temp(&path, local.file_mode, download, size, key.as_ref()).await;
        if written.is_err() {
            // the file changed under the read (a write replaced it): left for the next run
            return Ok(false);
        }
        let (marked, form) = match (&key, one.sealed()) {
            (Some((_, wrapped)), _) => (format!("{wrapped}{EITHER}"), Some(wrapped.clone())),
            (None, Some(old)) => (format!("{}{EITHER}", key_of(old)), None),
            (None, None) => return Ok(false),
        };
        let row = one.row();
        let kept_key = match &one {
            One::File(_) => "",
            One::Kept(v) => v.key.as_str(),
        };
        let marked_now = match &one {
            One::File(f) => self.store.mark_converting(f, &marked).await?,
            One::Kept(v) => self.store.mark_kept_converting(v, &marked).await?,
        };
        if !marked_now {
            return Ok(false);
        }
        let to = disk_of(local, &row, kept_key)?;
        let from = temp.0.clone().unwrap_or_default();
        // readers of a current file wait, as for a write's commit: they pair the row they
        // read with the bytes it describes, never the unmarked row with the switched bytes
        let held = match &one {
            One::File(f) => Some(self.path_locks.write(&f.path).await),
            One::Kept(_) => None,
        };
        let done = self
            .store
            .finish_converting(&row, &marked, form.as_deref(), || {
                std::fs::rename(&from, &to)
            })
            .await;
        drop(held);
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

    /// Records the form on disk of the objects of `bucket` (current files and kept versions)
    /// left marked by an interrupted run, or by a write that copied a mark.
    async fn settle(&self, bucket: &str, local: &LocalFs) -> Result<u64, VfsError> {
        let files = self.store.sealed_ending(bucket, EITHER).await?;
        let kept = self.store.kept_sealed_ending(bucket, EITHER).await?;
        self.settle_rows(local, files, kept).await
    }

    /// Records the form on disk of the marked current files (path, form, size) and kept
    /// versions given.
    async fn settle_rows(
        &self,
        local: &LocalFs,
        files: Vec<(String, String, i64)>,
        kept: Vec<KeptToConvert>,
    ) -> Result<u64, VfsError> {
        let mut marked: Vec<(WrappedRow, String, String, i64)> = files
            .into_iter()
            .map(|(p, sealed, size)| (WrappedRow::Entry(p), String::new(), sealed, size))
            .collect();
        marked.extend(
            kept.into_iter()
                .filter_map(|v| Some((WrappedRow::Version(v.id), v.key, v.sealed?, v.size))),
        );
        let mut n = 0;
        for (row, key, sealed, size) in marked {
            let file = disk_of(local, &row, &key)?;
            let Ok(len) = std::fs::metadata(&file).map(|m| m.len()) else {
                continue;
            };
            let Some(form) = settled_form(size as u64, Some(&sealed), len) else {
                continue;
            };
            let r = self
                .store
                .finish_converting(&row, &sealed, form, || Ok::<_, VfsError>(()))
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

/// Prefix of the temporary files of the sealing before a move (apart from a conversion's,
/// which `kura encryption enable` sweeps when it starts beside the server).
const MOVE_TEMP: &str = "moveseal-";

impl Vfs {
    /// The conversion mark a move into another bucket must find on no file it takes along
    /// (`MoveRules::sealed_only`): `Some` when `to` lies in another bucket than `from` and
    /// that bucket is encrypted, so that the move must bring its files sealed.
    pub(super) async fn move_must_seal(
        &self,
        from: &VPath,
        to: &VPath,
    ) -> Result<Option<&'static str>, VfsError> {
        let Some(bucket) = Vfs::bucket_of(to) else {
            return Ok(None);
        };
        if Vfs::bucket_of(from).as_ref() == Some(&bucket)
            || from.parent().is_root() && to.parent().is_root()
        {
            return Ok(None);
        }
        let encrypted = self
            .store
            .bucket_setting(bucket.as_str(), super::sealing::ENCRYPTION)
            .await?
            .is_some();
        Ok(encrypted.then_some(EITHER))
    }

    /// Seals in place, where they are, the plain files at or below `from` and the plain kept
    /// versions that follow them, before a move takes them into an encrypted bucket: the
    /// conversion's steps, one file at a time (marked, then switched), so a kill at any point
    /// leaves every file readable in either form, in its old place; marks an interrupted move
    /// (or conversion) left are settled first. A file written plain meanwhile is found by the
    /// move's transaction, which then refuses (`NOT_SEALED`) and the move seals again.
    pub(super) async fn seal_before_move(&self, from: &VPath) -> Result<(), VfsError> {
        let Some(local) = self.local.clone() else {
            return Err(VfsError::Conflict(
                "moving files into an encrypted bucket needs the local disk (fs) storage: copy them instead",
            ));
        };
        let root = from.as_str();
        let (files, kept) = self.store.tree_sealed_ending(root, EITHER).await?;
        self.settle_rows(&local, files, kept).await?;
        let mut after = String::new();
        loop {
            let batch = self.store.tree_to_seal(root, &after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.path.clone();
            for f in &batch {
                self.convert_one(&local, One::File(f), true, MOVE_TEMP)
                    .await?;
            }
        }
        // the versions kept when it started: writers keep adding plain ones (a move under
        // steady writes would never end), which the move's transaction finds and refuses
        let Some(upto) = self.store.tree_kept_newest(root).await? else {
            return Ok(());
        };
        let mut after = String::new();
        loop {
            let batch = self
                .store
                .tree_kept_to_seal(root, (&after, &upto), BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.id.clone();
            for v in &batch {
                self.convert_one(&local, One::Kept(v), true, MOVE_TEMP)
                    .await?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::versions::{row_entry, Bring};
    use super::super::UploadOptions;
    use super::*;
    use crate::config::EncryptionSettings;

    /// A core on `fs` with a master key, holding the bucket /b whose file /b/f was written
    /// twice (its first bytes kept as a version, plain).
    async fn setup() -> (tempfile::TempDir, Vfs) {
        let (dir, v) = super::super::tests::fs_vfs().await;
        let keys = crate::seal::KeyRing::load(dir.path(), &EncryptionSettings::default()).unwrap();
        let v = v.with_keys(keys);
        let root = Caller::admin("root");
        v.mkdir(&root, &p("/b")).await.unwrap();
        put(&v, "/b/f", b"first").await;
        put(&v, "/b/f", b"second").await;
        (dir, v)
    }

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    async fn put(v: &Vfs, path: &str, body: &[u8]) {
        let root = Caller::admin("root");
        let mut up = v
            .upload(&root, &p(path), UploadOptions::default())
            .await
            .unwrap();
        up.write(Bytes::copy_from_slice(body)).await.unwrap();
        up.commit().await.unwrap();
    }

    async fn read(v: &Vfs, path: &str) -> Vec<u8> {
        let (e, dl) = v.open_read(&Caller::admin("root"), &p(path)).await.unwrap();
        dl.read_at(0, e.size as usize).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_read_or_restore_holding_a_row_from_before_the_conversion_gets_its_bytes() {
        let (_dir, v) = setup().await;
        let root = Caller::admin("root");
        // read before the conversion: the row says plain
        let stale = v.store.versions_of("/b/f").await.unwrap().remove(0);
        assert!(stale.sealed.is_none());
        let r = v
            .convert_bucket(&root, &p("/b"), true, |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.converted, r.kept, r.skipped), (1, 1, 0));
        let now = v.store.versions_of("/b/f").await.unwrap().remove(0);
        assert!(now.sealed.as_deref().is_some_and(|s| !s.ends_with(EITHER)));
        // a download that read the row before opens the sealed bytes it finds
        let dl = v
            .open_kept_row(&stale, &row_entry(&stale).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(&dl.read_at(0, 5).await.unwrap()[..], b"first");
        // a restore too, and it records the form the bytes have (no mark)
        let e = v
            .restore_file(&root, &stale, &p("/b/g"), Bring::default())
            .await
            .unwrap();
        assert_eq!(e.sealed, now.sealed);
        assert_eq!(read(&v, "/b/g").await, b"first");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn a_kept_version_left_marked_reads_either_form_and_the_next_run_settles_it() {
        let (dir, v) = setup().await;
        let root = Caller::admin("root");
        // killed after the mark, before the rename: the row holds a new key, the bytes plain
        let row = v.store.versions_of("/b/f").await.unwrap().remove(0);
        let (_, wrapped) = v.new_data_key().await.unwrap();
        let kept = KeptToConvert {
            id: row.id.clone(),
            key: row.key.clone().unwrap(),
            size: row.size,
            sealed: None,
        };
        let marked = format!("{wrapped}{EITHER}");
        assert!(v.store.mark_kept_converting(&kept, &marked).await.unwrap());
        let row = v.store.versions_of("/b/f").await.unwrap().remove(0);
        let dl = v
            .open_kept_row(&row, &row_entry(&row).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(&dl.read_at(0, 5).await.unwrap()[..], b"first");
        assert!(v.fsck(false).await.unwrap().is_clean());
        // a temporary file of the killed run is swept
        std::fs::write(dir.path().join("tmp/convert-left"), b"x").unwrap();
        let r = v
            .convert_bucket(&root, &p("/b"), true, |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.settled, r.kept), (1, 1));
        assert!(!dir.path().join("tmp/convert-left").exists());
        let row = v.store.versions_of("/b/f").await.unwrap().remove(0);
        assert!(row.sealed.as_deref().is_some_and(|s| !s.ends_with(EITHER)));
        let on_disk = std::fs::read(dir.path().join("versions").join(row.key.unwrap())).unwrap();
        assert!(on_disk.starts_with(b"KURASEAL"));
        // and back: disable writes the kept bytes plain again
        let r = v
            .convert_bucket(&root, &p("/b"), false, |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.converted, r.kept), (1, 1));
        let row = v.store.versions_of("/b/f").await.unwrap().remove(0);
        assert!(row.sealed.is_none());
        assert_eq!(read(&v, "/b/f").await, b"second");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }
}
