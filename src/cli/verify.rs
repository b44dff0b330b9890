//! `verify`.

use std::process::ExitCode;

use clap::Args;
use comfy_table::Table;
use todo_db::Settings;
use todo_db_ops::verify::{Report, State};

use super::{connect_checked, Output};

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    output: Output,
}

impl VerifyArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_checked(settings).await?;
        let report = todo_db_ops::verify::verify(&db).await?;
        if self.output.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

pub fn print_report(report: &Report) {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(["component", "name", "status", "detail"]);
    for c in &report.components {
        let status = match c.status {
            State::Ok => "ok",
            State::Fail => "FAIL",
        };
        t.add_row([c.kind, c.name.as_str(), status, c.detail.as_str()]);
    }
    println!("{t}");
    let failed = report.failures().count();
    if failed == 0 {
        println!("verify: all {} components ok", report.components.len());
    } else {
        println!("verify: {failed} of {} components FAILED", report.components.len());
    }
}
