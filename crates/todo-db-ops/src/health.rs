//! Health checks: what breaks a todo service, each returning ok / warning / critical with a
//! value, its threshold and what to do. Checks run concurrently, each under its own time limit,
//! so one slow check cannot hang the report.

use std::time::{Duration, Instant};

use serde::Serialize;

use todo_db::db::{Db, PoolStatus};
use todo_db::error::{Error, Result};
use todo_db::schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    /// The check could not run (timed out, or an error).
    Unknown,
}

impl Status {
    /// Monitoring-plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// Severity for "the worst" of a report: critical > warning > unknown > ok.
    fn rank(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// The measured value (seconds, a ratio, a count, bytes), when there is one.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The thresholds applied, e.g. "warning >= 30, critical >= 300".
    pub threshold: String,
    /// What was found and, unless ok, what to do.
    pub message: String,
    pub millis: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub target: String,
    pub checks: Vec<Check>,
}

/// A warning and a critical level (a check compares above or below them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limit {
    pub warning: f64,
    pub critical: f64,
}

impl Limit {
    const fn new(warning: f64, critical: f64) -> Self {
        Limit { warning, critical }
    }

    fn above(&self, v: f64) -> Status {
        if v >= self.critical {
            Status::Critical
        } else if v >= self.warning {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    fn below(&self, v: f64) -> Status {
        if v <= self.critical {
            Status::Critical
        } else if v <= self.warning {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    fn describe_above(&self) -> String {
        format!("warning >= {}, critical >= {}", self.warning, self.critical)
    }

    fn describe_below(&self) -> String {
        format!("warning <= {}, critical <= {}", self.warning, self.critical)
    }
}

/// Thresholds of every check. Defaults suit a small todo service; each can be set from the
/// environment as `TODO_DB_HEALTH_<NAME>=warning,critical` (e.g. `TODO_DB_HEALTH_LONG_QUERIES=30,300`).
#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    /// Round trip of `select 1`, ms.
    pub latency: Limit,
    /// Callers waiting for a pooled connection.
    pub pool_waiting: Limit,
    /// Server connections in use / max_connections.
    pub connections: Limit,
    /// Longest running statement, seconds.
    pub long_queries: Limit,
    /// Longest idle-in-transaction session, seconds.
    pub idle_in_transaction: Limit,
    /// Sessions waiting on a lock held by another.
    pub blocked: Limit,
    /// age(datfrozenxid), transactions.
    pub wraparound: Limit,
    /// Dead / (live + dead) tuples of the worst todo-db table.
    pub dead_tuples: Limit,
    /// Buffer cache hit ratio (lower is worse).
    pub cache_hit: Limit,
    /// Database size, bytes.
    pub database_size: Limit,
    /// Replica replay lag, seconds.
    pub replica_lag: Limit,
    /// Age of the oldest unsealed audit entry, seconds.
    pub audit_seal_age: Limit,
    /// Time limit of each check.
    pub check_timeout: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            latency: Limit::new(50.0, 500.0),
            pool_waiting: Limit::new(1.0, 10.0),
            connections: Limit::new(0.8, 0.95),
            long_queries: Limit::new(30.0, 300.0),
            idle_in_transaction: Limit::new(60.0, 600.0),
            blocked: Limit::new(1.0, 5.0),
            wraparound: Limit::new(200_000_000.0, 1_000_000_000.0),
            dead_tuples: Limit::new(0.2, 0.5),
            cache_hit: Limit::new(0.9, 0.8),
            database_size: Limit::new(50e9, 200e9),
            replica_lag: Limit::new(10.0, 60.0),
            audit_seal_age: Limit::new(86_400.0, 7.0 * 86_400.0),
            check_timeout: Duration::from_secs(5),
        }
    }
}

/// Every check's name, in report order.
pub const CHECKS: &[&str] = &[
    "connection",
    "server_version",
    "pool",
    "connections",
    "long_queries",
    "idle_in_transaction",
    "blocked",
    "wraparound",
    "dead_tuples",
    "cache_hit",
    "database_size",
    "replica_lag",
    "migrations",
    "rls_posture",
    "audit_triggers",
    "audit_seal_age",
];

impl Thresholds {
    /// Defaults, overridden by `TODO_DB_HEALTH_*` variables from `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut t = Thresholds::default();
        let set = |name: &str, slot: &mut Limit| -> Result<()> {
            let var = format!("TODO_DB_HEALTH_{}", name.to_ascii_uppercase());
            if let Some(v) = get(&var) {
                let parts: Vec<f64> = v
                    .split(',')
                    .map(|p| p.trim().parse::<f64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| Error::Config(format!("{var}={v:?}: expected two numbers, warning,critical")))?;
                let [w, c] = parts[..] else {
                    return Err(Error::Config(format!("{var}={v:?}: expected two numbers, warning,critical")));
                };
                *slot = Limit::new(w, c);
            }
            Ok(())
        };
        set("latency", &mut t.latency)?;
        set("pool_waiting", &mut t.pool_waiting)?;
        set("connections", &mut t.connections)?;
        set("long_queries", &mut t.long_queries)?;
        set("idle_in_transaction", &mut t.idle_in_transaction)?;
        set("blocked", &mut t.blocked)?;
        set("wraparound", &mut t.wraparound)?;
        set("dead_tuples", &mut t.dead_tuples)?;
        set("cache_hit", &mut t.cache_hit)?;
        set("database_size", &mut t.database_size)?;
        set("replica_lag", &mut t.replica_lag)?;
        set("audit_seal_age", &mut t.audit_seal_age)?;
        if let Some(v) = get("TODO_DB_HEALTH_CHECK_TIMEOUT") {
            t.check_timeout = todo_db::config::parse_duration(&v)
                .map_err(|r| Error::Config(format!("TODO_DB_HEALTH_CHECK_TIMEOUT={v:?}: {r}")))?;
        }
        Ok(t)
    }

    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|n| std::env::var(n).ok())
    }
}

/// What a check measured, before timing and naming.
struct Found {
    status: Status,
    value: Option<f64>,
    unit: &'static str,
    threshold: String,
    message: String,
}

fn found(status: Status, value: f64, unit: &'static str, threshold: String, message: String) -> Found {
    Found { status, value: Some(value), unit, threshold, message }
}

fn plain(status: Status, message: String) -> Found {
    Found { status, value: None, unit: "", threshold: String::new(), message }
}

/// Runs the named checks (all when `only` is empty) against `db`, and `replica` for the lag
/// check, concurrently, each under the time limit.
pub async fn run(db: &Db, replica: Option<&Db>, t: &Thresholds, only: &[String]) -> Result<Report> {
    for name in only {
        if !CHECKS.contains(&name.as_str()) {
            return Err(Error::validation("check", format!("{name:?} is not one of {}", CHECKS.join(", "))));
        }
    }
    // Sampled before the checks take connections of their own.
    let pool = db.pool_status();
    let selected: Vec<&'static str> =
        CHECKS.iter().copied().filter(|c| only.is_empty() || only.iter().any(|o| o == c)).collect();
    let futures = selected.iter().map(|&name| async move {
        let started = Instant::now();
        let result = tokio::time::timeout(t.check_timeout, one(name, db, replica, pool, t)).await;
        let f = match result {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => plain(Status::Unknown, format!("check failed: {e}")),
            Err(_) => plain(Status::Unknown, format!("no answer within {:?}", t.check_timeout)),
        };
        Check {
            name,
            status: f.status,
            value: f.value,
            unit: f.unit,
            threshold: f.threshold,
            message: f.message,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        }
    });
    let checks = futures_util::future::join_all(futures).await;
    let status = checks.iter().map(|c| c.status).max_by_key(|s| s.rank()).unwrap_or(Status::Ok);
    Ok(Report { status, target: db.target().to_string(), checks })
}

async fn one(name: &str, db: &Db, replica: Option<&Db>, pool: PoolStatus, t: &Thresholds) -> Result<Found> {
    let admin = db.admin();
    let q1 = |sql: &'static str| async move { admin.query(sql, &[]).await.map(|mut r| r.remove(0)) };
    Ok(match name {
        "connection" => {
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
        "server_version" => {
            let r = q1("select current_setting('server_version_num')::int, current_setting('server_version')").await?;
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
        "pool" => {
            let p = pool;
            let s = t.pool_waiting.above(p.waiting as f64);
            let msg = format!(
                "{} open ({} in use, {} idle) of {} steady, {} waiting{}",
                p.open,
                p.open - p.idle.min(p.open),
                p.idle,
                p.max_size,
                p.waiting,
                if s == Status::Ok {
                    ""
                } else {
                    ": raise TODO_DB_POOL_SIZE / TODO_DB_POOL_OVERFLOW or find slow operations"
                }
            );
            found(s, p.waiting as f64, "waiting", t.pool_waiting.describe_above(), msg)
        }
        "connections" => {
            let r =
                q1("select count(*)::float8, current_setting('max_connections')::float8 from pg_stat_activity").await?;
            let (used, max): (f64, f64) = (r.get(0), r.get(1));
            let ratio = used / max;
            let s = t.connections.above(ratio);
            let msg = format!(
                "{used} of max_connections {max} in use{}",
                if s == Status::Ok {
                    ""
                } else {
                    ": use the pooled endpoint, lower pool sizes, or raise max_connections"
                }
            );
            found(s, ratio, "ratio", t.connections.describe_above(), msg)
        }
        "long_queries" => {
            let r = q1("select coalesce(extract(epoch from max(now() - query_start)), 0)::float8, \
                        (array_agg(pid order by query_start))[1], count(*) \
                 from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() \
                 and datname = current_database() \
                 and backend_type = 'client backend' and query not ilike 'start_replication%'")
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
        "idle_in_transaction" => {
            let r = q1("select coalesce(extract(epoch from max(now() - state_change)), 0)::float8, \
                        (array_agg(pid order by state_change))[1] \
                 from pg_stat_activity where state in ('idle in transaction', 'idle in transaction (aborted)') \
                 and datname = current_database()")
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
        "blocked" => {
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
        "wraparound" => {
            let r = q1("select age(datfrozenxid)::float8 from pg_database where datname = current_database()").await?;
            let age: f64 = r.get(0);
            let s = t.wraparound.above(age);
            let msg = format!(
                "transaction ID age {age:.0}{}",
                if s == Status::Ok { "" } else { ": make sure autovacuum runs; VACUUM FREEZE the oldest tables" }
            );
            found(s, age, "xids", t.wraparound.describe_above(), msg)
        }
        "dead_tuples" => {
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
                None => found(
                    Status::Ok,
                    0.0,
                    "ratio",
                    t.dead_tuples.describe_above(),
                    "no table has many dead rows".into(),
                ),
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
        "cache_hit" => {
            let r = q1(
                "select blks_hit::float8, blks_read::float8 from pg_stat_database where datname = current_database()",
            )
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
        "database_size" => {
            let r = q1("select pg_database_size(current_database())::float8, \
                        (select c.oid::regclass::text || ' ' || pg_size_pretty(pg_total_relation_size(c.oid)) \
                         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                         where n.nspname in ('public', 'audit') and c.relkind = 'r' \
                         order by pg_total_relation_size(c.oid) desc limit 1)")
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
        "replica_lag" => match replica.or(db.replica()) {
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
                        return Ok(plain(
                            Status::Warning,
                            format!(
                                "read replica {} unreachable ({e}); reporting reads fall back to the primary",
                                r.target()
                            ),
                        ))
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
        },
        "migrations" => {
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
        "rls_posture" => {
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
        "audit_triggers" => {
            let r = db
                .admin()
                .query(
                    "select t from unnest(array['users', 'tasks', 'tags', 'task_tags']) t \
                     where not exists (select 1 from pg_trigger g where g.tgrelid = t::regclass \
                                       and g.tgname = t || '_audit' and g.tgenabled <> 'D') order by 1",
                    &[],
                )
                .await?;
            let missing: Vec<String> = r.iter().map(|r| r.get(0)).collect();
            let s = if missing.is_empty() { Status::Ok } else { Status::Critical };
            let msg = if missing.is_empty() {
                "audit capture is attached and enabled on users, tasks, tags, task_tags".into()
            } else {
                format!(
                    "changes to {} are NOT audited: re-create with `select audit.attach('<table>')` or run `todo-db verify`",
                    missing.join(", ")
                )
            };
            found(s, missing.len() as f64, "tables", "critical >= 1".into(), msg)
        }
        "audit_seal_age" => {
            let r =
                q1("select count(*)::float8, coalesce(extract(epoch from now() - min(at)), 0)::float8 from audit.log \
                 where id > coalesce((select max(upto_id) from audit.seal), 0)")
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
        other => return Err(Error::Internal(format!("unknown check {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_from_the_environment_and_name_bad_values() {
        let t = Thresholds::from_lookup(|n| (n == "TODO_DB_HEALTH_LONG_QUERIES").then(|| "5, 60".to_string())).unwrap();
        assert_eq!(t.long_queries, Limit::new(5.0, 60.0));
        assert_eq!(t.idle_in_transaction, Thresholds::default().idle_in_transaction);
        let err = Thresholds::from_lookup(|n| (n == "TODO_DB_HEALTH_BLOCKED").then(|| "x".to_string())).unwrap_err();
        assert!(err.to_string().contains("TODO_DB_HEALTH_BLOCKED"));
    }

    #[test]
    fn limits_point_the_right_way() {
        let up = Limit::new(10.0, 20.0);
        assert_eq!((up.above(5.0), up.above(10.0), up.above(25.0)), (Status::Ok, Status::Warning, Status::Critical));
        let down = Limit::new(0.9, 0.8);
        assert_eq!(
            (down.below(0.95), down.below(0.85), down.below(0.5)),
            (Status::Ok, Status::Warning, Status::Critical)
        );
    }
}
