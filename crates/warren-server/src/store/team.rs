//! Teams and memberships (`teams`, `users_teams`).

use std::str::FromStr;

use sqlx::{Any, Executor, Row};
use warren_types::{TeamId, UserId};

use super::{StoreError, parse_id};

/// A member's role in a team.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the team; cannot be removed.
    Owner,
    /// May manage members.
    Admin,
    /// Uses the team's resources.
    Member,
}

impl Role {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Owners and admins manage members.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(StoreError::Corrupt {
                table: "users_teams",
                detail: format!("unknown role {other:?}"),
            }),
        }
    }
}

/// A stored team.
#[derive(Debug, Clone)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Display name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A team seen by one of its members.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The team.
    pub team: Team,
    /// The member's role in it.
    pub role: Role,
}

/// A member of a team.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: Option<String>,
    /// Their role.
    pub role: Role,
    /// When they joined, unix ms.
    pub joined_at: i64,
}

fn membership_from_row(row: sqlx::any::AnyRow) -> Result<Membership, StoreError> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    Ok(Membership {
        team: Team {
            id: parse_id("teams", &id)?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        },
        role: role.parse()?,
    })
}

/// Inserts a team.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: &Team,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(team.id.to_string())
        .bind(&team.name)
        .bind(team.created_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Adds a member; an existing membership is [`StoreError::Conflict`].
pub async fn add_member<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    user: UserId,
    role: Role,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users_teams (user_id, team_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user.to_string())
    .bind(team.to_string())
    .bind(role.as_str())
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The team as `user` sees it, or `None` if they are not a member (or it does not exist: the
/// caller cannot tell the two apart, by design).
pub async fn membership<'e, E: Executor<'e, Database = Any>>(
    db: E,
    user: UserId,
    team: TeamId,
) -> Result<Option<Membership>, StoreError> {
    sqlx::query(
        "SELECT t.id, t.name, t.created_at, ut.role FROM teams t \
         JOIN users_teams ut ON ut.team_id = t.id \
         WHERE ut.user_id = $1 AND t.id = $2",
    )
    .bind(user.to_string())
    .bind(team.to_string())
    .fetch_optional(db)
    .await?
    .map(membership_from_row)
    .transpose()
}

/// Every team `user` belongs to, oldest membership first.
pub async fn memberships_of<'e, E: Executor<'e, Database = Any>>(
    db: E,
    user: UserId,
) -> Result<Vec<Membership>, StoreError> {
    sqlx::query(
        "SELECT t.id, t.name, t.created_at, ut.role FROM teams t \
         JOIN users_teams ut ON ut.team_id = t.id \
         WHERE ut.user_id = $1 ORDER BY ut.created_at, t.id",
    )
    .bind(user.to_string())
    .fetch_all(db)
    .await?
    .into_iter()
    .map(membership_from_row)
    .collect()
}

/// A team by id, with no membership check: only for principals already scoped to it (API keys).
pub async fn by_id<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: TeamId,
) -> Result<Option<Team>, StoreError> {
    let row = sqlx::query("SELECT id, name, created_at FROM teams WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    row.map(|row| {
        Ok(Team {
            id,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .transpose()
}

/// Members of a team, oldest first.
pub async fn members<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
) -> Result<Vec<Member>, StoreError> {
    sqlx::query(
        "SELECT u.id, u.email, u.name, ut.role, ut.created_at FROM users_teams ut \
         JOIN users u ON u.id = ut.user_id \
         WHERE ut.team_id = $1 ORDER BY ut.created_at, u.id",
    )
    .bind(team.to_string())
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|row| {
        let id: String = row.try_get("id")?;
        let role: String = row.try_get("role")?;
        Ok(Member {
            user_id: parse_id("users", &id)?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            role: role.parse()?,
            joined_at: row.try_get("created_at")?,
        })
    })
    .collect()
}

/// Removes a membership; `false` if there was none.
pub async fn remove_member<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    user: UserId,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM users_teams WHERE team_id = $1 AND user_id = $2")
        .bind(team.to_string())
        .bind(user.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}
