//! The stored tree in path order (the order of SQL's `ORDER BY path`), streamed: fsck merges
//! it with the rows one entry at a time instead of holding both sides (about 2.5 KB an entry,
//! which would not fit at ten million entries).

use std::borrow::Cow;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Entries a walk hands over at a time; a few batches in flight bound its memory.
const BATCH: usize = 512;

/// Steps of one folder held at a time (about 100 bytes each): a wider folder is read again
/// for each further chunk.
const WIDE: usize = 1 << 20;

/// One stored file or folder.
#[derive(Debug)]
pub(super) struct StoredItem {
    /// `/bucket/key` (a name that is not UTF-8 has its stray bytes written `\xNN`).
    pub path: String,
    /// A folder.
    pub is_dir: bool,
    /// Length in bytes (0 for a folder).
    pub size: u64,
    /// A folder with nothing below it.
    pub empty: bool,
    /// What no upload makes and Kura never records (nor walks into).
    pub odd: Option<Odd>,
}

/// An entry on disk that Kura never records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Odd {
    /// A symbolic link: never followed (it could point at any file of the host).
    Symlink,
    /// A pipe, socket or device: opening a pipe to serve it would block forever.
    Special,
    /// A name that is not UTF-8, which no protocol can name.
    NotUtf8,
}

/// Stored entries in path order: a walk of a local folder, or a listing sorted in memory.
pub(super) enum StoredWalk {
    /// Batches from a walk on a blocking thread.
    Local {
        rx: mpsc::Receiver<io::Result<Vec<StoredItem>>>,
        batch: std::vec::IntoIter<StoredItem>,
        walker: Option<JoinHandle<()>>,
    },
    /// A listing already read (a remote service's recursive lister).
    Listed(std::vec::IntoIter<StoredItem>),
}

impl StoredWalk {
    /// Walks `root` on a blocking thread, leaving out the top-level folder `skip_top`.
    pub fn local(root: PathBuf, skip_top: &'static str) -> Self {
        Self::local_chunked(root, skip_top, WIDE)
    }

    /// `local`, reading a folder `wide` steps at a time.
    fn local_chunked(root: PathBuf, skip_top: &'static str, wide: usize) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let walker = tokio::task::spawn_blocking(move || {
            if let Err(e) = walk(&root, skip_top, wide, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        StoredWalk::Local {
            rx,
            batch: Vec::new().into_iter(),
            walker: Some(walker),
        }
    }

    /// Puts a listing in path order and marks its empty folders.
    pub fn listed(mut items: Vec<StoredItem>) -> Self {
        items.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        // what lies below a folder starts at its `path/`, in one run of the sorted list
        let empty: Vec<bool> = items
            .iter()
            .map(|i| {
                let below = format!("{}/", i.path);
                let at = items.partition_point(|x| x.path < below);
                items.get(at).is_none_or(|x| !x.path.starts_with(&below))
            })
            .collect();
        for (i, e) in items.iter_mut().zip(empty) {
            i.empty = i.is_dir && e;
        }
        StoredWalk::Listed(items.into_iter())
    }

    /// The next entry in path order; `None` at the end.
    pub async fn next(&mut self) -> io::Result<Option<StoredItem>> {
        match self {
            StoredWalk::Listed(items) => Ok(items.next()),
            StoredWalk::Local { rx, batch, walker } => loop {
                if let Some(item) = batch.next() {
                    return Ok(Some(item));
                }
                match rx.recv().await {
                    Some(Ok(b)) => *batch = b.into_iter(),
                    Some(Err(e)) => return Err(e),
                    // a walk that died without a word must not read as an empty tree (fsck
                    // would call every row missing)
                    None => {
                        if let Some(w) = walker.take() {
                            w.await.map_err(io::Error::other)?;
                        }
                        return Ok(None);
                    }
                }
            },
        }
    }
}

/// One folder being walked: where it is and its steps still to take, sorted.
struct Frame {
    dir: PathBuf,
    /// Its `/path` (empty for the root).
    path: String,
    steps: std::vec::IntoIter<Step>,
    /// The last key of a full chunk: the folder holds more after it.
    more: Option<String>,
    /// A top-level name left out.
    skip: Option<&'static str>,
}

impl Frame {
    /// A folder's first chunk of steps.
    fn open(
        dir: PathBuf,
        path: String,
        skip: Option<&'static str>,
        wide: usize,
    ) -> io::Result<Self> {
        let (steps, more) = chunk(&dir, skip, None, wide)?;
        Ok(Frame {
            dir,
            path,
            steps: steps.into_iter(),
            more,
            skip,
        })
    }
}

/// One step of a folder's walk, under the key that puts it in path order among its siblings:
/// a child's name for its own entry, the name and `/` for what is below it (unique in a
/// folder, and its order).
struct Step {
    key: String,
    /// `None`: descend into the folder `key` names.
    item: Option<Found>,
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Step {}

impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Step {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// What a step found, without its path (made when it is handed over).
struct Found {
    is_dir: bool,
    size: u64,
    empty: bool,
    odd: Option<Odd>,
}

/// A depth-first walk whose output is in byte order of the full path: a folder's entry sorts
/// by its name and its contents by its name and `/`, so `/a`, `/a.b`, `/a/x` come out in that
/// order (a plain depth-first walk would give `/a/x` before `/a.b`). A folder is read in
/// chunks of at most `wide` steps, each the next smallest keys: memory is bounded by `wide`
/// and the depth, and a folder wider than `wide` is read once per chunk.
fn walk(
    root: &Path,
    skip_top: &'static str,
    wide: usize,
    tx: &mpsc::Sender<io::Result<Vec<StoredItem>>>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(BATCH);
    let mut stack = vec![Frame::open(
        root.to_path_buf(),
        String::new(),
        Some(skip_top),
        wide,
    )?];
    while let Some(top) = stack.last_mut() {
        let Some(step) = top.steps.next() else {
            match top.more.take() {
                Some(after) => {
                    let (steps, more) = chunk(&top.dir, top.skip, Some(&after), wide)?;
                    top.steps = steps.into_iter();
                    top.more = more;
                }
                None => {
                    stack.pop();
                }
            }
            continue;
        };
        let Some(f) = step.item else {
            let name = step.key.trim_end_matches('/');
            let (dir, path) = (top.dir.join(name), format!("{}/{name}", top.path));
            stack.push(Frame::open(dir, path, None, wide)?);
            continue;
        };
        out.push(StoredItem {
            path: format!("{}/{}", top.path, step.key),
            is_dir: f.is_dir,
            size: f.size,
            empty: f.empty,
            odd: f.odd,
        });
        if out.len() == BATCH
            && tx
                .blocking_send(Ok(std::mem::replace(&mut out, Vec::with_capacity(BATCH))))
                .is_err()
        {
            return Ok(()); // fsck stopped reading
        }
    }
    if !out.is_empty() {
        let _ = tx.blocking_send(Ok(out));
    }
    Ok(())
}

/// The `wide` smallest steps of a folder after the key `after`, sorted, and the last of them
/// when more may follow. Links are not followed, and nothing is walked into below a link or a
/// name that is not UTF-8.
fn chunk(
    dir: &Path,
    skip: Option<&str>,
    after: Option<&str>,
    wide: usize,
) -> io::Result<(Vec<Step>, Option<String>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        // removed while fsck ran (a server at work): nothing there to compare
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(e),
    };
    // every step while the folder fits in `wide`; past that, the smallest keys seen so far in
    // a heap, the largest on top (the type comes from the listing)
    let mut held = Vec::new();
    let mut heap: Option<std::collections::BinaryHeap<Step>> = None;
    let mut full = false;
    for e in entries {
        let e = e?;
        let os_name = e.file_name();
        let (name, mut odd) = match os_name.to_str() {
            Some(n) => (Cow::Borrowed(n), None),
            None => (Cow::Owned(escaped(os_name.as_bytes())), Some(Odd::NotUtf8)),
        };
        if skip == Some(&*name) {
            continue; // kept versions of other services; never in `fs`'s tree
        }
        // the entry itself, never what a link points at
        let t = match e.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if t.is_symlink() {
            odd = Some(Odd::Symlink);
        } else if !t.is_dir() && !t.is_file() {
            odd = Some(Odd::Special);
        }
        let descend = t.is_dir() && odd.is_none();
        // the entry's own key, then (a folder) its name and `/`; compared before any copy
        for slash in [false, true] {
            if slash && !descend {
                continue;
            }
            let vs = |k: &str| {
                let tail = if slash { &b"/"[..] } else { &b""[..] };
                name.bytes().chain(tail.iter().copied()).cmp(k.bytes())
            };
            if after.is_some_and(|a| vs(a).is_le()) {
                continue;
            }
            if heap.is_none() && held.len() == wide {
                heap = Some(std::mem::take(&mut held).into());
            }
            if let Some(h) = &mut heap {
                full = true;
                if !h.peek().is_some_and(|top| vs(&top.key).is_lt()) {
                    continue;
                }
                h.pop();
            }
            let step = Step {
                key: if slash {
                    format!("{name}/")
                } else {
                    name.to_string()
                },
                item: (!slash).then_some(Found {
                    is_dir: t.is_dir(),
                    size: 0,
                    empty: false,
                    odd,
                }),
            };
            match &mut heap {
                Some(h) => h.push(step),
                None => held.push(step),
            }
        }
    }
    let mut steps = match heap {
        Some(h) => h.into_sorted_vec(),
        None => {
            held.sort_unstable();
            held
        }
    };
    let more = if full {
        steps.last().map(|s| s.key.clone())
    } else {
        None
    };
    // sizes and emptiness for this chunk only
    for step in &mut steps {
        let Some(f) = step.item.as_mut().filter(|f| f.odd.is_none()) else {
            continue;
        };
        let p = dir.join(&step.key);
        if f.is_dir {
            // an unreadable folder stops the walk: the rows below it must not read as missing
            f.empty = match std::fs::read_dir(&p) {
                Ok(mut rd) => rd.next().is_none(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(e),
            };
        } else {
            f.size = match std::fs::symlink_metadata(&p) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
        }
    }
    Ok((steps, more))
}

/// A name that is not UTF-8, readable: its valid runs as they are, each stray byte as `\xNN`
/// (a backslash no name Kura records holds, so it never meets a row).
fn escaped(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a tree whose depth-first order differs from path order, and compares the
    /// result with the sorted listing of the same entries.
    #[tokio::test]
    async fn a_walk_comes_out_in_path_order_with_empty_folders_marked() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["b/a", "b/a/x", "b/a-", "b/e", "versions/k", "c"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "b/a.b",
            "b/a/x/1",
            "b/a0",
            "b/a-/z",
            "b/ab",
            "versions/k/v",
            "c/é",
        ] {
            std::fs::write(r.join(f), f).unwrap();
        }
        let mut walk = StoredWalk::local(r.to_path_buf(), "versions");
        let mut got = Vec::new();
        while let Some(i) = walk.next().await.unwrap() {
            got.push((i.path, i.is_dir, i.size, i.empty));
        }
        let paths: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "not in path order");
        assert_eq!(
            paths,
            [
                "/b", "/b/a", "/b/a-", "/b/a-/z", "/b/a.b", "/b/a/x", "/b/a/x/1", "/b/a0", "/b/ab",
                "/b/e", "/c", "/c/é"
            ]
        );
        let empty: Vec<&str> = got.iter().filter(|g| g.3).map(|g| g.0.as_str()).collect();
        assert_eq!(empty, ["/b/e"]);
        // a folder read a few steps at a time comes out the same
        for wide in [1, 2, 3] {
            let mut walk = StoredWalk::local_chunked(r.to_path_buf(), "versions", wide);
            let mut chunked = Vec::new();
            while let Some(i) = walk.next().await.unwrap() {
                chunked.push((i.path, i.is_dir, i.size, i.empty));
            }
            assert_eq!(chunked, got, "{wide}");
        }
        assert!(got.contains(&("/b/a.b".into(), false, 5, false)));
        // a listing gives the same entries and marks
        let listed = got
            .iter()
            .rev()
            .map(|g| StoredItem {
                path: g.0.clone(),
                is_dir: g.1,
                size: g.2,
                empty: false,
                odd: None,
            })
            .collect();
        let mut walk = StoredWalk::listed(listed);
        let mut again = Vec::new();
        while let Some(i) = walk.next().await.unwrap() {
            again.push((i.path, i.is_dir, i.size, i.empty));
        }
        assert_eq!(again, got);
    }

    /// Red team F8 and F4: a link (to a host file or folder), a pipe and a name that is not
    /// UTF-8 come out marked, and nothing below a link or such a name is walked into.
    #[tokio::test]
    async fn links_pipes_and_stray_bytes_are_marked_and_not_walked_into() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("b/real")).unwrap();
        std::fs::write(r.join("b/real/f"), b"f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("b/passwd")).unwrap();
        std::os::unix::fs::symlink(r.join("b/real"), r.join("b/loop")).unwrap();
        let bad = r.join("b").join(std::ffi::OsStr::from_bytes(b"x\xff\xfey"));
        std::fs::create_dir(&bad).unwrap();
        std::fs::write(bad.join("inner"), b"i").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(r.join("b/pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let mut walk = StoredWalk::local(r.to_path_buf(), "versions");
        let mut got = Vec::new();
        while let Some(i) = walk.next().await.unwrap() {
            got.push((i.path, i.odd));
        }
        assert_eq!(
            got,
            [
                ("/b".to_string(), None),
                ("/b/loop".into(), Some(Odd::Symlink)),
                ("/b/passwd".into(), Some(Odd::Symlink)),
                ("/b/pipe".into(), Some(Odd::Special)),
                ("/b/real".into(), None),
                ("/b/real/f".into(), None),
                ("/b/x\\xff\\xfey".into(), Some(Odd::NotUtf8)),
            ]
        );
    }
}
