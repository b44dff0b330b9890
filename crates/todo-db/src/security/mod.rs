//! Security: passwords and logins with lockout, API tokens, the security event log, and the
//! posture check.

pub mod events;
pub mod password;
pub mod posture;
pub mod tokens;

use std::net::IpAddr;

use serde_json::json;
use uuid::Uuid;

pub use crate::config::LockoutPolicy;
use crate::db::{Db, UserScope};
use crate::error::{Error, Result};
use crate::model::UserId;
pub use events::{EventFilter, EventKind, SecurityEvent};
pub use password::{Password, Verified};
pub use tokens::{IssuedToken, TokenInfo};

/// Who is calling, as the web tier saw it; recorded with security events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub addr: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    fn user_agent(&self) -> Option<String> {
        self.user_agent.as_ref().map(|ua| ua.chars().take(512).collect())
    }
}

/// After `max_failures` failed logins within `window`, an account's logins are refused for
/// `cooldown`.
/// Checks an email and password. Unknown email and wrong password give the same error after the
/// same work (a verification against a dummy hash). A legacy bcrypt hash is replaced by Argon2id.
#[tracing::instrument(skip_all, err)]
pub async fn login(
    db: &Db,
    email: &str,
    password: &str,
    client: &ClientInfo,
    policy: &LockoutPolicy,
) -> Result<UserId> {
    let candidate = Password::candidate(password)?;
    let admin = db.admin();
    let row = admin
        .query_opt(
            "select id, password_hash, is_active, locked_until > now(), locked_until from users where lower(email) = lower($1)",
            &[&email.trim()],
        )
        .await?;
    let ua = client.user_agent();
    let Some(row) = row else {
        password::verify_async(candidate, password::dummy_hash().to_string()).await;
        events::record_admin(db, None, EventKind::LoginFailure, client, json!({"reason": "unknown email"})).await?;
        return Err(Error::InvalidCredentials);
    };
    let user: Uuid = row.get(0);
    let stored: Option<String> = row.get(1);
    let active: bool = row.get(2);
    if row.get::<_, Option<bool>>(3) == Some(true) {
        let until: time::OffsetDateTime = row.get(4);
        events::record_admin(db, Some(user), EventKind::LoginRefusedLocked, client, json!({})).await?;
        return Err(Error::Locked { until });
    }
    let verdict =
        password::verify_async(candidate.clone(), stored.unwrap_or_else(|| password::dummy_hash().to_string())).await;
    if verdict == Verified::No || !active {
        let reason = if active { "wrong password" } else { "inactive account" };
        let failures: i64 = admin
            .query(
                "with ev as (insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                             values ($1, $2, 'login_failure', $3, $4, $5)) \
                 select count(*) + 1 from security_events \
                 where user_id = $2 and kind = 'login_failure' \
                   and at > greatest(now() - make_interval(secs => $6), \
                                     coalesce((select max(at) from security_events \
                                               where user_id = $2 and kind in ('login_success', 'lockout')), '-infinity'))",
                &[&Uuid::now_v7(), &user, &client.addr, &ua, &json!({"reason": reason}), &policy.window.as_secs_f64()],
            )
            .await?[0]
            .get(0);
        if failures >= policy.max_failures {
            admin
                .query(
                    "with locked as (update users set locked_until = now() + make_interval(secs => $2) where id = $1 returning id) \
                     insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
                     select $3, id, 'lockout', $4, $5, $6 from locked",
                    &[&user, &policy.cooldown.as_secs_f64(), &Uuid::now_v7(), &client.addr, &ua, &json!({"failures": failures})],
                )
                .await?;
            tracing::warn!(user = %user, failures, "account locked after repeated failed logins");
        }
        return Err(Error::InvalidCredentials);
    }
    let rehash = match verdict {
        Verified::OkRehash => Some(password::hash_async(candidate).await?),
        _ => None,
    };
    admin
        .query(
            "with ok as (update users set last_login_at = now(), locked_until = null, \
                                          password_hash = coalesce($2, password_hash) where id = $1 returning id) \
             insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
             select $3, id, 'login_success', $4, $5, $6 from ok",
            &[&user, &rehash, &Uuid::now_v7(), &client.addr, &ua, &json!({"rehashed": rehash.is_some()})],
        )
        .await?;
    Ok(UserId(user))
}

/// Sets the scope's user's password (Argon2id) and records the change.
pub async fn set_password(scope: &UserScope, password: &str, client: &ClientInfo) -> Result<()> {
    let hash = password::hash_async(Password::parse(password)?).await?;
    let rows = scope
        .query(
            "with changed as (update users set password_hash = $1 where id = $2 returning id) \
             insert into security_events (id, user_id, kind, client_addr, user_agent) \
             select $3, id, 'password_changed', $4, $5 from changed returning 1",
            &[&hash, &scope.user_id().0, &Uuid::now_v7(), &client.addr, &client.user_agent()],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::NotFound { entity: "user" });
    }
    Ok(())
}
