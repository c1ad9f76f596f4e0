//! SSE-C's face in S3 (docs/encryption.md): the three `x-amz-server-side-encryption-customer-*`
//! headers of a request (or their `x-amz-copy-source-` forms) become the client's key, which
//! the core seals and opens with; responses echo the algorithm and the key's MD5. Which file
//! needs which key is the core's rule; the gate refuses the headers over plain HTTP.

use s3s::dto::{SSECustomerAlgorithm, SSECustomerKeyMD5, ServerSideEncryption};
use s3s::{s3_error, S3Error, S3Result};

use crate::vfs::{CustomerKey, KeyHeaderError};

/// The client's key the three headers name (`None` when none came), checked against its MD5.
pub(super) fn key(
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    CustomerKey::from_headers(algorithm, key, md5).map_err(header_error)
}

/// AWS's answers to SSE-C headers that name no usable key.
fn header_error(e: KeyHeaderError) -> S3Error {
    match e {
        KeyHeaderError::Algorithm => s3_error!(
            InvalidEncryptionAlgorithmError,
            "The encryption request you specified is not valid. The valid value is AES256."
        ),
        KeyHeaderError::Incomplete => s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and the key's MD5"
        ),
        KeyHeaderError::Key => s3_error!(
            InvalidArgument,
            "The secret key was invalid for the specified algorithm."
        ),
        KeyHeaderError::Md5 => s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ),
    }
}

/// What a response about an object stored with `key` (SSE-C) says of it: the algorithm and
/// the key's MD5 (both `None` without a key).
pub(super) fn echo(
    key: Option<&CustomerKey>,
) -> (Option<SSECustomerAlgorithm>, Option<SSECustomerKeyMD5>) {
    match key {
        Some(k) => (
            Some(ServerSideEncryption::AES256.to_string()),
            Some(k.md5().to_string()),
        ),
        None => (None, None),
    }
}
