//! Tags and descriptions of files and folders: AWS's tag limits and the description's, kept
//! in the entry's stored headers (so copies, versions and restores carry them with the row)
//! and mirrored into the search index by SQL triggers (migrations/0016_search.sql).

use std::collections::BTreeMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use super::perm::W;
use super::{headers_json, Caller, Entry, VPath, Vfs, VfsError};

/// The stored-header name of an entry's tags: a JSON list of [key, value] pairs.
pub const TAGS: &str = "x-amz-tagging";
/// The stored-header name of an entry's description (free text).
pub const DESCRIPTION: &str = "x-kura-description";
/// S3's limits: tags per object, and the lengths of a key and a value (characters).
pub const MAX_TAGS: usize = 10;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 4096;

/// An entry's tags as (key, value) pairs, in the order they were set.
pub type Tags = Vec<(String, String)>;

/// The tags stored with an entry.
pub fn tags_of(headers: &BTreeMap<String, String>) -> Tags {
    headers
        .get(TAGS)
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// The description stored with an entry.
pub fn description_of(headers: &BTreeMap<String, String>) -> Option<&str> {
    headers.get(DESCRIPTION).map(String::as_str)
}

/// Fails (`InvalidArgument`) unless `tags` keep S3's limits: at most 10, unique non-empty keys
/// of at most 128 characters, values of at most 256.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), VfsError> {
    if tags.len() > MAX_TAGS {
        return Err(VfsError::InvalidArgument("at most 10 tags per entry"));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > MAX_KEY || v.chars().count() > MAX_VALUE {
            return Err(VfsError::InvalidArgument(
                "a tag key is 1 to 128 characters, a value at most 256",
            ));
        }
        if k.chars().chain(v.chars()).any(char::is_control) {
            return Err(VfsError::InvalidArgument("tags hold no control characters"));
        }
        if tags[..i].iter().any(|(o, _)| o == k) {
            return Err(VfsError::InvalidArgument("tag keys must be unique"));
        }
    }
    Ok(())
}

/// Parses tags written as a URL query (`k1=v1&k2=v2`: S3's `x-amz-tagging` header and Kura's
/// `tags` WebDAV property), checked against the limits.
pub fn parse_query(q: &str) -> Result<Tags, VfsError> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| VfsError::InvalidArgument("tags must be UTF-8"))
    };
    let tags = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect::<Result<Tags, VfsError>>()?;
    check_tags(&tags)?;
    Ok(tags)
}

/// Tags as a URL query, the form `parse_query` reads.
pub fn to_query(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Sets (or, when empty, removes) the tags in a header map about to be stored; the tags must
/// have passed `check_tags`.
pub fn put_tags(headers: &mut BTreeMap<String, String>, tags: &[(String, String)]) {
    match serde_json::to_string(tags) {
        Ok(json) if !tags.is_empty() => {
            headers.insert(TAGS.to_string(), json);
        }
        _ => {
            headers.remove(TAGS);
        }
    }
}

/// Fails (`InvalidArgument`) for a description over 4096 characters or with control
/// characters other than line breaks and tabs.
pub fn check_description(d: &str) -> Result<(), VfsError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(VfsError::InvalidArgument(
            "a description is at most 4096 characters",
        ));
    }
    if d.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(VfsError::InvalidArgument(
            "a description holds no control characters",
        ));
    }
    Ok(())
}

impl Vfs {
    /// Replaces the tags of a file or folder (none: removes them). Changing them takes the
    /// right to change the entry (w), as for any other property, and no lock of another.
    pub async fn set_tags(
        &self,
        c: &Caller,
        path: &VPath,
        tags: &[(String, String)],
    ) -> Result<Entry, VfsError> {
        check_tags(tags)?;
        self.annotate(c, path, |h| put_tags(h, tags)).await
    }

    /// Replaces the description of a file or folder (None or empty: removes it), under the
    /// same rule as its tags.
    pub async fn set_description(
        &self,
        c: &Caller,
        path: &VPath,
        text: Option<&str>,
    ) -> Result<Entry, VfsError> {
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = text {
            check_description(t)?;
        }
        self.annotate(c, path, |h| match text {
            Some(t) => {
                h.insert(DESCRIPTION.to_string(), t.to_string());
            }
            None => {
                h.remove(DESCRIPTION);
            }
        })
        .await
    }

    /// Changes the stored headers of `path` with `change`, read and written in one transaction.
    async fn annotate<F>(&self, c: &Caller, path: &VPath, change: F) -> Result<Entry, VfsError>
    where
        F: FnOnce(&mut BTreeMap<String, String>),
    {
        if path.is_root() {
            return Err(VfsError::Forbidden("the root has no tags"));
        }
        let e = self.stat(c, path).await?;
        e.require(c, W, "the entry may not be changed")?;
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        self.store
            .update_headers(path.as_str(), |json| {
                let mut h = super::headers_from(json);
                change(&mut h);
                headers_json(&h)
            })
            .await?;
        self.stat(c, path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_queries_round_trip_and_keep_the_limits() {
        let t = parse_query("project=kura&note=a%20b+c&empty=").unwrap();
        assert_eq!(
            t,
            vec![
                ("project".into(), "kura".into()),
                ("note".into(), "a b c".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(parse_query(&to_query(&t)).unwrap(), t);
        assert!(parse_query("a=1&a=2").is_err());
        assert!(parse_query("=v").is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_query(&eleven.join("&")).is_err());
        assert!(parse_query(&format!("{}=v", "k".repeat(129))).is_err());
        assert!(parse_query(&format!("k={}", "é".repeat(256))).is_ok());
        assert!(parse_query("k=%FF").is_err());
        assert!(check_description(&"x".repeat(4097)).is_err());
        assert!(check_description("line\nbreak").is_ok());
        assert!(check_description("bell\u{7}").is_err());
    }
}
