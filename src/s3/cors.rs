//! S3 CORS: a bucket's rules (Put/Get/DeleteBucketCors, validated as AWS validates them), the
//! answer to a browser's preflight `OPTIONS`, and the `Access-Control-*` headers of the actual
//! responses. The rules are a bucket setting kept by the core, which decides who changes them.

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::errors::bucket_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::Caller;
use crate::wire::RespBody;

/// The name of the bucket setting holding the rules.
pub(super) const SETTING: &str = "s3.cors";

/// Most rules a bucket may have (AWS: 100).
const MAX_RULES: usize = 100;

/// The methods a rule may allow (AWS accepts no others).
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One CORS rule as stored (JSON) and matched.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(super) struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    origins: Vec<String>,
    methods: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<i32>,
}

/// Checks a configuration as AWS does and turns it into stored rules.
fn rules_from(cfg: CORSConfiguration) -> S3Result<Vec<Rule>> {
    let rules = cfg.cors_rules;
    if rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration needs at least one CORSRule"
        ));
    }
    if rules.len() > MAX_RULES {
        return Err(s3_error!(
            InvalidRequest,
            "a CORS configuration may have at most {MAX_RULES} rules"
        ));
    }
    rules.into_iter().map(rule_from).collect()
}

fn rule_from(r: CORSRule) -> S3Result<Rule> {
    if r.id.as_ref().is_some_and(|id| id.len() > 255) {
        return Err(s3_error!(
            InvalidArgument,
            "a CORSRule ID has at most 255 characters"
        ));
    }
    if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a CORSRule needs an AllowedMethod and an AllowedOrigin"
        ));
    }
    if let Some(m) = r
        .allowed_methods
        .iter()
        .find(|m| !METHODS.contains(&m.as_str()))
    {
        return Err(s3_error!(
            InvalidRequest,
            "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
        ));
    }
    let headers = r.allowed_headers.unwrap_or_default();
    for (what, values) in [
        ("AllowedOrigin", &r.allowed_origins),
        ("AllowedHeader", &headers),
    ] {
        for v in values.iter() {
            if v.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "{what} \"{v}\" can not have more than one wildcard."
                ));
            }
            if v.is_empty() || HeaderValue::from_str(v).is_err() {
                return Err(s3_error!(
                    InvalidRequest,
                    "{what} \"{v}\" is not a valid value"
                ));
            }
        }
    }
    let expose = r.expose_headers.unwrap_or_default();
    if let Some(h) = expose
        .iter()
        .find(|h| header::HeaderName::from_bytes(h.as_bytes()).is_err())
    {
        return Err(s3_error!(
            InvalidRequest,
            "ExposeHeader \"{h}\" is not a header name"
        ));
    }
    if r.max_age_seconds.is_some_and(|s| s < 0) {
        return Err(s3_error!(
            InvalidRequest,
            "MaxAgeSeconds may not be negative"
        ));
    }
    Ok(Rule {
        id: r.id,
        origins: r.allowed_origins,
        methods: r.allowed_methods,
        headers,
        expose,
        max_age: r.max_age_seconds,
    })
}

fn to_dto(rules: Vec<Rule>) -> CORSRules {
    rules
        .into_iter()
        .map(|r| CORSRule {
            id: r.id,
            allowed_origins: r.origins,
            allowed_methods: r.methods,
            allowed_headers: (!r.headers.is_empty()).then_some(r.headers),
            expose_headers: (!r.expose.is_empty()).then_some(r.expose),
            max_age_seconds: r.max_age,
        })
        .collect()
}

/// `value` matches `pattern` with at most one `*` standing for any run of characters.
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((pre, post)) => {
            value.len() >= pre.len() + post.len()
                && value.is_char_boundary(pre.len())
                && value.is_char_boundary(value.len() - post.len())
                && eq(&value[..pre.len()], pre)
                && eq(&value[value.len() - post.len()..], post)
        }
    }
}

impl Rule {
    fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.origins.iter().any(|o| wildcard(o, origin, false))
            && self.methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| self.headers.iter().any(|p| wildcard(p, h, true)))
    }

    /// `*` when the rule allows every origin (as AWS answers), else the origin itself.
    fn allow_origin(&self, origin: &str) -> HeaderValue {
        if self.origins.iter().any(|o| o == "*") {
            return HeaderValue::from_static("*");
        }
        HeaderValue::from_str(origin).unwrap_or_else(|_| HeaderValue::from_static("null"))
    }
}

/// The first rule allowing `origin` to use `method` with `headers` (AWS: the first match wins).
fn find<'a>(rules: &'a [Rule], origin: &str, method: &str, headers: &[&str]) -> Option<&'a Rule> {
    rules.iter().find(|r| r.allows(origin, method, headers))
}

/// Reads the stored rules (JSON); a row that no longer parses is logged and counts as none.
pub(super) fn parse(json: &str) -> Option<Vec<Rule>> {
    serde_json::from_str(json)
        .map_err(|e| tracing::error!(error = %e, "stored CORS rules do not parse"))
        .ok()
}

fn vary(h: &mut HeaderMap, preflight: bool) {
    let v = if preflight {
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    } else {
        "Origin"
    };
    h.append(header::VARY, HeaderValue::from_static(v));
}

/// Adds the CORS headers of an actual response (any status, errors included) when a rule
/// allows `origin` and `method`.
pub(super) fn decorate(h: &mut HeaderMap, rules: &[Rule], origin: &str, method: &Method) {
    vary(h, false);
    let Some(rule) = find(rules, origin, method.as_str(), &[]) else {
        return;
    };
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        rule.allow_origin(origin),
    );
    if let Ok(v) = HeaderValue::from_str(&rule.expose.join(", ")) {
        if !rule.expose.is_empty() {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

/// The answer to a preflight `OPTIONS` from the bucket's rules (`None`: the bucket has none
/// or does not exist), as AWS gives it: 200 with the allowed origin, methods and headers, 403
/// AccessForbidden when no rule matches, 400 without `Origin` or a requested method.
pub(super) fn preflight<B>(
    req: &Request<B>,
    rules: Option<&[Rule]>,
    object: bool,
) -> Response<RespBody> {
    let h = req.headers();
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return super::gate::s3_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = h
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
    else {
        return super::gate::s3_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
        );
    };
    let requested: Vec<&str> = h
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let refuse = |why: &str| {
        let kind = if object { "OBJECT" } else { "BUCKET" };
        let method = xml_escape(method);
        super::gate::s3_error_xml(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            why,
            &format!("<Method>{method}</Method><ResourceType>{kind}</ResourceType>"),
        )
    };
    let Some(rules) = rules else {
        return refuse("CORSResponse: CORS is not enabled for this bucket.");
    };
    let Some(rule) = find(rules, origin, method, &requested) else {
        return refuse("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.");
    };
    let mut r = Response::new(crate::wire::empty());
    let out = r.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        rule.allow_origin(origin),
    );
    if let Ok(v) = HeaderValue::from_str(&rule.methods.join(", ")) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !requested.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    if !rule.expose.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rule.expose.join(", ")) {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
    if let Some(s) = rule.max_age {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(s));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    vary(out, true);
    r
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl KuraS3 {
    pub(super) async fn put_cors(
        &self,
        who: Caller,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let rules = rules_from(req.input.cors_configuration)?;
        let json = serde_json::to_string(&rules).map_err(|_| s3_error!(InternalError))?;
        self.vfs
            .set_bucket_setting(&who, &path, SETTING, Some(&json))
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    pub(super) async fn get_cors(
        &self,
        who: Caller,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        let stored = self
            .vfs
            .bucket_setting(&who, &path, SETTING)
            .await
            .map_err(bucket_error)?;
        let Some(rules) = stored.as_deref().and_then(parse) else {
            return Err(s3_error!(NoSuchCORSConfiguration));
        };
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(to_dto(rules)),
        }))
    }

    pub(super) async fn delete_cors(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let path = names::bucket(&req.input.bucket)?;
        self.vfs
            .set_bucket_setting(&who, &path, SETTING, None)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CORSRule {
        CORSRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: Some(headers.iter().map(|s| s.to_string()).collect()),
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    fn cfg(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    #[test]
    fn configurations_are_checked_as_aws_checks_them() {
        assert!(rules_from(cfg(vec![rule(&["https://a.example"], &["GET"], &[])])).is_ok());
        assert!(rules_from(cfg(vec![])).is_err());
        assert!(rules_from(cfg(vec![rule(&["*"], &["PATCH"], &[])])).is_err());
        assert!(rules_from(cfg(vec![rule(&["*"], &["get"], &[])])).is_err());
        assert!(rules_from(cfg(vec![rule(&["https://*.*.example"], &["GET"], &[])])).is_err());
        assert!(rules_from(cfg(vec![rule(&["*"], &["GET"], &["x-*-*"])])).is_err());
        assert!(rules_from(cfg(vec![rule(&["a\nb"], &["GET"], &[])])).is_err());
        let many = (0..=MAX_RULES)
            .map(|_| rule(&["*"], &["GET"], &[]))
            .collect();
        assert!(rules_from(cfg(many)).is_err());
        let mut neg = rule(&["*"], &["GET"], &[]);
        neg.max_age_seconds = Some(-1);
        assert!(rules_from(cfg(vec![neg])).is_err());
    }

    #[test]
    fn origins_methods_and_headers_match_with_one_wildcard() {
        let rules = rules_from(cfg(vec![
            rule(
                &["https://*.example.org"],
                &["GET", "PUT"],
                &["Content-*", "x-amz-date"],
            ),
            rule(&["*"], &["HEAD"], &[]),
        ]))
        .unwrap();
        let app = "https://app.example.org";
        assert!(find(&rules, app, "PUT", &["content-type", "X-Amz-Date"]).is_some());
        assert!(find(&rules, app, "PUT", &["authorization"]).is_none());
        assert!(find(&rules, app, "DELETE", &[]).is_none());
        assert!(find(&rules, "https://example.org", "GET", &[]).is_none());
        assert!(find(&rules, "https://evil.example.org.evil.com", "GET", &[]).is_none());
        assert!(find(&rules, "http://app.example.org", "GET", &[]).is_none());
        // the second rule: any origin, HEAD only, answered with `*`
        let any = find(&rules, "https://evil.com", "HEAD", &[]).unwrap();
        assert_eq!(any.allow_origin("https://evil.com"), "*");
        assert_eq!(rules[0].allow_origin(app), app);
        assert!(!wildcard("ab*ba", "aba", false));
    }
}
