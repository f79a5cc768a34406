//! Host credentials: one-time registration tokens (`wrh_…`), refresh tokens (`wrr_…`), both
//! random and stored as SHA-256 only, and host JWTs.
//!
//! A host JWT is HS256 with a key derived from the control plane's JWT secret but distinct
//! from the user-token key (SHA-256 of a fixed label and the secret), so a host token can
//! never pass as a user token nor the reverse. It carries the id of the refresh token it was
//! issued with (`rt`): revoking that refresh token (rotation, reuse detection, an admin's
//! revoke, host delete) also ends the JWT at once, without waiting for its expiry.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warren_types::HostId;

/// Prefix of registration tokens.
pub const REGISTRATION_PREFIX: &str = "wrh_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "wrr_";
const RANDOM_CHARS: usize = 43;
const TOKEN_TYPE: &str = "host";

/// A fresh random token with `prefix`.
pub fn generate(prefix: &str) -> String {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

/// Cheap syntactic check before touching the database.
pub fn looks_like(prefix: &str, token: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() >= 32 && rest.len() <= 128 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Hex SHA-256, as stored.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Claims of a host JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostClaims {
    /// Host id.
    pub sub: String,
    /// Always `host`.
    pub typ: String,
    /// Id of the refresh token this JWT was issued with.
    pub rt: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Signs and verifies host JWTs.
pub struct HostTokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for HostTokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTokenKeys").finish_non_exhaustive()
    }
}

impl HostTokenKeys {
    /// Keys derived from the control plane's JWT secret.
    pub fn new(jwt_secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"warren host token v1\0");
        h.update(jwt_secret);
        let key = h.finalize();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        }
    }

    /// A JWT for `host` bound to refresh token `rt`, valid for `ttl` (at least one second).
    /// Returns it and its expiry (unix ms).
    pub fn issue(&self, host: HostId, rt: &str, ttl: Duration) -> (String, i64) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let exp_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        // JWT times are whole seconds: round the expiry up so a short TTL is never zero.
        let exp = exp_ms.div_euclid(1000) + i64::from(exp_ms.rem_euclid(1000) != 0);
        let claims = HostClaims {
            sub: host.to_string(),
            typ: TOKEN_TYPE.to_owned(),
            rt: rt.to_owned(),
            iat: now_ms / 1000,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, exp * 1000)
    }

    /// Checks signature, expiry and type; returns the host and the refresh token id.
    pub fn verify(&self, token: &str) -> Option<(HostId, String)> {
        let data =
            jsonwebtoken::decode::<HostClaims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        if c.typ != TOKEN_TYPE {
            return None;
        }
        Some((c.sub.parse().ok()?, c.rt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_shape() {
        let t = generate(REGISTRATION_PREFIX);
        assert!(looks_like(REGISTRATION_PREFIX, &t));
        assert!(!looks_like(REFRESH_PREFIX, &t));
        assert!(!looks_like(REGISTRATION_PREFIX, "wrh_short"));
        assert_eq!(hash(&t).len(), 64);
    }

    #[test]
    fn host_jwts_verify_only_with_their_key() {
        let k = HostTokenKeys::new(&[1; 32]);
        let host = HostId::new();
        let (tok, exp) = k.issue(host, "rt1", Duration::from_secs(60));
        assert!(exp > chrono::Utc::now().timestamp_millis());
        assert_eq!(k.verify(&tok), Some((host, "rt1".to_owned())));
        assert_eq!(HostTokenKeys::new(&[2; 32]).verify(&tok), None);
        // A user token signed with the raw secret is not a host token.
        let user = crate::auth::jwt::JwtKeys::new(&[1; 32], Duration::from_secs(60));
        let (utok, _) = user
            .issue(warren_types::UserId::new(), warren_types::TeamId::new())
            .unwrap();
        assert_eq!(k.verify(&utok), None);
        assert!(user.verify(&tok).is_err());
    }
}
