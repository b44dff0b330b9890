//! API tokens: 256 bits from the OS generator, URL-safe, shown once. Only their SHA-256 digest is
//! stored; authentication looks the digest up and compares it again in constant time.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{self, EventKind};
use super::ClientInfo;
use crate::config::Secret;
use crate::db::{Db, Stmt, UserScope};
use crate::error::{Error, Result};
use crate::model::UserId;

/// Every token starts with this, so a leaked one is recognisable (secret scanners).
pub const PREFIX: &str = "tdb_";

/// A token just issued: `token` is the only copy; it cannot be recovered later.
pub struct IssuedToken {
    pub id: Uuid,
    pub token: Secret<String>,
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What can be shown about a token: never the token or its digest.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Issues a token for the scope's user, valid for `ttl`.
pub async fn issue(scope: &UserScope, purpose: &str, ttl: Duration, client: &ClientInfo) -> Result<IssuedToken> {
    if ttl.is_zero() || ttl > Duration::from_secs(366 * 86400) {
        return Err(Error::validation("expires_in", "must be between 1 second and 366 days"));
    }
    let purpose = purpose.trim();
    if purpose.is_empty() || purpose.chars().count() > 100 {
        return Err(Error::validation("purpose", "must be 1 to 100 characters"));
    }
    let token = generate();
    let id = Uuid::now_v7();
    let user = scope.user_id().0;
    let secs = ttl.as_secs_f64();
    let hash = digest(&token);
    let ev = Uuid::now_v7();
    let details = serde_json::json!({"token_id": id, "purpose": purpose});
    let ua = client.user_agent();
    let rows = scope
        .pipeline(&[
            Stmt::new(
                "insert into api_tokens (id, user_id, purpose, token_hash, expires_at) \
                 values ($1, $2, $3, $4, now() + make_interval(secs => $5)) returning expires_at",
                &[&id, &user, &purpose, &hash, &secs],
            ),
            Stmt::new(
                "insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                 values ($1, $2, 'token_issued', $3, $4, $5)",
                &[&ev, &user, &client.addr, &ua, &details],
            ),
        ])
        .await?;
    let expires_at = rows[0][0].get(0);
    Ok(IssuedToken { id, token: Secret::new(token), expires_at })
}

/// Turns a token into the scope of its user, or `Unauthorized` (unknown, expired, revoked, or the
/// account is inactive). Records the use, or the rejection.
pub async fn authenticate(db: &Db, token: &str, client: &ClientInfo) -> Result<UserScope> {
    let wanted = digest(token.trim());
    let row = db
        .admin()
        .query_opt(
            "with used as ( \
                 update api_tokens t set last_used_at = now() from users u \
                 where t.token_hash = $1 and t.revoked_at is null and t.expires_at > now() \
                   and t.consumed_at is null and t.purpose <> all($5) \
                   and u.id = t.user_id and u.is_active \
                 returning t.id, t.user_id, t.token_hash), \
             ev as (insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                    select $2, user_id, 'token_used', $3, $4, jsonb_build_object('token_id', id) from used) \
             select id, user_id, token_hash from used",
            &[&wanted, &Uuid::now_v7(), &client.addr, &client.user_agent(), &SingleUse::PURPOSES.to_vec()],
        )
        .await?;
    match row {
        Some(r) if bool::from(r.get::<_, Vec<u8>>(2).as_slice().ct_eq(&wanted)) => Ok(db.user(UserId(r.get(1)))),
        _ => {
            events::record_admin(db, None, EventKind::TokenRejected, client, serde_json::json!({})).await?;
            Err(Error::Unauthorized)
        }
    }
}

/// The scope's tokens, newest first.
pub async fn list(scope: &UserScope) -> Result<Vec<TokenInfo>> {
    let rows = scope
        .query(
            "select id, purpose, created_at, expires_at, revoked_at, last_used_at from api_tokens order by created_at desc",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            id: r.get(0),
            purpose: r.get(1),
            created_at: r.get(2),
            expires_at: r.get(3),
            revoked_at: r.get(4),
            last_used_at: r.get(5),
        })
        .collect())
}

/// What a single-use token is for: it is consumed by the one operation it allows, expires, can be
/// revoked, and is never accepted as an API credential ([`authenticate`] refuses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleUse {
    /// Sets a new password ([`reset_password`]), and revokes the user's other tokens.
    PasswordReset,
    /// Marks the user's email verified ([`verify_email`]).
    EmailVerification,
}

impl SingleUse {
    /// Their purposes in `api_tokens`.
    pub const PURPOSES: [&'static str; 2] = ["password_reset", "email_verification"];

    pub fn purpose(self) -> &'static str {
        match self {
            SingleUse::PasswordReset => Self::PURPOSES[0],
            SingleUse::EmailVerification => Self::PURPOSES[1],
        }
    }

    /// How long one is valid by default: an hour for a reset, a day for a verification.
    pub fn default_ttl(self) -> Duration {
        match self {
            SingleUse::PasswordReset => Duration::from_secs(3600),
            SingleUse::EmailVerification => Duration::from_secs(86_400),
        }
    }
}

/// Issues a single-use token of `kind` for `user` (owner work: the user is not signed in when
/// they ask for a reset), valid for `ttl` (at most 7 days). Send it to the user's address; it is
/// the only copy.
pub async fn issue_single_use(
    db: &Db,
    user: UserId,
    kind: SingleUse,
    ttl: Duration,
    client: &ClientInfo,
) -> Result<IssuedToken> {
    if ttl.is_zero() || ttl > Duration::from_secs(7 * 86400) {
        return Err(Error::validation("expires_in", "must be between 1 second and 7 days for a single-use token"));
    }
    let token = generate();
    let id = Uuid::now_v7();
    let details = serde_json::json!({"token_id": id, "purpose": kind.purpose()});
    let rows = db
        .admin()
        .query(
            "with t as (insert into api_tokens (id, user_id, purpose, token_hash, expires_at) \
                 select $1, u.id, $3, $4, now() + make_interval(secs => $5) from users u where u.id = $2 and u.is_active \
                 returning user_id, expires_at), \
             ev as (insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                 select $6, user_id, 'token_issued', $7, $8, $9 from t) \
             select expires_at from t",
            &[
                &id,
                &user.0,
                &kind.purpose(),
                &digest(&token),
                &ttl.as_secs_f64(),
                &Uuid::now_v7(),
                &client.addr,
                &client.user_agent(),
                &details,
            ],
        )
        .await?;
    let row = rows.first().ok_or(Error::NotFound { entity: "active user" })?;
    Ok(IssuedToken { id, token: Secret::new(token), expires_at: row.get(0) })
}

/// The statement that consumes a live single-use token of purpose `$2` with digest `$1` (of an
/// active user), as a `with` clause named `consumed` with columns `id`, `user_id`.
const CONSUME: &str = "consumed as (update api_tokens t set consumed_at = now(), last_used_at = now() from users u \
     where t.token_hash = $1 and t.purpose = $2 and t.consumed_at is null and t.revoked_at is null \
       and t.expires_at > now() and u.id = t.user_id and u.is_active returning t.id, t.user_id)";

/// Sets a new password with a password-reset token, consuming it, and revokes every other token
/// of the user (a reset means the old credentials may be known to someone else), in one
/// transaction. `Unauthorized` for a token that is unknown, used, expired, revoked or of another
/// purpose; nothing changes then.
pub async fn reset_password(db: &Db, token: &str, new_password: &str, client: &ClientInfo) -> Result<UserId> {
    let hash = super::password::hash_async(super::password::Password::parse(new_password)?).await?;
    let sql = format!(
        "with {CONSUME}, \
         pw as (update users u set password_hash = $3, locked_until = null from consumed c where u.id = c.user_id \
                returning u.id), \
         others as (update api_tokens t set revoked_at = now() from consumed c \
                    where t.user_id = c.user_id and t.id <> c.id and t.revoked_at is null and t.consumed_at is null \
                    returning t.id), \
         ev as (insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                select $4, c.user_id, 'password_changed', $5, $6, \
                       jsonb_build_object('via', 'password_reset', 'token_id', c.id, 'revoked', (select count(*) from others)) \
                from consumed c) \
         select user_id from consumed"
    );
    consume(
        db,
        &sql,
        token,
        SingleUse::PasswordReset,
        &[&hash, &Uuid::now_v7(), &client.addr, &client.user_agent()],
        client,
    )
    .await
}

/// Marks the user's email verified with an email-verification token, consuming it.
pub async fn verify_email(db: &Db, token: &str, client: &ClientInfo) -> Result<UserId> {
    let sql = format!(
        "with {CONSUME}, \
         v as (update users u set email_verified = true from consumed c where u.id = c.user_id returning u.id), \
         ev as (insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                select $3, c.user_id, 'email_verified', $4, $5, jsonb_build_object('token_id', c.id) from consumed c) \
         select user_id from consumed"
    );
    consume(
        db,
        &sql,
        token,
        SingleUse::EmailVerification,
        &[&Uuid::now_v7(), &client.addr, &client.user_agent()],
        client,
    )
    .await
}

/// Runs a consuming statement (`$1` the digest, `$2` the purpose, then `rest`); a token that
/// consumed nothing is recorded as rejected and is `Unauthorized`.
async fn consume(
    db: &Db,
    sql: &str,
    token: &str,
    kind: SingleUse,
    rest: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    client: &ClientInfo,
) -> Result<UserId> {
    let wanted = digest(token.trim());
    let purpose = kind.purpose();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&wanted, &purpose];
    params.extend_from_slice(rest);
    match db.admin().query_opt(sql, &params).await? {
        Some(r) => Ok(UserId(r.get(0))),
        None => {
            let details = serde_json::json!({"purpose": purpose});
            events::record_admin(db, None, EventKind::TokenRejected, client, details).await?;
            Err(Error::Unauthorized)
        }
    }
}

/// Revokes one of the scope's tokens.
pub async fn revoke(scope: &UserScope, id: Uuid, client: &ClientInfo) -> Result<()> {
    let rows = scope
        .query(
            "with r as (update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1 returning id, user_id) \
             insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
             select $2, user_id, 'token_revoked', $3, $4, jsonb_build_object('token_id', id) from r returning 1",
            &[&id, &Uuid::now_v7(), &client.addr, &client.user_agent()],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::NotFound { entity: "token" });
    }
    Ok(())
}

/// Revokes every live token of the scope's user; returns how many.
pub async fn revoke_all(scope: &UserScope, client: &ClientInfo) -> Result<u64> {
    let rows = scope
        .query(
            "with r as (update api_tokens set revoked_at = now() where revoked_at is null returning id, user_id) \
             insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
             select $1, $2, 'token_revoked', $3, $4, jsonb_build_object('all', true, 'count', (select count(*) from r)) \
             where exists (select 1 from r) returning (details->>'count')::bigint",
            &[&Uuid::now_v7(), &scope.user_id().0, &client.addr, &client.user_agent()],
        )
        .await?;
    Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
}

/// Deletes tokens that expired (or were revoked) more than `grace` ago, across users.
pub async fn purge_expired(db: &Db, grace: Duration) -> Result<u64> {
    let rows = db
        .admin()
        .query(
            "with gone as (delete from api_tokens where coalesce(revoked_at, expires_at) < now() - make_interval(secs => $1) \
             and (revoked_at is not null or expires_at < now()) returning 1) select count(*) from gone",
            &[&grace.as_secs_f64()],
        )
        .await?;
    Ok(rows[0].get::<_, i64>(0) as u64)
}

/// A random password that is easy to type from a terminal: four groups of five lower-case letters
/// and digits (about 103 bits), e.g. for demo accounts. From the operating system's generator.
pub fn readable_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    chars.chunks(5).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_url_safe_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        let body = &a[PREFIX.len()..];
        assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert!(body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(digest(&a).len(), 32);
    }
}
