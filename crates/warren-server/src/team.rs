//! Teams and their members: list and create teams, add and remove members.
//!
//! A team the caller does not belong to is indistinguishable from one that does not exist
//! (404). Owners and admins manage members; the owner cannot be removed; anyone but the owner
//! may leave.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warren_types::{TeamId, UserId};

use crate::AppState;
use crate::auth::{UserAuth, ts};
use crate::error::{ApiError, ErrorBody, Json, Path, path_id};
use crate::input;
use crate::store::team::{Member, Membership, Role, Team};
use crate::store::{self, StoreError, now_ms};

/// A team as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDto {
    /// Team id.
    pub id: uuid::Uuid,
    /// Display name.
    pub name: String,
    /// The caller's role (absent when the caller is an API key).
    pub role: Option<Role>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&Membership> for TeamDto {
    fn from(m: &Membership) -> Self {
        Self {
            id: m.team.id.as_uuid(),
            name: m.team.name.clone(),
            role: Some(m.role),
            created_at: ts(m.team.created_at),
        }
    }
}

/// A member of a team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// User id.
    pub user_id: uuid::Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Role in the team.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl From<&Member> for MemberDto {
    fn from(m: &Member) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            email: m.email.clone(),
            name: m.name.clone(),
            role: m.role,
            joined_at: ts(m.joined_at),
        }
    }
}

/// Body of `POST /v1/teams`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTeamRequest {
    /// Display name (1–100 characters).
    pub name: String,
}

/// Body of `POST /v1/teams/{team_id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberRequest {
    /// Email of an existing user.
    pub email: String,
    /// `admin` or `member` (default `member`).
    pub role: Option<String>,
}

async fn membership_or_404(
    state: &AppState,
    user: UserId,
    raw_team: &str,
) -> Result<Membership, ApiError> {
    let team_id: TeamId = path_id("team", raw_team)?;
    store::team::membership(state.store().pool(), user, team_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("team {team_id} not found")))
}

/// Teams the caller belongs to.
#[utoipa::path(
    get, path = "/v1/teams", tag = "teams",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's teams", body = [TeamDto]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: UserAuth,
) -> Result<axum::Json<Vec<TeamDto>>, ApiError> {
    let teams = store::team::memberships_of(state.store().pool(), auth.user_id).await?;
    Ok(axum::Json(teams.iter().map(TeamDto::from).collect()))
}

/// Create a team; the caller becomes its owner.
#[utoipa::path(
    post, path = "/v1/teams", tag = "teams",
    security(("bearer" = [])),
    request_body = CreateTeamRequest,
    responses(
        (status = 201, description = "Team created", body = TeamDto),
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
    Json(req): Json<CreateTeamRequest>,
) -> Result<(StatusCode, axum::Json<TeamDto>), ApiError> {
    let name = input::name("name", &req.name).map_err(ApiError::from_field)?;
    let now = now_ms();
    let team = Team {
        id: TeamId::new(),
        name,
        created_at: now,
    };
    let mut tx = state
        .store()
        .pool()
        .begin()
        .await
        .map_err(StoreError::from)?;
    store::team::insert(&mut *tx, &team).await?;
    store::team::add_member(&mut *tx, team.id, auth.user_id, Role::Owner, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(team_id = %team.id, user_id = %auth.user_id, "team created");
    let m = Membership {
        team,
        role: Role::Owner,
    };
    Ok((StatusCode::CREATED, axum::Json(TeamDto::from(&m))))
}

/// One of the caller's teams.
#[utoipa::path(
    get, path = "/v1/teams/{team_id}", tag = "teams",
    security(("bearer" = [])),
    params(("team_id" = uuid::Uuid, Path, description = "Team id")),
    responses(
        (status = 200, description = "The team", body = TeamDto),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such team among the caller's", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    auth: UserAuth,
    Path(team_id): Path<String>,
) -> Result<axum::Json<TeamDto>, ApiError> {
    let m = membership_or_404(&state, auth.user_id, &team_id).await?;
    Ok(axum::Json(TeamDto::from(&m)))
}

/// Members of one of the caller's teams.
#[utoipa::path(
    get, path = "/v1/teams/{team_id}/members", tag = "teams",
    security(("bearer" = [])),
    params(("team_id" = uuid::Uuid, Path, description = "Team id")),
    responses(
        (status = 200, description = "Members", body = [MemberDto]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such team among the caller's", body = ErrorBody),
    )
)]
pub async fn members(
    State(state): State<AppState>,
    auth: UserAuth,
    Path(team_id): Path<String>,
) -> Result<axum::Json<Vec<MemberDto>>, ApiError> {
    let m = membership_or_404(&state, auth.user_id, &team_id).await?;
    let members = store::team::members(state.store().pool(), m.team.id).await?;
    Ok(axum::Json(members.iter().map(MemberDto::from).collect()))
}

/// Add an existing user to a team (owners and admins).
#[utoipa::path(
    post, path = "/v1/teams/{team_id}/members", tag = "teams",
    security(("bearer" = [])),
    params(("team_id" = uuid::Uuid, Path, description = "Team id")),
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "Member added", body = MemberDto),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "No such team among the caller's, or no such user", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn add_member(
    State(state): State<AppState>,
    auth: UserAuth,
    Path(team_id): Path<String>,
    Json(req): Json<AddMemberRequest>,
) -> Result<(StatusCode, axum::Json<MemberDto>), ApiError> {
    let m = membership_or_404(&state, auth.user_id, &team_id).await?;
    let email = input::email("email", &req.email);
    let role = match req.role.as_deref() {
        None | Some("member") => Ok(Role::Member),
        Some("admin") => Ok(Role::Admin),
        Some(_) => Err(crate::error::FieldError::new(
            "role",
            "must be `admin` or `member`",
        )),
    };
    input::all(vec![
        email.as_ref().map(|_| ()).map_err(Clone::clone),
        role.as_ref().map(|_| ()).map_err(Clone::clone),
    ])?;
    let (email, role) = (
        email.map_err(ApiError::from_field)?,
        role.map_err(ApiError::from_field)?,
    );
    if !m.role.manages_members() {
        return Err(ApiError::Forbidden("only owners and admins manage members"));
    }
    let pool = state.store().pool();
    let user = store::user::by_email(pool, &email)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with email {email}")))?;
    let now = now_ms();
    match store::team::add_member(pool, m.team.id, user.id, role, now).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::Conflict(format!("{email} is already a member")));
        }
        other => other?,
    }
    tracing::info!(team_id = %m.team.id, user_id = %user.id, role = role.as_str(), "member added");
    Ok((
        StatusCode::CREATED,
        axum::Json(MemberDto {
            user_id: user.id.as_uuid(),
            email: user.email,
            name: user.name,
            role,
            joined_at: ts(now),
        }),
    ))
}

/// Remove a member (owners and admins; anyone may remove themselves; never the owner).
#[utoipa::path(
    delete, path = "/v1/teams/{team_id}/members/{user_id}", tag = "teams",
    security(("bearer" = [])),
    params(
        ("team_id" = uuid::Uuid, Path, description = "Team id"),
        ("user_id" = uuid::Uuid, Path, description = "User id of the member"),
    ),
    responses(
        (status = 204, description = "Member removed"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Caller may not remove this member", body = ErrorBody),
        (status = 404, description = "No such team among the caller's, or no such member", body = ErrorBody),
        (status = 409, description = "The owner cannot be removed", body = ErrorBody),
    )
)]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: UserAuth,
    Path((team_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let m = membership_or_404(&state, auth.user_id, &team_id).await?;
    let target: UserId = path_id("member", &user_id)?;
    let pool = state.store().pool();
    let target_m = store::team::membership(pool, target, m.team.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("member {target} not found")))?;
    if target_m.role == Role::Owner {
        return Err(ApiError::Conflict(
            "the team owner cannot be removed".into(),
        ));
    }
    if target != auth.user_id && !m.role.manages_members() {
        return Err(ApiError::Forbidden("only owners and admins manage members"));
    }
    if !store::team::remove_member(pool, m.team.id, target).await? {
        return Err(ApiError::NotFound(format!("member {target} not found")));
    }
    tracing::info!(team_id = %m.team.id, user_id = %target, "member removed");
    Ok(StatusCode::NO_CONTENT)
}
