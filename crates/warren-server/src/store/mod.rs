//! The control plane's store: one set of repository functions over SQLite **or** PostgreSQL.
//!
//! Why `sqlx::Any` with hand-written portable SQL (and not an enum of two pools, nor a query
//! builder): every query in Warren is simple CRUD that both dialects accept word for word when
//! we keep to a small subset: `$1` placeholders (SQLite accepts them too), TEXT ids (UUID
//! strings), BIGINT unix-millisecond times, TEXT JSON documents, no `RETURNING`-dependent
//! logic, no booleans. With that subset one function serves both stores, the test suite runs
//! the same code paths against both, and there is no per-dialect branch to forget. Where a
//! dialect really differs (migrations, SQLite's WAL pragma) [`Dialect`] says which one we talk
//! to. Runtime queries (`sqlx::query`), never the compile-time macros: the build needs no
//! database.
//!
//! Migrations live in `migrations/{sqlite,postgres}/`, are embedded in the binary and applied
//! at start-up by [`Store::connect`].
//!
//! Layout: one submodule per table family (`user`, `team`, `api_key`); each takes the pool or
//! a transaction, and returns plain internal records (no `Serialize`: DTOs live in the HTTP
//! modules).

pub mod api_key;
pub mod host;
pub mod sandbox;
pub mod team;
pub mod template;
pub mod user;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseConfig;

/// Errors of the store. Unique-constraint violations are their own variant so that callers
/// map them to 409 without reading messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("conflict on unique constraint {constraint}")]
    Conflict {
        /// The constraint name, if the driver reports it.
        constraint: String,
    },
    /// A stored value could not be read back as its type.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table the row came from.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Connecting to the database failed.
    #[error("connecting to {store}: {source}")]
    Connect {
        /// `sqlite` or `postgres`.
        store: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("applying {store} migrations: {source}")]
    Migrate {
        /// `sqlite` or `postgres`.
        store: &'static str,
        /// The migration error.
        source: sqlx::migrate::MigrateError,
    },
    /// Any other database error.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict {
                constraint: db.constraint().unwrap_or("unknown").to_owned(),
            };
        }
        StoreError::Database(e)
    }
}

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Dialect {
    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A cheap-to-clone handle on the database pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects, switches SQLite to WAL, and applies the embedded migrations.
    pub async fn connect(
        config: &DatabaseConfig,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        install_default_drivers();
        let (url, dialect) = match config {
            DatabaseConfig::Sqlite { path } => (
                format!("sqlite://{}?mode=rwc", path.display()),
                Dialect::Sqlite,
            ),
            DatabaseConfig::Postgres { url } => (url.expose().to_owned(), Dialect::Postgres),
        };
        let store = dialect.as_str();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Per-connection settings: enforce foreign keys, wait on a busy writer
                        // instead of failing at once.
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect { store, source })?;
        if dialect == Dialect::Sqlite {
            // WAL is a property of the file: set once, kept across restarts.
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(|source| StoreError::Connect { store, source })?;
        }
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { store, source })?;
        tracing::info!(store, "database ready");
        Ok(Self { pool, dialect })
    }

    /// The pool, for repository functions.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which dialect this store speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (at shutdown, and in tests before dropping a database).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now, in the unit every table uses: unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses an id column, naming the table on failure.
pub(crate) fn parse_id<T: std::str::FromStr>(table: &'static str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}
