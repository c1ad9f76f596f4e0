//! The worker of a rule whose peer is reached through a mailbox: it says hello, waits for
//! the peer's, then writes this node's changes as they are journaled and, every
//! `mailbox_poll_seconds`, reads the peer's letters, acknowledges them and collects what the
//! peer acknowledged.

use std::time::{Duration, Instant};

use super::{receive, send, Post};
use crate::replication::{ReplError, Worker};
use crate::store::MailboxRow;

/// How often an idle worker looks at its journal.
const IDLE: Duration = Duration::from_millis(250);

impl Worker {
    /// Runs the rule through the mailbox `mb`, forever.
    pub(in crate::replication) async fn run_mailbox(&self, mb: MailboxRow) {
        let mut backoff = Duration::from_secs(1);
        let mut post: Option<Post> = None;
        let mut polled: Option<Instant> = None;
        // the hellos: this node's written again, the peer's read, every beat (at least a poll)
        let beat = crate::replication::away::beat(self.keep).max(self.mailbox_poll);
        let mut greeted: Option<Instant> = None;
        loop {
            if post.is_none() {
                match Post::open(&self.store, &self.vault, &mb, self.rule.clone()).await {
                    Ok(p) => post = Some(p),
                    Err(e) => {
                        self.fail(&e, &mut backoff).await;
                        continue;
                    }
                }
            }
            let Some(p) = post.as_mut() else { continue };
            let due = polled.is_none_or(|t| t.elapsed() >= self.mailbox_poll);
            if p.link.peer_node.is_none() {
                // nothing is written before the peer's id is known: marks and echoes need it
                if due {
                    polled = Some(Instant::now());
                    if let Err(e) = p.meet(&self.store).await {
                        self.fail(&e, &mut backoff).await;
                    }
                } else {
                    tokio::time::sleep(IDLE).await;
                }
                continue;
            }
            if greeted.is_none_or(|t| t.elapsed() >= beat) {
                greeted = Some(Instant::now());
                if let Err(e) = self.greet(p).await {
                    self.fail(&e, &mut backoff).await;
                    continue;
                }
            }
            let mut busy = false;
            if due {
                match self.round(p).await {
                    Ok(full) => {
                        busy = full;
                        // a full page: read on at once
                        polled = (!full).then(Instant::now);
                        backoff = Duration::from_secs(1);
                    }
                    Err(e) => {
                        self.fail(&e, &mut backoff).await;
                        continue;
                    }
                }
            }
            match send::send(self, p).await {
                Ok(n) => {
                    busy |= n > 0;
                    if n > 0 {
                        backoff = Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    self.fail(&e, &mut backoff).await;
                    continue;
                }
            }
            if !busy {
                tokio::time::sleep(IDLE).await;
            }
        }
    }

    /// Says hello again and reads the peer's: a new one is a contact with the peer (as a
    /// shipment is for a direct peer), which ends or tells of an absence (`away`).
    async fn greet(&self, p: &mut Post) -> Result<(), ReplError> {
        p.hello().await?;
        if p.heard().await? {
            crate::replication::away::seen(&self.store, &self.rule.peer, self.keep).await;
        }
        Ok(())
    }

    /// One poll of the mailbox; true when it read a full page of letters.
    async fn round(&self, p: &mut Post) -> Result<bool, ReplError> {
        receive::retry_waiting(self, p).await?;
        let n = receive::receive(self, p).await?;
        send::collect(self, p).await?;
        receive::acknowledge(self, p).await?;
        Ok(n >= receive::PAGE)
    }
}
