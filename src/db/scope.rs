//! A user scope: every operation is one transaction, run as the app role with the user's identity
//! set transaction-locally, and sent as one pipelined flight:
//!
//! ```text
//! BEGIN; select set_config('role','todo_app',true), set_config('app.user_id','<id>',true), ...
//! <the operation's statements>; COMMIT
//! ```
//!
//! BEGIN and the identity go as one simple-protocol message; the operation's statements and
//! COMMIT are prepared once per connection and cached. tokio-postgres writes a query's
//! messages when its future is first polled, so polling the futures together (`join!`) sends them
//! back to back and reads the answers together: one network round trip. A failing statement
//! aborts the transaction, and the COMMIT after it is answered as a rollback.
//!
//! Cancellation: all of BEGIN .. COMMIT is queued on the connection in the single poll that
//! starts the `join!` (no await point between the sends), and a connection serves its queue in
//! order. So if the caller's future is dropped at any point, the connection can go back to the
//! pool: whatever the next user sends is served only after this transaction's COMMIT (or, if a
//! statement failed, its rollback), and the identity is transaction-local. No transaction is ever
//! left half-sent, because parameters are checked before anything of it is sent.

use futures_util::future::{join_all, try_join_all};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::Db;
use crate::error::{Error, Result};
use crate::model::UserId;

/// Sets the identity for the current transaction only: a session-level SET would leak to the
/// next user of a pooled connection, and through PgBouncer in transaction mode.
/// The request id and reason (empty when unset) are recorded with every audit entry.
const IDENTITY: &str = "select set_config('role', 'todo_app', true), set_config('app.user_id', $1, true), \
     set_config('statement_timeout', $2, true), set_config('app.request_id', $3, true), \
     set_config('app.reason', $4, true), set_config('lock_timeout', $5, true)";

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
    timeout: String,
    lock_timeout: String,
    request_id: String,
    reason: String,
}

impl UserScope {
    pub(super) fn new(db: Db, user: UserId) -> Self {
        let timeout = format!("{}ms", db.pool_settings().statement_timeout.as_millis());
        let lock_timeout = format!("{}ms", db.pool_settings().lock_timeout.as_millis());
        UserScope { db, user, timeout, lock_timeout, request_id: String::new(), reason: String::new() }
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
        let user = self.user.0.to_string();
        let params: [&(dyn ToSql + Sync); 5] =
            [&user, &self.timeout, &self.request_id, &self.reason, &self.lock_timeout];
        pipelined(&self.db, Some(&Stmt::new(IDENTITY, &params)), stmts).await
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

/// Sends `begin` (BEGIN and whatever must run first, one simple-protocol message), `stmts` and
/// COMMIT in one flight, and reads every answer.
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
            Err(Error::Database { code, .. })
                if attempt < CONFLICT_ATTEMPTS && matches!(code.as_str(), "40001" | "40P01") =>
            {
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

async fn flight(
    db: &Db,
    client: &deadpool_postgres::ClientWrapper,
    identity: Option<&Stmt<'_>>,
    stmts: &[Stmt<'_>],
) -> Result<Vec<Vec<Row>>> {
    if db.unnamed_statements() {
        return pipelined_unnamed(db, client, identity, stmts).await;
    }

    let prepared = try_join_all(
        ["begin", "commit"]
            .into_iter()
            .chain(identity.iter().map(|s| s.sql))
            .chain(stmts.iter().map(|s| s.sql))
            .map(|sql| client.prepare_cached(sql)),
    )
    .await
    .map_err(|e| db.map_err(e))?;
    let (begin, commit) = (&prepared[0], &prepared[1]);
    let first = if identity.is_some() { 3 } else { 2 };
    // Every parameter is encoded once before anything is sent: a statement the driver refused
    // to send would otherwise leave its neighbours, COMMIT included, to run without it.
    for (st, s) in prepared[first..].iter().zip(stmts) {
        check_params(st, s)?;
    }

    let (began, ident, results, committed) = tokio::join!(
        client.execute(begin, &[]),
        async {
            match identity {
                Some(i) => client.execute(&prepared[2], i.params).await.map(|_| ()),
                None => Ok(()),
            }
        },
        join_all(prepared[first..].iter().zip(stmts).map(|(st, s)| client.query(st, s.params))),
        client.execute(commit, &[]),
    );
    answers(db, began.map(|_| ()), ident, results, committed.map(|_| ()))
}

/// The same flight with unnamed statements (Parse, Bind, Describe, Execute, Sync per statement,
/// nothing left on the server afterwards), for a transaction-mode pooler that does not track
/// prepared statements: BEGIN pins one server connection until COMMIT.
async fn pipelined_unnamed(
    db: &Db,
    client: &deadpool_postgres::ClientWrapper,
    identity: Option<&Stmt<'_>>,
    stmts: &[Stmt<'_>],
) -> Result<Vec<Vec<Row>>> {
    let ident = identity.map(|i| typed_params(i.sql, i.params)).transpose()?;
    let typed = stmts.iter().map(|s| typed_params(s.sql, s.params)).collect::<Result<Vec<_>>>()?;
    let (began, ident, results, committed) = tokio::join!(
        client.query_typed("begin", &[]),
        async {
            match (identity, &ident) {
                (Some(i), Some(params)) => client.query_typed(i.sql, params).await.map(|_| ()),
                _ => Ok(()),
            }
        },
        join_all(stmts.iter().zip(&typed).map(|(s, params)| client.query_typed(s.sql, params))),
        client.query_typed("commit", &[]),
    );
    answers(db, began.map(|_| ()), ident, results, committed.map(|_| ()))
}

/// The answers of one flight, in order: the first error wins (a failed statement aborts the
/// transaction, and the COMMIT after it is answered as a rollback).
fn answers(
    db: &Db,
    began: std::result::Result<(), tokio_postgres::Error>,
    ident: std::result::Result<(), tokio_postgres::Error>,
    results: Vec<std::result::Result<Vec<Row>, tokio_postgres::Error>>,
    committed: std::result::Result<(), tokio_postgres::Error>,
) -> Result<Vec<Vec<Row>>> {
    began.map_err(|e| db.map_err(e))?;
    ident.map_err(|e| db.map_err(e))?;
    let rows = results.into_iter().map(|r| r.map_err(|e| db.map_err(e))).collect::<Result<Vec<_>>>()?;
    committed.map_err(|e| db.map_err(e))?;
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
