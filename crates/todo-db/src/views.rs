//! Typed readers of the reporting views (`migrations/0007_reports.sql`). From a user scope they
//! return the user's own rows (the views are `security_invoker`, so RLS applies); from the admin
//! handle, everyone's, with a user filter and pagination.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, Stmt, TxSettings, UserScope};
use crate::error::{Error, Result};
use crate::model::{Priority, TaskStatus};

/// One reporting view: its name, the columns `verify` expects, and how a row is read.
pub trait View: Sized + Serialize {
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// The view's columns, in order, as the migration defines them.
    const COLUMNS: &'static [&'static str];
    /// The select list the reader uses (casts for types the driver does not read directly).
    const SELECT: &'static str;
    const ORDER: &'static str;
    /// One row of the select list, read by column name ([`COLUMNS`](Self::COLUMNS)).
    fn from_row(r: &Row) -> Result<Self>;
}

/// Options of a report read.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// IANA time zone for calendar days ("today", streaks); default UTC.
    pub time_zone: Option<String>,
    /// Window of `recently_completed_tasks` in days (1..=365, default 30).
    pub recent_days: Option<u32>,
    /// Admin reads: only this user's rows.
    pub user: Option<Uuid>,
    /// 1..=10 000, default 100.
    pub limit: Option<i64>,
    /// Rows to skip (admin pagination).
    pub offset: Option<i64>,
}

/// The task columns every task-listing view starts with (the original module's names: `id`,
/// `due_date`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportTask {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub status: TaskStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_date: Option<OffsetDateTime>,
    pub completed: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The select list of [`ReportTask`]'s columns (a literal, for `concat!`).
macro_rules! task_select {
    () => {
        "id, user_id, title, description, priority::text, status::text, due_date, completed, created_at, updated_at"
    };
}

/// The select list of [`TaskOwner`]'s columns.
macro_rules! owner_select {
    () => {
        "user_email, user_first_name, user_last_name"
    };
}

impl ReportTask {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(ReportTask {
            id: r.get("id"),
            user_id: r.get("user_id"),
            title: r.get("title"),
            description: r.get("description"),
            priority: r.get::<_, &str>("priority").parse()?,
            status: r.get::<_, &str>("status").parse()?,
            due_date: r.get("due_date"),
            completed: r.get("completed"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        })
    }
}

/// The owner of a listed task: `user_email`, `user_first_name`, `user_last_name`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskOwner {
    pub user_email: String,
    pub user_first_name: String,
    pub user_last_name: String,
}

impl TaskOwner {
    fn from_row(r: &Row) -> Self {
        TaskOwner {
            user_email: r.get("user_email"),
            user_first_name: r.get("user_first_name"),
            user_last_name: r.get("user_last_name"),
        }
    }
}

/// A `COLUMNS` list: the task columns ([`ReportTask`]), then `$rest` (a literal, for `concat!`).
macro_rules! task_columns {
    ($($rest:literal),*) => {
        &["id", "user_id", "title", "description", "priority", "status", "due_date", "completed", "created_at",
          "updated_at", $($rest),*]
    };
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskSummary {
    pub user_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub total_tasks: i64,
    pub completed_tasks: i64,
    pub pending_tasks: i64,
    /// Open with a due time before now.
    pub overdue_tasks: i64,
    /// Open urgent tasks.
    pub urgent_tasks: i64,
    /// Open high-priority tasks.
    pub high_priority_tasks: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_task_created: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_task_completed: Option<OffsetDateTime>,
    /// Open with a due time within today (in the report's time zone).
    pub due_today: i64,
    /// completed / total; `None` with no tasks.
    pub completion_rate: Option<f64>,
    /// The latest `updated_at` of the user's tasks.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_activity: Option<OffsetDateTime>,
}

impl View for TaskSummary {
    const NAME: &'static str = "user_task_summary";
    const DESCRIPTION: &'static str = "per user: email, names, total, completed, pending, overdue, open urgent and \
         high, last created and completed, due today, completion rate, last activity";
    const COLUMNS: &'static [&'static str] = &[
        "user_id",
        "email",
        "first_name",
        "last_name",
        "total_tasks",
        "completed_tasks",
        "pending_tasks",
        "overdue_tasks",
        "urgent_tasks",
        "high_priority_tasks",
        "last_task_created",
        "last_task_completed",
        "due_today",
        "completion_rate",
        "last_activity",
    ];
    const SELECT: &'static str = "user_id, email, first_name, last_name, total_tasks, completed_tasks, pending_tasks, \
         overdue_tasks, urgent_tasks, high_priority_tasks, last_task_created, last_task_completed, due_today, \
         completion_rate, last_activity";
    const ORDER: &'static str = "user_id";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(TaskSummary {
            user_id: r.get("user_id"),
            email: r.get("email"),
            first_name: r.get("first_name"),
            last_name: r.get("last_name"),
            total_tasks: r.get("total_tasks"),
            completed_tasks: r.get("completed_tasks"),
            pending_tasks: r.get("pending_tasks"),
            overdue_tasks: r.get("overdue_tasks"),
            urgent_tasks: r.get("urgent_tasks"),
            high_priority_tasks: r.get("high_priority_tasks"),
            last_task_created: r.get("last_task_created"),
            last_task_completed: r.get("last_task_completed"),
            due_today: r.get("due_today"),
            completion_rate: r.get("completion_rate"),
            last_activity: r.get("last_activity"),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PriorityCounts {
    pub user_id: Uuid,
    pub priority: Priority,
    pub total: i64,
    pub completed: i64,
    pub pending: i64,
    pub overdue: i64,
}

impl View for PriorityCounts {
    const NAME: &'static str = "task_priority_counts";
    const DESCRIPTION: &'static str =
        "per user and priority (all four, zero included): total, completed, pending, overdue";
    const COLUMNS: &'static [&'static str] = &["user_id", "priority", "total", "completed", "pending", "overdue"];
    const SELECT: &'static str = "user_id, priority::text, total, completed, pending, overdue";
    const ORDER: &'static str = "user_id, task_priority_counts.priority";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(PriorityCounts {
            user_id: r.get("user_id"),
            priority: r.get::<_, &str>("priority").parse()?,
            total: r.get("total"),
            completed: r.get("completed"),
            pending: r.get("pending"),
            overdue: r.get("overdue"),
        })
    }
}

/// An open task in urgency order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PriorityTask {
    #[serde(flatten)]
    pub task: ReportTask,
    #[serde(flatten)]
    pub owner: TaskOwner,
    /// urgent 1, high 2, medium 3, low 4.
    pub priority_order: i32,
}

impl View for PriorityTask {
    const NAME: &'static str = "tasks_by_priority";
    const DESCRIPTION: &'static str =
        "open tasks in urgency order (priority, then due date, undated last, then newest), with their owner";
    const COLUMNS: &'static [&'static str] =
        task_columns!("user_email", "user_first_name", "user_last_name", "priority_order");
    const SELECT: &'static str = concat!(task_select!(), ", ", owner_select!(), ", priority_order");
    const ORDER: &'static str = "priority_order, due_date nulls last, created_at desc, id";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(PriorityTask {
            task: ReportTask::from_row(r)?,
            owner: TaskOwner::from_row(r),
            priority_order: r.get("priority_order"),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OverdueTask {
    #[serde(flatten)]
    pub task: ReportTask,
    #[serde(flatten)]
    pub owner: TaskOwner,
    /// Whole days since the due time.
    pub days_overdue: i32,
    /// Seconds since the due time.
    pub overdue_seconds: f64,
}

impl View for OverdueTask {
    const NAME: &'static str = "overdue_tasks";
    const DESCRIPTION: &'static str = "open tasks whose due time has passed, most overdue first: days overdue";
    const COLUMNS: &'static [&'static str] =
        task_columns!("user_email", "user_first_name", "user_last_name", "days_overdue", "overdue_by");
    const SELECT: &'static str = concat!(
        task_select!(),
        ", ",
        owner_select!(),
        ", days_overdue, extract(epoch from overdue_by)::float8 as overdue_by"
    );
    const ORDER: &'static str = "due_date, id";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(OverdueTask {
            task: ReportTask::from_row(r)?,
            owner: TaskOwner::from_row(r),
            days_overdue: r.get("days_overdue"),
            overdue_seconds: r.get("overdue_by"),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompletedTask {
    #[serde(flatten)]
    pub task: ReportTask,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    #[serde(flatten)]
    pub owner: TaskOwner,
    /// Whole days from creation to completion.
    pub days_to_complete: i32,
}

impl View for CompletedTask {
    const NAME: &'static str = "recently_completed_tasks";
    const DESCRIPTION: &'static str = "tasks completed in the last N days (default 30), newest first: days to complete";
    const COLUMNS: &'static [&'static str] =
        task_columns!("completed_at", "user_email", "user_first_name", "user_last_name", "days_to_complete");
    const SELECT: &'static str = concat!(task_select!(), ", completed_at, ", owner_select!(), ", days_to_complete");
    const ORDER: &'static str = "completed_at desc, id desc";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(CompletedTask {
            task: ReportTask::from_row(r)?,
            completed_at: r.get("completed_at"),
            owner: TaskOwner::from_row(r),
            days_to_complete: r.get("days_to_complete"),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Productivity {
    pub user_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Distinct calendar days (report time zone) on which the user created a task.
    pub active_days: i64,
    pub total_completed: i64,
    pub completed_last_7_days: i64,
    pub completed_last_30_days: i64,
    /// Mean days from creation to completion, to two decimals.
    pub avg_days_to_complete: Option<f64>,
    /// Completed tasks with a due time, completed by it.
    pub completed_before_due: i64,
    /// Completed tasks with a due time, completed after it.
    pub completed_after_due: i64,
    pub created_last_7_days: i64,
    /// Mean time from creation to completion over completed tasks.
    pub avg_completion_seconds: Option<f64>,
    /// Share of completed tasks with a due time that were completed by it.
    pub on_time_rate: Option<f64>,
    /// Consecutive days with a completion, ending today (or yesterday).
    pub current_streak_days: i64,
}

impl View for Productivity {
    const NAME: &'static str = "user_productivity_metrics";
    const DESCRIPTION: &'static str = "per user: active days, completed (all, 7 and 30 days), average days to \
         complete, completed before and after due, created in 7 days, on-time share, streak";
    const COLUMNS: &'static [&'static str] = &[
        "user_id",
        "email",
        "first_name",
        "last_name",
        "active_days",
        "total_completed",
        "completed_last_7_days",
        "completed_last_30_days",
        "avg_days_to_complete",
        "completed_before_due",
        "completed_after_due",
        "created_last_7_days",
        "avg_completion_seconds",
        "on_time_rate",
        "current_streak_days",
    ];
    const SELECT: &'static str = "user_id, email, first_name, last_name, active_days, total_completed, \
         completed_last_7_days, completed_last_30_days, avg_days_to_complete, completed_before_due, \
         completed_after_due, created_last_7_days, avg_completion_seconds, on_time_rate, current_streak_days";
    const ORDER: &'static str = "user_id";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(Productivity {
            user_id: r.get("user_id"),
            email: r.get("email"),
            first_name: r.get("first_name"),
            last_name: r.get("last_name"),
            active_days: r.get("active_days"),
            total_completed: r.get("total_completed"),
            completed_last_7_days: r.get("completed_last_7_days"),
            completed_last_30_days: r.get("completed_last_30_days"),
            avg_days_to_complete: r.get("avg_days_to_complete"),
            completed_before_due: r.get("completed_before_due"),
            completed_after_due: r.get("completed_after_due"),
            created_last_7_days: r.get("created_last_7_days"),
            avg_completion_seconds: r.get("avg_completion_seconds"),
            on_time_rate: r.get("on_time_rate"),
            current_streak_days: r.get("current_streak_days"),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskWithTags {
    #[serde(flatten)]
    pub task: ReportTask,
    /// Tag names, in case-insensitive order; empty when none.
    pub tags: Vec<String>,
    pub tag_count: i64,
    /// The tags' ids, in the order of `tags`.
    pub tag_ids: Vec<Uuid>,
}

impl View for TaskWithTags {
    const NAME: &'static str = "tasks_with_tags";
    const DESCRIPTION: &'static str = "each task with its tag names, count and ids (tasks without tags included)";
    const COLUMNS: &'static [&'static str] = task_columns!("tags", "tag_count", "tag_ids");
    const SELECT: &'static str = concat!(task_select!(), ", tags, tag_count, tag_ids");
    const ORDER: &'static str = "id";
    fn from_row(r: &Row) -> Result<Self> {
        Ok(TaskWithTags {
            task: ReportTask::from_row(r)?,
            tags: r.get("tags"),
            tag_count: r.get("tag_count"),
            tag_ids: r.get("tag_ids"),
        })
    }
}

/// Every view: name, description, expected columns.
pub const ALL: &[(&str, &str, &[&str])] = &[
    (TaskSummary::NAME, TaskSummary::DESCRIPTION, TaskSummary::COLUMNS),
    (PriorityCounts::NAME, PriorityCounts::DESCRIPTION, PriorityCounts::COLUMNS),
    (PriorityTask::NAME, PriorityTask::DESCRIPTION, PriorityTask::COLUMNS),
    (OverdueTask::NAME, OverdueTask::DESCRIPTION, OverdueTask::COLUMNS),
    (CompletedTask::NAME, CompletedTask::DESCRIPTION, CompletedTask::COLUMNS),
    (Productivity::NAME, Productivity::DESCRIPTION, Productivity::COLUMNS),
    (TaskWithTags::NAME, TaskWithTags::DESCRIPTION, TaskWithTags::COLUMNS),
];

/// The select list that sets a report's time zone (`$tz`) and window (`$tz + 1`) for this
/// transaction; `now() at time zone` makes an unknown zone an error here rather than a silently
/// wrong report. A user's read adds it to the scope's identity statement ([`crate::db::UserScope`]);
/// [`read_all`] sends it as a statement of its own.
///
/// It also turns JIT compilation off for the transaction. The views read through indexes, per
/// user, so the planner's cost estimate for many users passes the JIT thresholds while the work
/// stays small: compiling took 0.2-0.35 s and made every view's read of all users slower or no
/// faster (2 000 users x 100 tasks: the summary 0.29-0.34 s with JIT, 0.11 s without;
/// productivity 0.53-0.58 s, 0.24 s; BENCHMARKS.md, "Reporting views").
pub fn settings_columns(tz: usize) -> String {
    format!(
        "set_config('app.time_zone', ${tz}, true), set_config('app.recent_days', ${}, true), \
         set_config('jit', 'off', true), now() at time zone ${tz}",
        tz + 1
    )
}

struct Prepared {
    sql: String,
    tz: String,
    days: String,
    limit: i64,
    offset: i64,
}

fn prepare<V: View>(o: &ReportOptions) -> Result<Prepared> {
    let limit = o.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Error::validation("limit", "must be between 1 and 10000"));
    }
    let offset = o.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Error::validation("offset", "must not be negative"));
    }
    let days = o.recent_days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(Error::validation("recent_days", "must be between 1 and 365"));
    }
    let tz = o.time_zone.clone().unwrap_or_else(|| "UTC".into());
    if tz.is_empty() || tz.len() > 64 || !tz.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) {
        return Err(Error::validation("time_zone", format!("{tz:?} is not a time zone name like Europe/Paris")));
    }
    let sql = format!(
        "select {} from {} where ($1::uuid is null or user_id = $1) order by {} limit $2 offset $3",
        V::SELECT,
        V::NAME,
        V::ORDER
    );
    Ok(Prepared { sql, tz, days: days.to_string(), limit, offset })
}

/// The view's rows from a pipeline whose last statement read them.
fn finish<V: View>(r: Result<Vec<Vec<Row>>>) -> Result<Vec<V>> {
    let rows = r.map_err(|e| match e {
        Error::Database { code, .. } if code == "22023" => Error::validation("time_zone", "is not a known time zone"),
        other => other,
    })?;
    rows.last().map_or(Ok(Vec::new()), |rows| rows.iter().map(V::from_row).collect())
}

/// The statement [`read`] and [`read_all`] send for view `V` (after the settings), with
/// parameters `$1` user id or null, `$2` limit, `$3` offset: for benchmarks and `EXPLAIN`.
pub fn statement<V: View>(o: &ReportOptions) -> Result<String> {
    Ok(prepare::<V>(o)?.sql)
}

/// The scope's own rows of view `V` (one round trip).
pub async fn read<V: View>(scope: &UserScope, o: &ReportOptions) -> Result<Vec<V>> {
    let p = prepare::<V>(o)?;
    let user: Option<Uuid> = None;
    let query: [&(dyn ToSql + Sync); 3] = [&user, &p.limit, &p.offset];
    // The settings ride on the scope's identity statement: one statement fewer.
    let settings: [&(dyn ToSql + Sync); 2] = [&p.tz, &p.days];
    let settings = TxSettings { columns: settings_columns, params: &settings };
    finish(scope.pipeline_with(&settings, &[Stmt::new(&p.sql, &query)]).await)
}

/// Everyone's rows of view `V` (or one user's, with `o.user`), as the owner login; from the read
/// replica when one is configured (see [`Db::reporting`]).
pub async fn read_all<V: View>(db: &Db, o: &ReportOptions) -> Result<Vec<V>> {
    let p = prepare::<V>(o)?;
    let settings: [&(dyn ToSql + Sync); 2] = [&p.tz, &p.days];
    let query: [&(dyn ToSql + Sync); 3] = [&o.user, &p.limit, &p.offset];
    let sql = format!("select {}", settings_columns(1));
    finish(db.reporting().pipeline(&[Stmt::new(&sql, &settings), Stmt::new(&p.sql, &query)]).await)
}

fn json<V: View>(rows: Vec<V>) -> Result<Vec<serde_json::Value>> {
    rows.into_iter().map(|r| serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))).collect()
}

/// A view by name, as JSON rows (for the CLI).
pub async fn show(db: &Db, name: &str, o: &ReportOptions) -> Result<Vec<serde_json::Value>> {
    match name {
        TaskSummary::NAME => json(read_all::<TaskSummary>(db, o).await?),
        PriorityCounts::NAME => json(read_all::<PriorityCounts>(db, o).await?),
        PriorityTask::NAME => json(read_all::<PriorityTask>(db, o).await?),
        OverdueTask::NAME => json(read_all::<OverdueTask>(db, o).await?),
        CompletedTask::NAME => json(read_all::<CompletedTask>(db, o).await?),
        Productivity::NAME => json(read_all::<Productivity>(db, o).await?),
        TaskWithTags::NAME => json(read_all::<TaskWithTags>(db, o).await?),
        other => {
            let names: Vec<&str> = ALL.iter().map(|v| v.0).collect();
            Err(Error::validation("view", format!("{other:?} is not one of {}", names.join(", "))))
        }
    }
}
