//! The audit trail: history queries, time travel and restore, and the SHA-256 seal chain.
//!
//! Capture happens in PostgreSQL (`migrations/0003_audit.sql`): one SECURITY DEFINER trigger
//! function writes every INSERT, UPDATE and DELETE of users, tasks, tags and task_tags to
//! `audit.log` in the same transaction, with secrets replaced by `"[secret]"`.

pub mod history;
mod seal;
mod travel;

pub use seal::{prune, seal, verify, Pruned, Seal, Tamper, VerifyReport};
pub use travel::{restore_task, restore_user, state_at, task_tags_at, RestorePlan, TagRestore, UserRestorePlan};

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Db, UserScope};
use crate::error::{Error, Result};
use crate::model::Page;

/// One audit entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub txid: i64,
    pub table: String,
    pub record_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub op: String,
    pub old: Option<serde_json::Value>,
    pub new: Option<serde_json::Value>,
    /// The columns an UPDATE changed, sorted by name.
    pub changed: Option<Vec<String>>,
    pub actor: String,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}

/// An entry from a row of `audit.log`'s columns, read by name (the select list may order them
/// as it likes).
fn entry(r: &tokio_postgres::Row) -> Entry {
    Entry {
        id: r.get("id"),
        at: r.get("at"),
        txid: r.get("txid"),
        table: r.get("table_name"),
        record_id: r.get("record_id"),
        user_id: r.get("user_id"),
        op: r.get("op"),
        old: r.get("old"),
        new: r.get("new"),
        // Stored in the capture's order (hstore's: shorter names first); read back sorted by name.
        changed: r.get::<_, Option<Vec<String>>>("changed").map(|mut cols| {
            cols.sort_unstable();
            cols
        }),
        actor: r.get("actor"),
        request_id: r.get("request_id"),
        reason: r.get("reason"),
    }
}

/// Which entries to list, newest first. Every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// One record's history (a task, tag or user id; for task_tags, the task id).
    pub record: Option<Uuid>,
    /// Everything that touched this user's rows.
    pub user: Option<Uuid>,
    pub table: Option<String>,
    pub op: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Keyset pagination: entries older than this id (the previous page's `next`).
    pub before: Option<i64>,
    /// 1..=1000, default 50.
    pub limit: Option<i64>,
}

const LIST: &str =
    "select id, at, txid, table_name, record_id, user_id, op, old, new, changed, actor, request_id, reason \
     from audit.log where ($1::uuid is null or record_id = $1) and ($2::uuid is null or user_id = $2) \
       and ($3::text is null or table_name = $3) and ($4::text is null or op = $4) \
       and ($5::timestamptz is null or at >= $5) and ($6::timestamptz is null or at < $6) \
       and ($7::int8 is null or id < $7) order by id desc limit $8";

fn check(f: &LogFilter) -> Result<(Option<String>, i64)> {
    let limit = f.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation("limit", "must be between 1 and 1000"));
    }
    if let Some(t) = &f.table {
        const TABLES: [&str; 7] =
            ["users", "tasks", "task_trash", "tags", "task_tags", "user_preferences", "task_history"];
        if !TABLES.contains(&t.as_str()) {
            return Err(Error::validation("table", format!("{t:?} is not one of {}", TABLES.join(", "))));
        }
    }
    let op = f.op.as_ref().map(|o| o.to_ascii_uppercase());
    if let Some(o) = &op {
        if !["INSERT", "UPDATE", "DELETE", "TRUNCATE"].contains(&o.as_str()) {
            return Err(Error::validation("op", format!("{o:?} is not one of insert, update, delete, truncate")));
        }
    }
    Ok((op, limit))
}

fn page(rows: Vec<tokio_postgres::Row>, limit: i64) -> Page<Entry> {
    let mut items: Vec<Entry> = rows.iter().map(entry).collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Page { items, next }
}

/// Entries across all users (operator view); from the read replica when one is configured.
pub async fn log(db: &Db, f: &LogFilter) -> Result<Page<Entry>> {
    let (op, limit) = check(f)?;
    let rows = db
        .reporting()
        .query(LIST, &[&f.record, &f.user, &f.table, &op, &f.since, &f.until, &f.before, &(limit + 1)])
        .await?;
    Ok(page(rows, limit))
}

/// The scope's own entries (RLS: a user reads only entries about their rows).
pub async fn log_own(scope: &UserScope, f: &LogFilter) -> Result<Page<Entry>> {
    let (op, limit) = check(f)?;
    let rows =
        scope.query(LIST, &[&f.record, &f.user, &f.table, &op, &f.since, &f.until, &f.before, &(limit + 1)]).await?;
    Ok(page(rows, limit))
}
