//! Platform admins: who may manage hosts. One is created (or its password updated) at start
//! from `WARREN_ADMIN_EMAIL` + `WARREN_ADMIN_PASSWORD` ([`bootstrap`]); [`AdminAuth`] accepts a
//! user JWT whose user has `users.is_admin`, and answers 403 `forbidden` to any other user.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use warren_types::{TeamId, UserId};

use crate::AppState;
use crate::auth::password;
use crate::auth::principal::UserAuth;
use crate::error::ApiError;
use crate::store::team::{Role, Team};
use crate::store::user::User;
use crate::store::{self, StoreError, now_ms};

/// A request by a platform admin.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth {
    /// The admin.
    pub user_id: UserId,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = UserAuth::from_request_parts(parts, state).await?;
        if !store::user::is_admin(state.store().pool(), user.user_id).await? {
            return Err(ApiError::Forbidden("this route is for platform admins"));
        }
        Ok(AdminAuth {
            user_id: user.user_id,
        })
    }
}

/// Why the admin could not be bootstrapped.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The configured email is not an email.
    #[error("admin email {0:?}: {1}")]
    Email(String, String),
    /// The password is too short or too long.
    #[error("admin password: {0}")]
    Password(String),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] password::PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the admin user (with a default team, like a signup) or updates its password, and
/// sets `is_admin`. Idempotent: runs at every start.
pub async fn bootstrap(
    state: &AppState,
    email: &str,
    pw: &crate::config::Secret,
) -> Result<UserId, BootstrapError> {
    let email = crate::input::email("admin_email", email)
        .map_err(|e| BootstrapError::Email(email.to_owned(), e.message))?;
    crate::input::password("admin_password", pw.expose())
        .map_err(|e| BootstrapError::Password(e.message))?;
    let params = state.config().password;
    let p = pw.expose().to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(params, &p))
        .await
        .map_err(|e| StoreError::Corrupt {
            table: "users",
            detail: format!("password task: {e}"),
        })??;
    let pool = state.store().pool();
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let user_id = match store::user::by_email(&mut *tx, &email).await? {
        Some(u) => u.id,
        None => {
            let now = now_ms();
            let team = Team {
                id: TeamId::new(),
                name: "Admin".to_owned(),
                created_at: now,
            };
            let user = User {
                id: UserId::new(),
                email: email.clone(),
                name: Some("Admin".to_owned()),
                password_hash: hash.clone(),
                default_team_id: Some(team.id),
                created_at: now,
            };
            store::team::insert(&mut *tx, &team).await?;
            store::user::insert(&mut *tx, &user).await?;
            store::team::add_member(&mut *tx, team.id, user.id, Role::Owner, now).await?;
            user.id
        }
    };
    store::user::set_admin(&mut *tx, user_id, &hash).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(user_id = %user_id, email = %email, "platform admin ready");
    Ok(user_id)
}
