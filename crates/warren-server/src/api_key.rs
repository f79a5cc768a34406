//! Team API keys: `wr_` followed by 40 random base62 characters (~238 bits). The key is
//! returned once, at creation; only its SHA-256 (hex) and a short prefix are stored. A key
//! authenticates a request as its team (see `auth::principal::TeamAuth`).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use warren_types::ApiKeyId;

use crate::AppState;
use crate::auth::{UserAuth, ts};
use crate::error::{ApiError, ErrorBody, Json, Path, path_id};
use crate::input;
use crate::store::api_key::ApiKey;
use crate::store::{self, now_ms};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "wr_";
/// Random base62 characters after the prefix.
pub const KEY_RANDOM_CHARS: usize = 40;
/// How many characters of the key are stored and shown to recognise it.
const SHOWN_PREFIX_CHARS: usize = KEY_PREFIX.len() + 6;

/// A fresh random key.
pub fn generate_key() -> String {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// Cheap syntactic check before touching the database.
pub fn looks_like_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() >= 32 && rest.len() <= 128 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Hex SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Body of `POST /v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    /// Label (1–100 characters).
    pub name: String,
}

/// A key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// Key id.
    pub id: uuid::Uuid,
    /// Label.
    pub name: String,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last authenticated use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The user who created it.
    pub created_by: Option<uuid::Uuid>,
}

impl From<&ApiKey> for ApiKeyDto {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name.clone(),
            prefix: k.key_prefix.clone(),
            created_at: ts(k.created_at),
            last_used_at: k.last_used_at.map(ts),
            created_by: k.created_by.map(|u| u.as_uuid()),
        }
    }
}

/// A just-created key: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key itself; store it now, it cannot be shown again.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub info: ApiKeyDto,
}

/// Create an API key for the caller's current team.
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Key created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: UserAuth,
    Json(req): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedApiKey>), ApiError> {
    let name = input::name("name", &req.name).map_err(ApiError::from_field)?;
    let key = generate_key();
    let stored = ApiKey {
        id: ApiKeyId::new(),
        team_id: auth.team_id,
        name,
        key_hash: hash_key(&key),
        key_prefix: key[..SHOWN_PREFIX_CHARS].to_owned(),
        created_by: Some(auth.user_id),
        created_at: now_ms(),
        last_used_at: None,
    };
    store::api_key::insert(state.store().pool(), &stored).await?;
    tracing::info!(team_id = %auth.team_id, api_key_id = %stored.id, "api key created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            key,
            info: (&stored).into(),
        }),
    ))
}

/// The current team's API keys (without secrets).
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The team's keys", body = [ApiKeyDto]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: UserAuth,
) -> Result<axum::Json<Vec<ApiKeyDto>>, ApiError> {
    let keys = store::api_key::list(state.store().pool(), auth.team_id).await?;
    Ok(axum::Json(keys.iter().map(ApiKeyDto::from).collect()))
}

/// Delete one of the current team's API keys; it stops working at once.
#[utoipa::path(
    delete, path = "/v1/api-keys/{key_id}", tag = "api-keys",
    security(("bearer" = [])),
    params(("key_id" = uuid::Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Key deleted"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such key in the current team", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: UserAuth,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ApiKeyId = path_id("api key", &key_id)?;
    if !store::api_key::delete(state.store().pool(), auth.team_id, id).await? {
        return Err(ApiError::NotFound(format!("api key {id} not found")));
    }
    tracing::info!(team_id = %auth.team_id, api_key_id = %id, "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_form() {
        let k = generate_key();
        assert!(k.starts_with("wr_"));
        assert_eq!(k.len(), 3 + KEY_RANDOM_CHARS);
        assert!(looks_like_key(&k));
        assert_ne!(k, generate_key());
    }

    #[test]
    fn key_syntax() {
        assert!(!looks_like_key(""));
        assert!(!looks_like_key("wr_short"));
        assert!(!looks_like_key(&format!("xx_{}", "a".repeat(40))));
        assert!(!looks_like_key(&format!("wr_{}-", "a".repeat(40))));
        assert!(looks_like_key(&format!("wr_{}", "a".repeat(32))));
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
