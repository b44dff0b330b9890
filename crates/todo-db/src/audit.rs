//! The audit trail: history queries, time travel and restore, and the SHA-256 seal chain.
//!
//! Capture happens in PostgreSQL (`migrations/0003_audit.sql`): one SECURITY DEFINER trigger
//! function writes every INSERT, UPDATE and DELETE of users, tasks, tags and task_tags to
//! `audit.log` in the same transaction, with secrets replaced by `"[secret]"`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Conn, Db, UserScope};
use crate::error::{Error, Result};
use crate::model::{Page, TaskId, UserId};

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

fn entry(r: &tokio_postgres::Row) -> Entry {
    Entry {
        id: r.get(0),
        at: r.get(1),
        txid: r.get(2),
        table: r.get(3),
        record_id: r.get(4),
        user_id: r.get(5),
        op: r.get(6),
        old: r.get(7),
        new: r.get(8),
        // Stored in the capture's order (hstore's: shorter names first); read back sorted by name.
        changed: r.get::<_, Option<Vec<String>>>(9).map(|mut cols| {
            cols.sort_unstable();
            cols
        }),
        actor: r.get(10),
        request_id: r.get(11),
        reason: r.get(12),
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
        if !["users", "tasks", "tags", "task_tags"].contains(&t.as_str()) {
            return Err(Error::validation("table", format!("{t:?} is not one of users, tasks, tags, task_tags")));
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

/// A record as it was at `at` (its last entry at or before then), or `None` if it did not exist.
pub async fn state_at(db: &Db, table: &str, record: Uuid, at: OffsetDateTime) -> Result<Option<serde_json::Value>> {
    let row = db
        .admin()
        .query_opt(
            "select op, new from audit.log where table_name = $1 and record_id = $2 and at <= $3 order by id desc limit 1",
            &[&table, &record, &at],
        )
        .await?;
    Ok(row.and_then(|r| if r.get::<_, String>(0) == "DELETE" { None } else { r.get(1) }))
}

/// The tag ids attached to a task at `at`, replayed from the task_tags entries.
pub async fn task_tags_at(db: &Db, task: Uuid, at: OffsetDateTime) -> Result<BTreeSet<Uuid>> {
    let rows = db
        .admin()
        .query(
            "select op, (coalesce(new, old) ->> 'tag_id')::uuid from audit.log \
             where table_name = 'task_tags' and record_id = $1 and at <= $2 order by id",
            &[&task, &at],
        )
        .await?;
    let mut tags = BTreeSet::new();
    for r in &rows {
        let tag: Uuid = r.get(1);
        match r.get::<_, &str>(0) {
            "INSERT" => tags.insert(tag),
            "DELETE" => tags.remove(&tag),
            _ => false,
        };
    }
    Ok(tags)
}

/// What a restore does (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub task: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    /// `recreate`, `update`, `delete` or `none`.
    pub action: &'static str,
    /// Columns whose value changes, with (current, restored) values.
    pub changes: Vec<(String, serde_json::Value, serde_json::Value)>,
    pub tags_added: Vec<Uuid>,
    pub tags_removed: Vec<Uuid>,
    /// Tags that were attached then but no longer exist: they cannot come back.
    pub tags_gone: Vec<Uuid>,
    pub applied: bool,
}

/// Columns a restore puts back (ids, owner and timestamps kept by the database stay as they are).
const RESTORED: [&str; 6] = ["title", "description", "priority", "completed", "completed_at", "due_at"];

/// Puts a task (its fields and its tags) back as it was at `as_of`, as new audited changes whose
/// reason names the restore. A task created since is deleted (kept with `keep_created`); one
/// deleted since comes back.
pub async fn restore_task(
    db: &Db,
    task: TaskId,
    as_of: OffsetDateTime,
    dry_run: bool,
    keep_created: bool,
) -> Result<RestorePlan> {
    let (mut plan, then) = plan_task(db, task.0, as_of, &BTreeSet::new()).await?;
    if then.is_none() && plan.action == "none" {
        return Err(Error::NotFound { entity: "task (no audit history before that time)" });
    }
    if keep_created && plan.action == "delete" {
        plan.action = "none";
        plan.changes.clear();
        plan.tags_added.clear();
        plan.tags_removed.clear();
    }
    if dry_run || plan.is_noop() {
        return Ok(plan);
    }
    db.admin()
        .with_connection(async |conn| {
            let pg = |e| db.map_err(e);
            let tx = conn.transaction().await.map_err(pg)?;
            let reason = format!("restore of task {} as of {}", task.0, as_of);
            tx.execute("select set_config('app.reason', $1, true)", &[&reason]).await.map_err(pg)?;
            apply_task(&tx, &plan, &then).await.map_err(pg)?;
            tx.commit().await.map_err(pg)
        })
        .await?;
    plan.applied = true;
    Ok(plan)
}

impl RestorePlan {
    fn is_noop(&self) -> bool {
        self.action == "none" && self.tags_added.is_empty() && self.tags_removed.is_empty()
    }
}

/// What restoring one task means; `also_existing` are tags the same restore brings back first.
async fn plan_task(
    db: &Db,
    task: Uuid,
    as_of: OffsetDateTime,
    also_existing: &BTreeSet<Uuid>,
) -> Result<(RestorePlan, Option<serde_json::Value>)> {
    let admin = db.admin();
    let then = state_at(db, "tasks", task, as_of).await?;
    let now = admin
        .query_opt("select to_jsonb(t) from tasks t where id = $1", &[&task])
        .await?
        .map(|r| r.get::<_, serde_json::Value>(0));
    let tags_then = if then.is_some() { task_tags_at(db, task, as_of).await? } else { BTreeSet::new() };
    let tags_now: BTreeSet<Uuid> = admin
        .query("select tag_id from task_tags where task_id = $1", &[&task])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut existing: BTreeSet<Uuid> = if tags_then.is_empty() {
        BTreeSet::new()
    } else {
        let ids: Vec<Uuid> = tags_then.iter().copied().collect();
        admin.query("select id from tags where id = any($1)", &[&ids]).await?.iter().map(|r| r.get(0)).collect()
    };
    existing.extend(also_existing.iter().copied());
    let (action, changes) = match (&then, &now) {
        (None, None) => ("none", Vec::new()),
        (None, Some(_)) => ("delete", Vec::new()),
        (Some(t), None) => {
            ("recreate", RESTORED.iter().map(|c| (c.to_string(), serde_json::Value::Null, t[*c].clone())).collect())
        }
        (Some(t), Some(n)) => {
            let changes: Vec<_> = RESTORED
                .iter()
                .filter(|c| t[**c] != n[**c])
                .map(|c| (c.to_string(), n[*c].clone(), t[*c].clone()))
                .collect();
            (if changes.is_empty() { "none" } else { "update" }, changes)
        }
    };
    let tags_added: Vec<Uuid> = tags_then.difference(&tags_now).filter(|t| existing.contains(t)).copied().collect();
    let tags_gone: Vec<Uuid> = tags_then.difference(&tags_now).filter(|t| !existing.contains(t)).copied().collect();
    let tags_removed: Vec<Uuid> =
        if then.is_some() { tags_now.difference(&tags_then).copied().collect() } else { Vec::new() };
    let plan = RestorePlan { task, as_of, action, changes, tags_added, tags_removed, tags_gone, applied: false };
    Ok((plan, then))
}

async fn apply_task(
    tx: &tokio_postgres::Transaction<'_>,
    plan: &RestorePlan,
    then: &Option<serde_json::Value>,
) -> std::result::Result<(), tokio_postgres::Error> {
    match plan.action {
        "delete" => {
            tx.execute("delete from tasks where id = $1", &[&plan.task]).await?;
        }
        "recreate" => {
            tx.execute("insert into tasks select * from jsonb_populate_record(null::tasks, $1)", &[then]).await?;
        }
        "update" => {
            tx.execute(
                "update tasks t set (title, description, priority, completed, completed_at, due_at) = \
                 (select r.title, r.description, r.priority, r.completed, r.completed_at, r.due_at \
                  from jsonb_populate_record(null::tasks, $2) r) where t.id = $1",
                &[&plan.task, then],
            )
            .await?;
        }
        _ => {}
    }
    if plan.action != "delete" {
        tx.execute(
            "insert into task_tags (user_id, task_id, tag_id) select t.user_id, t.id, g from tasks t, unnest($2::uuid[]) g \
             where t.id = $1 on conflict do nothing",
            &[&plan.task, &plan.tags_added],
        )
        .await?;
        tx.execute("delete from task_tags where task_id = $1 and tag_id = any($2)", &[&plan.task, &plan.tags_removed])
            .await?;
    }
    Ok(())
}

/// Every id of `table` that belongs to `user` now or appears in the user's audit history.
async fn record_ids(db: &Db, table: &'static str, user: UserId) -> Result<Vec<Uuid>> {
    let sql = format!(
        "select record_id from audit.log where table_name = '{table}' and user_id = $1 \
         union select id from {table} where user_id = $1"
    );
    Ok(db.admin().query(&sql, &[&user.0]).await?.iter().map(|r| r.get(0)).collect())
}

/// One tag in a user restore: `recreate`, `update` (name or colour) or `delete`.
#[derive(Debug, Clone, Serialize)]
pub struct TagRestore {
    pub tag: Uuid,
    pub action: &'static str,
    pub name_now: Option<String>,
    pub name_then: Option<String>,
}

/// What restoring all of a user's tasks and tags does.
#[derive(Debug, Clone, Serialize)]
pub struct UserRestorePlan {
    pub user: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub tags: Vec<TagRestore>,
    /// Tasks that change (unchanged ones are left out).
    pub tasks: Vec<RestorePlan>,
    pub applied: bool,
}

/// Puts all of a user's tags and tasks (with their tag links) back as they were at `as_of`, in one
/// transaction: deleted ones come back, ones created since are removed (kept with
/// `keep_created`), changed ones revert.
pub async fn restore_user(
    db: &Db,
    user: UserId,
    as_of: OffsetDateTime,
    dry_run: bool,
    keep_created: bool,
) -> Result<UserRestorePlan> {
    let admin = db.admin();
    let mut tags = Vec::new();
    let mut tag_states = Vec::new();
    for tag in record_ids(db, "tags", user).await? {
        let then = state_at(db, "tags", tag, as_of).await?;
        let now = db
            .admin()
            .query_opt("select to_jsonb(g) from tags g where id = $1", &[&tag])
            .await?
            .map(|r| r.get::<_, serde_json::Value>(0));
        let name = |v: &Option<serde_json::Value>| v.as_ref().and_then(|j| j["name"].as_str().map(String::from));
        let action = match (&then, &now) {
            (Some(_), None) => "recreate",
            (None, Some(_)) if keep_created => continue,
            (None, Some(_)) => "delete",
            (Some(t), Some(n)) if t["name"] != n["name"] || t["color"] != n["color"] => "update",
            _ => continue,
        };
        tags.push(TagRestore { tag, action, name_now: name(&now), name_then: name(&then) });
        tag_states.push(then);
    }
    let recreated: BTreeSet<Uuid> = tags.iter().filter(|t| t.action == "recreate").map(|t| t.tag).collect();
    let mut tasks = Vec::new();
    for task in record_ids(db, "tasks", user).await? {
        let (plan, then) = plan_task(db, task, as_of, &recreated).await?;
        let kept = keep_created && plan.action == "delete";
        if !plan.is_noop() && !kept {
            tasks.push((plan, then));
        }
    }
    let mut plan = UserRestorePlan { user: user.0, as_of, tags, tasks: Vec::new(), applied: false };
    if dry_run || (plan.tags.is_empty() && tasks.is_empty()) {
        plan.tasks = tasks.into_iter().map(|(p, _)| p).collect();
        return Ok(plan);
    }

    admin.with_connection(async |conn| apply_user(conn, db, &plan, &tag_states, &tasks).await).await?;
    plan.tasks = tasks.into_iter().map(|(p, _)| p).collect();
    plan.applied = true;
    Ok(plan)
}

/// Applies a user restore's plan in one audited transaction.
async fn apply_user(
    conn: &mut Conn,
    db: &Db,
    plan: &UserRestorePlan,
    tag_states: &[Option<serde_json::Value>],
    tasks: &[(RestorePlan, Option<serde_json::Value>)],
) -> Result<()> {
    let (user, as_of) = (plan.user, plan.as_of);
    let pg = |e| db.map_err(e);
    let tx = conn.transaction().await.map_err(pg)?;
    let reason = format!("restore of user {user} as of {as_of}");
    tx.execute("select set_config('app.reason', $1, true)", &[&reason]).await.map_err(pg)?;
    for (t, then) in plan.tags.iter().zip(tag_states) {
        match t.action {
            "recreate" => {
                tx.execute("insert into tags select * from jsonb_populate_record(null::tags, $1)", &[then])
                    .await
                    .map_err(pg)?;
            }
            "update" => {
                tx.execute(
                    "update tags g set (name, color) = (select r.name, r.color from jsonb_populate_record(null::tags, $2) r) \
                     where g.id = $1",
                    &[&t.tag, then],
                )
                .await
                .map_err(pg)?;
            }
            _ => {}
        }
    }
    for (task, then) in tasks {
        apply_task(&tx, task, then).await.map_err(pg)?;
    }
    for t in plan.tags.iter().filter(|t| t.action == "delete") {
        tx.execute("delete from tags where id = $1", &[&t.tag]).await.map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

/// A seal: the SHA-256 chain over a range of entries.
#[derive(Debug, Clone, Serialize)]
pub struct Seal {
    pub id: i64,
    pub from_id: i64,
    pub upto_id: i64,
    pub entries: i64,
    pub digest: String,
    pub prev_digest: String,
}

/// The per-entry digest, over every column, in a form that does not depend on session settings.
const ENTRY_DIGEST: &str = "sha256(convert_to(concat_ws(chr(31), id::text, \
     (extract(epoch from at) * 1000000)::bigint::text, txid::text, table_name, coalesce(record_id::text, '\\N'), \
     coalesce(user_id::text, '\\N'), op, coalesce(old::text, '\\N'), coalesce(new::text, '\\N'), \
     coalesce(changed::text, '\\N'), actor, coalesce(request_id, '\\N'), coalesce(reason, '\\N')), 'UTF8'))";

const GENESIS: [u8; 32] = [0; 32];

fn chain(prev: &[u8], entry_digests: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(entry_digests);
    h.finalize().to_vec()
}

/// Seals every entry written since the last seal. Writers never wait: the sealer takes a
/// snapshot, waits (up to `wait`) for the transactions that were running then to finish, so that
/// no entry can still appear below the range's end, and chains what it reads.
pub async fn seal(db: &Db, wait: Duration) -> Result<Option<Seal>> {
    let admin = db.admin();
    let row =
        admin.query("select pg_current_snapshot()::text, coalesce((select max(id) from audit.log), 0)", &[]).await?;
    let (snapshot, upto): (String, i64) = (row[0].get(0), row[0].get(1));
    let deadline = Instant::now() + wait;
    loop {
        let done: bool = admin
            .query(
                "select coalesce(bool_and(pg_xact_status(x) is distinct from 'in progress'), true) \
                 from pg_snapshot_xip($1::text::pg_snapshot) x",
                &[&snapshot],
            )
            .await?[0]
            .get(0);
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Unavailable {
                target: db.target().to_string(),
                reason: format!("transactions older than the seal were still running after {wait:?}; try again"),
                source: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    admin.with_connection(async |conn| seal_upto(conn, db, upto).await).await
}

/// Chains the entries after the last seal up to `upto` and stores the seal.
async fn seal_upto(conn: &mut Conn, db: &Db, upto: i64) -> Result<Option<Seal>> {
    let pg = |e| db.map_err(e);
    let tx = conn.transaction().await.map_err(pg)?;
    tx.execute("select pg_advisory_xact_lock(7402001)", &[]).await.map_err(pg)?;
    let last =
        tx.query_opt("select upto_id, digest from audit.seal order by id desc limit 1", &[]).await.map_err(pg)?;
    let (last_upto, prev): (i64, Vec<u8>) = last.map(|r| (r.get(0), r.get(1))).unwrap_or((0, GENESIS.to_vec()));
    if upto <= last_upto {
        return Ok(None);
    }
    let rows = tx
        .query(
            &format!("select id, {ENTRY_DIGEST} from audit.log where id > $1 and id <= $2 order by id"),
            &[&last_upto, &upto],
        )
        .await
        .map_err(pg)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let digests: Vec<u8> = rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(1)).collect();
    let digest = chain(&prev, &digests);
    let id: i64 = tx
        .query_one(
            "insert into audit.seal (from_id, upto_id, entries, entry_ids, entry_digests, prev_digest, digest) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
            &[&(last_upto + 1), &upto, &(ids.len() as i64), &ids, &digests, &prev, &digest],
        )
        .await
        .map_err(pg)?
        .get(0);
    tx.commit().await.map_err(pg)?;
    Ok(Some(Seal {
        id,
        from_id: last_upto + 1,
        upto_id: upto,
        entries: ids.len() as i64,
        digest: hex::encode(&digest),
        prev_digest: hex::encode(&prev),
    }))
}

/// What a prune removed.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// Entries with an id up to and including this were removed (0: none).
    pub through_id: i64,
    pub removed: i64,
}

/// Removes entries older than `before`, but only whole sealed ranges: the boundary is the end of
/// the last seal whose every entry is older than `before`. The prune is recorded in
/// `audit.prune`, and `verify` keeps checking the seal chain across the removed range.
pub async fn prune(db: &Db, before: OffsetDateTime) -> Result<Pruned> {
    db.admin().with_connection(async |conn| prune_on(conn, db, before).await).await
}

async fn prune_on(conn: &mut Conn, db: &Db, before: OffsetDateTime) -> Result<Pruned> {
    let pg = |e| db.map_err(e);
    let tx = conn.transaction().await.map_err(pg)?;
    tx.execute("select pg_advisory_xact_lock(7402001)", &[]).await.map_err(pg)?;
    let through: i64 = tx
        .query_one(
            "select coalesce(max(s.upto_id), 0) from audit.seal s \
             where not exists (select 1 from audit.log l where l.id <= s.upto_id and l.at >= $1)",
            &[&before],
        )
        .await
        .map_err(pg)?
        .get(0);
    let already: i64 =
        tx.query_one("select coalesce(max(through_id), 0) from audit.prune", &[]).await.map_err(pg)?.get(0);
    if through <= already {
        return Ok(Pruned { through_id: already, removed: 0 });
    }
    tx.batch_execute("set local audit.allow_prune = on").await.map_err(pg)?;
    let removed = tx.execute("delete from audit.log where id <= $1", &[&through]).await.map_err(pg)? as i64;
    tx.execute(
        "insert into audit.prune (through_id, removed, actor) values ($1, $2, session_user)",
        &[&through, &removed],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(Pruned { through_id: through, removed })
}

/// What `verify` found wrong first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Tamper {
    /// The entry's content differs from what was sealed.
    Altered { entry: i64, seal: i64 },
    /// A sealed entry is missing.
    Removed { entry: i64, seal: i64 },
    /// An entry inside a sealed range that the seal does not list.
    Inserted { entry: i64, seal: i64 },
    /// The seal row itself was changed, or the chain of seals is broken.
    Seal { seal: i64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub seals: i64,
    pub sealed_entries: i64,
    /// Entries after the last seal (not yet covered).
    pub unsealed_entries: i64,
    pub first_problem: Option<Tamper>,
}

/// Recomputes every seal's chain and compares it with the log, naming the first entry that was
/// altered, removed or inserted.
pub async fn verify(db: &Db) -> Result<VerifyReport> {
    let admin = db.admin();
    let seals = admin
        .query(
            "select id, from_id, upto_id, entry_ids, entry_digests, prev_digest, digest from audit.seal order by id",
            &[],
        )
        .await?;
    let pruned_through: i64 = admin.query("select coalesce(max(through_id), 0) from audit.prune", &[]).await?[0].get(0);
    let mut prev = GENESIS.to_vec();
    let mut sealed = 0i64;
    let mut last_upto = 0i64;
    let mut problem = None;
    for s in &seals {
        let (id, from_id, upto_id): (i64, i64, i64) = (s.get(0), s.get(1), s.get(2));
        let ids: Vec<i64> = s.get(3);
        let digests: Vec<u8> = s.get(4);
        let (prev_digest, digest): (Vec<u8>, Vec<u8>) = (s.get(5), s.get(6));
        if prev_digest != prev
            || chain(&prev, &digests) != digest
            || digests.len() != ids.len() * 32
            || from_id != last_upto + 1
        {
            problem = Some(Tamper::Seal { seal: id });
            break;
        }
        // Entries pruned by retention are gone by design; the seal chain above still covers them.
        let from_checked = from_id.max(pruned_through + 1);
        let rows = admin
            .query(
                &format!("select id, {ENTRY_DIGEST} from audit.log where id >= $1 and id <= $2 order by id"),
                &[&from_checked, &upto_id],
            )
            .await?;
        let mut expected = ids.iter().zip(digests.chunks(32)).filter(|(id, _)| **id >= from_checked).peekable();
        let mut actual = rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))).peekable();
        loop {
            match (expected.peek(), actual.peek()) {
                (None, None) => break,
                (Some((&e, _)), None) => {
                    problem = Some(Tamper::Removed { entry: e, seal: id });
                }
                (None, Some((a, _))) => {
                    problem = Some(Tamper::Inserted { entry: *a, seal: id });
                }
                (Some((&e, ed)), Some((a, ad))) => {
                    if e < *a {
                        problem = Some(Tamper::Removed { entry: e, seal: id });
                    } else if *a < e {
                        problem = Some(Tamper::Inserted { entry: *a, seal: id });
                    } else if *ed != ad.as_slice() {
                        problem = Some(Tamper::Altered { entry: e, seal: id });
                    } else {
                        expected.next();
                        actual.next();
                        continue;
                    }
                }
            }
            break;
        }
        if problem.is_some() {
            break;
        }
        sealed += ids.len() as i64;
        prev = digest;
        last_upto = upto_id;
    }
    let unsealed: i64 = admin.query("select count(*) from audit.log where id > $1", &[&last_upto]).await?[0].get(0);
    Ok(VerifyReport {
        ok: problem.is_none(),
        seals: seals.len() as i64,
        sealed_entries: sealed,
        unsealed_entries: unsealed,
        first_problem: problem,
    })
}
