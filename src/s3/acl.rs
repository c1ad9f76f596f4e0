//! PutBucketAcl and PutObjectAcl: canned ACLs and grants mapped onto the entry's owner,
//! group and other mode bits, plus the public-read switch; what has no such meaning is
//! refused with `NotImplemented`, naming why. Who may: the core's chmod rule.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::{bucket_error, object_error};
use super::names;
use super::service::KuraS3;
use crate::vfs::{Caller, Entry, VPath};

/// The AllUsers group of S3 grants: anyone, signed or not.
pub(super) const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The AuthenticatedUsers group: every Kura user (the mode's "other" class).
pub(super) const AUTHENTICATED: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

const R: u32 = 4;
const W: u32 = 2;

/// An ACL in Kura's terms: rw bits per class (`group: None` keeps the group's bits) and
/// whether anonymous callers may read.
#[derive(Debug, PartialEq)]
struct Wanted {
    owner: u32,
    group: Option<u32>,
    other: u32,
    public: bool,
}

fn unmapped(why: &str) -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "this ACL has no meaning in Kura's modes: {why}"
    )
}

/// A canned ACL. Canned ACLs name no group, so the group's bits are kept.
fn canned(acl: &str, owner_is_bucket_owner: bool) -> S3Result<Wanted> {
    let w = |other, public| Wanted {
        owner: R | W,
        group: None,
        other,
        public,
    };
    match acl {
        "private" => Ok(w(0, false)),
        "public-read" => Ok(w(R, true)),
        "authenticated-read" => Ok(w(R, false)),
        "bucket-owner-read" | "bucket-owner-full-control" if owner_is_bucket_owner => {
            Ok(w(0, false))
        }
        "bucket-owner-read" | "bucket-owner-full-control" => Err(unmapped(
            "the object's owner is not the bucket's owner, and a mode grants nothing to a second user",
        )),
        "public-read-write" => Err(unmapped("anonymous callers never write")),
        other => Err(unmapped(&format!("canned ACL {other}"))),
    }
}

/// Refuses a canned ACL Kura cannot apply, before anything is written (POST Object's `acl`).
pub(super) fn check_canned(acl: &str) -> S3Result<()> {
    canned(acl, true).map(|_| ())
}

/// Who a grant names.
enum Grantee {
    Id(String),
    Uri(String),
    Email(String),
}

/// `id="ann", uri="http://..."` (an `x-amz-grant-*` header).
fn header_grantees(v: &str) -> S3Result<Vec<Grantee>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|g| {
            let (k, v) = g
                .split_once('=')
                .ok_or_else(|| s3_error!(InvalidArgument, "a grant is type=value: {g}"))?;
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "id" => Ok(Grantee::Id(v)),
                "uri" => Ok(Grantee::Uri(v)),
                "emailaddress" => Ok(Grantee::Email(v)),
                _ => Err(s3_error!(InvalidArgument, "unknown grantee type in {g}")),
            }
        })
        .collect()
}

/// Grants (from headers or an AccessControlPolicy body) as bits: they replace the whole ACL,
/// so a class no grant names gets no bits.
fn from_grants(grants: &[(String, Grantee)], e: &Entry) -> S3Result<Wanted> {
    let mut w = Wanted {
        owner: 0,
        group: Some(0),
        other: 0,
        public: false,
    };
    let owner = e.owner.as_deref().unwrap_or("admin");
    let group = e.group.as_deref().map(|g| format!("group:{g}"));
    for (perm, who) in grants {
        let bits = match perm.as_str() {
            Permission::READ => R,
            Permission::WRITE => W,
            Permission::FULL_CONTROL => R | W,
            // the owner always reads and changes the ACL; nobody else can
            Permission::READ_ACP | Permission::WRITE_ACP => 0,
            p => return Err(s3_error!(InvalidArgument, "unknown permission {p}")),
        };
        let acp_only = bits == 0;
        match who {
            Grantee::Id(id) if id == owner => w.owner |= bits,
            Grantee::Id(id) if acp_only => {
                return Err(unmapped(&format!(
                    "only the owner reads and changes the ACL, not {id}"
                )))
            }
            Grantee::Id(id) if Some(id) == group.as_ref() => {
                w.group = Some(w.group.unwrap_or(0) | bits)
            }
            Grantee::Id(id) => {
                return Err(unmapped(&format!(
                    "a mode grants to its owner ({owner}), its group ({}), AuthenticatedUsers and AllUsers, not to {id}",
                    group.as_deref().unwrap_or("none")
                )))
            }
            Grantee::Uri(u) if acp_only => {
                return Err(unmapped(&format!("only the owner reads and changes the ACL, not {u}")))
            }
            Grantee::Uri(u) if u == AUTHENTICATED => w.other |= bits,
            Grantee::Uri(u) if u == ALL_USERS && bits == R => {
                w.other |= R;
                w.public = true;
            }
            Grantee::Uri(u) if u == ALL_USERS => {
                return Err(unmapped("anonymous callers may only read"))
            }
            Grantee::Uri(u) => return Err(unmapped(&format!("group {u}"))),
            Grantee::Email(m) => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "Kura knows users by name, not by e-mail address ({m})"
                ))
            }
        }
    }
    Ok(w)
}

/// The grants of an AccessControlPolicy body.
fn body_grants(p: AccessControlPolicy) -> S3Result<Vec<(String, Grantee)>> {
    p.grants
        .unwrap_or_default()
        .into_iter()
        .map(|g| {
            let perm = g
                .permission
                .ok_or_else(|| s3_error!(MalformedACLError, "a Grant needs a Permission"))?;
            let who = g
                .grantee
                .ok_or_else(|| s3_error!(MalformedACLError, "a Grant needs a Grantee"))?;
            let who = match (who.id, who.uri, who.email_address) {
                (Some(id), None, None) => Grantee::Id(id),
                (None, Some(uri), None) => Grantee::Uri(uri),
                (None, None, Some(m)) => Grantee::Email(m),
                _ => {
                    return Err(s3_error!(
                        MalformedACLError,
                        "a Grantee has one of ID, URI or EmailAddress"
                    ))
                }
            };
            Ok((perm.as_str().to_string(), who))
        })
        .collect()
}

/// The ACL a request asks for: a canned ACL, grant headers or a body, exactly one of them.
struct Request {
    canned: Option<String>,
    headers: Vec<(&'static str, Option<String>)>,
    body: Option<AccessControlPolicy>,
}

impl Request {
    fn wanted(self, e: &Entry, owner_is_bucket_owner: bool) -> S3Result<Wanted> {
        let headers: Vec<_> = self
            .headers
            .into_iter()
            .filter_map(|(p, v)| v.map(|v| (p, v)))
            .collect();
        match (self.canned, headers.is_empty(), self.body) {
            (Some(c), true, None) => canned(&c, owner_is_bucket_owner),
            (None, false, None) => {
                let mut grants = Vec::new();
                for (perm, v) in headers {
                    for who in header_grantees(&v)? {
                        grants.push((perm.to_string(), who));
                    }
                }
                from_grants(&grants, e)
            }
            (None, true, Some(body)) => from_grants(&body_grants(body)?, e),
            (None, true, None) => Err(s3_error!(
                MissingSecurityHeader,
                "give a canned ACL (x-amz-acl), x-amz-grant-* headers or an AccessControlPolicy"
            )),
            _ => Err(s3_error!(
                InvalidRequest,
                "Specifying both Canned ACLs and Header Grants is not allowed"
            )),
        }
    }
}

/// The mode of `e` under `w`: a folder that may be read or changed may also be entered.
fn mode_of(w: &Wanted, e: &Entry) -> u32 {
    let dir = |b: u32| if e.is_dir && b != 0 { b | 1 } else { b };
    let group = w.group.map_or((e.mode >> 3) & 7, dir);
    (dir(w.owner) << 6) | (group << 3) | dir(w.other)
}

impl KuraS3 {
    /// Applies an ACL request to `path` through the core (chmod's rule decides who may).
    async fn apply_acl(
        &self,
        who: &Caller,
        path: &VPath,
        bucket: &VPath,
        acl: Request,
    ) -> Result<(), s3s::S3Error> {
        let e = self.vfs.stat(who, path).await.map_err(object_error)?;
        let bucket_owner = if path == bucket {
            e.owner.clone()
        } else {
            self.vfs
                .stat(who, bucket)
                .await
                .map_err(bucket_error)?
                .owner
        };
        let w = acl.wanted(&e, bucket_owner == e.owner)?;
        self.vfs
            .set_acl(who, path, mode_of(&w, &e), Some(w.public))
            .await
            .map_err(object_error)
    }

    pub(super) async fn put_bucket_acl(
        &self,
        who: Caller,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let i = req.input;
        let path = self.require_bucket(&who, &i.bucket).await?;
        let acl = Request {
            canned: i.acl.map(|a| a.as_str().to_string()),
            headers: vec![
                (Permission::FULL_CONTROL, i.grant_full_control),
                (Permission::READ, i.grant_read),
                (Permission::READ_ACP, i.grant_read_acp),
                (Permission::WRITE, i.grant_write),
                (Permission::WRITE_ACP, i.grant_write_acp),
            ],
            body: i.access_control_policy,
        };
        self.apply_acl(&who, &path, &path, acl).await?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    pub(super) async fn put_object_acl(
        &self,
        who: Caller,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let i = req.input;
        let e = self.object_entry(&who, &i.bucket, &i.key).await?;
        let bucket = names::bucket(&i.bucket)?;
        let acl = Request {
            canned: i.acl.map(|a| a.as_str().to_string()),
            headers: vec![
                (Permission::FULL_CONTROL, i.grant_full_control),
                (Permission::READ, i.grant_read),
                (Permission::READ_ACP, i.grant_read_acp),
                (Permission::WRITE, i.grant_write),
                (Permission::WRITE_ACP, i.grant_write_acp),
            ],
            body: i.access_control_policy,
        };
        self.apply_acl(&who, &e.path, &bucket, acl).await?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    fn entry(is_dir: bool, mode: u32) -> Entry {
        Entry {
            path: VPath::from_segments(["b", "k"]).unwrap(),
            is_dir,
            size: 0,
            mtime: SystemTime::UNIX_EPOCH,
            etag: String::new(),
            content_type: String::new(),
            owner: Some("ann".into()),
            group: Some("family".into()),
            mode,
            headers: BTreeMap::new(),
            has_props: None,
            sealed: None,
            blob: None,
        }
    }

    #[test]
    fn canned_acls_map_onto_owner_and_other_bits() {
        let f = entry(false, 0o664);
        assert_eq!(mode_of(&canned("private", true).unwrap(), &f), 0o660);
        let public = canned("public-read", true).unwrap();
        assert!(public.public);
        assert_eq!(mode_of(&public, &f), 0o664);
        assert_eq!(
            mode_of(&canned("authenticated-read", true).unwrap(), &f),
            0o664
        );
        assert_eq!(
            mode_of(&canned("public-read", true).unwrap(), &entry(true, 0o770)),
            0o775
        );
        assert_eq!(
            mode_of(&canned("bucket-owner-full-control", true).unwrap(), &f),
            0o660
        );
        for refused in ["public-read-write", "aws-exec-read", "log-delivery-write"] {
            assert!(canned(refused, true).is_err(), "{refused}");
        }
        assert!(canned("bucket-owner-read", false).is_err());
    }

    #[test]
    fn grants_map_onto_classes_or_are_refused() {
        let f = entry(false, 0o664);
        let g = |perm: &str, who: Grantee| (perm.to_string(), who);
        let w = from_grants(
            &[
                g(Permission::FULL_CONTROL, Grantee::Id("ann".into())),
                g(Permission::READ, Grantee::Id("group:family".into())),
                g(Permission::READ, Grantee::Uri(ALL_USERS.into())),
            ],
            &f,
        )
        .unwrap();
        assert_eq!(mode_of(&w, &f), 0o644);
        assert!(w.public);
        for bad in [
            g(Permission::READ, Grantee::Id("bob".into())),
            g(Permission::WRITE, Grantee::Uri(ALL_USERS.into())),
            g(Permission::READ_ACP, Grantee::Uri(AUTHENTICATED.into())),
            g(Permission::READ, Grantee::Email("a@b".into())),
            g(
                Permission::READ,
                Grantee::Uri("http://acs.amazonaws.com/groups/s3/LogDelivery".into()),
            ),
        ] {
            assert!(from_grants(&[bad], &f).is_err());
        }
        let h = header_grantees(r#"id="ann", uri=http://acs.amazonaws.com/groups/global/AllUsers"#)
            .unwrap();
        assert!(matches!(&h[0], Grantee::Id(i) if i == "ann"));
        assert!(matches!(&h[1], Grantee::Uri(u) if u == ALL_USERS));
    }
}
