//! `kura backup restore DEST`: a verified snapshot into an empty data dir, then the usage
//! counters recounted from what was restored.

use std::path::Path;

use super::repo::{self, io};
use super::{verify, BackupError};
use crate::config::Config;
use crate::store::Store;
use crate::vfs::{Stored, Vfs};

/// What a restore brought back.
#[derive(Debug, Default)]
pub struct Restored {
    /// The snapshot restored.
    pub snapshot: String,
    /// Current files and kept versions written.
    pub files: u64,
    /// Folders made.
    pub folders: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Whether the snapshot held the stored bytes (without them: put the files back, then
    /// run `kura fsck --repair`).
    pub files_included: bool,
    /// Whether the snapshot had a configuration file (not restored: the path is printed).
    pub config: Option<std::path::PathBuf>,
}

/// Restores the snapshot `id` (the newest when `None`) of `dest` into the empty data dir of
/// `cfg`, after verifying every hash of it.
pub async fn restore(cfg: &Config, dest: &Path, id: Option<&str>) -> Result<Restored, BackupError> {
    if cfg.database_is_postgres() {
        return Err(BackupError::Postgres);
    }
    repo::open(dest, false)?;
    let id = repo::pick(dest, id)?;
    let data_dir = &cfg.data_dir;
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::Invalid(format!(
            "the data dir {} is not empty; a restore goes into an empty or new data dir \
             (move the old one aside, or point --config / KURA_DATA_DIR elsewhere)",
            data_dir.display()
        )));
    }
    {
        let (dest, id) = (dest.to_path_buf(), id.clone());
        tokio::task::spawn_blocking(move || verify(&dest, Some(&id), false))
            .await
            .map_err(|e| BackupError::Invalid(e.to_string()))??;
    }
    let made = !data_dir.exists();
    let mut storage_was_empty = false;
    let result = put_back(cfg, dest, &id, &mut storage_was_empty).await;
    if result.is_err() {
        undo(cfg, made, storage_was_empty).await;
    }
    result
}

/// Puts the verified snapshot `id` in place; `storage_was_empty` is set once the storage is
/// found empty (so a failure after it may empty it again).
async fn put_back(
    cfg: &Config,
    dest: &Path,
    id: &str,
    storage_was_empty: &mut bool,
) -> Result<Restored, BackupError> {
    let data_dir = &cfg.data_dir;
    let m = repo::manifest(dest, id)?;
    let snap = dest.join("snapshots").join(id);
    repo::make_private_dir(data_dir)?;
    copy_private(&snap.join(&m.metadata.file), &cfg.db_path())?;
    let mut out = Restored {
        snapshot: id.to_string(),
        ..Restored::default()
    };
    for p in &m.extras {
        if p.file == "config.toml" {
            out.config = Some(snap.join(&p.file));
            continue;
        }
        if p.file != "secret.key" && !p.file.starts_with("tls/") || p.file.contains("..") {
            continue;
        }
        copy_private(&snap.join(&p.file), &data_dir.join(&p.file))?;
    }
    let store = Store::open(&cfg.db_path()).await?;
    let vfs = crate::setup::build_vfs(cfg, store.clone())?;
    if !vfs.storage_is_empty().await? {
        // not ours to empty
        return Err(BackupError::Invalid(
            "the storage (the [storage] root or service) already holds files; a restore \
             writes only into empty storage"
                .into(),
        ));
    }
    *storage_was_empty = true;
    for row in store.all_entries().await? {
        if row.is_dir {
            vfs.make_stored_folder(&row.path).await?;
            out.folders += 1;
        }
    }
    for l in repo::object_lines(dest, id)? {
        let what = match l.kind.as_str() {
            "file" => Stored::Current(l.name.clone()),
            "kept" => Stored::Kept(l.name.clone()),
            k => return Err(BackupError::Invalid(format!("unknown object kind {k}"))),
        };
        write(&vfs, &what, &repo::object_path(dest, &l.sha256)).await?;
        out.files += 1;
        out.bytes += l.size;
    }
    out.files_included = m.files_included;
    if m.files_included {
        // usage counters follow what was restored
        vfs.fsck(true).await?;
    }
    Ok(out)
}

/// Takes back what a failed restore put in place, so that nothing half restored is served
/// and the next attempt finds the data dir (and the storage, when it was empty) empty again.
async fn undo(cfg: &Config, made: bool, storage_was_empty: bool) {
    if storage_was_empty {
        let cleared = async {
            let store = Store::open(&cfg.db_path()).await?;
            let vfs = crate::setup::build_vfs(cfg, store)?;
            vfs.clear_storage().await?;
            Ok::<_, BackupError>(())
        };
        if let Err(e) = cleared.await {
            tracing::warn!("emptying the storage after the failed restore: {e}");
        }
    }
    let data_dir = &cfg.data_dir;
    let emptied = if made {
        std::fs::remove_dir_all(data_dir)
    } else {
        std::fs::read_dir(data_dir).and_then(|rd| {
            rd.flatten().try_for_each(|e| match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(e.path()),
                _ => std::fs::remove_file(e.path()),
            })
        })
    };
    if let Err(e) = emptied {
        tracing::warn!(
            "emptying {} after the failed restore: {e}",
            data_dir.display()
        );
    }
}

/// Streams a content object into storage.
async fn write(vfs: &Vfs, what: &Stored, from: &Path) -> Result<(), BackupError> {
    use futures_util::StreamExt;
    let f = tokio::fs::File::open(from).await.map_err(io(from))?;
    let body = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).boxed();
    vfs.write_stored(what, body).await?;
    Ok(())
}

/// Copies a file into the data dir, readable by this account only.
fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(dir) = to.parent() {
        repo::make_private_dir(dir)?;
    }
    let mut src = std::fs::File::open(from).map_err(io(from))?;
    let mut dst = repo::create_private(to)?;
    std::io::copy(&mut src, &mut dst).map_err(io(to))?;
    dst.sync_all().map_err(io(to))
}
