//! Lifecycle rules (S3's model): per bucket, kept as its bucket setting `lifecycle`, checked
//! here once for every protocol, and run by the background worker through the core: an
//! expired current object is deleted as its bucket's owner would delete it (leaving a version
//! or trash by the bucket's policy), noncurrent versions and lone delete markers are dropped,
//! incomplete multipart uploads aborted (docs/s3.md, "Lifecycle rules").

use serde::{Deserialize, Serialize};

use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{now_ms, EntryRow};

/// The bucket setting holding a bucket's rules (JSON list of `LifecycleRule`).
pub const SETTING: &str = "lifecycle";
/// Most rules per bucket (AWS: 1,000).
const MAX_RULES: usize = 1000;
/// Longest rule id (AWS: 255 characters).
const MAX_ID: usize = 255;
/// Most noncurrent versions a rule may keep (AWS: 100).
const MAX_NEWER: i32 = 100;
const DAY_MS: i64 = 86_400_000;
/// Current objects read per page while a rule looks for expired ones.
const PAGE: i64 = 1000;

/// One lifecycle rule: which objects (filter) and what happens to them (actions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// The rule's name (unique in its bucket).
    pub id: Option<String>,
    /// `Status` Enabled; a disabled rule is kept but does nothing.
    pub enabled: bool,
    /// Key prefix the objects must have ("" for all).
    #[serde(default)]
    pub prefix: String,
    /// Tags the objects must all carry.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Objects larger than this many bytes only.
    pub size_greater_than: Option<i64>,
    /// Objects smaller than this many bytes only.
    pub size_less_than: Option<i64>,
    /// Current objects expire this many days after they were written (at the next midnight UTC).
    pub expiration_days: Option<i32>,
    /// Current objects expire on this date (ms since the epoch, a midnight UTC).
    pub expiration_date_ms: Option<i64>,
    /// Delete markers that hide nothing any more are dropped.
    #[serde(default)]
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions expire this many days after they became noncurrent.
    pub noncurrent_days: Option<i32>,
    /// ... except the newest this many noncurrent versions of each object.
    pub newer_noncurrent_versions: Option<i32>,
    /// Multipart uploads still incomplete this many days after they started are aborted.
    pub abort_multipart_days: Option<i32>,
}

/// What one run of the rules did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleRun {
    /// Current objects deleted.
    pub expired: u64,
    /// Noncurrent versions dropped.
    pub noncurrent: u64,
    /// Delete markers dropped.
    pub markers: u64,
    /// Multipart uploads aborted.
    pub aborted: u64,
}

/// The first midnight UTC at or after `ms`: AWS rounds an expiry up to a day boundary.
fn midnight_after(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
        + if ms.rem_euclid(DAY_MS) == 0 {
            0
        } else {
            DAY_MS
        }
}

/// When something written (or made noncurrent) at `since_ms` is `days` old.
fn due(since_ms: i64, days: i32) -> i64 {
    midnight_after(since_ms.saturating_add(i64::from(days).saturating_mul(DAY_MS)))
}

/// The tags stored in an object's headers (JSON map of stored headers).
fn tags_of(headers: Option<&str>) -> Vec<(String, String)> {
    headers
        .and_then(|h| serde_json::from_str::<std::collections::BTreeMap<String, String>>(h).ok())
        .map(|m| super::tags::tags_of(&m))
        .unwrap_or_default()
}

impl LifecycleRule {
    /// True when an object of this size and these stored headers is one the rule applies to
    /// (the prefix is matched by the range the rule reads).
    fn matches(&self, size: i64, headers: Option<&str>) -> bool {
        if self.size_greater_than.is_some_and(|g| size <= g)
            || self.size_less_than.is_some_and(|l| size >= l)
        {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        let have = tags_of(headers);
        self.tags.iter().all(|t| have.contains(t))
    }

    fn has_action(&self) -> bool {
        self.expiration_days.is_some()
            || self.expiration_date_ms.is_some()
            || self.expired_object_delete_marker
            || self.noncurrent_days.is_some()
            || self.abort_multipart_days.is_some()
    }
}

/// Refuses rules S3 refuses: no action, two expirations, days under 1, a date not at
/// midnight UTC, actions that take no tags given tags, ids too long or repeated.
pub fn check_rules(rules: &[LifecycleRule]) -> Result<(), VfsError> {
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(VfsError::InvalidArgument(
            "a lifecycle configuration has 1 to 1000 rules",
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for r in rules {
        if let Some(id) = &r.id {
            if id.chars().count() > MAX_ID {
                return Err(VfsError::InvalidArgument(
                    "a rule ID is at most 255 characters",
                ));
            }
            if !ids.insert(id.as_str()) {
                return Err(VfsError::InvalidArgument("rule IDs must be unique"));
            }
        }
        if !r.has_action() {
            return Err(VfsError::InvalidArgument(
                "a rule needs at least one action",
            ));
        }
        let expirations = [
            r.expiration_days.is_some(),
            r.expiration_date_ms.is_some(),
            r.expired_object_delete_marker,
        ];
        if expirations.iter().filter(|x| **x).count() > 1 {
            return Err(VfsError::InvalidArgument(
                "an Expiration has one of Days, Date and ExpiredObjectDeleteMarker",
            ));
        }
        let positive = |d: Option<i32>| d.is_none_or(|d| d > 0);
        if !positive(r.expiration_days)
            || !positive(r.noncurrent_days)
            || !positive(r.abort_multipart_days)
        {
            return Err(VfsError::InvalidArgument(
                "Days, NoncurrentDays and DaysAfterInitiation must be positive integers",
            ));
        }
        if r.expiration_date_ms
            .is_some_and(|d| d.rem_euclid(DAY_MS) != 0)
        {
            return Err(VfsError::InvalidArgument(
                "an expiration Date must be at midnight UTC",
            ));
        }
        if let Some(n) = r.newer_noncurrent_versions {
            if !(1..=MAX_NEWER).contains(&n) || r.noncurrent_days.is_none() {
                return Err(VfsError::InvalidArgument(
                    "NewerNoncurrentVersions is 1 to 100, with NoncurrentDays",
                ));
            }
        }
        if !r.tags.is_empty()
            && (r.expired_object_delete_marker || r.abort_multipart_days.is_some())
        {
            return Err(VfsError::InvalidArgument(
                "ExpiredObjectDeleteMarker and AbortIncompleteMultipartUpload take no tag filter",
            ));
        }
        if let (Some(g), Some(l)) = (r.size_greater_than, r.size_less_than) {
            if g >= l {
                return Err(VfsError::InvalidArgument(
                    "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
                ));
            }
        }
        if r.size_greater_than.is_some_and(|g| g < 0) || r.size_less_than.is_some_and(|l| l <= 0) {
            return Err(VfsError::InvalidArgument(
                "object size filters must be positive",
            ));
        }
    }
    Ok(())
}

/// The `[from, to)` path range of the keys of `bucket` starting with `prefix`.
fn key_range(bucket: &str, prefix: &str) -> (String, String) {
    let from = format!("{bucket}/{prefix}");
    // U+10FFFF encodes as the greatest UTF-8 sequence: every key with the prefix sorts below
    let to = format!("{from}\u{10FFFF}");
    (from, to)
}

impl Vfs {
    /// The bucket's lifecycle rules, for its owner or an administrator.
    pub async fn lifecycle(
        &self,
        c: &Caller,
        bucket: &VPath,
    ) -> Result<Option<Vec<LifecycleRule>>, VfsError> {
        let Some(v) = self.bucket_setting(c, bucket, SETTING).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(&v).map_err(|e| {
            tracing::error!(bucket = %bucket.as_str(), error = %e, "unreadable lifecycle rules");
            VfsError::InvalidArgument("the stored lifecycle rules are unreadable")
        })?))
    }

    /// Sets (checked, see `check_rules`) or clears the bucket's rules: its owner or an
    /// administrator.
    pub async fn set_lifecycle(
        &self,
        c: &Caller,
        bucket: &VPath,
        rules: Option<&[LifecycleRule]>,
    ) -> Result<(), VfsError> {
        let value = match rules {
            Some(r) => {
                check_rules(r)?;
                Some(serde_json::to_string(r).map_err(|_| {
                    VfsError::InvalidArgument("the lifecycle rules cannot be stored")
                })?)
            }
            None => None,
        };
        self.set_bucket_setting(c, bucket, SETTING, value.as_deref())
            .await
    }

    /// Runs every bucket's enabled rules now, or as if `days_ahead` days had passed (the
    /// background worker, and `kura lifecycle run` for tests and operators); a failure on one
    /// rule is logged and the others still run.
    pub async fn run_lifecycle(&self, days_ahead: u32) -> Result<LifecycleRun, VfsError> {
        let now_ms = now_ms().saturating_add(i64::from(days_ahead).saturating_mul(DAY_MS));
        let mut run = LifecycleRun::default();
        for (bucket, value) in self.store.buckets_with_setting(SETTING).await? {
            let rules: Vec<LifecycleRule> = match serde_json::from_str(&value) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%bucket, error = %e, "unreadable lifecycle rules skipped");
                    continue;
                }
            };
            for rule in rules.iter().filter(|r| r.enabled) {
                if let Err(e) = self.run_rule(&bucket, rule, now_ms, &mut run).await {
                    tracing::warn!(%bucket, rule = rule.id.as_deref().unwrap_or("-"), error = %e, "lifecycle rule failed");
                }
            }
        }
        Ok(run)
    }

    async fn run_rule(
        &self,
        bucket: &str,
        rule: &LifecycleRule,
        now: i64,
        run: &mut LifecycleRun,
    ) -> Result<(), VfsError> {
        let (from, to) = key_range(bucket, &rule.prefix);
        if rule.expiration_days.is_some() || rule.expiration_date_ms.is_some() {
            self.expire_current(bucket, rule, &from, &to, now, run)
                .await?;
        }
        if let Some(days) = rule.noncurrent_days {
            let keep = rule.newer_noncurrent_versions.unwrap_or(0).max(0) as usize;
            let rows = self.store.noncurrent_in_range(bucket, &from, &to).await?;
            let mut expired = Vec::new();
            let mut path = "";
            let mut nth = 0usize;
            for v in &rows {
                if v.path != path {
                    path = &v.path;
                    nth = 0;
                }
                nth += 1;
                if nth > keep
                    && now >= due(v.archived_ms, days)
                    && rule.matches(v.size, v.headers.as_deref())
                {
                    expired.push(v.id.clone());
                }
            }
            if !expired.is_empty() {
                let p = self.store.drop_versions(&expired).await?;
                run.noncurrent += p.rows;
                self.remove_kept(&p.keys).await;
            }
        }
        if rule.expired_object_delete_marker {
            let p = self.store.drop_lone_markers(bucket, &from, &to).await?;
            run.markers += p.rows;
            self.remove_kept(&p.keys).await;
        }
        if let Some(days) = rule.abort_multipart_days {
            let cutoff = now.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
            for u in self
                .store
                .uploads_older_than(cutoff.saturating_add(1))
                .await?
            {
                if u.path >= from && u.path < to && now >= due(u.created_ms, days) {
                    self.multipart_discard(&u.id).await?;
                    run.aborted += 1;
                }
            }
        }
        Ok(())
    }

    /// Deletes the current objects the rule expired, page by page, as the bucket's owner: the
    /// delete is the core's own (permissions, locks, versions or trash by the bucket's policy);
    /// one that is refused (a WebDAV lock, a file the owner may not delete) is logged and left.
    async fn expire_current(
        &self,
        bucket: &str,
        rule: &LifecycleRule,
        from: &str,
        to: &str,
        now: i64,
        run: &mut LifecycleRun,
    ) -> Result<(), VfsError> {
        if rule.expiration_date_ms.is_some_and(|d| now < d) {
            return Ok(());
        }
        let Some(owner) = self.store.entry(bucket).await?.and_then(|e| e.owner) else {
            return Ok(());
        };
        let Some(user) = self.store.user(&owner).await? else {
            tracing::warn!(%bucket, %owner, "lifecycle: the bucket's owner is gone; nothing expired");
            return Ok(());
        };
        let who = Caller::from_user(user);
        let mut after = String::new();
        loop {
            let page: Vec<EntryRow> = self.store.files_in_range(from, to, &after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.path.clone();
            for e in &page {
                let expired = match rule.expiration_days {
                    Some(days) => now >= due(e.mtime_ms, days),
                    None => true,
                };
                if !expired || !rule.matches(e.size, e.headers.as_deref()) {
                    continue;
                }
                let path = VPath::parse(&e.path)?;
                match self.delete(&who, &path).await {
                    Ok(()) => run.expired += 1,
                    Err(VfsError::NotFound) => {}
                    Err(err) => {
                        tracing::warn!(path = %e.path, error = %err, "lifecycle: an expired object was not deleted")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_to_midnight_utc() {
        assert_eq!(midnight_after(0), 0);
        assert_eq!(midnight_after(1), DAY_MS);
        assert_eq!(due(DAY_MS / 2, 1), 2 * DAY_MS);
        assert_eq!(due(DAY_MS, 1), 2 * DAY_MS);
    }

    #[test]
    fn rules_are_checked_as_s3_checks_them() {
        let ok = LifecycleRule {
            id: Some("a".into()),
            enabled: true,
            expiration_days: Some(1),
            ..Default::default()
        };
        assert!(check_rules(std::slice::from_ref(&ok)).is_ok());
        assert!(check_rules(&[]).is_err());
        let bad = [
            LifecycleRule {
                expiration_days: None,
                ..ok.clone()
            },
            LifecycleRule {
                expiration_days: Some(0),
                ..ok.clone()
            },
            LifecycleRule {
                expired_object_delete_marker: true,
                ..ok.clone()
            },
            LifecycleRule {
                expiration_days: None,
                expiration_date_ms: Some(DAY_MS + 1),
                ..ok.clone()
            },
            LifecycleRule {
                newer_noncurrent_versions: Some(3),
                ..ok.clone()
            },
            LifecycleRule {
                abort_multipart_days: Some(1),
                tags: vec![("k".into(), "v".into())],
                ..ok.clone()
            },
            LifecycleRule {
                size_greater_than: Some(10),
                size_less_than: Some(5),
                ..ok.clone()
            },
        ];
        for b in bad {
            assert!(check_rules(std::slice::from_ref(&b)).is_err(), "{b:?}");
        }
        assert!(
            check_rules(&[ok.clone(), ok.clone()]).is_err(),
            "repeated id"
        );
    }

    #[test]
    fn filters_match_size_and_every_tag() {
        let r = LifecycleRule {
            tags: vec![("k".into(), "v".into())],
            size_greater_than: Some(1),
            ..Default::default()
        };
        let tagged = r#"{"x-amz-tagging":"[[\"k\",\"v\"],[\"o\",\"p\"]]"}"#;
        assert!(r.matches(5, Some(tagged)));
        assert!(!r.matches(1, Some(tagged)));
        assert!(!r.matches(5, None));
        assert!(!r.matches(5, Some(r#"{"x-amz-tagging":"[[\"k\",\"w\"]]"}"#)));
    }
}
