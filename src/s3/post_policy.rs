//! The signed policy of a POST Object form: its SigV4 signature (checked with the access
//! key's secret), its expiry, and its conditions matched against the form's fields.

use hmac::{Hmac, Mac};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{s3_error, S3Error, S3ErrorCode};
use sha2::Sha256;

use super::service::KuraS3;
use crate::vfs::Caller;

/// The form fields before the file part (names lowercased, in order) and the file's name.
pub(super) struct Form {
    pub(super) fields: Vec<(String, String)>,
    pub(super) filename: String,
}

impl Form {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A refusal by the policy, worded as AWS words it.
pub(super) fn policy_refusal(why: String) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        format!("Invalid according to Policy: {why}"),
    )
}

/// The SigV4 signature of a policy: HMAC-SHA256 over the base64 policy with the key derived
/// from the secret, the credential's date and region, `s3` and `aws4_request`.
fn policy_signature(secret: &str, date: &str, region: &str, policy_b64: &str) -> Option<Vec<u8>> {
    let step = |key: &[u8], data: &[u8]| -> Option<Vec<u8>> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().to_vec())
    };
    let k = step(format!("AWS4{secret}").as_bytes(), date.as_bytes())?;
    let k = step(&k, region.as_bytes())?;
    let k = step(&k, b"s3")?;
    let k = step(&k, b"aws4_request")?;
    step(&k, policy_b64.as_bytes())
}

/// Fields every form may carry without a policy condition (AWS's list).
fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "file" | "policy") || name.starts_with("x-ignore-")
}

/// Checks the policy's conditions against the form (with `${filename}` expanded in `key`, as
/// AWS matches the expanded fields) and that it names every field; returns the size range.
pub(super) fn check_conditions(
    policy: &PostPolicy,
    form: &Form,
    bucket: &str,
    key: &str,
) -> Result<(u64, u64), S3Error> {
    let value = |field: &str| -> Option<String> {
        match field {
            "bucket" => Some(bucket.to_string()),
            "key" => Some(key.to_string()),
            f => form.get(f).map(str::to_string),
        }
    };
    let mut range = (0, u64::MAX);
    for c in &policy.conditions {
        match c {
            PostPolicyCondition::Eq { field, value: want } => {
                if value(field).as_deref() != Some(want.as_str()) {
                    return Err(policy_refusal(format!(
                        "Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                let got = value(field).unwrap_or_default();
                // Content-Type may list several types, each of which must match
                let ok = if field == "content-type" {
                    got.split(',')
                        .all(|t| t.trim().starts_with(prefix.as_str()))
                } else {
                    got.starts_with(prefix.as_str())
                };
                if !ok {
                    return Err(policy_refusal(format!(
                        "Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => range = (*min, *max),
        }
    }
    for (name, _) in &form.fields {
        if exempt(name) {
            continue;
        }
        let named = policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. }
            | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        });
        if !named {
            return Err(policy_refusal(format!("Extra input fields: {name}")));
        }
    }
    Ok(range)
}

/// Who signed the form: the policy, checked against the key's secret. Anonymous forms are
/// refused (Kura never lets an anonymous caller write).
pub(super) struct Signed {
    pub(super) access_key: String,
    pub(super) secret: String,
    pub(super) who: Caller,
    pub(super) policy: PostPolicy,
}

/// Checks the form's SigV4 policy signature with the access key's secret, then the policy's
/// expiry; the key's owner is who uploads.
pub(super) async fn authenticate(s3: &KuraS3, form: &Form) -> Result<Signed, S3Error> {
    if form.get("awsaccesskeyid").is_some() || form.get("signature").is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "POST with a SigV2 signature is not supported; sign the policy with AWS4-HMAC-SHA256"
        ));
    }
    let (Some(signature), Some(policy_b64)) = (form.get("x-amz-signature"), form.get("policy"))
    else {
        return Err(s3_error!(
            AccessDenied,
            "an upload form needs a signed policy (anonymous uploads are not allowed)"
        ));
    };
    if form.get("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-algorithm must be AWS4-HMAC-SHA256"
        ));
    }
    let credential = form.get("x-amz-credential").unwrap_or("");
    let parts: Vec<&str> = credential.split('/').collect();
    let date = form.get("x-amz-date").unwrap_or("");
    let [key, day, region, service, terminal] = parts[..] else {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-credential must be <key>/<yyyymmdd>/<region>/s3/aws4_request"
        ));
    };
    if key.is_empty()
        || day.len() != 8
        || !day.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
        || service != "s3"
        || terminal != "aws4_request"
    {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-credential must be <key>/<yyyymmdd>/<region>/s3/aws4_request"
        ));
    }
    if date.len() != 16 || !date.starts_with(day) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-date must be the credential's day in ISO 8601 basic form (yyyymmddThhmmssZ)"
        ));
    }
    let found = s3
        .keys
        .secret_and_owner(key)
        .await
        .map_err(|e| super::auth::internal("access key lookup", e))?;
    let Some((secret, who)) = found else {
        return Err(s3_error!(InvalidAccessKeyId));
    };
    let given = hex::decode(signature.trim()).unwrap_or_default();
    let expected = policy_signature(&secret, day, region, policy_b64)
        .ok_or_else(|| s3_error!(InternalError))?;
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        ));
    }
    let policy = PostPolicy::from_base64(policy_b64)
        .map_err(|e| s3_error!(InvalidPolicyDocument, "Invalid Policy: {}", e))?;
    let expires: time::OffsetDateTime = policy.expiration.clone().into();
    if time::OffsetDateTime::now_utc() >= expires {
        return Err(policy_refusal("Policy expired.".into()));
    }
    Ok(Signed {
        access_key: key.to_string(),
        secret,
        who,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_signature_matches_aws_example() {
        // AWS's SigV4 POST example (sigv4-post-example): secret, date and region as given
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let sig = policy_signature(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20151229",
            "us-east-1",
            policy,
        )
        .unwrap();
        assert_eq!(
            hex::encode(sig),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            filename: "a.txt".into(),
        }
    }

    fn policy(conditions: &str) -> PostPolicy {
        PostPolicy::from_json(&format!(
            "{{\"expiration\":\"2099-01-01T00:00:00Z\",\"conditions\":{conditions}}}"
        ))
        .unwrap()
    }

    #[test]
    fn conditions_are_matched_and_every_field_named() {
        let p = policy(
            r#"[{"bucket":"b"},["starts-with","$key","up/"],["content-length-range",1,10]]"#,
        );
        let f = form(&[("key", "up/${filename}")]);
        assert_eq!(check_conditions(&p, &f, "b", "up/a.txt").unwrap(), (1, 10));
        let e = check_conditions(&p, &f, "b", "down/a.txt").unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        let e = check_conditions(&p, &f, "other", "up/a.txt").unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        let f = form(&[("key", "up/x"), ("x-amz-meta-sneaky", "1")]);
        let e = check_conditions(&p, &f, "b", "up/x").unwrap_err();
        assert!(e.message().unwrap().contains("Extra input fields"));
        let f = form(&[("key", "up/x"), ("x-ignore-me", "1"), ("policy", "p")]);
        assert!(check_conditions(&p, &f, "b", "up/x").is_ok());
    }
}
