//! The library's error type: outcomes a caller can act on, with the source kept.
//!
//! Driver errors are classified once, here: a named constraint becomes a typed `Validation`,
//! `Conflict` or `NotFound`; connection failures become `Unavailable` (retryable). Messages name
//! host, port and database, never a password: the URL is never formatted into an error.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::constraints::{self, Violation};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input rejected before (or by) the database; nothing was written.
    #[error("invalid {field}: {reason}")]
    Validation { field: &'static str, reason: String },

    /// The row does not exist, or is not visible to this user.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// A uniqueness rule was broken (duplicate email, duplicate tag name, ...).
    #[error("{field} already exists (constraint {constraint})")]
    Conflict { field: &'static str, constraint: &'static str },

    /// Unknown email or wrong password: deliberately the same error for both.
    #[error("invalid email or password")]
    InvalidCredentials,

    /// Too many failed logins: this account's logins are refused until the cool-down ends.
    #[error("account temporarily locked after repeated failed logins; try again after {until}")]
    Locked { until: time::OffsetDateTime },

    /// A token that is unknown, expired or revoked.
    #[error("invalid, expired or revoked token")]
    Unauthorized,

    /// The server could not be reached or the connection broke; safe to retry a read.
    #[error("database unavailable at {target}: {reason}")]
    Unavailable {
        target: String,
        reason: String,
        #[source]
        source: Option<tokio_postgres::Error>,
    },

    /// Every pooled connection stayed in use for the whole acquire timeout.
    #[error("database busy: no connection became free within {0:?}")]
    Busy(Duration),

    /// The configuration cannot be used; the message says which setting and how to fix it.
    #[error("configuration: {0}")]
    Config(String),

    /// A migration problem: a modified applied migration, a database newer than this binary.
    #[error("migration: {0}")]
    Migration(String),

    /// The embedded local PostgreSQL could not be found, created, started or stopped.
    #[error("local database: {0}")]
    Local(String),

    /// A file or directory could not be read or written (a backup's, say): `action` says what
    /// was being done.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A bug in todo-db itself (a statement and its parameters disagree); nothing was sent.
    #[error("internal error: {0}")]
    Internal(String),

    /// Any other error reported by the server, with its SQLSTATE.
    #[error("database error {code} at {target}: {message}")]
    Database {
        code: String,
        message: String,
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    pub fn validation(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Validation { field, reason: reason.into() }
    }

    /// Whether retrying the same operation may succeed (the connection or server was at fault).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Busy(_) => true,
            Error::Database { code, .. } => {
                // serialization_failure, deadlock_detected, admin_shutdown, crash_shutdown,
                // cannot_connect_now: the server asks us to try again.
                is_state(code, CONFLICTS) || is_state(code, SERVER_AWAY)
            }
            _ => false,
        }
    }

    /// Classifies a driver error. `target` is `host:port/database`, never the URL.
    pub fn from_pg(err: tokio_postgres::Error, target: &str) -> Self {
        let Some(db) = err.as_db_error() else {
            return Error::Unavailable { target: target.to_string(), reason: err.to_string(), source: Some(err) };
        };
        if let Some(name) = db.constraint() {
            if let Some(meaning) = constraints::meaning(name) {
                return meaning.into();
            }
        }
        let code = db.code().code().to_string();
        // invalid_sql_statement_name / duplicate_prepared_statement: the session does not hold
        // the statements this connection prepared, which is what a transaction-mode pooler that
        // does not track prepared statements does to them.
        if is_state(&code, &[SqlState::INVALID_SQL_STATEMENT_NAME, SqlState::DUPLICATE_PSTATEMENT])
            && db.message().contains("prepared statement")
        {
            return Error::Config(format!(
                "{target}: {}: statements prepared on this connection are not on the server session \
                 answering it, as behind a transaction-mode pooler that does not track prepared statements \
                 (PgBouncer before 1.21, or max_prepared_statements = 0); set TODO_DB_STATEMENTS=unnamed \
                 for it, or enable its tracking",
                db.message()
            ));
        }
        if is_state(&code, SERVER_AWAY) || is_state(&code, CONNECTION_LOST) {
            return Error::Unavailable {
                target: target.to_string(),
                reason: db.message().to_string(),
                source: Some(err),
            };
        }
        Error::Database { code, message: db.message().to_string(), target: target.to_string(), source: err }
    }
}

impl From<Violation> for Error {
    fn from(v: Violation) -> Self {
        match v {
            Violation::Conflict { field, constraint } => Error::Conflict { field, constraint },
            Violation::Invalid { field, reason } => Error::validation(field, reason),
            Violation::Missing { entity } => Error::NotFound { entity },
        }
    }
}

/// The error and its causes on one line (tokio-postgres keeps the TLS reason in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

/// serialization_failure, deadlock_detected: the transaction lost a conflict and was rolled back,
/// so running it again is safe.
pub(crate) const CONFLICTS: &[SqlState] = &[SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED];
/// admin_shutdown, crash_shutdown, cannot_connect_now: the server ended the session or is
/// (re)starting; another connection, later, will do.
pub(crate) const SERVER_AWAY: &[SqlState] =
    &[SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW];
/// connection_exception, connection_does_not_exist, connection_failure, and protocol_violation:
/// PgBouncer (Neon's pooler) reports its own connection failures with it ("server conn crashed?",
/// "pgbouncer cannot connect to server", "query_wait_timeout"), and a commit in flight when its
/// server connection broke may or may not have happened.
pub(crate) const CONNECTION_LOST: &[SqlState] = &[
    SqlState::CONNECTION_EXCEPTION,
    SqlState::CONNECTION_DOES_NOT_EXIST,
    SqlState::CONNECTION_FAILURE,
    SqlState::PROTOCOL_VIOLATION,
];

/// Whether the SQLSTATE `code` is one of `states`.
pub(crate) fn is_state(code: &str, states: &[SqlState]) -> bool {
    states.iter().any(|s| s.code() == code)
}
