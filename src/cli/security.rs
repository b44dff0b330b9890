//! `security check | events | purge-tokens`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::Table;
use todo_db::model::{parse_time, UserId};
use todo_db::security::{events, posture, tokens, EventFilter, EventKind};
use todo_db::Settings;

use super::{connect_admin, connect_checked, Output};

#[derive(Args)]
pub struct SecurityArgs {
    #[command(subcommand)]
    command: SecurityCommand,
}

#[derive(Subcommand)]
enum SecurityCommand {
    /// Posture check: app role without superuser/BYPASSRLS owning nothing, RLS enabled and forced with a policy per granted operation on every user-data table, views security_invoker, SECURITY DEFINER functions with a pinned search_path, and an admin login able to do admin work. Exits 1 on any finding.
    Check(Output),
    /// The security event log, newest first.
    Events(EventsArgs),
    /// Delete API tokens that expired or were revoked more than --grace ago.
    PurgeTokens(PurgeArgs),
}

#[derive(Args)]
struct EventsArgs {
    /// Only this user's events (user id).
    #[arg(long)]
    user: Option<String>,
    /// Only this kind: login_success, login_failure, login_refused_locked, lockout, token_issued, token_used, token_revoked, token_rejected, password_changed, access_denied.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-27T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// At most this many (1..=10000).
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct PurgeArgs {
    /// Keep expired or revoked tokens this long before deleting them (e.g. 30d).
    #[arg(long, default_value = "30d", value_parser = todo_db::config::parse_duration)]
    grace: std::time::Duration,
}

impl SecurityArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let db = match self.command {
            SecurityCommand::Check(_) => connect_checked(settings).await?,
            _ => connect_admin(settings).await?,
        };
        match self.command {
            SecurityCommand::Check(out) => {
                let findings = posture::check(&db).await?;
                let ok = findings.iter().all(|f| f.ok);
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "findings": findings}))?);
                } else {
                    let mut t = Table::new();
                    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
                    t.set_header(["object", "check", "status", "detail"]);
                    for f in &findings {
                        t.add_row([f.object.as_str(), f.check, if f.ok { "ok" } else { "FAIL" }, f.detail.as_str()]);
                    }
                    println!("{t}");
                    let failed = findings.iter().filter(|f| !f.ok).count();
                    println!(
                        "security check: {}",
                        if ok { "all ok".to_string() } else { format!("{failed} finding(s)") }
                    );
                }
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
            }
            SecurityCommand::Events(a) => {
                let filter = EventFilter {
                    user: a.user.as_deref().map(UserId::parse).transpose()?.map(|u| u.0),
                    kind: a.kind.as_deref().map(EventKind::parse).transpose()?,
                    since: a.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
                    limit: Some(a.limit),
                };
                let list = events::list(&db, &filter).await?;
                if a.output.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    let mut t = Table::new();
                    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
                    t.set_header(["at", "kind", "user", "client", "details"]);
                    for e in &list {
                        t.add_row([
                            e.at.to_string(),
                            e.kind.clone(),
                            e.user_id.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                            e.client_addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                            e.details.to_string(),
                        ]);
                    }
                    println!("{t}");
                }
                Ok(ExitCode::SUCCESS)
            }
            SecurityCommand::PurgeTokens(a) => {
                let n = tokens::purge_expired(&db, a.grace).await?;
                println!("purged {n} expired or revoked tokens");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
