//! What counts as one download of a shared file, so that `--max-downloads` cannot be dodged
//! with ranges: each client is followed per share and file, and the bytes sent to it add up;
//! a request is free while it continues a download (the bytes sent since the last counted one
//! plus this range stay within the file's size), and counts as a new download otherwise. A
//! resumed or parallel-range download thus counts once; `Range: bytes=1-` from a fresh client,
//! or a second full pass, counts again. Kept in memory: a restart can only count more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a download may pause and still be continued without counting again.
const RESUME_WITHIN: Duration = Duration::from_secs(3600);
/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 50_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    share: String,
    client: IpAddr,
    path: String,
}

/// Bytes sent per (share, client, file) since the last counted download.
#[derive(Default)]
pub struct Ledger {
    served: Mutex<HashMap<Key, (u64, Instant)>>,
}

impl Ledger {
    /// Notes `len` bytes of a `size`-byte file sent to `client`; true if this is a new
    /// download, to be counted against the share's limit.
    pub fn is_new_download(
        &self,
        share: &str,
        client: IpAddr,
        path: &str,
        len: u64,
        size: u64,
    ) -> bool {
        let now = Instant::now();
        let mut map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, t)| now.duration_since(*t) < RESUME_WITHIN);
        }
        let key = Key {
            share: share.to_string(),
            client,
            path: path.to_string(),
        };
        let entry = map.entry(key).or_insert((u64::MAX, now));
        let continues = entry.0 != u64::MAX
            && now.duration_since(entry.1) < RESUME_WITHIN
            && entry.0.saturating_add(len) <= size;
        *entry = if continues {
            (entry.0 + len, now)
        } else {
            (len, now)
        };
        !continues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_add_up_to_downloads() {
        let l = Ledger::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // a fresh client's range counts, wherever it starts
        assert!(l.is_new_download("s", a, "/f", 99, 100));
        // the last byte continues it
        assert!(!l.is_new_download("s", a, "/f", 1, 100));
        // a second pass is a second download
        assert!(l.is_new_download("s", a, "/f", 99, 100));
        assert!(l.is_new_download("s", b, "/f", 10, 100));
        assert!(l.is_new_download("s", a, "/g", 10, 100));
        // a file sent whole counts every time
        assert!(l.is_new_download("s", b, "/h", 100, 100));
        assert!(l.is_new_download("s", b, "/h", 100, 100));
    }
}
