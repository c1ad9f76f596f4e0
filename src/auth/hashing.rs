//! Password hashes (argon2: about 19 MiB and tens of milliseconds of a core each) run on a few
//! threads of their own, one per core. Guesses in flight from any number of addresses queue
//! here instead of filling the blocking pool, which file I/O shares, with one hash each; and
//! what the allocator keeps after a hash is that of these few threads, not of hundreds.

use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The queue the hashing threads take their work from (started at the first hash).
static QUEUE: LazyLock<mpsc::UnboundedSender<Job>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let rx = rx.clone();
        let started = std::thread::Builder::new()
            .name(format!("kura-hash-{i}"))
            .spawn(move || loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).blocking_recv();
                match job {
                    Some(job) => job(),
                    None => return,
                }
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "could not start a password hashing thread");
        }
    }
    tx
});

/// Runs `f` on the hashing threads, in turn with every other hash; `None` when it could not
/// run. A hash whose asker went away meanwhile (a dropped request) is skipped.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        if !tx.is_closed() {
            let _ = tx.send(f());
        }
    });
    QUEUE.send(job).ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_run_and_answer() {
        let answers =
            futures_util::future::join_all((0..20).map(|i| super::run(move || i * 2))).await;
        assert_eq!(answers, (0..20).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }
}
