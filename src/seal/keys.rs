//! Keys of the sealed format: each file's random data key, wrapped (AES-256-GCM) by a master
//! key named by its key id, and the ring of master keys the server holds: the current one
//! (a file in the data dir by default, or the operator's key file or key command) and the
//! retired ones kept in `<data_dir>/encryption-keys/` until nothing is wrapped by them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use sha2::{Digest, Sha256};

use crate::config::EncryptionSettings;

/// Errors of the sealed format and its keys.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A segment failed authentication: tampered, reordered, swapped or from another file.
    #[error("sealed segment {0} fails authentication (tampered or damaged stored bytes)")]
    Tampered(u64),
    /// Fewer stored bytes than the file's size needs.
    #[error("sealed file is truncated")]
    Truncated,
    /// The wrapped data key names a master key this server does not hold.
    #[error("master key {0} is not available (see docs/encryption.md)")]
    UnknownKey(String),
    /// A wrapped data key is malformed or does not open with the master key it names (that
    /// key is held): its record was damaged or tampered with.
    #[error("wrapped data key does not open (its record is damaged or was tampered with)")]
    BadWrap,
    /// A data key wrapped by a client's key (SSE-C) was opened with another key.
    #[error("the customer-provided key is not the one the file was stored with")]
    WrongCustomerKey,
    /// The master key could not be read, made or run.
    #[error("master key {0}: {1}")]
    Master(String, String),
    /// The master key is missing while data keys wrapped by a master key are recorded: a new
    /// key would open none of them.
    #[error(
        "the master key {0} is missing, but files are sealed with master key {1}: put the key \
         back (docs/encryption.md#backups-and-restores); a new key would open none of them"
    )]
    Lost(String, String),
    /// A master key is held, but data keys are recorded wrapped by a master key that is
    /// neither it nor a retired one: the wrong key file, or a damaged one (a key's id is its
    /// hash, so one changed byte makes another key).
    #[error(
        "the master key in {0} (id {1}) is not the key files are sealed with: files are sealed \
         with master key {2}, which is neither it nor a retired key in encryption-keys/; put \
         the right key back (docs/encryption.md#the-master-key); with this one they do not open"
    )]
    Wrong(String, String, String),
}

/// One file's data key and file id (both random).
#[derive(Clone)]
pub struct DataKey {
    secret: [u8; 32],
    file_id: [u8; 16],
}

impl DataKey {
    /// A fresh random key for a new file.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        let mut file_id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut secret);
        rand::thread_rng().fill_bytes(&mut file_id);
        DataKey { secret, file_id }
    }

    /// A key from its parts (a replication mailbox derives a body's key from its name).
    pub fn from_parts(secret: [u8; 32], file_id: [u8; 16]) -> Self {
        DataKey { secret, file_id }
    }

    /// A key unwrapped by a client's key (SSE-C).
    pub(super) fn with_parts(secret: [u8; 32], file_id: [u8; 16]) -> Self {
        DataKey { secret, file_id }
    }

    /// The AES-256 key bytes.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The file id bound into every segment.
    pub fn file_id(&self) -> [u8; 16] {
        self.file_id
    }
}

/// A master key: its id (first 8 bytes of its SHA-256, hex) and the AEAD key.
struct Master {
    id: String,
    key: LessSafeKey,
}

fn master(bytes: &[u8; 32]) -> Master {
    let id = hex::encode(&Sha256::digest(bytes)[..8]);
    Master {
        id,
        key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES key")),
    }
}

fn wrap_aad(kid: &str, file_id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"kura data key v1:".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad.extend_from_slice(file_id);
    aad
}

/// The key id a wrapped data key names (`v1:<kid>:<file id>:<nonce+ciphertext>`).
#[cfg(test)]
pub fn wrapped_key_id(wrapped: &str) -> Option<&str> {
    let mut it = wrapped.split(':');
    (it.next() == Some("v1")).then(|| it.next()).flatten()
}

/// Where the master key comes from.
#[derive(Clone, Debug)]
enum Source {
    /// `<data_dir>/encryption.key`, made (0600) the first time a key is needed.
    DataDir(PathBuf),
    /// The operator's file.
    File(PathBuf),
    /// A command printing the key.
    Command(String),
}

/// The master keys this server holds: one current (wraps new data keys) and retired ones
/// (unwrap only). Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Mutex<Ring>>,
    /// New buckets are encrypted (`[encryption] default`).
    pub default_on: bool,
}

struct Ring {
    source: Source,
    retired_dir: PathBuf,
    current: Option<Arc<Master>>,
    all: BTreeMap<String, Arc<Master>>,
}

/// Parses a master key: 32 raw bytes, or 64 hex digits (whitespace around ignored).
pub fn parse_master(raw: &[u8]) -> Option<[u8; 32]> {
    if raw.len() == 32 {
        return raw.try_into().ok();
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    hex::decode(text).ok()?.try_into().ok()
}

/// Writes `bytes` to a new file readable by the server's account only (a folder it makes
/// for it, such as `encryption-keys/`, too).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn read_source(source: &Source) -> Result<Option<[u8; 32]>, SealError> {
    let bad = |what: &str, why: String| SealError::Master(what.to_string(), why);
    let raw = match source {
        Source::DataDir(p) => match std::fs::read(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            r => r.map_err(|e| bad(&p.display().to_string(), e.to_string()))?,
        },
        Source::File(p) => {
            std::fs::read(p).map_err(|e| bad(&p.display().to_string(), e.to_string()))?
        }
        Source::Command(cmd) => {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .output()
                .map_err(|e| bad("key_command", e.to_string()))?;
            if !out.status.success() {
                return Err(bad("key_command", format!("exited with {}", out.status)));
            }
            out.stdout
        }
    };
    parse_master(&raw).map(Some).ok_or_else(|| {
        let what = match source {
            Source::DataDir(p) | Source::File(p) => p.display().to_string(),
            Source::Command(_) => "key_command".into(),
        };
        bad(
            &what,
            format!(
                "holds {} bytes, not a key: expected 32 bytes or 64 hex digits (a truncated or \
                 damaged key file?)",
                raw.len()
            ),
        )
    })
}

impl KeyRing {
    /// The ring of the installation in `data_dir` with `settings`: the operator's key is read
    /// (or its command run) now; the data dir's key is read if it exists, made on first need.
    pub fn load(data_dir: &Path, settings: &EncryptionSettings) -> Result<Self, SealError> {
        let source = match (&settings.key_file, &settings.key_command) {
            (Some(_), Some(_)) => {
                return Err(SealError::Master(
                    "[encryption]".into(),
                    "set key_file or key_command, not both".into(),
                ))
            }
            (Some(f), None) => Source::File(f.clone()),
            (None, Some(c)) => Source::Command(c.clone()),
            (None, None) => Source::DataDir(data_dir.join("encryption.key")),
        };
        let retired_dir = data_dir.join("encryption-keys");
        let mut all = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(&retired_dir) {
            for f in dir.flatten() {
                if let Some(k) = std::fs::read(f.path()).ok().and_then(|b| parse_master(&b)) {
                    let m = Arc::new(master(&k));
                    all.insert(m.id.clone(), m);
                }
            }
        }
        let current = read_source(&source)?.map(|k| Arc::new(master(&k)));
        if let Some(m) = &current {
            all.insert(m.id.clone(), m.clone());
        }
        Ok(KeyRing {
            inner: Arc::new(Mutex::new(Ring {
                source,
                retired_dir,
                current,
                all,
            })),
            default_on: settings.default,
        })
    }

    /// A ring holding only `key` (tests and restores).
    #[cfg(test)]
    pub fn with_key(key: [u8; 32]) -> Self {
        let m = Arc::new(master(&key));
        KeyRing {
            inner: Arc::new(Mutex::new(Ring {
                source: Source::Command(String::new()),
                retired_dir: PathBuf::new(),
                current: Some(m.clone()),
                all: BTreeMap::from([(m.id.clone(), m)]),
            })),
            default_on: false,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current master key, making the data dir's key file on first need.
    fn current(&self) -> Result<Arc<Master>, SealError> {
        let mut r = self.ring();
        if let Some(m) = &r.current {
            return Ok(m.clone());
        }
        let Source::DataDir(path) = r.source.clone() else {
            return Err(SealError::Master("key".into(), "no master key".into()));
        };
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        match write_private(&path, &k) {
            Ok(()) => {}
            // another process made it first: use that one
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                k = read_source(&r.source)?.ok_or(SealError::BadWrap)?;
            }
            Err(e) => return Err(SealError::Master(path.display().to_string(), e.to_string())),
        }
        let m = Arc::new(master(&k));
        r.all.insert(m.id.clone(), m.clone());
        r.current = Some(m.clone());
        Ok(m)
    }

    /// Whether a current master key is held: read at start, made since, or (the data dir's
    /// key) made since by another process, such as a command making an encrypted bucket.
    pub fn holds_current(&self) -> bool {
        let source = {
            let r = self.ring();
            if r.current.is_some() {
                return true;
            }
            r.source.clone()
        };
        let Source::DataDir(_) = source else {
            return false;
        };
        let Ok(Some(k)) = read_source(&source) else {
            return false;
        };
        let m = Arc::new(master(&k));
        let mut r = self.ring();
        r.all.insert(m.id.clone(), m.clone());
        r.current.get_or_insert(m);
        true
    }

    /// The id of the current master key, if one is held (never makes one).
    pub fn held_current_id(&self) -> Option<String> {
        self.ring().current.as_ref().map(|m| m.id.clone())
    }

    /// Where the current master key comes from, for messages.
    pub fn source_name(&self) -> String {
        match &self.ring().source {
            Source::DataDir(p) | Source::File(p) => p.display().to_string(),
            Source::Command(_) => "key_command".into(),
        }
    }

    /// The id of the current master key (made on first need).
    #[cfg(test)]
    pub fn current_id(&self) -> Result<String, SealError> {
        Ok(self.current()?.id.clone())
    }

    /// A new data key for a file, and its wrapped form to record.
    pub fn new_data_key(&self) -> Result<(DataKey, String), SealError> {
        let k = DataKey::random();
        let wrapped = self.wrap(&k)?;
        Ok((k, wrapped))
    }

    /// Wraps `k` with the current master key.
    pub fn wrap(&self, k: &DataKey) -> Result<String, SealError> {
        let m = self.current()?;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = k.secret.to_vec();
        m.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(&m.id, &k.file_id)),
                &mut buf,
            )
            .map_err(|_| SealError::BadWrap)?;
        Ok(format!(
            "v1:{}:{}:{}{}",
            m.id,
            hex::encode(k.file_id),
            hex::encode(nonce),
            hex::encode(buf)
        ))
    }

    /// The ids of every master key held, the current one first.
    pub fn ids(&self) -> Vec<String> {
        let r = self.ring();
        let cur = r.current.as_ref().map(|m| m.id.clone());
        let mut ids: Vec<String> = cur.iter().cloned().collect();
        ids.extend(r.all.keys().filter(|k| Some(*k) != cur.as_ref()).cloned());
        ids
    }

    /// Reads the retired keys again (another process, `kura encryption rotate`, may have
    /// retired the key this server holds as current and made a new one).
    /// The operator's key command is not run again: it runs once, at start (a password
    /// manager's prompt, or a hanging command holding the ring, on every such read).
    fn reload(&self) {
        let source = self.ring().source.clone();
        let fresh = match source {
            Source::Command(_) => None,
            s => read_source(&s).ok().flatten(),
        };
        let mut r = self.ring();
        if let Some(k) = fresh {
            let m = Arc::new(master(&k));
            r.all.insert(m.id.clone(), m);
        }
        if let Ok(dir) = std::fs::read_dir(&r.retired_dir) {
            for f in dir.flatten() {
                if let Some(k) = std::fs::read(f.path()).ok().and_then(|b| parse_master(&b)) {
                    let m = Arc::new(master(&k));
                    r.all.entry(m.id.clone()).or_insert(m);
                }
            }
        }
    }

    /// Opens a wrapped data key with the master key it names.
    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey, SealError> {
        match self.unwrap_held(wrapped) {
            Err(SealError::UnknownKey(_)) => {
                self.reload();
                self.unwrap_held(wrapped)
            }
            r => r,
        }
    }

    fn unwrap_held(&self, wrapped: &str) -> Result<DataKey, SealError> {
        let parts: Vec<&str> = wrapped.split(':').collect();
        let [v, kid, fid, sealed] = parts[..] else {
            return Err(SealError::BadWrap);
        };
        if v != "v1" {
            return Err(SealError::BadWrap);
        }
        let m = self
            .ring()
            .all
            .get(kid)
            .cloned()
            .ok_or_else(|| SealError::UnknownKey(kid.to_string()))?;
        let file_id: [u8; 16] = hex::decode(fid)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SealError::BadWrap)?;
        let raw = hex::decode(sealed).map_err(|_| SealError::BadWrap)?;
        if raw.len() < 12 {
            return Err(SealError::BadWrap);
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::BadWrap)?;
        let mut buf = ct.to_vec();
        let secret: [u8; 32] = m
            .key
            .open_in_place(nonce, Aad::from(wrap_aad(kid, &file_id)), &mut buf)
            .map_err(|_| SealError::BadWrap)?
            .try_into()
            .map_err(|_| SealError::BadWrap)?;
        Ok(DataKey { secret, file_id })
    }

    /// Rewraps `wrapped` with the current master key (rotation); the bytes stay as they are.
    #[cfg(test)]
    pub fn rewrap(&self, wrapped: &str) -> Result<String, SealError> {
        let k = self.unwrap(wrapped)?;
        self.wrap(&k)
    }

    /// Rotation's first step: the current key is kept as retired (unwrap only) and a new
    /// random key becomes current, written where the current key lives (the data dir's file;
    /// an operator's key file or command must be changed by the operator). Returns the ids.
    pub fn rotate(&self, new_key: Option<[u8; 32]>) -> Result<(String, String), SealError> {
        let old = self.current()?;
        let mut r = self.ring();
        let err =
            |p: &Path, e: std::io::Error| SealError::Master(p.display().to_string(), e.to_string());
        let retired = r.retired_dir.join(format!("{}.key", old.id));
        let Source::DataDir(path) = r.source.clone() else {
            return Err(SealError::Master(
                "key".into(),
                "rotation rotates the data dir's encryption.key only: with key_file or key_command set, see docs/encryption.md#rotation".into(),
            ));
        };
        let old_bytes = std::fs::read(&path).map_err(|e| err(&path, e))?;
        if !retired.exists() {
            write_private(&retired, &old_bytes).map_err(|e| err(&retired, e))?;
        }
        let k = new_key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut k);
            k
        });
        let tmp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &k).map_err(|e| err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
        let m = Arc::new(master(&k));
        r.all.insert(m.id.clone(), m.clone());
        r.current = Some(m.clone());
        Ok((old.id.clone(), m.id.clone()))
    }

    /// Removes retired key `kid` once nothing is wrapped by it any more.
    pub fn forget_retired(&self, kid: &str) -> std::io::Result<()> {
        let r = self.ring();
        match std::fs::remove_file(r.retired_dir.join(format!("{kid}.key"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_wrap_and_rewrap() {
        let ring = KeyRing::with_key([1u8; 32]);
        let (k, w) = ring.new_data_key().unwrap();
        assert_eq!(ring.unwrap(&w).unwrap().secret(), k.secret());
        let fid = hex::encode(k.file_id());
        assert_eq!(super::super::wrapped_file_id(&w), Some(fid.as_str()));
        assert_eq!(
            wrapped_key_id(&w),
            Some(ring.current_id().unwrap().as_str())
        );
        // another master key cannot open it
        let other = KeyRing::with_key([2u8; 32]);
        assert!(matches!(other.unwrap(&w), Err(SealError::UnknownKey(_))));
        // a wrapped key moved to another file id does not open
        let mut parts: Vec<String> = w.split(':').map(String::from).collect();
        parts[2] = hex::encode([7u8; 16]);
        assert!(ring.unwrap(&parts.join(":")).is_err());
    }

    #[test]
    fn rotation_keeps_the_old_key_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let s = EncryptionSettings::default();
        let ring = KeyRing::load(dir.path(), &s).unwrap();
        let (k, w) = ring.new_data_key().unwrap();
        let mode = std::fs::metadata(dir.path().join("encryption.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let (old, new) = ring.rotate(None).unwrap();
        assert_ne!(old, new);
        let retired = std::fs::metadata(dir.path().join("encryption-keys")).unwrap();
        assert_eq!(retired.permissions().mode() & 0o777, 0o700);
        let w2 = ring.rewrap(&w).unwrap();
        assert_eq!(wrapped_key_id(&w2), Some(new.as_str()));
        // a restarted server holds both until the old one is forgotten
        let again = KeyRing::load(dir.path(), &s).unwrap();
        assert_eq!(again.unwrap(&w).unwrap().secret(), k.secret());
        assert_eq!(again.unwrap(&w2).unwrap().secret(), k.secret());
        again.forget_retired(&old).unwrap();
        let last = KeyRing::load(dir.path(), &s).unwrap();
        assert!(last.unwrap(&w).is_err());
        assert!(last.unwrap(&w2).is_ok());
    }
}
