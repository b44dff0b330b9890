//! `local status | start | stop | url`: the embedded default cluster.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use todo_db::Settings;
use todo_db_ops::local::Cluster;

use super::Output;

#[derive(Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Whether the cluster exists and runs, its port and directory.
    Status(Output),
    /// Create the cluster if needed and start it.
    Start,
    /// Stop the cluster (fast shutdown).
    Stop,
    /// Print the cluster's connection URL (it contains the generated password).
    Url {
        /// The app login's URL instead (APP_DATABASE_URL: user scopes under RLS).
        #[arg(long)]
        app: bool,
    },
}

impl LocalArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let cluster = Cluster::new(settings.home_dir());
        match self.command {
            LocalCommand::Status(out) => {
                let s = cluster.status()?;
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&s)?);
                } else {
                    println!("home:        {}", s.home.display());
                    println!("initialized: {}", s.initialized);
                    println!("running:     {}", s.running);
                    println!("port:        {}", s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()));
                    println!(
                        "binaries:    {}",
                        s.bin_dir.map(|p| p.display().to_string()).unwrap_or_else(|| "not found".into())
                    );
                    println!(
                        "version:     {}",
                        s.version.map(|v| format!("PostgreSQL {v}")).unwrap_or_else(|| "-".into())
                    );
                }
                Ok(if s.running { ExitCode::SUCCESS } else { ExitCode::from(3) })
            }
            LocalCommand::Start => {
                let r = cluster.ensure_running().await?;
                println!("running on 127.0.0.1:{}", r.port);
                Ok(ExitCode::SUCCESS)
            }
            LocalCommand::Stop => {
                let was = tokio::task::spawn_blocking(move || cluster.stop()).await??;
                println!("{}", if was { "stopped" } else { "not running" });
                Ok(ExitCode::SUCCESS)
            }
            LocalCommand::Url { app } => {
                let r = cluster.ensure_running().await?;
                let url = if app {
                    r.app_url().ok_or_else(|| anyhow::anyhow!("the embedded cluster has no app login yet"))?
                } else {
                    r.url()
                };
                println!("{url}");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
