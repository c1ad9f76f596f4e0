//! The admin REST API under `/api/v1`: JSON in and out, administrators only (Basic auth or an
//! API token), errors as `{"code", "message"}`; the OpenAPI document is generated from this code.

use crate::wire::ReqBody;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::OpenApi;

use super::{Admin, AdminError, ErrorView, FactsView};
use super::{BucketView, CreatedUser, GroupView, KeyView, NewBucket, NewGroup, NewKey, NewKeyView};
use super::{CreatedNotification, NewNotification, NotificationsView};
use super::{CreatedShareView, NewShare, ShareView};
use super::{LockView, NewPeer, NewRule, PeerKeyView, PeerView, ResyncView, RuleView, SkipView};
use super::{NewUser, PermUpdate, PermView, QuotaUpdate, UserUpdate, UserView};
use super::{PolicyView, PurgedView, RestoreRequest, RestoredView, TrashView, VersionView};
use crate::wire::{full, RespBody};

/// URL prefix of the API.
pub const PREFIX: &str = "/api/v1";
/// The failed-authentication throttle's state (kept in memory, so served by the router).
pub const THROTTLE: &str = "/api/v1/throttle";
/// The running server's facts (uptime and certificate are the process's, so served by the router).
pub const FACTS: &str = "/api/v1/facts";
/// Largest JSON body accepted.
const MAX_BODY: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Kura admin API", description = "Users, groups, buckets, quotas, access keys and permissions. Administrators only."),
    paths(list_users, get_user, create_user, update_user, delete_user, reset_two_factor, list_groups, get_group, create_group,
          delete_group, add_member, remove_member, set_quota, list_buckets, create_bucket, list_keys,
          create_key, revoke_key, get_permissions, set_permissions, list_shares, create_share, revoke_share,
          list_peers, create_peer, delete_peer, create_peer_key, list_replication, create_rule, delete_rule, resync,
          list_throttled, clear_throttled, list_locks, break_lock, list_versions, restore, list_trash,
          empty_trash, prune_versions, get_policy, set_policy, list_audit,
          list_notifications, create_notification, delete_notification, get_facts),
    components(schemas(UserView, NewUser, CreatedUser, UserUpdate, GroupView, NewGroup, QuotaUpdate, BucketView,
                       NewBucket, KeyView, NewKey, NewKeyView, PermView, PermUpdate, ShareView, NewShare,
                       CreatedShareView, PeerView, NewPeer, NewRule, RuleView, SkipView, ResyncView, PeerKeyView, LockView, ErrorView,
                       crate::limits::ThrottleView, VersionView, TrashView, RestoreRequest, RestoredView,
                       PurgedView, PolicyView, crate::store::AuditRow, AuditPage,
                       NewNotification, CreatedNotification, NotificationsView,
                       crate::store::NotifyRule, crate::store::QueuedRow, FactsView)),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("basic", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("token", Vec::<String>::new()),
        ]);
    }
}

/// The OpenAPI 3 document of this API.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

type ApiResult = Result<(StatusCode, String), AdminError>;

fn json<T: Serialize>(status: StatusCode, v: &T) -> ApiResult {
    serde_json::to_string(v)
        .map(|s| (status, s))
        .map_err(|e| AdminError::Internal(e.to_string()))
}

/// A JSON reply.
pub fn reply(status: StatusCode, body: String) -> Response<RespBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An error reply with its stable code.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<RespBody> {
    let v = ErrorView {
        code: code.into(),
        message: message.into(),
    };
    reply(status, serde_json::to_string(&v).unwrap_or_default())
}

fn status_of(e: &AdminError) -> StatusCode {
    match e {
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) | AdminError::InUse(_) => StatusCode::CONFLICT,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
        AdminError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
        AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Reads a JSON body. Only `application/json` is accepted: a browser sends that type to
/// another origin only after a CORS preflight, which Kura never grants, so a page elsewhere
/// cannot post a form or `text/plain` body here (CSRF).
async fn body<T: DeserializeOwned>(req: Request<ReqBody>) -> Result<T, AdminError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(AdminError::Invalid(
            "the body must be sent as Content-Type: application/json".into(),
        ));
    }
    let bytes: Bytes = crate::wire::read_small(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| match e {
            crate::wire::SmallBodyError::TooLarge(_) => {
                AdminError::Invalid(format!("the body must be JSON of at most {MAX_BODY} bytes"))
            }
            e => AdminError::Invalid(e.to_string()),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| AdminError::Invalid(format!("malformed JSON: {e}")))
}

fn query_param(req: &Request<ReqBody>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Serves one request of an authenticated administrator.
pub async fn handle(admin: &Admin, req: Request<ReqBody>) -> Response<RespBody> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method().clone();
    let result = match (&m, segs.as_slice()) {
        (&Method::GET, ["openapi.json"]) => Ok((StatusCode::OK, openapi_json())),
        (&Method::GET, ["users"]) => list_users(admin).await,
        (&Method::POST, ["users"]) => match body(req).await {
            Ok(b) => create_user(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["users", name]) => get_user(admin, name).await,
        (&Method::PATCH, ["users", name]) => {
            let name = name.to_string();
            match body(req).await {
                Ok(b) => update_user(admin, &name, b).await,
                Err(e) => Err(e),
            }
        }
        (&Method::DELETE, ["users", name]) => delete_user(admin, name).await,
        (&Method::DELETE, ["users", name, "two-factor"]) => reset_two_factor(admin, name).await,
        (&Method::GET, ["groups"]) => list_groups(admin).await,
        (&Method::POST, ["groups"]) => match body(req).await {
            Ok(b) => create_group(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["groups", name]) => get_group(admin, name).await,
        (&Method::DELETE, ["groups", name]) => delete_group(admin, name).await,
        (&Method::PUT, ["groups", g, "members", u]) => add_member(admin, g, u).await,
        (&Method::DELETE, ["groups", g, "members", u]) => remove_member(admin, g, u).await,
        (&Method::PUT, ["groups", g, "quota"]) => {
            let g = g.to_string();
            match body(req).await {
                Ok(b) => set_quota(admin, &g, b).await,
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["buckets"]) => list_buckets(admin).await,
        (&Method::POST, ["buckets"]) => match body(req).await {
            Ok(b) => create_bucket(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["keys"]) => {
            let user = query_param(&req, "user");
            list_keys(admin, user.as_deref()).await
        }
        (&Method::POST, ["keys"]) => match body(req).await {
            Ok(b) => create_key(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["keys", id]) => revoke_key(admin, id).await,
        (&Method::GET, ["permissions"]) => match query_param(&req, "path") {
            Some(p) => get_permissions(admin, &p).await,
            None => Err(AdminError::Invalid(
                "the path query parameter is required".into(),
            )),
        },
        (&Method::PATCH, ["permissions"]) => match body(req).await {
            Ok(b) => set_permissions(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["shares"]) => {
            let user = query_param(&req, "user");
            list_shares(admin, user.as_deref()).await
        }
        (&Method::POST, ["shares"]) => match body(req).await {
            Ok(b) => create_share(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["shares", id]) => revoke_share(admin, id).await,
        (&Method::GET, ["peers"]) => list_peers(admin).await,
        (&Method::POST, ["peers"]) => match body(req).await {
            Ok(b) => create_peer(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["peers", name]) => delete_peer(admin, name).await,
        (&Method::POST, ["peers", name, "keys"]) => match body(req).await {
            Ok(b) => create_peer_key(admin, name, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["replication"]) => list_replication(admin).await,
        (&Method::POST, ["replication"]) => match body(req).await {
            Ok(b) => create_rule(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["replication", bucket, peer]) => delete_rule(admin, bucket, peer).await,
        (&Method::POST, ["replication", bucket, "resync"]) => {
            let peer = query_param(&req, "peer");
            resync(admin, bucket, peer.as_deref()).await
        }
        (&Method::GET, ["notifications"]) => list_notifications(admin).await,
        (&Method::POST, ["notifications"]) => match body(req).await {
            Ok(b) => create_notification(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, ["notifications", id]) => delete_notification(admin, id).await,
        (&Method::GET, ["audit"]) => {
            let num = |n: &str| query_param(&req, n).and_then(|v| v.parse::<i64>().ok());
            let q = crate::store::AuditQuery {
                actor: query_param(&req, "user"),
                path: query_param(&req, "path"),
                since_ms: num("since_ms"),
                before_id: num("before"),
                limit: num("limit").unwrap_or(100),
            };
            list_audit(admin, q).await
        }
        (&Method::GET, ["versions"]) => match query_param(&req, "path") {
            Some(p) => list_versions(admin, &p).await,
            None => Err(AdminError::Invalid(
                "the path query parameter is required".into(),
            )),
        },
        (&Method::POST, ["versions", "prune"]) => prune_versions(admin).await,
        (&Method::POST, ["restore"]) => match body(req).await {
            Ok(b) => restore(admin, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, ["trash"]) => {
            let bucket = query_param(&req, "bucket");
            list_trash(admin, bucket.as_deref()).await
        }
        (&Method::DELETE, ["trash"]) => {
            let bucket = query_param(&req, "bucket");
            empty_trash(admin, bucket.as_deref()).await
        }
        (&Method::GET, ["buckets", b, "policy"]) => get_policy(admin, b).await,
        (&Method::PUT, ["buckets", b, "policy"]) => {
            let b = b.to_string();
            match body(req).await {
                Ok(p) => set_policy(admin, &b, p).await,
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["locks"]) => list_locks(admin).await,
        (&Method::DELETE, ["locks", token]) => break_lock(admin, token).await,
        _ => Err(AdminError::NotFound(format!("{m} {path}"))),
    };
    match result {
        Ok((status, body)) => reply(status, body),
        Err(e) => error(status_of(&e), e.code(), &e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/notifications",
    responses((status = 200, body = NotificationsView)))]
async fn list_notifications(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.notifications().await?)
}

#[utoipa::path(post, path = "/api/v1/notifications", request_body = NewNotification,
    responses((status = 201, body = CreatedNotification), (status = 400, body = ErrorView),
              (status = 404, body = ErrorView)))]
async fn create_notification(a: &Admin, n: NewNotification) -> ApiResult {
    json(StatusCode::CREATED, &a.add_notification(n).await?)
}

#[utoipa::path(delete, path = "/api/v1/notifications/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_notification(a: &Admin, id: &str) -> ApiResult {
    a.remove_notification(id).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

/// One page of the audit trail, newest first; `next` is the `before` of the next page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The actions, newest first.
    pub entries: Vec<crate::store::AuditRow>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit",
    params(("user" = Option<String>, Query), ("path" = Option<String>, Query),
           ("since_ms" = Option<i64>, Query), ("before" = Option<i64>, Query),
           ("limit" = Option<i64>, Query)),
    responses((status = 200, body = AuditPage)))]
async fn list_audit(a: &Admin, q: crate::store::AuditQuery) -> ApiResult {
    let limit = q.limit.clamp(1, 1000);
    let entries = a.audit(&crate::store::AuditQuery { limit, ..q }).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    json(StatusCode::OK, &AuditPage { entries, next })
}

#[utoipa::path(get, path = "/api/v1/versions", params(("path" = String, Query)),
    responses((status = 200, body = [VersionView]), (status = 404, body = ErrorView)))]
async fn list_versions(a: &Admin, path: &str) -> ApiResult {
    json(StatusCode::OK, &a.versions(path).await?)
}

#[utoipa::path(post, path = "/api/v1/restore", request_body = RestoreRequest,
    responses((status = 200, body = RestoredView), (status = 404, body = ErrorView),
              (status = 409, body = ErrorView)))]
async fn restore(a: &Admin, r: RestoreRequest) -> ApiResult {
    json(StatusCode::OK, &a.restore(r).await?)
}

#[utoipa::path(get, path = "/api/v1/trash", params(("bucket" = Option<String>, Query)),
    responses((status = 200, body = [TrashView]), (status = 404, body = ErrorView)))]
async fn list_trash(a: &Admin, bucket: Option<&str>) -> ApiResult {
    json(StatusCode::OK, &a.trash(bucket).await?)
}

#[utoipa::path(delete, path = "/api/v1/trash", params(("bucket" = Option<String>, Query)),
    responses((status = 200, body = PurgedView), (status = 404, body = ErrorView)))]
async fn empty_trash(a: &Admin, bucket: Option<&str>) -> ApiResult {
    json(StatusCode::OK, &a.empty_trash(bucket).await?)
}

#[utoipa::path(post, path = "/api/v1/versions/prune", responses((status = 200, body = PurgedView)))]
async fn prune_versions(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.prune().await?)
}

#[utoipa::path(get, path = "/api/v1/buckets/{name}/policy", params(("name" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 404, body = ErrorView)))]
async fn get_policy(a: &Admin, name: &str) -> ApiResult {
    json(StatusCode::OK, &a.policy(name).await?)
}

#[utoipa::path(put, path = "/api/v1/buckets/{name}/policy", params(("name" = String, Path)),
    request_body = PolicyView,
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn set_policy(a: &Admin, name: &str, p: PolicyView) -> ApiResult {
    json(StatusCode::OK, &a.set_policy(name, p).await?)
}

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [UserView])))]
async fn list_users(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.users().await?)
}

#[utoipa::path(get, path = "/api/v1/users/{name}", params(("name" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorView)))]
async fn get_user(a: &Admin, name: &str) -> ApiResult {
    json(StatusCode::OK, &a.user(name).await?)
}

#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorView), (status = 409, body = ErrorView)))]
async fn create_user(a: &Admin, n: NewUser) -> ApiResult {
    json(StatusCode::CREATED, &a.add_user(n).await?)
}

#[utoipa::path(patch, path = "/api/v1/users/{name}", params(("name" = String, Path)), request_body = UserUpdate,
    responses((status = 200, body = UserView), (status = 404, body = ErrorView)))]
async fn update_user(a: &Admin, name: &str, u: UserUpdate) -> ApiResult {
    json(StatusCode::OK, &a.update_user(name, u).await?)
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_user(a: &Admin, name: &str) -> ApiResult {
    a.remove_user(name).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

/// Turns a user's two-factor authentication off (a lost phone) and ends their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{name}/two-factor", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn reset_two_factor(a: &Admin, name: &str) -> ApiResult {
    a.reset_two_factor(name).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

#[utoipa::path(get, path = "/api/v1/groups", responses((status = 200, body = [GroupView])))]
async fn list_groups(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.groups().await?)
}

#[utoipa::path(get, path = "/api/v1/groups/{name}", params(("name" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorView)))]
async fn get_group(a: &Admin, name: &str) -> ApiResult {
    json(StatusCode::OK, &a.group(name).await?)
}

#[utoipa::path(post, path = "/api/v1/groups", request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorView), (status = 409, body = ErrorView)))]
async fn create_group(a: &Admin, g: NewGroup) -> ApiResult {
    json(StatusCode::CREATED, &a.add_group(&g.name).await?)
}

#[utoipa::path(delete, path = "/api/v1/groups/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_group(a: &Admin, name: &str) -> ApiResult {
    a.remove_group(name).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

#[utoipa::path(put, path = "/api/v1/groups/{name}/members/{user}", params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorView)))]
async fn add_member(a: &Admin, group: &str, user: &str) -> ApiResult {
    json(StatusCode::OK, &a.add_member(group, user).await?)
}

#[utoipa::path(delete, path = "/api/v1/groups/{name}/members/{user}", params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorView)))]
async fn remove_member(a: &Admin, group: &str, user: &str) -> ApiResult {
    json(StatusCode::OK, &a.remove_member(group, user).await?)
}

#[utoipa::path(put, path = "/api/v1/groups/{name}/quota", params(("name" = String, Path)), request_body = QuotaUpdate,
    responses((status = 200, body = GroupView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn set_quota(a: &Admin, group: &str, q: QuotaUpdate) -> ApiResult {
    json(StatusCode::OK, &a.set_quota(group, q).await?)
}

#[utoipa::path(get, path = "/api/v1/buckets", responses((status = 200, body = [BucketView])))]
async fn list_buckets(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.buckets().await?)
}

#[utoipa::path(post, path = "/api/v1/buckets", request_body = NewBucket,
    responses((status = 201, body = BucketView), (status = 404, body = ErrorView), (status = 409, body = ErrorView)))]
async fn create_bucket(a: &Admin, b: NewBucket) -> ApiResult {
    json(StatusCode::CREATED, &a.add_bucket(b).await?)
}

#[utoipa::path(get, path = "/api/v1/keys", params(("user" = Option<String>, Query)), responses((status = 200, body = [KeyView])))]
async fn list_keys(a: &Admin, user: Option<&str>) -> ApiResult {
    json(StatusCode::OK, &a.keys(user).await?)
}

#[utoipa::path(post, path = "/api/v1/keys", request_body = NewKey,
    responses((status = 201, body = NewKeyView), (status = 404, body = ErrorView)))]
async fn create_key(a: &Admin, k: NewKey) -> ApiResult {
    json(StatusCode::CREATED, &a.add_key(&k.user).await?)
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn revoke_key(a: &Admin, id: &str) -> ApiResult {
    a.revoke_key(id).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

#[utoipa::path(get, path = "/api/v1/permissions", params(("path" = String, Query)),
    responses((status = 200, body = PermView), (status = 404, body = ErrorView)))]
async fn get_permissions(a: &Admin, path: &str) -> ApiResult {
    json(StatusCode::OK, &a.permissions(path).await?)
}

#[utoipa::path(patch, path = "/api/v1/permissions", request_body = PermUpdate,
    responses((status = 200, body = PermView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn set_permissions(a: &Admin, u: PermUpdate) -> ApiResult {
    json(StatusCode::OK, &a.set_permissions(u).await?)
}

#[utoipa::path(get, path = "/api/v1/shares", params(("user" = Option<String>, Query)), responses((status = 200, body = [ShareView])))]
async fn list_shares(a: &Admin, user: Option<&str>) -> ApiResult {
    json(StatusCode::OK, &a.shares(user).await?)
}

#[utoipa::path(post, path = "/api/v1/shares", request_body = NewShare,
    responses((status = 201, body = CreatedShareView), (status = 400, body = ErrorView), (status = 403, body = ErrorView),
              (status = 404, body = ErrorView)))]
async fn create_share(a: &Admin, n: NewShare) -> ApiResult {
    json(StatusCode::CREATED, &a.add_share(n).await?)
}

#[utoipa::path(delete, path = "/api/v1/shares/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn revoke_share(a: &Admin, id: &str) -> ApiResult {
    a.revoke_share(id).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

#[utoipa::path(get, path = "/api/v1/peers", responses((status = 200, body = [PeerView])))]
async fn list_peers(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.peers().await?)
}

#[utoipa::path(post, path = "/api/v1/peers", request_body = NewPeer,
    responses((status = 201, body = PeerView), (status = 400, body = ErrorView), (status = 409, body = ErrorView)))]
async fn create_peer(a: &Admin, n: NewPeer) -> ApiResult {
    json(StatusCode::CREATED, &a.add_peer(n).await?)
}

#[utoipa::path(delete, path = "/api/v1/peers/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_peer(a: &Admin, name: &str) -> ApiResult {
    a.remove_peer(name).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

/// An access key bound to the peer `name`: only requests signed with it are shipments.
#[utoipa::path(post, path = "/api/v1/peers/{name}/keys", params(("name" = String, Path)),
    request_body = NewKey,
    responses((status = 201, body = PeerKeyView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn create_peer_key(a: &Admin, name: &str, k: NewKey) -> ApiResult {
    json(StatusCode::CREATED, &a.add_peer_key(name, &k.user).await?)
}

#[utoipa::path(get, path = "/api/v1/replication", responses((status = 200, body = [RuleView])))]
async fn list_replication(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.replication().await?)
}

#[utoipa::path(post, path = "/api/v1/replication", request_body = NewRule,
    responses((status = 201, body = RuleView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn create_rule(a: &Admin, r: NewRule) -> ApiResult {
    json(StatusCode::CREATED, &a.add_rule(r).await?)
}

#[utoipa::path(delete, path = "/api/v1/replication/{bucket}/{peer}",
    params(("bucket" = String, Path), ("peer" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_rule(a: &Admin, bucket: &str, peer: &str) -> ApiResult {
    a.remove_rule(bucket, peer).await?;
    Ok((StatusCode::NO_CONTENT, String::new()))
}

#[utoipa::path(post, path = "/api/v1/replication/{bucket}/resync",
    params(("bucket" = String, Path), ("peer" = Option<String>, Query)),
    responses((status = 200, body = [ResyncView]), (status = 404, body = ErrorView)))]
async fn resync(a: &Admin, bucket: &str, peer: Option<&str>) -> ApiResult {
    json(StatusCode::OK, &a.resync(bucket, peer, false).await?)
}

#[utoipa::path(get, path = "/api/v1/locks", responses((status = 200, body = [LockView])))]
async fn list_locks(a: &Admin) -> ApiResult {
    json(StatusCode::OK, &a.locks().await?)
}

#[utoipa::path(delete, path = "/api/v1/locks/{token}", params(("token" = String, Path)),
    responses((status = 200, body = LockView), (status = 404, body = ErrorView)))]
async fn break_lock(a: &Admin, token: &str) -> ApiResult {
    json(StatusCode::OK, &a.break_lock(token).await?)
}

/// `GET /api/v1/facts`: the running server's release, uptime, certificate and storage.
pub async fn facts(
    admin: &Admin,
    rt: &super::Runtime,
    req: &Request<ReqBody>,
) -> Response<RespBody> {
    let result = match *req.method() {
        Method::GET => get_facts(admin, rt).await,
        _ => Err(AdminError::NotFound(format!("{} {FACTS}", req.method()))),
    };
    match result {
        Ok((status, body)) => reply(status, body),
        Err(e) => error(status_of(&e), e.code(), &e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/facts", responses((status = 200, body = FactsView)))]
async fn get_facts(a: &Admin, rt: &super::Runtime) -> ApiResult {
    json(StatusCode::OK, &a.facts(rt).await?)
}

/// `GET` lists the throttled addresses and accounts; `DELETE` forgets failures, of one
/// `address` and/or `account` if given, else of everyone (after a stale device is fixed).
pub fn throttle(f: &crate::limits::FailedAuth, req: &Request<ReqBody>) -> Response<RespBody> {
    let result = match *req.method() {
        Method::GET => list_throttled(f),
        Method::DELETE => clear_throttled(
            f,
            query_param(req, "address").as_deref(),
            query_param(req, "account").as_deref(),
        ),
        _ => Err(AdminError::NotFound(format!("{} {THROTTLE}", req.method()))),
    };
    match result {
        Ok((status, body)) => reply(status, body),
        Err(e) => error(status_of(&e), e.code(), &e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/throttle",
    responses((status = 200, body = [crate::limits::ThrottleView])))]
fn list_throttled(f: &crate::limits::FailedAuth) -> ApiResult {
    json(StatusCode::OK, &f.throttled())
}

#[utoipa::path(delete, path = "/api/v1/throttle",
    params(("address" = Option<String>, Query), ("account" = Option<String>, Query)),
    responses((status = 200, body = Object), (status = 400, body = ErrorView)))]
fn clear_throttled(
    f: &crate::limits::FailedAuth,
    address: Option<&str>,
    account: Option<&str>,
) -> ApiResult {
    let ip = address
        .map(|a| {
            a.parse::<std::net::IpAddr>()
                .map_err(|_| AdminError::Invalid(format!("{a:?} is not an IP address")))
        })
        .transpose()?;
    let cleared = f.clear(ip, account);
    tracing::info!(
        address = address.unwrap_or("*"),
        account = account.unwrap_or("*"),
        cleared,
        "throttle cleared"
    );
    json(StatusCode::OK, &serde_json::json!({ "cleared": cleared }))
}
