//! Who is calling: extractors that authenticate a request and say which team it acts for.
//!
//! - [`UserAuth`]: a user JWT (`Authorization: Bearer`); the user must still be a member of the
//!   token's team (checked against the database on every request, so removal takes effect at
//!   once). Management routes (teams, members, API keys) take this.
//! - [`TeamAuth`]: a user JWT **or** a team API key (`X-API-Key`). Program-facing routes
//!   (sandboxes, templates, ...) take this; `team_id()` is the only team they may touch.
//!
//! The team id always comes from the credential, never from the request body or path.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use warren_types::{ApiKeyId, TeamId, UserId};

use crate::AppState;
use crate::api_key::{hash_key, looks_like_key};
use crate::error::ApiError;
use crate::store::team::Role;
use crate::store::{self};

/// How stale an API key's `last_used_at` may be before a request records it again.
const LAST_USED_PRECISION_MS: i64 = 60_000;

/// Header carrying a team API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// A request authenticated with a user JWT.
#[derive(Debug, Clone, Copy)]
pub struct UserAuth {
    /// The user.
    pub user_id: UserId,
    /// The team of the token.
    pub team_id: TeamId,
    /// The user's role in that team.
    pub role: Role,
}

/// How a team-scoped request authenticated.
#[derive(Debug, Clone, Copy)]
pub enum TeamAuth {
    /// A user JWT.
    User(UserAuth),
    /// A team API key.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// Its team.
        team_id: TeamId,
    },
}

impl TeamAuth {
    /// The one team this request may act on.
    pub fn team_id(&self) -> TeamId {
        match self {
            TeamAuth::User(u) => u.team_id,
            TeamAuth::ApiKey { team_id, .. } => *team_id,
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthenticated(
            "authorization header must be `Bearer <token>`",
        )),
    }
}

async fn user_from_token(state: &AppState, token: &str) -> Result<UserAuth, ApiError> {
    let (user_id, team_id) = state.jwt().verify(token).map_err(|e| {
        tracing::debug!(error = %e, "token refused");
        ApiError::Unauthenticated("invalid or expired token")
    })?;
    let membership = store::team::membership(state.store().pool(), user_id, team_id)
        .await?
        .ok_or(ApiError::Unauthenticated(
            "token no longer valid for its team; log in again",
        ))?;
    Ok(UserAuth {
        user_id,
        team_id,
        role: membership.role,
    })
}

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts)? {
            Some(token) => user_from_token(state, token).await,
            None if parts.headers.contains_key(API_KEY_HEADER) => Err(ApiError::Unauthenticated(
                "this route needs a user token (Authorization: Bearer), not an api key",
            )),
            None => Err(ApiError::Unauthenticated("missing credentials")),
        }
    }
}

impl FromRequestParts<AppState> for TeamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts)? {
            return Ok(TeamAuth::User(user_from_token(state, token).await?));
        }
        let Some(value) = parts.headers.get(API_KEY_HEADER) else {
            return Err(ApiError::Unauthenticated("missing credentials"));
        };
        let invalid = ApiError::Unauthenticated("invalid api key");
        let key = value
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("invalid api key"))?;
        if !looks_like_key(key) {
            return Err(invalid);
        }
        let hash = hash_key(key);
        let Some(stored) = store::api_key::by_hash(state.store().pool(), &hash).await? else {
            return Err(invalid);
        };
        // The lookup matched by index; compare again in constant time so that the decision
        // never depends on a short-circuiting string comparison.
        use subtle::ConstantTimeEq;
        if !bool::from(stored.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(invalid);
        }
        // `last_used_at` is for people ("used 3 minutes ago"): a minute's precision is
        // enough, and a write on every request would serialise all key traffic on SQLite.
        let now = store::now_ms();
        if stored
            .last_used_at
            .is_none_or(|t| now.saturating_sub(t) >= LAST_USED_PRECISION_MS)
        {
            store::api_key::touch(state.store().pool(), stored.id, now).await?;
        }
        Ok(TeamAuth::ApiKey {
            key_id: stored.id,
            team_id: stored.team_id,
        })
    }
}

/// Query parameter carrying a credential where headers cannot be set (a browser's
/// `WebSocket` or `EventSource`).
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// [`TeamAuth`] for WebSocket and server-sent-event routes: the usual headers, or else
/// `?access_token=<user JWT or API key>` in the query. Only those routes take it, so a token
/// in a URL (which proxies and browsers may log) is never accepted where a header can be
/// sent.
#[derive(Debug, Clone, Copy)]
pub struct StreamAuth(pub TeamAuth);

impl StreamAuth {
    /// The one team this request may act on.
    pub fn team_id(&self) -> TeamId {
        self.0.team_id()
    }
}

fn query_token(parts: &Parts) -> Option<String> {
    crate::proxy::query_param(parts.uri.query()?, ACCESS_TOKEN_PARAM)
}

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let has_header = parts.headers.contains_key(http::header::AUTHORIZATION)
            || parts.headers.contains_key(API_KEY_HEADER);
        if has_header {
            return TeamAuth::from_request_parts(parts, state)
                .await
                .map(StreamAuth);
        }
        let Some(token) = query_token(parts) else {
            return Err(ApiError::Unauthenticated("missing credentials"));
        };
        // Re-use the header paths: the token is checked exactly as if it had been sent there.
        let header = if looks_like_key(&token) {
            http::HeaderName::from_static(API_KEY_HEADER)
        } else {
            http::header::AUTHORIZATION
        };
        let value = if header == http::header::AUTHORIZATION {
            format!("Bearer {token}")
        } else {
            token
        };
        let value = http::HeaderValue::from_str(&value)
            .map_err(|_| ApiError::Unauthenticated("invalid access_token"))?;
        parts.headers.insert(header.clone(), value);
        let auth = TeamAuth::from_request_parts(parts, state).await;
        parts.headers.remove(&header);
        auth.map(StreamAuth)
    }
}
