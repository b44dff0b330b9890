//! Time travel: a record's state at an instant, and restoring a task or a user's data to it.

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Conn, Db};
use crate::error::{Error, Result};
use crate::model::{TaskId, UserId};

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
pub(super) const RESTORED: [&str; 7] =
    ["title", "description", "priority", "status", "completed", "completed_at", "due_at"];

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
pub(super) async fn plan_task(
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

pub(super) async fn apply_task(
    tx: &tokio_postgres::Transaction<'_>,
    plan: &RestorePlan,
    then: &Option<serde_json::Value>,
) -> std::result::Result<(), tokio_postgres::Error> {
    match plan.action {
        "delete" => {
            tx.execute("delete from tasks where id = $1", &[&plan.task]).await?;
        }
        "recreate" => {
            // A task in the trash comes out of it: it is live again.
            tx.execute("delete from task_trash where id = $1", &[&plan.task]).await?;
            tx.execute("insert into tasks select * from jsonb_populate_record(null::tasks, $1)", &[then]).await?;
        }
        "update" => {
            tx.execute(
                "update tasks t set (title, description, priority, status, completed, completed_at, due_at) = \
                 (select r.title, r.description, r.priority, r.status, r.completed, r.completed_at, r.due_at \
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
pub(super) async fn record_ids(db: &Db, table: &'static str, user: UserId) -> Result<Vec<Uuid>> {
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
pub(super) async fn apply_user(
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
