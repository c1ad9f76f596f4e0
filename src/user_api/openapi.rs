//! The OpenAPI 3 document of the user files API, served at `/api/user/v1/openapi.json` (the
//! admin API's is at `/api/v1/openapi.json`).

use utoipa::OpenApi;

use super::changes::{
    AttributesBody, BatchView, DeleteBody, FailedView, PathBody, RenameBody, TransferBody,
};
use super::errors::ErrorReply;
use super::files::{BucketView, BucketsView, EntryView, LockView, MeterView, PageView};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kura user API", description = "Files as a signed-in user sees them: listing, changes, downloads, zips and tus 1.0 resumable uploads, under the core's rules for that user. A browser session sends its X-Kura-CSRF token on every state-changing request."),
    paths(super::files::buckets, super::files::list, super::files::stat,
          super::changes::mkdir, super::changes::rename, super::changes::move_into,
          super::changes::copy_into, super::changes::delete, super::changes::attributes,
          super::download::download, super::download::zip, super::preview::thumbnail,
          super::annotations::set, super::shares::list, super::shares::create,
          super::shares::revoke,
          super::tus::discovery, super::tus::create, super::tus::head, super::tus::append,
          super::tus::terminate),
    components(schemas(ErrorReply, EntryView, LockView, MeterView, BucketView, BucketsView,
                       PageView, PathBody, RenameBody, TransferBody, DeleteBody, AttributesBody,
                       BatchView, FailedView, super::annotations::TagsBody,
                       super::shares::ShareBody, super::shares::ShareView,
                       super::shares::CreatedShareView)),
    modifiers(&Security)
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

/// The document, as JSON.
pub fn document() -> String {
    UserDoc::openapi().to_pretty_json().unwrap_or_default()
}
