//! `seed`, `checksum` and `protect`: filling a database, fingerprinting its data, guarding it.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use comfy_table::Table;
use todo_db::schema;
use todo_db::{Db, Settings};
use todo_db_ops::seed::{self, Progress, SeedSpec};

use super::{connect_admin, Output};

#[derive(Args)]
pub struct SeedArgs {
    /// Users to generate (0 with --demo: only the demo accounts).
    #[arg(long, default_value_t = 100, value_name = "N")]
    users: u64,
    /// Tasks per generated user.
    #[arg(long, default_value_t = 20, value_name = "M")]
    tasks_per_user: u32,
    /// Random seed: the same seed and anchor give the same data, ids included.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// "Now" for the generated data (creation before it, due dates around it), as YYYY-MM-DD or
    /// RFC 3339. Default: the start of today (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_anchor)]
    anchor: Option<time::OffsetDateTime>,
    /// Also create the demo accounts (alice@, bob@, chloe@example.com) with fresh passwords,
    /// printed once.
    #[arg(long)]
    demo: bool,
    /// Seed even a database marked protected or with TODO_DB_ENVIRONMENT=production.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    output: Output,
}

fn parse_anchor(raw: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("{raw:?} is neither YYYY-MM-DD nor an RFC 3339 time"))
}

impl SeedArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        if self.users == 0 && !self.demo {
            anyhow::bail!("invalid users: 0 generates nothing (use --demo for only the demo accounts)");
        }
        let mut spec = SeedSpec::new(self.users, self.tasks_per_user).seed(self.seed);
        if let Some(anchor) = self.anchor {
            spec = spec.anchor(anchor);
        }
        if self.users > 0 {
            spec.validate()?;
        }
        let db = connect_admin(settings).await?;
        refuse_if_protected(&db, settings, self.force, "seed").await?;
        let report = if self.users > 0 { Some(load_with_progress(&db, &spec).await?) } else { None };
        let demo = if self.demo { seed::load_demo(&db).await? } else { Vec::new() };
        if self.output.json {
            let out =
                serde_json::json!({ "database": db.target().to_string(), "seeded": report, "demo_accounts": demo });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(r) = &report {
            let mut t = Table::new();
            t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
            t.set_header(["table", "rows"]);
            for (name, rows) in [("users", r.users), ("tags", r.tags), ("tasks", r.tasks), ("task_tags", r.task_tags)] {
                t.add_row([name.to_string(), rows.to_string()]);
            }
            println!("{t}");
            println!(
                "seeded {} rows in {:.1}s ({:.0} rows/s), then vacuumed and analyzed in {:.1}s; seed {}, anchor {}",
                r.rows(),
                r.load_seconds,
                r.rows() as f64 / r.load_seconds.max(1e-9),
                r.settle_seconds,
                r.spec.seed,
                r.spec.anchor.date()
            );
        }
        for d in &demo {
            println!("demo account {} password {} ({} tasks)", d.email, d.password, d.tasks);
        }
        if !demo.is_empty() {
            println!("(the passwords are shown this once and stored only as Argon2id hashes)");
        } else if self.demo {
            println!("demo accounts already exist; their passwords are unchanged");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs the load while drawing progress on stderr: a bar on a terminal, a plain line every few
/// seconds otherwise.
async fn load_with_progress(db: &Db, spec: &SeedSpec) -> anyhow::Result<seed::SeedReport> {
    let progress = Arc::new(Progress::default());
    let expected = spec.expected_rows();
    let read = || (progress.rows(), progress.total(expected), progress.phase());
    Ok(with_progress("seed", seed::load(db, spec, progress.clone()), read).await?)
}

/// Awaits `work` while drawing its progress on stderr, as `read` gives it (rows done, rows in all,
/// phase): a bar with rows/s and ETA on a terminal, a plain line every 2 s otherwise.
pub async fn with_progress<T>(
    what: &str,
    work: impl std::future::Future<Output = T>,
    read: impl Fn() -> (u64, u64, &'static str),
) -> T {
    tokio::pin!(work);
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(read().1);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>9} [{bar:40}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut tick =
        tokio::time::interval(if bar.is_some() { Duration::from_millis(100) } else { Duration::from_secs(2) });
    tick.tick().await;
    let out = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                let (rows, total, phase) = read();
                match &bar {
                    Some(bar) => {
                        bar.set_length(total);
                        bar.set_position(rows);
                        bar.set_message(phase);
                    }
                    None => {
                        let rate = rows as f64 / started.elapsed().as_secs_f64();
                        let eta = total.saturating_sub(rows) as f64 / rate.max(1.0);
                        eprintln!("{what}: {phase} {rows}/{total} rows ({rate:.0} rows/s, ETA {eta:.0}s)");
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

/// Stops a destructive command on a protected database unless `--force` was given.
pub async fn refuse_if_protected(db: &Db, settings: &Settings, force: bool, what: &str) -> anyhow::Result<()> {
    let conn = db.admin().connection().await?;
    if let Some(why) = schema::protection(&conn, settings.environment.as_deref()).await? {
        if force {
            tracing::warn!(command = what, reason = %why, "protected database: going ahead because of --force");
        } else {
            anyhow::bail!("{what} refused on {}: {why}; pass --force to do it anyway", db.target());
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct PurgeTrashArgs {
    /// Remove tasks that have been in the trash longer than this (e.g. 30d).
    #[arg(long, default_value = "30d", value_parser = todo_db::config::parse_duration)]
    older_than: std::time::Duration,
    /// Only count them.
    #[arg(long)]
    dry_run: bool,
}

impl PurgeTrashArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        let n = todo_db::store::tasks::purge_trash(&db.admin(), self.older_than, self.dry_run).await?;
        let age = humanize(self.older_than);
        if self.dry_run {
            println!("{n} tasks have been in the trash longer than {age} (dry run: nothing removed)");
        } else {
            println!("purged {n} tasks that had been in the trash longer than {age}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A duration as the flags take it: whole days, hours, minutes or seconds.
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[derive(Args)]
pub struct ChecksumArgs {
    #[command(flatten)]
    output: Output,
}

impl ChecksumArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        let mut conn = db.admin().connection().await?;
        let sums = schema::checksum(&mut conn).await?;
        if self.output.json {
            println!("{}", serde_json::to_string_pretty(&sums)?);
        } else {
            let mut t = Table::new();
            t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
            t.set_header(["table", "rows", "digest"]);
            for s in &sums {
                t.add_row([s.table.clone(), s.rows.to_string(), s.digest.clone()]);
            }
            println!("{t}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mark {
    /// Mark the database protected: reset, seed and restore --replace then need --force.
    On,
    /// Remove the mark.
    Off,
    /// Show whether destructive commands would refuse, and why.
    Status,
}

#[derive(Args)]
pub struct ProtectArgs {
    #[arg(value_enum, default_value = "status")]
    mark: Mark,
}

impl ProtectArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        let conn = db.admin().connection().await?;
        match self.mark {
            Mark::On => schema::set_protected(&conn, true).await?,
            Mark::Off => schema::set_protected(&conn, false).await?,
            Mark::Status => {}
        }
        match schema::protection(&conn, settings.environment.as_deref()).await? {
            Some(why) => println!("{}: protected: {why}", db.target()),
            None => println!("{}: not protected", db.target()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
