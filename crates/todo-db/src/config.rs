//! Settings, parsed once from the environment (and `.env`), overridable by CLI flags.
//!
//! The rest of the library never reads environment variables: it takes a [`Settings`].
//! Connection URLs are held in [`Secret`], whose `Debug` and `Display` never show the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// A value that must not be printed: Debug and Display show a redacted form.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The secret value itself; call only where it is needed (connecting, hashing).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl fmt::Debug for Secret<String> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", redact_url(&self.0))
    }
}

impl fmt::Display for Secret<String> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `postgresql://user:pw@host/db` -> `postgresql://user:***@host/db`; anything that is not a URL
/// with a password is shown as `***` when it could hold one.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") { "***".into() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "***".to_string(),
    }
}

/// Pool and connection tuning. Defaults follow the original module (20 steady connections plus
/// 30 overflow, pre-ping, recycle after 5 minutes) and Neon's cold starts (10 s connect timeout).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Connections kept open while idle.
    pub size: usize,
    /// Extra connections opened under load and closed again after `overflow_idle`.
    pub overflow: usize,
    /// How long a caller waits for a free connection before getting `Error::Busy`.
    pub acquire_timeout: Duration,
    /// Time limit for one connection attempt (TCP + TLS + auth).
    pub connect_timeout: Duration,
    /// Total time spent retrying transient connect failures (a waking Neon compute).
    pub connect_retry: Duration,
    /// Connections older than this are closed instead of being handed out again.
    pub max_lifetime: Duration,
    /// A connection idle longer than this is pinged before it is handed out.
    pub idle_check_after: Duration,
    /// Overflow connections idle longer than this are closed.
    pub overflow_idle: Duration,
    /// Server-side limit for each statement (`statement_timeout`), set per transaction.
    pub statement_timeout: Duration,
    /// How long a user operation waits for a row lock before failing (`lock_timeout`).
    pub lock_timeout: Duration,
    /// TCP keepalive idle time: how soon a silent peer is probed.
    pub keepalive_idle: Duration,
    /// How statements are sent: prepared once per connection and cached, or unnamed (parsed with
    /// every execution) for a transaction-mode pooler such as Neon's pooled endpoint.
    pub statements: StatementMode,
}

/// `TODO_DB_STATEMENTS`: `auto` (the default: prepared, everywhere: Neon's pooled endpoints, the
/// `-pooler` hosts, are PgBouncer with `max_prepared_statements`, which carries prepared
/// statements across its server connections), `prepared`, or `unnamed` (for a transaction-mode
/// pooler that does not track them: PgBouncer before 1.21, or `max_prepared_statements = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    #[default]
    Auto,
    Prepared,
    Unnamed,
}

impl StatementMode {
    /// The mode for a server at `host`: `auto` is prepared for every host (see above).
    pub fn resolve(self, _host: &str) -> StatementMode {
        match self {
            StatementMode::Auto => StatementMode::Prepared,
            other => other,
        }
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            size: 20,
            overflow: 30,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            connect_retry: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(300),
            idle_check_after: Duration::from_secs(30),
            overflow_idle: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            keepalive_idle: Duration::from_secs(30),
            statements: StatementMode::Auto,
        }
    }
}

impl PoolSettings {
    pub fn max_size(&self) -> usize {
        self.size + self.overflow
    }
}

/// Everything todo-db needs to connect.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `DATABASE_URL`; `None` selects the embedded local default.
    pub database_url: Option<Secret<String>>,
    /// `DATABASE_DIRECT_URL`: a direct (unpooled) session for admin work.
    pub direct_url: Option<Secret<String>>,
    /// `DATABASE_READ_URL`: an optional read replica for reporting reads.
    pub read_url: Option<Secret<String>>,
    /// `APP_DATABASE_URL`: a login for user scopes that is a member of `todo_app` and cannot bypass
    /// RLS (the embedded default has one). Without it, user scopes switch role on the admin login.
    pub app_url: Option<Secret<String>>,
    /// `TODO_DB_HOME`: where the embedded default keeps its cluster (default `.todo-db`).
    pub home: Option<PathBuf>,
    /// `TODO_DB_ALLOW_INSECURE`: permit `sslmode=disable` to a host that is not local.
    pub allow_insecure: bool,
    /// `TODO_DB_ENVIRONMENT`: `production` makes destructive commands (reset, seed, restore
    /// --replace) refuse without `--force`, as the database's protected mark does.
    pub environment: Option<String>,
    pub pool: PoolSettings,
    pub lockout: LockoutPolicy,
}

/// Every environment variable todo-db reads, with its meaning (used by `--help` and the docs).
pub const ENV_VARS: &[(&str, &str)] = &[
    ("DATABASE_URL", "PostgreSQL URL; unset = the embedded local default"),
    ("DATABASE_DIRECT_URL", "direct (unpooled) URL for admin work when DATABASE_URL is pooled"),
    ("DATABASE_READ_URL", "read replica URL for reporting reads"),
    ("APP_DATABASE_URL", "login for user scopes: a todo_app member without BYPASSRLS (embedded default: its own)"),
    ("TODO_DB_HOME", "directory of the embedded local cluster (default .todo-db)"),
    ("TODO_DB_PG_BIN", "PostgreSQL bin directory the embedded cluster runs on (default: found on the machine)"),
    ("TODO_DB_CACHE", "where scripts/install-servers keeps servers and PgBouncer (default /var/cache/todo-db)"),
    ("TODO_DB_ALLOW_INSECURE", "1 = allow sslmode=disable to a non-local host"),
    ("TODO_DB_BACKUP_DIR", "where backup create writes and backup list / prune look (default backups)"),
    ("TODO_DB_BACKUP_KEY", "base64 256-bit key for backup create --encrypt, verify and restore"),
    ("TODO_DB_LISTEN", "serve: listen address (default 127.0.0.1:8080)"),
    ("TODO_DB_SEAL_EVERY", "serve: seal the audit log this often (default 1h; 0 disables)"),
    ("TODO_DB_HEALTH_CHECK_TIMEOUT", "time limit of each health check (default 5s)"),
    (
        "TODO_DB_HEALTH_<CHECK>",
        "warning,critical thresholds of one health check, e.g. TODO_DB_HEALTH_LONG_QUERIES=30,300",
    ),
    ("NEON_API_KEY", "Neon API key: with NEON_PROJECT_ID, branches and --neon backups use Neon"),
    ("NEON_PROJECT_ID", "the Neon project of the branches"),
    ("NEON_API_URL", "Neon API base URL (default https://console.neon.tech/api/v2)"),
    ("TODO_DB_ENVIRONMENT", "production = reset, seed and restore --replace refuse without --force"),
    ("TODO_DB_POOL_SIZE", "steady pool connections (default 20)"),
    ("TODO_DB_POOL_OVERFLOW", "extra connections under load (default 30)"),
    ("TODO_DB_ACQUIRE_TIMEOUT", "wait for a free connection (default 30s)"),
    ("TODO_DB_CONNECT_TIMEOUT", "one connection attempt (default 10s)"),
    ("TODO_DB_CONNECT_RETRY", "total retry time for transient connect failures (default 30s)"),
    ("TODO_DB_MAX_LIFETIME", "recycle connections older than this (default 5m)"),
    ("TODO_DB_IDLE_CHECK", "ping connections idle longer than this before use (default 30s)"),
    ("TODO_DB_OVERFLOW_IDLE", "close overflow connections idle this long (default 60s)"),
    ("TODO_DB_STATEMENT_TIMEOUT", "server-side statement timeout (default 30s)"),
    ("TODO_DB_LOCK_TIMEOUT", "how long a user operation waits for a lock (default 10s)"),
    ("TODO_DB_KEEPALIVE_IDLE", "TCP keepalive idle time (default 30s)"),
    (
        "TODO_DB_STATEMENTS",
        "auto | prepared | unnamed: unnamed for a transaction-mode pooler that does not track prepared statements (auto: prepared)",
    ),
];

impl Settings {
    /// Reads `.env` (if present, without overriding the environment) and then the environment.
    pub fn from_env() -> Result<Self> {
        let _ = dotenvy::dotenv();
        // A value that is not UTF-8 is an error naming the variable, not silently ignored.
        for (name, _) in ENV_VARS {
            if std::env::var_os(name).is_some_and(|v| v.to_str().is_none()) {
                return Err(Error::Config(format!("{name} is not valid UTF-8")));
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any name -> value lookup (the environment, a test map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let url = |name: &str| get(name).filter(|v| !v.trim().is_empty()).map(Secret::new);
        let mut pool = PoolSettings::default();
        let count = |name: &'static str, slot: &mut usize| -> Result<()> {
            if let Some(v) = get(name) {
                *slot = v.trim().parse().map_err(|_| Error::Config(format!("{name}={v:?} is not a whole number")))?;
            }
            Ok(())
        };
        count("TODO_DB_POOL_SIZE", &mut pool.size)?;
        count("TODO_DB_POOL_OVERFLOW", &mut pool.overflow)?;
        let dur = |name: &'static str, slot: &mut Duration| -> Result<()> {
            if let Some(v) = get(name) {
                *slot = parse_duration(&v).map_err(|reason| Error::Config(format!("{name}={v:?}: {reason}")))?;
            }
            Ok(())
        };
        dur("TODO_DB_ACQUIRE_TIMEOUT", &mut pool.acquire_timeout)?;
        dur("TODO_DB_CONNECT_TIMEOUT", &mut pool.connect_timeout)?;
        dur("TODO_DB_CONNECT_RETRY", &mut pool.connect_retry)?;
        dur("TODO_DB_MAX_LIFETIME", &mut pool.max_lifetime)?;
        dur("TODO_DB_IDLE_CHECK", &mut pool.idle_check_after)?;
        dur("TODO_DB_OVERFLOW_IDLE", &mut pool.overflow_idle)?;
        dur("TODO_DB_STATEMENT_TIMEOUT", &mut pool.statement_timeout)?;
        dur("TODO_DB_LOCK_TIMEOUT", &mut pool.lock_timeout)?;
        dur("TODO_DB_KEEPALIVE_IDLE", &mut pool.keepalive_idle)?;
        if let Some(v) = get("TODO_DB_STATEMENTS") {
            pool.statements = match v.trim().to_ascii_lowercase().as_str() {
                "" | "auto" => StatementMode::Auto,
                "prepared" => StatementMode::Prepared,
                "unnamed" => StatementMode::Unnamed,
                _ => {
                    return Err(Error::Config(format!("TODO_DB_STATEMENTS={v:?}: expected auto, prepared or unnamed")))
                }
            };
        }
        let mut lockout = LockoutPolicy::default();
        let mut max_failures = lockout.max_failures as usize;
        count("TODO_DB_LOCKOUT_MAX_FAILURES", &mut max_failures)?;
        lockout.max_failures = max_failures.max(1) as i64;
        dur("TODO_DB_LOCKOUT_WINDOW", &mut lockout.window)?;
        dur("TODO_DB_LOCKOUT_COOLDOWN", &mut lockout.cooldown)?;
        let settings = Settings {
            database_url: url("DATABASE_URL"),
            direct_url: url("DATABASE_DIRECT_URL"),
            read_url: url("DATABASE_READ_URL"),
            app_url: url("APP_DATABASE_URL"),
            home: get("TODO_DB_HOME").filter(|v| !v.is_empty()).map(PathBuf::from),
            allow_insecure: get("TODO_DB_ALLOW_INSECURE").is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
            environment: get("TODO_DB_ENVIRONMENT").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
            pool,
            lockout,
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<()> {
        if self.pool.size == 0 {
            return Err(Error::Config("pool size must be at least 1 (TODO_DB_POOL_SIZE / --pool-size)".into()));
        }
        if self.pool.acquire_timeout.is_zero() {
            return Err(Error::Config(
                "the acquire timeout must be greater than zero (TODO_DB_ACQUIRE_TIMEOUT / --acquire-timeout)".into(),
            ));
        }
        if self.pool.connect_timeout.is_zero() {
            return Err(Error::Config(
                "the connect timeout must be greater than zero (TODO_DB_CONNECT_TIMEOUT / --connect-timeout)".into(),
            ));
        }
        Ok(())
    }

    /// A copy of these settings that connects to `url` instead (without the app login's URL,
    /// which names the other database).
    pub fn with_url(&self, url: &str) -> Settings {
        Settings { database_url: Some(Secret::new(url.to_string())), app_url: None, ..self.clone() }
    }

    /// The embedded cluster's directory.
    pub fn home_dir(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from(".todo-db"))
    }
}

/// `"10s"`, `"500ms"`, `"5m"`, `"1h"`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("{raw:?} is not a duration like 10s, 500ms or 5m"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{raw:?} is not a valid duration"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{raw:?} is too long a duration"))
}

/// When failed logins lock an account (`TODO_DB_LOCKOUT_*`): `security::login` applies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LockoutPolicy {
    pub max_failures: i64,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy { max_failures: 5, window: Duration::from_secs(15 * 60), cooldown: Duration::from_secs(15 * 60) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_urls_never_show_their_password() {
        let s = Secret::new("postgresql://alice:hunter2@db.example:5432/todo?password=hunter2".to_string());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(format!("{s}").contains("db.example"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        // Too long for a Duration: refused, not a panic (found by the `duration` fuzz target).
        assert!(parse_duration("99999999999999999999h").unwrap_err().contains("too long"));
        assert!(parse_duration(&"9".repeat(400)).is_err());
    }

    #[test]
    fn environment_overrides_pool_defaults_and_names_bad_values() {
        let env = |name: &str| match name {
            "TODO_DB_POOL_SIZE" => Some("5".to_string()),
            "TODO_DB_STATEMENT_TIMEOUT" => Some("2s".to_string()),
            _ => None,
        };
        let s = Settings::from_lookup(env).unwrap();
        assert_eq!(s.pool.size, 5);
        assert_eq!(s.pool.overflow, 30);
        assert_eq!(s.pool.statement_timeout, Duration::from_secs(2));
        assert!(s.database_url.is_none());

        let bad = Settings::from_lookup(|n| (n == "TODO_DB_POOL_SIZE").then(|| "many".to_string()));
        assert!(bad.unwrap_err().to_string().contains("TODO_DB_POOL_SIZE"));
    }
}
