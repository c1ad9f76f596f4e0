//! Image thumbnails and PDF pages for the app's previews: decoded server-side under hard
//! bounds (the file's size, the header's pixel count, the decoder's allocations; a PDF page in
//! a limited child process, `pdf_page`), EXIF orientation applied, and cached on disk by the
//! file's content (`preview_cache`, capped in size). Renders are shared fairly: two at once
//! for the whole server, one at a time per user, and nobody waits for a slot longer than
//! `SLOT_WAIT` (then `Busy`, a 503 with `Retry-After`); a file whose preview failed is
//! refused at once the next time, whatever its name, size or page asked.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::pdf_page::{self, PageError};
use super::preview_cache::{Failure, PreviewCache};
use crate::vfs::{Caller, Entry, VPath, Vfs, VfsError};

/// Largest source file read into memory to make a thumbnail.
pub const MAX_SOURCE_BYTES: u64 = super::MAX_PREVIEW_BYTES;

/// Most pixels an image's header may announce (a 12-megapixel photo is well below).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Most bytes the decoder may allocate for one image (50 Mpx of RGBA is 200 MB).
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Decodes and renders running at once, whoever asks.
const DECODES: usize = 2;

/// Longest wait for a render slot (the user's own, then one of the server's), after which
/// the request is answered `Busy`.
pub const SLOT_WAIT: Duration = Duration::from_secs(10);

/// Thumbnail edges the API serves; any other is refused so the cache stays small.
pub const SIZES: &[u32] = &[64, 128, 256, 512, 1024];

/// Why no thumbnail was made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// The core refused or failed (permission, not found, a folder, ...).
    #[error(transparent)]
    Vfs(#[from] VfsError),
    /// A size or page the request may not ask for.
    #[error("{0}")]
    Invalid(String),
    /// Not a JPEG, PNG, GIF or WebP image or a PDF, or one that does not decode or render.
    #[error("{0}")]
    Unsupported(String),
    /// The file or the image it announces is over the bounds.
    #[error("{0}")]
    TooLarge(String),
    /// No render slot came free within `SLOT_WAIT`: ask again after the given time.
    #[error("previews are busy; try again shortly")]
    Busy(Duration),
    /// The cache or the decoding thread failed.
    #[error("thumbnail failed: {0}")]
    Internal(String),
}

/// A finished thumbnail: its bytes, type and an ETag for caching in the browser.
pub struct Thumbnail {
    /// The encoded image.
    pub bytes: Bytes,
    /// `image/jpeg` or `image/png` (images with transparency, PDF pages).
    pub content_type: &'static str,
    /// Stable for one content, size and page.
    pub etag: String,
    /// A PDF's number of pages (`None` for an image).
    pub pages: Option<u32>,
}

impl From<PageError> for ThumbError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::NoSuchPage(m) => ThumbError::Invalid(m),
            PageError::Unreadable(m) => ThumbError::Unsupported(m),
            PageError::Internal(m) => ThumbError::Internal(m),
        }
    }
}

impl ThumbError {
    /// What a failure of the content itself is remembered as (not the server's faults).
    fn as_failure(&self) -> Option<Failure> {
        match self {
            ThumbError::Unsupported(m) => Some(Failure::Unsupported(m.clone())),
            ThumbError::TooLarge(m) => Some(Failure::TooLarge(m.clone())),
            ThumbError::Invalid(m) => Some(Failure::Invalid(m.clone())),
            _ => None,
        }
    }
}

impl From<Failure> for ThumbError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unsupported(m) => ThumbError::Unsupported(m),
            Failure::TooLarge(m) => ThumbError::TooLarge(m),
            Failure::Invalid(m) => ThumbError::Invalid(m),
        }
    }
}

/// The render slots: `DECODES` for the server, one per user.
struct Slots {
    server: Arc<Semaphore>,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A render slot held: the user's and the server's.
struct Held {
    slots: Arc<Slots>,
    user: String,
    mine: Option<OwnedSemaphorePermit>,
    _server: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut users = self.slots.users.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.mine.take());
        // nobody else holds or waits for this user's slot: forget it
        if users
            .get(&self.user)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            users.remove(&self.user);
        }
    }
}

impl Slots {
    /// The user's slot, then one of the server's, waiting at most `SLOT_WAIT` in all.
    async fn take(self: &Arc<Self>, user: &str) -> Result<Held, ThumbError> {
        let deadline = Instant::now() + SLOT_WAIT;
        let busy = || ThumbError::Busy(Duration::from_secs(2));
        let mine = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            users
                .entry(user.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let waited = tokio::time::timeout_at(deadline, mine.clone().acquire_owned()).await;
        drop(mine);
        let mine = match waited {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(ThumbError::Internal(e.to_string())),
            Err(_) => {
                self.forget_if_idle(user);
                return Err(busy());
            }
        };
        let held = |server| Held {
            slots: self.clone(),
            user: user.to_string(),
            mine: Some(mine),
            _server: server,
        };
        match tokio::time::timeout_at(deadline, self.server.clone().acquire_owned()).await {
            Ok(Ok(server)) => Ok(held(server)),
            Ok(Err(e)) => Err(ThumbError::Internal(e.to_string())),
            Err(_) => Err(busy()),
        }
    }

    fn forget_if_idle(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.get(user).is_some_and(|s| Arc::strong_count(s) == 1) {
            users.remove(user);
        }
    }
}

/// Makes and caches thumbnails.
#[derive(Clone)]
pub struct Thumbnailer {
    cache: Arc<PreviewCache>,
    slots: Arc<Slots>,
}

/// What names a file's content for the caches. A 32-digit ETag is the MD5 this server
/// computed of the bytes (a peer's or a multipart upload's has a `-`): it and the size name
/// the content wherever it lies, so a renamed or copied file finds its previews and one
/// failure counts for every copy. Any other ETag might be chosen by a writer, so the path
/// joins it and one file's preview never answers for another's.
fn content_id(entry: &Entry) -> String {
    let md5 = entry.etag.len() == 32 && entry.etag.bytes().all(|b| b.is_ascii_hexdigit());
    if md5 {
        format!("md5 {}\n{}", entry.etag.to_ascii_lowercase(), entry.size)
    } else {
        format!("path {}\n{}\n{}", entry.path, entry.etag, entry.size)
    }
}

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Thumbnailer {
    /// Thumbnails cached in `dir` (created when first needed), at most `cache_bytes` there
    /// (0: none written).
    pub fn new(dir: PathBuf, cache_bytes: u64) -> Self {
        Thumbnailer {
            cache: Arc::new(PreviewCache::new(dir, cache_bytes)),
            slots: Arc::new(Slots {
                server: Arc::new(Semaphore::new(DECODES)),
                users: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The thumbnail of `path` at most `edge` pixels on a side (of a PDF, its page `page`,
    /// from 1), read as `caller` through the core (read access decides).
    pub async fn thumbnail(
        &self,
        vfs: &Vfs,
        caller: &Caller,
        path: &VPath,
        edge: u32,
        page: u32,
    ) -> Result<Thumbnail, ThumbError> {
        if !SIZES.contains(&edge) {
            return Err(ThumbError::Invalid(format!("size is one of {SIZES:?}")));
        }
        if page == 0 {
            return Err(ThumbError::Invalid("pages are counted from 1".into()));
        }
        let (entry, download) = vfs.open_read(caller, path).await?;
        let content = content_id(&entry);
        let mut id = format!("{content}\n{edge}");
        if page > 1 {
            id.push_str(&format!("\npage {page}"));
        }
        let key = sha_hex(&id);
        // a failure is the content's (and the page's), whatever the size asked
        let failure_key = sha_hex(&format!("{content}\npage {page}"));
        let etag = key[..32].to_string();
        // an encrypted bucket's images are not written to disk in the clear: no cache
        let cache = entry.sealed.is_none() && self.cache.enabled();
        let (jpg, png, pdf) = (
            format!("{key}.jpg"),
            format!("{key}.png"),
            format!("{key}.pdfpage"),
        );
        if cache {
            if let Some(t) = self.cached(&jpg, &png, &pdf, page, &etag).await {
                return Ok(t);
            }
        }
        if let Some(f) = self.cache.failed(&failure_key) {
            return Err(f.into());
        }
        if entry.size > MAX_SOURCE_BYTES {
            return Err(ThumbError::TooLarge(format!(
                "files over {} MiB are not previewed",
                MAX_SOURCE_BYTES / 1024 / 1024
            )));
        }
        let _slot = self.slots.take(&caller.user).await?;
        // made or refused while this request waited for its slot
        if cache {
            if let Some(t) = self.cached(&jpg, &png, &pdf, page, &etag).await {
                return Ok(t);
            }
        }
        if let Some(f) = self.cache.failed(&failure_key) {
            return Err(f.into());
        }
        let made = self
            .make_one(
                download,
                entry.size,
                page,
                edge,
                etag,
                cache,
                (jpg, png, pdf),
            )
            .await;
        if let Some(f) = made.as_ref().err().and_then(ThumbError::as_failure) {
            self.cache.remember_failure(&failure_key, f);
        }
        made
    }

    /// The cached thumbnail (page 1 of an image) or PDF page, if there is one.
    async fn cached(
        &self,
        jpg: &str,
        png: &str,
        pdf: &str,
        page: u32,
        etag: &str,
    ) -> Option<Thumbnail> {
        if page == 1 {
            for (name, ct) in [(jpg, "image/jpeg"), (png, "image/png")] {
                if let Some(b) = self.cache.get(name).await {
                    return Some(Thumbnail {
                        bytes: b.into(),
                        content_type: ct,
                        etag: etag.to_string(),
                        pages: None,
                    });
                }
            }
        }
        let p = pdf_page::parse(&self.cache.get(pdf).await?).ok()?;
        Some(Thumbnail {
            bytes: p.png.into(),
            content_type: "image/png",
            etag: etag.to_string(),
            pages: Some(p.pages),
        })
    }

    /// Reads the file and renders it (a slot is held).
    #[allow(clippy::too_many_arguments)]
    async fn make_one(
        &self,
        download: crate::vfs::Download,
        size: u64,
        page: u32,
        edge: u32,
        etag: String,
        cache: bool,
        (jpg, png, pdf): (String, String, String),
    ) -> Result<Thumbnail, ThumbError> {
        let mut source = Vec::with_capacity(size as usize);
        let mut at = 0u64;
        while at < size {
            let chunk = download.read_at(at, 1024 * 1024).await?;
            if chunk.is_empty() {
                break;
            }
            at += chunk.len() as u64;
            source.extend_from_slice(&chunk);
        }
        if pdf_page::is_pdf(&source) {
            let p = pdf_page::render(source, page, edge).await?;
            if cache {
                let mut out = format!("pages {}\n", p.pages).into_bytes();
                out.extend_from_slice(&p.png);
                let c = self.cache.clone();
                tokio::task::spawn_blocking(move || c.put(&pdf, &out));
            }
            return Ok(Thumbnail {
                bytes: p.png.into(),
                content_type: "image/png",
                etag,
                pages: Some(p.pages),
            });
        }
        if page != 1 {
            return Err(ThumbError::Invalid("only a PDF has pages".into()));
        }
        let c = self.cache.clone();
        let made = tokio::task::spawn_blocking(move || {
            let (bytes, alpha) = make(source, edge)?;
            if cache {
                c.put(if alpha { &png } else { &jpg }, &bytes);
            }
            Ok::<_, ThumbError>((bytes, alpha))
        })
        .await
        .map_err(|e| ThumbError::Internal(e.to_string()))??;
        Ok(Thumbnail {
            bytes: made.0.into(),
            content_type: if made.1 { "image/png" } else { "image/jpeg" },
            etag,
            pages: None,
        })
    }
}

/// Decodes `source` within the bounds, turns it upright, scales it to fit `edge` and encodes
/// it: JPEG, or PNG when it has transparency (the flag returned).
fn make(source: Vec<u8>, edge: u32) -> Result<(Vec<u8>, bool), ThumbError> {
    let unsupported = |e: &dyn std::fmt::Display| ThumbError::Unsupported(format!("{e}"));
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|e| unsupported(&e))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP) => {}
        _ => {
            return Err(ThumbError::Unsupported(
                "not a JPEG, PNG, GIF or WebP image, nor a PDF".into(),
            ))
        }
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| unsupported(&e))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ThumbError::TooLarge(format!(
            "the image is {w} x {h} pixels, over {} megapixels",
            MAX_PIXELS / 1_000_000
        )));
    }
    let orientation = decoder.orientation().map_err(|e| unsupported(&e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| unsupported(&e))?;
    img.apply_orientation(orientation);
    // never enlarged: a small image is its own thumbnail
    let small = if img.width() <= edge && img.height() <= edge {
        img
    } else {
        img.thumbnail(edge, edge)
    };
    let alpha = small.color().has_alpha();
    let mut out = Cursor::new(Vec::new());
    let written = if alpha {
        small.write_to(&mut out, ImageFormat::Png)
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg)
    };
    written.map_err(|e| ThumbError::Internal(e.to_string()))?;
    Ok((out.into_inner(), alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(w, h);
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn thumbnails_fit_the_edge_and_bombs_are_refused() {
        let (jpeg, alpha) = make(png(600, 300), 256).unwrap();
        assert!(!alpha);
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (256, 128));
        // a PNG whose header claims 100,000 x 100,000 pixels: refused before any decode
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            make(bomb, 256),
            Err(ThumbError::TooLarge(_)) | Err(ThumbError::Unsupported(_))
        ));
        assert!(matches!(
            make(b"<html>".to_vec(), 256),
            Err(ThumbError::Unsupported(_))
        ));
        let mut cut = png(64, 64);
        cut.truncate(cut.len() / 2);
        assert!(matches!(make(cut, 256), Err(ThumbError::Unsupported(_))));
    }
}
