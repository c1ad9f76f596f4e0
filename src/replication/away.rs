//! Peers away longer than deletions are remembered (`replication.tombstone_days`): when this
//! node last reached each peer (or the peer pulled from it), and the warning the log,
//! `kura peer status` and a resync give about a long absence.

use std::time::Duration;

use crate::store::{Presence, Store};

/// How often a contact with a peer is recorded, and an idle rule checks that its peer is
/// there: often enough that a peer counts as away only when it really was.
pub fn beat(keep: Duration) -> Duration {
    (keep / 4).clamp(Duration::from_millis(500), Duration::from_secs(30))
}

/// Records a contact with `peer` now; logs the end of an absence longer than `keep`.
pub async fn seen(store: &Store, peer: &str, keep: Duration) {
    let (every, keep_ms) = (beat(keep).as_millis() as i64, keep.as_millis() as i64);
    match store.peer_seen(peer, every, keep_ms).await {
        Ok(Some(away)) => tracing::warn!(%peer, away = %human(away), kept = %human(keep_ms),
            "replication: the peer is back after an absence longer than deletions are remembered: \
             a file deleted before then on one side may come back from the other (a resync copies \
             what only one side has, and deletes only what a tombstone names)"),
        Ok(None) => {}
        Err(e) => tracing::warn!(%peer, error = %e, "replication: cannot record a contact"),
    }
}

/// What to tell about `p` at `now_ms`: a peer not reached for longer than `keep`, or one
/// that came back from such an absence (told for `keep`, and at least a week, after).
pub fn warning(p: &Presence, keep: Duration, now_ms: i64) -> Option<String> {
    let keep_ms = keep.as_millis() as i64;
    let kept = human(keep_ms);
    if let Some(seen) = p.seen_ms.filter(|s| now_ms - s > keep_ms) {
        return Some(format!(
            "{} not reached for {}, longer than deletions are remembered ({kept}): once back, \
             files deleted before then may come back; nothing is deleted for being absent",
            p.peer,
            human(now_ms - seen)
        ));
    }
    let (away, back) = (p.away_ms?, p.back_ms?);
    let told_for = keep_ms.max(7 * 86_400_000);
    (now_ms - back <= told_for).then(|| {
        format!(
            "{} came back {} ago after {} away, longer than deletions are remembered ({kept}): \
             files deleted before then may have come back; nothing was deleted for being absent",
            p.peer,
            human(now_ms - back),
            human(away)
        )
    })
}

/// A duration for people: `12 s`, `5 min`, `3 h`, `41 d`.
pub fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(seen: Option<i64>, away: Option<i64>, back: Option<i64>) -> Presence {
        Presence {
            peer: "b".into(),
            seen_ms: seen,
            away_ms: away,
            back_ms: back,
        }
    }

    #[test]
    fn a_long_absence_is_told_while_it_lasts_and_after() {
        let day = 86_400_000;
        let keep = Duration::from_secs(30 * 86_400);
        let now = 100 * day;
        assert_eq!(warning(&presence(None, None, None), keep, now), None);
        assert_eq!(
            warning(&presence(Some(now - day), None, None), keep, now),
            None
        );
        let away = warning(&presence(Some(now - 41 * day), None, None), keep, now);
        assert!(
            away.as_deref()
                .is_some_and(|w| w.contains("not reached for 41 d") && w.contains("30 d")),
            "{away:?}"
        );
        let back = warning(
            &presence(Some(now), Some(41 * day), Some(now - day)),
            keep,
            now,
        );
        assert!(
            back.as_deref()
                .is_some_and(|w| w.contains("came back 24 h ago after 41 d away")),
            "{back:?}"
        );
        let old = presence(Some(now), Some(41 * day), Some(now - 31 * day));
        assert_eq!(warning(&old, keep, now), None);
        assert_eq!(beat(keep), Duration::from_secs(30));
        assert_eq!(beat(Duration::from_secs(8)), Duration::from_secs(2));
    }
}
