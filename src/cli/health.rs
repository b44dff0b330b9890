//! `health`: the checks an on-call engineer runs, as a table or JSON, once or every few seconds.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use comfy_table::{Cell, Color, Table};
use todo_db::Settings;
use todo_db_ops::health::{self, Report, Status, Thresholds};

use super::{connect_admin, Output};

#[derive(Args)]
pub struct HealthArgs {
    /// Run only these checks (repeatable): connection, server_version, pool, connections,
    /// long_queries, idle_in_transaction, blocked, wraparound, dead_tuples, cache_hit,
    /// database_size, replica_lag, migrations, rls_posture, audit_triggers, audit_seal_age.
    #[arg(long = "check", value_name = "NAME")]
    checks: Vec<String>,
    /// Run again every SECONDS until interrupted (the exit code is the last run's).
    #[arg(long, value_name = "SECONDS")]
    watch: Option<u64>,
    #[command(flatten)]
    output: Output,
}

impl HealthArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let thresholds = Thresholds::from_env()?;
        let db = match connect_admin(settings).await {
            Ok(db) => db,
            Err(e) => {
                // Unreachable is itself the most important finding: report it as critical.
                let msg = format!("{e:#}");
                if self.output.json {
                    let out = serde_json::json!({"status": "critical", "checks": [{"name": "connection", "status": "critical", "message": msg}]});
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    println!("CRITICAL connection: {msg}");
                }
                return Ok(ExitCode::from(Status::Critical.exit_code()));
            }
        };
        loop {
            let report = health::run(&db, None, &thresholds, &self.checks).await?;
            if self.output.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            let Some(every) = self.watch else {
                return Ok(ExitCode::from(report.status.exit_code()));
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(every.max(1))) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(report.status.exit_code())),
            }
        }
    }
}

fn print_report(r: &Report) {
    let colour = std::io::stdout().is_terminal();
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(["check", "status", "value", "message"]);
    for c in &r.checks {
        let mut status = Cell::new(c.status.as_str().to_uppercase());
        if colour {
            status = status.fg(match c.status {
                Status::Ok => Color::Green,
                Status::Warning => Color::Yellow,
                Status::Critical => Color::Red,
                Status::Unknown => Color::Magenta,
            });
        }
        let value = c.value.map(|v| format!("{} {}", trim(v), c.unit)).unwrap_or_default();
        t.add_row(vec![Cell::new(c.name), status, Cell::new(value), Cell::new(&c.message)]);
    }
    println!("{t}");
    println!("{}: {}", r.target, r.status.as_str().to_uppercase());
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
