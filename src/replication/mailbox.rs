//! Replication through an S3 mailbox, for two nodes that cannot reach each other but both
//! reach some bucket (a cloud provider's, a third Kura): each writes its changes there as
//! sealed letters and bodies and reads the other's, so both directions work like a pull
//! (docs/replication.md, "Neither side reachable"). Layout under the mailbox's prefix:
//!
//! ```text
//! node-<id>/hello                  who writes in this folder (sealed)
//! node-<id>/<channel>/j/<seq>      letters: one change each, numbered without gaps (sealed)
//! node-<id>/<channel>/b/<name>     bodies: the bytes of a version or a manifest, named by
//!                                  content (sealed)
//! node-<id>/<channel>/ack          how far this node is done with the other's letters
//! ```
//!
//! A channel is one bucket (its name an HMAC of the bucket's); the writer removes what the
//! reader's acknowledgement says it is done with.

pub mod manifest;
mod receive;
pub mod seal;
mod send;
mod worker;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::feed::FeedEntry;
use super::remote::Remote;
use super::ship::Link;
use super::ReplError;
use crate::store::{MailboxRow, RuleRow, Store};
use crate::vault::Vault;
use seal::Keys;

/// The largest letter or acknowledgement read (one change's key and headers, padded).
const MAX_LETTER: u64 = 1 << 20;

/// How many of this node's highest letter names a restart opens to find its last letter.
const RESUME_TRIES: usize = 16;

/// The sealing id of a mailbox's shared secret.
pub fn secret_id(peer: &str) -> String {
    format!("mailbox:{peer}")
}

/// One change, as a letter carries it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Letter {
    /// Its seq in the writer's channel (as its object's name says).
    pub seq: i64,
    /// The change, as the journal feed would serve it (`seq` unused).
    pub entry: FeedEntry,
    /// Where the version's bytes are (None: a deletion, or a manifest).
    pub body: Option<BodyRef>,
    /// Not a change but the writer's manifest (a resync): `entry` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<manifest::ManifestRef>,
}

/// A body in the mailbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct BodyRef {
    /// Its name: an HMAC of the plaintext.
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
}

/// What a node tells the other about the other's letters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Every letter up to here is applied or refused: the writer may remove them.
    pub done: i64,
    /// Letters refused (unreadable, altered or missing), the oldest page of them: the writer
    /// sends their paths again and says so in `redone`; the next page follows.
    pub redo: Vec<i64>,
    /// The seqs of the other's `redo` whose paths this node sent again: the other asks for
    /// them no more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redone: Vec<i64>,
    /// Seqs past `done` whose object in the mailbox fails to open (at most `COMPLAINTS`):
    /// never a position, only a complaint; the writer sends again those it wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<i64>,
}

/// How many unopenable seqs an acknowledgement names.
pub const COMPLAINTS: usize = 16;

/// Who writes in a node's folder, and when it last said so: written again every beat
/// (`away::beat`), so the other node can tell the peer is there though it writes no letter.
#[derive(Serialize, Deserialize)]
struct Hello {
    node: String,
    /// The writer's clock when written: only compared with the writer's own earlier value.
    #[serde(default)]
    at_ms: i64,
}

/// Object names in the mailbox.
pub struct Layout {
    prefix: String,
    channel: String,
}

impl Layout {
    fn dir(&self, node: &str) -> String {
        format!("{}node-{node}/", self.prefix)
    }

    /// The hello of `node`.
    pub fn hello(&self, node: &str) -> String {
        format!("{}hello", self.dir(node))
    }

    /// Everything `node` writes in this channel.
    pub fn channel(&self, node: &str) -> String {
        format!("{}{}/", self.dir(node), self.channel)
    }

    /// The folder of `node`'s letters.
    pub fn letters(&self, node: &str) -> String {
        format!("{}j/", self.channel(node))
    }

    /// `node`'s letter `seq` (zero-padded: names sort as numbers).
    pub fn letter(&self, node: &str, seq: i64) -> String {
        format!("{}{seq:020}", self.letters(node))
    }

    /// `node`'s body `name`.
    pub fn body(&self, node: &str, name: &str) -> String {
        format!("{}b/{name}", self.channel(node))
    }

    /// `node`'s acknowledgement of the other's letters.
    pub fn ack(&self, node: &str) -> String {
        format!("{}ack", self.channel(node))
    }

    /// A name without the prefix: what sealing binds (the associated data).
    fn rel<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    /// The node whose folder a listed name of the prefix is, if it is one.
    fn node_of<'a>(&self, listed: &'a str) -> Option<&'a str> {
        let node = self
            .rel(listed)
            .strip_prefix("node-")?
            .trim_end_matches('/');
        let ok = !node.is_empty()
            && node.len() <= 64
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then_some(node)
    }
}

/// A rule's mailbox, opened: the link (its remote is the mailbox's bucket; its peer node is
/// known once the peer's hello was read), the keys and names.
pub struct Post {
    /// The rule and the mailbox bucket.
    pub link: Link,
    /// The keys derived from the shared secret.
    pub keys: Keys,
    /// Object names.
    pub layout: Layout,
    /// The last journal seq written as a letter (or passed over).
    pub position: i64,
    /// The acknowledgement this node last wrote.
    pub ack: Option<Ack>,
    /// The peer's seqs past the cursor whose objects fail to open (see `Ack::bad`).
    pub bad: Vec<i64>,
    /// Unopenable objects already logged (each is logged once per run).
    pub logged: std::collections::HashSet<i64>,
    /// The peer's complaints about our letters already answered (see `Ack::bad`).
    pub answered: std::collections::HashSet<i64>,
    /// The seqs of the peer's `redo` sent again (told in our acknowledgement's `redone`).
    pub redone: Vec<i64>,
    /// The peer's hello as last read (its `at_ms`): a new one is a sign of life.
    heard: Option<i64>,
}

impl Post {
    /// Opens the mailbox of `rule` and says hello there.
    pub async fn open(
        store: &Store,
        vault: &Vault,
        mb: &MailboxRow,
        rule: RuleRow,
    ) -> Result<Post, ReplError> {
        let peer = store
            .peer(&rule.peer)
            .await?
            .ok_or_else(|| ReplError::Invalid(format!("no peer {}", rule.peer)))?;
        let secret = vault.unseal(&super::seal_id(&peer.name), &peer.secret_enc)?;
        let shared = vault.unseal(&secret_id(&peer.name), &mb.secret_enc)?;
        let keys = Keys::derive(&shared);
        let layout = Layout {
            prefix: mb.prefix.clone(),
            channel: keys.channel(&rule.bucket),
        };
        let own = store.node_id().await?;
        let post = Post {
            position: rule.position,
            link: Link {
                remote: Remote::new(&peer, &secret, &mb.bucket)?,
                peer_node: peer.node_id.clone(),
                own: own.clone(),
                // no journal feed behind a mailbox
                pull: false,
                secret: String::new(),
                rule,
            },
            keys,
            layout,
            ack: None,
            bad: Vec::new(),
            logged: Default::default(),
            answered: Default::default(),
            redone: Vec::new(),
            heard: None,
        };
        post.hello().await?;
        if post.link.peer_node.is_some() {
            post.resume(store).await?;
        }
        Ok(post)
    }

    /// This node's id.
    pub fn own(&self) -> &str {
        &self.link.own
    }

    /// Says hello (again), with the time.
    pub async fn hello(&self) -> Result<(), ReplError> {
        let hello = Hello {
            node: self.own().to_string(),
            at_ms: crate::store::now_ms(),
        };
        self.write_sealed(&self.layout.hello(self.own()), &hello)
            .await
    }

    /// Reads the peer's hello: true when it was written again since last read in this run
    /// (the peer is there). The first read of a run only notes it: an old hello found after
    /// a restart is no sign of life.
    pub async fn heard(&mut self) -> Result<bool, ReplError> {
        let Some(node) = self.link.peer_node.clone() else {
            return Ok(false);
        };
        let at = match self.read_sealed::<Hello>(&self.layout.hello(&node)).await {
            Ok(Some(h)) if h.node == node => h.at_ms,
            Ok(_) => return Ok(false),
            Err(ReplError::Tampered(why)) => {
                tracing::warn!(peer = %self.link.rule.peer, %why,
                    "replication: the peer's hello in the mailbox fails to open; ignored");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let new = self.heard.is_some_and(|h| h != at);
        self.heard = Some(at);
        Ok(new)
    }

    /// Looks for the peer's hello; true once the peer is known (its id is stored).
    pub async fn meet(&mut self, store: &Store) -> Result<bool, ReplError> {
        if self.link.peer_node.is_some() {
            return Ok(true);
        }
        let listed = self.link.remote.op.list_with(&self.layout.prefix).await?;
        for e in listed {
            let Some(node) = self.layout.node_of(e.path()) else {
                continue;
            };
            if node == self.own() {
                continue;
            }
            match self.read_sealed::<Hello>(&self.layout.hello(node)).await {
                Ok(Some(h)) if h.node == node => {
                    tracing::info!(bucket = %self.link.rule.bucket, peer = %self.link.rule.peer,
                        node = %node, "replication: met the peer in the mailbox");
                    store.set_peer_node_id(&self.link.rule.peer, node).await?;
                    self.link.peer_node = Some(node.to_string());
                    self.resume(store).await?;
                    return Ok(true);
                }
                Ok(_) => {}
                Err(ReplError::Tampered(why)) => {
                    tracing::warn!(peer = %self.link.rule.peer, %why,
                        "replication: a folder of the mailbox is not the peer's")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Once the peer is known: raises the counters to what the mailbox shows (a letter
    /// written by a stop before it was recorded, a rule made again, a database restored: no
    /// seq is written or read twice), and removes what this node wrote that no letter needs
    /// any more (left by a stop mid-way).
    async fn resume(&self, store: &Store) -> Result<(), ReplError> {
        let Some(peer) = self.link.peer_node.as_deref() else {
            return Ok(());
        };
        let (bucket, name) = (&self.link.rule.bucket, &self.link.rule.peer);
        let dir = self.layout.channel(self.own());
        let letters = self.layout.letters(self.own());
        let bodies = format!("{dir}b/");
        let listed: Vec<String> = self
            .link
            .remote
            .op
            .list_with(&dir)
            .recursive(true)
            .await?
            .into_iter()
            .map(|e| e.path().to_string())
            .collect();
        let seq_of = |p: &str| p.strip_prefix(&letters)?.parse::<i64>().ok();
        let written = self
            .last_written(listed.iter().filter_map(|p| seq_of(p)))
            .await?;
        let mine = self.read_ack(&self.layout.ack(self.own())).await?;
        let theirs = self.read_ack(&self.layout.ack(peer)).await?;
        store
            .raise_mailbox_counters(bucket, name, written.max(theirs.done), mine.done)
            .await?;
        let acked = store.mailbox_channel(bucket, name).await?.acked;
        let keep: std::collections::HashSet<String> = store
            .mailbox_bodies(bucket, name)
            .await?
            .into_iter()
            .collect();
        let gone: Vec<String> = listed
            .into_iter()
            .filter(|p| match (seq_of(p), p.strip_prefix(&bodies)) {
                (Some(seq), _) => seq <= acked,
                (_, Some(body)) => !keep.contains(body),
                _ => false,
            })
            .collect();
        if !gone.is_empty() {
            tracing::info!(bucket = %bucket, peer = %name, objects = gone.len(),
                "replication: swept the mailbox of what no letter needs");
            self.link.remote.op.delete_iter(gone).await?;
        }
        Ok(())
    }

    /// The highest of `seqs` (names listed in this node's letter folder) whose letter opens:
    /// a name alone proves nothing (the mailbox's owner can put any object there), and a
    /// forged high number must not make this node skip seqs. At most `RESUME_TRIES` are
    /// opened, from the top; 0 when none does (the database's counter stands).
    async fn last_written(&self, seqs: impl Iterator<Item = i64>) -> Result<i64, ReplError> {
        let mut seqs: Vec<i64> = seqs.collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        for seq in seqs.into_iter().take(RESUME_TRIES) {
            let name = self.layout.letter(self.own(), seq);
            match self.read_sealed::<Letter>(&name).await {
                Ok(Some(l)) if l.seq == seq => return Ok(seq),
                Ok(_) => {}
                Err(ReplError::Tampered(why)) => {
                    tracing::warn!(peer = %self.link.rule.peer, %why,
                        "replication: an object in our folder of the mailbox fails to open; not counted as written")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(0)
    }

    /// An acknowledgement (none yet: nothing done); one that fails to open is ignored.
    pub async fn read_ack(&self, name: &str) -> Result<Ack, ReplError> {
        match self.read_sealed::<Ack>(name).await {
            Ok(a) => Ok(a.unwrap_or_default()),
            Err(ReplError::Tampered(why)) => {
                tracing::warn!(peer = %self.link.rule.peer, %why,
                    "replication: an acknowledgement in the mailbox fails to open; ignored");
                Ok(Ack::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Reads and opens a sealed object: None if absent, `Tampered` if it does not open.
    pub async fn read_sealed<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ReplError> {
        let mut stream = match self.link.remote.op.reader(name).await {
            Ok(r) => r.into_bytes_stream(..).await?,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // read no more than a letter may hold: an oversized object is refused, not buffered
        let mut bytes = Vec::new();
        loop {
            match futures_util::TryStreamExt::try_next(&mut stream).await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > MAX_LETTER {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ReplError::Unreachable(format!("reading {name}: {e}"))),
            }
        }
        let plain = (bytes.len() as u64 <= MAX_LETTER)
            .then(|| self.keys.open(self.layout.rel(name), &bytes))
            .flatten()
            .ok_or_else(|| ReplError::Tampered(format!("{name} fails to open")))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| ReplError::Tampered(format!("{name} is not a letter: {e}")))
    }

    /// Seals `v` and writes it as `name`.
    pub async fn write_sealed<T: Serialize>(&self, name: &str, v: &T) -> Result<(), ReplError> {
        let json = serde_json::to_vec(v).map_err(|e| ReplError::Invalid(e.to_string()))?;
        let sealed = self.keys.seal(self.layout.rel(name), &json);
        self.link.remote.op.write(name, sealed).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_numbers_and_name_no_file() {
        let l = Layout {
            prefix: "pair/".into(),
            channel: "c0ffee".into(),
        };
        assert_eq!(
            l.letter("kura-1", 7),
            "pair/node-kura-1/c0ffee/j/00000000000000000007"
        );
        assert!(l.letter("kura-1", 9) < l.letter("kura-1", 10));
        assert_eq!(l.rel(&l.ack("kura-1")), "node-kura-1/c0ffee/ack");
        assert_eq!(l.node_of("pair/node-kura-abc/"), Some("kura-abc"));
        assert_eq!(l.node_of("pair/node-Evil Name/"), None);
        assert_eq!(l.node_of("pair/other/"), None);
    }
}
