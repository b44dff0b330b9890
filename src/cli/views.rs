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
    /// user_task_summary, tasks_by_priority, overdue_tasks, recently_completed_tasks, user_productivity_metrics or tasks_with_tags.
    name: String,
    /// Only this user's rows.
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
    /// Window of recently_completed_tasks, in days.
    #[arg(long, default_value_t = 7)]
    recent_days: u32,
    #[command(flatten)]
    output: Output,
}

impl ViewsArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        match self.command {
            ViewsCommand::List(out) => {
                if out.json {
                    let list: Vec<_> = views::ALL
                        .iter()
                        .map(|(n, d, c)| serde_json::json!({"name": n, "description": d, "columns": c}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for (name, description, _) in views::ALL {
                        println!("{name:<28} {description}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ViewsCommand::Show(a) => {
                let db = connect_admin(settings).await?;
                let options = ReportOptions {
                    time_zone: Some(a.tz),
                    recent_days: Some(a.recent_days),
                    user: a.user.as_deref().map(UserId::parse).transpose()?.map(|u| u.0),
                    limit: Some(a.limit),
                    offset: Some(a.offset),
                };
                let rows = views::show(&db, &a.name, &options).await?;
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
