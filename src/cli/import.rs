//! `import`: a database of the original Python module brought into todo-db's schema.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use comfy_table::Table;
use todo_db::config::Secret;
use todo_db::{Db, Settings};
use todo_db_ops::import::{self, ImportOptions, ImportReport, Progress};

use super::{connect_admin, Output};

#[derive(Args)]
pub struct ImportArgs {
    /// The original module's database (postgresql://...); also TODO_DB_IMPORT_FROM, which keeps
    /// its password out of the process list.
    #[arg(long, value_name = "URL", env = "TODO_DB_IMPORT_FROM", hide_env_values = true)]
    from: String,
    /// Count what would be imported and list every row that cannot be, by id and reason; write
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace the todo-db data the target already holds (refused without it).
    #[arg(long)]
    replace: bool,
    /// Import what can be and leave the rows that cannot behind (counted by reason); without it
    /// any such row stops the import before anything is written.
    #[arg(long)]
    skip_invalid: bool,
    /// Replace even a database marked protected or with TODO_DB_ENVIRONMENT=production.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    output: Output,
}

impl ImportArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = connect_admin(settings).await?;
        if self.replace && !self.dry_run {
            super::data::refuse_if_protected(&db, settings, self.force, "import --replace").await?;
        }
        let mut s = settings.clone();
        s.pool.size = 1;
        s.pool.overflow = 0;
        s.app_url = None;
        s.read_url = None;
        let from = Secret::new(self.from.clone());
        let source = Db::connect_url(from.expose(), &s).await.map_err(|e| anyhow::anyhow!("--from {from}: {e}"))?;
        let options = ImportOptions { dry_run: self.dry_run, replace: self.replace, skip_invalid: self.skip_invalid };
        let progress = Arc::new(Progress::default());
        let read = || (progress.rows(), progress.total(), progress.phase());
        let work = import::import(&db, &source, &options, progress.clone());
        let report = super::data::with_progress("import", work, read).await?;
        if self.output.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report, &from);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_report(r: &ImportReport, from: &Secret<String>) {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(["table", "rows"]);
    for (table, n) in &r.plan.rows {
        t.add_row([table.clone(), n.to_string()]);
    }
    println!("{t}");
    for p in &r.plan.problems {
        println!("cannot import {} {}: {}", p.table, p.id.as_deref().unwrap_or("-"), p.reason);
    }
    for ((table, reason), n) in r.plan.problem_counts() {
        println!("{} {n} row(s) of {table}: {reason}", if r.imported { "left behind" } else { "would leave behind" });
    }
    for t in &r.plan.missing_tables {
        println!("the source has no {t}: none imported");
    }
    for n in &r.plan.not_carried {
        println!("not carried: {n}");
    }
    if r.imported {
        println!(
            "imported {} rows from {from} into {} in {:.1}s ({:.0} rows/s)",
            r.rows, r.target, r.seconds, r.rows_per_second
        );
    } else {
        println!(
            "dry run: {} rows would be imported from {from} into {}; nothing written",
            r.plan.total_rows(),
            r.target
        );
    }
}
