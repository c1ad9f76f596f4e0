//! Put/Get/DeleteBucketLifecycleConfiguration: S3's rules translated to and from the core's
//! (`vfs::lifecycle`, which checks them, keeps them with the bucket and runs them).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::bucket_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::lifecycle::LifecycleRule as Rule;
use crate::vfs::Caller;

const DAY_MS: i64 = 86_400_000;

fn tag_pair(t: Tag) -> S3Result<(String, String)> {
    match (t.key, t.value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(s3_error!(MalformedXML, "a Tag needs a Key and a Value")),
    }
}

/// One S3 rule as the core's; storage class transitions are refused (Kura has one class).
fn from_dto(r: LifecycleRule) -> S3Result<Rule> {
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(s3_error!(MalformedXML, "Status is Enabled or Disabled")),
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "transitions between storage classes: Kura has one storage class"
        ));
    }
    let mut rule = Rule {
        id: r.id,
        enabled,
        ..Default::default()
    };
    match (r.filter, r.prefix) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "a rule has a Filter or a Prefix, not both"
            ))
        }
        (None, Some(p)) => rule.prefix = p,
        (None, None) => {}
        (Some(f), None) => {
            let given = [
                f.and.is_some(),
                f.prefix.is_some(),
                f.tag.is_some(),
                f.object_size_greater_than.is_some() || f.object_size_less_than.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(s3_error!(
                    MalformedXML,
                    "a Filter holds one of Prefix, Tag, object size or And"
                ));
            }
            rule.prefix = f.prefix.unwrap_or_default();
            if let Some(t) = f.tag {
                rule.tags.push(tag_pair(t)?);
            }
            rule.size_greater_than = f.object_size_greater_than;
            rule.size_less_than = f.object_size_less_than;
            if let Some(a) = f.and {
                rule.prefix = a.prefix.unwrap_or_default();
                for t in a.tags.unwrap_or_default() {
                    rule.tags.push(tag_pair(t)?);
                }
                rule.size_greater_than = a.object_size_greater_than;
                rule.size_less_than = a.object_size_less_than;
            }
        }
    }
    if let Some(e) = r.expiration {
        rule.expiration_days = e.days;
        rule.expiration_date_ms = e.date.map(|d| {
            let t: time::OffsetDateTime = d.into();
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        });
        rule.expired_object_delete_marker = e.expired_object_delete_marker.unwrap_or(false);
    }
    if let Some(n) = r.noncurrent_version_expiration {
        if n.noncurrent_days.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "NoncurrentVersionExpiration needs NoncurrentDays"
            ));
        }
        rule.noncurrent_days = n.noncurrent_days;
        rule.newer_noncurrent_versions = n.newer_noncurrent_versions;
    }
    if let Some(a) = r.abort_incomplete_multipart_upload {
        if a.days_after_initiation.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "AbortIncompleteMultipartUpload needs DaysAfterInitiation"
            ));
        }
        rule.abort_multipart_days = a.days_after_initiation;
    }
    Ok(rule)
}

fn tag_dto((key, value): &(String, String)) -> Tag {
    Tag {
        key: Some(key.clone()),
        value: Some(value.clone()),
    }
}

/// The core's rule as S3 shows it: one Filter element, `And` when it combines conditions.
fn to_dto(r: Rule) -> LifecycleRule {
    let sized = r.size_greater_than.is_some() || r.size_less_than.is_some();
    let conditions = usize::from(!r.prefix.is_empty()) + r.tags.len() + usize::from(sized);
    let filter = if conditions > 1 {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                object_size_greater_than: r.size_greater_than,
                object_size_less_than: r.size_less_than,
                prefix: (!r.prefix.is_empty()).then(|| r.prefix.clone()),
                tags: (!r.tags.is_empty()).then(|| r.tags.iter().map(tag_dto).collect()),
            }),
            ..Default::default()
        }
    } else if let Some(t) = r.tags.first() {
        LifecycleRuleFilter {
            tag: Some(tag_dto(t)),
            ..Default::default()
        }
    } else if sized {
        LifecycleRuleFilter {
            object_size_greater_than: r.size_greater_than,
            object_size_less_than: r.size_less_than,
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            prefix: Some(r.prefix.clone()),
            ..Default::default()
        }
    };
    let expiration = (r.expiration_days.is_some()
        || r.expiration_date_ms.is_some()
        || r.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            days: r.expiration_days,
            date: r.expiration_date_ms.and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(DAY_MS) * 86_400)
                    .ok()
                    .map(Timestamp::from)
            }),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
        });
    LifecycleRule {
        abort_incomplete_multipart_upload: r.abort_multipart_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d),
            }
        }),
        expiration,
        filter: Some(filter),
        id: r.id,
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d),
            newer_noncurrent_versions: r.newer_noncurrent_versions,
        }),
        noncurrent_version_transitions: None,
        prefix: None,
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        transitions: None,
    }
}

impl KuraS3 {
    pub(super) async fn put_lifecycle(
        &self,
        who: Caller,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let Some(config) = req.input.lifecycle_configuration else {
            return Err(s3_error!(MalformedXML, "no LifecycleConfiguration"));
        };
        let rules = config
            .rules
            .into_iter()
            .map(from_dto)
            .collect::<S3Result<Vec<_>>>()?;
        self.vfs
            .set_lifecycle(&who, &path, Some(&rules))
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_lifecycle(
        &self,
        who: Caller,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let Some(rules) = self
            .vfs
            .lifecycle(&who, &path)
            .await
            .map_err(bucket_error)?
        else {
            return Err(s3_error!(NoSuchLifecycleConfiguration));
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.into_iter().map(to_dto).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_lifecycle(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        self.vfs
            .set_lifecycle(&who, &path, None)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}
