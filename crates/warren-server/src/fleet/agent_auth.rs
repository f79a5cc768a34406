//! The control plane's credential towards its agents. An agent accepts an RPC (or a proxied
//! request) only with `Authorization: Bearer <jwt>` where the JWT is EdDSA-signed by this
//! key, `iss` is `warren`, `aud` is the agent's own host id and it has not expired. The agent
//! learns the public key at registration (`control_plane_key`), so a stranger on the network,
//! or a control plane that never registered the host, cannot drive its sandboxes; a token
//! minted for one host is refused by every other.
//!
//! The Ed25519 key is generated once into `$DATA/agent_signing_key` (PKCS#8 DER, mode 0600)
//! and reused on restart: replicas of the control plane must share the data dir's key (or the
//! file) so all of them can talk to every host.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use warren_types::HostId;

/// `iss` of every agent token.
pub const ISSUER: &str = "warren";
/// Lifetime of a minted token.
pub const TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a minted token is reused before a fresh one is signed.
const CACHE_FOR: Duration = Duration::from_secs(60);
const KEY_FILE: &str = "agent_signing_key";

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum AgentKeyError {
    /// Reading or writing the key file failed.
    #[error("agent signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold an Ed25519 PKCS#8 key.
    #[error("agent signing key {path} is not an ed25519 pkcs#8 key: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What ring said.
        detail: String,
    },
    /// The system random generator failed.
    #[error("generating agent signing key: {0}")]
    Generate(String),
}

/// Claims of an agent token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The host id the token is for.
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Signs agent tokens with the control plane's Ed25519 key.
pub struct AgentSigner {
    encoding: EncodingKey,
    public_key: Vec<u8>,
    /// Minted tokens per host, reused for [`CACHE_FOR`]: minting is cheap but every RPC asks.
    /// std `Mutex`: held for a map lookup only, never across an `.await`.
    cache: Mutex<HashMap<HostId, (String, Instant)>>,
}

impl std::fmt::Debug for AgentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSigner")
            .field("public_key", &self.public_key_b64())
            .finish_non_exhaustive()
    }
}

impl AgentSigner {
    /// Loads `data_dir/agent_signing_key`, or generates it (mode 0600) when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AgentKeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| AgentKeyError::Io {
            path: path.clone(),
            source,
        };
        let der = match std::fs::read(&path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|e| AgentKeyError::Generate(e.to_string()))?;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                {
                    Ok(mut f) => {
                        f.write_all(doc.as_ref()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        tracing::info!(path = %path.display(), "generated agent signing key");
                        doc.as_ref().to_vec()
                    }
                    // Another replica sharing the dir won the race: use its key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(&path).map_err(io)?
                    }
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_pkcs8(&der).map_err(|detail| AgentKeyError::Invalid {
            path: path.clone(),
            detail,
        })
    }

    /// A signer from a PKCS#8 v2 DER Ed25519 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| e.to_string())?;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der),
            public_key: pair.public_key().as_ref().to_vec(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A fresh random key that lives in memory only (tests).
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("system random generator works");
        Self::from_pkcs8(doc.as_ref()).expect("ring generated a valid pkcs#8 key")
    }

    /// The public key, base64 (standard alphabet, padded) of its 32 raw bytes: what agents
    /// receive at registration as `control_plane_key`.
    pub fn public_key_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.public_key)
    }

    /// A token for `host_id`: EdDSA, `{iss:"warren", aud:host_id, exp:+5min}`, reused for
    /// about a minute.
    pub fn mint(&self, host_id: HostId) -> String {
        let now = Instant::now();
        // A poisoned cache only means another thread panicked mid-insert: the map is valid.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, at)) = cache.get(&host_id)
            && now.duration_since(*at) < CACHE_FOR
        {
            return token.clone();
        }
        let iat = chrono::Utc::now().timestamp();
        let token = self.mint_at(host_id, iat, TOKEN_TTL);
        cache.insert(host_id, (token.clone(), now));
        token
    }

    /// An uncached token issued at `iat` (unix s) valid for `ttl`: lets tests make expired
    /// tokens.
    pub fn mint_at(&self, host_id: HostId, iat: i64, ttl: Duration) -> String {
        let claims = AgentClaims {
            iss: ISSUER.to_owned(),
            aud: host_id.to_string(),
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .expect("the ed25519 key was validated when the signer was built")
    }

    /// Drops the cached token of a host (on host delete).
    pub fn forget(&self, host_id: HostId) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&host_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn verify(signer_pub_b64: &str, token: &str, aud: &str) -> bool {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(signer_pub_b64)
            .unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[aud]);
        v.set_issuer(&[ISSUER]);
        v.leeway = 0;
        jsonwebtoken::decode::<AgentClaims>(token, &DecodingKey::from_ed_der(&raw), &v).is_ok()
    }

    #[test]
    fn minted_tokens_verify_only_for_their_host_and_key() {
        let s = AgentSigner::generate();
        let other = AgentSigner::generate();
        let host = HostId::new();
        let tok = s.mint(host);
        assert_eq!(s.mint(host), tok, "cached");
        assert!(verify(&s.public_key_b64(), &tok, &host.to_string()));
        assert!(!verify(
            &s.public_key_b64(),
            &tok,
            &HostId::new().to_string()
        ));
        assert!(!verify(&other.public_key_b64(), &tok, &host.to_string()));
        let old = chrono::Utc::now().timestamp() - 3600;
        let expired = s.mint_at(host, old, TOKEN_TTL);
        assert!(!verify(&s.public_key_b64(), &expired, &host.to_string()));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = AgentSigner::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = AgentSigner::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key_b64(), b.public_key_b64());
        assert_eq!(a.public_key_b64().len(), 44);
        std::fs::write(dir.path().join(KEY_FILE), b"junk").unwrap();
        assert!(AgentSigner::load_or_create(dir.path()).is_err());
    }
}
