//! Serving stored files to browsers and download tools, for share links and the user API
//! alike: byte ranges, RFC 6266 names, the sandbox headers, and streamed zips.

pub mod file;
pub mod headers;
pub mod thumbnail;
pub mod zip;
