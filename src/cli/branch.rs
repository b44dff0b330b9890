//! `branch create | list | delete | reset | protect | url | env | diff`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::Table;
use todo_db::config::parse_duration;
use todo_db::{Db, Settings};
use todo_db_ops::branch::{self, diff, local::Local, neon::NeonProvider, AnyProvider, Branch, CreateOptions, Provider};

use super::{admin_url, confirm, Confirm, Output};

#[derive(Args)]
pub struct BranchArgs {
    #[command(subcommand)]
    command: BranchCommand,
}

#[derive(Subcommand)]
enum BranchCommand {
    /// Create a branch: a copy of its parent (default main) as it is now.
    Create(CreateArgs),
    /// The branches, with their parents.
    List(Output),
    /// Delete a branch and its data (asks first; refuses protected branches and branches with
    /// children).
    Delete {
        name: String,
        /// Terminate sessions still connected to the branch.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Reset a branch to its parent's current state.
    Reset {
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Protect a branch from delete and reset (--off removes the protection).
    Protect {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Print a branch's connection URL (it holds the password: for scripts, not logs).
    Url {
        name: String,
        /// The pooled endpoint, where the provider has one.
        #[arg(long)]
        pooled: bool,
    },
    /// Print `export DATABASE_URL=...` for a shell: eval "$(todo-db branch env NAME)".
    Env { name: String },
    /// Compare the schemas of two branches; exit 1 when they differ.
    Diff {
        a: String,
        b: String,
        #[command(flatten)]
        output: Output,
    },
}

/// Waiting for the parent to be idle (a local copy needs it).
#[derive(Args, Clone, Copy)]
pub struct Wait {
    /// How long to wait for other sessions on the parent to end.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait: Duration,
    /// After the wait, terminate those sessions instead of giving up.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
struct CreateArgs {
    name: String,
    /// Parent branch.
    #[arg(long, default_value = branch::MAIN, value_name = "PARENT")]
    from: String,
    /// The parent as it was at this time (RFC 3339; Neon only: local branches have no history).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Mark the branch to expire after this long (e.g. 7d); `list` shows expired branches.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    expires_in: Option<Duration>,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    output: Output,
}

/// The branch provider the configuration selects: Neon when NEON_API_KEY and NEON_PROJECT_ID are
/// set, else local branches on the server DATABASE_URL names.
pub async fn provider(settings: &Settings) -> anyhow::Result<AnyProvider> {
    if let Some(config) = todo_db_ops::neon::NeonConfig::from_env() {
        let url = settings.direct_url.as_ref().or(settings.database_url.as_ref()).ok_or_else(|| {
            anyhow::anyhow!(
                "the Neon provider needs DATABASE_URL (its database and role name the branches' connections)"
            )
        })?;
        let target = todo_db::db::Target::parse(url.expose(), &settings.pool, settings.allow_insecure)?;
        let api = todo_db_ops::neon::Neon::new(config)?;
        return Ok(AnyProvider::Neon(NeonProvider::new(api, &target.database, &target.user)));
    }
    super::require_direct(settings, "a local branch")?;
    Ok(AnyProvider::Local(Box::new(Local::new(&admin_url(settings).await?, settings)?)))
}

/// A small pool on branch `name`.
pub async fn connect_branch(p: &AnyProvider, name: &str, settings: &Settings) -> anyhow::Result<Db> {
    let url = p.url(name, false).await?;
    let mut s = settings.clone();
    s.pool.size = 2;
    s.pool.overflow = 0;
    Ok(Db::connect_url(&url, &s).await?)
}

impl BranchArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let p = provider(settings).await?;
        match self.command {
            BranchCommand::Create(a) => {
                let at = match &a.at {
                    Some(t) => Some(
                        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .map_err(|_| todo_db::Error::validation("at", format!("{t:?} is not an RFC 3339 time")))?,
                    ),
                    None => None,
                };
                let options = CreateOptions {
                    from: Some(a.from),
                    at,
                    expires_in: a.expires_in,
                    wait: a.wait.wait,
                    force: a.wait.force,
                };
                let started = std::time::Instant::now();
                let b = p.create(&a.name, &options).await?;
                if a.output.json {
                    println!("{}", serde_json::to_string_pretty(&b)?);
                } else {
                    println!(
                        "created branch {} from {} ({}) in {:.2}s",
                        b.name,
                        b.parent.as_deref().unwrap_or("-"),
                        b.location,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            BranchCommand::List(output) => {
                let all = p.list().await?;
                if output.json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    print_tree(&all);
                }
            }
            BranchCommand::Delete { name, force, confirm: answer } => {
                let all = p.list().await?;
                let b = all.iter().find(|b| b.name == name).ok_or(todo_db::Error::NotFound { entity: "branch" })?;
                if answer.dry_run {
                    println!("would delete branch {} ({}) and all its data", b.name, b.location);
                    return Ok(ExitCode::SUCCESS);
                }
                if !confirm(&format!("delete branch {} ({}) and all its data?", b.name, b.location), &answer)? {
                    println!("nothing changed");
                    return Ok(ExitCode::from(1));
                }
                p.delete(&name, force).await?;
                println!("deleted branch {name}");
            }
            BranchCommand::Reset { name, wait } => {
                let options = CreateOptions { wait: wait.wait, force: wait.force, ..Default::default() };
                let b = p.reset(&name, &options).await?;
                println!("reset branch {} to the current state of {}", b.name, b.parent.as_deref().unwrap_or("-"));
            }
            BranchCommand::Protect { name, off } => {
                let b = p.protect(&name, !off).await?;
                println!("branch {} is {}", b.name, if b.protected { "protected" } else { "not protected" });
            }
            BranchCommand::Url { name, pooled } => println!("{}", p.url(&name, pooled).await?),
            BranchCommand::Env { name } => {
                let url = p.url(&name, false).await?;
                println!("export DATABASE_URL='{}'", url.replace('\'', "'\\''"));
            }
            BranchCommand::Diff { a, b, output } => {
                let (da, db) = (connect_branch(&p, &a, settings).await?, connect_branch(&p, &b, settings).await?);
                let changes = diff::compare(&diff::snapshot(&da).await?, &diff::snapshot(&db).await?);
                da.close();
                db.close();
                if output.json {
                    let out = serde_json::json!({"a": a, "b": b, "identical": changes.is_empty(), "changes": changes});
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else if changes.is_empty() {
                    println!("{a} and {b} have identical schemas");
                } else {
                    println!("--- {a}\n+++ {b}");
                    print!("{}", diff::render(&changes));
                    println!("{} difference(s)", changes.len());
                }
                return Ok(if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn short(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

fn print_tree(all: &[Branch]) {
    let now = time::OffsetDateTime::now_utc();
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(["branch", "parent", "database", "created", "protected", "expires"]);
    fn walk<'a>(all: &'a [Branch], parent: Option<&str>, depth: usize, out: &mut Vec<(usize, &'a Branch)>) {
        for b in all.iter().filter(|b| b.parent.as_deref() == parent) {
            out.push((depth, b));
            walk(all, Some(&b.name), depth + 1, out);
        }
    }
    let mut rows = Vec::new();
    walk(all, None, 0, &mut rows);
    // Branches whose parent is gone still show, at the top level.
    let orphans: Vec<&Branch> = all.iter().filter(|b| !rows.iter().any(|(_, r)| r.name == b.name)).collect();
    rows.extend(orphans.into_iter().map(|b| (0, b)));
    for (depth, b) in rows {
        let expires = match b.expires_at {
            Some(e) if b.expired(now) => format!("EXPIRED {}", short(e)),
            Some(e) => short(e),
            None => String::new(),
        };
        t.add_row([
            format!("{}{}", "  ".repeat(depth), b.name),
            b.parent.clone().unwrap_or_default(),
            b.location.clone(),
            b.created_at.map(short).unwrap_or_default(),
            if b.protected { "yes".into() } else { String::new() },
            expires,
        ]);
    }
    println!("{t}");
}
