//! Connection accounting: a global and a per-address cap, and which connections are idle (no
//! request in flight). When a cap is reached the connection idle longest is closed to make
//! room, as nginx reuses keep-alive connections; if none is idle, the new one is refused. A
//! connection being closed still holds its descriptor until its task ends, so it counts until
//! then, and the accept loop waits for the room it asked for instead of accepting past it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The live connections of the listener.
pub struct Conns {
    max_total: usize,
    max_per_ip: usize,
    epoch: Instant,
    reg: Mutex<Registry>,
    /// Notified whenever a connection's slot is given back.
    freed: Notify,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, (IpAddr, Arc<Ctl>)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Arc<Ctl>> {
        let (ip, ctl) = self.live.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(ctl)
    }

    /// Closes the connection idle longest (of `ip`, or of anyone); false if none is idle. It
    /// keeps its place until its task has closed the socket.
    fn evict_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let victim = self
            .live
            .values()
            .filter(|(i, c)| ip.is_none_or(|ip| *i == ip) && c.is_idle() && !c.is_closing())
            .min_by_key(|(_, c)| c.last.load(Ordering::Relaxed))
            .map(|(_, c)| c.clone());
        match victim {
            Some(ctl) => {
                ctl.closing.store(true, Ordering::Release);
                ctl.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Whether some connection (of `ip`, or of anyone) is already closing.
    fn closing(&self, ip: Option<IpAddr>) -> bool {
        self.live
            .values()
            .any(|(i, c)| ip.is_none_or(|ip| *i == ip) && c.is_closing())
    }
}

/// What a connection's task and its requests share: requests in flight, last activity, and
/// the signal to close.
pub struct Ctl {
    busy: AtomicUsize,
    /// Milliseconds since the registry's epoch.
    last: AtomicU64,
    epoch: Instant,
    /// Set when the connection was chosen to make room.
    closing: std::sync::atomic::AtomicBool,
    /// Notified when the connection is evicted to make room.
    pub close: Notify,
}

impl Ctl {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// How long the connection has had no request in flight (zero while it has one).
    pub fn idle_for(&self) -> Duration {
        if !self.is_idle() {
            return Duration::ZERO;
        }
        Duration::from_millis(self.now().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    /// A request starts; the guard ends it when dropped (after its response body is sent).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.last.store(self.now(), Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A request in flight on a connection.
pub struct Busy(Arc<Ctl>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last.store(self.0.now(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place in the registry, given back when dropped.
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    /// The connection's shared state.
    pub ctl: Arc<Ctl>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = self.conns.reg.lock().unwrap_or_else(|e| e.into_inner());
        reg.remove(self.id);
        drop(reg);
        self.conns.freed.notify_waiters();
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Room is being made (an idle connection is closing): wait for `freed` and ask again.
    Wait,
    /// `max_connections` busy connections.
    Total,
    /// `max_connections_per_ip` busy connections from this address.
    PerAddress,
}

impl Conns {
    /// A registry admitting `max_total` connections, `max_per_ip` from one address (0: no cap).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Conns {
            max_total: if max_total == 0 {
                usize::MAX
            } else {
                max_total
            },
            max_per_ip: if max_per_ip == 0 {
                usize::MAX
            } else {
                max_per_ip
            },
            epoch: Instant::now(),
            reg: Mutex::new(Registry::default()),
            freed: Notify::new(),
        })
    }

    /// Admits a connection from `ip`, closing an idle one if a cap is reached (then the caller
    /// waits with `freed` and asks again). `capped` is false for trusted proxies, which carry
    /// many clients.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, capped: bool) -> Result<Slot, Refused> {
        let ip = crate::limits::budget_key(ip);
        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
        if capped && reg.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(if reg.closing(Some(ip)) || reg.evict_idle(Some(ip)) {
                Refused::Wait
            } else {
                Refused::PerAddress
            });
        }
        if reg.live.len() >= self.max_total {
            return Err(if reg.closing(None) || reg.evict_idle(None) {
                Refused::Wait
            } else {
                Refused::Total
            });
        }
        let ctl = Arc::new(Ctl {
            busy: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            epoch: self.epoch,
            closing: Default::default(),
            close: Notify::new(),
        });
        ctl.last.store(ctl.now(), Ordering::Relaxed);
        reg.next_id += 1;
        let id = reg.next_id;
        reg.live.insert(id, (ip, ctl.clone()));
        *reg.per_ip.entry(ip).or_default() += 1;
        Ok(Slot {
            conns: self.clone(),
            id,
            ctl,
        })
    }

    /// Resolves when a slot is given back (or after `max`, whichever comes first).
    pub async fn freed(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.freed.notified()).await;
    }

    /// Closes up to `n` idle connections (descriptors ran out); returns how many.
    pub fn shed_idle(&self, n: usize) -> usize {
        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
        (0..n).take_while(|_| reg.evict_idle(None)).count()
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.reg
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_evict_idle_connections_first() {
        let c = Conns::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = c.admit(a, true).unwrap();
        let _busy1 = s1.ctl.begin();
        let s2 = c.admit(a, true).unwrap();
        let busy2 = s2.ctl.begin();
        // both of a's connections are busy: a third from a is refused
        assert_eq!(c.admit(a, true).err(), Some(Refused::PerAddress));
        // a trusted proxy is not capped per address
        let p = c.admit(a, false).unwrap();
        // the total is reached: the idle one is asked to close, and counts until it has
        assert_eq!(c.admit(b, true).err(), Some(Refused::Wait));
        assert!(futures_util::FutureExt::now_or_never(p.ctl.close.notified()).is_some());
        assert_eq!(c.admit(b, true).err(), Some(Refused::Wait));
        drop(p);
        let s3 = c.admit(b, true).unwrap();
        let _busy3 = s3.ctl.begin();
        assert_eq!(c.admit(b, true).err(), Some(Refused::Total));
        drop(busy2);
        assert_eq!(c.shed_idle(5), 1);
        assert_eq!(c.len(), 3);
    }
}
