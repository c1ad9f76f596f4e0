//! The S3 views every endpoint family shares: stored headers, user metadata, timestamps,
//! trailer names, Content-MD5 and the ACL views of an entry.

use std::collections::BTreeMap;
use std::time::SystemTime;

use s3s::dto::*;
use s3s::{s3_error, S3Result};

use crate::vfs::{Caller, Entry};

/// MD5 of nothing: the ETag of a folder marker.
pub(super) const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// Headers S3 stores with an object, as Kura keeps them.
#[derive(Default)]
pub(super) struct StoredHeaders {
    pub metadata: Option<Metadata>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
}

impl StoredHeaders {
    pub fn into_map(self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in self.metadata.unwrap_or_default() {
            m.insert(format!("x-amz-meta-{}", k.to_ascii_lowercase()), v);
        }
        // aws-chunked describes the request framing, not the object (S3 does not store it)
        let encoding = self.content_encoding.and_then(|e| {
            let kept: Vec<&str> = e
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        });
        for (k, v) in [
            ("cache-control", self.cache_control),
            ("content-disposition", self.content_disposition),
            ("content-encoding", encoding),
            ("content-language", self.content_language),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        }
        m
    }
}

pub(super) fn user_metadata(h: &BTreeMap<String, String>) -> Option<Metadata> {
    let m: Metadata = h
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("x-amz-meta-")
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    (!m.is_empty()).then_some(m)
}

pub(super) fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// Names the client announced in `x-amz-trailer`.
pub(super) fn trailer_names(h: &http::HeaderMap) -> Vec<String> {
    h.get_all("x-amz-trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Content-MD5 (base64) as hex.
pub(super) fn md5_hex(b64: &str) -> S3Result<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| s3_error!(InvalidDigest))?;
    if raw.len() != 16 {
        return Err(s3_error!(InvalidDigest));
    }
    Ok(hex::encode(raw))
}

/// The canned ACL view: the caller owns everything it can reach, with FULL_CONTROL.
pub(super) fn owner_full_control(who: &Caller) -> (Owner, Vec<Grant>) {
    let owner = Owner {
        display_name: Some(who.user.clone()),
        id: Some(who.user.clone()),
    };
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(who.user.clone()),
            id: Some(who.user.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (owner, vec![grant])
}

/// The ACL view of an entry's owner, group and mode: owner, group members (as a canonical
/// user `group:NAME`) and the other users (AuthenticatedUsers) get READ/WRITE as their mode
/// bits say, FULL_CONTROL where both are set; AllUsers gets READ when the entry is marked
/// public-read (`public`). Put*Acl maps back onto the same bits (s3/acl.rs).
pub(super) fn acl_view(e: &Entry, public: bool) -> (Owner, Vec<Grant>) {
    let owner_name = e.owner.clone().unwrap_or_else(|| "admin".into());
    let owner = Owner {
        display_name: Some(owner_name.clone()),
        id: Some(owner_name.clone()),
    };
    let perms = |bits: u32| -> Vec<&'static str> {
        match (bits & 4 != 0, bits & 2 != 0) {
            (true, true) => vec![Permission::FULL_CONTROL],
            (true, false) => vec![Permission::READ],
            (false, true) => vec![Permission::WRITE],
            (false, false) => vec![],
        }
    };
    let mut grants = Vec::new();
    let user = |id: String| Grantee {
        display_name: Some(id.clone()),
        id: Some(id),
        type_: Type::from_static(Type::CANONICAL_USER),
        email_address: None,
        uri: None,
    };
    for p in perms(e.mode >> 6) {
        grants.push(Grant {
            grantee: Some(user(owner_name.clone())),
            permission: Some(Permission::from_static(p)),
        });
    }
    if let Some(g) = &e.group {
        for p in perms(e.mode >> 3) {
            grants.push(Grant {
                grantee: Some(user(format!("group:{g}"))),
                permission: Some(Permission::from_static(p)),
            });
        }
    }
    for p in perms(e.mode) {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                email_address: None,
                uri: Some(super::acl::AUTHENTICATED.into()),
            }),
            permission: Some(Permission::from_static(p)),
        });
    }
    if public {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                email_address: None,
                uri: Some(super::acl::ALL_USERS.into()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    (owner, grants)
}
