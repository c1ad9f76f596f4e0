//! A response body that counts the bytes it sends and, when it is done (sent, or dropped by
//! a client that went away), the request's whole latency: one place for every protocol.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::wire::RespBody;

/// Wraps a response body; see the module doc.
pub struct Metered {
    inner: RespBody,
    sent: Counter,
    latency: Histogram,
    start: Instant,
}

impl Metered {
    /// `body`, counted into `sent`, its end observed into `latency` from `start`.
    pub fn wrap(body: RespBody, sent: Counter, latency: Histogram, start: Instant) -> RespBody {
        Metered {
            inner: body,
            sent,
            latency,
            start,
        }
        .boxed_unsync()
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                this.sent.inc_by(d.len() as u64);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.latency.observe(self.start.elapsed().as_secs_f64());
    }
}
