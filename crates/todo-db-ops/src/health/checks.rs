//! The health checks, one function each; [`ALL`] lists them in report order, with their names.

use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use todo_db::db::PoolStatus;
use todo_db::error::Result;
use todo_db::{schema, Db};

use super::{found, plain, Found, Status, Thresholds};

/// What a check reads: the database, the replica for the lag check, the pool as sampled before
/// the checks took connections of their own, and the thresholds.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub db: &'a Db,
    pub replica: Option<&'a Db>,
    pub pool: PoolStatus,
    pub t: &'a Thresholds,
}

pub(super) type Run = for<'a> fn(Ctx<'a>) -> BoxFuture<'a, Result<Found>>;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check, in report order: its name (the function's) and how to run it.
        pub(super) const ALL: &[(&str, Run)] = &[$((stringify!($name), |c| Box::pin($name(c)))),*];
    };
}

checks!(
    connection,
    server_version,
    pool,
    connections,
    long_queries,
    idle_in_transaction,
    blocked,
    wraparound,
    dead_tuples,
    cache_hit,
    database_size,
    replica_lag,
    migrations,
    rls_posture,
    audit_triggers,
    audit_seal_age,
);

/// The one row of a one-row query, as the admin login.
async fn q1(db: &Db, sql: &'static str) -> Result<Row> {
    db.admin().query(sql, &[]).await.map(|mut r| r.remove(0))
}

async fn connection(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let started = Instant::now();
    let ms = db
        .admin()
        .with_connection(async |conn| {
            let ping = Instant::now();
            conn.simple_query("select 1").await.map_err(|e| db.map_err(e))?;
            Ok(ping.elapsed().as_secs_f64() * 1000.0)
        })
        .await?;
    let s = t.latency.above(ms);
    let msg = format!(
        "reachable; round trip {ms:.1} ms (connection ready in {:.1} ms){}",
        started.elapsed().as_secs_f64() * 1000.0 - ms,
        if s == Status::Ok { "" } else { ": check the network path and server load" }
    );
    found(s, ms, "ms", t.latency.describe_above(), msg)
}

async fn server_version(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, .. } = c;
    let r = q1(db, "select current_setting('server_version_num')::int, current_setting('server_version')").await?;
    let (num, text): (i32, String) = (r.get(0), r.get(1));
    let supported = todo_db::schema::SUPPORTED_MAJORS;
    let (oldest, newest) = (*supported.start(), *supported.end());
    let (s, msg) = match num / 10_000 {
        m if m < oldest => {
            (Status::Critical, format!("PostgreSQL {text}: todo-db needs {oldest} or newer; upgrade the server"))
        }
        m if m > newest => (
            Status::Warning,
            format!("PostgreSQL {text}: newer than todo-db is tested on ({oldest} to {newest}); run its tests there"),
        ),
        _ => (Status::Ok, format!("PostgreSQL {text}")),
    };
    found(s, f64::from(num), "", format!("critical < {oldest}0000, warning > {newest}"), msg)
}

async fn pool(c: Ctx<'_>) -> Result<Found> {
    let Ctx { pool, t, .. } = c;
    let p = pool;
    let s = t.pool_waiting.above(p.waiting as f64);
    let msg = format!(
        "{} open ({} in use, {} idle) of {} steady, {} waiting{}",
        p.open,
        p.open - p.idle.min(p.open),
        p.idle,
        p.max_size,
        p.waiting,
        if s == Status::Ok { "" } else { ": raise TODO_DB_POOL_SIZE / TODO_DB_POOL_OVERFLOW or find slow operations" }
    );
    found(s, p.waiting as f64, "waiting", t.pool_waiting.describe_above(), msg)
}

async fn connections(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(db, "select count(*)::float8, current_setting('max_connections')::float8 from pg_stat_activity").await?;
    let (used, max): (f64, f64) = (r.get(0), r.get(1));
    let ratio = used / max;
    let s = t.connections.above(ratio);
    let msg = format!(
        "{used} of max_connections {max} in use{}",
        if s == Status::Ok { "" } else { ": use the pooled endpoint, lower pool sizes, or raise max_connections" }
    );
    found(s, ratio, "ratio", t.connections.describe_above(), msg)
}

async fn long_queries(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(
        db,
        "select coalesce(extract(epoch from max(now() - query_start)), 0)::float8, \
                (array_agg(pid order by query_start))[1], count(*) \
         from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() \
         and datname = current_database() \
         and backend_type = 'client backend' and query not ilike 'start_replication%'",
    )
    .await?;
    let (secs, pid): (f64, Option<i32>) = (r.get(0), r.get(1));
    let s = t.long_queries.above(secs);
    let msg = match (s, pid) {
        (Status::Ok, _) | (_, None) => format!("longest running statement {secs:.1}s"),
        (_, Some(pid)) => format!(
            "statement of pid {pid} running for {secs:.0}s: inspect it in pg_stat_activity; \
             pg_cancel_backend({pid}) stops it"
        ),
    };
    found(s, secs, "s", t.long_queries.describe_above(), msg)
}

async fn idle_in_transaction(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(
        db,
        "select coalesce(extract(epoch from max(now() - state_change)), 0)::float8, \
                (array_agg(pid order by state_change))[1] \
         from pg_stat_activity where state in ('idle in transaction', 'idle in transaction (aborted)') \
         and datname = current_database()",
    )
    .await?;
    let (secs, pid): (f64, Option<i32>) = (r.get(0), r.get(1));
    let s = t.idle_in_transaction.above(secs);
    let msg = match (s, pid) {
        (Status::Ok, _) | (_, None) => format!("longest idle in transaction {secs:.1}s"),
        (_, Some(pid)) => format!(
            "pid {pid} idle in transaction for {secs:.0}s, holding locks and blocking vacuum: \
             fix the client; pg_terminate_backend({pid}) ends it"
        ),
    };
    found(s, secs, "s", t.idle_in_transaction.describe_above(), msg)
}

async fn blocked(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let rows = db
        .admin()
        .query(
            "select pid, pg_blocking_pids(pid)::text, extract(epoch from now() - query_start)::float8 \
             from pg_stat_activity where datname = current_database() \
             and cardinality(pg_blocking_pids(pid)) > 0 order by query_start",
            &[],
        )
        .await?;
    let n = rows.len() as f64;
    let s = t.blocked.above(n);
    let msg = match rows.first() {
        None => "no session is waiting on a lock".to_string(),
        Some(r) => {
            let (pid, by, secs): (i32, String, f64) = (r.get(0), r.get(1), r.get(2));
            format!("{n} blocked; pid {pid} waits {secs:.0}s on pid(s) {by}: find what those hold open")
        }
    };
    found(s, n, "sessions", t.blocked.describe_above(), msg)
}

async fn wraparound(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(db, "select age(datfrozenxid)::float8 from pg_database where datname = current_database()").await?;
    let age: f64 = r.get(0);
    let s = t.wraparound.above(age);
    let msg = format!(
        "transaction ID age {age:.0}{}",
        if s == Status::Ok { "" } else { ": make sure autovacuum runs; VACUUM FREEZE the oldest tables" }
    );
    found(s, age, "xids", t.wraparound.describe_above(), msg)
}

async fn dead_tuples(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let rows = db
        .admin()
        .query(
            "select schemaname || '.' || relname, n_dead_tup::float8, n_live_tup::float8, \
                    coalesce(greatest(last_autovacuum, last_vacuum)::text, 'never') \
             from pg_stat_user_tables where schemaname in ('public', 'audit') \
             order by n_dead_tup::float8 / greatest(n_live_tup + n_dead_tup, 1) desc",
            &[],
        )
        .await?;
    // A table only counts once it has enough rows for the ratio to mean something.
    let worst = rows.iter().find(|r| r.get::<_, f64>(1) + r.get::<_, f64>(2) >= 1000.0);
    match worst {
        None => found(Status::Ok, 0.0, "ratio", t.dead_tuples.describe_above(), "no table has many dead rows".into()),
        Some(r) => {
            let (table, dead, live, vac): (String, f64, f64, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let ratio = dead / (dead + live);
            let s = t.dead_tuples.above(ratio);
            let msg = format!(
                "{table}: {dead:.0} dead of {:.0} rows ({:.0}%), last vacuum {vac}{}",
                dead + live,
                ratio * 100.0,
                if s == Status::Ok { "" } else { ": check autovacuum; VACUUM the table" }
            );
            found(s, ratio, "ratio", t.dead_tuples.describe_above(), msg)
        }
    }
}

async fn cache_hit(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r =
        q1(db, "select blks_hit::float8, blks_read::float8 from pg_stat_database where datname = current_database()")
            .await?;
    let (hit, read): (f64, f64) = (r.get(0), r.get(1));
    if hit + read < 10_000.0 {
        found(Status::Ok, 1.0, "ratio", t.cache_hit.describe_below(), "too few reads yet to judge".into())
    } else {
        let ratio = hit / (hit + read);
        let s = t.cache_hit.below(ratio);
        let msg = format!(
            "{:.1}% of block reads served from shared buffers{}",
            ratio * 100.0,
            if s == Status::Ok {
                ""
            } else {
                ": the working set outgrows shared_buffers (or a scan is missing an index)"
            }
        );
        found(s, ratio, "ratio", t.cache_hit.describe_below(), msg)
    }
}

async fn database_size(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(
        db,
        "select pg_database_size(current_database())::float8, \
                (select c.oid::regclass::text || ' ' || pg_size_pretty(pg_total_relation_size(c.oid)) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname in ('public', 'audit') and c.relkind = 'r' \
                 order by pg_total_relation_size(c.oid) desc limit 1)",
    )
    .await?;
    let (bytes, largest): (f64, Option<String>) = (r.get(0), r.get(1));
    let s = t.database_size.above(bytes);
    let msg = format!(
        "{:.1} MB; largest table {}{}",
        bytes / 1e6,
        largest.unwrap_or_else(|| "none".into()),
        if s == Status::Ok { "" } else { ": prune the audit log (`todo-db audit prune`) or plan for storage" }
    );
    found(s, bytes, "bytes", t.database_size.describe_above(), msg)
}

async fn replica_lag(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, replica, t, .. } = c;
    match replica.or(db.replica()) {
        None => plain(Status::Ok, "no read replica configured (DATABASE_READ_URL)".into()),
        Some(r) => {
            let answer = r
                .admin()
                .query(
                    // Caught up (all received WAL replayed) is no lag, however old the last
                    // write on the primary is.
                    "select pg_is_in_recovery(), \
                     case when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0 \
                     else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0) end::float8",
                    &[],
                )
                .await;
            let row = match answer {
                Ok(row) => row,
                Err(e) => {
                    return plain(
                        Status::Warning,
                        format!(
                            "read replica {} unreachable ({e}); reporting reads fall back to the primary",
                            r.target()
                        ),
                    )
                }
            };
            let (recovering, lag): (bool, f64) = (row[0].get(0), row[0].get(1));
            if !recovering {
                plain(Status::Warning, "DATABASE_READ_URL points at a primary, not a replica".into())
            } else {
                let s = t.replica_lag.above(lag);
                found(s, lag, "s", t.replica_lag.describe_above(), format!("replica replays {lag:.1}s behind"))
            }
        }
    }
}

async fn migrations(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, .. } = c;
    let status = db.admin().with_connection(async |conn| schema::status(conn).await).await?;
    let count = |st| status.iter().filter(|s| s.state == st).count();
    let (pending, modified, unknown) = (
        count(schema::MigrationState::Pending),
        count(schema::MigrationState::Modified),
        count(schema::MigrationState::Unknown),
    );
    let s = if modified + unknown > 0 {
        Status::Critical
    } else if pending > 0 {
        Status::Warning
    } else {
        Status::Ok
    };
    let msg = match s {
        Status::Ok => format!("all {} migrations applied", status.len()),
        Status::Warning => format!("{pending} pending: run `todo-db migrate --apply`"),
        _ => format!("{modified} modified, {unknown} unknown: see `todo-db migrate`"),
    };
    found(
        s,
        (pending + modified + unknown) as f64,
        "migrations",
        "warning: pending; critical: modified or unknown".into(),
        msg,
    )
}

async fn rls_posture(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, .. } = c;
    let findings = todo_db::security::posture::check(db).await?;
    let failed: Vec<_> = findings.iter().filter(|f| !f.ok).collect();
    let s = if failed.is_empty() { Status::Ok } else { Status::Critical };
    let msg = match failed.first() {
        None => format!("{} posture checks pass", findings.len()),
        Some(f) => format!(
            "{} failing, first: {} {}: {} (`todo-db security check`)",
            failed.len(),
            f.object,
            f.check,
            f.detail
        ),
    };
    found(s, failed.len() as f64, "findings", "critical >= 1".into(), msg)
}

async fn audit_triggers(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, .. } = c;
    let r = db
        .admin()
        .query(
            "select t from unnest(array['users', 'tasks', 'task_trash', 'tags', 'task_tags', 'user_preferences']) t \
             where not exists (select 1 from pg_trigger g where g.tgrelid = t::regclass \
                               and g.tgname = t || '_audit' and g.tgenabled <> 'D') order by 1",
            &[],
        )
        .await?;
    let missing: Vec<String> = r.iter().map(|r| r.get(0)).collect();
    let s = if missing.is_empty() { Status::Ok } else { Status::Critical };
    let msg = if missing.is_empty() {
        "audit capture is attached and enabled on users, tasks, task_trash, tags, task_tags, user_preferences".into()
    } else {
        format!(
            "changes to {} are NOT audited: re-create with `select audit.attach('<table>')` or run `todo-db verify`",
            missing.join(", ")
        )
    };
    found(s, missing.len() as f64, "tables", "critical >= 1".into(), msg)
}

async fn audit_seal_age(c: Ctx<'_>) -> Result<Found> {
    let Ctx { db, t, .. } = c;
    let r = q1(
        db,
        "select count(*)::float8, coalesce(extract(epoch from now() - min(at)), 0)::float8 from audit.log \
         where id > coalesce((select max(upto_id) from audit.seal), 0)",
    )
    .await?;
    let (unsealed, age): (f64, f64) = (r.get(0), r.get(1));
    let s = t.audit_seal_age.above(age);
    let msg = format!(
        "{unsealed:.0} unsealed entries, oldest {:.1} h{}",
        age / 3600.0,
        if s == Status::Ok { "" } else { ": run `todo-db audit seal`, or `todo-db serve --seal-every 1h`" }
    );
    found(s, age, "s", t.audit_seal_age.describe_above(), msg)
}
