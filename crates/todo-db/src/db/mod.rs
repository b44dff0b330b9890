//! The `Db` handle: the pool, and the two ways in: [`Db::user`] (RLS-scoped work for one user)
//! and [`Db::admin`] (owner work across users).

mod client;
mod pool;
mod scope;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{PoolError, QueueMode, Timeouts};
use deadpool::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use client::ClientWrapper;
pub use pool::{is_local_host, Target};
pub use pool::{Conn, Manager};
pub use scope::{Stmt, TxSettings, UserScope, CONFLICT_ATTEMPTS};

use crate::config::{PoolSettings, Settings};
use crate::error::{Error, Result};
use crate::model::UserId;

/// A cheap, cloneable handle to the connection pool.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: pool::Pool,
    target: Target,
    settings: PoolSettings,
    identity: scope::Identity,
    reaper: tokio::task::JoinHandle<()>,
    /// The read replica (`DATABASE_READ_URL`) for reporting reads, if configured.
    replica: Option<Db>,
    /// The app login's pool (`APP_DATABASE_URL`) that user scopes use, if configured.
    app: Option<Db>,
    /// Until when the replica counts as down (reporting reads go to the primary meanwhile).
    replica_down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

/// Pool occupancy, for health checks and metrics.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStatus {
    pub max_size: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

impl Db {
    /// Connects to `DATABASE_URL` (and `APP_DATABASE_URL` for user scopes, when set). Opens one
    /// connection up front so a bad URL or password fails here, clearly. It connects to what it is
    /// given and nothing else: with no `DATABASE_URL` it says so (the embedded local cluster is
    /// the CLI's: `todo-db local start`, then `todo-db local url` and `todo-db local url --app`).
    pub async fn connect(settings: &Settings) -> Result<Db> {
        let Some(url) = &settings.database_url else {
            return Err(Error::Config(
                "DATABASE_URL is not set: the library connects only to the server it is given. For the embedded \
                 local cluster, run `todo-db local start` and set DATABASE_URL to `todo-db local url` (and \
                 APP_DATABASE_URL to `todo-db local url --app`)"
                    .into(),
            ));
        };
        Self::connect_url(url.expose(), settings).await
    }

    /// Connects to an explicit URL with the pool settings of `settings`.
    pub async fn connect_url(url: &str, settings: &Settings) -> Result<Db> {
        let target = Target::parse(url, &settings.pool, settings.allow_insecure)?;
        // The replica is connected lazily, with one short attempt per connection: when it is
        // away, reporting reads fall back to the primary instead of waiting.
        let replica = match &settings.read_url {
            Some(read) => {
                let mut rs = settings.pool.clone();
                rs.connect_retry = Duration::ZERO;
                rs.connect_timeout = rs.connect_timeout.min(Duration::from_secs(3));
                let t = Target::parse(read.expose(), &rs, settings.allow_insecure)?;
                Some(Self::from_target(t, rs, scope::Login::Admin, None, None)?)
            }
            None => None,
        };
        let named = |e: Error| match e {
            Error::Config(m) => Error::Config(format!("APP_DATABASE_URL: {m}")),
            other => other,
        };
        let app = match &settings.app_url {
            Some(app) => {
                let t = Target::parse(app.expose(), &settings.pool, settings.allow_insecure).map_err(named)?;
                Some(Self::from_target(t, settings.pool.clone(), scope::Login::App, None, None)?)
            }
            None => None,
        };
        let db = Self::from_target(target, settings.pool.clone(), scope::Login::Admin, replica, app)?;
        drop(db.acquire().await?);
        if let Some(app) = &db.inner.app {
            app.check_app_login().await.map_err(named)?;
        }
        tracing::debug!(target = %db.inner.target, "connected");
        Ok(db)
    }

    /// Checks the app login before use: a login that can bypass RLS (superuser or BYPASSRLS)
    /// would make every user scope see every user's rows, so it is refused.
    async fn check_app_login(&self) -> Result<()> {
        let conn = self.acquire().await?;
        // An unnamed statement, so that this works through a transaction-mode pooler too.
        let rows = conn
            .query_typed(
                "select r.rolname::text, r.rolsuper or r.rolbypassrls, \
                        exists (select 1 from pg_roles a where a.rolname = 'todo_app' and pg_has_role(r.oid, a.oid, 'usage')) \
                 from pg_roles r where r.rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let Some(row) = rows.first() else {
            return Err(Error::Config("the login's role is not in pg_roles".into()));
        };
        let (login, bypasses, member): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if bypasses {
            return Err(Error::Config(format!(
                "APP_DATABASE_URL logs in as {login:?}, which bypasses row-level security (superuser or BYPASSRLS): \
                 user scopes would see every user's rows; use a login that is only a member of todo_app"
            )));
        }
        if !member {
            return Err(Error::Config(format!(
                "APP_DATABASE_URL logs in as {login:?}, which is not a member of todo_app (run `todo-db init`, then \
                 `grant todo_app to {login}`)"
            )));
        }
        Ok(())
    }

    fn from_target(
        target: Target,
        mut settings: PoolSettings,
        login: scope::Login,
        replica: Option<Db>,
        app: Option<Db>,
    ) -> Result<Db> {
        settings.statements = settings.statements.resolve(&target.host);
        let manager = pool::Manager { target: target.clone(), settings: settings.clone() };
        let pool = pool::Pool::builder(manager)
            .max_size(settings.max_size())
            .timeouts(Timeouts {
                // Waiting for a free connection: the caller gets Error::Busy after this.
                wait: Some(settings.acquire_timeout),
                // Opening one includes retries of transient failures (Neon waking up).
                create: Some(settings.connect_retry + settings.connect_timeout),
                // A ping of an idle connection must not hang the caller.
                recycle: Some(settings.connect_timeout),
            })
            // The most recently returned connection first: a few connections carry the load and
            // stay hot (their server process, plan and catalog caches in the CPU's caches), and the
            // rest go idle and are closed by the reaper. First-in-first-out rotated every request
            // through all the pool's server processes: the workload mix at 8 clients on a pool
            // that had grown to 32 ran 25% slower than on one of 8 (BENCHMARKS.md, section 1).
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(format!("pool: {e}")))?;
        let reaper = tokio::spawn(reap_overflow(pool.clone(), settings.clone()));
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                target,
                identity: scope::Identity::new(&settings, login),
                settings,
                reaper,
                replica,
                app,
                replica_down_until: Default::default(),
            }),
        })
    }

    fn identity(&self) -> &scope::Identity {
        &self.inner.identity
    }

    /// The identity statement this handle's user scopes send before an operation's statements
    /// (no request context; `$1` is the user id): for benchmarks that replay what todo-db sends,
    /// and for `EXPLAIN`.
    pub fn scope_identity_sql(&self) -> &str {
        self.scoped().identity().sql(false)
    }

    /// Where user scopes run: the app login's pool when one is configured, else this one (with a
    /// switch to `todo_app` in each operation's identity statement).
    fn scoped(&self) -> &Db {
        self.inner.app.as_ref().unwrap_or(self)
    }

    /// The login user scopes run as, when it is not the admin login (`APP_DATABASE_URL`).
    pub fn app_login(&self) -> Option<&str> {
        self.inner.app.as_ref().map(|app| app.inner.target.user.as_str())
    }

    /// Work for one user: every statement runs under RLS as that user, in one transaction.
    pub fn user(&self, id: UserId) -> UserScope {
        UserScope::new(self.clone(), id)
    }

    /// Owner work across users (sign-up, reports over everyone, seeding, maintenance). Logged, so
    /// that cross-user access is visible.
    /// Owner work that only reads and may lag a little: reports over all users, audit queries,
    /// listings. Served by the read replica when one is configured and answering; by the primary
    /// otherwise. A user's own reads go through [`Db::user`] and stay on the primary, so they
    /// always see that user's writes.
    pub fn reporting(&self) -> Admin {
        Admin { db: self.clone(), reporting: true }
    }

    /// The read replica, if `DATABASE_READ_URL` configured one.
    pub fn replica(&self) -> Option<&Db> {
        self.inner.replica.as_ref()
    }

    /// The replica, unless it is absent or recently failed.
    fn replica_for_reads(&self) -> Option<&Db> {
        let replica = self.inner.replica.as_ref()?;
        let down = self.inner.replica_down_until.lock().expect("not poisoned");
        match *down {
            Some(until) if std::time::Instant::now() < until => None,
            _ => Some(replica),
        }
    }

    fn replica_failed(&self, e: &Error) {
        tracing::warn!(error = %e, "read replica unavailable: reporting reads use the primary for 30s");
        *self.inner.replica_down_until.lock().expect("not poisoned") =
            Some(std::time::Instant::now() + Duration::from_secs(30));
    }

    pub fn admin(&self) -> Admin {
        tracing::debug!(target: "todo_db::admin", db = %self.inner.target, "admin access");
        Admin { db: self.clone(), reporting: false }
    }

    /// `host:port/database` of the primary; never the URL.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    pub fn pool_settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    /// Whether statements go unnamed (through a transaction-mode pooler) rather than prepared.
    pub fn unnamed_statements(&self) -> bool {
        self.inner.settings.statements == crate::config::StatementMode::Unnamed
    }

    /// Occupancy of the pool, and of the app login's pool when there is one (added together).
    pub fn pool_status(&self) -> PoolStatus {
        let s = self.inner.pool.status();
        let mut status = PoolStatus { max_size: s.max_size, open: s.size, idle: s.available, waiting: s.waiting };
        if let Some(app) = &self.inner.app {
            let a = app.pool_status();
            status.max_size += a.max_size;
            status.open += a.open;
            status.idle += a.idle;
            status.waiting += a.waiting;
        }
        status
    }

    /// Closes every pooled connection (the app login's and the replica's too); later calls fail.
    pub fn close(&self) {
        self.inner.pool.close();
        for other in [&self.inner.app, &self.inner.replica].into_iter().flatten() {
            other.close();
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Conn> {
        self.inner.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => {
                Error::Busy(self.inner.settings.acquire_timeout)
            }
            PoolError::Timeout(_) => Error::Unavailable {
                target: self.inner.target.to_string(),
                reason: "timed out opening a connection".into(),
                source: None,
            },
            PoolError::Backend(e) => e,
            PoolError::Closed => Error::Unavailable {
                target: self.inner.target.to_string(),
                reason: "the pool is closed".into(),
                source: None,
            },
            other => {
                Error::Unavailable { target: self.inner.target.to_string(), reason: other.to_string(), source: None }
            }
        })
    }

    /// A driver error of this pool classified, with this pool's target (`host:port/database`).
    pub fn map_err(&self, e: tokio_postgres::Error) -> Error {
        Error::from_pg(e, &self.inner.target.to_string())
    }
}

/// Drops `conn` instead of returning it to the pool when `e` means the server ended its session
/// (the driver may not have seen the socket close yet, so the pool's check could hand the dead
/// connection to the next caller).
pub(crate) fn discard_if_ended(conn: Conn, e: &Error) {
    if scope::ends_session(e) {
        drop(deadpool::managed::Object::take(conn));
    }
}

/// Closes overflow connections that have been idle for `overflow_idle`, keeping `size` open, and
/// connections past their lifetime, so a burst does not pin 50 server connections forever.
async fn reap_overflow(pool: pool::Pool, settings: PoolSettings) {
    let every = (settings.overflow_idle / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let mut kept = 0usize;
        let removed = pool.retain(|_, m| {
            let keep =
                m.age() < settings.max_lifetime && (kept < settings.size || m.last_used() < settings.overflow_idle);
            kept += usize::from(keep);
            keep
        });
        if !removed.removed.is_empty() {
            tracing::debug!(closed = removed.removed.len(), "closed idle overflow connections");
        }
    }
}

/// Owner work: runs as the login role (which bypasses RLS), not as the app role.
#[derive(Clone)]
pub struct Admin {
    db: Db,
    /// Reads that may go to the replica.
    reporting: bool,
}

impl Admin {
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// One statement in its own implicit transaction.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        if let Some(replica) = self.reporting.then(|| self.db.replica_for_reads()).flatten() {
            match Self::query_on(replica, sql, params).await {
                Err(e) if e.is_retryable() => self.db.replica_failed(&e),
                other => return other,
            }
        }
        Self::query_on(&self.db, sql, params).await
    }

    async fn query_on(db: &Db, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let conn = db.acquire().await?;
        let out = async {
            if db.unnamed_statements() {
                let typed = scope::typed_params(sql, params)?;
                return conn.query_typed(sql, &typed).await.map_err(|e| db.map_err(e));
            }
            let stmt = conn.prepare_cached(sql).await.map_err(|e| db.map_err(e))?;
            conn.query(&stmt, params).await.map_err(|e| db.map_err(e))
        }
        .await;
        if let Err(e) = &out {
            discard_if_ended(conn, e);
        }
        out
    }

    pub async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Several statements in one transaction, sent in one flight (as [`UserScope::pipeline`], but
    /// as the owner login: no identity, no RLS). All or nothing.
    pub async fn pipeline(&self, stmts: &[Stmt<'_>]) -> Result<Vec<Vec<Row>>> {
        if let Some(replica) = self.reporting.then(|| self.db.replica_for_reads()).flatten() {
            match scope::pipelined(replica, None, stmts).await {
                Err(e) if e.is_retryable() => self.db.replica_failed(&e),
                other => return other,
            }
        }
        scope::pipelined(&self.db, None, stmts).await
    }

    /// Statements separated by `;`, no parameters, in one implicit transaction.
    pub async fn batch(&self, sql: &str) -> Result<()> {
        self.with_connection(async |conn| conn.batch_execute(sql).await.map_err(|e| self.db.map_err(e))).await
    }

    /// Runs `work` on one pooled connection: multi-statement owner work (a transaction, COPY).
    /// When `work` fails because the server ended the session, the connection is dropped instead
    /// of going back to the pool, so the next caller does not get a dead one.
    pub async fn with_connection<T>(&self, work: impl AsyncFnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.db.acquire().await?;
        let out = work(&mut conn).await;
        if let Err(e) = &out {
            discard_if_ended(conn, e);
        }
        out
    }

    /// A pooled connection to hold: the caller owns it, and must not return it to the pool after
    /// an error that ended the session (see [`Admin::with_connection`], which does that).
    pub async fn connection(&self) -> Result<Conn> {
        self.db.acquire().await
    }
}
