//! `HostClientPool`: the control plane's RPC clients towards its host agents, one per host id,
//! made lazily from the host's address in the database and dropped by [`HostClientPool::evict`]
//! (host deleted, address changed, transport failure).
//!
//! Every call carries a freshly minted (cached ~1 min) EdDSA bearer for that host, so a token
//! never outlives its 5-minute validity in a long-lived client. A cached client older than
//! [`RECHECK_AFTER`] is checked against the database before use, so a host that re-registered
//! with a new address (or was deleted through another control-plane replica) is followed
//! without anyone having to call `evict` on this replica.
//!
//! Transport: one `connectrpc` [`HttpClient`] (hyper's pooled client) shared by all hosts, over
//! **HTTP/1.1**: each in-flight call has a TCP connection of its own, so one slow sandbox
//! (a long exec, a 1 GiB upload, a pause that takes seconds) never stalls the calls of others
//! the way one multiplexed HTTP/2 connection per host would (DESIGN.md §8). Idle connections
//! are reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warren_proto::connectrpc::client::{ClientConfig, HttpClient};
use warren_proto::hostagent::v1::HostAgentClient;
use warren_types::{HostId, HostStatus};

use crate::store::{self, Store, StoreError};

/// Age after which a cached client's address is checked against the database again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(10);

/// Makes the bearer token for one host (the control plane's `AgentSigner::mint`).
pub type Minter = Arc<dyn Fn(HostId) -> String + Send + Sync>;

/// Why no client could be made for a host.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No such host (or it was deleted).
    #[error("host {0} not found")]
    HostNotFound(HostId),
    /// The host has not told us where it listens.
    #[error("host {0} has no address")]
    NoAddress(HostId),
    /// The stored address is unusable.
    #[error("host {host_id} address {address:?} is invalid: {reason}")]
    BadAddress {
        /// The host.
        host_id: HostId,
        /// The stored address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A `hostagent.v1.HostAgent` client for one host.
#[derive(Clone)]
pub struct HostClient {
    host_id: HostId,
    /// The stored address it was made from.
    address: String,
    base_url: String,
    config: ClientConfig,
    http: HttpClient,
    minter: Minter,
}

impl std::fmt::Debug for HostClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostClient")
            .field("host_id", &self.host_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl HostClient {
    /// The host.
    pub fn host_id(&self) -> HostId {
        self.host_id
    }

    /// `http://host:port` of the agent (no trailing slash), for the proxy.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A currently valid bearer token for this host (without the `Bearer ` prefix).
    pub fn bearer(&self) -> String {
        (self.minter)(self.host_id)
    }

    /// The typed RPC client, carrying a fresh bearer on every call made through it. Cheap:
    /// it shares the pooled connections.
    pub fn rpc(&self) -> HostAgentClient<HttpClient> {
        let config = self
            .config
            .clone()
            .with_default_header("authorization", format!("Bearer {}", self.bearer()));
        HostAgentClient::new(self.http.clone(), config)
    }
}

/// Lazily made clients per host. Cheap to share (`Arc` inside the state).
pub struct HostClientPool {
    store: Store,
    minter: Minter,
    http: HttpClient,
    /// std `Mutex`: held for a map lookup or insert only, never across an `.await`.
    clients: Mutex<HashMap<HostId, (HostClient, Instant)>>,
}

impl std::fmt::Debug for HostClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostClientPool").finish_non_exhaustive()
    }
}

impl HostClientPool {
    /// A pool reading host addresses from `store`, signing calls with `minter`.
    pub fn new(store: Store, minter: Minter) -> Self {
        Self {
            store,
            minter,
            // HTTP/1.1 (no h2c prior knowledge): one connection per in-flight call.
            http: HttpClient::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .plaintext(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `host_id`, made on first use from its stored address.
    pub async fn client(&self, host_id: HostId) -> Result<HostClient, FleetError> {
        let cached = self.lock().get(&host_id).cloned();
        if let Some((c, checked)) = &cached
            && checked.elapsed() < RECHECK_AFTER
        {
            return Ok(c.clone());
        }
        let found = store::sandbox::host_address(self.store.pool(), host_id).await?;
        let address = match found {
            Some((status, address)) if status != HostStatus::Deleted => {
                address.ok_or(FleetError::NoAddress(host_id))?
            }
            _ => {
                self.evict(host_id);
                return Err(FleetError::HostNotFound(host_id));
            }
        };
        let client = match cached {
            Some((c, _)) if c.address == address => c,
            _ => self.make(host_id, &address)?,
        };
        self.lock()
            .insert(host_id, (client.clone(), Instant::now()));
        Ok(client)
    }

    /// Forgets the client of `host_id`; the next call re-reads its address.
    pub fn evict(&self, host_id: HostId) {
        self.lock().remove(&host_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HostId, (HostClient, Instant)>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn make(&self, host_id: HostId, address: &str) -> Result<HostClient, FleetError> {
        let bad = |reason: String| FleetError::BadAddress {
            host_id,
            address: address.to_owned(),
            reason,
        };
        let base_url = if address.contains("://") {
            address.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let uri: http::Uri = base_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(bad("must be host:port or http://host:port".into()));
        }
        Ok(HostClient {
            host_id,
            address: address.to_owned(),
            base_url,
            config: ClientConfig::new(uri),
            http: self.http.clone(),
            minter: self.minter.clone(),
        })
    }
}
