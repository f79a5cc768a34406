//! Team API keys (`team_api_keys`): only the SHA-256 of a key is stored, never the key.

use sqlx::{Any, Executor, Row};
use warren_types::{ApiKeyId, TeamId, UserId};

use super::{StoreError, parse_id};

/// A stored API key (without its secret).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The team it acts as.
    pub team_id: TeamId,
    /// Label given at creation.
    pub name: String,
    /// Hex SHA-256 of the full key.
    pub key_hash: String,
    /// First characters of the key, to recognise it in lists.
    pub key_prefix: String,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last authenticated request.
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str =
    "id, team_id, name, key_hash, key_prefix, created_by, created_at, last_used_at";

fn from_row(row: sqlx::any::AnyRow) -> Result<ApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let created_by: Option<String> = row.try_get("created_by")?;
    Ok(ApiKey {
        id: parse_id("team_api_keys", &id)?,
        team_id: parse_id("team_api_keys", &team_id)?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        created_by: created_by
            .map(|u| parse_id("team_api_keys", &u))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// Inserts a key.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    key: &ApiKey,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO team_api_keys \
         (id, team_id, name, key_hash, key_prefix, created_by, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key.id.to_string())
    .bind(key.team_id.to_string())
    .bind(&key.name)
    .bind(&key.key_hash)
    .bind(&key.key_prefix)
    .bind(key.created_by.map(|u| u.to_string()))
    .bind(key.created_at)
    .bind(key.last_used_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The key whose hash this is.
pub async fn by_hash<'e, E: Executor<'e, Database = Any>>(
    db: E,
    key_hash: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM team_api_keys WHERE key_hash = $1");
    sqlx::query(&sql)
        .bind(key_hash)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The team's keys, newest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM team_api_keys WHERE team_id = $1 ORDER BY created_at DESC, id DESC"
    );
    sqlx::query(&sql)
        .bind(team.to_string())
        .fetch_all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Deletes the team's key; `false` if the team has no such key.
pub async fn delete<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    id: ApiKeyId,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM team_api_keys WHERE id = $1 AND team_id = $2")
        .bind(id.to_string())
        .bind(team.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Records use of a key.
pub async fn touch<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: ApiKeyId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE team_api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}
