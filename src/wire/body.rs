//! The request body every handler reads: hyper's body, watched so that a framing error of the
//! client's (a malformed or oversized chunk size, a body cut short) is answered once, here, as
//! the client's fault (400, or 413 for a size beyond 64 bits) instead of each handler's guess
//! (a 502 from dav-server, a 500 from s3s); or a body already read and checked, handed on.
//! A small body read whole (JSON, a form, an XML document: [`read_small`]) is bounded in size
//! and in time: it must arrive by the deadline the router set (the time a client has for its
//! request's headers), else the read fails as [`BodyFault::TooSlow`] (`408`). Uploads and
//! other streamed bodies have no such deadline.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

/// Why reading a request body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// Broken framing: a chunk size that is not hex, a chunk shorter than announced, EOF.
    Malformed,
    /// A chunk size that does not fit in 64 bits.
    TooLarge,
    /// A small body (read whole) that did not arrive by its deadline.
    TooSlow,
}

/// Why a small body could not be read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmallBodyError {
    /// More bytes than the reader takes.
    #[error("the request body is over {0} bytes")]
    TooLarge(usize),
    /// Not all there by the deadline (recorded as [`BodyFault::TooSlow`]).
    #[error("the request body was not sent in time")]
    TooSlow,
    /// Broken framing (recorded by the body itself).
    #[error("malformed request body")]
    Malformed,
}

/// Where the fault of a request's body is left for the router.
pub type FaultSlot = Arc<OnceLock<BodyFault>>;

/// A request body: from the wire (watched) or already in memory.
pub struct ReqBody {
    inner: Inner,
    fault: FaultSlot,
    /// Where the bytes read from the wire are counted (the metrics' bytes in), once set.
    received: Option<Counter>,
    /// When a small body read whole must have arrived (`read_small`); none: no deadline.
    small_deadline: Option<Instant>,
}

enum Inner {
    Wire(Incoming),
    Buffered(Option<Bytes>),
}

impl ReqBody {
    /// A body read earlier (e.g. to check an XML document), served again to the handler.
    pub fn buffered(bytes: Bytes, fault: FaultSlot) -> Self {
        ReqBody {
            inner: Inner::Buffered(Some(bytes).filter(|b| !b.is_empty())),
            fault,
            received: None,
            small_deadline: None,
        }
    }

    /// Counts the bytes read from the wire from now on into `c` (a buffered body was counted
    /// when it was read).
    pub fn count_into(&mut self, c: Counter) {
        self.received = Some(c);
    }

    /// The slot where a fault of this body is recorded.
    pub fn fault_slot(&self) -> FaultSlot {
        self.fault.clone()
    }

    /// A small body read whole ([`read_small`]) must have arrived within `limit` from now.
    pub fn deadline_small_in(&mut self, limit: Duration) {
        self.small_deadline = Some(Instant::now() + limit);
    }
}

/// Reads a small body whole (a JSON document, a form, an XML document): at most `max` bytes,
/// all of it by the deadline the router set for small bodies. Past the deadline the read
/// stops and the body records [`BodyFault::TooSlow`], which the router answers (`408`, the
/// connection closed) whatever the handler made of the error: a client trickling a few
/// bytes holds its connection no longer than one stalling in its headers.
pub async fn read_small(body: ReqBody, max: usize) -> Result<Bytes, SmallBodyError> {
    let (fault, deadline) = (body.fault.clone(), body.small_deadline);
    let read = Limited::new(body, max).collect();
    let collected = match deadline {
        Some(at) => match tokio::time::timeout_at(at, read).await {
            Ok(r) => r,
            Err(_) => {
                let _ = fault.set(BodyFault::TooSlow);
                return Err(SmallBodyError::TooSlow);
            }
        },
        None => read.await,
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) if fault.get().is_some() => Err(SmallBodyError::Malformed),
        Err(_) => Err(SmallBodyError::TooLarge(max)),
    }
}

/// HTTP/2 request bodies of at most this many bytes (by `Content-Length`) are read whole before
/// the request is handled ([`read_early`]).
pub const EARLY_READ_MAX: u64 = 64 * 1024;

/// KiB that early reads may hold at once, over every connection: a read is done early only
/// while it fits, so clients that stall their bodies before authenticating hold at most this
/// (32 MiB) until their deadline, not 64 KiB a stream (an outside test held 1.8 GB with
/// 16,000 stalled streams); past it a body streams as any other.
const EARLY_READ_BUDGET_KIB: usize = 32 * 1024;

static EARLY_READS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(EARLY_READ_BUDGET_KIB);

/// Reads a small HTTP/2 body whole before its request is handled, under the small-body
/// deadline, so that a refusal (423, 403, 507...) is never answered while the client is still
/// sending. hyper then ends the stream with RST_STREAM(NO_ERROR), as RFC 9113 allows, but
/// curl before 8.x (Debian 12's 7.88) reports that as a failed send and shows no status at
/// all. A larger body, one of unknown length, or one that would take the early reads past
/// their budget, is streamed as before. On failure the
/// fault is recorded in the body's slot and returned, and the request must not be handled
/// (its body is left empty).
pub async fn read_early(req: &mut Request<ReqBody>) -> Result<(), BodyFault> {
    let len = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n <= EARLY_READ_MAX);
    let (Some(len), true) = (
        len,
        req.version() == http::Version::HTTP_2 && !req.body().is_end_stream(),
    ) else {
        return Ok(());
    };
    // held while the bytes arrive; none left: the body streams
    let Ok(_held) = EARLY_READS.try_acquire_many(len.div_ceil(1024) as u32) else {
        return Ok(());
    };
    let fault = req.body().fault.clone();
    let body = std::mem::replace(
        req.body_mut(),
        ReqBody::buffered(Bytes::new(), fault.clone()),
    );
    match read_small(body, EARLY_READ_MAX as usize).await {
        Ok(bytes) => {
            *req.body_mut() = ReqBody::buffered(bytes, fault);
            Ok(())
        }
        Err(e) => {
            let f = match e {
                SmallBodyError::TooSlow => BodyFault::TooSlow,
                SmallBodyError::Malformed | SmallBodyError::TooLarge(_) => BodyFault::Malformed,
            };
            let _ = fault.set(f);
            Err(*fault.get().unwrap_or(&f))
        }
    }
}

/// Wraps a request's body so that its framing errors are recorded in the returned slot.
pub fn watch(req: Request<Incoming>) -> (Request<ReqBody>, FaultSlot) {
    let fault = FaultSlot::default();
    let slot = fault.clone();
    (
        req.map(|b| ReqBody {
            inner: Inner::Wire(b),
            fault,
            received: None,
            small_deadline: None,
        }),
        slot,
    )
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Buffered(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Wire(body) => {
                let r = Pin::new(body).poll_frame(cx);
                match &r {
                    Poll::Ready(Some(Err(e))) => {
                        let _ = this.fault.set(classify(e));
                    }
                    Poll::Ready(Some(Ok(f))) => {
                        if let (Some(c), Some(d)) = (&this.received, f.data_ref()) {
                            c.inc_by(d.len() as u64);
                        }
                    }
                    _ => {}
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Buffered(b) => b.is_none(),
            Inner::Wire(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Buffered(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Wire(body) => body.size_hint(),
        }
    }
}

/// hyper reports a chunk size beyond 64 bits as "invalid chunk size: overflow".
fn classify(e: &hyper::Error) -> BodyFault {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("overflow") {
            return BodyFault::TooLarge;
        }
        source = s.source();
    }
    BodyFault::Malformed
}
