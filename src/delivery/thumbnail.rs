//! Image thumbnails and PDF pages for the app's previews: decoded server-side under hard
//! bounds (the file's size, the header's pixel count, the decoder's allocations, two decodes
//! at once, each on a blocking thread; a PDF page in a limited child process, `pdf_page`),
//! EXIF orientation applied, and cached on disk keyed by the file's path, ETag and size so
//! that a thumbnail is made once per version of a file.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::pdf_page::{self, PageError};
use crate::vfs::{Caller, VPath, Vfs, VfsError};

/// Largest source file read into memory to make a thumbnail.
pub const MAX_SOURCE_BYTES: u64 = super::MAX_PREVIEW_BYTES;

/// Most pixels an image's header may announce (a 12-megapixel photo is well below).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Most bytes the decoder may allocate for one image (50 Mpx of RGBA is 200 MB).
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Decodes running at once, whoever asks.
const DECODES: usize = 2;

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

/// Makes and caches thumbnails.
#[derive(Clone)]
pub struct Thumbnailer {
    dir: PathBuf,
    gate: Arc<Semaphore>,
}

impl Thumbnailer {
    /// Thumbnails cached in `dir` (created when first needed).
    pub fn new(dir: PathBuf) -> Self {
        Thumbnailer {
            dir,
            gate: Arc::new(Semaphore::new(DECODES)),
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
        // the path too: an ETag is not a secret-proof content hash (a writer may set one on
        // some paths), so one file's thumbnail never answers for another's
        let mut id = format!("{}\n{}\n{}\n{edge}", entry.path, entry.etag, entry.size);
        if page > 1 {
            id.push_str(&format!("\npage {page}"));
        }
        let key = hex::encode(Sha256::digest(id.as_bytes()));
        let etag = key[..32].to_string();
        let file = |ext: &str| self.dir.join(&key[..2]).join(format!("{key}.{ext}"));
        let (jpg, png, pdf) = (file("jpg"), file("png"), file("pdfpage"));
        // an encrypted bucket's images are not written to disk in the clear: no cache
        let cache = entry.sealed.is_none();
        let cached = [(&jpg, "image/jpeg"), (&png, "image/png")];
        for (file, ct) in cached.into_iter().filter(|_| cache && page == 1) {
            if let Ok(b) = tokio::fs::read(file).await {
                return Ok(Thumbnail {
                    bytes: b.into(),
                    content_type: ct,
                    etag,
                    pages: None,
                });
            }
        }
        if let Some(Ok(p)) = match cache {
            true => tokio::fs::read(&pdf)
                .await
                .ok()
                .map(|b| pdf_page::parse(&b)),
            false => None,
        } {
            return Ok(Thumbnail {
                bytes: p.png.into(),
                content_type: "image/png",
                etag,
                pages: Some(p.pages),
            });
        }
        if entry.size > MAX_SOURCE_BYTES {
            return Err(ThumbError::TooLarge(format!(
                "files over {} MiB are not previewed",
                MAX_SOURCE_BYTES / 1024 / 1024
            )));
        }
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|e| ThumbError::Internal(e.to_string()))?;
        let mut source = Vec::with_capacity(entry.size as usize);
        let mut at = 0u64;
        while at < entry.size {
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
                tokio::task::spawn_blocking(move || store(&pdf, &out));
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
        let made = tokio::task::spawn_blocking(move || {
            let (bytes, alpha) = make(source, edge)?;
            if cache {
                store(if alpha { &png } else { &jpg }, &bytes);
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

/// Writes a cache file whole (a temporary name, then a rename); a failure only costs a decode.
fn store(file: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = file.parent() else { return };
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let done = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, file));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(file = %file.display(), error = %e, "could not cache a thumbnail");
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
