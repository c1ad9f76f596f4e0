//! Put/Get/DeleteBucketEncryption: S3's face of a bucket's encryption at rest (SSE-S3,
//! `AES256`; the rule lives in the core, vfs/sealing.rs).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::bucket_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::Caller;

impl KuraS3 {
    pub(super) async fn put_encryption(
        &self,
        who: Caller,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let rules = &req.input.server_side_encryption_configuration.rules;
        let aes = |r: &ServerSideEncryptionRule| {
            r.apply_server_side_encryption_by_default
                .as_ref()
                .is_some_and(|d| d.sse_algorithm.as_str() == ServerSideEncryption::AES256)
        };
        if rules.len() != 1 || !aes(&rules[0]) {
            return Err(s3_error!(
                InvalidArgument,
                "only one rule with SSEAlgorithm AES256 is supported"
            ));
        }
        self.vfs
            .set_bucket_encrypted(&who, &path, true)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn get_encryption(
        &self,
        who: Caller,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let on = self
            .vfs
            .bucket_encrypted(&who, &path)
            .await
            .map_err(bucket_error)?;
        if !on {
            return Err(s3_error!(ServerSideEncryptionConfigurationNotFoundError));
        }
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        sse_algorithm: ServerSideEncryption::from_static(
                            ServerSideEncryption::AES256,
                        ),
                        kms_master_key_id: None,
                    }),
                    bucket_key_enabled: None,
                }],
            }),
        }))
    }

    pub(super) async fn delete_encryption(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        self.vfs
            .set_bucket_encrypted(&who, &path, false)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}
