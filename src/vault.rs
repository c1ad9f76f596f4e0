//! The secret vault: secrets Kura must read back (S3 secret keys: SigV4 needs them) are
//! sealed (ChaCha20-Poly1305) with a server key kept in the data dir, apart from the database.

use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::store::{MetaError, Store};

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The server key file could not be read or created.
    #[error("server key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Access keys exist but their server key file is gone (restore it from the backup).
    #[error("server key {0} is missing but access keys exist: restore it from the backup of the data dir (a further gateway on a shared database: copy secret.key from the data dir of the first gateway, docs/scale-out.md)")]
    Missing(PathBuf),
    /// The database was set up with another server key: this gateway's `secret.key` is not
    /// the one every other gateway (or the data dir's first start) uses.
    #[error("server key {0} is missing or is not the key this database was set up with: copy secret.key from the data dir of the first gateway (docs/scale-out.md)")]
    Differs(PathBuf),
    /// The server key file is not 32 bytes.
    #[error("server key {0} is damaged (expected 32 bytes)")]
    BadServerKey(PathBuf),
    /// A sealed secret did not open: wrong server key or tampered row.
    #[error("access key {0} cannot be unsealed with this server key")]
    Unseal(String),
    /// The key store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Seals and opens secrets with the server key.
#[derive(Clone)]
pub struct Vault {
    cipher: ChaCha20Poly1305,
}

/// A freshly created key: the only moment the secret is shown.
pub struct NewKey {
    /// Access key id.
    pub id: String,
    /// Secret access key.
    pub secret: String,
}

/// What the database's check value seals (`install_checks`), and under which id.
const CHECK_ID: &str = "server-key-check";
const CHECK_TEXT: &str = "kura";

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()] as char)
        .collect()
}

impl Vault {
    /// Loads `<data_dir>/secret.key`, creating it (mode 0600) while the database knows no server
    /// key yet; once it does (or access keys exist) a missing server key is an error, never
    /// silently replaced. A key other than the database's is refused (another gateway's data
    /// dir made its own), so that no gateway runs unable to unseal the others' secrets.
    pub async fn open(data_dir: &Path, store: &Store) -> Result<Self, KeyError> {
        let path = data_dir.join("secret.key");
        let recorded = store.install_check(crate::store::SERVER_KEY).await?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !store.keys(None).await?.is_empty() {
                    return Err(KeyError::Missing(path));
                }
                if recorded.is_some() {
                    return Err(KeyError::Differs(path));
                }
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                write_new_private(&path, &k)?;
                k.to_vec()
            }
            Err(e) => return Err(KeyError::Io(path, e)),
        };
        if bytes.len() != 32 {
            return Err(KeyError::BadServerKey(path));
        }
        fn key_bytes(b: &[u8]) -> [u8; 32] {
            let mut k = [0u8; 32];
            k.copy_from_slice(b);
            k
        }
        let vault = Vault {
            cipher: ChaCha20Poly1305::new(&Key::from(key_bytes(&bytes))),
        };
        let recorded = match recorded {
            Some(r) => r,
            None => {
                let mine = vault.seal(CHECK_ID, CHECK_TEXT);
                store
                    .record_install_check(crate::store::SERVER_KEY, &mine)
                    .await?
            }
        };
        if vault.unseal(CHECK_ID, &recorded).ok().as_deref() != Some(CHECK_TEXT) {
            return Err(KeyError::Differs(path));
        }
        Ok(vault)
    }

    pub(crate) fn seal(&self, id: &str, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Opens a sealed secret of key `id`.
    pub fn unseal(&self, id: &str, sealed: &str) -> Result<String, KeyError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| KeyError::Unseal(id.into()))?;
        if raw.len() < 12 {
            return Err(KeyError::Unseal(id.into()));
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| KeyError::Unseal(id.into()))?;
        let pt = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Unseal(id.into()))?;
        String::from_utf8(pt).map_err(|_| KeyError::Unseal(id.into()))
    }

    /// Creates a key for `owner` and stores it sealed.
    pub async fn create(&self, store: &Store, owner: &str) -> Result<NewKey, KeyError> {
        let id = format!("KURA{}", random_string(16, ID_ALPHABET));
        let secret = random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        );
        store
            .insert_key(&id, owner, &self.seal(&id, &secret))
            .await?;
        Ok(NewKey { id, secret })
    }
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KeyError::Io(path.to_path_buf(), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| KeyError::Io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_sealed_and_bound_to_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory().await.unwrap();
        store.create_user("ann", "x", false).await.unwrap();
        let vault = Vault::open(dir.path(), &store).await.unwrap();
        let k = vault.create(&store, "ann").await.unwrap();
        assert_eq!(k.id.len(), 20);
        let (row, owner) = store
            .key_and_owner_and_generation(&k.id)
            .await
            .unwrap()
            .0
            .unwrap();
        assert_eq!(owner.name, "ann");
        assert!(
            !row.secret_enc.contains(&k.secret),
            "secret stored in plain text"
        );
        // a second open reads the same server key
        let again = Vault::open(dir.path(), &store).await.unwrap();
        assert_eq!(again.unseal(&k.id, &row.secret_enc).unwrap(), k.secret);
        // moving a sealed secret to another id does not open
        assert!(again.unseal("KURAOTHER", &row.secret_enc).is_err());
        // a lost server key is reported, not replaced, while keys depend on it
        std::fs::remove_file(dir.path().join("secret.key")).unwrap();
        assert!(matches!(
            Vault::open(dir.path(), &store).await,
            Err(KeyError::Missing(_))
        ));
        // keys go with their user
        store.delete_user("ann").await.unwrap();
        assert!(store
            .key_and_owner_and_generation(&k.id)
            .await
            .unwrap()
            .0
            .is_none());
    }

    #[tokio::test]
    async fn a_second_data_dir_needs_the_first_ones_server_key() {
        let store = Store::in_memory().await.unwrap();
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        Vault::open(first.path(), &store).await.unwrap();
        // no key yet, and none is made: the database has one
        assert!(matches!(
            Vault::open(second.path(), &store).await,
            Err(KeyError::Differs(_))
        ));
        assert!(!second.path().join("secret.key").exists());
        // a key of its own is refused
        std::fs::write(second.path().join("secret.key"), [7u8; 32]).unwrap();
        assert!(matches!(
            Vault::open(second.path(), &store).await,
            Err(KeyError::Differs(_))
        ));
        // the first one's copy opens
        std::fs::copy(
            first.path().join("secret.key"),
            second.path().join("secret.key"),
        )
        .unwrap();
        Vault::open(second.path(), &store).await.unwrap();
    }
}
