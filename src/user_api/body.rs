//! Reading a small JSON request body, bounded in size and time (`wire::read_small`).

use http::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::errors::error;
use crate::wire::{ReqBody, RespBody, SmallBodyError};

/// Largest JSON request body.
pub const MAX_JSON: usize = 256 * 1024;

/// The body of `req` as `T`: `413` over `max` bytes, `400` when it is not `T`.
#[allow(clippy::result_large_err)]
pub async fn read_json<T: DeserializeOwned>(
    req: Request<ReqBody>,
    max: usize,
) -> Result<T, Response<RespBody>> {
    let bytes = match crate::wire::read_small(req.into_body(), max).await {
        Ok(b) => b,
        Err(SmallBodyError::TooLarge(_)) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the request body is over {} KiB", max / 1024),
            ))
        }
        // answered by the router from the body's recorded fault (408, 400)
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, "invalid", &e.to_string())),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid", &e.to_string()))
}
