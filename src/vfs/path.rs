//! Validated, canonical paths: the one place where a name from any protocol becomes a storage path.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::VfsError;

/// Longest single name accepted (bytes, after NFC), matching common filesystem limits.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest whole path accepted (bytes, after NFC).
pub const MAX_PATH_BYTES: usize = 4096;

/// A canonical namespace path: `/` or `/a/b` (NFC, no empty, `.` or `..` segments, no control characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VPath(String);

impl VPath {
    /// The namespace root, which always exists.
    pub fn root() -> Self {
        VPath("/".to_string())
    }

    /// Builds a path from already-decoded segments, so every adapter validates with the same rules.
    pub fn from_segments<'a, I>(segments: I) -> Result<Self, VfsError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut out = String::new();
        for seg in segments {
            let seg = validate_segment(seg)?;
            out.push('/');
            out.push_str(&seg);
        }
        if out.is_empty() {
            return Ok(Self::root());
        }
        if out.len() > MAX_PATH_BYTES {
            return Err(VfsError::InvalidPath("path too long".into()));
        }
        Ok(VPath(out))
    }

    /// Parses a decoded slash-separated path; one trailing slash (a collection marker) is allowed.
    pub fn parse(path: &str) -> Result<Self, VfsError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(VfsError::InvalidPath("path must start with /".into()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Self::root());
        }
        Self::from_segments(rest.split('/'))
    }

    /// Parses a still percent-encoded URL path, rejecting encoded separators (`%2f`, `%5c`) and NUL.
    pub fn parse_url(encoded: &str) -> Result<Self, VfsError> {
        let Some(rest) = encoded.strip_prefix('/') else {
            return Err(VfsError::InvalidPath("path must start with /".into()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Self::root());
        }
        let mut decoded = Vec::new();
        for raw in rest.split('/') {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
            let seg = String::from_utf8(bytes)
                .map_err(|_| VfsError::InvalidPath("name is not UTF-8".into()))?;
            decoded.push(seg);
        }
        Self::from_segments(decoded.iter().map(String::as_str))
    }

    /// The path as stored in SQL and used as the storage key (with a leading slash).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the namespace root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The last segment; empty for the root.
    pub fn name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => "",
        }
    }

    /// The containing folder; the root is its own parent.
    pub fn parent(&self) -> VPath {
        match self.0.rfind('/') {
            Some(0) | None => Self::root(),
            Some(i) => VPath(self.0[..i].to_string()),
        }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// The key for the storage operator: relative, files plain, folders with a trailing slash.
    pub fn storage_key(&self, is_dir: bool) -> String {
        let rel = self.0.trim_start_matches('/');
        if is_dir && !rel.is_empty() {
            format!("{rel}/")
        } else {
            rel.to_string()
        }
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_segment(seg: &str) -> Result<String, VfsError> {
    if seg.is_empty() {
        return Err(VfsError::InvalidPath("empty path segment".into()));
    }
    if seg == "." || seg == ".." {
        return Err(VfsError::InvalidPath(
            "'.' and '..' segments are not allowed".into(),
        ));
    }
    if seg.chars().any(|c| c.is_control()) {
        return Err(VfsError::InvalidPath(
            "control characters are not allowed".into(),
        ));
    }
    if seg.contains('/') || seg.contains('\\') {
        return Err(VfsError::InvalidPath(
            "slashes are not allowed in a name".into(),
        ));
    }
    let nfc: String = seg.nfc().collect();
    if nfc.len() > MAX_NAME_BYTES {
        return Err(VfsError::InvalidPath("name too long".into()));
    }
    Ok(nfc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(VPath::parse("/").unwrap(), VPath::root());
        assert_eq!(VPath::parse("/a/b/").unwrap().as_str(), "/a/b");
        assert_eq!(VPath::parse_url("/a%20b/c").unwrap().as_str(), "/a b/c");
        assert_eq!(VPath::parse("/a/b").unwrap().parent().as_str(), "/a");
        assert_eq!(VPath::parse("/a").unwrap().parent(), VPath::root());
        assert_eq!(VPath::parse("/a/b").unwrap().name(), "b");
    }

    #[test]
    fn rejects_traversal_and_tricks() {
        for bad in [
            "/..",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/\u{0}b",
            "/a\\b",
            "/a/\u{7}",
            "relative",
        ] {
            assert!(VPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        for bad in [
            "/%2e%2e/etc",
            "/a%2fb",
            "/a%5cb",
            "/a%00b",
            "/%2E",
            "/a/%ff",
        ] {
            assert!(VPath::parse_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limits() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(VPath::parse(&format!("/{long}")).is_err());
        let ok = "x".repeat(MAX_NAME_BYTES);
        assert!(VPath::parse(&format!("/{ok}")).is_ok());
        let deep = format!("/{}", vec!["y".repeat(200); 30].join("/"));
        assert!(VPath::parse(&deep).is_err());
    }

    #[test]
    fn nfd_and_nfc_are_one_name() {
        let nfd = VPath::parse("/Cafe\u{301}").unwrap();
        let nfc = VPath::parse("/Caf\u{e9}").unwrap();
        assert_eq!(nfd, nfc);
    }

    #[test]
    fn prefixes() {
        let a = VPath::parse("/a").unwrap();
        let ab = VPath::parse("/a/b").unwrap();
        let abc = VPath::parse("/abc").unwrap();
        assert!(ab.starts_with(&a));
        assert!(!abc.starts_with(&a));
        assert!(ab.starts_with(&VPath::root()));
        assert_eq!(ab.storage_key(false), "a/b");
        assert_eq!(ab.storage_key(true), "a/b/");
    }
}
