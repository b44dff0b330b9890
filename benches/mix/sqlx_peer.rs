//! The mix's operations written the way a careful sqlx user writes them with per-user RLS: a
//! `PgPool`, and for each operation a transaction that sets the identity with
//! `set_config('app.user_id', ..., true)`, runs the operation's statement (the same SQL todo-db
//! sends, prepared and cached per connection as sqlx does by default) and commits; rows decoded
//! with `query_as` into todo-db's own row types. Four round trips on the caller's path (BEGIN,
//! identity, statement, COMMIT) where todo-db pipelines one, and a fifth before the connection can
//! serve again: sqlx's pool pings every connection it gets back (a Sync, in
//! `PoolConnection::return_to_pool`), which no option turns off.
//!
//! The pool does not ping a connection before handing it out (`test_before_acquire(false)`): the
//! default does, one more round trip per operation, which a tuned service turns off (a broken
//! connection then fails its operation, which the caller retries). [`Peer::connect`]'s `ping`
//! keeps the default, to show what it costs.

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{FromRow, Row};
use todo_db::model::{Task, TaskId, UserId};
use todo_db::views::{self, ReportOptions, TaskSummary};
use uuid::Uuid;

/// A task as todo-db returns it, decoded from an sqlx row (the columns of `task_columns!`).
pub struct SqlxTask(pub Task);

impl<'r> FromRow<'r, PgRow> for SqlxTask {
    fn from_row(r: &'r PgRow) -> sqlx::Result<Self> {
        let parse = |i: usize| -> sqlx::Result<String> { r.try_get::<String, _>(i) };
        let decode = |e: todo_db::Error| sqlx::Error::Decode(e.to_string().into());
        let mut tags: Vec<String> = r.try_get(11)?;
        tags.sort_unstable_by_key(|t| t.to_lowercase());
        Ok(SqlxTask(Task {
            id: TaskId(r.try_get(0)?),
            user_id: UserId(r.try_get(1)?),
            title: r.try_get(2)?,
            description: r.try_get(3)?,
            priority: parse(4)?.parse().map_err(decode)?,
            status: parse(5)?.parse().map_err(decode)?,
            completed: r.try_get(6)?,
            completed_at: r.try_get(7)?,
            due_at: r.try_get(8)?,
            created_at: r.try_get(9)?,
            updated_at: r.try_get(10)?,
            tags,
        }))
    }
}

/// A summary row as todo-db returns it, decoded from an sqlx row.
pub struct SqlxSummary(pub TaskSummary);

impl<'r> FromRow<'r, PgRow> for SqlxSummary {
    fn from_row(r: &'r PgRow) -> sqlx::Result<Self> {
        Ok(SqlxSummary(TaskSummary {
            user_id: r.try_get("user_id")?,
            email: r.try_get("email")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            total_tasks: r.try_get("total_tasks")?,
            completed_tasks: r.try_get("completed_tasks")?,
            pending_tasks: r.try_get("pending_tasks")?,
            overdue_tasks: r.try_get("overdue_tasks")?,
            urgent_tasks: r.try_get("urgent_tasks")?,
            high_priority_tasks: r.try_get("high_priority_tasks")?,
            last_task_created: r.try_get("last_task_created")?,
            last_task_completed: r.try_get("last_task_completed")?,
            due_today: r.try_get("due_today")?,
            completion_rate: r.try_get("completion_rate")?,
            last_activity: r.try_get("last_activity")?,
        }))
    }
}

/// The identity for one transaction.
const IDENTITY: &str = "select set_config('app.user_id', $1, true)";
/// The sqlx side: a pool and the statements, built once.
pub struct Peer {
    pool: PgPool,
    list: String,
    summary: String,
    /// The identity and a report's settings (time zone, window), as todo-db sets them for a view
    /// read: `$1` the user, `$2` the time zone, `$3` the window in days.
    report_identity: String,
}

impl Peer {
    /// A pool of `size` connections to `url` (the login user scopes use, so RLS applies); `ping`
    /// keeps sqlx's default of testing each connection before handing it out.
    pub async fn connect(url: &str, size: u32, ping: bool) -> anyhow::Result<Peer> {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(size)
            .test_before_acquire(ping)
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("sqlx could not connect: {e}"))?;
        Ok(Peer {
            pool,
            list: format!(
                "select {} from tasks t where t.completed = false order by t.created_at desc, t.id desc limit 21",
                todo_db::store::tasks::sql::COLUMNS
            ),
            summary: views::statement::<TaskSummary>(&ReportOptions::default())?,
            report_identity: format!("{IDENTITY}, {}", views::settings_columns(2)),
        })
    }

    /// A transaction with `user`'s identity set for it alone.
    async fn begin(&self, user: Uuid) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(IDENTITY).bind(user.to_string()).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// `user`'s open tasks, first page.
    pub async fn list(&self, user: Uuid) -> sqlx::Result<Vec<Task>> {
        let mut tx = self.begin(user).await?;
        let rows: Vec<SqlxTask> = sqlx::query_as(&self.list).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|t| t.0).take(20).collect())
    }

    pub async fn create(&self, user: Uuid, title: &str) -> sqlx::Result<Task> {
        let mut tx = self.begin(user).await?;
        let task: SqlxTask = sqlx::query_as(todo_db::store::tasks::sql::CREATE)
            .bind(Uuid::now_v7())
            .bind(user)
            .bind(title)
            .bind("")
            .bind("medium")
            .bind(None::<time::OffsetDateTime>)
            .bind("todo")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(task.0)
    }

    pub async fn complete(&self, user: Uuid, task: Uuid) -> sqlx::Result<Option<Task>> {
        let mut tx = self.begin(user).await?;
        let done: Option<SqlxTask> = sqlx::query_as(todo_db::store::tasks::sql::UPDATE)
            .bind(task)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(false)
            .bind(None::<time::OffsetDateTime>)
            .bind(Some(true))
            .bind(None::<String>)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.map(|t| t.0))
    }

    pub async fn tag(&self, user: Uuid, task: Uuid, names: &[&str]) -> sqlx::Result<Option<Task>> {
        let mut tx = self.begin(user).await?;
        let ids: Vec<Uuid> = names.iter().map(|_| Uuid::now_v7()).collect();
        let tagged: Option<SqlxTask> = sqlx::query_as(todo_db::store::tasks::sql::TAG)
            .bind(user)
            .bind(task)
            .bind(names)
            .bind(&ids)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(tagged.map(|t| t.0))
    }

    /// `user`'s summary row, with the report's time zone and window set as todo-db sets them.
    pub async fn summary(&self, user: Uuid) -> sqlx::Result<Vec<TaskSummary>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&self.report_identity).bind(user.to_string()).bind("UTC").bind("30").execute(&mut *tx).await?;
        let rows: Vec<SqlxSummary> =
            sqlx::query_as(&self.summary).bind(None::<Uuid>).bind(100i64).bind(0i64).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|s| s.0).collect())
    }

    pub fn close(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.close().await });
    }
}
