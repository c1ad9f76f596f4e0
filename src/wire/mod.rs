//! What the router and every protocol adapter exchange: the request and response body
//! types, the markers a handler leaves in a response's extensions for the router, and the
//! header rules every answer with user content follows. A leaf: it imports nothing of Kura.

pub mod audit;
mod body;
mod json;
mod ranges;
mod safety;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub use body::{read_early, read_small, watch, BodyFault, ReqBody, SmallBodyError};
pub use json::{json, json_error, ErrorReply};
pub use ranges::tame as tame_ranges;
pub use safety::{is_active_type, protect};

/// The authenticated user a response was served for, left in its extensions for the access log.
#[derive(Clone, Debug)]
pub struct User(pub String);

/// The client's address (after trusted proxies), left in a request's extensions by the router.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub std::net::IpAddr);

/// Marks a request that came over TLS: on its own connection, or through a trusted proxy
/// that says it received it over HTTPS (`X-Forwarded-Proto: https`). Left in the request's
/// extensions by the listener and the router; SSE-C needs it (s3/gate.rs).
#[derive(Clone, Copy, Debug)]
pub struct Secure;

/// Marks a response that refused wrong credentials, so the router counts the failure for the
/// failed-authentication throttle (one place for WebDAV, S3, the admin API and share links).
#[derive(Clone, Copy, Debug)]
pub struct AuthFailed;

/// Largest piece of a streamed response body (a disk read of a download, a WebDAV GET's, a
/// zip's): what a client that stops reading holds of the server's memory a stream, within the
/// listener's read-ahead budget (`http::ahead`).
pub const PIECE: usize = 256 * 1024;

/// The response body type of every handler.
pub type RespBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> RespBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of bytes already in memory (small answers only).
pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
