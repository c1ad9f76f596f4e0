//! Bandwidth caps: a share's response bodies are paced by a governor limiter whose cells are
//! bytes, keyed by share, so all downloads of one share together stay under its cap. A paced
//! download slows down; it never fails.

use std::io;
use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use futures_util::Stream;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Smallest piece a chunk is cut into before it waits for its bytes.
const MIN_PIECE: u32 = 16 * 1024;

/// Paces streams per key (share id); a no-op without a cap.
pub struct Pacer {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    piece: usize,
}

impl Pacer {
    /// A pacer sending at most `bytes_per_second` per key (0: unpaced). The burst is an eighth
    /// of a second's worth (at least 16 KiB), so a measured rate converges on the cap quickly.
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = u32::try_from(bytes_per_second).unwrap_or(u32::MAX);
        let Some(rate) = NonZeroU32::new(rate) else {
            return Pacer {
                limiter: None,
                piece: 0,
            };
        };
        let burst = (rate.get() / 8).max(MIN_PIECE).min(rate.get());
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Pacer {
            limiter: Some(Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))),
            piece: burst.get() as usize,
        }
    }

    /// `body`, released no faster than the cap of `key` allows.
    pub fn pace<S>(&self, key: &str, body: S) -> BoxStream<'static, io::Result<Bytes>>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let Some(limiter) = self.limiter.clone() else {
            return body.boxed();
        };
        let piece = self.piece;
        let key = key.to_string();
        body.flat_map(move |item| stream::iter(split(item, piece)))
            .then(move |item| {
                let limiter = limiter.clone();
                let key = key.clone();
                async move {
                    if let Ok(b) = &item {
                        if let Some(n) = u32::try_from(b.len()).ok().and_then(NonZeroU32::new) {
                            // pieces never exceed the burst, so capacity is always sufficient
                            let _ = limiter.until_key_n_ready(&key, n).await;
                        }
                    }
                    item
                }
            })
            .boxed()
    }

    /// Drops the state of keys that are back at a full budget.
    pub fn housekeeping(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn split(item: io::Result<Bytes>, piece: usize) -> Vec<io::Result<Bytes>> {
    match item {
        Ok(b) if b.len() > piece => (0..b.len())
            .step_by(piece)
            .map(|at| Ok(b.slice(at..(at + piece).min(b.len()))))
            .collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paced_stream_keeps_to_the_cap() {
        let pacer = Pacer::new(256 * 1024);
        let chunks = (0..4).map(|_| Ok(Bytes::from(vec![7u8; 100 * 1024])));
        let start = std::time::Instant::now();
        let out: Vec<_> = pacer
            .pace("s", stream::iter(chunks))
            .collect::<Vec<_>>()
            .await;
        let secs = start.elapsed().as_secs_f64();
        let total: usize = out.iter().map(|r| r.as_ref().map_or(0, |b| b.len())).sum();
        assert_eq!(total, 400 * 1024);
        // 32 KiB burst, then 368 KiB at 256 KiB/s
        assert!(secs > 1.3 && secs < 1.8, "{secs}");
        assert!(Pacer::new(0).limiter.is_none());
    }
}
