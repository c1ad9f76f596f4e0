//! The share-link adapter: visitor endpoints under `/s/{token}` (pages, downloads, zips,
//! drop-box uploads), over the share-link service (`crate::share_links`) and the core.

pub mod http;
mod ledger;
mod page;

/// URL prefix of share links (the service's, which builds links for the user API too).
pub const PREFIX: &str = crate::share_links::URL_PREFIX;
