//! `audit log | seal | verify | state | restore`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::Table;
use todo_db::audit::{self, LogFilter, Tamper};
use todo_db::model::{parse_time, TaskId, UserId};
use todo_db::Settings;
use uuid::Uuid;

use super::{confirm, connect_admin, Confirm, Output};

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// List audit entries, newest first, with filters and keyset pagination.
    Log(LogArgs),
    /// Seal every entry written since the last seal (a SHA-256 chain).
    Seal(SealArgs),
    /// Recompute every seal and name the first entry altered, removed or inserted; exit 1 if any.
    Verify(Output),
    /// Show a task as it was at a given time, reconstructed from the log.
    State(StateArgs),
    /// Put a task (fields and tags), or all of a user's tasks and tags, back as they were at a given time, as new audited changes.
    Restore(RestoreArgs),
    /// Remove entries older than a time, up to the end of the last seal before it; recorded.
    Prune(PruneArgs),
}

#[derive(Args)]
struct PruneArgs {
    /// Remove entries older than this time (RFC 3339).
    #[arg(long)]
    before: String,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(Args)]
struct LogArgs {
    /// History of one record (task, tag or user id).
    #[arg(long, alias = "task")]
    record: Option<String>,
    /// Everything that touched this user's rows.
    #[arg(long)]
    user: Option<String>,
    /// users, tasks, tags or task_tags.
    #[arg(long)]
    table: Option<String>,
    /// insert, update, delete or truncate.
    #[arg(long)]
    op: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Entries older than this entry id (the `next` of the previous page).
    #[arg(long)]
    before: Option<i64>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct SealArgs {
    /// How long to wait for transactions older than the seal to finish.
    #[arg(long, default_value = "30s", value_parser = todo_db::config::parse_duration)]
    wait: Duration,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct StateArgs {
    /// The task id.
    #[arg(long)]
    task: String,
    /// The time (RFC 3339).
    #[arg(long)]
    at: String,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["task", "user"]))]
struct RestoreArgs {
    /// Restore this task (its fields and tags).
    #[arg(long)]
    task: Option<String>,
    /// Restore all of this user's tasks and tags, in one transaction.
    #[arg(long)]
    user: Option<String>,
    /// Restore the state of this time (RFC 3339).
    #[arg(long)]
    as_of: String,
    /// Keep tasks and tags created after that time (by default they are removed).
    #[arg(long)]
    keep_created: bool,
    #[command(flatten)]
    confirm: Confirm,
    #[command(flatten)]
    output: Output,
}

fn uuid_arg(field: &'static str, raw: &str) -> anyhow::Result<Uuid> {
    Ok(Uuid::parse_str(raw.trim()).map_err(|_| todo_db::Error::validation(field, format!("{raw:?} is not a UUID")))?)
}

impl AuditArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        match self.command {
            AuditCommand::Log(a) => {
                let filter = LogFilter {
                    record: a.record.as_deref().map(|r| uuid_arg("record", r)).transpose()?,
                    user: a.user.as_deref().map(UserId::parse).transpose()?.map(|u| u.0),
                    table: a.table,
                    op: a.op,
                    since: a.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
                    until: a.until.as_deref().map(|s| parse_time("until", s)).transpose()?,
                    before: a.before,
                    limit: Some(a.limit),
                };
                let page = audit::log(&db, &filter).await?;
                if a.output.json {
                    println!("{}", serde_json::to_string_pretty(&page)?);
                } else {
                    let mut t = Table::new();
                    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
                    t.set_header(["id", "at", "table", "op", "record", "actor", "changed"]);
                    for e in &page.items {
                        t.add_row([
                            e.id.to_string(),
                            e.at.to_string(),
                            e.table.clone(),
                            e.op.clone(),
                            e.record_id.map(|r| r.to_string()).unwrap_or_default(),
                            e.actor.clone(),
                            e.changed.as_ref().map(|c| c.join(",")).unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                    if let Some(next) = page.next {
                        println!("more: --before {next}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Seal(a) => {
                let seal = audit::seal(&db, a.wait).await?;
                if a.output.json {
                    println!("{}", serde_json::to_string_pretty(&seal)?);
                } else {
                    match seal {
                        Some(s) => println!(
                            "sealed entries {}..={} ({} entries), digest {}",
                            s.from_id, s.upto_id, s.entries, s.digest
                        ),
                        None => println!("nothing new to seal"),
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify(out) => {
                let report = audit::verify(&db).await?;
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    match &report.first_problem {
                        None => println!(
                            "audit verify: ok ({} seals, {} sealed entries, {} not yet sealed)",
                            report.seals, report.sealed_entries, report.unsealed_entries
                        ),
                        Some(p) => println!(
                            "audit verify: FAILED: {}",
                            match p {
                                Tamper::Altered { entry, seal } => format!("entry {entry} was altered (seal {seal})"),
                                Tamper::Removed { entry, seal } => format!("entry {entry} was removed (seal {seal})"),
                                Tamper::Inserted { entry, seal } => format!("entry {entry} was inserted (seal {seal})"),
                                Tamper::Seal { seal } => format!("seal {seal} was changed or the seal chain is broken"),
                            }
                        ),
                    }
                }
                Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
            }
            AuditCommand::State(a) => {
                let state = audit::state_at(&db, "tasks", uuid_arg("task", &a.task)?, parse_time("at", &a.at)?).await?;
                match state {
                    Some(s) => println!("{}", serde_json::to_string_pretty(&s)?),
                    None => println!("the task did not exist at {}", a.at),
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Prune(a) => {
                let before = parse_time("before", &a.before)?;
                if a.confirm.dry_run {
                    println!("would remove sealed audit entries older than {}", a.before);
                    return Ok(ExitCode::SUCCESS);
                }
                if !confirm(&format!("remove sealed audit entries older than {}?", a.before), &a.confirm)? {
                    println!("nothing changed");
                    return Ok(ExitCode::from(1));
                }
                let p = audit::prune(&db, before).await?;
                println!("removed {} entries (through id {})", p.removed, p.through_id);
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Restore(a) => {
                let as_of = parse_time("as_of", &a.as_of)?;
                if let Some(user) = &a.user {
                    let user = UserId::parse(user)?;
                    let plan = audit::restore_user(&db, user, as_of, true, a.keep_created).await?;
                    if a.output.json {
                        println!("{}", serde_json::to_string_pretty(&plan)?);
                    } else {
                        for t in &plan.tags {
                            println!("tag {}: {} ({:?} -> {:?})", t.tag, t.action, t.name_now, t.name_then);
                        }
                        for p in &plan.tasks {
                            print_plan(p, false)?;
                        }
                        if plan.tags.is_empty() && plan.tasks.is_empty() {
                            println!("nothing to restore");
                        }
                    }
                    if a.confirm.dry_run || (plan.tags.is_empty() && plan.tasks.is_empty()) {
                        return Ok(ExitCode::SUCCESS);
                    }
                    if !confirm(&format!("restore all tasks and tags of user {user} as of {}?", a.as_of), &a.confirm)? {
                        println!("nothing changed");
                        return Ok(ExitCode::from(1));
                    }
                    let done = audit::restore_user(&db, user, as_of, false, a.keep_created).await?;
                    println!("restored {} tags and {} tasks", done.tags.len(), done.tasks.len());
                    return Ok(ExitCode::SUCCESS);
                }
                let task = TaskId(uuid_arg("task", a.task.as_deref().unwrap_or_default())?);
                let plan = audit::restore_task(&db, task, as_of, true, a.keep_created).await?;
                print_plan(&plan, a.output.json)?;
                if a.confirm.dry_run
                    || (plan.action == "none" && plan.tags_added.is_empty() && plan.tags_removed.is_empty())
                {
                    return Ok(ExitCode::SUCCESS);
                }
                if !confirm(&format!("restore task {} as of {}?", task, a.as_of), &a.confirm)? {
                    println!("nothing changed");
                    return Ok(ExitCode::from(1));
                }
                let done = audit::restore_task(&db, task, as_of, false, a.keep_created).await?;
                println!("restored: {}", done.action);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn print_plan(plan: &audit::RestorePlan, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    println!("task {}: {}", plan.task, plan.action);
    for (col, now, then) in &plan.changes {
        println!("  {col}: {now} -> {then}");
    }
    for t in &plan.tags_added {
        println!("  + tag {t}");
    }
    for t in &plan.tags_removed {
        println!("  - tag {t}");
    }
    for t in &plan.tags_gone {
        println!("  ! tag {t} no longer exists and cannot be re-attached");
    }
    Ok(())
}
