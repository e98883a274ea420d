//! Passwords and tokens.
//!
//! - Passwords: argon2id with the `argon2` crate's defaults (m = 19 MiB, t = 2, p = 1, the OWASP
//!   baseline), a random salt per hash, PHC string format. Hashing is CPU work: call it from
//!   `spawn_blocking`.
//! - Tokens: HS256 JWTs (`jsonwebtoken`) carrying the user id and an expiry, signed with a secret
//!   from configuration; the embedded default generates one into its data dir on first start.
//! - [`Authenticator`]: the token check both APIs make (signature, expiry, then that the user
//!   exists, against the `AccountStore` port).

use std::path::Path;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use titok_ports::accounts::AccountStore;
use titok_ports::known::KnownIds;

use crate::http::{ApiError, Params};

/// Hash a password with argon2id.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Check a password against a stored PHC hash. A malformed hash is a mismatch.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    uid: i64,
    iat: u64,
    exp: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired, log in again")]
    Expired,
    #[error("token is invalid")]
    Invalid,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    pub fn issue(&self, user_id: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            uid: user_id,
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<i64, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) {
            Ok(data) => Ok(data.claims.uid),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// Read the token secret from `dir/token-secret`, creating a random 32-byte one on first use.
///
/// The file is created readable by its owner only (0600), atomically (a temp file renamed into
/// place, so a crash never leaves half a secret). An existing file shorter than 32 bytes is an
/// error, not silently replaced: replacing it would invalidate every token issued with it, and a
/// short secret there was put by someone.
pub fn load_or_create_secret(dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join("token-secret");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => {
            restrict_to_owner(&path)?;
            Ok(bytes)
        }
        Ok(bytes) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the token secret {} has {} bytes, at least 32 are needed: write a longer random \
                 one (e.g. `openssl rand -hex 32`), or remove the file to have one generated \
                 (tokens signed with the old one stop working)",
                path.display(),
                bytes.len()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut secret);
            let temp = dir.join(format!(".token-secret.{}", std::process::id()));
            {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&temp)?;
                std::io::Write::write_all(&mut file, &secret)?;
                file.sync_all()?;
            }
            // Two processes starting together: the first secret in place wins, both use it.
            match std::fs::hard_link(&temp, &path) {
                Ok(()) => {
                    std::fs::remove_file(&temp)?;
                    Ok(secret)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::remove_file(&temp)?;
                    load_or_create_secret(dir)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    Err(e)
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Make a secret file readable by its owner only (files of older versions were 0644).
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the token secret was readable by others: now 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Token checks shared by both APIs: signature and expiry, then that the user exists.
#[derive(Clone)]
pub struct Authenticator {
    pub keys: TokenKeys,
    pub accounts: std::sync::Arc<dyn AccountStore>,
    /// Users seen to exist (accounts are never deleted), so most requests skip the lookup.
    pub known: KnownIds,
}

impl Authenticator {
    /// The token's user; fails when the token is missing, forged, expired or names no user.
    pub async fn require(&self, params: &Params) -> Result<i64, ApiError> {
        match self.optional(params).await? {
            Some(uid) => Ok(uid),
            None => Err(ApiError::Unauthenticated(
                "token is required, log in first".into(),
            )),
        }
    }

    /// Like [`Authenticator::require`], but a missing token is `None`.
    pub async fn optional(&self, params: &Params) -> Result<Option<i64>, ApiError> {
        let token = match params.get("token").map(str::trim) {
            None | Some("") => return Ok(None),
            Some(t) => t,
        };
        let uid = self
            .keys
            .verify(token)
            .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        tracing::Span::current().record("user_id", uid);
        if !self.user_exists(uid).await? {
            return Err(ApiError::Unauthenticated(
                "token's user does not exist".into(),
            ));
        }
        Ok(Some(uid))
    }

    /// Whether `user_id` has an account. Accounts are the command side's synchronous truth (a
    /// user exists the moment register replies, whatever the views' lag) and are never deleted,
    /// so a positive answer is cached and most checks make no query.
    pub async fn user_exists(&self, user_id: i64) -> Result<bool, ApiError> {
        if self.known.contains(user_id) {
            return Ok(true);
        }
        let exists = self.accounts.exists(user_id).await?;
        if exists {
            self.known.insert(user_id);
        }
        Ok(exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_file_is_private_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let secret = load_or_create_secret(dir.path()).expect("created");
        assert_eq!(secret.len(), 32);
        assert_eq!(load_or_create_secret(dir.path()).expect("read"), secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("token-secret");
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "created owner-only");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            load_or_create_secret(dir.path()).expect("read");
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "tightened");
        }
        std::fs::write(dir.path().join("token-secret"), b"short").expect("write");
        let err = load_or_create_secret(dir.path()).expect_err("short secret");
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("token-secret")).expect("kept"),
            b"short",
            "not replaced"
        );
    }

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("s3cret").expect("hash");
        assert!(
            hash.starts_with("$argon2id$"),
            "argon2id PHC string: {hash}"
        );
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("S3cret", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn tokens_verify_with_their_key_only_and_expire() {
        let keys = TokenKeys::new(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", Duration::from_secs(60));
        let other = TokenKeys::new(b"k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2", Duration::from_secs(60));
        let token = keys.issue(42).expect("issue");
        assert_eq!(keys.verify(&token), Ok(42));
        assert_eq!(
            other.verify(&token),
            Err(TokenError::Invalid),
            "forged signature"
        );
        assert_eq!(keys.verify("garbage"), Err(TokenError::Invalid));
        let expired = TokenKeys::new(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", Duration::ZERO);
        let old = expired.issue(42).expect("issue");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(keys.verify(&old), Err(TokenError::Expired));
    }
}
