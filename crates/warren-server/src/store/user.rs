//! Users: accounts that log in with email and password.

use sqlx::{Any, Executor, Row};
use warren_types::{TeamId, UserId};

use super::{StoreError, parse_id};

/// A stored user.
#[derive(Debug, Clone)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Normalized (trimmed, lower-case) email.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Team chosen at login.
    pub default_team_id: Option<TeamId>,
    /// Unix ms.
    pub created_at: i64,
}

const COLUMNS: &str = "id, email, name, password_hash, default_team_id, created_at";

fn from_row(row: sqlx::any::AnyRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let default_team_id: Option<String> = row.try_get("default_team_id")?;
    Ok(User {
        id: parse_id("users", &id)?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        default_team_id: default_team_id.map(|t| parse_id("users", &t)).transpose()?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a user; a taken email is [`StoreError::Conflict`].
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    user: &User,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, default_team_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(user.name.clone())
    .bind(&user.password_hash)
    .bind(user.default_team_id.map(|t| t.to_string()))
    .bind(user.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The user with this (already normalized) email.
pub async fn by_email<'e, E: Executor<'e, Database = Any>>(
    db: E,
    email: &str,
) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    sqlx::query(&sql)
        .bind(email)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The user with this id.
pub async fn by_id<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: UserId,
) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// Whether the user is a platform admin (`users.is_admin`).
pub async fn is_admin<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: UserId,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT is_admin FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<i64, _>("is_admin")? != 0,
        None => false,
    })
}

/// Makes a user a platform admin with this password hash (admin bootstrap at start).
pub async fn set_admin<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: UserId,
    password_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET is_admin = 1, password_hash = $2 WHERE id = $1")
        .bind(id.to_string())
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(())
}
