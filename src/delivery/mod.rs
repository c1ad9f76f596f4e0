//! Serving stored files to browsers and download tools, for share links and the user API
//! alike: byte ranges, RFC 6266 names, the sandbox headers, streamed zips, and previews'
//! thumbnails and PDF pages.

pub mod file;
pub mod headers;
pub mod pdf_page;
pub mod preview_cache;
pub mod thumbnail;
pub mod zip;

/// Largest file read into memory for a preview: an image's thumbnail, a PDF's page.
pub const MAX_PREVIEW_BYTES: u64 = 64 * 1024 * 1024;
