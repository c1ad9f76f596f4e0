//! The repository on disk: its marker, snapshot folders, content objects, private modes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BackupError, Manifest, ObjectLine, Piece};

/// The file that marks a folder as a Kura backup repository.
pub const MARKER: &str = "kura-backup.json";
/// The repository format this version writes and reads.
pub const FORMAT: u32 = 1;

pub(super) fn io(what: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(what.display().to_string(), e)
}

/// Makes `dir` and its missing parents, private to this account (the repository holds the
/// secret key and the password hashes).
pub(super) fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Creates `path` for writing, readable by this account only.
pub(super) fn create_private(path: &Path) -> Result<fs::File, BackupError> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// Whether `dir` is a backup repository.
pub fn is_repository(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Opens `dir` as a repository, making it when `create` and it is missing or empty.
pub(super) fn open(dir: &Path, create: bool) -> Result<(), BackupError> {
    if is_repository(dir) {
        let text = fs::read_to_string(dir.join(MARKER)).map_err(io(dir))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| BackupError::Invalid(format!("{}: {e}", dir.join(MARKER).display())))?;
        return match v.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == u64::from(FORMAT) => Ok(()),
            f => Err(BackupError::Invalid(format!(
                "{} has repository format {f:?}; this kura reads format {FORMAT}",
                dir.display()
            ))),
        };
    }
    if !create {
        return Err(BackupError::Invalid(format!(
            "{} is not a Kura backup (no {MARKER})",
            dir.display()
        )));
    }
    if dir.exists() && fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BackupError::Invalid(format!(
            "{} is neither empty nor a Kura backup; choose an empty or new folder",
            dir.display()
        )));
    }
    make_private_dir(&dir.join("objects"))?;
    make_private_dir(&dir.join("snapshots"))?;
    let mut f = create_private(&dir.join(MARKER))?;
    writeln!(f, "{{\"format\": {FORMAT}}}").map_err(io(dir))?;
    Ok(())
}

/// Where the content with this hash lives.
pub(super) fn object_path(repo: &Path, sha256: &str) -> PathBuf {
    let fan = sha256.get(..2).unwrap_or("00");
    repo.join("objects").join(fan).join(sha256)
}

/// The ids of the repository's finished snapshots, oldest first.
pub fn snapshots(repo: &Path) -> Result<Vec<String>, BackupError> {
    let dir = repo.join("snapshots");
    let mut ids = Vec::new();
    for e in fs::read_dir(&dir).map_err(io(&dir))? {
        let e = e.map_err(io(&dir))?;
        if e.path().join("manifest.json").is_file() {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// The snapshot `id`, or the newest when `None`.
pub(super) fn pick(repo: &Path, id: Option<&str>) -> Result<String, BackupError> {
    let all = snapshots(repo)?;
    match id {
        Some(id) if all.iter().any(|s| s == id) => Ok(id.to_string()),
        Some(id) => Err(BackupError::Invalid(format!(
            "no finished snapshot {id} in {} (kura backup list shows them)",
            repo.display()
        ))),
        None => all.last().cloned().ok_or_else(|| {
            BackupError::Invalid(format!("{} holds no finished snapshot", repo.display()))
        }),
    }
}

/// Reads a snapshot's manifest.
pub(super) fn manifest(repo: &Path, id: &str) -> Result<Manifest, BackupError> {
    let p = repo.join("snapshots").join(id).join("manifest.json");
    let text = fs::read_to_string(&p).map_err(io(&p))?;
    serde_json::from_str(&text)
        .map_err(|e| BackupError::Damaged(vec![format!("{}: {e}", p.display())]))
}

/// Reads a snapshot's object list.
pub(super) fn object_lines(repo: &Path, id: &str) -> Result<Vec<ObjectLine>, BackupError> {
    let p = repo.join("snapshots").join(id).join("objects.jsonl");
    let text = fs::read_to_string(&p).map_err(io(&p))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| BackupError::Damaged(vec![format!("{}: {e}", p.display())]))
        })
        .collect()
}

/// The hash and size of a file, read in blocks.
pub(super) fn hash_file(path: &Path) -> Result<(String, u64), BackupError> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Copies `from` into the snapshot folder as `rel`, returning its piece.
pub(super) fn copy_piece(from: &Path, snap: &Path, rel: &str) -> Result<Piece, BackupError> {
    let to = snap.join(rel);
    if let Some(dir) = to.parent() {
        make_private_dir(dir)?;
    }
    let mut src = fs::File::open(from).map_err(io(from))?;
    let mut dst = create_private(&to)?;
    std::io::copy(&mut src, &mut dst).map_err(io(&to))?;
    dst.sync_all().map_err(io(&to))?;
    piece(snap, rel)
}

/// The piece of a file already in the snapshot folder.
pub(super) fn piece(snap: &Path, rel: &str) -> Result<Piece, BackupError> {
    let (sha256, size) = hash_file(&snap.join(rel))?;
    Ok(Piece {
        file: rel.to_string(),
        size,
        sha256,
    })
}

/// The regular files below `dir`, relative to it, sorted.
pub(super) fn files_below(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.map_err(io(&d))?;
            let t = e.file_type().map_err(io(&d))?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                if let Ok(rel) = e.path().strip_prefix(dir) {
                    out.push(rel.to_path_buf());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}
