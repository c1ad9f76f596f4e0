//! The share-link adapter: visitor endpoints under `/s/{token}` (pages, downloads, zips,
//! drop-box uploads), over the share-link service (`crate::share_links`) and the core.

mod headers;
pub mod http;
mod ledger;
mod page;
mod zip;

/// URL prefix of share links.
pub const PREFIX: &str = "/s/";
