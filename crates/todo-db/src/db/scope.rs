//! A user scope: every operation is one transaction, run as the app role with the user's identity
//! set transaction-locally, and sent as one pipeline that ends in a single Sync:
//!
//! ```text
//! Bind/Execute  select set_config('role','todo_app',true), set_config('app.user_id',$1,true), ...
//! Bind/Execute  <the operation's statements>
//! Sync
//! ```
//!
//! The server runs everything before a Sync as one implicit transaction: committed at the Sync
//! when every statement succeeded, rolled back when one failed (the statements after it are not
//! run). So no BEGIN or COMMIT is sent, the identity lasts exactly as long as the operation, and
//! the server answers the whole operation in one flush: one network round trip, one TLS record
//! each way. Statements are prepared once per connection and cached (or, for a transaction-mode
//! pooler, sent unnamed: Parse, Bind, Describe, Execute each, still before the one Sync).
//! `Client::pipeline` comes from todo-db's copy of tokio-postgres (`vendor/tokio-postgres`),
//! whose public API ends every statement with its own Sync.
//!
//! Cancellation: the whole pipeline is one request on the connection, queued in the single poll
//! that sends it, and a connection serves its queue in order. So if the caller's future is dropped
//! at any point, the connection can go back to the pool: whatever the next user sends is served
//! only after this pipeline's Sync has committed or rolled it back, and the identity is
//! transaction-local. No pipeline is ever half-sent, because every parameter is encoded before
//! anything is sent.

use futures_util::future::try_join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{PipelineStatement, Row};

use super::Db;
use crate::error::{is_state, Error, Result, CONFLICTS};
use crate::model::UserId;

/// Which login a pool holds, and so what a user scope's identity statement must do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Login {
    /// The admin login (it bypasses RLS): each operation switches to `todo_app` first.
    Admin,
    /// The app login (`APP_DATABASE_URL`), a member of `todo_app` only: already under RLS.
    App,
}

/// The statement that sets the identity for the current transaction only (a session-level SET
/// would leak to the next user of a pooled connection, and through PgBouncer in transaction mode):
/// the app role (on the admin login), the user, and the pool's statement and lock timeouts
/// (written into the SQL, so the statement is the same for every operation of a pool); and when the
/// scope has them, the request id and reason that every audit entry records. Built once per pool,
/// in two variants. An operation may add settings of its own to it ([`TxSettings`]).
pub(super) struct Identity {
    /// Indexed by `context as usize`.
    sql: [String; 2],
}

impl Identity {
    pub(super) fn new(settings: &crate::config::PoolSettings, login: Login) -> Self {
        let role = if login == Login::Admin { "set_config('role', 'todo_app', true), " } else { "" };
        let plain = format!(
            "select {role}set_config('app.user_id', $1::uuid::text, true), \
             set_config('statement_timeout', '{}ms', true), set_config('lock_timeout', '{}ms', true)",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis()
        );
        let context = ", set_config('app.request_id', $2, true), set_config('app.reason', $3, true)";
        Identity { sql: [plain.clone(), format!("{plain}{context}")] }
    }

    pub(super) fn sql(&self, context: bool) -> &str {
        &self.sql[context as usize]
    }
}

/// Settings an operation adds to the scope's identity statement, so that they cost no statement of
/// their own (each statement costs the server a portal, a snapshot and an executor run): a report's
/// time zone and window, for one. `columns(n)` is the select list, its parameters numbered from
/// `$n`; `params` their values.
pub struct TxSettings<'a> {
    pub columns: fn(usize) -> String,
    pub params: &'a [&'a (dyn ToSql + Sync)],
}

/// One statement of a pipelined operation.
pub struct Stmt<'a> {
    pub sql: &'a str,
    pub params: &'a [&'a (dyn ToSql + Sync)],
}

impl<'a> Stmt<'a> {
    pub fn new(sql: &'a str, params: &'a [&'a (dyn ToSql + Sync)]) -> Self {
        Stmt { sql, params }
    }
}

/// Work on behalf of one user. Cheap to create; holds no connection between operations.
#[derive(Clone)]
pub struct UserScope {
    db: Db,
    user: UserId,
    request_id: String,
    reason: String,
}

impl UserScope {
    pub(super) fn new(db: Db, user: UserId) -> Self {
        UserScope { db, user, request_id: String::new(), reason: String::new() }
    }

    /// The same scope, with a request id and a reason recorded in the audit log of every change
    /// it makes (at most 200 characters each; longer ones are cut).
    pub fn with_context(mut self, request_id: &str, reason: &str) -> Self {
        self.request_id = request_id.chars().take(200).collect();
        self.reason = reason.chars().take(200).collect();
        self
    }

    pub fn user_id(&self) -> UserId {
        self.user
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs `stmts` in one transaction as this user and returns each statement's rows.
    pub async fn pipeline(&self, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
        self.run(None, stmts).await
    }

    /// Like [`pipeline`](Self::pipeline), with `settings` set by the identity statement.
    pub async fn pipeline_with(&self, settings: &TxSettings<'_>, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
        self.run(Some(settings), stmts).await
    }

    async fn run(&self, extra: Option<&TxSettings<'_>>, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
        let db = self.db.scoped();
        let context = !(self.request_id.is_empty() && self.reason.is_empty());
        let all: [&(dyn ToSql + Sync); 3] = [&self.user.0, &self.request_id, &self.reason];
        let own = if context { &all[..] } else { &all[..1] };
        let sql = db.identity().sql(context);
        match extra {
            None => pipelined(db, Some(&Stmt::new(sql, own)), stmts).await,
            Some(extra) => {
                let sql = format!("{sql}, {}", (extra.columns)(own.len() + 1));
                let params: Vec<&(dyn ToSql + Sync)> = own.iter().chain(extra.params).copied().collect();
                pipelined(db, Some(&Stmt::new(&sql, &params)), stmts).await
            }
        }
    }

    /// One statement in its own transaction, as this user.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let mut rows = self.pipeline(&[Stmt::new(sql, params)]).await?;
        Ok(rows.pop().unwrap_or_default())
    }

    pub async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Like [`query_opt`](Self::query_opt), but no row is `NotFound { entity }`.
    pub async fn query_found(&self, entity: &'static str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.query_opt(sql, params).await?.ok_or(Error::NotFound { entity })
    }
}

/// Sends `identity` (if any) and `stmts` as one pipeline with a single Sync (one implicit
/// transaction), and reads every answer.
///
/// The whole flight has a deadline (the statement timeout plus two seconds): a connection that
/// stops answering (a half-open TCP connection, a lost COMMIT answer) fails the operation then,
/// not minutes later, with `Unavailable` saying the outcome is unknown, and the connection is
/// discarded rather than returned to the pool.
pub(super) async fn pipelined(db: &Db, identity: Option<&Stmt<'_>>, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
    // A serialization failure or a deadlock rolled the whole transaction back: running it again is
    // safe, and usually succeeds. A few times, with a short random pause, then the error.
    let mut attempt = 1;
    loop {
        match pipelined_once(db, identity, stmts).await {
            Err(Error::Database { code, .. }) if attempt < CONFLICT_ATTEMPTS && is_state(&code, CONFLICTS) => {
                tracing::debug!(%code, attempt, "transaction conflict; running it again");
                let pause = rand::random::<u64>() % (10 * attempt as u64) + 1;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// How often an operation runs at most when it keeps hitting serialization failures or deadlocks.
pub const CONFLICT_ATTEMPTS: u32 = 3;

async fn pipelined_once(db: &Db, identity: Option<&Stmt<'_>>, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
    let conn = db.acquire().await?;
    let deadline = db.pool_settings().statement_timeout + std::time::Duration::from_secs(2);
    match tokio::time::timeout(deadline, flight(db, &conn, identity, stmts)).await {
        Ok(Err(e)) => {
            // The server may have ended the session (its answer is the last thing it sent).
            super::discard_if_ended(conn, &e);
            Err(e)
        }
        Ok(result) => result,
        Err(_) => {
            drop(deadpool::managed::Object::take(conn));
            Err(Error::Unavailable {
                target: db.target().to_string(),
                reason: format!(
                    "no answer within {deadline:?}: the outcome is unknown (a write may have committed); \
                     the connection was discarded; retry only what is idempotent (a create with the same id is)"
                ),
                source: None,
            })
        }
    }
}

/// Whether `e` means the server closed the session: the connection is gone (or going), not just
/// the statement that failed.
pub(super) fn ends_session(e: &Error) -> bool {
    match e {
        Error::Unavailable { .. } => true,
        // admin_shutdown, crash_shutdown, idle_session_timeout, idle_in_transaction timeout, and
        // every connection exception (class 08).
        Error::Database { code, .. } => {
            let ended = [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::IDLE_SESSION_TIMEOUT,
                SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            ];
            is_state(code, &ended) || code.starts_with(&SqlState::CONNECTION_EXCEPTION.code()[..2])
        }
        _ => false,
    }
}

async fn flight(
    db: &Db,
    client: &super::ClientWrapper,
    identity: Option<&Stmt<'_>>,
    stmts: &[Stmt<'_>],
) -> Result<Vec<Vec<Row>>> {
    let all: Vec<&Stmt<'_>> = identity.into_iter().chain(stmts).collect();
    let rows = if db.unnamed_statements() {
        // Every parameter is typed and encoded once before anything is sent, so a statement is
        // never sent without its neighbours.
        let typed = all.iter().map(|s| typed_params(s.sql, s.params)).collect::<Result<Vec<_>>>()?;
        let types: Vec<Vec<Type>> = typed.iter().map(|p| p.iter().map(|(_, ty)| ty.clone()).collect()).collect();
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = typed.iter().map(|p| p.iter().map(|(v, _)| *v).collect()).collect();
        let pipeline: Vec<_> = all
            .iter()
            .zip(&types)
            .zip(&params)
            .map(|((s, types), params)| (PipelineStatement::Unnamed(s.sql, types), params.as_slice()))
            .collect();
        client.pipeline(&pipeline).await
    } else {
        let prepared =
            try_join_all(all.iter().map(|s| client.prepare_cached(s.sql))).await.map_err(|e| db.map_err(e))?;
        for (st, s) in prepared.iter().zip(&all) {
            check_params(st, s)?;
        }
        let pipeline: Vec<_> =
            prepared.iter().zip(&all).map(|(st, s)| (PipelineStatement::Prepared(st), s.params)).collect();
        client.pipeline(&pipeline).await
    };
    let mut rows = rows.map_err(|e| db.map_err(e))?;
    if identity.is_some() {
        rows.remove(0);
    }
    Ok(rows)
}

/// The types unnamed statements declare, tried in order: the first a parameter's Rust type can
/// be sent as is the one declared (the same each time, so plans stay stable).
const CANDIDATE_TYPES: &[Type] = &[
    Type::UUID,
    Type::TEXT,
    Type::INT8,
    Type::INT4,
    Type::INT2,
    Type::BOOL,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMP,
    Type::DATE,
    Type::FLOAT8,
    Type::FLOAT4,
    Type::JSONB,
    Type::BYTEA,
    Type::INET,
    Type::UUID_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::BOOL_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::JSONB_ARRAY,
];

/// Each parameter with the type it is declared as, checked to encode before anything is sent.
pub(super) fn typed_params<'a>(
    sql: &str,
    params: &[&'a (dyn ToSql + Sync)],
) -> Result<Vec<(&'a (dyn ToSql + Sync), Type)>> {
    let mut buf = bytes::BytesMut::new();
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            CANDIDATE_TYPES
                .iter()
                .find(|ty| {
                    buf.clear();
                    p.to_sql_checked(ty, &mut buf).is_ok()
                })
                .map(|ty| (*p, ty.clone()))
                .ok_or_else(|| Error::Internal(format!("parameter ${} has no type todo-db can declare: {sql}", i + 1)))
        })
        .collect()
}

fn check_params(st: &tokio_postgres::Statement, s: &Stmt<'_>) -> Result<()> {
    let types = st.params();
    if types.len() != s.params.len() {
        return Err(Error::Internal(format!(
            "statement expects {} parameters, {} given: {}",
            types.len(),
            s.params.len(),
            s.sql
        )));
    }
    let mut buf = bytes::BytesMut::new();
    for (i, (ty, p)) in types.iter().zip(s.params).enumerate() {
        buf.clear();
        p.to_sql_checked(ty, &mut buf)
            .map_err(|e| Error::Internal(format!("parameter ${} ({ty}) cannot be sent: {e}: {}", i + 1, s.sql)))?;
    }
    Ok(())
}
