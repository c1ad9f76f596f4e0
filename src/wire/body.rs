//! The request body every handler reads: hyper's body, watched so that a framing error of the
//! client's (a malformed or oversized chunk size, a body cut short) is answered once, here, as
//! the client's fault (400, or 413 for a size beyond 64 bits) instead of each handler's guess
//! (a 502 from dav-server, a 500 from s3s); or a body already read and checked, handed on.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use prometheus_client::metrics::counter::Counter;

/// Why reading a request body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// Broken framing: a chunk size that is not hex, a chunk shorter than announced, EOF.
    Malformed,
    /// A chunk size that does not fit in 64 bits.
    TooLarge,
}

/// Where the fault of a request's body is left for the router.
pub type FaultSlot = Arc<OnceLock<BodyFault>>;

/// A request body: from the wire (watched) or already in memory.
pub struct ReqBody {
    inner: Inner,
    fault: FaultSlot,
    /// Where the bytes read from the wire are counted (the metrics' bytes in), once set.
    received: Option<Counter>,
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
