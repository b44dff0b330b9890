//! Password hashing: Argon2id with OWASP's parameters; legacy bcrypt hashes (from the Python
//! module) verify and are replaced by Argon2id on the next successful login.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// OWASP (2024): Argon2id, 19 MiB of memory, 2 iterations, parallelism 1.
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// bcrypt reads at most 72 bytes of a password.
pub const BCRYPT_MAX_BYTES: usize = 72;

/// A plaintext password: never printed, bounded in size (hashing a megabyte is a DoS).
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 1024;

    /// A new password being set: at least 8 characters, at most 1024 bytes, no NUL.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(Error::validation("password", format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        Self::candidate(raw)
    }

    /// A password offered at login: only bounded, so that a bad one costs a normal verification.
    pub fn candidate(raw: &str) -> Result<Self> {
        if raw.len() > Self::MAX_BYTES {
            return Err(Error::validation("password", format!("is longer than {} bytes", Self::MAX_BYTES)));
        }
        if raw.contains('\0') {
            return Err(Error::validation("password", "must not contain a NUL byte"));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes with Argon2id (PHC string). CPU- and memory-heavy: call through [`hash_async`].
pub fn hash(password: &Password) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::validation("password", format!("cannot be hashed: {e}")))
}

/// What verifying a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Matches an Argon2id hash with the current parameters.
    Ok,
    /// Matches, but the hash is legacy (bcrypt) or has old parameters: store a new hash.
    OkRehash,
    No,
}

/// Verifies `password` against a stored Argon2 or bcrypt hash. A password longer than bcrypt's
/// 72 bytes never matches a bcrypt hash (bcrypt would compare only its first 72 bytes).
pub fn verify(password: &Password, stored: &str) -> Verified {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        if password.expose().len() > BCRYPT_MAX_BYTES {
            tracing::info!("password longer than 72 bytes offered for a bcrypt hash: refused, not truncated");
            return Verified::No;
        }
        return match bcrypt::non_truncating_verify(password.expose(), stored) {
            Ok(true) => Verified::OkRehash,
            _ => Verified::No,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    if argon2().verify_password(password.expose().as_bytes(), &parsed).is_err() {
        return Verified::No;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| p.m_cost() >= MEMORY_KIB && p.t_cost() >= ITERATIONS);
    if current {
        Verified::Ok
    } else {
        Verified::OkRehash
    }
}

/// A valid Argon2id hash of a random password: verifying against it when the email is unknown
/// makes that answer take as long as a wrong password's.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: String = (0..32).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
        hash(&Password(random)).expect("hashing a generated password")
    })
}

/// [`hash`] off the async runtime.
pub async fn hash_async(password: Password) -> Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Error::validation("password", format!("hashing task failed: {e}")))?
}

/// [`verify`] off the async runtime.
pub async fn verify_async(password: Password, stored: String) -> Verified {
    tokio::task::spawn_blocking(move || verify(&password, &stored)).await.unwrap_or(Verified::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_use_owasp_parameters_and_verify() {
        let p = Password::parse("correct horse battery").unwrap();
        let h = hash(&p).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(verify(&p, &h), Verified::Ok);
        assert_eq!(verify(&Password::candidate("wrong horse").unwrap(), &h), Verified::No);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_a_rehash_and_long_passwords_are_not_truncated() {
        let p = Password::parse("legacy-password").unwrap();
        let h = bcrypt::hash(p.expose(), 4).unwrap();
        assert_eq!(verify(&p, &h), Verified::OkRehash);
        let long = "x".repeat(80);
        let truncated_hash = bcrypt::hash(&long[..72], 4).unwrap();
        assert_eq!(verify(&Password::candidate(&long).unwrap(), &truncated_hash), Verified::No);
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(matches!(Password::parse("short"), Err(Error::Validation { field: "password", .. })));
        assert!(matches!(Password::candidate(&"p".repeat(1025)), Err(Error::Validation { field: "password", .. })));
        assert_eq!(format!("{:?}", Password::parse("hunter2hunter2").unwrap()), "Password(***)");
    }
}
