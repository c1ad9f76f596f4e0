//! Bucket and key names to namespace paths: bucket `b`, key `x/y` is `/b/x/y`.

use s3s::S3Result;

use super::errors::invalid_name;
use crate::vfs::VPath;

/// An object's place in the namespace.
pub struct ObjectPath {
    /// Canonical path.
    pub path: VPath,
    /// The key ends in `/`: a folder marker.
    pub marker: bool,
}

/// The folder a bucket is.
pub fn bucket(name: &str) -> S3Result<VPath> {
    VPath::from_segments([name]).map_err(invalid_name)
}

/// The path of `key` in `bucket`; keys that cannot be files get InvalidObjectName.
pub fn object(bucket: &str, key: &str) -> S3Result<ObjectPath> {
    let (key, marker) = match key.strip_suffix('/') {
        Some(k) => (k, true),
        None => (key, false),
    };
    if key.is_empty() {
        return Err(invalid_name("empty key"));
    }
    let path = VPath::from_segments(std::iter::once(bucket).chain(key.split('/')))
        .map_err(invalid_name)?;
    Ok(ObjectPath { path, marker })
}

/// The key of a path inside `bucket` (inverse of `object`).
pub fn key_of(bucket: &VPath, path: &VPath) -> String {
    path.as_str()
        .strip_prefix(bucket.as_str())
        .map(|k| k.trim_start_matches('/').to_string())
        .unwrap_or_default()
}
