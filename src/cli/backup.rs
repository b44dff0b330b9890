//! `backup create | verify | restore | list | prune`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use comfy_table::Table;
use todo_db::config::parse_duration;
use todo_db::db::Target;
use todo_db::{Db, Settings};
use todo_db_ops::backup::{self, Progress};

use super::{admin_url, connect_admin, Output};

#[derive(Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Back up the database from one consistent snapshot (tables copied in parallel, zstd).
    Create(CreateArgs),
    /// Check a backup offline (manifest, sizes, SHA-256, decompression); exit 1 naming the first damaged table.
    Verify(VerifyArgs),
    /// Restore a backup into a database, in one transaction (all or nothing).
    Restore(RestoreArgs),
    /// The backups in the backup directory, oldest first.
    List(ListArgs),
    /// Remove old backups from the backup directory.
    Prune(PruneArgs),
    /// Print a new random encryption key (base64) for TODO_DB_BACKUP_KEY.
    Keygen,
}

/// Where backups go by default: $TODO_DB_BACKUP_DIR, else ./backups.
fn backup_dir() -> PathBuf {
    std::env::var_os("TODO_DB_BACKUP_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "backups".into())
}

#[derive(Args)]
struct CreateArgs {
    /// The new backup directory. Default: $TODO_DB_BACKUP_DIR (or ./backups)/todo-db-<UTC time>.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Connections copying tables at the same time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    workers: usize,
    /// Encrypt the table files (ChaCha20-Poly1305) with the key in TODO_DB_BACKUP_KEY.
    #[arg(long)]
    encrypt: bool,
    /// Instead of a file backup, create a Neon restore point: a branch of the default branch
    /// (NEON_API_KEY, NEON_PROJECT_ID), with an expiry.
    #[arg(long, conflicts_with_all = ["out", "encrypt"])]
    neon: bool,
    /// With --neon: when the restore point branch expires.
    #[arg(long, default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    expires_in: Duration,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct VerifyArgs {
    path: PathBuf,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["path", "neon"]))]
struct RestoreArgs {
    /// The backup directory (not with --neon).
    path: Option<PathBuf>,
    /// Restore a Neon branch to a point in time through the Neon API (needs --at); the state
    /// it had is kept under a preserved branch name.
    #[arg(long, requires = "at")]
    neon: bool,
    /// With --neon: the time to go back to (RFC 3339, within the project's history window).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The branch to restore into (`todo-db branch`); with --neon, the Neon branch to take back
    /// in time (default: the project's default branch).
    #[arg(long, value_name = "NAME", conflicts_with = "into")]
    branch: Option<String>,
    /// Target database on the same server (created if missing). Default: the configured database.
    #[arg(long, value_name = "DB")]
    into: Option<String>,
    /// Overwrite a target that already holds todo-db data (in the same transaction as the load).
    #[arg(long)]
    replace: bool,
    /// Replace even a database marked protected or with TODO_DB_ENVIRONMENT=production.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct ListArgs {
    /// Directory holding the backups. Default: $TODO_DB_BACKUP_DIR, else ./backups.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("rule").required(true).multiple(true))]
struct PruneArgs {
    /// Keep the newest N backups, remove the rest.
    #[arg(long, value_name = "N", group = "rule")]
    keep_last: Option<usize>,
    /// Remove backups older than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, group = "rule")]
    older_than: Option<Duration>,
    /// Directory holding the backups. Default: $TODO_DB_BACKUP_DIR, else ./backups.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

impl BackupArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        match self.command {
            BackupCommand::Create(a) => a.run(settings).await,
            BackupCommand::Verify(a) => a.run(),
            BackupCommand::Restore(a) => a.run(settings).await,
            BackupCommand::List(a) => a.run(),
            BackupCommand::Prune(a) => a.run(),
            BackupCommand::Keygen => {
                println!("{}", backup::Key::generate().encode());
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Runs `work` while drawing its progress (uncompressed MB moved) on stderr: a spinner with MB/s
/// on a terminal, a plain line every few seconds otherwise.
async fn with_progress<T>(what: &str, progress: Arc<Progress>, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec}) {elapsed}",
            )
            .expect("valid template"),
        );
        bar.set_message(what.to_string());
        bar
    });
    let mut tick =
        tokio::time::interval(if bar.is_some() { Duration::from_millis(100) } else { Duration::from_secs(2) });
    tick.tick().await;
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => {
                let bytes = progress.bytes();
                match &bar {
                    Some(bar) => bar.set_position(bytes),
                    None => {
                        let mb = bytes as f64 / 1e6;
                        eprintln!("{what}: {mb:.1} MB ({:.1} MB/s)", mb / started.elapsed().as_secs_f64());
                    }
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    out
}

fn neon_api() -> anyhow::Result<todo_db_ops::neon::Neon> {
    let config = todo_db_ops::neon::NeonConfig::from_env()
        .ok_or_else(|| anyhow::anyhow!("--neon needs NEON_API_KEY and NEON_PROJECT_ID"))?;
    Ok(todo_db_ops::neon::Neon::new(config)?)
}

fn stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default()
}

impl CreateArgs {
    async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        if self.neon {
            let neon = neon_api()?;
            let all = neon.list().await?;
            let root = all
                .iter()
                .find(|b| b.default)
                .ok_or_else(|| anyhow::anyhow!("the Neon project has no default branch"))?;
            // Sealed first, so the restore point ends at a seal like a file backup does.
            match connect_admin(settings).await {
                Ok(db) => {
                    todo_db::audit::seal(&db, Duration::from_secs(30)).await?;
                }
                Err(e) => eprintln!("warning: the audit log was not sealed first (database unreachable: {e:#})"),
            }
            let expires = time::OffsetDateTime::now_utc() + self.expires_in;
            let b = neon
                .create(&format!("backup-{}", stamp().to_lowercase()), &root.id, None, Some(expires), false)
                .await?;
            if self.output.json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!("created Neon restore point {} ({}) of {}, expires {}", b.name, b.id, root.name, expires);
            }
            return Ok(ExitCode::SUCCESS);
        }
        super::require_direct(settings, "backup create")?;
        let db = connect_admin_with(settings, self.workers + 1).await?;
        let out = self.out.unwrap_or_else(|| {
            let now = time::OffsetDateTime::now_utc();
            let stamp = now
                .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
                .unwrap_or_default();
            backup_dir().join(format!("todo-db-{stamp}"))
        });
        let key = backup::Key::from_env()?;
        if self.encrypt && key.is_none() {
            anyhow::bail!("--encrypt needs TODO_DB_BACKUP_KEY (make one with `todo-db backup keygen`)");
        }
        let options = backup::CreateOptions { workers: self.workers, key: if self.encrypt { key } else { None } };
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let manifest = with_progress("backup", progress.clone(), backup::create(&db, &out, &options, progress)).await?;
        let seconds = started.elapsed().as_secs_f64();
        if self.output.json {
            let out = serde_json::json!({ "path": out, "seconds": seconds, "manifest": manifest });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print_tables(&manifest);
            println!(
                "backup of {} written to {} in {seconds:.1}s: {} rows, {:.1} MB (audit sealed: {})",
                manifest.source,
                out.display(),
                manifest.rows(),
                manifest.bytes() as f64 / 1e6,
                manifest.audit_seal.map(|s| format!("seal {s}")).unwrap_or_else(|| "nothing new".into())
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_tables(m: &backup::Manifest) {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(["table", "rows", "bytes", "sha256"]);
    for e in &m.tables {
        t.add_row([e.name.clone(), e.rows.to_string(), e.bytes.to_string(), e.sha256[..16].to_string()]);
    }
    println!("{t}");
}

impl VerifyArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let (manifest, damage) = backup::verify(&self.path, backup::Key::from_env()?.as_ref())?;
        if self.output.json {
            let out = serde_json::json!({ "path": self.path, "ok": damage.is_empty(), "damaged": damage, "manifest": manifest });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else if let Some(first) = damage.first() {
            println!("DAMAGED: table {}: {}", first.table, first.reason);
            for d in &damage[1..] {
                println!("also damaged: table {}: {}", d.table, d.reason);
            }
        } else {
            if manifest.encryption.is_some() && std::env::var_os("TODO_DB_BACKUP_KEY").is_none() {
                println!(
                    "(encrypted: sizes and SHA-256 checked; set TODO_DB_BACKUP_KEY to also decrypt and decompress)"
                );
            }
            println!(
                "ok: {} tables, {} rows, {:.1} MB, taken {} from {} at migration {}",
                manifest.tables.len(),
                manifest.rows(),
                manifest.bytes() as f64 / 1e6,
                manifest.created_at,
                manifest.source,
                manifest.migration_version()
            );
        }
        Ok(if damage.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

impl RestoreArgs {
    async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        if self.neon {
            let at_text = self.at.as_deref().unwrap_or_default();
            let at = time::OffsetDateTime::parse(at_text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| todo_db::Error::validation("at", format!("{at_text:?} is not an RFC 3339 time")))?;
            let neon = neon_api()?;
            let all = neon.list().await?;
            let target = match &self.branch {
                Some(name) => all.iter().find(|b| &b.name == name),
                None => all.iter().find(|b| b.default),
            }
            .ok_or_else(|| todo_db::Error::NotFound { entity: "Neon branch" })?;
            if target.protected && !self.force {
                anyhow::bail!("branch {} is protected on Neon; pass --force to restore it anyway", target.name);
            }
            let preserved = format!("{}_before_restore_{}", target.name, stamp().to_lowercase());
            let b = neon.restore(&target.id, &target.id, Some(at), &preserved).await?;
            println!("restored Neon branch {} to {at_text}; its previous state is kept as branch {preserved}", b.name);
            return Ok(ExitCode::SUCCESS);
        }
        let path = self.path.clone().expect("clap requires a path without --neon");
        super::require_direct(settings, "backup restore")?;
        let db = match &self.into {
            None if self.branch.is_some() => {
                use todo_db_ops::branch::Provider;
                let p = super::branch::provider(settings).await?;
                let url = p.url(self.branch.as_deref().unwrap_or_default(), false).await?;
                let mut s = settings.clone();
                s.pool.size = 2;
                s.pool.overflow = 0;
                Db::connect_url(&url, &s).await?
            }
            None => connect_admin(settings).await?,
            Some(name) => {
                let url = admin_url(settings).await?;
                let target = Target::parse(&url, &settings.pool, settings.allow_insecure)?;
                super::init::create_database_if_missing(&target.with_database(name), settings).await?;
                let mut u = url::Url::parse(&url)?;
                u.set_path(&format!("/{name}"));
                let mut s = settings.clone();
                s.pool.size = 2;
                s.pool.overflow = 0;
                Db::connect_url(u.as_str(), &s).await?
            }
        };
        if self.replace {
            super::data::refuse_if_protected(&db, settings, self.force, "restore --replace").await?;
        }
        let options = backup::RestoreOptions { replace: self.replace, key: backup::Key::from_env()? };
        let progress = Arc::new(Progress::default());
        let report =
            with_progress("restore", progress.clone(), backup::restore(&db, &path, &options, progress)).await?;
        if self.output.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "restored {} rows in {} tables into {} in {:.1}s; row counts checked{}",
                report.rows,
                report.tables,
                report.target,
                report.seconds,
                if report.migrated_forward.is_empty() {
                    String::new()
                } else {
                    format!("; then migrated forward through {:?}", report.migrated_forward)
                }
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ListArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(backup_dir);
        let all = backup::list(&dir)?;
        if self.output.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(ExitCode::SUCCESS);
        }
        if all.is_empty() {
            println!("no backups in {}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        let mut t = Table::new();
        t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
        t.set_header(["path", "created", "size MB", "tables", "rows", "migration", "files"]);
        for b in &all {
            t.add_row([
                display(&b.path),
                b.created_at.to_string(),
                format!("{:.1}", b.bytes as f64 / 1e6),
                b.tables.to_string(),
                b.rows.to_string(),
                b.migration.to_string(),
                if b.complete { "complete".into() } else { "MISSING OR RESIZED".into() },
            ]);
        }
        println!("{t}");
        Ok(ExitCode::SUCCESS)
    }
}

impl PruneArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(backup_dir);
        let removed = backup::prune(&dir, self.keep_last, self.older_than, self.dry_run)?;
        let verb = if self.dry_run { "would remove" } else { "removed" };
        for b in &removed {
            println!("{verb} {} ({})", display(&b.path), b.created_at);
        }
        println!("{verb} {} backups from {}", removed.len(), dir.display());
        Ok(ExitCode::SUCCESS)
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

async fn connect_admin_with(settings: &Settings, size: usize) -> anyhow::Result<Db> {
    let url = admin_url(settings).await?;
    let mut s = settings.clone();
    s.pool.size = size;
    s.pool.overflow = 0;
    Ok(Db::connect_url(&url, &s).await?)
}
