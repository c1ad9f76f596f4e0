//! Generations (`migrations/0034_generations.sql`): counters that every change to a kind of
//! row moves, by trigger, in the changing transaction, whichever process commits it:
//! `identity` (users, groups, memberships, access keys, peer keys), `locks` (WebDAV locks),
//! `settings` (bucket settings).
//!
//! The server keeps such rows in memory (identities in `auth`, the live locks and bucket
//! settings here) and checks the counters once per use. They are read on a connection of
//! their own, synchronously on the calling thread: a read of three rows costs a few
//! microseconds, where a statement through sqlx's pool is a round trip to the connection's
//! worker thread (two thread wake-ups, the cost of a small request on these machines). A read
//! outside a transaction sees every commit made before it started, so a change committed by
//! `kura user ...` counts from the next request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::Store;

const READ: &str = "SELECT name, n FROM generations";

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generations {
    /// Users, groups, memberships, access keys, peer keys.
    pub identity: i64,
    /// WebDAV locks.
    pub locks: i64,
    /// Bucket settings.
    pub settings: i64,
}

impl Generations {
    /// Files the counter of the row `name`.
    fn set(&mut self, name: &str, n: i64) {
        match name {
            "identity" => self.identity = n,
            "locks" => self.locks = n,
            "settings" => self.settings = n,
            _ => {}
        }
    }
}

/// Most values a memo keeps before it starts over.
const MEMO_LIMIT: usize = 10_000;

/// Values read at one generation of their kind; all of them are dropped when it moves.
pub(super) struct Memo<K, V> {
    inner: Mutex<(i64, HashMap<K, V>)>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            inner: Mutex::new((i64::MIN, HashMap::new())),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    /// The value of `key` if it was read at generation `now`.
    pub(super) fn get(&self, now: Option<i64>, key: &K) -> Option<V> {
        let now = now?;
        let memo = self.inner.lock().ok()?;
        if memo.0 != now {
            return None;
        }
        memo.1.get(key).cloned()
    }

    /// Keeps `value` of `key`, read at generation `at` (read before the value, so the value is
    /// at least as new as the generation it is filed under).
    pub(super) fn put(&self, at: i64, key: K, value: V) {
        let Ok(mut memo) = self.inner.lock() else {
            return;
        };
        if memo.0 != at || memo.1.len() >= MEMO_LIMIT {
            memo.1.clear();
            memo.0 = at;
        }
        memo.1.insert(key, value);
    }
}

/// What is kept in memory under the generations: bucket settings and the lock rows.
#[derive(Default)]
pub(super) struct Generation {
    /// Bucket settings by (bucket, name), under `settings`.
    pub(super) settings: Memo<(String, String), Option<String>>,
    /// Every lock row, expired or not, under `locks`.
    pub(super) locks: Memo<(), Arc<Vec<super::LockRow>>>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation").finish()
    }
}

/// The counters, read on one of the inline connections (`inline.rs`).
fn read(conn: &Connection) -> rusqlite::Result<Generations> {
    let mut st = conn.prepare_cached(READ)?;
    let mut g = Generations::default();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        g.set(r.get_ref(0)?.as_str()?, r.get(1)?);
    }
    Ok(g)
}

impl Store {
    /// The generations now; None when they cannot be read, and the caller must not trust
    /// what it remembers. SQLite: read without a hand-off (see the module). PostgreSQL: a
    /// query of the `generations` table (a round trip; every gateway's commits count).
    pub async fn generations(&self) -> Option<Generations> {
        match self.engine {
            super::Engine::Sqlite => self.inline.with(read),
            super::Engine::Postgres => {
                let rows: Vec<(String, i64)> =
                    match sqlx::query_as(READ).fetch_all(&self.pool).await {
                        Ok(rows) => rows,
                        Err(e) => {
                            tracing::warn!(error = %e, "generations: read failed");
                            return None;
                        }
                    };
                let mut g = Generations::default();
                for (name, n) in rows {
                    g.set(&name, n);
                }
                Some(g)
            }
        }
    }

    /// The identity generation now (`generations`).
    pub async fn identity_generation(&self) -> Option<i64> {
        self.generations().await.map(|g| g.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change to who someone is moves the generation, seen by a second connection (as
    /// the server sees the CLI's); a quota or usage change does not.
    #[tokio::test]
    async fn identity_changes_move_the_generation_and_usage_does_not() {
        let store = Store::in_memory().await.unwrap();
        async fn g(s: &Store) -> i64 {
            s.identity_generation().await.expect("readable")
        }
        let last = std::cell::Cell::new(g(&store).await);
        macro_rules! moved {
            ($s:expr, $what:expr) => {
                let now = g($s).await;
                assert!(now > last.get(), "{} did not move the generation", $what);
                last.set(now);
            };
        }
        store.create_user("ann", "h1", false).await.unwrap();
        moved!(&store, "user add");
        store.set_password("ann", "h2").await.unwrap();
        moved!(&store, "password");
        store.set_admin("ann", true).await.unwrap();
        moved!(&store, "admin grant");
        store.modify_user("ann", None, Some(true)).await.unwrap();
        moved!(&store, "bucket right");
        store.create_group("team").await.unwrap();
        moved!(&store, "group add");
        store.add_member("ann", "team").await.unwrap();
        moved!(&store, "membership add");
        store.remove_member("ann", "team").await.unwrap();
        moved!(&store, "membership remove");
        store.add_member("ann", "team").await.unwrap();
        moved!(&store, "membership add again");
        store.insert_key("KURAK", "ann", "sealed").await.unwrap();
        moved!(&store, "key create");
        store.delete_key("KURAK").await.unwrap();
        moved!(&store, "key revoke");

        store.set_quota("team", Some(1000), None).await.unwrap();
        sqlx::query("UPDATE groups SET used_bytes = used_bytes + 5 WHERE name = 'team'")
            .execute(&store.writer)
            .await
            .unwrap();
        assert_eq!(
            g(&store).await,
            last.get(),
            "usage or quota moved the generation"
        );

        store.delete_group("team").await.unwrap();
        moved!(&store, "group remove (and its memberships)");
        store.delete_user("ann").await.unwrap();
        moved!(&store, "user remove");

        // the same snapshot through the pool
        let (row, at) = store.user_and_generation("ann").await.unwrap();
        assert!(row.is_none());
        assert_eq!(at, last.get());
    }
}
