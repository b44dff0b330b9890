//! `todo-db import`: a database in the original Python module's shape (its SQLModel tables,
//! naive UTC timestamps) brought into todo-db's schema, all or nothing.
//!
//! The source is read in one repeatable-read snapshot. Each target table's rows are selected
//! on the source in the target's column layout (SQL below) and streamed as binary COPY straight
//! into the target's COPY, in one transaction that takes the bulk path ([`crate::bulk`]). What the
//! import does with each thing the original holds:
//!
//! - **users**: every column todo-db has; bcrypt hashes as they are (the first login rehashes to
//!   Argon2id). `avatar_thumbnail_url` has no place here and is left behind.
//! - **tasks**: a deleted task goes to the trash (`deleted_at` kept); completion and status are
//!   made to agree as todo-db's rule says (completed or status done: done, completed, with
//!   `completed_at` or else the last update; otherwise open); titles are trimmed; a missing
//!   priority or status is the default (medium, todo).
//! - **task_tags**: the original stores each tag's text per task; here one tag per user and name
//!   ignoring case (the earliest spelling), with a stable id derived from both, linked to the
//!   live tasks and remembered by the trashed ones.
//! - **task_history**: each entry becomes an audit entry of the task's owner (table
//!   `task_history`, op `IMPORT`, the change type and the old and new values as they were), read
//!   back by `audit::history` as the change it names.
//! - **user_preferences**: theme, language, and the notification and privacy settings, each
//!   missing one at its default.
//! - Not carried: password reset and email verification tokens (they are short-lived: users ask
//!   again), `daily_analytics` and `analytics_cache` (derived; the views compute them), and
//!   `security_audit_log` (the security events of another system).
//!
//! A row todo-db's schema would refuse (an email another account has ignoring case, an unknown
//! priority, an empty title, ...) is a [`Problem`], named with its id and reason; so is each row
//! that depends on one (the tasks of a user who cannot be imported). A dry run lists them; a real
//! run refuses while any exists unless told to leave them behind, and then counts them by reason.

mod rows;
mod sql;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;

use todo_db::db::{Conn, Db};
use todo_db::error::{Error, Result};
use todo_db::schema;

use crate::bulk;
use sql::Source;
pub use sql::{columns, TARGETS};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Plan only: count what would be imported and list every row that cannot be.
    pub dry_run: bool,
    /// Replace the target's todo-db data (users and everything they own) instead of refusing a
    /// target that holds some.
    pub replace: bool,
    /// Import what can be, leaving behind the rows that cannot (counted by reason).
    pub skip_invalid: bool,
}

/// A source row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The source table.
    pub table: String,
    /// The row's id there.
    pub id: Option<String>,
    pub reason: String,
}

/// What the source holds and what it becomes.
#[derive(Debug, Clone, Serialize)]
pub struct ImportPlan {
    /// Source tables the import reads that the source does not have (nothing of theirs is imported).
    pub missing_tables: Vec<String>,
    /// Target table -> rows it receives.
    pub rows: BTreeMap<String, u64>,
    pub problems: Vec<Problem>,
    /// What the original holds that is not carried, and why.
    pub not_carried: Vec<String>,
}

impl ImportPlan {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }

    /// Problems counted by source table and reason.
    pub fn problem_counts(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for p in &self.problems {
            *out.entry((p.table.clone(), p.reason.clone())).or_insert(0) += 1;
        }
        out
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub target: String,
    pub plan: ImportPlan,
    /// Whether anything was written (false for a dry run).
    pub imported: bool,
    pub rows: u64,
    /// Seconds from the first COPY to the commit.
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Live progress: rows copied so far, of how many, in which table.
#[derive(Debug, Default)]
pub struct Progress {
    rows: AtomicU64,
    total: AtomicU64,
    table: AtomicUsize,
}

impl Progress {
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Rows the import writes: zero before the source is planned, then the dry run's count or a
    /// real run's estimate (never less than the rows already copied).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed).max(self.rows())
    }

    /// The table being loaded, "plan" before the first, "indexes" after the last.
    pub fn phase(&self) -> &'static str {
        match self.table.load(Ordering::Relaxed) {
            0 => "plan",
            i if i <= sql::TARGETS.len() => sql::TARGETS[i - 1],
            _ => "indexes",
        }
    }
}

/// The target tables that hold todo-db data: an import refuses a target with rows in any of them
/// unless replacing; replacing empties them all (tokens and security events go with their users).
const DATA_TABLES: [&str; 8] =
    ["users", "tags", "tasks", "task_trash", "task_tags", "user_preferences", "api_tokens", "security_events"];

/// Imports the database `source` (the original module's shape) into `db`, migrating `db` first.
pub async fn import(db: &Db, source: &Db, options: &ImportOptions, progress: Arc<Progress>) -> Result<ImportReport> {
    let target = db.target().to_string();
    source
        .admin()
        .with_connection(async |src| {
            let src_target = source.target().to_string();
            let fail = |e| Error::from_pg(e, &src_target);
            let stx = src.transaction().await.map_err(fail)?;
            stx.batch_execute(
                "set transaction isolation level repeatable read, read only; set local timezone = 'UTC'; \
                 set local statement_timeout = 0",
            )
            .await
            .map_err(fail)?;
            let shape = Source::inspect(&stx, &src_target).await?;
            let plan = shape.plan(&stx, &src_target, options.dry_run).await?;
            if options.dry_run {
                progress.total.store(plan.total_rows(), Ordering::Relaxed);
            } else {
                progress.total.store(shape.estimate(&stx, &src_target).await?, Ordering::Relaxed);
            }
            if options.dry_run {
                return Ok(ImportReport {
                    target: target.clone(),
                    plan,
                    imported: false,
                    rows: 0,
                    seconds: 0.0,
                    rows_per_second: 0.0,
                });
            }
            if !plan.problems.is_empty() && !options.skip_invalid {
                let counts: Vec<String> = plan
                    .problem_counts()
                    .iter()
                    .map(|((table, reason), n)| format!("{n} in {table}: {reason}"))
                    .collect();
                return Err(Error::validation(
                    "source",
                    format!(
                        "{} rows cannot be imported ({}); nothing was imported. --dry-run lists them by id; \
                         --skip-invalid imports the rest",
                        plan.problems.len(),
                        counts.join("; ")
                    ),
                ));
            }
            db.admin()
                .with_connection(async |conn| {
                    let ends = Ends { target: &target, source: &src_target, stx: &stx };
                    load(conn, ends, &shape, plan, options, &progress).await
                })
                .await
        })
        .await
}

/// The two ends of an import: the target's name, the source's name and its snapshot.
#[derive(Clone, Copy)]
struct Ends<'a> {
    target: &'a str,
    source: &'a str,
    stx: &'a tokio_postgres::Transaction<'a>,
}

async fn load(
    conn: &mut Conn,
    ends: Ends<'_>,
    shape: &Source,
    mut plan: ImportPlan,
    options: &ImportOptions,
    progress: &Progress,
) -> Result<ImportReport> {
    let target = ends.target;
    let fail = |e| Error::from_pg(e, target);
    schema::migrate(conn).await?;
    let started = std::time::Instant::now();
    let tx = conn.transaction().await.map_err(fail)?;
    tx.batch_execute(&format!(
        "set local statement_timeout = 0; lock table {} in exclusive mode",
        DATA_TABLES.join(", ")
    ))
    .await
    .map_err(fail)?;
    if !bulk::all_empty(&tx, target, &DATA_TABLES).await? {
        if !options.replace {
            return Err(Error::validation(
                "into",
                format!("{target} already holds todo-db data; pass --replace to replace it with the import"),
            ));
        }
        tx.batch_execute(&format!("truncate {}", DATA_TABLES.join(", "))).await.map_err(fail)?;
    }
    let deferred = bulk::Deferred::begin(&tx, target, &sql::TARGETS[..sql::TARGETS.len() - 1]).await?;
    let mut rows = 0;
    for (i, table) in sql::TARGETS.iter().enumerate() {
        progress.table.store(i + 1, Ordering::Relaxed);
        let Some(select) = shape.select(table) else { continue };
        let copied = copy(ends, &tx, &select, table, progress).await?;
        plan.rows.insert(table.to_string(), copied);
        rows += copied;
    }
    progress.table.store(sql::TARGETS.len() + 1, Ordering::Relaxed);
    deferred.finish(&tx, target).await?;
    tx.commit().await.map_err(fail)?;
    let seconds = started.elapsed().as_secs_f64();
    conn.batch_execute(&format!("analyze {}", sql::TARGETS.join(", "))).await.map_err(fail)?;
    tracing::info!(rows, seconds, "imported");
    Ok(ImportReport {
        target: target.to_string(),
        plan,
        imported: true,
        rows,
        seconds,
        rows_per_second: rows as f64 / seconds.max(1e-9),
    })
}

/// Streams `select` on the source into `table` on the target, both as binary COPY.
async fn copy(
    ends: Ends<'_>,
    tx: &tokio_postgres::Transaction<'_>,
    select: &str,
    table: &str,
    progress: &Progress,
) -> Result<u64> {
    let target = ends.target;
    let out = ends
        .stx
        .copy_out(&format!("copy ({select}) to stdout (format binary)"))
        .await
        .map_err(|e| Error::from_pg(e, ends.source))?;
    let sink = tx
        .copy_in::<_, Bytes>(&format!("copy {table} ({}) from stdin (format binary)", sql::columns(table)))
        .await
        .map_err(|e| Error::from_pg(e, target))?;
    futures_util::pin_mut!(out, sink);
    let mut counter = rows::RowCounter::default();
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(|e| Error::from_pg(e, ends.source))?;
        progress.rows.fetch_add(counter.feed(&chunk), Ordering::Relaxed);
        sink.send(chunk).await.map_err(|e| Error::from_pg(e, target))?;
    }
    sink.finish().await.map_err(|e| Error::from_pg(e, target))
}
