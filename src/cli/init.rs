//! `init`, `reset` and `migrate`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use comfy_table::Table;
use todo_db::db::Target;
use todo_db::schema::{self, quote_ident};
use todo_db::{Error, Settings};

use super::{admin_url, confirm, connect_admin, connect_checked, verify::print_report, Confirm, Output};

#[derive(Args)]
pub struct InitArgs {
    /// Also load a few demo users with tasks and tags (skipped if they exist).
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    output: Output,
}

impl InitArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let url = admin_url(settings).await?;
        let target = Target::parse(&url, &settings.pool, settings.allow_insecure)?;
        let created = create_database_if_missing(&target, settings).await?;
        let db = connect_admin(settings).await?;
        let applied = {
            let mut conn = db.admin().connection().await?;
            schema::migrate(&mut conn).await?
        };
        let demo = if self.demo { todo_db_ops::seed::load_demo(&db).await? } else { Vec::new() };
        // Verified with the app login's pool too (it exists once the roles do), so the posture
        // check covers the login user scopes run as.
        let checked = connect_checked(settings).await?;
        let report = todo_db_ops::verify::verify(&checked).await?;
        checked.close();
        if self.output.json {
            let out = serde_json::json!({
                "database": target.to_string(),
                "created_database": created,
                "applied_migrations": applied,
                "demo_users": demo,
                "verify": report,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            if created {
                println!("created database {}", target.database);
            }
            if applied.is_empty() {
                println!("migrations: up to date");
            }
            for m in &applied {
                println!("applied migration {:04}_{}", m.version, m.name);
            }
            for d in &demo {
                println!("demo account {} password {} ({} tasks)", d.email, d.password, d.tasks);
            }
            if !demo.is_empty() {
                println!("(the passwords are shown this once and stored only as Argon2id hashes)");
            }
            print_report(&report);
        }
        Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// Connects to the server's maintenance database and creates `target.database` if it is missing
/// and the login may. Returns whether it created it.
pub(super) async fn create_database_if_missing(target: &Target, settings: &Settings) -> anyhow::Result<bool> {
    let mut small = settings.pool.clone();
    small.size = 1;
    small.overflow = 0;
    let maintenance = target.with_database("postgres");
    let client = match maintenance.connect(small.connect_retry, small.connect_timeout).await {
        Ok(c) => c,
        // No access to the maintenance database (common on hosted services): assume the target
        // exists; connecting to it will say clearly if it does not.
        Err(Error::Config(_)) | Err(Error::Database { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&target.database])
        .await
        .context("checking whether the database exists")?
        .is_some();
    if exists {
        return Ok(false);
    }
    client
        .batch_execute(&format!("create database {}", quote_ident(&target.database)))
        .await
        .with_context(|| format!("creating database {} (does the login have CREATEDB?)", target.database))?;
    Ok(true)
}

#[derive(Args)]
pub struct ResetArgs {
    #[command(flatten)]
    confirm: Confirm,
    /// Reset even a database marked protected or with TODO_DB_ENVIRONMENT=production.
    #[arg(long)]
    force: bool,
}

impl ResetArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        if !self.confirm.dry_run {
            super::data::refuse_if_protected(&db, settings, self.force, "reset").await?;
        }
        let mut conn = db.admin().connection().await?;
        let objects = schema::owned_objects(&conn).await?;
        if self.confirm.dry_run {
            println!("would drop from {} and re-create:", db.target());
            for o in &objects {
                println!("  {o}");
            }
            println!("  (and every other object owned by todo_owner, and the migration ledger)");
            return Ok(ExitCode::SUCCESS);
        }
        let question =
            format!("drop ALL todo-db data in {} ({} tables/views) and re-create it?", db.target(), objects.len());
        if !confirm(&question, &self.confirm)? {
            println!("nothing changed");
            return Ok(ExitCode::from(1));
        }
        schema::drop_all(&conn).await?;
        let applied = schema::migrate(&mut conn).await?;
        println!("dropped {} tables/views; applied {} migrations", objects.len(), applied.len());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Rehearse pending migrations on a throwaway branch: apply, verify, show the schema diff and
    /// timings, delete the branch. The target is not touched.
    #[arg(long)]
    check: bool,
    /// Apply pending migrations (after rehearsing them, unless --skip-check).
    #[arg(long)]
    apply: bool,
    /// With --apply: do not rehearse first.
    #[arg(long, requires = "apply")]
    skip_check: bool,
    #[command(flatten)]
    wait: super::branch::Wait,
    #[command(flatten)]
    output: Output,
}

impl MigrateArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let pending = {
            let db = connect_admin(settings).await?;
            let conn = db.admin().connection().await?;
            let status = schema::status(&conn).await?;
            drop(conn);
            db.close();
            status.iter().filter(|s| s.state == schema::MigrationState::Pending).count()
        };
        if (self.check || (self.apply && !self.skip_check)) && pending > 0 {
            let ok = rehearse(settings, self.wait, self.output).await?;
            if !ok {
                println!("rehearsal failed: the target is untouched");
                return Ok(ExitCode::from(1));
            }
            if self.check {
                return Ok(ExitCode::SUCCESS);
            }
        } else if self.check {
            println!("nothing pending to rehearse");
        }
        let db = connect_admin(settings).await?;
        let mut conn = db.admin().connection().await?;
        if self.apply {
            for m in &schema::migrate(&mut conn).await? {
                println!("applied migration {:04}_{}", m.version, m.name);
            }
        }
        let status = schema::status(&conn).await?;
        if self.output.json && !self.check {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else if !self.check {
            let mut t = Table::new();
            t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
            t.set_header(["version", "name", "state"]);
            for s in &status {
                t.add_row([format!("{:04}", s.version), s.name.clone(), format!("{:?}", s.state).to_lowercase()]);
            }
            println!("{t}");
        }
        let clean = status.iter().all(|s| s.state == schema::MigrationState::Applied);
        Ok(if clean || self.check { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// Copies the target to a throwaway branch, applies the pending migrations there one by one
/// (timed), verifies, prints the schema diff, and deletes the branch. Returns whether all passed.
async fn rehearse(settings: &Settings, wait: super::branch::Wait, output: Output) -> anyhow::Result<bool> {
    use todo_db_ops::branch::{diff, CreateOptions, Provider};
    let p = super::branch::provider(settings).await?;
    let name = format!("rehearsal-{}", std::process::id());
    let options = CreateOptions { wait: wait.wait, force: wait.force, ..Default::default() };
    p.create(&name, &options).await?;
    let outcome = async {
        let db = super::branch::connect_branch(&p, &name, settings).await?;
        let before = diff::snapshot(&db).await?;
        let mut conn = db.admin().connection().await?;
        let pending: Vec<_> =
            schema::status(&conn).await?.into_iter().filter(|s| s.state == schema::MigrationState::Pending).collect();
        let mut timings = Vec::new();
        let mut failure = None;
        for m in &pending {
            let started = std::time::Instant::now();
            match schema::migrate_to(&mut conn, Some(m.version)).await {
                Ok(_) => timings.push((m.version, m.name.clone(), started.elapsed().as_secs_f64())),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        drop(conn);
        let report = if failure.is_none() { Some(todo_db_ops::verify::verify(&db).await?) } else { None };
        let changes = diff::compare(&before, &diff::snapshot(&db).await?);
        db.close();
        Ok::<_, anyhow::Error>((timings, failure, report, changes))
    }
    .await;
    let deleted = p.delete(&name, true).await;
    let (timings, failure, report, changes) = outcome?;
    deleted?;
    let ok = failure.is_none() && report.as_ref().is_some_and(|r| r.ok);
    if output.json {
        let out = serde_json::json!({
            "ok": ok,
            "migrations": timings.iter().map(|(v, n, s)| serde_json::json!({"version": v, "name": n, "seconds": s})).collect::<Vec<_>>(),
            "failure": failure,
            "verify_ok": report.as_ref().map(|r| r.ok),
            "changes": changes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ok);
    }
    println!("rehearsal on a throwaway branch of the target:");
    for (v, n, s) in &timings {
        println!("  applied {v:04}_{n} in {:.3}s", s);
    }
    if let Some(f) = &failure {
        println!("  FAILED: {f}");
    }
    if let Some(r) = &report {
        if r.ok {
            println!("  verify: ok");
        } else {
            for c in r.failures() {
                println!("  verify FAILED: {} {}: {}", c.kind, c.name, c.detail);
            }
        }
    }
    if !changes.is_empty() {
        println!("schema changes:");
        print!("{}", todo_db_ops::branch::diff::render(&changes));
    }
    Ok(ok)
}
