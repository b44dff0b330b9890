//! One operation on a list of a user's tasks, in one statement (one transaction, one round trip),
//! with an outcome for each id: changed, already so, not found, or refused and why. Each id's
//! change is one row's change in that statement: never half-applied.

use serde::Serialize;
use uuid::Uuid;

use super::tasks::Tasks;
use crate::error::{Error, Result};
use crate::model::{Priority, TagId, TagName, TaskId, TaskStatus};

/// What to do to every task of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Complete,
    Reopen,
    /// Move to the trash (as [`Tasks::delete`]).
    Trash,
    /// Bring back from the trash (as [`Tasks::restore`]).
    Restore,
    SetPriority(Priority),
    SetStatus(TaskStatus),
    /// Attach the tag, creating it when the user has none of that name.
    AddTag(TagName),
    RemoveTag(TagName),
}

/// What happened to one id of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchOutcome {
    Updated,
    /// It already was as asked: nothing written.
    Unchanged,
    /// No such task of this user (or not in the trash, for a restore).
    NotFound,
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResult {
    pub id: TaskId,
    #[serde(flatten)]
    pub outcome: BatchOutcome,
}

/// At most this many ids in one batch.
pub const MAX_BATCH: usize = 500;

/// The ids of the batch, numbered (`ids (id, ord)`), as the first `with` clause.
const IDS: &str = "ids as (select u.id, u.ord from unnest($1::uuid[]) with ordinality u(id, ord))";

/// The closing select: `changed (id)` and `present (id)` (the ids the operation could act on) give
/// each id's outcome; `refused (id, reason)` when the operation can refuse.
const OUTCOMES: &str = "select i.id, case when c.id is not null then 'updated' when r.id is not null then 'refused' \
     when p.id is not null then 'unchanged' else 'not_found' end, r.reason \
     from ids i left join changed c on c.id = i.id left join refused r on r.id = i.id \
     left join present p on p.id = i.id order by i.ord";

/// The `refused` clause of an operation that refuses nothing.
macro_rules! no_refusals {
    () => {
        "refused (id, reason) as (select null::uuid, null::text where false)"
    };
}
const NO_REFUSALS: &str = no_refusals!();

impl Tasks<'_> {
    /// Applies `op` to each of `ids` (1 to [`MAX_BATCH`], each once) and reports each outcome, in
    /// the order given.
    #[tracing::instrument(skip_all, fields(user = %self.scope.user_id(), n = ids.len()), err)]
    pub async fn batch(&self, ids: &[TaskId], op: &BatchOp) -> Result<Vec<BatchResult>> {
        if ids.is_empty() || ids.len() > MAX_BATCH {
            return Err(Error::validation("ids", format!("must list 1 to {MAX_BATCH} task ids")));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if let Some(twice) = ids.iter().find(|id| !seen.insert(id.0)) {
            return Err(Error::validation("ids", format!("task {twice} is listed twice")));
        }
        let list: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let user = self.scope.user_id().0;
        let (body, arg): (String, Option<String>) = match op {
            BatchOp::Complete => (
                update(
                    "completed = true, completed_at = coalesce(t.completed_at, now()), status = 'done'",
                    "not t.completed",
                ),
                None,
            ),
            BatchOp::Reopen => (update("completed = false, completed_at = null, status = 'todo'", "t.completed"), None),
            BatchOp::SetPriority(p) => (
                update("priority = $2::text::task_priority", "t.priority <> $2::text::task_priority"),
                Some(p.as_str().to_string()),
            ),
            BatchOp::SetStatus(s) => (
                update(
                    "status = $2::text::task_status, completed = ($2::text = 'done'), \
                     completed_at = case when $2::text = 'done' then coalesce(t.completed_at, now()) end",
                    "t.status <> $2::text::task_status",
                ),
                Some(s.as_str().to_string()),
            ),
            BatchOp::Trash => (TRASH.to_string(), None),
            BatchOp::Restore => (RESTORE.to_string(), None),
            BatchOp::AddTag(name) => (ADD_TAG.to_string(), Some(name.as_str().to_string())),
            BatchOp::RemoveTag(name) => (REMOVE_TAG.to_string(), Some(name.as_str().to_string())),
        };
        let sql = format!("with {IDS}, {body} {OUTCOMES}");
        let tag_id = TagId::new().0;
        let rows = match (&arg, op) {
            (Some(a), BatchOp::AddTag(_)) => self.scope.query(&sql, &[&list, a, &user, &tag_id]).await?,
            (Some(a), _) => self.scope.query(&sql, &[&list, a]).await?,
            (None, _) => self.scope.query(&sql, &[&list]).await?,
        };
        rows.iter()
            .map(|r| {
                let outcome = match r.get::<_, &str>(1) {
                    "updated" => BatchOutcome::Updated,
                    "unchanged" => BatchOutcome::Unchanged,
                    "refused" => BatchOutcome::Refused { reason: r.get(2) },
                    "not_found" => BatchOutcome::NotFound,
                    other => return Err(Error::Internal(format!("batch outcome {other:?}"))),
                };
                Ok(BatchResult { id: TaskId(r.get(0)), outcome })
            })
            .collect()
    }
}

/// An update of the batch's live tasks that sets `set` where `needed` holds.
fn update(set: &str, needed: &str) -> String {
    format!(
        "present as (select t.id from tasks t join ids on ids.id = t.id), \
         changed as (update tasks t set {set} from ids where t.id = ids.id and {needed} returning t.id), \
         {NO_REFUSALS}"
    )
}

/// Each live task of the batch into the trash, with its tag ids (as `Tasks::delete`).
const TRASH: &str = concat!(
    "present as (select t.id from tasks t join ids on ids.id = t.id), \
     gone as (delete from tasks t using ids where t.id = ids.id returning t.*), \
     changed as (insert into task_trash (id, user_id, title, description, priority, status, completed, completed_at, \
                                         due_at, created_at, updated_at, tag_ids) \
         select g.id, g.user_id, g.title, g.description, g.priority, g.status, g.completed, g.completed_at, g.due_at, \
                g.created_at, g.updated_at, \
                array(select tt.tag_id from task_tags tt where tt.user_id = g.user_id and tt.task_id = g.id) \
         from gone g returning id), ",
    no_refusals!()
);

/// Each trashed task of the batch back, with its tags that still exist (as `Tasks::restore`);
/// refused when a live task has taken its id.
const RESTORE: &str = "present as (select x.id from task_trash x join ids on ids.id = x.id), \
     refused (id, reason) as (select p.id, 'a live task has this id: it cannot come back from the trash' \
                              from present p join tasks t on t.id = p.id), \
     back as (delete from task_trash x using ids where x.id = ids.id \
              and not exists (select 1 from tasks t where t.id = x.id) returning x.*), \
     changed as (insert into tasks (id, user_id, title, description, priority, status, completed, completed_at, \
                                    due_at, created_at) \
         select id, user_id, title, description, priority, status, completed, completed_at, due_at, created_at \
         from back returning id), \
     attached as (insert into task_tags (user_id, task_id, tag_id) \
         select b.user_id, b.id, g.id from back b join tags g on g.user_id = b.user_id and g.id = any(b.tag_ids))";

/// The tag `$2` (created for user `$3` with id `$4` when missing) on each live task of the batch.
const ADD_TAG: &str = concat!(
    "present as (select t.id from tasks t join ids on ids.id = t.id), \
     created as (insert into tags (id, user_id, name) select $4, $3, $2 where exists (select 1 from present) \
                 on conflict (user_id, lower(name)) do nothing returning id), \
     chosen as (select id from created union all select g.id from tags g where g.user_id = $3 and lower(g.name) = lower($2)), \
     changed as (insert into task_tags (user_id, task_id, tag_id) select $3, p.id, c.id from present p, chosen c \
                 on conflict do nothing returning task_id as id), ",
    no_refusals!()
);

/// The tag named `$2` off each task of the batch that carries it.
const REMOVE_TAG: &str = concat!(
    "present as (select t.id from tasks t join ids on ids.id = t.id), \
     changed as (delete from task_tags tt using tags g, ids \
                 where tt.task_id = ids.id and g.user_id = tt.user_id and g.id = tt.tag_id and lower(g.name) = lower($2) \
                 returning tt.task_id as id), ",
    no_refusals!()
);
