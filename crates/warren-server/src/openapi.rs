//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations.
//! Every route of [`crate::app`] must be listed in `paths(...)` here; an integration test
//! compares the document with the router's routes.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Warren control plane API", description = "Self-hosted sandboxes: accounts, teams, API keys (and, in later releases, hosts and sandboxes). Every error body is `{\"error\": {\"code\", \"message\", \"fields\"?}}`."),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::auth::signup,
        crate::auth::login,
        crate::auth::switch_team,
        crate::auth::me,
        crate::team::list,
        crate::team::create,
        crate::team::get,
        crate::team::members,
        crate::team::add_member,
        crate::team::remove_member,
        crate::api_key::create,
        crate::api_key::list,
        crate::api_key::delete,
        crate::sandbox::create,
        crate::sandbox::list,
        crate::sandbox::get,
        crate::sandbox::delete,
        crate::sandbox::pause,
        crate::sandbox::resume,
        crate::sandbox::timeout,
        crate::sandbox::exec,
        crate::sandbox::exec_stream,
        crate::sandbox::put_file,
        crate::sandbox::post_files,
        crate::sandbox::get_file,
        crate::sandbox::metrics,
        crate::sandbox::create_snapshot,
        crate::sandbox::list_snapshots,
        crate::sandbox::delete_snapshot,
        crate::host::create,
        crate::host::list,
        crate::host::get,
        crate::host::delete,
        crate::host::new_token,
        crate::host::revoke,
        crate::host::register,
        crate::host::refresh,
        crate::host::heartbeat,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Probes"),
        (name = "auth", description = "Accounts and tokens"),
        (name = "teams", description = "Teams and members"),
        (name = "api-keys", description = "Team API keys"),
        (name = "sandboxes", description = "Sandboxes: lifecycle, exec, files, metrics"),
        (name = "snapshots", description = "Snapshot templates of sandboxes"),
        (name = "hosts", description = "Host agents: registration, credentials, heartbeats (admins manage them)"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// `GET /openapi.yaml`.
pub async fn yaml() -> Result<Response, ApiError> {
    let doc = ApiDoc::openapi()
        .to_yaml()
        .map_err(|e| ApiError::Internal(format!("rendering openapi yaml: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], doc).into_response())
}
