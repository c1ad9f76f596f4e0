//! Keys S3 clients bring with each request (SSE-C, docs/encryption.md): a file's data key is
//! wrapped by a key derived from the client's key and a random per-file salt, and the server
//! keeps only that wrapped key and a salted fingerprint telling a wrong key from the right
//! one; never the client's key, nor its plain MD5. Without the client's key the file does
//! not open, whatever else the server holds.

use base64::Engine;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::{DataKey, SealError};

/// The one algorithm SSE-C names.
pub const ALGORITHM: &str = "AES256";
/// The prefix of a data key wrapped by a client's key (master-wrapped keys start `v1:`).
const PREFIX: &str = "c1:";
/// What the client's key derives, each under its own label, so no output is another's.
const KEK_LABEL: &[u8] = b"kura sse-c v1 key-encryption key";
const PRINT_LABEL: &[u8] = b"kura sse-c v1 fingerprint";
const WRAP_AAD: &[u8] = b"kura sse-c v1 data key:";

/// Why the SSE-C headers of a request do not name a usable key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyHeaderError {
    /// Some of the algorithm, key and key-MD5 headers came, not all three.
    #[error("SSE-C needs the algorithm, key and key-MD5 headers together")]
    Incomplete,
    /// An algorithm other than AES256.
    #[error("the SSE-C algorithm must be AES256")]
    Algorithm,
    /// The key is not the base64 of 32 bytes.
    #[error("the SSE-C key must be the base64 of 32 bytes")]
    Key,
    /// The key-MD5 header is not the base64 MD5 of the key.
    #[error("the SSE-C key-MD5 is not the MD5 of the key")]
    Md5,
}

/// A client's key, checked against its MD5; its bytes never leave this type (`Debug` shows
/// nothing of them).
#[derive(Clone)]
pub struct CustomerKey {
    secret: [u8; 32],
    md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

/// Whether `wrapped` (a file's recorded form) is a data key wrapped by a client's key.
pub fn is_customer(wrapped: &str) -> bool {
    wrapped.starts_with(PREFIX)
}

fn derive(secret: &[u8; 32], label: &[u8], salt: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(label);
    ctx.update(salt);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn aead(kek: &[u8; 32]) -> LessSafeKey {
    // a 32-byte key is always a valid AES-256 key
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).expect("32-byte AES key"))
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

fn salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut s);
    s
}

impl CustomerKey {
    /// The key the three SSE-C headers (`algorithm`, base64 `key`, base64 `md5`) name: `None`
    /// when none of them came.
    pub fn from_headers(
        algorithm: Option<&str>,
        key: Option<&str>,
        md5: Option<&str>,
    ) -> Result<Option<CustomerKey>, KeyHeaderError> {
        let (algorithm, key, md5) = match (algorithm, key, md5) {
            (None, None, None) => return Ok(None),
            (Some(a), Some(k), Some(m)) => (a, k, m),
            _ => return Err(KeyHeaderError::Incomplete),
        };
        if algorithm != ALGORITHM {
            return Err(KeyHeaderError::Algorithm);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret: [u8; 32] = b64
            .decode(key.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(KeyHeaderError::Key)?;
        let computed = md5_of(&secret);
        let given = b64.decode(md5.trim()).map_err(|_| KeyHeaderError::Md5)?;
        if !bool::from(given.ct_eq(&computed[..])) {
            return Err(KeyHeaderError::Md5);
        }
        Ok(Some(CustomerKey {
            secret,
            md5: b64.encode(computed),
        }))
    }

    /// The base64 MD5 of the key, as the client sent it (echoed in responses, never stored).
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// A salted fingerprint of this key (`<salt>:<print>`, hex), to record where the key must
    /// come back (a multipart upload's parts): it tells the right key from a wrong one and
    /// reveals nothing else of it.
    pub fn fingerprint(&self) -> String {
        let s = salt();
        format!(
            "{}:{}",
            hex::encode(s),
            hex::encode(derive(&self.secret, PRINT_LABEL, &s))
        )
    }

    /// Whether `fingerprint` (made by `fingerprint`, or the head of a wrapped key) is this
    /// key's.
    pub fn matches(&self, fingerprint: &str) -> bool {
        let mut it = fingerprint.trim_start_matches(PREFIX).split(':');
        let (Some(s), Some(p)) = (it.next(), it.next()) else {
            return false;
        };
        let (Ok(s), Ok(p)) = (hex::decode(s), hex::decode(p)) else {
            return false;
        };
        derive(&self.secret, PRINT_LABEL, &s)[..].ct_eq(&p).into()
    }

    /// `k` wrapped by this key: `c1:<salt>:<fingerprint>:<file id>:<nonce + sealed key>` (hex),
    /// the form recorded with the file.
    pub fn wrap(&self, k: &DataKey) -> String {
        let s = salt();
        let kek = aead(&derive(&self.secret, KEK_LABEL, &s));
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = k.secret().to_vec();
        let fid = k.file_id();
        // sealing fails only for inputs over GCM's limit, far above 32 bytes
        let _ = kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([WRAP_AAD, &fid[..]].concat()),
            &mut buf,
        );
        format!(
            "{PREFIX}{}:{}:{}:{}{}",
            hex::encode(s),
            hex::encode(derive(&self.secret, PRINT_LABEL, &s)),
            hex::encode(fid),
            hex::encode(nonce),
            hex::encode(buf)
        )
    }

    /// The data key `wrapped` (made by `wrap`) holds: `WrongCustomerKey` when this is not the
    /// key it was wrapped with.
    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey, SealError> {
        let parts: Vec<&str> = wrapped
            .strip_prefix(PREFIX)
            .ok_or(SealError::BadWrap)?
            .split(':')
            .collect();
        let [s, print, fid, sealed] = parts[..] else {
            return Err(SealError::BadWrap);
        };
        if !self.matches(&format!("{s}:{print}")) {
            return Err(SealError::WrongCustomerKey);
        }
        let s = hex::decode(s).map_err(|_| SealError::BadWrap)?;
        let fid: [u8; 16] = hex::decode(fid)
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
        let secret: [u8; 32] = aead(&derive(&self.secret, KEK_LABEL, &s))
            .open_in_place(nonce, Aad::from([WRAP_AAD, &fid[..]].concat()), &mut buf)
            .map_err(|_| SealError::BadWrap)?
            .try_into()
            .map_err(|_| SealError::BadWrap)?;
        Ok(DataKey::with_parts(secret, fid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &[u8; 32]) -> (String, String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(key), b64.encode(md5_of(key)))
    }

    fn key(b: u8) -> CustomerKey {
        let (k, m) = headers(&[b; 32]);
        CustomerKey::from_headers(Some("AES256"), Some(&k), Some(&m))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn headers_are_checked_as_aws_does() {
        let (k, m) = headers(&[7u8; 32]);
        let parse = |a: Option<&str>, k: Option<&str>, m: Option<&str>| {
            CustomerKey::from_headers(a, k, m).map(|o| o.is_some())
        };
        assert_eq!(parse(None, None, None), Ok(false));
        assert_eq!(parse(Some("AES256"), Some(&k), Some(&m)), Ok(true));
        assert_eq!(
            parse(Some("AES256"), Some(&k), None),
            Err(KeyHeaderError::Incomplete)
        );
        assert_eq!(
            parse(None, Some(&k), Some(&m)),
            Err(KeyHeaderError::Incomplete)
        );
        assert_eq!(
            parse(Some("aws:kms"), Some(&k), Some(&m)),
            Err(KeyHeaderError::Algorithm)
        );
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert_eq!(
            parse(Some("AES256"), Some(&short), Some(&m)),
            Err(KeyHeaderError::Key)
        );
        assert_eq!(
            parse(Some("AES256"), Some("not base64!"), Some(&m)),
            Err(KeyHeaderError::Key)
        );
        // the MD5 of another key
        let (_, other) = headers(&[8u8; 32]);
        assert_eq!(
            parse(Some("AES256"), Some(&k), Some(&other)),
            Err(KeyHeaderError::Md5)
        );
        assert_eq!(key(7).md5(), m);
        assert_eq!(format!("{:?}", key(7)), "CustomerKey(..)");
    }

    #[test]
    fn only_the_right_key_unwraps_and_nothing_recorded_reveals_it() {
        let data = DataKey::random();
        let right = key(1);
        let w = right.wrap(&data);
        assert!(is_customer(&w));
        // the file id is where `wrapped_file_id` finds it (a backup checks it against the bytes)
        let fid = hex::encode(data.file_id());
        assert_eq!(super::super::wrapped_file_id(&w), Some(fid.as_str()));
        let back = right.unwrap(&w).unwrap();
        assert_eq!(back.secret(), data.secret());
        assert_eq!(back.file_id(), data.file_id());
        assert!(matches!(
            key(2).unwrap(&w),
            Err(SealError::WrongCustomerKey)
        ));
        // neither the key, its base64, its MD5 (hex or base64) nor the data key is recorded
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = [1u8; 32];
        for secret in [
            hex::encode(raw),
            b64.encode(raw),
            hex::encode(md5_of(&raw)),
            right.md5().to_string(),
            hex::encode(data.secret()),
        ] {
            assert!(!w.contains(&secret), "{secret} in {w}");
        }
        // two wraps of one key under one client key differ (fresh salt and nonce)
        assert_ne!(right.wrap(&data), w);
        // a tampered wrap does not open, even with the right key
        let mut bad = w.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        assert!(matches!(right.unwrap(&bad), Err(SealError::BadWrap)));
        // fingerprints: salted, matched only by their key
        let f = right.fingerprint();
        assert_ne!(f, right.fingerprint());
        assert!(right.matches(&f));
        assert!(!key(2).matches(&f));
        assert!(!right.matches("nonsense"));
    }
}
