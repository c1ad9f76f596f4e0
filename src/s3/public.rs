//! Public access through S3: a restricted subset of bucket policies (anonymous `s3:GetObject`
//! of a bucket or key prefix; anything else is refused, naming why), GetBucketPolicyStatus,
//! and the public access block. The core keeps the switches and applies them to anonymous
//! reads (vfs/public.rs); this module only translates.

use http::StatusCode;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use serde_json::Value;

use super::errors::bucket_error;
use super::service::KuraS3;
use crate::vfs::public::{PublicBlock, PublicPolicy};
use crate::vfs::Caller;

/// Largest policy document (AWS: 20 KB).
const MAX_POLICY: usize = 20 * 1024;

fn malformed(why: &str) -> S3Error {
    s3_error!(MalformedPolicy, "{why}")
}

fn unsupported(why: &str) -> S3Error {
    s3_error!(
        NotImplemented,
        "Kura's bucket policies only let anyone read (\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"s3:GetObject\", \"Resource\": \"arn:aws:s3:::BUCKET/PREFIX*\"): {why}"
    )
}

/// One string or a list of strings (policy fields may be either).
fn strings<'a>(v: &'a Value, what: &str) -> S3Result<Vec<&'a str>> {
    let list = match v {
        Value::String(s) => return Ok(vec![s]),
        Value::Array(a) if !a.is_empty() => a,
        _ => {
            return Err(malformed(&format!(
                "{what} must be a string or a list of strings"
            )))
        }
    };
    list.iter()
        .map(|x| {
            x.as_str()
                .ok_or_else(|| malformed(&format!("{what} must hold strings")))
        })
        .collect()
}

/// The key prefixes a policy lets anyone read, or why it is refused.
pub(super) fn policy_prefixes(bucket: &str, doc: &str) -> S3Result<Vec<String>> {
    if doc.len() > MAX_POLICY {
        return Err(malformed("a policy has at most 20 KB"));
    }
    let v: Value = serde_json::from_str(doc).map_err(|_| malformed("the policy is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("a policy is a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
    {
        return Err(malformed(&format!("unknown policy field {k}")));
    }
    match obj.get("Version").map(Value::as_str) {
        None | Some(Some("2012-10-17" | "2008-10-17")) => {}
        _ => return Err(malformed("Version is 2012-10-17 or 2008-10-17")),
    }
    let statements = match obj.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return Err(malformed("a policy needs a Statement")),
    };
    let arn = format!("arn:aws:s3:::{bucket}/");
    let mut prefixes = Vec::new();
    for st in statements {
        let st = st
            .as_object()
            .ok_or_else(|| malformed("a Statement is an object"))?;
        for k in st.keys() {
            match k.as_str() {
                "Sid" | "Effect" | "Principal" | "Action" | "Resource" => {}
                "Condition" | "NotPrincipal" | "NotAction" | "NotResource" => {
                    return Err(unsupported(&format!("{k} is not supported")))
                }
                _ => return Err(malformed(&format!("unknown statement field {k}"))),
            }
        }
        match st.get("Effect").and_then(Value::as_str) {
            Some("Allow") => {}
            Some("Deny") => return Err(unsupported("Deny is not supported")),
            _ => return Err(malformed("Effect is Allow or Deny")),
        }
        let anyone = match st.get("Principal") {
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(p)) if p.len() == 1 => match p.get("AWS") {
                Some(a) => strings(a, "Principal")? == ["*"],
                None => false,
            },
            None => return Err(malformed("a Statement needs a Principal")),
            _ => false,
        };
        if !anyone {
            return Err(unsupported("the Principal must be \"*\" (anyone)"));
        }
        let actions = strings(
            st.get("Action")
                .ok_or_else(|| malformed("a Statement needs an Action"))?,
            "Action",
        )?;
        if let Some(a) = actions
            .iter()
            .find(|a| !a.eq_ignore_ascii_case("s3:GetObject"))
        {
            return Err(unsupported(&format!("action {a}")));
        }
        let resources = strings(
            st.get("Resource")
                .ok_or_else(|| malformed("a Statement needs a Resource"))?,
            "Resource",
        )?;
        for r in resources {
            let Some(rest) = r.strip_prefix(&arn) else {
                return if r.starts_with("arn:aws:s3:::") {
                    Err(malformed(&format!(
                        "Policy has invalid resource: {r} is not in bucket {bucket}"
                    )))
                } else {
                    Err(malformed(&format!("Policy has invalid resource: {r}")))
                };
            };
            let prefix = rest
                .strip_suffix('*')
                .filter(|p| !p.contains(['*', '?']))
                .ok_or_else(|| {
                    unsupported(&format!(
                        "resource {r}: only a key prefix followed by one final *"
                    ))
                })?;
            if !prefixes.iter().any(|p| p == prefix) {
                prefixes.push(prefix.to_string());
            }
        }
    }
    Ok(prefixes)
}

fn no_such(code: &'static str, msg: &str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg.to_string());
    e.set_status_code(StatusCode::NOT_FOUND);
    e
}

impl KuraS3 {
    pub(super) async fn put_policy(
        &self,
        who: Caller,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let prefixes = policy_prefixes(&req.input.bucket, &req.input.policy)?;
        let policy = PublicPolicy {
            prefixes,
            document: req.input.policy,
        };
        self.vfs
            .set_public_policy(&who, &path, Some(policy))
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    }

    pub(super) async fn get_policy(
        &self,
        who: Caller,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let p = self
            .vfs
            .public_policy(&who, &path)
            .await
            .map_err(bucket_error)?;
        let p = p.ok_or_else(|| s3_error!(NoSuchBucketPolicy))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(p.document),
        }))
    }

    pub(super) async fn delete_policy(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        self.vfs
            .set_public_policy(&who, &path, None)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    pub(super) async fn policy_status(
        &self,
        who: Caller,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let public = self
            .vfs
            .bucket_is_public(&who, &path)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(super) async fn put_block(
        &self,
        who: Caller,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let c = req.input.public_access_block_configuration;
        let block = PublicBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.vfs
            .set_public_block(&who, &path, Some(block))
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    pub(super) async fn get_block(
        &self,
        who: Caller,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let b = self
            .vfs
            .public_block(&who, &path)
            .await
            .map_err(bucket_error)?;
        let b = b.ok_or_else(|| {
            no_such(
                "NoSuchPublicAccessBlockConfiguration",
                "The public access block configuration was not found",
            )
        })?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(b.block_public_acls),
                ignore_public_acls: Some(b.ignore_public_acls),
                block_public_policy: Some(b.block_public_policy),
                restrict_public_buckets: Some(b.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn delete_block(
        &self,
        who: Caller,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        self.vfs
            .set_public_block(&who, &path, None)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: S3Result<Vec<String>>) -> String {
        match r {
            Ok(p) => format!("ok {p:?}"),
            Err(e) => e.code().as_str().to_string(),
        }
    }

    #[test]
    fn only_anonymous_reads_of_a_prefix_are_accepted() {
        let st = |principal: &str, action: &str, resource: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":{resource}}}]}}"#
            )
        };
        let ok = st(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#);
        assert_eq!(code(policy_prefixes("b", &ok)), r#"ok [""]"#);
        let p = st(
            r#"{"AWS":["*"]}"#,
            r#"["s3:GetObject"]"#,
            r#"["arn:aws:s3:::b/pub/*","arn:aws:s3:::b/img/*"]"#,
        );
        assert_eq!(code(policy_prefixes("b", &p)), r#"ok ["pub/", "img/"]"#);
        for (doc, want) in [
            ("not json".to_string(), "MalformedPolicy"),
            (
                st(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::other/*""#),
                "MalformedPolicy",
            ),
            (
                st(r#""*""#, r#""s3:PutObject""#, r#""arn:aws:s3:::b/*""#),
                "NotImplemented",
            ),
            (
                st(r#""*""#, r#""s3:*""#, r#""arn:aws:s3:::b/*""#),
                "NotImplemented",
            ),
            (
                st(
                    r#"{"AWS":"arn:aws:iam::1:root"}"#,
                    r#""s3:GetObject""#,
                    r#""arn:aws:s3:::b/*""#,
                ),
                "NotImplemented",
            ),
            (
                st(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/a*b/*""#),
                "NotImplemented",
            ),
            (
                st(r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b""#),
                "MalformedPolicy",
            ),
            (ok.replace("Allow", "Deny"), "NotImplemented"),
            (
                ok.replace(r#""Effect""#, r#""Condition":{},"Effect""#),
                "NotImplemented",
            ),
            (ok.replace("2012-10-17", "2030-01-01"), "MalformedPolicy"),
        ] {
            assert_eq!(code(policy_prefixes("b", &doc)), want, "{doc}");
        }
    }
}
