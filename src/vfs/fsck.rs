//! Consistency check: storage against metadata (files changed behind Kura's back, leftovers of
//! a crash) and usage counters against metadata; `repair` makes metadata follow storage.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use md5::{Digest, Md5};

use super::{VPath, Vfs, VfsError};
use crate::store::{now_ms, Drift, EntryRow, MetaError};

/// What `fsck` found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Stored objects without a metadata row (repair: recorded).
    pub unrecorded: Vec<String>,
    /// Metadata rows whose object is gone (repair: removed).
    pub missing: Vec<String>,
    /// Files whose stored size differs from their row (repair: size and ETag recomputed).
    pub changed: Vec<String>,
    /// Copies left by an interrupted COPY (repair: deleted).
    pub leftovers: Vec<String>,
    /// Groups whose usage counters were wrong (repair: recounted).
    pub usage: Vec<Drift>,
}

impl FsckReport {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.unrecorded.is_empty()
            && self.missing.is_empty()
            && self.changed.is_empty()
            && self.leftovers.is_empty()
            && self.usage.is_empty()
    }
}

/// Whether nothing is stored below the folder `path`.
fn is_empty_dir(stored: &BTreeMap<String, (bool, u64)>, path: &str) -> bool {
    let lo = format!("{path}/");
    stored
        .range(lo.clone()..)
        .next()
        .is_none_or(|(k, _)| !k.starts_with(&lo))
}

impl Vfs {
    /// Compares storage with metadata and usage with metadata; with `repair`, fixes both.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, VfsError> {
        let mut report = FsckReport::default();
        // storage: path -> (is_dir, size)
        let mut stored: BTreeMap<String, (bool, u64)> = BTreeMap::new();
        let mut lister = self.op.lister_with("").recursive(true).await?;
        while let Some(entry) = lister.try_next().await? {
            let key = entry.path().trim_end_matches('/');
            if key.is_empty() {
                continue;
            }
            let is_dir = entry.metadata().is_dir();
            let size = if is_dir {
                0
            } else {
                self.op.stat(key).await?.content_length()
            };
            stored.insert(format!("/{key}"), (is_dir, size));
        }
        let rows: BTreeMap<String, EntryRow> = self
            .store
            .all_entries()
            .await?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();

        for (path, (is_dir, size)) in &stored {
            if path.contains(".kura-copy-") && !is_dir {
                report.leftovers.push(path.clone());
                if repair {
                    self.op.delete(path.trim_start_matches('/')).await?;
                }
                continue;
            }
            match rows.get(path) {
                // an empty folder left on disk by a pruned implicit folder whose removal
                // failed (or was interrupted) is not worth recording; repair removes it
                None if *is_dir && is_empty_dir(&stored, path) => {
                    if repair {
                        let _ = self
                            .op
                            .delete(&format!("{}/", path.trim_start_matches('/')))
                            .await;
                    }
                }
                None => {
                    report.unrecorded.push(path.clone());
                    if repair {
                        self.record(path, *is_dir, *size).await?;
                    }
                }
                Some(r) if !r.is_dir && !is_dir && r.size as u64 != *size => {
                    report.changed.push(path.clone());
                    if repair {
                        self.record(path, false, *size).await?;
                    }
                }
                Some(_) => {}
            }
        }
        for (path, r) in rows.iter().rev() {
            if !stored.contains_key(path) {
                report.missing.push(path.clone());
                if repair {
                    self.store.delete_tree(&r.path, None).await?;
                }
            }
        }
        report.missing.reverse();
        report.usage = self.store.check_usage(repair).await?;
        Ok(report)
    }

    /// Records a stored object as it is: the MD5 is read from the bytes, owner and group come
    /// from the folder it is in.
    async fn record(&self, path: &str, is_dir: bool, size: u64) -> Result<(), VfsError> {
        let p = VPath::parse(path)?;
        let parent = self.store.entry(p.parent().as_str()).await?;
        let (owner, grp) = parent.map_or((None, None), |e| (e.owner, e.grp));
        let now = now_ms();
        if is_dir {
            let row = EntryRow {
                path: p.to_string(),
                parent: p.parent().to_string(),
                is_dir: true,
                size: 0,
                mtime_ms: now,
                etag: format!("d{now:x}"),
                content_type: None,
                owner,
                headers: None,
                grp,
                mode: i64::from(0o777 & !self.umask),
                origin: None,
            };
            return match self.store.insert_dir(&row).await {
                Ok(()) | Err(MetaError::Duplicate) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        let mut md5 = Md5::new();
        let reader = self.op.reader(&p.storage_key(false)).await?;
        let mut stream = reader.into_bytes_stream(0..size).await?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string()))?
        {
            md5.update(&chunk);
        }
        let row = EntryRow {
            path: p.to_string(),
            parent: p.parent().to_string(),
            is_dir: false,
            size: size as i64,
            mtime_ms: now,
            etag: hex::encode(md5.finalize()),
            content_type: Some(
                mime_guess::from_path(p.name())
                    .first_or_octet_stream()
                    .to_string(),
            ),
            owner,
            headers: None,
            grp,
            mode: i64::from(0o666 & !self.umask),
            origin: None,
        };
        // recorded even over quota: the bytes are already there; usage is recounted after
        match self
            .store
            .commit_file(&row, crate::store::WriteRules::default(), None, async {
                Ok::<(), VfsError>(())
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(crate::store::Committed::Meta(MetaError::QuotaExceeded(_))) => {
                self.store.record_file_unchecked(&row).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
