//! The OpenAPI 3 document of the user API, served at `/api/user/v1/openapi.json` (the admin
//! API's is at `/api/v1/openapi.json`): these endpoints' paths, and the session endpoints'
//! (sign-in, sessions, two-factor), which the browser app's module documents and `serve`
//! hands in.

use http::{Response, StatusCode};
use utoipa::OpenApi;

use crate::wire::{json, RespBody};

use super::changes::{
    AttributesBody, BatchView, DeleteBody, FailedView, PathBody, RenameBody, TransferBody,
};
use super::errors::ErrorReply;
use super::files::{BucketView, BucketsView, EntryView, LockView, MeterView, PageView};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kura user API", description = "Everything the browser app does, as a signed-in user: sign-in, sessions and two-factor authentication; files as she sees them (listing, changes, downloads, zips, tus 1.0 resumable uploads, thumbnails and PDF pages); tags and descriptions, search, share links, versions and the trash, under the core's rules for that user. A browser session sends its X-Kura-CSRF token on every state-changing request."),
    paths(document, super::files::buckets, super::files::list, super::files::stat,
          super::changes::mkdir, super::changes::rename, super::changes::move_into,
          super::changes::copy_into, super::changes::delete, super::changes::attributes,
          super::download::download, super::download::zip, super::preview::thumbnail,
          super::annotations::set, super::shares::list, super::shares::create,
          super::shares::revoke, super::search::search, super::versions::versions,
          super::versions::trash, super::versions::empty_trash, super::versions::restore,
          super::tus::discovery, super::tus::create, super::tus::head, super::tus::append,
          super::tus::terminate),
    components(schemas(ErrorReply, EntryView, LockView, MeterView, BucketView, BucketsView,
                       PageView, PathBody, RenameBody, TransferBody, DeleteBody, AttributesBody,
                       BatchView, FailedView, super::annotations::TagsBody,
                       super::shares::ShareBody, super::shares::ShareView,
                       super::shares::CreatedShareView, super::search::PageView,
                       super::search::HitView, super::versions::VersionView,
                       super::versions::VersionsView, super::versions::TrashView,
                       super::versions::DeletesView, super::versions::PurgedView,
                       super::versions::RestoredView, super::versions::RestoreRequest)),
    modifiers(&Security, &HeadOfDownload)
)]
struct UserDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("__Host-kura"))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("basic", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// `HEAD` of a download: the headers `GET` answers (size, ETag, ranges), without the body.
struct HeadOfDownload;

impl utoipa::Modify for HeadOfDownload {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(item) = openapi.paths.paths.get_mut("/api/user/v1/download") {
            if let Some(mut head) = item.get.clone() {
                head.operation_id = Some("download_head".into());
                head.description = Some("The headers GET answers, without the body.".into());
                item.head = Some(head);
            }
        }
    }
}

/// This document, with `more` (the session endpoints' paths) merged in.
#[utoipa::path(get, path = "/api/user/v1/openapi.json", operation_id = "openapi",
    responses((status = 200, description = "this OpenAPI 3 document", content_type = "application/json")))]
pub fn document(more: utoipa::openapi::OpenApi) -> Response<RespBody> {
    let mut doc = UserDoc::openapi();
    doc.merge(more);
    json(StatusCode::OK, doc.to_pretty_json().unwrap_or_default())
}
