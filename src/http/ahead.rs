//! The budget of response bytes read ahead of the clients: before a streamed response body is
//! asked for its next piece (at most `wire::PIECE`), it takes `PIECE_KIB` of its address's
//! share and of the server's budget, and gives them back when it asks for the piece after
//! (hyper asks only once all but less than its send buffer of the last piece is sent) or ends.
//! A client that stops reading (an HTTP/2 stream whose window stays shut) keeps what its
//! streams took: once its address's share is spent its further streams wait for it, in turn,
//! and no other address's do, while the server as a whole holds at most `SERVER_KIB`
//! however many streams stall (docs/security.md, "Connections and timeouts"). A body keeps
//! its piece's budget while it makes that piece, so a body that would wait long for its next
//! one (server-sent events, say; there are none) should not be gated this way.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Response bytes queued an HTTP/2 stream beyond what the client's window takes: hyper asks a
/// body for its next piece only once less than this is left of the last.
pub const H2_SEND_BUF: usize = 64 * 1024;
/// KiB a stream takes for each piece: the piece, and what hyper may still hold of the last
/// (less than its HTTP/2 send buffer): 320 KiB.
const PIECE_KIB: u32 = ((crate::wire::PIECE + H2_SEND_BUF) / 1024) as u32;
/// KiB read ahead of the clients the server holds at most (819 streams sending at once).
const SERVER_KIB: usize = 256 * 1024;
/// KiB read ahead of the clients of one address (51 streams sending at once): 16 addresses
/// that stop reading are needed to make the others wait.
const ADDRESS_KIB: usize = 16 * 1024;

static SERVER: Semaphore = Semaphore::const_new(SERVER_KIB);

/// The shares of the addresses with a connection open.
#[derive(Default)]
pub struct Shares {
    map: Mutex<ShareMap>,
}

#[derive(Default)]
struct ShareMap {
    by_ip: HashMap<IpAddr, Weak<Semaphore>>,
    /// Size at which the entries of addresses gone are swept out.
    sweep_at: usize,
}

impl Shares {
    /// The share of `ip` (an IPv6 client's whole /64, as every per-address budget), held by
    /// each of its connections while open.
    pub fn of(&self, ip: IpAddr) -> Arc<Semaphore> {
        let ip = crate::limits::budget_key(ip);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.by_ip.get(&ip).and_then(Weak::upgrade) {
            return s;
        }
        if m.by_ip.len() >= m.sweep_at {
            m.by_ip.retain(|_, w| w.strong_count() > 0);
            m.sweep_at = (2 * m.by_ip.len()).max(64);
        }
        let s = Arc::new(Semaphore::new(ADDRESS_KIB));
        m.by_ip.insert(ip, Arc::downgrade(&s));
        s
    }
}

/// What a stream holds of the budget for the piece in hand.
struct Held {
    _address: Option<OwnedSemaphorePermit>,
    _server: Option<SemaphorePermit<'static>>,
}

type Taking = Pin<Box<dyn Future<Output = Held> + Send>>;

/// One response body's place in the budget: `share` is its address's (none for a trusted
/// proxy, which carries many clients: the server's budget alone bounds it).
pub struct Gate {
    share: Option<Arc<Semaphore>>,
    held: Option<Held>,
    /// The piece held for was handed on: the next one needs the budget again.
    spent: bool,
    taking: Option<Taking>,
}

impl Gate {
    /// A gate drawing on `share` and the server's budget.
    pub fn new(share: Option<Arc<Semaphore>>) -> Self {
        Gate {
            share,
            held: None,
            spent: true,
            taking: None,
        }
    }

    /// Ready once the stream holds the budget for its next piece (the last one's given back).
    pub fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.spent {
            return Poll::Ready(());
        }
        if self.taking.is_none() {
            self.held = None;
            if let Some(h) = self.try_take() {
                self.held = Some(h);
                self.spent = false;
                return Poll::Ready(());
            }
            let share = self.share.clone();
            // the address's share first, so that an address over it queues on its own
            self.taking = Some(Box::pin(async move {
                let address = match share {
                    Some(s) => s.acquire_many_owned(PIECE_KIB).await.ok(),
                    None => None,
                };
                let server = SERVER.acquire_many(PIECE_KIB).await.ok();
                Held {
                    _address: address,
                    _server: server,
                }
            }));
        }
        let held = match self.taking.as_mut() {
            Some(t) => ready!(t.as_mut().poll(cx)),
            None => return Poll::Ready(()),
        };
        self.taking = None;
        self.held = Some(held);
        self.spent = false;
        Poll::Ready(())
    }

    /// Takes the budget for a piece if it is there now (no waiter is ahead).
    fn try_take(&self) -> Option<Held> {
        let address = match &self.share {
            Some(s) => Some(s.clone().try_acquire_many_owned(PIECE_KIB).ok()?),
            None => None,
        };
        let server = SERVER.try_acquire_many(PIECE_KIB).ok()?;
        Some(Held {
            _address: address,
            _server: Some(server),
        })
    }

    /// The piece held for was handed on to hyper.
    pub fn handed_on(&mut self) {
        self.spent = true;
    }

    /// The body ended: nothing is held for it any more.
    pub fn release(&mut self) {
        self.held = None;
        self.spent = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    #[test]
    fn an_address_over_its_share_waits_and_others_do_not() {
        let shares = Shares::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // one IPv6 client's /64 is one address
        assert!(Arc::ptr_eq(
            &shares.of(a),
            &shares.of("2001:db8::2".parse().unwrap())
        ));
        let mut cx = Context::from_waker(noop_waker_ref());
        let per_address = ADDRESS_KIB / PIECE_KIB as usize;
        let mut stalled: Vec<Gate> = (0..per_address)
            .map(|_| Gate::new(Some(shares.of(a))))
            .collect();
        for g in &mut stalled {
            assert!(g.poll_take(&mut cx).is_ready());
            g.handed_on();
        }
        // a's share is spent: its next stream waits, b's does not
        let mut more = Gate::new(Some(shares.of(a)));
        assert!(more.poll_take(&mut cx).is_pending());
        let mut other = Gate::new(Some(shares.of(b)));
        assert!(other.poll_take(&mut cx).is_ready());
        // one of a's streams asks for its next piece: the one waiting got the budget first
        assert!(stalled[0].poll_take(&mut cx).is_pending());
        assert!(more.poll_take(&mut cx).is_ready());
        more.release();
        assert!(stalled[0].poll_take(&mut cx).is_ready());
        // a piece not handed on yet is still held for
        assert!(stalled[0].poll_take(&mut cx).is_ready());
    }
}
