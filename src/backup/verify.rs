//! `kura backup verify DEST`: every file of a snapshot and every content object it names,
//! hashed again and compared with what the backup recorded.

use std::collections::BTreeSet;
use std::path::Path;

use super::repo;
use super::{BackupError, Piece};

/// What a verification read.
#[derive(Debug, Default)]
pub struct Verified {
    /// The snapshots checked.
    pub snapshots: Vec<String>,
    /// Distinct content objects hashed.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Verifies the snapshot `id` (the newest when `None`, every one with `all`); any damage is
/// `BackupError::Damaged` listing each finding.
pub fn verify(dest: &Path, id: Option<&str>, all: bool) -> Result<Verified, BackupError> {
    repo::open(dest, false)?;
    let ids = if all {
        repo::snapshots(dest)?
    } else {
        vec![repo::pick(dest, id)?]
    };
    let mut out = Verified::default();
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    for id in ids {
        let snap = dest.join("snapshots").join(&id);
        let m = repo::manifest(dest, &id)?;
        let pieces: Vec<&Piece> = [&m.metadata, &m.objects]
            .into_iter()
            .chain(m.extras.iter())
            .collect();
        for p in pieces {
            check(&snap.join(&p.file), p.size, &p.sha256, &mut bad)?;
        }
        // a damaged object list is reported above; its lines are not trusted then
        if let Ok(lines) = repo::object_lines(dest, &id) {
            for l in lines {
                if !seen.insert(l.sha256.clone()) {
                    continue;
                }
                let before = bad.len();
                check(
                    &repo::object_path(dest, &l.sha256),
                    l.size,
                    &l.sha256,
                    &mut bad,
                )?;
                if bad.len() > before {
                    bad.push(format!(
                        "  (the bytes of {} {} in snapshot {id})",
                        l.kind, l.name
                    ));
                } else {
                    out.objects += 1;
                    out.bytes += l.size;
                }
            }
        }
        out.snapshots.push(id);
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(BackupError::Damaged(bad))
    }
}

/// Hashes `path` and notes in `bad` what differs from the record.
pub(super) fn check(
    path: &Path,
    size: u64,
    sha256: &str,
    bad: &mut Vec<String>,
) -> Result<(), BackupError> {
    if !path.is_file() {
        bad.push(format!("missing: {}", path.display()));
        return Ok(());
    }
    let (got, n) = repo::hash_file(path)?;
    if n != size {
        bad.push(format!("size {n} instead of {size}: {}", path.display()));
    } else if got != sha256 {
        bad.push(format!("content differs from its hash: {}", path.display()));
    }
    Ok(())
}
