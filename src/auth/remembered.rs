//! Identities remembered between requests: a user's row and groups by name, an access key
//! with its owner by key id. Each is stored with the identity generation it was read at
//! (`store::Store::identity_generation`) and counts only while the generation is unchanged,
//! so any change to users, groups, memberships or keys, by this process or another
//! (`kura user ...`), sends the next request back to SQL.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most identities kept before the map starts over (only existing users and keys are kept).
const LIMIT: usize = 10_000;

/// Values by name, each valid at one identity generation.
pub(super) struct Remembered<T> {
    map: Mutex<HashMap<String, (i64, T)>>,
}

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Remembered {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Remembered<T> {
    /// What is remembered for `name`, if it was read at generation `now`.
    pub(super) fn get(&self, name: &str, now: Option<i64>) -> Option<T> {
        let now = now?;
        let map = self.map.lock().ok()?;
        match map.get(name) {
            Some((at, v)) if *at == now => Some(v.clone()),
            _ => None,
        }
    }

    /// Remembers `value` for `name` as read at generation `at`; None forgets the name.
    pub(super) fn put(&self, name: &str, at: i64, value: Option<T>) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        match value {
            Some(v) => {
                if map.len() >= LIMIT && !map.contains_key(name) {
                    map.clear();
                }
                map.insert(name.to_string(), (at, v));
            }
            None => {
                map.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_counts_only_at_its_generation() {
        let r = Remembered::default();
        r.put("ann", 3, Some(1));
        assert_eq!(r.get("ann", Some(3)), Some(1));
        assert_eq!(r.get("ann", Some(4)), None);
        assert_eq!(r.get("ann", None), None);
        assert_eq!(r.get("bob", Some(3)), None);
        r.put("ann", 4, None);
        assert_eq!(r.get("ann", Some(3)), None);
    }
}
