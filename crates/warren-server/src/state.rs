//! `AppState`: the one cheap-to-clone handle every handler gets: configuration, store, JWT
//! keys. It holds nothing that matters across restarts: all state is in the database.

use std::sync::Arc;

use crate::auth::jwt::{self, JwtKeys, SecretError};
use crate::auth::password::{self, PasswordError};
use crate::config::Config;
use crate::fleet::agent_auth::{AgentKeyError, AgentSigner};
use crate::fleet::pool::HostClientPool;
use crate::fleet::scheduler::{RoundRobin, Scheduler};
use crate::host::token::HostTokenKeys;
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
    /// The platform admin could not be created.
    #[error("bootstrapping the platform admin: {0}")]
    Admin(#[from] crate::auth::admin::BootstrapError),
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
    agent_signer: Arc<AgentSigner>,
    /// RPC clients of the host agents.
    pool: HostClientPool,
    /// Places new sandboxes.
    scheduler: Box<dyn Scheduler>,
    /// Signs and verifies host JWTs.
    host_tokens: HostTokenKeys,
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
        let host_tokens = HostTokenKeys::new(&secret);
        let dummy_hash = password::hash(config.password, "warren-dummy-password")?;
        let agent_signer = Arc::new(AgentSigner::load_or_create(&config.data_dir)?);
        let store = Store::connect(&config.database, config.max_db_connections).await?;
        let signer = agent_signer.clone();
        let pool = HostClientPool::new(store.clone(), Arc::new(move |host| signer.mint(host)));
        let state = Self(Arc::new(Inner {
            config,
            store,
            jwt,
            agent_signer,
            pool,
            scheduler: Box::new(RoundRobin::default()),
            host_tokens,
            dummy_hash,
        }));
        if let Some((email, pw)) = &state.config().admin {
            crate::auth::admin::bootstrap(&state, email, pw).await?;
        }
        Ok(state)
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

    /// Host JWT keys.
    pub fn host_tokens(&self) -> &HostTokenKeys {
        &self.0.host_tokens
    }

    /// RPC clients of the host agents, one per host.
    pub fn pool(&self) -> &HostClientPool {
        &self.0.pool
    }

    /// Places new sandboxes on hosts.
    pub fn scheduler(&self) -> &dyn Scheduler {
        self.0.scheduler.as_ref()
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }
}
