//! The security event log.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ClientInfo;
use crate::db::{Db, UserScope};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    LoginSuccess,
    LoginFailure,
    LoginRefusedLocked,
    Lockout,
    TokenIssued,
    TokenUsed,
    TokenRevoked,
    TokenRejected,
    PasswordChanged,
    EmailVerified,
    AccessDenied,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::LoginSuccess,
        EventKind::LoginFailure,
        EventKind::LoginRefusedLocked,
        EventKind::Lockout,
        EventKind::TokenIssued,
        EventKind::TokenUsed,
        EventKind::TokenRevoked,
        EventKind::TokenRejected,
        EventKind::PasswordChanged,
        EventKind::EmailVerified,
        EventKind::AccessDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LoginSuccess => "login_success",
            EventKind::LoginFailure => "login_failure",
            EventKind::LoginRefusedLocked => "login_refused_locked",
            EventKind::Lockout => "lockout",
            EventKind::TokenIssued => "token_issued",
            EventKind::TokenUsed => "token_used",
            EventKind::TokenRevoked => "token_revoked",
            EventKind::TokenRejected => "token_rejected",
            EventKind::PasswordChanged => "password_changed",
            EventKind::EmailVerified => "email_verified",
            EventKind::AccessDenied => "access_denied",
        }
    }

    pub fn parse(raw: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw.trim()).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            Error::validation("type", format!("{raw:?} is not one of {}", all.join(", ")))
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub client_addr: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

/// Which events to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub user: Option<Uuid>,
    pub kind: Option<EventKind>,
    pub since: Option<OffsetDateTime>,
    pub limit: Option<i64>,
}

const LIST: &str = "select id, user_id, kind, at, client_addr, user_agent, details from security_events \
     where ($1::uuid is null or user_id = $1) and ($2::text is null or kind = $2) \
       and ($3::timestamptz is null or at >= $3) order by at desc, id desc limit $4";

fn from_row(r: &tokio_postgres::Row) -> SecurityEvent {
    SecurityEvent {
        id: r.get(0),
        user_id: r.get(1),
        kind: r.get(2),
        at: r.get(3),
        client_addr: r.get(4),
        user_agent: r.get(5),
        details: r.get(6),
    }
}

fn limit(f: &EventFilter) -> Result<i64> {
    let n = f.limit.unwrap_or(100);
    if !(1..=10_000).contains(&n) {
        return Err(Error::validation("limit", "must be between 1 and 10000"));
    }
    Ok(n)
}

/// Events across all users (operator view).
pub async fn list(db: &Db, f: &EventFilter) -> Result<Vec<SecurityEvent>> {
    let kind = f.kind.map(EventKind::as_str);
    let rows = db.admin().query(LIST, &[&f.user, &kind, &f.since, &limit(f)?]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The scope's own events (RLS).
pub async fn list_own(scope: &UserScope, f: &EventFilter) -> Result<Vec<SecurityEvent>> {
    let kind = f.kind.map(EventKind::as_str);
    let rows = scope.query(LIST, &[&f.user, &kind, &f.since, &limit(f)?]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Records an event as the owner (logins happen before there is a user identity).
pub async fn record_admin(
    db: &Db,
    user: Option<Uuid>,
    kind: EventKind,
    client: &ClientInfo,
    details: serde_json::Value,
) -> Result<()> {
    db.admin()
        .query(
            "insert into security_events (id, user_id, kind, client_addr, user_agent, details) values ($1, $2, $3, $4, $5, $6)",
            &[&Uuid::now_v7(), &user, &kind.as_str(), &client.addr, &client.user_agent(), &details],
        )
        .await?;
    Ok(())
}

/// Records that the scope's user was denied something (an RLS violation surfaced as an error).
pub async fn record_denied(scope: &UserScope, what: &str, client: &ClientInfo) -> Result<()> {
    scope
        .query(
            "insert into security_events (id, user_id, kind, client_addr, user_agent, details) \
             values ($1, $2, 'access_denied', $3, $4, $5)",
            &[
                &Uuid::now_v7(),
                &scope.user_id().0,
                &client.addr,
                &client.user_agent(),
                &serde_json::json!({"what": what}),
            ],
        )
        .await?;
    Ok(())
}
