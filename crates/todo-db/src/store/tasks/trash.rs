//! The trash: a deleted task waits in `task_trash`, with the ids of its tags, until it is
//! restored or purged.

use crate::db::Admin;
use crate::error::{Error, Result};
use crate::model::{Task, TaskId, TrashedTask};

use super::{task_from_row, Tasks};
use crate::store::batch::{BatchOp, BatchOutcome};

impl Tasks<'_> {
    /// Moves the task to the trash, with the ids of its tags: it leaves every listing, count and
    /// view, and [`restore`](Self::restore) brings it back.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), task = %id), err)]
    pub async fn delete(&self, id: TaskId) -> Result<()> {
        // The batch's statement, for one id: one statement, one snapshot (the tag ids are read
        // before the delete cascades to them).
        match self.batch(&[id], &BatchOp::Trash).await?.pop().map(|r| r.outcome) {
            Some(BatchOutcome::Updated) => Ok(()),
            _ => Err(Error::NotFound { entity: "task" }),
        }
    }

    /// Brings a task back from the trash, with those of its tags that still exist.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), task = %id), err)]
    pub async fn restore(&self, id: TaskId) -> Result<Task> {
        const SQL: &str = concat!(
            "with back as (delete from task_trash where id = $1 returning *), ",
            "t as (insert into tasks (id, user_id, title, description, priority, status, completed, completed_at, ",
            "due_at, created_at) select id, user_id, title, description, priority, status, completed, completed_at, ",
            "due_at, created_at from back returning *), ",
            "kept as (select g.id, g.name from back b join tags g on g.user_id = b.user_id and g.id = any(b.tag_ids)), ",
            "attached as (insert into task_tags (user_id, task_id, tag_id) select t.user_id, t.id, k.id from t, kept k) ",
            "select ",
            task_fields!("t"),
            "array(select name from kept) from t"
        );
        let row = self.scope.query_found("task in the trash", SQL, &[&id.0]).await.map_err(|e| match e {
            Error::Conflict { field: "task id", .. } => {
                Error::validation("task", "a task with this id exists again: it cannot come back from the trash")
            }
            other => other,
        })?;
        task_from_row(&row)
    }

    /// Removes a task in the trash for good.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), task = %id), err)]
    pub async fn purge(&self, id: TaskId) -> Result<()> {
        self.scope
            .query_found("task in the trash", "delete from task_trash where id = $1 returning id", &[&id.0])
            .await?;
        Ok(())
    }

    /// The trash, most recently deleted first: at most `limit` (1..=500) tasks.
    pub async fn trash(&self, limit: u32) -> Result<Vec<TrashedTask>> {
        if !(1..=500).contains(&limit) {
            return Err(Error::validation("limit", "must be between 1 and 500"));
        }
        const SQL: &str = concat!(
            "select ",
            task_fields!("x"),
            "array(select g.name from tags g where g.user_id = x.user_id and g.id = any(x.tag_ids)), x.deleted_at ",
            "from task_trash x order by x.deleted_at desc, x.id desc limit $1"
        );
        let rows = self.scope.query(SQL, &[&i64::from(limit)]).await?;
        rows.iter().map(|r| Ok(TrashedTask { task: task_from_row(r)?, deleted_at: r.get(12) })).collect()
    }
}

/// Removes, across users, the tasks that have been in the trash longer than `older_than` (with
/// `dry_run`, only counts them); returns how many. Owner work: `todo-db purge-trash`.
pub async fn purge_trash(admin: &Admin, older_than: std::time::Duration, dry_run: bool) -> Result<u64> {
    let secs = older_than.as_secs_f64();
    let sql = if dry_run {
        "select count(*) from task_trash where deleted_at < now() - make_interval(secs => $1)"
    } else {
        "with gone as (delete from task_trash where deleted_at < now() - make_interval(secs => $1) returning 1) \
         select count(*) from gone"
    };
    Ok(admin.query(sql, &[&secs]).await?[0].get::<_, i64>(0) as u64)
}
