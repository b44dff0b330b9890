//! `views list | show`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::Table;
use todo_db::model::UserId;
use todo_db::views::{self, ReportOptions};
use todo_db::Settings;

use super::{connect_admin, Output};

#[derive(Args)]
pub struct ViewsArgs {
    #[command(subcommand)]
    command: ViewsCommand,
}

#[derive(Subcommand)]
enum ViewsCommand {
    /// The reporting views and what each holds.
    List(Output),
    /// Rows of one view (all users, or one with --user).
    Show(ShowArgs),
}

#[derive(Args)]
struct ShowArgs {
    /// A view (user_task_summary, task_priority_counts, tasks_by_priority, overdue_tasks,
    /// recently_completed_tasks, user_productivity_metrics, tasks_with_tags) or an activity report
    /// of one user (recent_user_activity, task_change_summary: --user required).
    name: String,
    /// Only this user's rows (an activity report reads this user's history).
    #[arg(long)]
    user: Option<String>,
    /// At most this many rows (1..=10000).
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Skip this many rows (pagination).
    #[arg(long, default_value_t = 0)]
    offset: i64,
    /// Time zone for calendar days (today, streaks), e.g. Europe/Paris.
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// Window of recently_completed_tasks and recent_user_activity, in days.
    #[arg(long, default_value_t = 30)]
    recent_days: u32,
    #[command(flatten)]
    output: Output,
}

impl ViewsArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        match self.command {
            ViewsCommand::List(out) => {
                if out.json {
                    let mut list: Vec<_> = views::ALL
                        .iter()
                        .map(|(n, d, c)| serde_json::json!({"name": n, "description": d, "columns": c}))
                        .collect();
                    list.extend(REPORTS.iter().map(|(n, d)| serde_json::json!({"name": n, "description": d})));
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for (name, description, _) in views::ALL {
                        println!("{name:<28} {description}");
                    }
                    for (name, description) in REPORTS {
                        println!("{name:<28} {description}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ViewsCommand::Show(a) => {
                let db = connect_admin(settings).await?;
                let options = ReportOptions {
                    time_zone: Some(a.tz.clone()),
                    recent_days: Some(a.recent_days),
                    user: a.user.as_deref().map(UserId::parse).transpose()?.map(|u| u.0),
                    limit: Some(a.limit),
                    offset: Some(a.offset),
                };
                let rows = match REPORTS.iter().any(|r| r.0 == a.name) {
                    true => activity(&db, &a).await?,
                    false => views::show(&db, &a.name, &options).await?,
                };
                if a.output.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let columns = views::ALL.iter().find(|v| v.0 == a.name).map(|v| v.2).unwrap_or_default();
                let headers: Vec<String> = match rows.first().and_then(|r| r.as_object()) {
                    Some(obj) => obj.keys().cloned().collect(),
                    None => columns.iter().map(|c| c.to_string()).collect(),
                };
                let mut t = Table::new();
                t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
                t.set_header(headers.clone());
                for r in &rows {
                    t.add_row(headers.iter().map(|h| match &r[h] {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".to_string(),
                        v => v.to_string(),
                    }));
                }
                println!("{t}");
                println!("{} rows", rows.len());
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// The activity reports: typed reads of one user's history (`todo_db::audit::history`).
const REPORTS: [(&str, &str); 2] = [
    ("recent_user_activity", "one user's changes per change type over the last N days (--user, --recent-days)"),
    ("task_change_summary", "per task one user changed: change count, first and last change, change types (--user)"),
];

async fn activity(db: &todo_db::Db, a: &ShowArgs) -> anyhow::Result<Vec<serde_json::Value>> {
    use todo_db::audit::history;
    let Some(user) = a.user.as_deref() else {
        anyhow::bail!("--user: {} reads one user's history; name the user", a.name);
    };
    let scope = db.user(UserId::parse(user)?);
    let rows = match a.name.as_str() {
        "recent_user_activity" => serde_json::to_value(history::recent_user_activity(&scope, a.recent_days).await?)?,
        _ => serde_json::to_value(history::task_change_summary(&scope, a.limit.min(1000)).await?)?,
    };
    Ok(rows.as_array().cloned().unwrap_or_default())
}
