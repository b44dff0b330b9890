//! The import's SQL, run on the source: what each source row must satisfy to be imported, and
//! the select of each target table's rows in the target's column layout. The selects produce
//! binary COPY the target reads as it is: uuid, text, bool and jsonb alike on both sides, a
//! label for an enum, and a naive UTC `timestamp` the same microseconds as a `timestamptz`
//! (the source transaction runs in UTC).

use std::collections::BTreeMap;

use tokio_postgres::Transaction;

use super::{ImportPlan, Problem};
use todo_db::error::{Error, Result};

/// The target tables in load order, each with the columns its select produces.
pub const TARGETS: [&str; 7] = ["users", "tags", "tasks", "task_trash", "task_tags", "user_preferences", "audit.log"];

pub fn columns(table: &str) -> &'static str {
    match table {
        "users" => {
            "id, email, display_name, first_name, last_name, bio, avatar_url, email_verified, password_hash, \
             is_active, created_at, updated_at, last_login_at"
        }
        "tags" => "id, user_id, name, color, created_at",
        "tasks" => {
            "id, user_id, title, description, priority, status, completed, completed_at, due_at, created_at, updated_at"
        }
        "task_trash" => {
            "id, user_id, title, description, priority, status, completed, completed_at, due_at, created_at, \
             updated_at, tag_ids, deleted_at"
        }
        "task_tags" => "user_id, task_id, tag_id",
        "user_preferences" => {
            "user_id, theme, language, email_notifications, push_notifications, task_reminders, task_assignments, \
             task_completions, weekly_summary, profile_visibility, show_email, show_activity, show_tasks, \
             created_at, updated_at"
        }
        _ => "at, table_name, record_id, user_id, op, old, new, changed, actor, reason",
    }
}

/// The source tables read, with the columns each must have; users and tasks are required.
const SOURCE: [(&str, &[&str]); 5] = [
    (
        "users",
        &[
            "id",
            "email",
            "first_name",
            "last_name",
            "display_name",
            "bio",
            "avatar_url",
            "is_active",
            "email_verified",
            "password_hash",
            "last_login_at",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "tasks",
        &[
            "id",
            "user_id",
            "title",
            "description",
            "completed",
            "priority",
            "status",
            "due_date",
            "completed_at",
            "deleted",
            "deleted_at",
            "created_at",
            "updated_at",
        ],
    ),
    ("task_tags", &["id", "task_id", "tag", "created_at"]),
    ("task_history", &["id", "task_id", "user_id", "change_type", "old_value", "new_value", "created_at"]),
    (
        "user_preferences",
        &["id", "user_id", "theme", "language", "notifications", "privacy", "created_at", "updated_at"],
    ),
];

/// What the original holds that the import leaves behind, and why.
const NOT_CARRIED: [&str; 4] = [
    "password_reset_tokens and email_verification_tokens: short-lived; users ask for a new one",
    "daily_analytics and analytics_cache: derived data; todo-db's views compute it",
    "security_audit_log: another system's security events; todo-db records its own from the first login",
    "users.avatar_thumbnail_url: todo-db keeps one avatar URL",
];

/// The change types of the original's task_history (todo-db's, less task_restored).
const CHANGE_TYPES: &str = "'task_created', 'task_updated', 'task_deleted', 'task_restored', 'task_completed', \
     'task_uncompleted', 'task_priority_changed', 'task_status_changed', 'task_due_date_changed', 'tag_added', \
     'tag_removed'";

/// Each problem a source row may have: (reason, a condition on the row that holds when it has it).
type Problems = Vec<(&'static str, String)>;

fn user_problems() -> Problems {
    vec![
        (
            "email is not an address (name@domain, at most 254 bytes)",
            "u.email is null or not (u.email ~ '^[^@[:space:]]+@[^@[:space:]]+$' and octet_length(u.email) <= 254)"
                .into(),
        ),
        (
            "email is an older account's, ignoring case",
            "u.id in (select d.id from (select o.id, row_number() over (partition by lower(o.email) \
               order by coalesce(o.created_at, '-infinity'), o.id) as n from users o) d where d.n > 1)"
                .into(),
        ),
        (
            "avatar_url is not an http(s) URL of at most 500 bytes",
            "coalesce(u.avatar_url, '') <> '' \
             and not (u.avatar_url ~ '^https?://[^[:space:]]+$' and octet_length(u.avatar_url) <= 500)"
                .into(),
        ),
        (
            "a name is longer than 100 characters or the bio than 500",
            "char_length(u.first_name) > 100 or char_length(u.last_name) > 100 \
             or char_length(coalesce(u.display_name, '')) > 100 or char_length(coalesce(u.bio, '')) > 500"
                .into(),
        ),
    ]
}

fn task_problems() -> Problems {
    vec![
        ("its user cannot be imported", user_not_ok("t.user_id")),
        ("title is empty", "btrim(coalesce(t.title, '')) = ''".into()),
        ("title is longer than 255 characters", "char_length(btrim(t.title)) > 255".into()),
        ("description is longer than 10000 characters", "char_length(coalesce(t.description, '')) > 10000".into()),
        (
            "priority is not low, medium, high or urgent",
            "coalesce(t.priority::text, 'medium') not in ('low', 'medium', 'high', 'urgent')".into(),
        ),
        (
            "status is not todo, in_progress, review, done or blocked",
            "coalesce(t.status::text, 'todo') not in ('todo', 'in_progress', 'review', 'done', 'blocked')".into(),
        ),
    ]
}

/// The condition "the user whose id is `column` cannot be imported". Conditions across rows are
/// uncorrelated `IN` subqueries: PostgreSQL evaluates each once, into a hash table, rather than
/// once per row.
fn user_not_ok(column: &str) -> String {
    format!("{column} is null or {column} not in (select u.id from users u where {})", ok(&user_problems()))
}

/// The condition "the task whose id is `column` cannot be imported".
fn task_not_ok(column: &str) -> String {
    format!("{column} is null or {column} not in (select t.id from tasks t where {})", ok(&task_problems()))
}

fn tag_problems() -> Problems {
    vec![
        ("its task cannot be imported", task_not_ok("g.task_id")),
        ("tag is empty", "btrim(coalesce(g.tag, '')) = ''".into()),
        ("tag is longer than 50 characters", "char_length(btrim(g.tag)) > 50".into()),
    ]
}

fn history_problems() -> Problems {
    vec![
        ("its task cannot be imported", task_not_ok("h.task_id")),
        ("change_type is not one of the app's", format!("coalesce(h.change_type::text, '') not in ({CHANGE_TYPES})")),
    ]
}

/// A JSON settings column whose value is not an object, or has a setting that is not a boolean.
fn not_booleans(column: &str) -> String {
    format!(
        "case when {column} is null then false when jsonb_typeof({column}::jsonb) <> 'object' then true \
         else exists (select 1 from jsonb_each({column}::jsonb) e where jsonb_typeof(e.value) not in ('boolean', 'null') \
           and e.key not in ('profile_visibility')) end"
    )
}

fn preference_problems() -> Problems {
    vec![
        ("its user cannot be imported", user_not_ok("p.user_id")),
        ("theme is not light, dark or system", "coalesce(p.theme::text, 'system') not in ('light', 'dark', 'system')".into()),
        (
            "language is not a language tag like en or pt-BR",
            "coalesce(p.language, 'en') !~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$'".into(),
        ),
        ("notifications is not an object of true/false settings", not_booleans("p.notifications")),
        ("privacy is not an object of true/false settings", not_booleans("p.privacy")),
        (
            "privacy.profile_visibility is not private, contacts or public",
            "p.privacy is not null and jsonb_typeof(p.privacy::jsonb) = 'object' \
             and coalesce(p.privacy::jsonb ->> 'profile_visibility', 'private') not in ('private', 'contacts', 'public')"
                .into(),
        ),
    ]
}

/// "None of `problems`": a row with none of them is imported. A condition that is null is false.
fn ok(problems: &[(&'static str, String)]) -> String {
    let any: Vec<String> = problems.iter().map(|(_, c)| format!("coalesce(({c}), false)")).collect();
    format!("not ({})", any.join(" or "))
}

/// A task's stored completion, by todo-db's rule: completed, or its status is done.
const DONE: &str = "(coalesce(t.completed, false) or coalesce(t.status::text = 'done', false))";

/// The select list of a task row, up to `updated_at` (tasks and task_trash share it).
fn task_columns() -> String {
    format!(
        "t.id, t.user_id, btrim(t.title), coalesce(t.description, ''), coalesce(t.priority::text, 'medium'), \
         case when {DONE} then 'done' else coalesce(t.status::text, 'todo') end, {DONE}, \
         case when {DONE} then coalesce(t.completed_at, t.updated_at, t.created_at, localtimestamp) end, \
         t.due_date, coalesce(t.created_at, localtimestamp), coalesce(t.updated_at, t.created_at, localtimestamp)"
    )
}

/// The todo-db tag id of a tag text of `user`'s: one per user and lowercase name, stable.
fn tag_id(user: &str) -> String {
    format!("md5({user}::text || '/' || lower(btrim(g.tag)))::uuid")
}

/// A boolean setting of a JSON settings column, `default` when absent.
fn setting(column: &str, key: &str, default: bool) -> String {
    format!(
        "coalesce(case when jsonb_typeof({column}::jsonb) = 'object' and jsonb_typeof({column}::jsonb -> '{key}') = 'boolean' \
         then ({column}::jsonb ->> '{key}')::boolean end, {default})"
    )
}

/// The source as found: which of its optional tables it has.
#[derive(Debug)]
pub struct Source {
    has: BTreeMap<&'static str, bool>,
}

impl Source {
    /// Checks the source's shape: users and tasks must be there, and every table there must have
    /// the columns the import reads.
    pub async fn inspect(tx: &Transaction<'_>, target: &str) -> Result<Source> {
        let rows = tx
            .query(
                "select table_name::text, array_agg(column_name::text) from information_schema.columns \
                 where table_schema = current_schema() group by 1",
                &[],
            )
            .await
            .map_err(|e| Error::from_pg(e, target))?;
        let found: BTreeMap<String, Vec<String>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if let Some(table) = ["users", "tasks"].into_iter().find(|t| !found.contains_key(*t)) {
            return Err(Error::validation(
                "from",
                format!("{target} has no table {table}: it is not a database of the original module"),
            ));
        }
        let mut has = BTreeMap::new();
        for (table, cols) in SOURCE {
            let Some(present) = found.get(table) else {
                has.insert(table, false);
                continue;
            };
            let missing: Vec<&str> = cols.iter().copied().filter(|c| !present.iter().any(|p| p == c)).collect();
            if !missing.is_empty() {
                return Err(Error::validation(
                    "from",
                    format!("{target}: table {table} lacks column(s) {}", missing.join(", ")),
                ));
            }
            has.insert(table, true);
        }
        Ok(Source { has })
    }

    /// An upper bound of the rows an import writes, from the source tables' sizes (for a
    /// progress bar): each tag text may be a tag and a link.
    pub async fn estimate(&self, tx: &Transaction<'_>, target: &str) -> Result<u64> {
        let count = |t: &str, times: u32| match self.has(t) {
            true => format!("{times} * (select count(*) from {t})"),
            false => "0".into(),
        };
        let sql = format!(
            "select {} + {} + {} + {} + {}",
            count("users", 1),
            count("tasks", 1),
            count("task_tags", 2),
            count("task_history", 1),
            count("user_preferences", 1)
        );
        let n: i64 = tx.query_one(&sql, &[]).await.map_err(|e| Error::from_pg(e, target))?.get(0);
        Ok(n as u64)
    }

    fn has(&self, table: &str) -> bool {
        self.has.get(table).copied().unwrap_or(false)
    }

    /// The source select of target `table`'s rows; `None` when its source table is absent.
    pub fn select(&self, table: &str) -> Option<String> {
        let tags = self.has("task_tags");
        Some(match table {
            "users" => format!(
                "select u.id, u.email, coalesce(u.display_name, ''), u.first_name, u.last_name, coalesce(u.bio, ''), \
                 nullif(u.avatar_url, ''), coalesce(u.email_verified, false), nullif(u.password_hash, ''), \
                 coalesce(u.is_active, true), coalesce(u.created_at, localtimestamp), \
                 coalesce(u.updated_at, u.created_at, localtimestamp), u.last_login_at from users u where {}",
                ok(&user_problems())
            ),
            "tags" if tags => format!(
                "select distinct on (t.user_id, lower(btrim(g.tag))) {}, t.user_id, btrim(g.tag), null::text, \
                 coalesce(g.created_at, localtimestamp) from task_tags g join tasks t on t.id = g.task_id where {} \
                 order by t.user_id, lower(btrim(g.tag)), g.created_at, g.id",
                tag_id("t.user_id"),
                ok(&tag_problems())
            ),
            "tasks" => format!(
                "select {} from tasks t where not coalesce(t.deleted, false) and {}",
                task_columns(),
                ok(&task_problems())
            ),
            "task_trash" => {
                // The trashed tasks' tag ids, grouped once (a lookup per task would scan
                // task_tags, which has no index on task_id, once per task).
                let tagged = match tags {
                    true => format!(
                        "left join (select g.task_id, array_agg(distinct {}) as ids from task_tags g \
                         join tasks o on o.id = g.task_id where {} group by g.task_id) gt on gt.task_id = t.id",
                        tag_id("o.user_id"),
                        ok(&tag_problems())
                    ),
                    false => "left join (select null::uuid as task_id, null::uuid[] as ids) gt on false".into(),
                };
                format!(
                    "select {}, coalesce(gt.ids, '{{}}'::uuid[]), coalesce(t.deleted_at, t.updated_at, localtimestamp) \
                     from tasks t {tagged} where coalesce(t.deleted, false) and {}",
                    task_columns(),
                    ok(&task_problems())
                )
            }
            "task_tags" if tags => format!(
                "select distinct t.user_id, g.task_id, {} from task_tags g join tasks t on t.id = g.task_id \
                 where not coalesce(t.deleted, false) and {}",
                tag_id("t.user_id"),
                ok(&tag_problems())
            ),
            "user_preferences" if self.has("user_preferences") => {
                let n = |k, d| setting("p.notifications", k, d);
                let p = |k, d| setting("p.privacy", k, d);
                format!(
                    "select p.user_id, coalesce(p.theme::text, 'system'), coalesce(p.language, 'en'), {}, {}, {}, {}, {}, {}, \
                     coalesce(case when jsonb_typeof(p.privacy::jsonb) = 'object' then p.privacy::jsonb ->> 'profile_visibility' end, 'private'), \
                     {}, {}, {}, coalesce(p.created_at, localtimestamp), coalesce(p.updated_at, p.created_at, localtimestamp) \
                     from user_preferences p where {}",
                    n("email_notifications", true),
                    n("push_notifications", false),
                    n("task_reminders", true),
                    n("task_assignments", true),
                    n("task_completions", false),
                    n("weekly_summary", true),
                    p("show_email", false),
                    p("show_activity", true),
                    p("show_tasks", false),
                    ok(&preference_problems())
                )
            }
            "audit.log" if self.has("task_history") => format!(
                "select coalesce(h.created_at, localtimestamp), 'task_history', h.task_id, t.user_id, 'IMPORT', \
                 h.old_value::jsonb, h.new_value::jsonb, array[h.change_type::text], \
                 coalesce(h.user_id::text, t.user_id::text), 'imported from task_history ' || h.id::text \
                 from task_history h join tasks t on t.id = h.task_id where {} order by h.created_at, h.id",
                ok(&history_problems())
            ),
            _ => return None,
        })
    }

    /// Counts each target table's rows and lists every source row that cannot be imported.
    /// With `count` false (a real run: its COPYs count the rows), the counts are left empty.
    pub async fn plan(&self, tx: &Transaction<'_>, target: &str, count: bool) -> Result<ImportPlan> {
        let fail = |e| Error::from_pg(e, target);
        let mut rows = BTreeMap::new();
        for table in TARGETS.iter().filter(|_| count) {
            if let Some(select) = self.select(table) {
                let n: i64 =
                    tx.query_one(&format!("select count(*) from ({select}) x"), &[]).await.map_err(fail)?.get(0);
                rows.insert(table.to_string(), n as u64);
            }
        }
        let checks: [(&str, &str, Problems); 5] = [
            ("users", "u", user_problems()),
            ("tasks", "t", task_problems()),
            ("task_tags", "g", tag_problems()),
            ("task_history", "h", history_problems()),
            ("user_preferences", "p", preference_problems()),
        ];
        let mut problems = Vec::new();
        for (table, alias, list) in checks {
            if !self.has(table) && table != "users" && table != "tasks" {
                continue;
            }
            for (reason, condition) in list {
                let sql = format!(
                    "select {alias}.id::text from {table} {alias} where coalesce(({condition}), false) order by 1"
                );
                for r in tx.query(&sql, &[]).await.map_err(fail)? {
                    problems.push(Problem { table: table.to_string(), id: r.get(0), reason: reason.to_string() });
                }
            }
        }
        let missing_tables = SOURCE.iter().map(|s| s.0).filter(|t| !self.has(t)).map(str::to_string).collect();
        Ok(ImportPlan {
            missing_tables,
            rows,
            problems,
            not_carried: NOT_CARRIED.iter().map(|s| s.to_string()).collect(),
        })
    }
}
