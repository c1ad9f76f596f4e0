//! The browser app (docs/web.md): its embedded pages under `/app/`, and the session part of
//! the user API under `/api/user/v1/` (sign-in, sign-out, sessions, two-factor set-up).
//! Policy lives in the session service and the core; this adapter translates.

mod assets;
mod session;

pub use assets::serve_asset;
pub use session::{error, openapi, SessionFront};

/// Where the app's pages live.
pub const PREFIX: &str = "/app/";
/// Where the user API lives (the session endpoints and, with the search, the rest).
pub const API: &str = "/api/user/v1/";
/// The header a signed-in browser sends its CSRF token in on state-changing requests.
pub const CSRF_HEADER: &str = "x-kura-csrf";
