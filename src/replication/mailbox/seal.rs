//! What the owner of a replication mailbox may not read: every key derives (HKDF-SHA256) from
//! the secret the two nodes share. Names are HMACs (a channel per bucket, a body per content),
//! so no file or bucket name shows; letters and acknowledgements are sealed whole with
//! XChaCha20-Poly1305, their object name as associated data (a letter moved to another seq,
//! channel or node fails to open); bodies are sealed in 64 KiB segments in the format of
//! encrypted buckets (`crate::seal`) under a key derived from their name, streamed both ways,
//! and checked against their name (an HMAC of the plaintext) before anything commits.

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use futures_util::{Stream, TryStreamExt};
use rand::RngCore;
use ring::{hkdf, hmac};

use crate::seal::{self, Cipher, DataKey, Sealer};

/// The start of every sealed letter (format version 1).
const MAGIC: &[u8; 8] = b"KURAMBX1";
/// XChaCha20's nonce.
const NONCE: usize = 24;
/// Sealed letters are padded to a multiple of this, so their size tells little of the name.
const PAD: usize = 1024;

/// The keys of one mailbox.
pub struct Keys {
    names: hmac::Key,
    bodies: hmac::Key,
    letters: XChaCha20Poly1305,
}

/// 32 bytes of HKDF output.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Keys {
    /// The keys derived from the shared `secret`.
    pub fn derive(secret: &str) -> Keys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"kura-mailbox-v1").extract(secret.as_bytes());
        let expand = |info: &'static [u8]| {
            let mut k = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's limit (8160): neither step can fail
            let info = [info];
            if let Ok(okm) = prk.expand(&info, Len32) {
                let _ = okm.fill(&mut k);
            }
            k
        };
        Keys {
            names: hmac::Key::new(hmac::HMAC_SHA256, &expand(b"names")),
            bodies: hmac::Key::new(hmac::HMAC_SHA256, &expand(b"bodies")),
            letters: XChaCha20Poly1305::new(&expand(b"letters").into()),
        }
    }

    /// The channel a bucket's changes travel in (32 hex digits, the bucket's name hidden).
    pub fn channel(&self, bucket: &str) -> String {
        let tag = hmac::sign(&self.names, format!("channel\0{bucket}").as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }

    /// Starts the name of a body: an HMAC of its plaintext (64 hex digits).
    pub fn body_name(&self) -> BodyName {
        BodyName(hmac::Context::with_key(&self.names))
    }

    /// The data key of the body `name` (its segments are sealed under it).
    fn body_key(&self, name: &str) -> DataKey {
        let secret = hmac::sign(&self.bodies, format!("key\0{name}").as_bytes());
        let id = hmac::sign(&self.bodies, format!("id\0{name}").as_bytes());
        let mut s = [0u8; 32];
        s.copy_from_slice(&secret.as_ref()[..32]);
        let mut f = [0u8; 16];
        f.copy_from_slice(&id.as_ref()[..16]);
        DataKey::from_parts(s, f)
    }

    /// Seals a letter (JSON) stored under `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(plain.len() + PAD + 4);
        msg.extend_from_slice(&(plain.len() as u32).to_be_bytes());
        msg.extend_from_slice(plain);
        msg.resize(msg.len().div_ceil(PAD) * PAD, 0);
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(name);
        // sealing fails only past XChaCha20's length limit, far above a letter
        let sealed = self
            .letters
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &msg,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a letter read from `name`; None when it was not sealed there with this key.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(MAGIC)?;
        if rest.len() < NONCE {
            return None;
        }
        let (nonce, ct) = rest.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        let aad = aad(name);
        let msg = self
            .letters
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .ok()?;
        let len = u32::from_be_bytes(msg.get(..4)?.try_into().ok()?) as usize;
        msg.get(4..4 + len).map(<[u8]>::to_vec)
    }

    /// Seals a body named `name` (see `body_name`) as it streams.
    pub fn body_sealer(&self, name: &str) -> Sealer {
        Sealer::new(&self.body_key(name))
    }

    /// The plaintext of the body `name` of `size` bytes from its stored bytes, segment by
    /// segment; any segment that fails to open, a file id that is not the name's, bytes
    /// missing or in excess, or a plaintext whose HMAC is not its name end the stream with
    /// `InvalidData` (a missing object too: the mailbox is expected to hold it).
    pub fn open_body<S>(
        &self,
        name: &str,
        size: u64,
        stored: S,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let key = self.body_key(name);
        let opener = Opener {
            file_id: key.file_id(),
            cipher: Cipher::new(&key),
            plain: size,
            index: 0,
            header: false,
            buf: Vec::new(),
            name: name.to_string(),
            mac: self.body_name(),
        };
        let state = (stored, Some(opener), std::collections::VecDeque::new());
        Box::pin(futures_util::stream::try_unfold(
            state,
            |(mut stored, mut opener, mut ready)| async move {
                loop {
                    if let Some(b) = ready.pop_front() {
                        return Ok(Some((b, (stored, opener, ready))));
                    }
                    let Some(o) = opener.as_mut() else {
                        return Ok(None);
                    };
                    let chunk = stored.try_next().await.map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            bad("the body is missing from the mailbox")
                        } else {
                            e
                        }
                    })?;
                    match chunk {
                        Some(c) => ready.extend(o.push(&c)?),
                        None => {
                            if let Some(o) = opener.take() {
                                o.finish()?;
                            }
                        }
                    }
                }
            },
        ))
    }
}

/// The associated data of an object: its name in the mailbox, with the format.
fn aad(name: &str) -> Vec<u8> {
    let mut a = MAGIC.to_vec();
    a.extend_from_slice(name.as_bytes());
    a
}

fn bad(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

/// An HMAC of a body's plaintext, fed as it streams.
pub struct BodyName(hmac::Context);

impl BodyName {
    /// Feeds plaintext.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The name (64 hex digits).
    pub fn finish(self) -> String {
        hex::encode(self.0.sign().as_ref())
    }
}

/// Opens a body's segments as their stored bytes arrive, holding at most one segment.
struct Opener {
    file_id: [u8; 16],
    cipher: Cipher,
    plain: u64,
    index: u64,
    header: bool,
    buf: Vec<u8>,
    name: String,
    mac: BodyName,
}

impl Opener {
    /// Stored bytes of segment `i` (its plaintext plus the tag).
    fn stored_len(&self, i: u64) -> usize {
        ((self.plain - (i * seal::SEGMENT).min(self.plain)).min(seal::SEGMENT) + seal::TAG) as usize
    }

    fn push(&mut self, mut data: &[u8]) -> std::io::Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let segments = seal::segments(self.plain);
        while !data.is_empty() {
            let want = if !self.header {
                seal::HEADER as usize
            } else if self.index < segments {
                self.stored_len(self.index)
            } else {
                return Err(bad("the body is longer than its letter says"));
            };
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < want {
                break;
            }
            if !self.header {
                if seal::header_file_id(&self.buf) != Some(self.file_id) {
                    return Err(bad("the body is not the one its name says"));
                }
                self.header = true;
            } else {
                let last = self.index + 1 == segments;
                let plain = self
                    .cipher
                    .open(self.index, last, &self.buf)
                    .map_err(|_| bad("a segment of the body fails to open"))?;
                self.mac.update(&plain);
                self.index += 1;
                if !plain.is_empty() {
                    out.push(Bytes::from(plain));
                }
            }
            self.buf.clear();
        }
        Ok(out)
    }

    fn finish(self) -> std::io::Result<()> {
        if !self.header || self.index < seal::segments(self.plain) || !self.buf.is_empty() {
            return Err(bad("the body is cut short"));
        }
        if self.mac.finish() != self.name {
            return Err(bad("the body's content is not the one its name says"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_body(k: &Keys, data: &[u8]) -> (String, Vec<u8>) {
        let mut n = k.body_name();
        n.update(data);
        let name = n.finish();
        let mut s = k.body_sealer(&name);
        let mut out = Vec::new();
        for c in data.chunks(10_000) {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        (name, out)
    }

    async fn open_all(
        k: &Keys,
        name: &str,
        size: u64,
        stored: &[u8],
        chunk: usize,
    ) -> std::io::Result<Vec<u8>> {
        let chunks: Vec<std::io::Result<Bytes>> = stored
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let s = k.open_body(name, size, futures_util::stream::iter(chunks));
        let parts: Vec<Bytes> = s.try_collect().await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn bodies_round_trip_whatever_the_chunking() {
        let k = Keys::derive("a shared secret of the two nodes, long enough");
        for n in [0usize, 1, 65536, 65537, 200_000] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let (name, stored) = sealed_body(&k, &data);
            assert_eq!(stored.len() as u64, seal::sealed_len(n as u64));
            for chunk in [1, 7, 65552, 1 << 20] {
                let got = open_all(&k, &name, n as u64, &stored, chunk).await.unwrap();
                assert_eq!(got, data, "n={n} chunk={chunk}");
            }
        }
    }

    #[tokio::test]
    async fn altered_bodies_are_refused() {
        let k = Keys::derive("a shared secret of the two nodes, long enough");
        let data = b"KNOWN PATTERN ".repeat(10_000);
        let (name, stored) = sealed_body(&k, &data);
        assert!(!stored.windows(14).any(|w| w == b"KNOWN PATTERN "));
        let n = data.len() as u64;
        let refused = |r: std::io::Result<Vec<u8>>| {
            r.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidData)
        };
        let mut flipped = stored.clone();
        flipped[70_000] ^= 1;
        assert!(refused(open_all(&k, &name, n, &flipped, 4096).await));
        assert!(refused(
            open_all(&k, &name, n, &stored[..stored.len() - 1], 4096).await
        ));
        let mut longer = stored.clone();
        longer.push(0);
        assert!(refused(open_all(&k, &name, n, &longer, 4096).await));
        // another body of the same mailbox under this one's name
        let (_, other) = sealed_body(&k, b"something else");
        assert!(refused(open_all(&k, &name, 14, &other, 4096).await));
        // the right bytes under another key
        let stranger = Keys::derive("another pair's secret, just as long as that");
        assert!(refused(open_all(&stranger, &name, n, &stored, 4096).await));
        // a name that is not the plaintext's HMAC (same key derivation, other content)
        let wrong = "0".repeat(64);
        assert!(refused(open_all(&k, &wrong, n, &stored, 4096).await));
    }

    #[test]
    fn letters_open_only_under_their_own_name_and_key() {
        let k = Keys::derive("a shared secret of the two nodes, long enough");
        let name = "node-a/0123/j/00000000000000000001";
        let letter = br#"{"key":"photos/holiday.jpg"}"#;
        let sealed = k.seal(name, letter);
        assert_eq!((sealed.len() - MAGIC.len() - NONCE - 16) % PAD, 0);
        assert!(!sealed.windows(7).any(|w| w == b"holiday"));
        assert_eq!(k.open(name, &sealed).as_deref(), Some(&letter[..]));
        assert_eq!(k.open("node-a/0123/j/00000000000000000002", &sealed), None);
        let mut flipped = sealed.clone();
        flipped[40] ^= 1;
        assert_eq!(k.open(name, &flipped), None);
        assert_eq!(
            Keys::derive("another secret entirely, of the same length").open(name, &sealed),
            None
        );
        assert_eq!(k.open(name, &sealed[..20]), None);
        // two sealings of one letter differ (random nonces)
        assert_ne!(k.seal(name, letter), sealed);
        assert_ne!(k.channel("photos"), k.channel("photo"));
        assert_eq!(k.channel("photos").len(), 32);
    }
}
