//! History in the app's words: the audit entries of tasks, their trash and their tags, read as
//! change types (task_created, task_completed, tag_added, ...) with old and new values.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{log_own, Entry, LogFilter};
use crate::db::UserScope;
use crate::error::{Error, Result};
use crate::model::TaskId;

/// What a change did to a task, as the app names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskUncompleted,
    TaskPriorityChanged,
    TaskStatusChanged,
    TaskDueDateChanged,
    TaskDeleted,
    TaskRestored,
    TagAdded,
    TagRemoved,
}

impl ChangeType {
    pub const ALL: [ChangeType; 11] = [
        ChangeType::TaskCreated,
        ChangeType::TaskUpdated,
        ChangeType::TaskCompleted,
        ChangeType::TaskUncompleted,
        ChangeType::TaskPriorityChanged,
        ChangeType::TaskStatusChanged,
        ChangeType::TaskDueDateChanged,
        ChangeType::TaskDeleted,
        ChangeType::TaskRestored,
        ChangeType::TagAdded,
        ChangeType::TagRemoved,
    ];

    /// The app's name of the change: `task_created`, `tag_added`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::TaskCreated => "task_created",
            ChangeType::TaskUpdated => "task_updated",
            ChangeType::TaskCompleted => "task_completed",
            ChangeType::TaskUncompleted => "task_uncompleted",
            ChangeType::TaskPriorityChanged => "task_priority_changed",
            ChangeType::TaskStatusChanged => "task_status_changed",
            ChangeType::TaskDueDateChanged => "task_due_date_changed",
            ChangeType::TaskDeleted => "task_deleted",
            ChangeType::TaskRestored => "task_restored",
            ChangeType::TagAdded => "tag_added",
            ChangeType::TagRemoved => "tag_removed",
        }
    }

    /// The change type of an app name; `None` for another text.
    pub fn parse(name: &str) -> Option<ChangeType> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One change to one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The audit entry it comes from.
    pub entry_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub task_id: Uuid,
    pub change_type: ChangeType,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
    pub actor: String,
}

/// A task's changes, newest first, at most `limit` (1..=1000) entries read.
pub async fn task_history(scope: &UserScope, task: TaskId, limit: i64) -> Result<Vec<Change>> {
    let entries = log_own(scope, &LogFilter { record: Some(task.0), limit: Some(limit), ..Default::default() }).await?;
    named(scope, changes(&entries.items)).await
}

/// Everything the scope's user did to tasks, newest first, from at most `limit` (1..=1000)
/// entries.
pub async fn user_activity(scope: &UserScope, limit: i64) -> Result<Vec<Change>> {
    let entries = log_own(scope, &LogFilter { limit: Some(limit), ..Default::default() }).await?;
    named(scope, changes(&entries.items)).await
}

/// Counts of the scope's user's changes by type (over their whole readable log).
pub async fn statistics(scope: &UserScope) -> Result<BTreeMap<ChangeType, u64>> {
    let mut out = BTreeMap::new();
    each_change(scope, None, |c| *out.entry(c.change_type).or_insert(0) += 1).await?;
    Ok(out)
}

/// Calls `f` with every change of the scope's user's log since `since` (all of it when `None`),
/// newest first, reading the log a page at a time.
async fn each_change(scope: &UserScope, since: Option<OffsetDateTime>, mut f: impl FnMut(Change)) -> Result<()> {
    let mut before = None;
    loop {
        let page = log_own(scope, &LogFilter { before, since, limit: Some(1000), ..Default::default() }).await?;
        changes(&page.items).into_iter().for_each(&mut f);
        match page.next.as_deref().map(str::parse::<i64>) {
            Some(Ok(next)) => before = Some(next),
            Some(Err(_)) => return Err(Error::Internal("audit log page cursor".into())),
            None => return Ok(()),
        }
    }
}

/// One line of [`recent_user_activity`]: how often the user made one kind of change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityCount {
    pub user_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub change_type: ChangeType,
    pub change_count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_change: OffsetDateTime,
}

/// The scope's user's changes over the last `days` days (1..=365) by change type, most frequent
/// first (then the latest first): the original module's `recent_user_activity`.
pub async fn recent_user_activity(scope: &UserScope, days: u32) -> Result<Vec<ActivityCount>> {
    if !(1..=365).contains(&days) {
        return Err(Error::validation("days", "must be between 1 and 365"));
    }
    let since = OffsetDateTime::now_utc() - time::Duration::days(days.into());
    let mut counts: BTreeMap<ChangeType, (u64, OffsetDateTime)> = BTreeMap::new();
    each_change(scope, Some(since), |c| {
        let e = counts.entry(c.change_type).or_insert((0, c.at));
        e.0 += 1;
        e.1 = e.1.max(c.at);
    })
    .await?;
    let me = scope.user_id().0;
    let user =
        scope.query_found("user", "select email, first_name, last_name from users where id = $1", &[&me]).await?;
    let mut out: Vec<ActivityCount> = counts
        .into_iter()
        .map(|(change_type, (change_count, last_change))| ActivityCount {
            user_id: me,
            email: user.get("email"),
            first_name: user.get("first_name"),
            last_name: user.get("last_name"),
            change_type,
            change_count,
            last_change,
        })
        .collect();
    out.sort_by(|a, b| b.change_count.cmp(&a.change_count).then(b.last_change.cmp(&a.last_change)));
    Ok(out)
}

/// One line of [`task_change_summary`]: the changes of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskChangeSummary {
    pub task_id: Uuid,
    /// The task's title now (or in the trash); `None` once purged.
    pub title: Option<String>,
    pub user_id: Uuid,
    pub total_changes: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_change: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_change: OffsetDateTime,
    /// The distinct change types, in the order they first happened.
    pub change_types: Vec<ChangeType>,
}

/// Per task the scope's user changed: how many changes, the first and last, and their types; the
/// most recently changed `limit` (1..=1000) tasks first. The original module's `task_change_summary`.
pub async fn task_change_summary(scope: &UserScope, limit: i64) -> Result<Vec<TaskChangeSummary>> {
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation("limit", "must be between 1 and 1000"));
    }
    let me = scope.user_id().0;
    // Changes arrive newest first: a task's first change seen is its last.
    let mut tasks: Vec<TaskChangeSummary> = Vec::new();
    let mut at: BTreeMap<Uuid, usize> = BTreeMap::new();
    // Per task, (entry id, type) of each change, in the order read.
    let mut kinds: Vec<Vec<(i64, ChangeType)>> = Vec::new();
    each_change(scope, None, |c| {
        let i = *at.entry(c.task_id).or_insert_with(|| {
            tasks.push(TaskChangeSummary {
                task_id: c.task_id,
                title: None,
                user_id: me,
                total_changes: 0,
                first_change: c.at,
                last_change: c.at,
                change_types: Vec::new(),
            });
            kinds.push(Vec::new());
            tasks.len() - 1
        });
        let t = &mut tasks[i];
        t.total_changes += 1;
        t.first_change = c.at;
        kinds[i].push((c.entry_id, c.change_type));
    })
    .await?;
    tasks.truncate(limit as usize);
    for (t, mut k) in tasks.iter_mut().zip(kinds) {
        // Oldest entry first; the changes of one entry keep their order (completion, priority,
        // status, due date, edit: as `changes` lists them).
        k.sort_by_key(|(entry, _)| *entry);
        for (_, kind) in k {
            if !t.change_types.contains(&kind) {
                t.change_types.push(kind);
            }
        }
    }
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.task_id).collect();
    let rows = scope
        .query("select id, title from tasks where id = any($1) union all select id, title from task_trash where id = any($1)", &[&ids])
        .await?;
    let titles: BTreeMap<Uuid, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for t in &mut tasks {
        t.title = titles.get(&t.task_id).cloned();
    }
    Ok(tasks)
}

/// The changes that `entries` (newest first, as the log lists them) record, newest first. A
/// move to the trash (the task's DELETE, its tag links' cascaded DELETEs and the trash INSERT of
/// one transaction) is one `task_deleted`; a return from it one `task_restored`; a purge a
/// `task_deleted` whose new value is `{"purged": true}`. An update yields one change per thing
/// it changed (completion, priority, status, due date, and title or description together). An
/// entry imported from the original module's task_history (table `task_history`, op `IMPORT`)
/// is the change it names, with its old and new values as the original stored them.
pub fn changes(entries: &[Entry]) -> Vec<Change> {
    let trashed: HashSet<i64> =
        entries.iter().filter(|e| e.table == "task_trash" && e.op == "INSERT").map(|e| e.txid).collect();
    let restored: HashSet<i64> = entries
        .iter()
        .filter(|e| e.table == "task_trash" && e.op == "DELETE" && e.new.is_none())
        .map(|e| e.txid)
        .collect();
    let revived: HashSet<i64> =
        entries.iter().filter(|e| e.table == "tasks" && e.op == "INSERT").map(|e| e.txid).collect();
    let mut out = Vec::new();
    for e in entries {
        let Some(task_id) = e.record_id else { continue };
        let change = |change_type, old_value, new_value| Change {
            entry_id: e.id,
            at: e.at,
            task_id,
            change_type,
            old_value,
            new_value,
            actor: e.actor.clone(),
        };
        let moving = trashed.contains(&e.txid) || (restored.contains(&e.txid) && revived.contains(&e.txid));
        match (e.table.as_str(), e.op.as_str()) {
            ("tasks", "INSERT") if restored.contains(&e.txid) => {
                out.push(change(ChangeType::TaskRestored, None, e.new.clone()))
            }
            ("tasks", "INSERT") => out.push(change(ChangeType::TaskCreated, None, e.new.clone())),
            ("tasks", "DELETE") if trashed.contains(&e.txid) => {}
            ("tasks", "DELETE") => out.push(change(ChangeType::TaskDeleted, e.old.clone(), None)),
            ("tasks", "UPDATE") => updates(e, &mut |t, o, n| out.push(change(t, o, n))),
            ("task_trash", "INSERT") => out.push(change(ChangeType::TaskDeleted, e.new.clone(), None)),
            ("task_trash", "DELETE") if revived.contains(&e.txid) => {}
            ("task_trash", "DELETE") => {
                out.push(change(ChangeType::TaskDeleted, e.old.clone(), Some(json!({"purged": true}))))
            }
            ("task_tags", _) if moving => {}
            ("task_tags", "INSERT") => out.push(change(ChangeType::TagAdded, None, tag_of(&e.new))),
            // A history entry imported from the original module: the change it names, as it was.
            ("task_history", "IMPORT") => {
                if let Some(kind) = e.changed.as_deref().and_then(|c| c.first()).and_then(|c| ChangeType::parse(c)) {
                    out.push(change(kind, e.old.clone(), e.new.clone()))
                }
            }
            ("task_tags", "DELETE") => out.push(change(ChangeType::TagRemoved, tag_of(&e.old), None)),
            _ => {}
        }
    }
    out
}

/// The changes of one task UPDATE, by the columns it changed.
fn updates(e: &Entry, push: &mut dyn FnMut(ChangeType, Option<Value>, Option<Value>)) {
    let changed = e.changed.as_deref().unwrap_or_default();
    let has = |c: &str| changed.iter().any(|x| x == c);
    let field = |img: &Option<Value>, c: &str| img.as_ref().map(|v| v[c].clone());
    if has("completed") {
        let done = e.new.as_ref().is_some_and(|v| v["completed"] == true);
        let kind = if done { ChangeType::TaskCompleted } else { ChangeType::TaskUncompleted };
        push(kind, field(&e.old, "completed"), field(&e.new, "completed"));
    }
    for (col, kind) in [
        ("priority", ChangeType::TaskPriorityChanged),
        ("status", ChangeType::TaskStatusChanged),
        ("due_at", ChangeType::TaskDueDateChanged),
    ] {
        if has(col) {
            push(kind, field(&e.old, col), field(&e.new, col));
        }
    }
    let edited: Vec<&str> = ["title", "description"].into_iter().filter(|c| has(c)).collect();
    if !edited.is_empty() {
        let pick = |img: &Option<Value>| {
            img.as_ref().map(|v| Value::Object(edited.iter().map(|c| (c.to_string(), v[*c].clone())).collect()))
        };
        push(ChangeType::TaskUpdated, pick(&e.old), pick(&e.new));
    }
}

fn tag_of(image: &Option<Value>) -> Option<Value> {
    image.as_ref().map(|v| json!({"tag_id": v["tag_id"]}))
}

/// Adds the tag's current name to tag changes (a tag deleted since has none).
async fn named(scope: &UserScope, mut changes: Vec<Change>) -> Result<Vec<Change>> {
    let ids: Vec<Uuid> = changes
        .iter()
        .filter_map(|c| c.new_value.as_ref().or(c.old_value.as_ref()))
        .filter_map(|v| v.get("tag_id").and_then(Value::as_str).and_then(|s| s.parse().ok()))
        .collect();
    if ids.is_empty() {
        return Ok(changes);
    }
    let rows = scope.query("select id, name from tags where id = any($1)", &[&ids]).await?;
    let names: BTreeMap<Uuid, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for c in &mut changes {
        for v in [c.old_value.as_mut(), c.new_value.as_mut()].into_iter().flatten() {
            let id = v.get("tag_id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
            if let (Some(id), Some(obj)) = (id, v.as_object_mut()) {
                obj.insert("name".into(), names.get(&id).map_or(Value::Null, |n| Value::String(n.clone())));
            }
        }
    }
    Ok(changes)
}
