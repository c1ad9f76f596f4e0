//! S3 object lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention, Put/GetObjectLegalHold
//! and the lock headers of PutObject. The rules are the core's (`vfs/retention.rs`).

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::errors::{bucket_error, object_error};
use super::names;
use super::service::KuraS3;
use crate::vfs::{Caller, LockConfig, Retention, VPath, VfsError, COMPLIANCE, GOVERNANCE};

/// A core error of an object lock call: a bucket without object lock is InvalidRequest, as
/// AWS answers.
fn lock_error(e: VfsError) -> S3Error {
    match e {
        VfsError::InvalidArgument(m) if m.contains("object lock configuration") => {
            S3Error::with_message(S3ErrorCode::InvalidRequest, m)
        }
        VfsError::NotFound => S3Error::new(S3ErrorCode::NoSuchKey),
        e => object_error(e),
    }
}

fn ms_of(t: &Timestamp) -> i64 {
    let t = time::OffsetDateTime::from(t.clone());
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn date_of(ms: i64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

fn mode_name(m: &str) -> Option<&'static str> {
    match m {
        GOVERNANCE => Some(GOVERNANCE),
        COMPLIANCE => Some(COMPLIANCE),
        _ => None,
    }
}

impl KuraS3 {
    pub(super) async fn put_lock_config(
        &self,
        who: Caller,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.require_bucket(who, &input.bucket).await?;
        let conf = input
            .object_lock_configuration
            .ok_or_else(|| s3_error!(MalformedXML, "ObjectLockConfiguration is required"))?;
        if conf
            .object_lock_enabled
            .as_ref()
            .is_none_or(|e| e.as_str() != ObjectLockEnabled::ENABLED)
        {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
        }
        let cfg = match conf.rule.and_then(|r| r.default_retention) {
            None => LockConfig::default(),
            Some(d) => {
                let days = match (d.days, d.years) {
                    (Some(n), None) => i64::from(n),
                    (None, Some(y)) => i64::from(y) * 365,
                    _ => {
                        return Err(s3_error!(
                            MalformedXML,
                            "a default retention has Days or Years"
                        ))
                    }
                };
                LockConfig {
                    mode: d.mode.map(|m| m.as_str().to_string()),
                    days: Some(days),
                }
            }
        };
        match self.vfs.set_lock_config(who, &path, &cfg).await {
            Ok(()) => Ok(S3Response::new(PutObjectLockConfigurationOutput::default())),
            Err(VfsError::Conflict(m)) => {
                let mut e = S3Error::with_message(S3ErrorCode::InvalidBucketState, m);
                e.set_status_code(http::StatusCode::CONFLICT);
                Err(e)
            }
            Err(VfsError::InvalidArgument(m)) => Err(s3_error!(InvalidArgument, "{m}")),
            Err(e) => Err(bucket_error(e)),
        }
    }

    pub(super) async fn get_lock_config(
        &self,
        who: Caller,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let who = &who;
        let path = self.require_bucket(who, &req.input.bucket).await?;
        let Some(cfg) = self
            .vfs
            .lock_config(who, &path)
            .await
            .map_err(bucket_error)?
        else {
            return Err(S3Error::with_message(
                S3ErrorCode::ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket",
            ));
        };
        let rule = match (cfg.mode.as_deref().and_then(mode_name), cfg.days) {
            (Some(m), Some(days)) => Some(ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    days: Some(days as i32),
                    mode: Some(ObjectLockRetentionMode::from_static(m)),
                    years: None,
                }),
            }),
            _ => None,
        };
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(
                    ObjectLockEnabled::ENABLED,
                )),
                rule,
            }),
        }))
    }

    /// The path of an object for a lock call (the bucket must exist).
    async fn lock_path(&self, who: &Caller, bucket: &str, key: &str) -> S3Result<VPath> {
        self.require_bucket(who, bucket).await?;
        let op = names::object(bucket, key)?;
        if op.marker {
            return Err(s3_error!(InvalidRequest, "folder markers have no lock"));
        }
        Ok(op.path)
    }

    pub(super) async fn put_retention(
        &self,
        who: Caller,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.lock_path(who, &input.bucket, &input.key).await?;
        let new = match input.retention {
            Some(ObjectLockRetention {
                mode: Some(m),
                retain_until_date: Some(t),
            }) => Some((
                mode_name(m.as_str())
                    .ok_or_else(|| s3_error!(MalformedXML, "Mode is GOVERNANCE or COMPLIANCE"))?,
                ms_of(&t),
            )),
            Some(ObjectLockRetention {
                mode: None,
                retain_until_date: None,
            })
            | None => None,
            Some(_) => {
                return Err(s3_error!(
                    MalformedXML,
                    "a retention has both Mode and RetainUntilDate"
                ))
            }
        };
        self.vfs
            .set_retention(
                who,
                &path,
                input.version_id.as_deref(),
                new,
                input.bypass_governance_retention.unwrap_or(false),
            )
            .await
            .map_err(lock_error)?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_retention(
        &self,
        who: Caller,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.lock_path(who, &input.bucket, &input.key).await?;
        let l = self
            .vfs
            .retention(who, &path, input.version_id.as_deref())
            .await
            .map_err(lock_error)?;
        let (Some(m), Some(t)) = (l.mode.as_deref().and_then(mode_name), l.until_ms) else {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration",
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from_static(m)),
                retain_until_date: Some(date_of(t)),
            }),
        }))
    }

    pub(super) async fn put_legal_hold(
        &self,
        who: Caller,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.lock_path(who, &input.bucket, &input.key).await?;
        let on = match input
            .legal_hold
            .and_then(|h| h.status)
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(ObjectLockLegalHoldStatus::ON) => true,
            Some(ObjectLockLegalHoldStatus::OFF) => false,
            _ => return Err(s3_error!(MalformedXML, "Status is ON or OFF")),
        };
        self.vfs
            .set_legal_hold(who, &path, input.version_id.as_deref(), on)
            .await
            .map_err(lock_error)?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_legal_hold(
        &self,
        who: Caller,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.lock_path(who, &input.bucket, &input.key).await?;
        let l: Retention = self
            .vfs
            .retention(who, &path, input.version_id.as_deref())
            .await
            .map_err(lock_error)?;
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from_static(if l.legal_hold {
                    ObjectLockLegalHoldStatus::ON
                } else {
                    ObjectLockLegalHoldStatus::OFF
                })),
            }),
        }))
    }

    /// The lock headers of a PutObject, applied to the version it just wrote (explicit ones
    /// win over the bucket's default, as on AWS).
    pub(super) async fn lock_written(
        &self,
        who: &Caller,
        path: &VPath,
        (mode, until, hold): (Option<&str>, Option<&Timestamp>, Option<&str>),
        version: Option<&str>,
    ) -> S3Result<()> {
        if let (Some(m), Some(t)) = (mode, until) {
            let m = mode_name(m).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "x-amz-object-lock-mode is GOVERNANCE or COMPLIANCE"
                )
            })?;
            // the version is new: its default retention may be replaced
            self.vfs
                .set_retention(who, path, version, Some((m, ms_of(t))), true)
                .await
                .map_err(lock_error)?;
        }
        if let Some(h) = hold {
            self.vfs
                .set_legal_hold(who, path, version, h == ObjectLockLegalHoldStatus::ON)
                .await
                .map_err(lock_error)?;
        }
        Ok(())
    }

    /// The lock of the version a GET or HEAD answers with (the `x-amz-object-lock-*`
    /// headers), in a bucket with object lock; none elsewhere or without a lock.
    pub(super) async fn lock_view(
        &self,
        who: &Caller,
        path: &VPath,
        version: Option<&str>,
    ) -> (
        Option<ObjectLockMode>,
        Option<Timestamp>,
        Option<ObjectLockLegalHoldStatus>,
    ) {
        let Ok(l) = self.vfs.retention(who, path, version).await else {
            return (None, None, None);
        };
        let mode = l
            .mode
            .as_deref()
            .and_then(mode_name)
            .map(ObjectLockMode::from_static);
        let until = l.until_ms.filter(|_| mode.is_some()).map(date_of);
        let hold = Some(ObjectLockLegalHoldStatus::from_static(if l.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        }));
        (mode, until, hold)
    }

    /// Lock headers are checked before a PutObject's body streams: both of mode and date or
    /// neither, and only in a bucket with object lock.
    pub(super) async fn check_lock_headers(
        &self,
        who: &Caller,
        bucket: &str,
        (mode, until, hold): (bool, bool, bool),
    ) -> S3Result<()> {
        if mode != until {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date go together"
            ));
        }
        if !(mode || hold) {
            return Ok(());
        }
        let path = self.require_bucket(who, bucket).await?;
        match self.vfs.object_lock_enabled(who, &path).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            )),
            Err(e) => Err(bucket_error(e)),
        }
    }
}
