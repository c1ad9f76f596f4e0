//! Host parsing for virtual-host-style requests: only `<bucket>.<base domain>` names a bucket;
//! the base domain itself, IP addresses and unrelated hosts are path-style.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// Parses `Host` against the configured base domain.
#[derive(Debug, Clone)]
pub struct KuraHost {
    base: Option<String>,
}

impl KuraHost {
    /// `base`: e.g. `s3.example.org`; `None` serves path-style only.
    pub fn new(base: Option<String>) -> Self {
        KuraHost {
            base: base.map(|b| b.trim_end_matches('.').to_ascii_lowercase()),
        }
    }

    /// The bucket named by a host, if any.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let base = self.base.as_deref()?;
        let name = strip_port(host);
        let prefix = name.len().checked_sub(base.len() + 1)?;
        let (bucket, rest) = name.split_at(prefix);
        (rest.len() == base.len() + 1
            && rest.starts_with('.')
            && rest[1..].eq_ignore_ascii_case(base)
            && !bucket.is_empty())
        .then_some(bucket)
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

impl S3Host for KuraHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        match self.bucket_of(host) {
            Some(b) => Ok(VirtualHost::new(host).with_bucket(b)),
            None => Ok(VirtualHost::new(host)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subdomains_of_the_base_are_buckets() {
        let h = KuraHost::new(Some("s3.example.org".into()));
        assert_eq!(h.bucket_of("photos.s3.example.org"), Some("photos"));
        assert_eq!(h.bucket_of("photos.s3.example.org:8443"), Some("photos"));
        assert_eq!(h.bucket_of("s3.example.org:8443"), None);
        assert_eq!(h.bucket_of("127.0.0.1:8443"), None);
        assert_eq!(h.bucket_of("[::1]:8443"), None);
        assert_eq!(h.bucket_of("evil.com"), None);
        assert_eq!(h.bucket_of("xs3.example.org"), None);
        assert_eq!(KuraHost::new(None).bucket_of("photos.s3.example.org"), None);
    }
}
