//! Tasks of one user. Each operation is one statement (or one pipelined batch) in one
//! transaction: one network round trip.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Stmt, UserScope};
use crate::error::{Error, Result};
use crate::model::{
    Cursor, NewTask, Page, Priority, TagId, TagName, Task, TaskFilter, TaskId, TaskPatch, TaskSort, TaskStatus, UserId,
};

/// The columns every task query returns, in the order [`task_from_row`] reads them; the tag
/// names come along so a task is complete in one round trip. The two-argument form appends a
/// fragment to the tag-name subquery, after its `where` (`union all ...` or `and ...`), for a
/// statement that changes the task's tags itself, since its snapshot does not see its own
/// changes: `tag` and `untag`.
///
/// The names come unsorted and may repeat (`union all`): [`task_from_row`] sorts and dedups them.
/// An ordered aggregate sets up a sort for every task row, and a `union` a hash table: together
/// about a fifth of a 20-task listing's server time, for lists of a few short names. An `ARRAY`
/// subquery rather than `coalesce((select array_agg(..)), '{}')`: no aggregate node to reset for
/// every task row, and no rows is an empty array already (a 20-task listing's server time -4%).
macro_rules! task_columns {
    ($t:literal) => {
        concat!(task_fields!($t), "array(select g.name ", task_tag_rows!($t), ") as tags")
    };
    ($t:literal, $extra:literal) => {
        concat!(task_fields!($t), "array(select g.name ", task_tag_rows!($t), " ", $extra, ") as tags")
    };
}

/// The `from ... where` of a task's tags (rows `tt` of task_tags, `g` of tags), for alias `$t`.
macro_rules! task_tag_rows {
    ($t:literal) => {
        concat!(
            "from task_tags tt join tags g on g.user_id = tt.user_id and g.id = tt.tag_id where tt.user_id = ",
            $t,
            ".user_id and tt.task_id = ",
            $t,
            ".id"
        )
    };
}

/// A task's own columns, without its tags.
macro_rules! task_fields {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".user_id, ",
            $t,
            ".title, ",
            $t,
            ".description, ",
            $t,
            ".priority::text, ",
            $t,
            ".status::text, ",
            $t,
            ".completed, ",
            $t,
            ".completed_at, ",
            $t,
            ".due_at, ",
            $t,
            ".created_at, ",
            $t,
            ".updated_at, "
        )
    };
}

/// The statements task operations send, for benchmarks that replay them (pgbench scripts) and
/// for `EXPLAIN`; each operation documents its parameters.
pub mod sql {
    /// The columns of every task query (table alias `t`), in the order tasks are read.
    pub const COLUMNS: &str = task_columns!("t");
    /// A task's own columns (alias `t`), each followed by `, `, without its tags.
    pub const FIELDS: &str = task_fields!("t");
    /// [`Tasks::create`](super::Tasks::create): `$1` id, `$2` user, `$3` title, `$4` description,
    /// `$5` priority, `$6` due, `$7` status (`done` creates it completed).
    pub const CREATE: &str = concat!(
        "insert into tasks (id, user_id, title, description, priority, due_at, status, completed, completed_at) ",
        "values ($1, $2, $3, $4, $5::text::task_priority, $6, $7::text::task_status, $7 = 'done', ",
        "case when $7 = 'done' then now() end) returning ",
        "id, user_id, title, description, priority::text, status::text, completed, completed_at, due_at, created_at, ",
        "updated_at, ",
        // A new task has no tags yet: no need to look them up.
        "'{}'::text[]"
    );
    /// [`Tasks::tag`](super::Tasks::tag): `$1` user, `$2` task, `$3` the tag names, `$4` an id for each
    /// (used for the names that are new).
    pub const TAG: &str = concat!(
        "with wanted(name, id) as (select w.name, w.id from unnest($3::text[], $4::uuid[]) w(name, id) ",
        "where exists (select 1 from tasks where id = $2)), ",
        "created as (insert into tags (id, user_id, name) select id, $1, name from wanted ",
        "on conflict (user_id, lower(name)) do nothing returning id, name), ",
        "chosen as (select id, name from created union all ",
        "select g.id, g.name from tags g join wanted w on lower(g.name) = lower(w.name) where g.user_id = $1), ",
        "attached as (insert into task_tags (user_id, task_id, tag_id) select $1, $2, id from chosen ",
        "on conflict do nothing) ",
        "select ",
        task_columns!("t", "union all select name from chosen"),
        " from tasks t where t.id = $2"
    );
    /// [`Tasks::update`](super::Tasks::update): `$1` id, `$2` title, `$3` description, `$4`
    /// priority, `$5` whether the due date is set, `$6` due, `$7` completed, `$8` status (each
    /// null to keep). The status decides completion when given, else `$7` does; completing sets
    /// `done`, reopening a done task sets `todo` (the check `tasks_status_matches` holds either way).
    pub const UPDATE: &str = concat!(
        "update tasks set ",
        "title = coalesce($2, title), ",
        "description = coalesce($3, description), ",
        "priority = coalesce($4::text::task_priority, priority), ",
        "due_at = case when $5 then $6 else due_at end, ",
        "completed = coalesce($8::text = 'done', $7, completed), ",
        "completed_at = case when coalesce($8::text = 'done', $7, completed) then coalesce(completed_at, now()) end, ",
        "status = case when $8::text is not null then $8::text::task_status ",
        "when coalesce($7, completed) then 'done' when status = 'done' then 'todo' else status end ",
        "where id = $1 returning ",
        task_columns!("tasks")
    );
}

pub(crate) fn task_from_row(r: &Row) -> Result<Task> {
    Ok(Task {
        id: TaskId(r.get(0)),
        user_id: UserId(r.get(1)),
        title: r.get(2),
        description: r.get(3),
        priority: r.get::<_, &str>(4).parse()?,
        status: r.get::<_, &str>(5).parse()?,
        completed: r.get(6),
        completed_at: r.get(7),
        due_at: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        tags: sorted_tags(r.get(11)),
    })
}

/// Tag names in the order a task lists them: case-insensitively (by their lowercase form, which
/// does not depend on the database's collation), each once.
fn sorted_tags(mut tags: Vec<String>) -> Vec<String> {
    if tags.len() > 1 {
        tags.sort_unstable_by(|a, b| cmp_lowercase(a, b).then_with(|| a.cmp(b)));
        tags.dedup();
    }
    tags
}

/// Compares two names by their lowercase forms without building them (a listing decodes 20
/// tasks' tags on every call).
fn cmp_lowercase(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.chars().flat_map(char::to_lowercase).cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// Builds a listing statement from fixed fragments: only the filters the caller set appear, so
/// PostgreSQL plans each shape on its own (a catch-all `$n is null or ...` statement got a
/// generic plan that read all of a user's tasks and sorted them: 2.5x slower). Values are always
/// bound; `?` in a fragment becomes the next `$n`.
struct ListQuery<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> ListQuery<'a> {
    fn new() -> Self {
        const BASE: &str = concat!("select ", task_columns!("t"), " from tasks t where true");
        // Room for every filter a listing can add, so building it allocates once.
        let mut sql = String::with_capacity(BASE.len() + 512);
        sql.push_str(BASE);
        ListQuery { sql, params: Vec::with_capacity(8) }
    }

    fn push(&mut self, fragment: &str, params: &[&'a (dyn ToSql + Sync)]) {
        use std::fmt::Write;
        let mut rest = fragment;
        let mut used = 0;
        while let Some(i) = rest.find('?') {
            self.sql.push_str(&rest[..i]);
            self.params.push(params[used]);
            used += 1;
            write!(self.sql, "${}", self.params.len()).expect("writing to a String cannot fail");
            rest = &rest[i + 1..];
        }
        self.sql.push_str(rest);
        debug_assert_eq!(used, params.len(), "one parameter per placeholder");
    }
}

/// Per sort order: the keyset condition after a cursor, and the order (each matches an index
/// `(user_id, <key>, id)`).
fn sort_sql(sort: TaskSort) -> (&'static str, &'static str) {
    match sort {
        TaskSort::Created => ("(t.created_at, t.id) < (?::text::timestamptz, ?)", "t.created_at desc, t.id desc"),
        TaskSort::Updated => ("(t.updated_at, t.id) < (?::text::timestamptz, ?)", "t.updated_at desc, t.id desc"),
        TaskSort::Due => (
            "(coalesce(t.due_at, 'infinity'::timestamptz), t.id) > (?::text::timestamptz, ?)",
            "coalesce(t.due_at, 'infinity'::timestamptz), t.id",
        ),
        TaskSort::Priority => ("(t.priority, t.id) < (?::text::task_priority, ?)", "t.priority desc, t.id desc"),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("timestamps from PostgreSQL format as RFC 3339")
}

/// A LIKE pattern matching `search` anywhere.
fn like_pattern(search: &str) -> String {
    format!("%{}%", like_literal(search))
}

/// `text` as a LIKE pattern of itself: `%`, `_` and `\` are literal characters.
pub(crate) fn like_literal(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

pub struct Tasks<'a> {
    pub(crate) scope: &'a UserScope,
}

impl Tasks<'_> {
    fn user(&self) -> Uuid {
        self.scope.user_id().0
    }

    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id()), err)]
    pub async fn create(&self, new: &NewTask) -> Result<Task> {
        const SQL: &str = sql::CREATE;
        let row = self
            .scope
            .query_found(
                "task",
                SQL,
                &[
                    &new.id.0,
                    &self.user(),
                    &new.title.as_str(),
                    &new.description.as_str(),
                    &new.priority.as_str(),
                    &new.due_at,
                    &new.status.as_str(),
                ],
            )
            .await?;
        task_from_row(&row)
    }

    /// Creates all `tasks` in one statement; all or none.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), n = tasks.len()), err)]
    pub async fn create_many(&self, tasks: &[NewTask]) -> Result<u64> {
        const SQL: &str = "with ins as (insert into tasks \
             (id, user_id, title, description, priority, due_at, status, completed, completed_at) \
             select u.id, $2, u.title, u.description, u.priority::task_priority, u.due_at, u.status::task_status, \
                    u.status = 'done', case when u.status = 'done' then now() end \
             from unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]) \
                  as u(id, title, description, priority, due_at, status) returning 1) select count(*) from ins";
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.0).collect();
        let titles: Vec<&str> = tasks.iter().map(|t| t.title.as_str()).collect();
        let descriptions: Vec<&str> = tasks.iter().map(|t| t.description.as_str()).collect();
        let priorities: Vec<&str> = tasks.iter().map(|t| t.priority.as_str()).collect();
        let due: Vec<Option<OffsetDateTime>> = tasks.iter().map(|t| t.due_at).collect();
        let statuses: Vec<&str> = tasks.iter().map(|t| t.status.as_str()).collect();
        let rows = self
            .scope
            .pipeline(&[Stmt::new(SQL, &[&ids, &self.user(), &titles, &descriptions, &priorities, &due, &statuses])])
            .await?;
        Ok(rows[0][0].get::<_, i64>(0) as u64)
    }

    pub async fn get(&self, id: TaskId) -> Result<Task> {
        const SQL: &str = concat!("select ", task_columns!("t"), " from tasks t where t.id = $1");
        task_from_row(&self.scope.query_found("task", SQL, &[&id.0]).await?)
    }

    /// Applies the fields set in `patch`; completing sets `completed_at`, reopening clears it.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), task = %id), err)]
    pub async fn update(&self, id: TaskId, patch: &TaskPatch) -> Result<Task> {
        patch.check()?;
        if patch.is_empty() {
            return self.get(id).await;
        }
        const SQL: &str = sql::UPDATE;
        let row = self
            .scope
            .query_found(
                "task",
                SQL,
                &[
                    &id.0,
                    &patch.title.as_ref().map(|t| t.as_str()),
                    &patch.description.as_ref().map(|d| d.as_str()),
                    &patch.priority.map(Priority::as_str),
                    &patch.due_at.is_some(),
                    &patch.due_at.flatten(),
                    &patch.completed,
                    &patch.status.map(TaskStatus::as_str),
                ],
            )
            .await?;
        task_from_row(&row)
    }

    pub async fn complete(&self, id: TaskId) -> Result<Task> {
        self.update(id, &TaskPatch { completed: Some(true), ..Default::default() }).await
    }

    pub async fn reopen(&self, id: TaskId) -> Result<Task> {
        self.update(id, &TaskPatch { completed: Some(false), ..Default::default() }).await
    }

    /// Completes every open task among `ids` in one statement; returns how many changed.
    pub async fn complete_many(&self, ids: &[TaskId]) -> Result<u64> {
        let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = self
            .scope
            .query(
                "with done as (update tasks set completed = true, completed_at = now(), status = 'done' \
                 where id = any($1) and not completed returning 1) select count(*) from done",
                &[&ids],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    /// One page of tasks matching `filter`, in its sort order.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id()), err)]
    pub async fn list(&self, filter: &TaskFilter) -> Result<Page<Task>> {
        let limit = i64::from(filter.limit.unwrap_or(50));
        if !(1..=500).contains(&limit) {
            return Err(Error::validation("limit", "must be between 1 and 500"));
        }
        if let Some(c) = &filter.after {
            if c.sort != filter.sort {
                return Err(Error::validation("cursor", "belongs to a listing with another sort order"));
            }
        }
        let priority = filter.priority.map(Priority::as_str);
        let status = filter.status.map(TaskStatus::as_str);
        let tag = filter.tag.as_deref();
        let search = filter.search.as_deref().map(like_pattern);
        let fetch = limit + 1;
        let mut q = ListQuery::new();
        if let Some(c) = &filter.completed {
            q.push(" and t.completed = ?", &[c]);
        }
        if let Some(p) = &priority {
            q.push(" and t.priority = ?::text::task_priority", &[p]);
        }
        if let Some(s) = &status {
            q.push(" and t.status = ?::text::task_status", &[s]);
        }
        if let Some(d) = &filter.due_before {
            q.push(" and t.due_at < ?", &[d]);
        }
        if let Some(d) = &filter.due_after {
            q.push(" and t.due_at >= ?", &[d]);
        }
        if let Some(t) = &tag {
            q.push(
                " and exists (select 1 from task_tags tt join tags g on g.user_id = tt.user_id and g.id = tt.tag_id \
                 where tt.user_id = t.user_id and tt.task_id = t.id and lower(g.name) = lower(?))",
                &[t],
            );
        }
        if let Some(s) = &search {
            q.push(" and (t.title ilike ? or t.description ilike ?)", &[s, s]);
        }
        let (after, order) = sort_sql(filter.sort);
        if let Some(c) = &filter.after {
            q.push(" and ", &[]);
            q.push(after, &[&c.key, &c.id]);
        }
        q.push(" order by ", &[]);
        q.push(order, &[]);
        q.push(" limit ?", &[&fetch]);
        let rows = self.scope.query(&q.sql, &q.params).await?;
        let mut items = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|t| cursor_for(filter.sort, t).encode())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Attaches tags by name, creating the ones this user does not have yet; returns the task.
    pub async fn tag(&self, id: TaskId, names: &[TagName]) -> Result<Task> {
        // One statement: create the missing tags, attach, and return the task with its tags (the
        // ones it had, read from the snapshot, and the ones chosen here). Nothing is written when
        // the task is not this user's: `wanted` is empty then, and no row comes back.
        let names: Vec<&str> = names.iter().map(TagName::as_str).collect();
        let new_ids: Vec<Uuid> = names.iter().map(|_| TagId::new().0).collect();
        let row = self.scope.query_found("task", sql::TAG, &[&self.user(), &id.0, &names, &new_ids]).await?;
        task_from_row(&row)
    }

    /// Removes a tag (by name) from a task; the tag itself stays. One statement, like [`Self::tag`].
    pub async fn untag(&self, id: TaskId, name: &TagName) -> Result<Task> {
        const SQL: &str = concat!(
            "with gone as (delete from task_tags tt using tags g ",
            "where tt.task_id = $1 and g.user_id = tt.user_id and g.id = tt.tag_id and lower(g.name) = lower($2) ",
            "returning tt.tag_id) ",
            "select ",
            task_columns!("t", "and tt.tag_id not in (select tag_id from gone)"),
            " from tasks t where t.id = $1"
        );
        task_from_row(&self.scope.query_found("task", SQL, &[&id.0, &name.as_str()]).await?)
    }
}

fn cursor_for(sort: TaskSort, t: &Task) -> Cursor {
    let key = match sort {
        TaskSort::Created => rfc3339(t.created_at),
        TaskSort::Updated => rfc3339(t.updated_at),
        TaskSort::Due => t.due_at.map(rfc3339).unwrap_or_else(|| "infinity".to_string()),
        TaskSort::Priority => t.priority.as_str().to_string(),
    };
    Cursor { sort, key, id: t.id.0 }
}

mod stats;
mod trash;

pub use trash::purge_trash;

#[cfg(test)]
mod tests {
    use super::sorted_tags;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_sort_case_insensitively_by_lowercase_form_and_appear_once() {
        assert_eq!(sorted_tags(names(&["q4", "Work", "Errand", "q4"])), names(&["Errand", "q4", "Work"]));
        assert_eq!(sorted_tags(names(&["Über", "apple", "Éclair"])), names(&["apple", "Éclair", "Über"]));
        // ASCII and not side by side: one order, the lowercase forms' (`É` folds to `é`, after `z`).
        assert_eq!(
            sorted_tags(names(&["Zebra", "étude", "Alpha", "ábaco"])),
            names(&["Alpha", "Zebra", "ábaco", "étude"])
        );
        assert_eq!(sorted_tags(names(&[])), names(&[]));
    }
}
