//! Encrypted buckets in the core (docs/encryption.md): which writes are sealed (the bucket's
//! `encryption` setting, or a key the S3 client brings: SSE-C), opening a file's sealed bytes
//! for positional and streamed reads, and the one error a failed segment becomes (logged,
//! never wrong bytes). An SSE-C file opens only with its client's key: every read without
//! it (WebDAV, share links, zips, the app, replication) is refused here, never served sealed.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::{Caller, Download, Entry, Source, VPath, Vfs, VfsError};
use crate::seal::{self, customer, Cipher, CustomerKey, DataKey, SealError};

/// What an SSE-C request lacks (`VfsError::CustomerKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyNeed {
    /// The file opens only with its S3 client's key, and none came.
    Missing,
    /// A key came, not the one the file (or the upload) was stored with.
    Wrong,
    /// A key came for a file (or an upload) stored without one.
    Unexpected,
}

impl std::fmt::Display for KeyNeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyNeed::Missing => "the file is encrypted with a key its S3 client keeps (SSE-C): only an S3 request carrying that key reads it",
            KeyNeed::Wrong => "the SSE-C key is not the one the object was stored with",
            KeyNeed::Unexpected => "the object was not stored with an SSE-C key: send none",
        })
    }
}

/// The S3 client's keys of a copy (SSE-C): the source's, and the copy's own.
pub type CopyKeys<'a> = (Option<&'a CustomerKey>, Option<&'a CustomerKey>);

/// Whether a file recorded with `sealed` opens only with its S3 client's key (SSE-C).
pub fn needs_customer_key(sealed: Option<&str>) -> bool {
    sealed.is_some_and(customer::is_customer)
}

/// Fails unless `key` is what a file (or upload) recorded with `sealed` (an SSE-C form or
/// fingerprint when `sse_c`) asks for: its own key when it has one, none otherwise.
fn key_fits(sse_c: Option<&str>, key: Option<&CustomerKey>) -> Result<(), VfsError> {
    match (sse_c, key) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(VfsError::CustomerKey(KeyNeed::Unexpected)),
        (Some(_), None) => Err(VfsError::CustomerKey(KeyNeed::Missing)),
        (Some(f), Some(k)) if k.matches(f) => Ok(()),
        (Some(_), Some(_)) => Err(VfsError::CustomerKey(KeyNeed::Wrong)),
    }
}

impl Entry {
    /// Whether the file opens only with its S3 client's key (SSE-C).
    pub fn needs_customer_key(&self) -> bool {
        needs_customer_key(self.sealed.as_deref())
    }
}

/// The bucket setting that makes a bucket's new files sealed (value: `AES256`).
pub const ENCRYPTION: &str = "encryption";
/// The one algorithm (S3's name for it).
pub const AES256: &str = "AES256";

/// Appended to a file's wrapped key while a conversion (`kura encryption enable`/`disable`)
/// switches its bytes: the stored file may then be in either form, told apart by its length
/// (a sealed file is always longer than its plaintext).
pub(super) const EITHER: &str = "~either";

/// The wrapped key of a recorded form, without a conversion's mark.
pub(super) fn key_of(sealed: &str) -> &str {
    sealed.strip_suffix(EITHER).unwrap_or(sealed)
}

/// The stored lengths a file of `size` plaintext bytes recorded with `sealed` may have (two
/// while a conversion switches it).
pub(super) fn stored_lens(size: u64, sealed: Option<&str>) -> Vec<u64> {
    match sealed {
        None => vec![size],
        Some(s) if s.ends_with(EITHER) => vec![seal::sealed_len(size), size],
        Some(_) => vec![seal::sealed_len(size)],
    }
}

/// The form of bytes found `len` long, for a file recorded with `sealed`.
pub(super) fn found_form(size: u64, sealed: Option<&str>, len: u64) -> Option<&str> {
    match sealed {
        Some(s) if s.ends_with(EITHER) && len == size => None,
        s => s,
    }
}

/// The form, without a conversion's mark, of bytes found `len` long for a file of `size`
/// plaintext bytes recorded with `sealed`; `None` when `len` fits no form it may have.
pub(super) fn settled_form(size: u64, sealed: Option<&str>, len: u64) -> Option<Option<&str>> {
    stored_lens(size, sealed)
        .contains(&len)
        .then(|| found_form(size, sealed, len).map(key_of))
}

/// The form (the wrapped key without a conversion's mark; `None`: plain) of stored bytes
/// `len` long beginning with `head`, for an object of `size` plaintext bytes recorded with
/// `sealed`; `None` when they are not bytes that record names (sealed ones by the file id of
/// their header). A backup tells by it kept bytes a conversion switched from other bytes.
pub fn stored_form(
    size: u64,
    sealed: Option<&str>,
    len: u64,
    head: &[u8],
) -> Option<Option<String>> {
    match settled_form(size, sealed, len)? {
        None => Some(None),
        Some(w) => {
            let id = seal::header_file_id(head).map(hex::encode);
            (id.as_deref() == seal::wrapped_file_id(w)).then(|| Some(w.to_string()))
        }
    }
}

/// Plaintext bytes opened per read of a stream (4 segments, one `wire::PIECE`): what a
/// download holds ahead of its client.
const WINDOW: u64 = crate::wire::PIECE as u64;

/// A sealed file that does not open: tampered, truncated, or its key is missing.
pub(super) fn seal_err(e: SealError) -> VfsError {
    tracing::error!(error = %e, "sealed bytes do not open");
    VfsError::from(opendal::Error::new(
        opendal::ErrorKind::Unexpected,
        e.to_string(),
    ))
}

impl Source {
    /// The stored bytes of `range` as they are.
    pub(super) async fn read(&self, range: Range<u64>) -> Result<Bytes, VfsError> {
        match self {
            Source::Store(r) => Ok(r.read(range).await?.to_bytes()),
            Source::Disk(f) => f
                .read_at(range.start, (range.end - range.start) as usize)
                .await
                .map_err(super::storage::io_err),
        }
    }
}

/// The plaintext of `range` of a sealed file of `plain` bytes: only the segments it touches
/// are read and opened.
pub(super) async fn read_sealed(
    source: &Source,
    cipher: &Cipher,
    range: Range<u64>,
    plain: u64,
) -> Result<Bytes, VfsError> {
    let Some(plan) = seal::plan(range, plain) else {
        return Ok(Bytes::new());
    };
    let stored = source.read(plan.stored.clone()).await?;
    cipher
        .open_range(&plan, plain, &stored)
        .map(Bytes::from)
        .map_err(seal_err)
}

/// Ranges of at most this many bytes are opened at once, before the answer: a tampered small
/// file is an error before any byte is promised, at the cost of holding at most this much.
const OPENED_FIRST: u64 = 16 * 1024;

/// The plaintext of `range` as a stream, opened a window at a time as it is polled, so that a
/// client that stops reading holds no window beyond the one in hand (the listener's read-ahead
/// budget counts those); a range of at most `OPENED_FIRST` bytes is opened now, so that a
/// segment that does not open there is an error before any byte is promised (a larger one
/// fails mid-body, when the window is reached).
pub(super) async fn stream_sealed(
    source: Source,
    cipher: Arc<Cipher>,
    range: Range<u64>,
    plain: u64,
) -> Result<Chunks, VfsError> {
    let end = range.end.min(plain);
    let mut pos = range.start;
    let mut first = None;
    if pos < end && end - pos <= OPENED_FIRST {
        first = Some(read_sealed(&source, &cipher, pos..end, plain).await?);
        pos = end;
    }
    let rest = futures_util::stream::try_unfold(
        (source, cipher, pos),
        move |(source, cipher, pos)| async move {
            if pos >= end {
                return Ok(None);
            }
            let until = window_end(pos, end);
            let bytes = read_sealed(&source, &cipher, pos..until, plain)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Some((bytes, (source, cipher, until))))
        },
    );
    Ok(Chunks {
        first,
        rest: std::sync::Mutex::new(Box::pin(rest)),
    })
}

/// Where the window of segments read from `pos` ends (at most `end`): windows start on a
/// segment edge after the first, so that no segment is opened twice.
fn window_end(pos: u64, end: u64) -> u64 {
    ((pos / seal::SEGMENT) * seal::SEGMENT + WINDOW).min(end)
}

/// The plaintext windows of a sealed stream: a small range opened already, or the windows.
pub(super) struct Chunks {
    first: Option<Bytes>,
    /// In a mutex only to be `Sync` as bodies must be (reached through `&mut`, never locked).
    rest: std::sync::Mutex<Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>>,
}

impl futures_util::Stream for Chunks {
    type Item = std::io::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(b)));
        }
        let rest = self.rest.get_mut().unwrap_or_else(|e| e.into_inner());
        rest.as_mut().poll_next(cx)
    }
}

impl Vfs {
    /// Fails unless `key` is what the file `e` needs: the key it was stored with for an SSE-C
    /// file (`Missing`, `Wrong`), none for any other (`Unexpected`). Folders need none.
    pub fn check_customer_key(e: &Entry, key: Option<&CustomerKey>) -> Result<(), VfsError> {
        if e.is_dir {
            return Ok(());
        }
        key_fits(
            e.sealed.as_deref().filter(|s| customer::is_customer(s)),
            key,
        )
    }

    /// Fails unless `key` is what the multipart upload `u` was started with (its parts and its
    /// completion come with the same SSE-C key, or all without).
    pub(super) fn check_upload_key(
        u: &crate::store::UploadRow,
        key: Option<&CustomerKey>,
    ) -> Result<(), VfsError> {
        key_fits(u.customer_key.as_deref(), key)
    }

    /// Whether new files of `bucket` are sealed: its owner or an administrator asks.
    pub async fn bucket_encrypted(&self, c: &Caller, bucket: &VPath) -> Result<bool, VfsError> {
        Ok(self.bucket_setting(c, bucket, ENCRYPTION).await?.is_some())
    }

    /// Seals (`true`) or stops sealing the new files of `bucket`: its owner or an
    /// administrator. Files already stored keep their form (`kura encryption enable`
    /// converts them).
    pub async fn set_bucket_encrypted(
        &self,
        c: &Caller,
        bucket: &VPath,
        on: bool,
    ) -> Result<(), VfsError> {
        if on {
            // the master key is made (or its absence found) now, not at the first write
            self.new_data_key().await?;
        }
        let value = on.then_some(AES256);
        self.set_bucket_setting(c, bucket, ENCRYPTION, value).await
    }

    /// A bucket just made is encrypted when the server's default says so.
    pub(super) async fn default_encryption(&self, path: &VPath) -> Result<(), VfsError> {
        let on = self.keys.as_ref().is_some_and(|k| k.default_on);
        if on && path.parent().is_root() {
            self.new_data_key().await?;
            self.store
                .set_bucket_setting(path.as_str(), ENCRYPTION, Some(AES256))
                .await?;
        }
        Ok(())
    }

    /// The data key (and its wrapped form to record) for a new file at `path`: wrapped by the
    /// client's `key` when one came (SSE-C, whatever the bucket's setting), else by the
    /// master key when the bucket is encrypted; `None`: stored plain.
    pub(super) async fn sealing_for(
        &self,
        path: &VPath,
        key: Option<&CustomerKey>,
    ) -> Result<Option<(DataKey, String)>, VfsError> {
        if let Some(k) = key {
            let data = DataKey::random();
            let wrapped = k.wrap(&data);
            return Ok(Some((data, wrapped)));
        }
        let Some(bucket) = Vfs::bucket_of(path) else {
            return Ok(None);
        };
        if self
            .store
            .bucket_setting(bucket.as_str(), ENCRYPTION)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.new_data_key().await.map(Some)
    }

    /// A new data key wrapped by the current master key (made on first need, unless files are
    /// sealed already: then the key is lost, not new, see `check_master_key`).
    pub(super) async fn new_data_key(&self) -> Result<(DataKey, String), VfsError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| seal_err(SealError::Master("key".into(), "no key ring".into())))?;
        if !keys.holds_current() {
            self.check_not_lost().await?;
        }
        keys.new_data_key().map_err(seal_err)
    }

    /// Fails when no master key is held while files (or versions, or waiting upload parts)
    /// are sealed: the key was lost or not put back after a restore, and the key made on first
    /// need would silently open none of them. Checked before a key is made.
    async fn check_not_lost(&self) -> Result<(), VfsError> {
        let Some(keys) = self.keys.as_ref().filter(|k| !k.holds_current()) else {
            return Ok(());
        };
        match self.store.any_wrapping_key().await? {
            Some(kid) => Err(seal_err(SealError::Lost(keys.source_name(), kid))),
            None => Ok(()),
        }
    }

    /// Fails unless the master keys held open the data keys recorded: none may be missing
    /// (`Lost`), and every master key a data key names must be the current one or a retired
    /// one (otherwise the key put in place is the wrong one, or damaged: `Wrong`). One data
    /// key per master key is opened; one that does not open with the key it names is a
    /// damaged record, logged, not a wrong key (that file fails alone, as any tampered one).
    /// Checked at start and before a rotation, so that a wrong key stops the server at once
    /// instead of failing every read.
    pub async fn check_master_key(&self) -> Result<(), VfsError> {
        self.check_not_lost().await?;
        let Some(keys) = self.keys.as_ref() else {
            return Ok(());
        };
        let Some(current) = keys.held_current_id() else {
            return Ok(()); // nothing recorded (else `check_not_lost` failed): made on first need
        };
        for (kid, wrapped) in self.store.one_wrapped_per_key().await? {
            match keys.unwrap(key_of(&wrapped)) {
                Ok(_) => {}
                Err(SealError::UnknownKey(_)) => {
                    return Err(seal_err(SealError::Wrong(keys.source_name(), current, kid)));
                }
                Err(e) => tracing::error!(
                    master_key = %kid,
                    file_id = seal::wrapped_file_id(&wrapped).unwrap_or("?"),
                    error = %e,
                    "a recorded data key does not open with the master key it names: that \
                     file's record is damaged (the key itself is the right one)"
                ),
            }
        }
        Ok(())
    }

    /// The cipher of a file whose row holds `wrapped`: an SSE-C form opens only with the
    /// client's `key`.
    pub(super) fn cipher_of(
        &self,
        wrapped: &str,
        key: Option<&CustomerKey>,
    ) -> Result<Arc<Cipher>, VfsError> {
        if customer::is_customer(wrapped) {
            let k = key.ok_or(VfsError::CustomerKey(KeyNeed::Missing))?;
            let data = k.unwrap(wrapped).map_err(|e| match e {
                SealError::WrongCustomerKey => VfsError::CustomerKey(KeyNeed::Wrong),
                e => seal_err(e),
            })?;
            return Ok(Arc::new(Cipher::new(&data)));
        }
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| seal_err(SealError::UnknownKey("(none loaded)".into())))?;
        let k = keys.unwrap(key_of(wrapped)).map_err(seal_err)?;
        Ok(Arc::new(Cipher::new(&k)))
    }

    /// A download of `source` holding a file of `size` plaintext bytes recorded with `sealed`
    /// (`key`: the client's, for an SSE-C file).
    pub(super) fn download(
        &self,
        source: Source,
        size: u64,
        (sealed, key): (Option<&str>, Option<&CustomerKey>),
    ) -> Result<Download, VfsError> {
        Ok(Download {
            source,
            size,
            cipher: sealed.map(|w| self.cipher_of(w, key)).transpose()?,
        })
    }
}

impl Vfs {
    /// Whether a copy of the file `src` to `to` lands in a bucket storing files in the other
    /// form (sealed or plain) than `src`'s bytes. An SSE-C file keeps its form anywhere: its
    /// sealed bytes are copied as they are, and the copy opens with the same client's key.
    pub(super) async fn copy_changes_form(
        &self,
        src: &super::Entry,
        to: &VPath,
    ) -> Result<bool, VfsError> {
        if src.is_dir || src.needs_customer_key() || Vfs::bucket_of(&src.path) == Vfs::bucket_of(to)
        {
            return Ok(false);
        }
        let sealed_there = match Vfs::bucket_of(to) {
            Some(b) => self
                .store
                .bucket_setting(b.as_str(), ENCRYPTION)
                .await?
                .is_some(),
            None => false,
        };
        Ok(sealed_there != src.sealed.is_some())
    }

    /// Whether a copy of the folder `src` to `to` lands in an encrypted bucket (another one)
    /// with plain files below it: nothing lands plain there, so those are sealed on the way.
    pub(super) async fn copy_tree_must_seal(
        &self,
        src: &super::Entry,
        to: &VPath,
    ) -> Result<bool, VfsError> {
        let target = match Vfs::bucket_of(to) {
            Some(b) if src.is_dir && Vfs::bucket_of(&src.path) != Some(b.clone()) => b,
            _ => return Ok(false),
        };
        if self
            .store
            .bucket_setting(target.as_str(), ENCRYPTION)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        let rows = self.store.subtree(src.path.as_str()).await?;
        Ok(rows.iter().any(|r| !r.is_dir && r.sealed.is_none()))
    }

    /// Copies the folder `src` to `to` (checked as a copy) folder by folder and file by file,
    /// each file as a copy of it alone would be (a plain one sealed by the target bucket's
    /// setting); on a failure what was made is removed again.
    pub(super) async fn copy_tree_through(
        &self,
        c: &Caller,
        src: &super::Entry,
        to: &VPath,
    ) -> Result<(), VfsError> {
        self.mkdir(c, to).await?;
        let cut = src.path.as_str().len();
        let made = async {
            for r in self.store.subtree(src.path.as_str()).await? {
                let dest = VPath::parse(&format!("{to}{}", r.path.get(cut..).unwrap_or("")))?;
                if r.is_dir {
                    self.mkdir(c, &dest).await?;
                } else {
                    let from = VPath::parse(&r.path)?;
                    Box::pin(self.copy(c, &from, &dest)).await?;
                }
            }
            Ok(())
        }
        .await;
        if made.is_err() {
            let rules = crate::store::DeleteRules::default();
            if let Err(e) = self.delete_checked(c, to, rules, false).await {
                tracing::warn!(path = %to, error = %e, "a refused copy left a partial folder");
            }
        }
        made
    }

    /// Copies the file `src` to `to` as an upload of its plaintext (the checks of the copy
    /// were made; the upload makes those of any write): read with the client's key `from` of
    /// an SSE-C source, sealed with its key `into` (SSE-C) or by the target bucket's setting.
    pub(super) async fn copy_through(
        &self,
        c: &Caller,
        src: &super::Entry,
        to: &VPath,
        create_parents: bool,
        (from, into): CopyKeys<'_>,
    ) -> Result<(), VfsError> {
        use futures_util::TryStreamExt;
        let download = self.open_entry(c, src, from).await?;
        let opts = super::UploadOptions {
            create_parents,
            expected_size: Some(src.size),
            content_type: Some(src.content_type.clone()),
            headers: src.headers.clone(),
            customer_key: into.cloned(),
            ..Default::default()
        };
        let mut up = self.upload(c, to, opts).await?;
        let mut body = Box::pin(download.into_stream(0..src.size).await?);
        while let Some(chunk) = body.try_next().await.map_err(super::storage::io_err)? {
            up.write(chunk).await?;
        }
        up.commit().await.map(|_| ())
    }
}

/// What `kura encryption rotate` did.
#[derive(Debug, Default)]
pub struct Rotation {
    /// The new current master key.
    pub new_key: String,
    /// Data keys rewrapped.
    pub rewrapped: u64,
    /// Retired master keys removed (nothing is wrapped by them any more).
    pub forgotten: Vec<String>,
    /// Retired master keys kept: still wrapping keys that could not be rewrapped (a running
    /// server wrapped new files with its old current key meanwhile; run again after a restart).
    pub kept: Vec<String>,
}

/// Data keys rewrapped per transaction.
const REWRAP_BATCH: i64 = 500;

impl Vfs {
    /// Rotates the master key: a new one becomes current, every data key wrapped by an older
    /// one is rewrapped by it (in transactions of a few hundred, each re-checked), and the
    /// older keys are removed once nothing is wrapped by them. Killed half way, running it
    /// again finishes the work (the older keys stay until then). Stored bytes are not touched.
    pub async fn rotate_master_key(&self, progress: impl Fn(u64)) -> Result<Rotation, VfsError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| seal_err(SealError::Master("key".into(), "no key ring".into())))?;
        self.check_master_key().await?;
        let (_, new_key) = keys.rotate(None).map_err(seal_err)?;
        let mut out = Rotation {
            new_key: new_key.clone(),
            ..Default::default()
        };
        for kid in keys.ids().into_iter().filter(|k| *k != new_key) {
            loop {
                let batch = self.store.wrapped_by(&kid, REWRAP_BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                let mut changes = Vec::with_capacity(batch.len());
                for w in batch {
                    let k = keys.unwrap(key_of(&w.sealed)).map_err(seal_err)?;
                    let mut new = keys.wrap(&k).map_err(seal_err)?;
                    if w.sealed.ends_with(EITHER) {
                        new.push_str(EITHER);
                    }
                    changes.push((w, new));
                }
                let n = self.store.rewrap(&changes).await?;
                out.rewrapped += n;
                progress(out.rewrapped);
                if n == 0 {
                    break;
                }
            }
            if self.store.wrapped_by(&kid, 1).await?.is_empty() {
                keys.forget_retired(&kid).map_err(super::storage::io_err)?;
                out.forgotten.push(kid);
            } else {
                out.kept.push(kid);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    use super::super::{Caller, UploadOptions, VPath, Vfs};
    use super::{ENCRYPTION, WINDOW};
    use crate::config::EncryptionSettings;
    use crate::seal::{segment_offset, SEGMENT};

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A core on `fs` whose bucket /sec is encrypted.
    async fn setup() -> (tempfile::TempDir, Vfs) {
        let (dir, v) = super::super::tests::fs_vfs().await;
        let keys = crate::seal::KeyRing::load(dir.path(), &EncryptionSettings::default()).unwrap();
        let v = v.with_keys(keys);
        v.mkdir(&Caller::admin("root"), &p("/sec")).await.unwrap();
        v.set_bucket_encrypted(&Caller::admin("root"), &p("/sec"), true)
            .await
            .unwrap();
        assert!(v
            .store
            .bucket_setting("/sec", ENCRYPTION)
            .await
            .unwrap()
            .is_some());
        (dir, v)
    }

    async fn put(v: &Vfs, path: &str, body: &[u8]) {
        let root = Caller::admin("root");
        let mut up = v
            .upload(&root, &p(path), UploadOptions::default())
            .await
            .unwrap();
        up.write(Bytes::copy_from_slice(body)).await.unwrap();
        up.commit().await.unwrap();
    }

    /// The body of a streamed read of `range`, or where it failed: at the open (before any
    /// byte, `Err(None)`) or after `Some(n)` bytes.
    async fn stream(
        v: &Vfs,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, Option<usize>> {
        let (_, dl) = v.open_read(&Caller::admin("root"), &p(path)).await.unwrap();
        let mut body = Box::pin(dl.into_stream(range).await.map_err(|_| None)?);
        let mut out = Vec::new();
        loop {
            match body.try_next().await {
                Ok(Some(b)) => out.extend_from_slice(&b),
                Ok(None) => return Ok(out),
                Err(_) => return Err(Some(out.len())),
            }
        }
    }

    fn flip(dir: &tempfile::TempDir, name: &str, at: u64) {
        let f = dir.path().join("files").join(name);
        let mut b = std::fs::read(&f).unwrap();
        b[at as usize] ^= 1;
        std::fs::write(&f, b).unwrap();
    }

    #[tokio::test]
    async fn a_streamed_read_gives_every_range_and_a_tampered_segment_never_gives_its_bytes() {
        let (dir, v) = setup().await;
        let small = pattern(4096);
        // past two windows, so that windows after the first are read as the stream is polled
        let big = pattern((2 * WINDOW + 3 * SEGMENT + 100) as usize);
        put(&v, "/sec/small", &small).await;
        put(&v, "/sec/big", &big).await;
        let disk = std::fs::read(dir.path().join("files/sec/small")).unwrap();
        assert_eq!(
            disk.len() as u64,
            crate::seal::sealed_len(4096),
            "stored sealed"
        );
        assert_eq!(stream(&v, "/sec/small", 0..4096).await.unwrap(), small);
        assert_eq!(
            stream(&v, "/sec/small", 10..20).await.unwrap(),
            &small[10..20]
        );
        let n = big.len() as u64;
        for r in [
            0..n,
            WINDOW - 1..WINDOW + 1,
            SEGMENT + 5..2 * WINDOW + 7,
            n - 3..n,
        ] {
            let want = &big[r.start as usize..r.end as usize];
            assert_eq!(
                stream(&v, "/sec/big", r.clone()).await.unwrap(),
                want,
                "{r:?}"
            );
        }
        // a flipped byte in a small file: an error at the open, before any byte is promised
        flip(&dir, "sec/small", segment_offset(0) + 100);
        assert_eq!(stream(&v, "/sec/small", 0..4096).await, Err(None));
        assert_eq!(stream(&v, "/sec/small", 0..1).await, Err(None));
        // a flipped byte in the big file's third window: its first two windows are sent, then
        // the stream fails, never with the tampered window's bytes
        let seg = 2 * WINDOW / SEGMENT + 1;
        flip(&dir, "sec/big", segment_offset(seg) + 9);
        assert_eq!(
            stream(&v, "/sec/big", 0..n).await,
            Err(Some(2 * WINDOW as usize))
        );
        // a range before it still reads; one starting in the tampered window fails before any
        // of its bytes (at the open if small, else at its first window)
        assert_eq!(
            stream(&v, "/sec/big", 0..WINDOW).await.unwrap(),
            &big[..WINDOW as usize]
        );
        assert_eq!(stream(&v, "/sec/big", 2 * WINDOW..n).await, Err(Some(0)));
        let small_range = 2 * WINDOW + SEGMENT..2 * WINDOW + SEGMENT + 100;
        assert_eq!(stream(&v, "/sec/big", small_range).await, Err(None));
    }
}
