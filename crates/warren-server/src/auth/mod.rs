//! Accounts: signup, login, switching team, and `GET /v1/me`.
//!
//! Signup creates the user, a default team and the owner membership in one transaction, so a
//! user never exists without a team. Login compares against a dummy hash when the email is
//! unknown, so timing does not reveal which emails have accounts.

pub mod admin;
pub mod jwt;
pub mod password;
pub mod principal;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warren_types::{TeamId, UserId};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, FieldError, Json};
use crate::input;
use crate::store::team::{Membership, Role, Team};
use crate::store::user::User;
use crate::store::{self, StoreError, now_ms};
use crate::team::TeamDto;
pub use principal::{TeamAuth, UserAuth};

/// Unix milliseconds as a timestamp.
pub(crate) fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Body of `POST /v1/auth/signup`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    /// Email address; case-insensitive and unique.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// Display name (1–100 characters).
    pub name: Option<String>,
}

/// Body of `POST /v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Body of `POST /v1/auth/switch-team`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchTeamRequest {
    /// A team the user belongs to.
    pub team_id: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// User id.
    pub id: uuid::Uuid,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email.clone(),
            name: u.name.clone(),
            created_at: ts(u.created_at),
        }
    }
}

/// A JWT and who it is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// The user.
    pub user: UserDto,
    /// The team the token acts for.
    pub team: TeamDto,
}

/// How a request authenticated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// A user JWT.
    User,
    /// A team API key.
    ApiKey,
}

/// Body of `GET /v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// How this request authenticated.
    pub auth: AuthKind,
    /// The user (absent for API keys).
    pub user: Option<UserDto>,
    /// The team this request acts for (with the user's role for JWTs).
    pub team: TeamDto,
    /// The key used (API keys only).
    pub api_key_id: Option<uuid::Uuid>,
}

fn issue(state: &AppState, user: &User, m: &Membership) -> Result<AuthResponse, ApiError> {
    let (token, exp) = state
        .jwt()
        .issue(user.id, m.team.id)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(AuthResponse {
        token,
        expires_at: DateTime::from_timestamp(exp, 0).unwrap_or_default(),
        user: user.into(),
        team: TeamDto::from(m),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, password::PasswordError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("password task: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Create an account and its default team; returns a JWT.
#[utoipa::path(
    post, path = "/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created", body = AuthResponse),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorBody),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<AuthResponse>), ApiError> {
    let email = input::email("email", &req.email);
    let name = req
        .name
        .as_deref()
        .map(|n| input::name("name", n))
        .transpose();
    input::all(vec![
        email.as_ref().map(|_| ()).map_err(FieldError::clone),
        input::password("password", &req.password),
        name.as_ref().map(|_| ()).map_err(FieldError::clone),
    ])?;
    let (email, name) = (
        email.map_err(ApiError::from_field)?,
        name.map_err(ApiError::from_field)?,
    );

    let params = state.config().password;
    let pw = req.password;
    let password_hash = blocking(move || password::hash(params, &pw)).await?;

    let now = now_ms();
    let team = Team {
        id: TeamId::new(),
        name: "Personal".to_owned(),
        created_at: now,
    };
    let user = User {
        id: UserId::new(),
        email,
        name,
        password_hash,
        default_team_id: Some(team.id),
        created_at: now,
    };
    let mut tx = state
        .store()
        .pool()
        .begin()
        .await
        .map_err(StoreError::from)?;
    store::team::insert(&mut *tx, &team).await?;
    match store::user::insert(&mut *tx, &user).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::Conflict("email already registered".into()));
        }
        other => other?,
    }
    store::team::add_member(&mut *tx, team.id, user.id, Role::Owner, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(user_id = %user.id, team_id = %team.id, "user signed up");

    let membership = Membership {
        team,
        role: Role::Owner,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(issue(&state, &user, &membership)?),
    ))
}

/// Exchange email and password for a JWT for the user's default team.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = AuthResponse),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<AuthResponse>, ApiError> {
    let mut missing = Vec::new();
    if req.email.trim().is_empty() {
        missing.push(FieldError::new("email", "must not be empty"));
    }
    if req.password.is_empty() {
        missing.push(FieldError::new("password", "must not be empty"));
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    let wrong = || ApiError::Unauthenticated("invalid email or password");
    let email = req.email.trim().to_lowercase();
    let user = store::user::by_email(state.store().pool(), &email).await?;
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => state.dummy_hash().to_owned(),
    };
    let pw = req.password;
    let ok = if pw.len() > input::MAX_PASSWORD_BYTES {
        false
    } else {
        blocking(move || password::verify(&phc, &pw)).await?
    };
    let user = match user {
        Some(u) if ok => u,
        _ => return Err(wrong()),
    };
    let memberships = store::team::memberships_of(state.store().pool(), user.id).await?;
    let membership = memberships
        .iter()
        .find(|m| Some(m.team.id) == user.default_team_id)
        .or_else(|| memberships.first())
        .ok_or(ApiError::Forbidden("this account belongs to no team"))?;
    Ok(axum::Json(issue(&state, &user, membership)?))
}

/// A new JWT acting for another team the user belongs to.
#[utoipa::path(
    post, path = "/v1/auth/switch-team", tag = "auth",
    request_body = SwitchTeamRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Token for the other team", body = AuthResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such team among the user's teams", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn switch_team(
    State(state): State<AppState>,
    auth: UserAuth,
    Json(req): Json<SwitchTeamRequest>,
) -> Result<axum::Json<AuthResponse>, ApiError> {
    let team_id: TeamId = crate::error::path_id("team", &req.team_id)?;
    let membership = store::team::membership(state.store().pool(), auth.user_id, team_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("team {team_id} not found")))?;
    let user = store::user::by_id(state.store().pool(), auth.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated("user no longer exists"))?;
    Ok(axum::Json(issue(&state, &user, &membership)?))
}

/// Who am I: the user and team of a JWT, or the team of an API key.
#[utoipa::path(
    get, path = "/v1/me", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    auth: TeamAuth,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let pool = state.store().pool();
    let gone = || ApiError::Unauthenticated("credentials no longer valid");
    let resp = match auth {
        TeamAuth::User(u) => {
            let user = store::user::by_id(pool, u.user_id)
                .await?
                .ok_or_else(gone)?;
            let m = store::team::membership(pool, u.user_id, u.team_id)
                .await?
                .ok_or_else(gone)?;
            MeResponse {
                auth: AuthKind::User,
                user: Some((&user).into()),
                team: TeamDto::from(&m),
                api_key_id: None,
            }
        }
        TeamAuth::ApiKey { key_id, team_id } => {
            let team = store::team::by_id(pool, team_id).await?.ok_or_else(gone)?;
            MeResponse {
                auth: AuthKind::ApiKey,
                user: None,
                team: TeamDto {
                    id: team.id.as_uuid(),
                    name: team.name,
                    role: None,
                    created_at: ts(team.created_at),
                },
                api_key_id: Some(key_id.as_uuid()),
            }
        }
    };
    Ok(axum::Json(resp))
}
