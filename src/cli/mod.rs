//! Command groups, one module each.

mod audit;
mod backup;
mod branch;
mod data;
mod health;
mod import;
mod init;
mod local;
mod security;
mod serve;
mod verify;
mod views;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use todo_db::config::{parse_duration, Secret, Settings};
use todo_db::Db;

#[derive(Parser)]
#[command(
    name = "todo-db",
    version,
    about = "The database layer of a multi-user Todo application: set up, check and run its PostgreSQL database",
    long_about = "todo-db sets up, checks and operates the PostgreSQL database of a multi-user Todo application.\n\n\
        With no DATABASE_URL it uses the embedded default: a PostgreSQL cluster it creates and starts under \
        .todo-db/ (TODO_DB_HOME). Settings come from the environment, a .env file, or the flags below."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The help heading of the connection and pool options, apart from each command's own flags.
const CONNECTION: &str = "Connection options (every command; each also an environment variable)";

/// Connection and pool options shared by every command. Each also has an environment variable.
#[derive(Args)]
pub struct Global {
    /// PostgreSQL URL (postgresql://user:password@host:port/db?sslmode=verify-full). Default: $DATABASE_URL, else the embedded local cluster.
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Steady pool size [env: TODO_DB_POOL_SIZE, default 20].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "N")]
    pool_size: Option<usize>,
    /// Extra connections under load [env: TODO_DB_POOL_OVERFLOW, default 30].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "N")]
    pool_overflow: Option<usize>,
    /// Wait for a free connection, e.g. 30s [env: TODO_DB_ACQUIRE_TIMEOUT].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "DURATION", value_parser = parse_duration)]
    acquire_timeout: Option<std::time::Duration>,
    /// One connection attempt, e.g. 10s [env: TODO_DB_CONNECT_TIMEOUT].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "DURATION", value_parser = parse_duration)]
    connect_timeout: Option<std::time::Duration>,
    /// Server-side statement timeout, e.g. 30s [env: TODO_DB_STATEMENT_TIMEOUT].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "DURATION", value_parser = parse_duration)]
    statement_timeout: Option<std::time::Duration>,
    /// Recycle connections older than this, e.g. 5m [env: TODO_DB_MAX_LIFETIME].
    #[arg(long, global = true, help_heading = CONNECTION, value_name = "DURATION", value_parser = parse_duration)]
    max_lifetime: Option<std::time::Duration>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// Environment (and .env) first, flags over it.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::from_env()?;
        if let Some(url) = &self.database_url {
            s.database_url = Some(Secret::new(url.clone()));
        }
        let p = &mut s.pool;
        p.size = self.pool_size.unwrap_or(p.size);
        p.overflow = self.pool_overflow.unwrap_or(p.overflow);
        p.acquire_timeout = self.acquire_timeout.unwrap_or(p.acquire_timeout);
        p.connect_timeout = self.connect_timeout.unwrap_or(p.connect_timeout);
        p.statement_timeout = self.statement_timeout.unwrap_or(p.statement_timeout);
        p.max_lifetime = self.max_lifetime.unwrap_or(p.max_lifetime);
        s.validate()?;
        Ok(s)
    }
}

/// `--json` for scripts.
#[derive(Args, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Confirmation for destructive commands.
#[derive(Args, Clone, Copy)]
pub struct Confirm {
    /// Do it without asking (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing, set up roles, apply migrations, then verify (idempotent).
    Init(init::InitArgs),
    /// Check every component (connection, server, migrations, roles, tables, RLS, constraints, indexes, triggers); non-zero exit on any failure.
    Verify(verify::VerifyArgs),
    /// Drop every todo-db object in the database and create them again (asks first).
    Reset(init::ResetArgs),
    /// Migration state: which migrations are applied, pending or modified.
    Migrate(init::MigrateArgs),
    /// The embedded local PostgreSQL cluster used when DATABASE_URL is unset.
    Local(local::LocalArgs),
    /// Security: posture check, the security event log, token clean-up.
    Security(security::SecurityArgs),
    /// The audit trail: history, seals and their verification, time travel and restore.
    Audit(audit::AuditArgs),
    /// The reporting views: list them, show their rows.
    Views(views::ViewsArgs),
    /// Fill the database with realistic generated data (deterministic per seed), fast, via binary COPY.
    Seed(data::SeedArgs),
    /// Row count and content digest of every todo-db table, from one snapshot (compare two databases).
    Checksum(data::ChecksumArgs),
    /// Mark the database protected (on), remove the mark (off), or show it (status).
    Protect(data::ProtectArgs),
    /// Remove for good the tasks that have been in the trash longer than a given age.
    PurgeTrash(data::PurgeTrashArgs),
    /// Bring in a database of the original Python module (users, tasks, tags, history, preferences), all or nothing.
    Import(import::ImportArgs),
    /// Backups: create, verify offline, restore all-or-nothing, list, prune.
    Backup(backup::BackupArgs),
    /// Branches: instant copies of the database (create, list, delete, reset, protect, url, env, diff).
    Branch(branch::BranchArgs),
    /// Health checks (connection, load, locks, vacuum, migrations, RLS, audit); exit 0 ok, 1 warning, 2 critical, 3 unknown.
    Health(health::HealthArgs),
    /// HTTP service: /livez, /readyz, /health, /metrics (Prometheus); seals the audit log on a schedule.
    Serve(serve::ServeArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.global.settings()?;
    let direct_only = match &cli.command {
        Command::Init(_) => Some("init"),
        Command::Reset(_) => Some("reset"),
        Command::Migrate(_) => Some("migrate"),
        Command::Seed(_) => Some("seed"),
        Command::Import(_) => Some("import"),
        _ => None,
    };
    if let Some(what) = direct_only {
        require_direct(&settings, what)?;
    }
    match cli.command {
        Command::Init(a) => a.run(&settings).await,
        Command::Verify(a) => a.run(&settings).await,
        Command::Reset(a) => a.run(&settings).await,
        Command::Migrate(a) => a.run(&settings).await,
        Command::Local(a) => a.run(&settings).await,
        Command::Security(a) => a.run(&settings).await,
        Command::Audit(a) => a.run(&settings).await,
        Command::Views(a) => a.run(&settings).await,
        Command::Seed(a) => a.run(&settings).await,
        Command::Checksum(a) => a.run(&settings).await,
        Command::Protect(a) => a.run(&settings).await,
        Command::PurgeTrash(a) => a.run(&settings).await,
        Command::Import(a) => a.run(&settings).await,
        Command::Backup(a) => a.run(&settings).await,
        Command::Health(a) => a.run(&settings).await,
        Command::Branch(a) => a.run(&settings).await,
        Command::Serve(a) => a.run(&settings).await,
    }
}

pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info,todo_db=info",
        _ => "debug,tokio_postgres=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// The URL for admin work: DATABASE_DIRECT_URL when set (a pooled endpoint cannot run
/// migrations), else DATABASE_URL, else the embedded default.
pub async fn admin_url(settings: &Settings) -> anyhow::Result<String> {
    if let Some(u) = settings.direct_url.as_ref().or(settings.database_url.as_ref()) {
        return Ok(u.expose().clone());
    }
    let running = todo_db_ops::local::Cluster::new(settings.home_dir()).ensure_running().await?;
    Ok(running.url())
}

/// Refuses `what` (migrations, resets, seeding, backups, branches) through a transaction-mode
/// pooler: they need one session (locks, COPY, catalog work). Points at DATABASE_DIRECT_URL. A
/// pooled endpoint is a Neon `-pooler` host, or any URL used with `TODO_DB_STATEMENTS=unnamed`.
pub fn require_direct(settings: &Settings, what: &str) -> anyhow::Result<()> {
    if settings.direct_url.is_some() {
        return Ok(());
    }
    let Some(url) = &settings.database_url else { return Ok(()) };
    let target = todo_db::db::Target::parse(url.expose(), &settings.pool, settings.allow_insecure)?;
    if target.host.contains("-pooler") || settings.pool.statements == todo_db::config::StatementMode::Unnamed {
        anyhow::bail!(
            "{what} needs a direct connection, and DATABASE_URL is a pooled endpoint ({target}): \
             set DATABASE_DIRECT_URL to the direct (unpooled) URL"
        );
    }
    Ok(())
}

/// A small pool on the admin login. It opens no app login pool: admin work (`init` creating the
/// roles that login needs, above all) must not depend on it.
pub async fn connect_admin(settings: &Settings) -> anyhow::Result<Db> {
    let url = admin_url(settings).await?;
    let mut s = settings.clone();
    s.pool.size = 2;
    s.pool.overflow = 0;
    s.app_url = None;
    Db::connect_url(&url, &s).await.context("connecting for admin work")
}

/// As [`connect_admin`], and with the app login's pool (`APP_DATABASE_URL`, or the embedded
/// default's own login) when there is one, so that `verify` and `security check` check it too: a
/// login that cannot connect, bypasses RLS or is not a member of `todo_app` is an error here.
pub async fn connect_checked(settings: &Settings) -> anyhow::Result<Db> {
    let url = admin_url(settings).await?;
    let mut s = settings.clone();
    s.pool.size = 2;
    s.pool.overflow = 0;
    if s.app_url.is_none() && s.database_url.is_none() && s.direct_url.is_none() {
        let running = todo_db_ops::local::Cluster::new(settings.home_dir()).ensure_running().await?;
        s.app_url = running.app_url().map(todo_db::config::Secret::new);
    }
    Db::connect_url(&url, &s).await.context("connecting as the admin and app logins")
}

/// Asks on a terminal; elsewhere requires --yes.
pub fn confirm(question: &str, confirm: &Confirm) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if confirm.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} needs confirmation: pass --yes (not on a terminal, so todo-db cannot ask)");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
