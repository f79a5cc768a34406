//! `ApiError`: the one type that turns every failure into an HTTP response, with the shape
//! `{"error": {"code": "...", "message": "...", "fields": [...]}}` (`fields` only for
//! validation errors). Handlers, extractors, the fallback (404) and the method fallback (405)
//! all answer through it, and our [`Json`] extractor maps body rejections (malformed JSON,
//! wrong content type, body too large) into it, so no response of this server has any other
//! error shape.
//!
//! 5xx bodies hide internals; the cause is logged once, here, inside the request's trace span.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input failed validation (400).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The body is not JSON (400).
    #[error("malformed json: {0}")]
    MalformedJson(String),
    /// The body is JSON of the wrong form: missing field, wrong type (422).
    #[error("{0}")]
    Unprocessable(String),
    /// No or bad credentials (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Not found, or not yours (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// Body larger than the limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// Body is not `application/json` (415).
    #[error("expected a json body with content-type application/json")]
    UnsupportedMediaType,
    /// A dependency is down (503).
    #[error("{0}")]
    Unavailable(&'static str),
    /// No host can take the sandbox now (503 `no_capacity`).
    #[error("{0}")]
    NoCapacity(String),
    /// A host agent failed or could not be reached (502 `host_error`); the message names the
    /// host and the operation, never the host's internals.
    #[error("{0}")]
    Upstream(String),
    /// A host operation took too long (504 `timeout`).
    #[error("{0}")]
    Timeout(String),
    /// A bug or an infrastructure failure (500); the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status and stable machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "validation_failed"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::NoCapacity(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "host_error"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A validation error from one field error.
    pub fn from_field(e: FieldError) -> Self {
        ApiError::Validation(vec![e])
    }

    /// A single-field validation error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Callers that expect a conflict map it with a better message first; one reaching
            // here is still a conflict, not a 500.
            StoreError::Conflict { .. } => ApiError::Conflict("already exists".into()),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::Unavailable("database busy, retry later")
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The JSON error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `validation_failed`, `malformed_json`, `unprocessable`, `unauthenticated`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `unavailable`, `no_capacity`, `host_error`, `timeout`,
    /// `internal`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Per-field messages, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                "internal error".to_owned()
            }
            ApiError::Unavailable(_) => {
                tracing::warn!(error = %self, "dependency unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let fields = match self {
            ApiError::Validation(fields) => Some(fields),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
                fields,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

/// `axum::Json`, but every rejection answers in our error shape, and the body must be a JSON
/// object (serde would otherwise accept `["a@b.co", "pw"]` for a struct).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(rejection_to_error)?;
        if !value.is_object() {
            return Err(ApiError::Unprocessable(
                "request body must be a json object".into(),
            ));
        }
        // The path names the offending field: "password: invalid type: integer `1`, ...".
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    ApiError::Unprocessable(e.into_inner().to_string())
                } else {
                    ApiError::Unprocessable(format!("{path}: {}", e.into_inner()))
                }
            })
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(serde_cause(&e.body_text())),
        JsonRejection::JsonDataError(e) => ApiError::Unprocessable(serde_cause(&e.body_text())),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::MalformedJson(other.body_text()),
    }
}

/// axum prefixes serde's message with a sentence of its own; keep serde's part, which names
/// the field and position ("missing field `email` at line 1 column 2").
fn serde_cause(text: &str) -> String {
    text.split_once(": ")
        .map(|(_, cause)| cause.to_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// Unknown route.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `axum::extract::Path`, but an unparseable path answers 404 in our error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::NotFound("no such resource".into()))
    }
}

/// Parses an id from a path segment; a malformed id is simply not found.
pub fn path_id<T>(kind: &str, raw: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
{
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(64).collect();
        ApiError::NotFound(format!("{kind} {shown:?} not found"))
    })
}
