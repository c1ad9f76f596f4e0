//! `kura peer ...`, `kura replicate ...` and `kura fingerprint`.

use clap::{Args, Subcommand};

use super::{admin::open_admin, CliError};
use crate::admin::{NewPeer, NewRule};
use crate::config::Config;

/// `kura peer ...`
#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Add a peer: another Kura node (or any S3 store) to mirror buckets to.
    Add {
        /// Local name of the peer.
        name: String,
        /// Its S3 endpoint, e.g. https://other-house.example:8443. Without one, the peer is
        /// a node this one cannot reach: it pushes here and pulls from here (`--pull` there).
        #[arg(long, requires_all = ["access_key", "secret_key"])]
        endpoint: Option<String>,
        /// Access key id on the peer.
        #[arg(long, requires = "endpoint")]
        access_key: Option<String>,
        /// Secret access key on the peer (stored sealed with this node's key).
        #[arg(long, requires = "endpoint")]
        secret_key: Option<String>,
        /// This node cannot be reached by the peer (NAT): besides pushing its changes, it
        /// pulls the peer's over connections it opens itself.
        #[arg(long, requires = "endpoint")]
        pull: bool,
        /// Pin the peer's self-signed certificate: `AB:CD:...` from `kura fingerprint` on the
        /// peer (`sha256:<hex>` is accepted too). Needs an https:// endpoint.
        #[arg(long)]
        ca_fingerprint: Option<String>,
        /// Add it without the test request (the peer is down for now).
        #[arg(long)]
        no_check: bool,
        /// Neither node can reach the other: exchange changes through this bucket and
        /// prefix (`s3://bucket/prefix`), on the S3 server `--endpoint` with `--access-key`
        /// and `--secret-key` there (another provider's, or a third Kura). Everything in it
        /// is encrypted with a secret only the two nodes hold.
        #[arg(long, requires = "endpoint", conflicts_with = "pull")]
        mailbox: Option<String>,
        /// The secret shared with the peer through `--mailbox` (at least 32 characters).
        /// Leave it out on the first node: one is made and printed, to give to the other.
        /// On the command line it shows in `ps` and the shell's history: prefer
        /// `--mailbox-secret-file` or the environment variable KURA_MAILBOX_SECRET.
        #[arg(
            long,
            requires = "mailbox",
            env = "KURA_MAILBOX_SECRET",
            hide_env_values = true,
            conflicts_with = "mailbox_secret_file"
        )]
        mailbox_secret: Option<String>,
        /// Read the secret shared with the peer from this file (its first line; `-` for
        /// standard input).
        #[arg(long, requires = "mailbox")]
        mailbox_secret_file: Option<std::path::PathBuf>,
    },
    /// Create an access key for a peer to ship here with: only requests signed with it are
    /// received as shipments (owner, mtime, origin kept), and a resync fetching from that
    /// peer acts as its user. Give the key to the peer's `kura peer add`.
    Key {
        /// The name this node knows the peer by (the one `peer add` uses, if any).
        name: String,
        /// The local user the peer's shipments are written as (its rights apply).
        #[arg(long)]
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List peers (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer and the rules that ship to it.
    Remove {
        /// Peer name.
        name: String,
    },
    /// Backlog, lag and last error of every replication rule (a table; --json for scripts).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `kura replicate BUCKET ...`
#[derive(Args, Debug)]
pub struct ReplicateArgs {
    /// Local bucket.
    pub bucket: String,
    /// Peer to mirror it to.
    #[arg(long)]
    pub to: Option<String>,
    /// The peer writes too (set the same rule on the peer): reconcile merges both sides.
    #[arg(long)]
    pub bidirectional: bool,
    /// Only keys starting with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Compare both sides now and repair every difference.
    #[arg(long, conflicts_with_all = ["stop", "bidirectional", "prefix"])]
    pub resync: bool,
    /// Remove the rule.
    #[arg(long, conflicts_with_all = ["resync", "bidirectional", "prefix"])]
    pub stop: bool,
    /// Add the rule without checking that the peer has the bucket and accepts the key.
    #[arg(long, conflicts_with_all = ["resync", "stop"])]
    pub no_check: bool,
}

/// The first line of `f` (`-`: standard input), without its line end.
fn read_secret(f: &std::path::Path) -> Result<String, CliError> {
    let text = if f.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(f)?
    };
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err(CliError::Usage(format!("{}: no secret in it", f.display())));
    }
    Ok(line)
}

/// Runs a `kura peer ...` command.
pub async fn peer(cfg: &Config, cmd: PeerCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        PeerCmd::Add {
            name,
            endpoint,
            access_key,
            secret_key,
            ca_fingerprint,
            no_check,
            pull,
            mailbox,
            mailbox_secret,
            mailbox_secret_file,
        } => {
            let mailbox_secret = match mailbox_secret_file {
                Some(f) => Some(read_secret(&f)?),
                None => mailbox_secret,
            };
            let reachable = endpoint.is_some();
            let through = mailbox.is_some();
            let p = admin
                .add_peer(NewPeer {
                    name,
                    endpoint: endpoint.unwrap_or_default(),
                    access_key: access_key.unwrap_or_default(),
                    secret_key: secret_key.unwrap_or_default(),
                    ca_fingerprint,
                    check: Some(!no_check),
                    pull: Some(pull),
                    mailbox,
                    mailbox_secret,
                })
                .await?;
            if through {
                println!(
                    "peer {} added (through the mailbox {} on {})",
                    p.name,
                    p.mailbox.as_deref().unwrap_or_default(),
                    p.endpoint
                );
                if let Some(s) = &p.mailbox_secret {
                    println!("mailbox secret: {s}");
                    println!("(shown once; give it to the peer's `kura peer add ... --mailbox ... --mailbox-secret`)");
                }
            } else if !reachable {
                println!(
                    "peer {} added (no address: it pushes here and pulls from here)",
                    p.name
                );
            } else {
                let checked = if no_check {
                    "not checked"
                } else {
                    "reachable, key accepted"
                };
                let pulls = if pull { "; pulling its changes" } else { "" };
                println!("peer {} added ({}; {checked}{pulls})", p.name, p.endpoint);
            }
        }
        PeerCmd::Key { name, user, json } => {
            let k = admin.add_peer_key(&name, &user).await?;
            if json {
                println!("{}", to_json(&k));
            } else {
                println!("peer key for {} (acting as user {}):", k.peer, k.user);
                println!("access key id:     {}", k.access_key_id);
                println!("secret access key: {}", k.secret_access_key);
                println!("(shown once; give both to `kura peer add` on the peer)");
            }
        }
        PeerCmd::List { json } => {
            let peers = admin.peers().await?;
            if json {
                println!("{}", to_json(&peers));
            } else {
                let rows = peers.into_iter().map(|p| {
                    vec![
                        p.name,
                        p.endpoint,
                        p.access_key,
                        p.ca_fingerprint.unwrap_or_else(|| "system roots".into()),
                        p.node_id.unwrap_or_else(|| "-".into()),
                        p.mailbox.unwrap_or_else(|| "-".into()),
                    ]
                });
                super::table::print(
                    &["PEER", "ENDPOINT", "ACCESS KEY", "TRUST", "NODE", "MAILBOX"],
                    rows,
                )?;
            }
        }
        PeerCmd::Remove { name } => {
            admin.remove_peer(&name).await?;
            println!("peer {name} removed");
        }
        PeerCmd::Status { json } => {
            let rules = admin.replication().await?;
            if json {
                println!("{}", to_json(&rules));
            } else {
                let unmapped = admin.unmapped_owners().await?;
                let mut skips = Vec::new();
                for r in &rules {
                    for k in &r.skipped {
                        skips.push(format!(
                            "{} -> {}: {} files not replicated: {}",
                            r.bucket, r.peer, k.files, k.why
                        ));
                    }
                }
                let rows = rules.into_iter().map(|r| {
                    let skipped: u64 = r.skipped.iter().map(|k| k.files).sum();
                    vec![
                        r.peer,
                        if r.prefix.is_empty() {
                            r.bucket
                        } else {
                            format!("{}/{}", r.bucket, r.prefix)
                        },
                        if r.bidirectional {
                            "two-way"
                        } else {
                            "one-way"
                        }
                        .to_string(),
                        r.backlog.to_string(),
                        r.lag_seconds.map_or("-".into(), |l| format!("{l:.1}s")),
                        r.shipped.to_string(),
                        match skipped {
                            0 => "0".to_string(),
                            n => format!("{n} (SSE-C)"),
                        },
                        match r.waiting_on {
                            Some(w) => format!("{} (oldest: {w})", r.waiting),
                            None => r.waiting.to_string(),
                        },
                        r.last_error.unwrap_or_else(|| "-".into()),
                    ]
                });
                super::table::print(
                    &[
                        "PEER",
                        "BUCKET",
                        "DIRECTION",
                        "BACKLOG",
                        "LAG",
                        "SHIPPED",
                        "SKIPPED",
                        "WAITING",
                        "LAST ERROR",
                    ],
                    rows,
                )?;
                for u in unmapped {
                    println!("owner mapping: {u}");
                }
                for k in skips {
                    println!("skipped: {k}");
                }
                for w in admin.away_warnings().await? {
                    println!("WARNING: {w}");
                }
            }
        }
    }
    Ok(())
}

/// Runs `kura replicate ...`.
pub async fn replicate(cfg: &Config, a: ReplicateArgs) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    if a.resync {
        for s in admin.resync(&a.bucket, a.to.as_deref(), true).await? {
            println!(
                "resync {} -> {}: compared {}, shipped {}, deleted {}, pulled {}, refused {}",
                s.bucket, s.peer, s.compared, s.shipped, s.deleted, s.pulled, s.refused
            );
            if let Some(w) = s.away {
                eprintln!("warning: {w}");
            }
        }
        return Ok(());
    }
    let Some(peer) = a.to else {
        return Err(CliError::Usage("--to PEER is required".into()));
    };
    if a.stop {
        admin.remove_rule(&a.bucket, &peer).await?;
        println!("{} is no longer replicated to {peer}", a.bucket);
        return Ok(());
    }
    let r = admin
        .add_rule(NewRule {
            bucket: a.bucket,
            peer,
            bidirectional: Some(a.bidirectional),
            prefix: a.prefix,
            check: Some(!a.no_check),
        })
        .await?;
    println!(
        "{} -> {}{}: new changes ship from now on; run `kura replicate {} --resync` to copy what is already there",
        r.bucket,
        r.peer,
        if r.bidirectional { " (two-way)" } else { "" },
        r.bucket
    );
    Ok(())
}

/// Prints this node's certificate fingerprint, for `kura peer add --ca-fingerprint` elsewhere,
/// in the form the server logs (`AB:CD:...`); reads the certificate, never creates one.
pub fn fingerprint(cfg: &Config) -> Result<(), CliError> {
    crate::install::announce(cfg);
    let (fp, _) = crate::tls::current_fingerprint(&cfg.tls_settings())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{fp}");
    if !cfg.tls_acme_domains.is_empty() {
        eprintln!("note: this node's certificate comes from ACME and changes at every renewal; add it on other nodes without --ca-fingerprint (normal verification)");
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
