//! Replication through an S3 mailbox: the mailbox of a peer, and per rule the letters this
//! node wrote there and has not seen acknowledged, the peer's letters that wait here and the
//! counters of both channels.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// Where a peer's mailbox is: a bucket and a prefix on the peer row's S3 endpoint, and the
/// secret shared with the peer (sealed with the server key).
#[derive(Clone, Debug, PartialEq)]
pub struct MailboxRow {
    /// The peer's name.
    pub peer: String,
    /// The bucket on the mailbox server.
    pub bucket: String,
    /// The prefix inside it ("" or ending with `/`).
    pub prefix: String,
    /// The shared secret, sealed.
    pub secret_enc: String,
}

/// The counters of one rule's two channels in its mailbox.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelRow {
    /// The last seq written to this node's channel.
    pub sent: i64,
    /// The last seq of ours the peer acknowledged (removed from the mailbox up to it).
    pub acked: i64,
    /// The last refused seq of ours already sent again.
    pub redone: i64,
    /// The last seq of the peer's channel this node is done with.
    pub pulled: i64,
    /// The oldest of the peer's seqs this node refused and the peer has not sent again yet
    /// (at most `REFUSED_PAGE`; every one is asked for, a page at a time).
    pub refused: Vec<i64>,
}

/// Letters and bodies the peer no longer needs, once an acknowledgement is recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    /// Seqs of letters to remove.
    pub letters: Vec<i64>,
    /// Bodies no letter still waiting names.
    pub bodies: Vec<String>,
}

/// How many refused seqs an acknowledgement carries (the oldest first; the next page once
/// the peer sent these again).
pub const REFUSED_PAGE: usize = 64;

impl Store {
    /// Records the mailbox of the peer `m.peer` (whose row exists).
    pub async fn insert_mailbox(&self, m: &MailboxRow) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO mailboxes (peer, bucket, prefix, secret_enc) VALUES ($1, $2, $3, $4)",
        )
        .bind(&m.peer)
        .bind(&m.bucket)
        .bind(&m.prefix)
        .bind(&m.secret_enc)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The mailbox a peer is reached through, if it is one.
    pub async fn mailbox(&self, peer: &str) -> Result<Option<MailboxRow>, MetaError> {
        let row =
            sqlx::query("SELECT peer, bucket, prefix, secret_enc FROM mailboxes WHERE peer = $1")
                .bind(peer)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| MailboxRow {
            peer: r.get(0),
            bucket: r.get(1),
            prefix: r.get(2),
            secret_enc: r.get(3),
        }))
    }

    /// The names of the peers reached through a mailbox.
    pub async fn mailbox_peers(&self) -> Result<Vec<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT peer FROM mailboxes ORDER BY peer")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The counters of a rule's channels.
    pub async fn mailbox_channel(&self, bucket: &str, peer: &str) -> Result<ChannelRow, MetaError> {
        let row = sqlx::query(
            "SELECT mailbox_sent, mailbox_acked, mailbox_redone, pulled
             FROM replications WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(ChannelRow::default());
        };
        Ok(ChannelRow {
            sent: r.get(0),
            acked: r.get(1),
            redone: r.get(2),
            pulled: r.get(3),
            refused: self.refused_page(bucket, peer).await?,
        })
    }

    /// The oldest `REFUSED_PAGE` refused seqs of the peer (ranges read one at a time: a wide
    /// range costs what its first page does).
    async fn refused_page(&self, bucket: &str, peer: &str) -> Result<Vec<i64>, MetaError> {
        let ranges: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT lo, hi FROM mailbox_refused WHERE bucket = $1 AND peer = $2
             ORDER BY lo LIMIT $3",
        )
        .bind(bucket)
        .bind(peer)
        .bind(REFUSED_PAGE as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut page = Vec::with_capacity(REFUSED_PAGE);
        'fill: for (lo, hi) in ranges {
            let mut seq = lo;
            while seq <= hi {
                if page.len() >= REFUSED_PAGE {
                    break 'fill;
                }
                page.push(seq);
                seq += 1;
            }
        }
        Ok(page)
    }

    /// How many of the peer's letters this node refused and waits for again, and the oldest.
    pub async fn refused_letters(
        &self,
        bucket: &str,
        peer: &str,
    ) -> Result<(i64, Option<i64>), MetaError> {
        let (n, oldest): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT CAST(SUM(hi - lo + 1) AS BIGINT), MIN(lo) FROM mailbox_refused WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_one(&self.pool)
        .await?;
        Ok((n.unwrap_or(0), oldest))
    }

    /// The peer sent again the paths of its letters `seqs` (refused here): they are asked
    /// for no more. Each seq is cut out of its range.
    pub async fn settle_refused(
        &self,
        bucket: &str,
        peer: &str,
        seqs: &[i64],
    ) -> Result<u64, MetaError> {
        let mut tx = self.write_tx().await?;
        let mut settled = 0;
        for &seq in seqs {
            let range: Option<(i64, i64)> = sqlx::query_as(
                "SELECT lo, hi FROM mailbox_refused
                 WHERE bucket = $1 AND peer = $2 AND lo <= $3 AND hi >= $3",
            )
            .bind(bucket)
            .bind(peer)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((lo, hi)) = range else { continue };
            settled += 1;
            sqlx::query("DELETE FROM mailbox_refused WHERE bucket = $1 AND peer = $2 AND lo = $3")
                .bind(bucket)
                .bind(peer)
                .bind(lo)
                .execute(&mut *tx)
                .await?;
            for (a, b) in [(lo, seq - 1), (seq + 1, hi)] {
                if a <= b {
                    sqlx::query(
                        "INSERT INTO mailbox_refused (bucket, peer, lo, hi) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(bucket)
                    .bind(peer)
                    .bind(a)
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// Raises the rule's counters to what the mailbox shows (after a restore, or a rule made
    /// again): letters are never numbered twice, the peer's never read twice.
    pub async fn raise_mailbox_counters(
        &self,
        bucket: &str,
        peer: &str,
        sent: i64,
        pulled: i64,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE replications SET mailbox_sent = (CASE WHEN mailbox_sent > $1 THEN mailbox_sent ELSE $1 END), pulled = (CASE WHEN pulled > $2 THEN pulled ELSE $2 END)
             WHERE bucket = $3 AND peer = $4",
        )
        .bind(sent)
        .bind(pulled)
        .bind(bucket)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a body is in the mailbox for a letter still waiting there.
    pub async fn mailbox_has_body(
        &self,
        bucket: &str,
        peer: &str,
        body: &str,
    ) -> Result<bool, MetaError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mailbox_letters WHERE bucket = $1 AND peer = $2 AND body = $3",
        )
        .bind(bucket)
        .bind(peer)
        .bind(body)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Every body letters still waiting name.
    pub async fn mailbox_bodies(&self, bucket: &str, peer: &str) -> Result<Vec<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT body FROM mailbox_letters
             WHERE bucket = $1 AND peer = $2 AND body IS NOT NULL",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records letter `seq`, written to the mailbox for the journal entry `position`: the
    /// rule moves past that entry, and the peer's mark at `path` becomes `mark` (what it will
    /// hold once it reads the letter), in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_letter(
        &self,
        bucket: &str,
        peer: &str,
        mark_node: &str,
        seq: i64,
        position: i64,
        path: &str,
        body: Option<&str>,
        mark: Option<&str>,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO mailbox_letters (bucket, peer, seq, path, body) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (bucket, peer, seq) DO UPDATE SET path = excluded.path, body = excluded.body",
        )
        .bind(bucket)
        .bind(peer)
        .bind(seq)
        .bind(path)
        .bind(body)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE replications SET mailbox_sent = (CASE WHEN mailbox_sent > $1 THEN mailbox_sent ELSE $1 END),
               position = (CASE WHEN position > $2 THEN position ELSE $2 END), shipped = shipped + 1, last_error = NULL,
               last_ok_ms = $3
             WHERE bucket = $4 AND peer = $5",
        )
        .bind(seq)
        .bind(position)
        .bind(now_ms())
        .bind(bucket)
        .bind(peer)
        .execute(&mut *tx)
        .await?;
        match mark {
            Some(etag) => {
                sqlx::query(
                    "INSERT INTO replica_marks (node, path, etag) VALUES ($1, $2, $3)
                     ON CONFLICT (node, path) DO UPDATE SET etag = excluded.etag",
                )
                .bind(mark_node)
                .bind(path)
                .bind(etag)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM replica_marks WHERE node = $1 AND path = $2")
                    .bind(mark_node)
                    .bind(path)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The path and body of a letter of ours not yet acknowledged.
    pub async fn mailbox_letter(
        &self,
        bucket: &str,
        peer: &str,
        seq: i64,
    ) -> Result<Option<(String, Option<String>)>, MetaError> {
        let row = sqlx::query(
            "SELECT path, body FROM mailbox_letters WHERE bucket = $1 AND peer = $2 AND seq = $3",
        )
        .bind(bucket)
        .bind(peer)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// The peer refused what the mailbox holds of letter `seq`: its body is forgotten (no
    /// letter points at it any more; returned, to be removed: the next letter of that
    /// content stores it again in full), its path journaled again, and the refusal counted
    /// as handled.
    pub async fn redo_letter(
        &self,
        bucket: &str,
        peer: &str,
        seq: i64,
    ) -> Result<Option<String>, MetaError> {
        self.send_letter_again(bucket, peer, seq, true).await
    }

    /// As `redo_letter` for a letter the peer says fails to open past its cursor (a
    /// complaint, not a refusal): the refusal counter stays, so the refusal that may follow
    /// for it and the letters before it is still handled.
    pub async fn resend_letter(
        &self,
        bucket: &str,
        peer: &str,
        seq: i64,
    ) -> Result<Option<String>, MetaError> {
        self.send_letter_again(bucket, peer, seq, false).await
    }

    async fn send_letter_again(
        &self,
        bucket: &str,
        peer: &str,
        seq: i64,
        settle: bool,
    ) -> Result<Option<String>, MetaError> {
        let letter = self.mailbox_letter(bucket, peer, seq).await?;
        let mut tx = self.write_tx().await?;
        let mut forgotten = None;
        if let Some((path, body)) = letter {
            if let Some(body) = body {
                sqlx::query(
                    "UPDATE mailbox_letters SET body = NULL WHERE bucket = $1 AND peer = $2 AND body = $3",
                )
                .bind(bucket)
                .bind(peer)
                .bind(&body)
                .execute(&mut *tx)
                .await?;
                forgotten = Some(body);
            }
            super::replication_journal::journal_path_tx(&mut tx, &path, None).await?;
        }
        if !settle {
            tx.commit().await?;
            return Ok(forgotten);
        }
        sqlx::query(
            "UPDATE replications SET mailbox_redone = (CASE WHEN mailbox_redone > $1 THEN mailbox_redone ELSE $1 END) WHERE bucket = $2 AND peer = $3",
        )
        .bind(seq)
        .bind(bucket)
        .bind(peer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Records that the peer is done with our letters up to `done` (never past what was
    /// sent) and drops their rows; returns the objects the mailbox no longer needs. They are
    /// deleted after this commits: a crash in between leaves objects no row names, which the
    /// next start sweeps.
    pub async fn acknowledge_letters(
        &self,
        bucket: &str,
        peer: &str,
        done: i64,
    ) -> Result<Collected, MetaError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE replications SET mailbox_acked = (CASE WHEN mailbox_acked > (CASE WHEN $1 < mailbox_sent THEN $1 ELSE mailbox_sent END) THEN mailbox_acked ELSE (CASE WHEN $1 < mailbox_sent THEN $1 ELSE mailbox_sent END) END)
             WHERE bucket = $2 AND peer = $3",
        )
        .bind(done)
        .bind(bucket)
        .bind(peer)
        .execute(&mut *tx)
        .await?;
        let acked: i64 = sqlx::query_scalar(
            "SELECT mailbox_acked FROM replications WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        let letters: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM mailbox_letters WHERE bucket = $1 AND peer = $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(bucket)
        .bind(peer)
        .bind(acked)
        .fetch_all(&mut *tx)
        .await?;
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT body FROM mailbox_letters l
             WHERE bucket = $1 AND peer = $2 AND seq <= $3 AND body IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM mailbox_letters o WHERE o.bucket = l.bucket
                 AND o.peer = l.peer AND o.seq > $3 AND o.body = l.body)",
        )
        .bind(bucket)
        .bind(peer)
        .bind(acked)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM mailbox_letters WHERE bucket = $1 AND peer = $2 AND seq <= $3")
            .bind(bucket)
            .bind(peer)
            .bind(acked)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Collected { letters, bodies })
    }

    /// This node refused the peer's letter `seq` (unreadable, tampered with or missing): the
    /// cursor moves past it and the acknowledgement asks for it again.
    pub async fn refuse_letter(&self, bucket: &str, peer: &str, seq: i64) -> Result<(), MetaError> {
        self.refuse_letters(bucket, peer, seq, seq).await
    }

    /// Refuses the peer's letters `from..=to` at once: the cursor moves past `to` and the
    /// range is remembered whole (one row, whatever its length: a wide range costs what a
    /// single letter does), until the peer sends each again.
    pub async fn refuse_letters(
        &self,
        bucket: &str,
        peer: &str,
        from: i64,
        to: i64,
    ) -> Result<(), MetaError> {
        if to < from {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let rule: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM replications WHERE bucket = $1 AND peer = $2")
                .bind(bucket)
                .bind(peer)
                .fetch_optional(&mut *tx)
                .await?;
        if rule.is_none() {
            return Ok(());
        }
        // seqs already refused are not counted twice: the new range keeps to what is new
        let covered: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT lo, hi FROM mailbox_refused
             WHERE bucket = $1 AND peer = $2 AND hi >= $3 AND lo <= $4 ORDER BY lo",
        )
        .bind(bucket)
        .bind(peer)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let mut at = from;
        let mut fresh = Vec::new();
        for (lo, hi) in covered {
            if lo > at {
                fresh.push((at, lo - 1));
            }
            at = at.max(hi.saturating_add(1));
        }
        if at <= to {
            fresh.push((at, to));
        }
        for (lo, hi) in fresh {
            sqlx::query(
                "INSERT INTO mailbox_refused (bucket, peer, lo, hi) VALUES ($1, $2, $3, $4)",
            )
            .bind(bucket)
            .bind(peer)
            .bind(lo)
            .bind(hi)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE replications SET pulled = (CASE WHEN pulled > $1 THEN pulled ELSE $1 END) WHERE bucket = $2 AND peer = $3",
        )
        .bind(to)
        .bind(bucket)
        .bind(peer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remembers the peer's letter the key `path` waits on here.
    pub async fn wait_letter(
        &self,
        bucket: &str,
        peer: &str,
        path: &str,
        seq: i64,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO mailbox_waiting (bucket, peer, path, seq) SELECT $1, $2, $3, $4
             WHERE EXISTS (SELECT 1 FROM replications WHERE bucket = $1 AND peer = $2)
             ON CONFLICT (bucket, peer, path) DO UPDATE SET seq = (CASE WHEN seq > excluded.seq THEN seq ELSE excluded.seq END)",
        )
        .bind(bucket)
        .bind(peer)
        .bind(path)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The key no longer waits on a letter (applied, or a later one replaced it).
    pub async fn unwait_letter(
        &self,
        bucket: &str,
        peer: &str,
        path: &str,
    ) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM mailbox_waiting WHERE bucket = $1 AND peer = $2 AND path = $3")
            .bind(bucket)
            .bind(peer)
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The letter the key `path` waits on.
    pub async fn waiting_letter(
        &self,
        bucket: &str,
        peer: &str,
        path: &str,
    ) -> Result<Option<i64>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT seq FROM mailbox_waiting WHERE bucket = $1 AND peer = $2 AND path = $3",
        )
        .bind(bucket)
        .bind(peer)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The oldest letter a key waits on: the peer keeps it (and what follows) in the mailbox.
    pub async fn oldest_waiting_letter(
        &self,
        bucket: &str,
        peer: &str,
    ) -> Result<Option<i64>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(seq) FROM mailbox_waiting WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Asks for a manifest to be sent to the peer (`answer`: as the answer to the peer's; a
    /// request, which the peer answers, wins over an answer).
    pub async fn want_manifest(
        &self,
        bucket: &str,
        peer: &str,
        answer: bool,
    ) -> Result<bool, MetaError> {
        let n = sqlx::query(
            "UPDATE replications SET mailbox_manifest = CASE
               WHEN $1 = 1 OR mailbox_manifest = 0 THEN $1 ELSE mailbox_manifest END
             WHERE bucket = $2 AND peer = $3",
        )
        .bind(if answer { 2 } else { 1 })
        .bind(bucket)
        .bind(peer)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The manifest to send, if one is wanted: Some(true) for an answer, Some(false) for a
    /// request.
    pub async fn manifest_wanted(
        &self,
        bucket: &str,
        peer: &str,
    ) -> Result<Option<bool>, MetaError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT mailbox_manifest FROM replications WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match v {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        })
    }

    /// The manifest wanted was written (as `answer`, unless a request came meanwhile).
    pub async fn manifest_sent(
        &self,
        bucket: &str,
        peer: &str,
        answer: bool,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE replications SET mailbox_manifest = 0
             WHERE bucket = $1 AND peer = $2 AND mailbox_manifest = $3",
        )
        .bind(bucket)
        .bind(peer)
        .bind(if answer { 2 } else { 1 })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many files of `bucket` lie below `prefix` (what a manifest lists).
    pub async fn count_files(&self, bucket: &str, prefix: &str) -> Result<u64, MetaError> {
        let lo = format!("/{bucket}/{prefix}");
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM entries
             WHERE path >= $1 AND path < $2 AND substr(path, 1, length($1)) = $1 AND is_dir = 0",
        )
        .bind(&lo)
        .bind(format!("/{bucket}0"))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EntryRow, PeerRow};

    async fn rule() -> Store {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&EntryRow {
            path: "/photos".into(),
            parent: "/".into(),
            is_dir: true,
            size: 0,
            mtime_ms: 1,
            etag: "e".into(),
            content_type: None,
            owner: None,
            headers: None,
            grp: None,
            mode: 0o775,
            origin: None,
            sealed: None,
            blob: None,
        })
        .await
        .unwrap();
        s.insert_peer(&PeerRow {
            name: "b".into(),
            endpoint: "https://mailbox".into(),
            access_key: "k".into(),
            secret_enc: "s".into(),
            ca_fingerprint: None,
            node_id: None,
            created_ms: 0,
            pull: false,
        })
        .await
        .unwrap();
        s.upsert_rule("photos", "b", "", true).await.unwrap();
        s
    }

    #[tokio::test]
    async fn acknowledged_letters_free_the_bodies_no_later_letter_names() {
        let s = rule().await;
        for (seq, body) in [(1, Some("x")), (2, Some("y")), (3, Some("x")), (4, None)] {
            s.record_letter(
                "photos",
                "b",
                "kura-b",
                seq,
                seq * 10,
                "/photos/f",
                body,
                Some("e"),
            )
            .await
            .unwrap();
        }
        let c = s.mailbox_channel("photos", "b").await.unwrap();
        assert_eq!((c.sent, c.acked), (4, 0));
        // x is named by letter 3 too: only y goes
        let got = s.acknowledge_letters("photos", "b", 2).await.unwrap();
        assert_eq!(
            got,
            Collected {
                letters: vec![1, 2],
                bodies: vec!["y".into()]
            }
        );
        assert!(s.mailbox_has_body("photos", "b", "x").await.unwrap());
        // an acknowledgement beyond what was sent is held to it
        let got = s.acknowledge_letters("photos", "b", 99).await.unwrap();
        assert_eq!(
            got,
            Collected {
                letters: vec![3, 4],
                bodies: vec!["x".into()]
            }
        );
        assert_eq!(s.mailbox_channel("photos", "b").await.unwrap().acked, 4);
        assert_eq!(
            s.mark("kura-b", "/photos/f").await.unwrap().as_deref(),
            Some("e")
        );
    }

    #[tokio::test]
    async fn a_refused_letter_is_sent_again_with_its_body_in_full() {
        let s = rule().await;
        s.record_letter(
            "photos",
            "b",
            "kura-b",
            1,
            7,
            "/photos/f",
            Some("x"),
            Some("e"),
        )
        .await
        .unwrap();
        s.record_letter(
            "photos",
            "b",
            "kura-b",
            2,
            8,
            "/photos/g",
            Some("x"),
            Some("e"),
        )
        .await
        .unwrap();
        let before = s.journal_after("photos", 0, 10).await.unwrap().len();
        assert_eq!(
            s.redo_letter("photos", "b", 1).await.unwrap().as_deref(),
            Some("x")
        );
        assert!(!s.mailbox_has_body("photos", "b", "x").await.unwrap());
        let j = s.journal_after("photos", 0, 10).await.unwrap();
        assert_eq!(j.len(), before + 1);
        assert_eq!(j.last().unwrap().path, "/photos/f");
        assert_eq!(s.mailbox_channel("photos", "b").await.unwrap().redone, 1);
        // the receiving side: refusals move the cursor and every one is remembered, asked
        // for a page at a time (the oldest first) until the peer sent it again
        for seq in 1..=70 {
            s.refuse_letter("photos", "b", seq).await.unwrap();
        }
        s.refuse_letter("photos", "b", 5).await.unwrap();
        let c = s.mailbox_channel("photos", "b").await.unwrap();
        assert_eq!(c.pulled, 70);
        assert_eq!(c.refused, (1..=64).collect::<Vec<_>>());
        assert_eq!(
            s.refused_letters("photos", "b").await.unwrap(),
            (70, Some(1))
        );
        assert_eq!(
            s.settle_refused("photos", "b", &c.refused).await.unwrap(),
            64
        );
        let c = s.mailbox_channel("photos", "b").await.unwrap();
        assert_eq!(c.refused, (65..=70).collect::<Vec<_>>());
        // a range far wider than a page costs one write, not one per seq
        let t = std::time::Instant::now();
        s.refuse_letters("photos", "b", 60, i64::MAX / 2)
            .await
            .unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        let c = s.mailbox_channel("photos", "b").await.unwrap();
        assert_eq!(c.pulled, i64::MAX / 2);
        assert_eq!(c.refused.len(), REFUSED_PAGE);
        assert_eq!(c.refused.first(), Some(&60));
        let (n, _) = s.refused_letters("photos", "b").await.unwrap();
        assert_eq!(n, i64::MAX / 2 - 59);
        // a seq cut out of the middle of a range leaves both sides
        s.settle_refused("photos", "b", &[100]).await.unwrap();
        let (m, _) = s.refused_letters("photos", "b").await.unwrap();
        assert_eq!(m, n - 1);
    }
}
