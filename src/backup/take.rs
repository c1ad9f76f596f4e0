//! `kura backup DEST`: copy the metadata in one read transaction, then the stored bytes it
//! names (only those the repository lacks), amending the copy where a file changed meanwhile.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use futures_util::TryStreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::repo::{self, io};
use super::{BackupError, Counts, Manifest, ObjectLine};
use crate::config::Config;
use crate::store::{now_ms, SnapshotObject, Store, Whereabouts};
use crate::vfs::{Stored, StoredStream, Vfs, VfsError};

/// What to put in a snapshot.
#[derive(Clone, Debug, Default)]
pub struct TakeOptions {
    /// Leave the stored bytes out (metadata, keys and configuration only).
    pub no_files: bool,
    /// The configuration file the server runs with, copied when given.
    pub config_file: Option<std::path::PathBuf>,
}

/// Takes a snapshot of the installation `cfg` names into the repository `dest`.
pub async fn take(cfg: &Config, dest: &Path, opts: &TakeOptions) -> Result<Manifest, BackupError> {
    if cfg.database_is_postgres() {
        return Err(BackupError::Postgres);
    }
    let data_dir = crate::install::existing_data_dir(cfg)?;
    repo::open(dest, true)?;
    let previous = match repo::snapshots(dest)?.last() {
        Some(id) => repo::object_lines(dest, id)?,
        None => Vec::new(),
    };
    let created_ms = now_ms();
    let id = snapshot_id(created_ms, dest)?;
    let snap = dest.join("snapshots").join(&id);
    repo::make_private_dir(&snap)?;

    let store = Store::open(&cfg.db_path()).await?;
    let vfs = crate::setup::build_vfs(cfg, store.clone())?;
    let copy_path = snap.join("kura.db");
    // made private and empty first: VACUUM INTO fills an empty file and keeps its mode
    drop(repo::create_private(&copy_path)?);
    store.snapshot_into(&copy_path).await?;
    let copy = Store::open(&copy_path).await?;
    copy.settle_snapshot(!opts.no_files).await?;
    // the audit row the copy ends with: moves after it are followed to find a file's bytes
    let cut = copy.audit_head().await?;

    let mut counts = Counts::default();
    let mut lines = Vec::new();
    if !opts.no_files {
        let known: HashMap<(String, String), ObjectLine> = previous
            .into_iter()
            .map(|l| ((l.kind.clone(), l.name.clone()), l))
            .collect();
        let mut todo = Vec::new();
        for (kind, list) in [
            ("file", copy.snapshot_files().await?),
            ("kept", copy.snapshot_kept().await?),
        ] {
            for o in list {
                todo.push((kind, o));
            }
        }
        let bar = progress(todo.iter().map(|(_, o)| o.size.max(0) as u64).sum());
        for (kind, o) in todo {
            let line = match known.get(&(kind.to_string(), o.name.clone())) {
                Some(l)
                    if l.etag == o.etag
                        && l.size == stored_size(&o)
                        && repo::object_path(dest, &l.sha256).is_file() =>
                {
                    Some(l.clone())
                }
                _ => {
                    let at = Snapshotted {
                        copy: &copy,
                        live: &store,
                        cut,
                    };
                    capture(&vfs, at, dest, kind, &o, &mut counts).await?
                }
            };
            bar.inc(o.size.max(0) as u64);
            if let Some(l) = line {
                if kind == "file" {
                    counts.files += 1;
                } else {
                    counts.kept += 1;
                }
                counts.bytes += l.size;
                lines.push(l);
            }
        }
        bar.finish_and_clear();
    }
    copy.close().await;
    drop(vfs);

    let mut out = repo::create_private(&snap.join("objects.jsonl"))?;
    for l in &lines {
        let text = serde_json::to_string(l).map_err(|e| BackupError::Invalid(e.to_string()))?;
        writeln!(out, "{text}").map_err(io(&snap))?;
    }
    out.sync_all().map_err(io(&snap))?;
    let mut extras = Vec::new();
    let key = data_dir.join("secret.key");
    if key.is_file() {
        extras.push(repo::copy_piece(&key, &snap, "secret.key")?);
    }
    let tls = data_dir.join("tls");
    for rel in repo::files_below(&tls)? {
        let name = format!("tls/{}", rel.display());
        extras.push(repo::copy_piece(&tls.join(&rel), &snap, &name)?);
    }
    if let Some(c) = &opts.config_file {
        extras.push(repo::copy_piece(c, &snap, "config.toml")?);
    }
    let manifest = Manifest {
        format: repo::FORMAT,
        id: id.clone(),
        created_ms,
        kura_version: env!("CARGO_PKG_VERSION").to_string(),
        files_included: !opts.no_files,
        metadata: repo::piece(&snap, "kura.db")?,
        objects: repo::piece(&snap, "objects.jsonl")?,
        extras,
        counts,
    };
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let path = snap.join("manifest.json");
    let mut f = repo::create_private(&path)?;
    f.write_all(&text).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(manifest)
}

/// The id of a new snapshot: its UTC time, unique in the repository.
fn snapshot_id(ms: i64, dest: &Path) -> Result<String, BackupError> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    let base = t
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    let mut id = base.clone();
    let mut n = 1;
    while dest.join("snapshots").join(&id).exists() {
        n += 1;
        id = format!("{base}-{n}");
    }
    Ok(id)
}

/// A byte-count progress bar on a terminal's standard error (nothing otherwise).
fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The metadata copy, the live database it was taken from and the copy's last audit row.
#[derive(Clone, Copy)]
struct Snapshotted<'a> {
    copy: &'a Store,
    live: &'a Store,
    cut: i64,
}

/// The bytes of the current file the snapshot names `path`, where it is now: a file moved
/// (itself or a folder above it) since the metadata copy is read at its new path, so a
/// rename during a backup does not drop it from the snapshot as if deleted.
async fn current_bytes(
    vfs: &Vfs,
    at: Snapshotted<'_>,
    path: &str,
) -> Result<StoredStream, VfsError> {
    match vfs.read_stored(&Stored::Current(path.to_string())).await {
        Err(VfsError::NotFound) => {}
        r => return r,
    }
    let mut tries = 0;
    loop {
        let now = match at.live.whereabouts(at.cut, path).await? {
            Whereabouts::Moved(now) => now,
            Whereabouts::Gone => return Err(VfsError::NotFound),
            // the move's or the delete's transaction may not have committed yet
            Whereabouts::Unknown => path.to_string(),
        };
        match vfs.read_stored(&Stored::Current(now)).await {
            Err(VfsError::NotFound) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            r => return r,
        }
    }
}

/// Copies one stored object into the repository; amends the metadata copy when the bytes
/// found differ from what it records (`None`: the object is gone and was dropped from it).
async fn capture(
    vfs: &Vfs,
    at: Snapshotted<'_>,
    dest: &Path,
    kind: &str,
    o: &SnapshotObject,
    counts: &mut Counts,
) -> Result<Option<ObjectLine>, BackupError> {
    let copy = at.copy;
    let read = if kind == "file" {
        current_bytes(vfs, at, &o.name).await
    } else {
        vfs.read_stored(&Stored::Kept(o.name.clone())).await
    };
    let mut body = match read {
        Ok(b) => b,
        Err(VfsError::NotFound) => {
            counts.amended += 1;
            if kind == "file" {
                copy.amend_snapshot_file(&o.name, None).await?;
            } else {
                copy.forget_snapshot_kept(&o.name).await?;
            }
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let tmp_dir = dest.join("objects").join("tmp");
    repo::make_private_dir(&tmp_dir)?;
    let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
    let mut f = tokio::fs::File::from_std(repo::create_private(&tmp)?);
    let (mut sha, mut md5, mut size) = (Sha256::new(), Md5::new(), 0u64);
    let mut head = Vec::with_capacity(crate::seal::HEADER as usize);
    let copied: Result<(), BackupError> = async {
        while let Some(chunk) = body.try_next().await.map_err(io(&tmp))? {
            let want = (crate::seal::HEADER as usize).saturating_sub(head.len());
            head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            sha.update(&chunk);
            md5.update(&chunk);
            size += chunk.len() as u64;
            f.write_all(&chunk).await.map_err(io(&tmp))?;
        }
        f.sync_all().await.map_err(io(&tmp))
    }
    .await;
    if let Err(e) = copied {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let sha256 = hex::encode(sha.finalize());
    let md5 = hex::encode(md5.finalize());
    let target = repo::object_path(dest, &sha256);
    if target.is_file() {
        let _ = tokio::fs::remove_file(&tmp).await;
    } else {
        if let Some(dir) = target.parent() {
            repo::make_private_dir(dir)?;
        }
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(io(&target))?;
        counts.copied += 1;
        counts.copied_bytes += size;
    }
    // a plain ETag is the content's MD5; a multipart one is checked by size only; sealed
    // bytes (whose ETag is their plaintext's) by their length and the file id of their header
    let plain = o.etag.len() == 32 && o.etag.bytes().all(|b| b.is_ascii_hexdigit());
    let head_id = crate::seal::header_file_id(&head).map(hex::encode);
    let names_these = |size_plain: i64, sealed: Option<&str>| {
        sealed_file_id(sealed).is_some_and(|f| Some(f) == head_id.as_deref())
            && crate::seal::sealed_len(size_plain.max(0) as u64) == size
    };
    let same = match &o.sealed {
        Some(w) => names_these(o.size, Some(w)),
        None => size == o.size as u64 && !(plain && md5 != o.etag),
    };
    let mut etag = o.etag.clone();
    if !same {
        counts.amended += 1;
        if kind == "file" {
            // the bytes of a later write: sealed ones go with the live row that names them
            // (its key, plaintext size and ETag); recorded as plain, they would read as noise
            let live = at
                .live
                .entry(&o.name)
                .await?
                .filter(|r| names_these(r.size, r.sealed.as_deref()));
            match live {
                Some(r) => {
                    copy.amend_snapshot_file(&o.name, Some((r.size, &r.etag, r.sealed.as_deref())))
                        .await?;
                    etag = r.etag;
                }
                None => {
                    copy.amend_snapshot_file(&o.name, Some((size as i64, &md5, None)))
                        .await?;
                    etag = md5;
                }
            }
        } else {
            // kept bytes change only in form, when a conversion (`kura encryption enable`)
            // switches them: the live row then names them; other bytes are not what it names
            let form = match at.live.kept_form(&o.name).await? {
                Some(live) => {
                    crate::vfs::stored_form(o.size.max(0) as u64, live.as_deref(), size, &head)
                        .filter(|f| f.is_some() || !(plain && md5 != o.etag))
                }
                None => None,
            };
            let Some(form) = form else {
                copy.forget_snapshot_kept(&o.name).await?;
                return Ok(None);
            };
            copy.amend_snapshot_kept(&o.name, form.as_deref()).await?;
        }
    }
    Ok(Some(ObjectLine {
        kind: kind.to_string(),
        name: o.name.clone(),
        size,
        etag,
        sha256,
    }))
}

/// The file id a wrapped data key names, hex (either form: `seal::wrapped_file_id`).
fn sealed_file_id(wrapped: Option<&str>) -> Option<&str> {
    crate::seal::wrapped_file_id(wrapped?)
}

/// The length of the stored bytes a snapshot row names (longer than its size when sealed).
fn stored_size(o: &SnapshotObject) -> u64 {
    let size = o.size.max(0) as u64;
    match o.sealed {
        Some(_) => crate::seal::sealed_len(size),
        None => size,
    }
}
