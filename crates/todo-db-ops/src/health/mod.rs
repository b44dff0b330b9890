//! Health checks: what breaks a todo service, each returning ok / warning / critical with a
//! value, its threshold and what to do. Checks run concurrently, each under its own time limit,
//! so one slow check cannot hang the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use todo_db::db::Db;
use todo_db::error::{Error, Result};

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

mod checks;

/// Every check's name, in report order.
pub const CHECKS: &[&str] = &NAMES;

const NAMES: [&str; checks::ALL.len()] = {
    let mut names = [""; checks::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = checks::ALL[i].0;
        i += 1;
    }
    names
};

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

fn found(status: Status, value: f64, unit: &'static str, threshold: String, message: String) -> Result<Found> {
    Ok(Found { status, value: Some(value), unit, threshold, message })
}

fn plain(status: Status, message: String) -> Result<Found> {
    Ok(unmeasured(status, message))
}

fn unmeasured(status: Status, message: String) -> Found {
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
    let ctx = checks::Ctx { db, replica, pool, t };
    let selected = checks::ALL.iter().filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name));
    let futures = selected.map(|&(name, check)| async move {
        let started = Instant::now();
        let f = match tokio::time::timeout(t.check_timeout, check(ctx)).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => unmeasured(Status::Unknown, format!("check failed: {e}")),
            Err(_) => unmeasured(Status::Unknown, format!("no answer within {:?}", t.check_timeout)),
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

/// One report shared by every caller: concurrent callers wait for the run in progress instead of
/// starting their own, and a finished report is reused for `max_age`. A caller is answered by a run
/// that started after it asked, or by one that finished at most `max_age` ago; so a scrape storm
/// costs the database at most one run per `max_age` (with `max_age` zero: one run at a time, shared
/// by everyone who asked while it ran).
pub struct Shared {
    db: Db,
    thresholds: Thresholds,
    max_age: Duration,
    last: tokio::sync::Mutex<Option<Ran>>,
    runs: AtomicU64,
}

struct Ran {
    started: Instant,
    finished: Instant,
    report: Arc<Report>,
}

impl Shared {
    pub fn new(db: Db, thresholds: Thresholds, max_age: Duration) -> Self {
        Shared { db, thresholds, max_age, last: tokio::sync::Mutex::new(None), runs: Default::default() }
    }

    /// The report, and how long ago the run behind it finished.
    pub async fn report(&self) -> Result<(Arc<Report>, Duration)> {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(ran) = last.as_ref() {
            if ran.started >= asked || ran.finished.elapsed() <= self.max_age {
                return Ok((ran.report.clone(), ran.finished.elapsed()));
            }
        }
        let started = Instant::now();
        self.runs.fetch_add(1, Ordering::Relaxed);
        let report = Arc::new(run(&self.db, None, &self.thresholds, &[]).await?);
        *last = Some(Ran { started, finished: Instant::now(), report: report.clone() });
        Ok((report, Duration::ZERO))
    }

    /// How many times the checks have run.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
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
