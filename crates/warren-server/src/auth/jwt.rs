//! User JWTs: HS256, carrying the user id and their current team. The secret comes from the
//! config or is generated once into `DATA_DIR/jwt-secret` (mode 0600) so restarts keep
//! sessions. `typ` is `user`, so the host tokens of a later issue can never pass as user tokens.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use warren_types::{TeamId, UserId};

/// Shortest accepted signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
const TOKEN_TYPE: &str = "user";

/// Errors loading or creating the signing secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured or stored secret is too short.
    #[error("jwt secret {origin} is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort {
        /// Where it came from.
        origin: String,
    },
    /// Reading or writing the secret file failed.
    #[error("jwt secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The claims of a user token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Current team id.
    pub team: String,
    /// Token type, always `user` here.
    pub typ: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Signing and verification keys plus the token lifetime.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (never shown to clients beyond "invalid token").
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, expired, malformed or wrong type.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing token: {0}")]
    Sign(String),
}

impl JwtKeys {
    /// Keys from a secret.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: the 24 h lifetime is already generous.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user` in `team`, issued now. Returns the token and its expiry (unix s).
    pub fn issue(&self, user: UserId, team: TeamId) -> Result<(String, i64), TokenError> {
        self.issue_at(user, team, chrono::Utc::now().timestamp())
    }

    /// A token issued at `iat` (unix seconds): lets tests make already-expired tokens.
    pub fn issue_at(
        &self,
        user: UserId,
        team: TeamId,
        iat: i64,
    ) -> Result<(String, i64), TokenError> {
        let exp = iat.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            sub: user.to_string(),
            team: team.to_string(),
            typ: TOKEN_TYPE.to_owned(),
            iat,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// Checks signature, algorithm, expiry and type; returns who and which team.
    pub fn verify(&self, token: &str) -> Result<(UserId, TeamId), TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.typ != TOKEN_TYPE {
            return Err(TokenError::Invalid(format!("token type {:?}", c.typ)));
        }
        let user = c
            .sub
            .parse()
            .map_err(|e: warren_types::IdParseError| TokenError::Invalid(e.to_string()))?;
        let team = c
            .team
            .parse()
            .map_err(|e: warren_types::IdParseError| TokenError::Invalid(e.to_string()))?;
        Ok((user, team))
    }
}

/// The configured secret, or the one stored in `data_dir/jwt-secret`, created (0600) if
/// missing.
pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(s) = configured {
        if s.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                origin: "from the configuration".into(),
            });
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    let generated: String = {
        use rand::Rng;
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(64)
            .map(char::from)
            .collect()
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(generated.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "generated jwt secret");
            Ok(generated.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(&path).map_err(io)?;
            let s = s.trim();
            if s.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort {
                    origin: path.display().to_string(),
                });
            }
            Ok(s.as_bytes().to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::new(secret, Duration::from_secs(3600))
    }

    #[test]
    fn issue_and_verify() {
        let k = keys(&[7; 32]);
        let (u, t) = (UserId::new(), TeamId::new());
        let (tok, _) = k.issue(u, t).unwrap();
        assert_eq!(k.verify(&tok).unwrap(), (u, t));
        assert!(keys(&[8; 32]).verify(&tok).is_err(), "other secret");
        let old = chrono::Utc::now().timestamp() - 7200;
        let (expired, _) = k.issue_at(u, t, old).unwrap();
        assert!(k.verify(&expired).is_err(), "expired");
    }

    #[test]
    fn secret_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_secret(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_secret(None, dir.path()).unwrap(), a);
        assert!(load_secret(Some("short"), dir.path()).is_err());
    }
}
