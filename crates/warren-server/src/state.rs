//! `AppState`: the one cheap-to-clone handle every handler gets: configuration, store, JWT
//! keys. It holds nothing that matters across restarts: all state is in the database.

use std::sync::Arc;

use crate::auth::jwt::{self, JwtKeys, SecretError};
use crate::auth::password::{self, PasswordError};
use crate::config::Config;
use crate::fleet::agent_auth::{AgentKeyError, AgentSigner};
use crate::store::{Store, StoreError};

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be created.
    #[error("creating data dir {path}: {source}")]
    DataDir {
        /// The dir.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JWT secret is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password parameters are invalid.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The agent signing key is unusable.
    #[error(transparent)]
    AgentKey(#[from] AgentKeyError),
}

/// Shared state of the control plane.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    jwt: JwtKeys,
    /// Signs the tokens the control plane presents to agents.
    agent_signer: AgentSigner,
    /// Hash verified against when a login names an unknown email, so that both paths cost
    /// the same and response time does not reveal which emails exist.
    dummy_hash: String,
}

impl AppState {
    /// Creates the data dir, opens and migrates the store, loads the JWT secret.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let secret = jwt::load_secret(
            config.jwt_secret.as_ref().map(|s| s.expose()),
            &config.data_dir,
        )?;
        let jwt = JwtKeys::new(&secret, config.jwt_ttl);
        let dummy_hash = password::hash(config.password, "warren-dummy-password")?;
        let agent_signer = AgentSigner::load_or_create(&config.data_dir)?;
        let store = Store::connect(&config.database, config.max_db_connections).await?;
        Ok(Self(Arc::new(Inner {
            config,
            store,
            jwt,
            agent_signer,
            dummy_hash,
        })))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// JWT keys.
    pub fn jwt(&self) -> &JwtKeys {
        &self.0.jwt
    }

    /// Signs the control plane's tokens towards agents.
    pub fn agent_signer(&self) -> &AgentSigner {
        &self.0.agent_signer
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }
}
