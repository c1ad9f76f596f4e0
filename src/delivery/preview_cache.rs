//! The previews' caches. On disk: thumbnails and PDF pages, named by a hash the caller makes
//! of the file's content (see `thumbnail::content_id`), so a renamed or copied file finds
//! its previews, and capped in total bytes (`preview_cache_bytes`): past the cap the least
//! recently used files are removed until a tenth of it is free again. In memory: the files
//! whose preview failed (a PDF past the renderer's limits, an image that does not decode), so
//! the same content is refused at once instead of being rendered again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failed preview is remembered (a failure caused by a busy machine heals).
const FAILURE_TTL: Duration = Duration::from_secs(3600);

/// Most failures remembered; past it the oldest half is forgotten.
const MAX_FAILURES: usize = 4096;

/// A preview that failed, as it is answered again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not previewable (415).
    Unsupported(String),
    /// Over a bound (413).
    TooLarge(String),
    /// A page past the last (400).
    Invalid(String),
}

/// One cached file: its size and when it was last used (a tick of the index).
struct Item {
    bytes: u64,
    used: u64,
}

/// What is on disk, by file name under the cache folder's two-letter subfolders.
#[derive(Default)]
struct Index {
    items: HashMap<String, Item>,
    total: u64,
    tick: u64,
}

/// The disk cache and the memory of failures.
pub struct PreviewCache {
    dir: PathBuf,
    cap: u64,
    index: Mutex<Index>,
    failures: Mutex<HashMap<String, (Instant, Failure)>>,
}

impl PreviewCache {
    /// A cache in `dir` of at most `cap` bytes (0: nothing is written to disk). What `dir`
    /// holds already is counted (oldest modification first used), and pruned if over `cap`.
    pub fn new(dir: PathBuf, cap: u64) -> Self {
        let cache = PreviewCache {
            dir,
            cap,
            index: Mutex::new(Index::default()),
            failures: Mutex::new(HashMap::new()),
        };
        cache.load();
        cache
    }

    /// Whether previews are cached on disk at all.
    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Total bytes of the cached files.
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file of `name` (a hex hash and an extension).
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name.get(..2).unwrap_or("00")).join(name)
    }

    /// The cached bytes of `name`, marked as used now.
    pub async fn get(&self, name: &str) -> Option<Vec<u8>> {
        if !self.enabled() {
            return None;
        }
        match tokio::fs::read(self.file(name)).await {
            Ok(b) => {
                let mut ix = self.lock();
                ix.tick += 1;
                let tick = ix.tick;
                if let Some(it) = ix.items.get_mut(name) {
                    it.used = tick;
                }
                Some(b)
            }
            Err(_) => {
                // removed behind the index's back (the folder is safe to delete at any time)
                let mut ix = self.lock();
                if let Some(it) = ix.items.remove(name) {
                    ix.total -= it.bytes;
                }
                None
            }
        }
    }

    /// Writes `bytes` as `name` (whole: a temporary name, then a rename), then prunes the
    /// least recently used files if the cache is over its cap. Blocking; a failure only costs
    /// a render next time.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if !self.enabled() || len > self.cap / 10 {
            return;
        }
        let file = self.file(name);
        if let Err(e) = write_whole(&file, bytes) {
            tracing::warn!(file = %file.display(), error = %e, "could not cache a preview");
            return;
        }
        let over = {
            let mut ix = self.lock();
            ix.tick += 1;
            let used = ix.tick;
            if let Some(old) = ix.items.insert(name.to_string(), Item { bytes: len, used }) {
                ix.total -= old.bytes;
            }
            ix.total += len;
            ix.total > self.cap
        };
        if over {
            self.prune();
        }
    }

    /// Removes the least recently used files until the cache holds at most nine tenths of
    /// its cap.
    fn prune(&self) {
        let target = self.cap - self.cap / 10;
        let doomed: Vec<String> = {
            let mut ix = self.lock();
            let mut order: Vec<(u64, String, u64)> = ix
                .items
                .iter()
                .map(|(n, it)| (it.used, n.clone(), it.bytes))
                .collect();
            order.sort_unstable();
            let mut out = Vec::new();
            for (_, name, bytes) in order {
                if ix.total <= target {
                    break;
                }
                ix.items.remove(&name);
                ix.total -= bytes;
                out.push(name);
            }
            out
        };
        for name in &doomed {
            let file = self.file(name);
            if let Err(e) = std::fs::remove_file(&file) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %file.display(), error = %e, "could not remove a cached preview");
                }
            }
        }
        tracing::debug!(removed = doomed.len(), "preview cache pruned");
    }

    /// Counts what the cache folder holds (leftover temporary files are removed), the
    /// files modified longest ago first in line for pruning.
    fn load(&self) {
        let mut found: Vec<(std::time::SystemTime, String, u64)> = Vec::new();
        let subs = match std::fs::read_dir(&self.dir) {
            Ok(s) => s,
            Err(_) => return,
        };
        for sub in subs.flatten() {
            let Ok(files) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                if name.contains(".tmp") || !self.enabled() {
                    let _ = std::fs::remove_file(f.path());
                    continue;
                }
                let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((mtime, name, meta.len()));
            }
        }
        found.sort_unstable();
        let over = {
            let mut ix = self.lock();
            for (_, name, bytes) in found {
                ix.tick += 1;
                let used = ix.tick;
                ix.total += bytes;
                ix.items.insert(name, Item { bytes, used });
            }
            ix.total > self.cap
        };
        if over && self.enabled() {
            self.prune();
        }
    }

    /// The failure remembered for `key`, if it is recent.
    pub fn failed(&self, key: &str) -> Option<Failure> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match f.get(key) {
            Some((at, why)) if at.elapsed() < FAILURE_TTL => Some(why.clone()),
            Some(_) => {
                f.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that the preview `key` failed as `why`.
    pub fn remember_failure(&self, key: &str, why: Failure) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_FAILURES {
            f.retain(|_, (at, _)| at.elapsed() < FAILURE_TTL);
            if f.len() >= MAX_FAILURES {
                let mut ages: Vec<Instant> = f.values().map(|(at, _)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                f.retain(|_, (at, _)| *at > cut);
            }
        }
        f.insert(key.to_string(), (Instant::now(), why));
    }
}

/// Writes `file` whole: a temporary name beside it, then a rename.
fn write_whole(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| std::io::Error::other("no folder"))?;
    let tmp = file.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let done = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, file));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_under_its_cap_and_drops_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let c = PreviewCache::new(dir.path().to_path_buf(), 10_000);
        for i in 0..5 {
            c.put(&format!("{i:02x}aa.png"), &[0u8; 900]);
        }
        assert_eq!(c.total(), 4500);
        // the first is used again: the second is now the oldest
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(c.get("00aa.png")).is_some());
        for i in 5..12 {
            c.put(&format!("{i:02x}aa.png"), &[0u8; 900]);
        }
        assert!(c.total() <= 10_000, "{}", c.total());
        assert!(rt.block_on(c.get("00aa.png")).is_some());
        assert!(rt.block_on(c.get("01aa.png")).is_none());
        // a file over a tenth of the cap is not cached at all
        c.put("ffbig.png", &[0u8; 1001]);
        assert!(rt.block_on(c.get("ffbig.png")).is_none());
        // what is on disk is counted again at start
        let again = PreviewCache::new(dir.path().to_path_buf(), 10_000);
        assert_eq!(again.total(), c.total());
        // a zero cap: nothing on disk, and what was there is removed
        let off = PreviewCache::new(dir.path().to_path_buf(), 0);
        off.put("aaaa.png", &[0u8; 10]);
        assert_eq!(off.total(), 0);
        assert!(rt.block_on(again.get("00aa.png")).is_none());
    }

    #[test]
    fn failures_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let c = PreviewCache::new(dir.path().to_path_buf(), 0);
        assert_eq!(c.failed("k"), None);
        c.remember_failure("k", Failure::Unsupported("bomb".into()));
        assert_eq!(c.failed("k"), Some(Failure::Unsupported("bomb".into())));
        for i in 0..MAX_FAILURES + 10 {
            c.remember_failure(&format!("f{i}"), Failure::Invalid("x".into()));
        }
        assert!(c.failures.lock().unwrap().len() <= MAX_FAILURES);
    }
}
