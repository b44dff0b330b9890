//! Embedded, checksummed, forward-only migrations and their runner; with the role set-up
//! ([`roles`]), what `verify` expects ([`expect`]) and whole-database maintenance
//! ([`maintenance`]: reset, the protected mark, checksums).

mod expect;
mod maintenance;
mod roles;

/// Names of the schema's constraints and what each violation means (a leaf module that error
/// mapping reads).
pub use crate::constraints;
pub use expect::{INDEXES, TABLES, TRIGGERS};
pub use maintenance::{checksum, drop_all, owned_objects, protection, quote_ident, set_protected, TableChecksum};
pub use roles::{app_login_sql, plain_identifier};

use crate::db::ClientWrapper;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One SQL file of `migrations/`, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "core", sql: include_str!("../../migrations/0001_core.sql") },
    Migration { version: 2, name: "security", sql: include_str!("../../migrations/0002_security.sql") },
    Migration { version: 3, name: "audit", sql: include_str!("../../migrations/0003_audit.sql") },
    Migration { version: 4, name: "views", sql: include_str!("../../migrations/0004_views.sql") },
    Migration { version: 5, name: "settings", sql: include_str!("../../migrations/0005_settings.sql") },
    Migration { version: 6, name: "preferences", sql: include_str!("../../migrations/0006_preferences.sql") },
    Migration { version: 7, name: "reports", sql: include_str!("../../migrations/0007_reports.sql") },
];

/// Migrations of unreleased development builds, since folded into 0003 (audit) and 0004 (views):
/// a database or a backup that has them was made by such a build.
const FOLDED: &[(i32, &str)] =
    &[(6, "audit_lighter"), (7, "audit_insert_path"), (8, "audit_changed_by_hstore"), (9, "views_per_user")];

/// The refusal of a database or backup (`what`) that has migration `version` `name` of an
/// unreleased build whose migrations were since folded; `None` for any other migration.
pub fn folded(what: &str, version: i32, name: &str) -> Option<String> {
    FOLDED.contains(&(version, name)).then(|| {
        format!(
            "{what} has migration {version:04}_{name}, from a development build of todo-db whose migrations were \
             since folded into 0003_audit and 0004_views: it cannot be migrated. Create a fresh database with \
             this todo-db and copy the data over (pg_dump --data-only of public.users, tasks, tags, task_tags)"
        )
    })
}

/// The PostgreSQL major versions todo-db is tested on (the whole suite, in CI): older ones are
/// refused, newer ones work untested.
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<i32> = 15..=18;

const LEDGER: &str = r#"
create table if not exists todo_db_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,
    applied_at  timestamptz not null default now()
)"#;

/// Serialises concurrent migrators of one database.
const MIGRATION_LOCK: i64 = 0x746f_646f_6462; // "tododb"

/// What `migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i32,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    Applied,
    Pending,
    /// Applied, but the file embedded in this binary differs from what was applied.
    Modified,
    /// Applied by a newer todo-db: this binary does not know it.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    pub version: i32,
    pub name: String,
    pub state: MigrationState,
}

/// Creates the roles, then applies each pending migration whole, in a transaction of its own, as
/// `todo_owner`. Refuses to run if an applied migration was modified or the database is newer
/// than this binary. Concurrent migrators of one database take turns (an advisory lock).
pub async fn migrate(client: &mut ClientWrapper) -> Result<Vec<Applied>> {
    migrate_to(client, None).await
}

/// As [`migrate`], but stops after migration `upto` (a restore loads a backup into the schema
/// version it was taken from, then migrates forward).
pub async fn migrate_to(client: &mut ClientWrapper, upto: Option<i32>) -> Result<Vec<Applied>> {
    let target = client.target().to_string();
    let pg = |e| Error::from_pg(e, &target);
    let mut races = 0;
    loop {
        match client.batch_execute(roles::BOOTSTRAP).await {
            Err(e) if races < RACE_ATTEMPTS && shared_catalog_race(&e) => races = pause(races).await,
            other => break other.map_err(pg)?,
        }
    }
    let mut applied = Vec::new();
    loop {
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        tx.batch_execute("set local role todo_owner").await.map_err(pg)?;
        tx.batch_execute(LEDGER).await.map_err(pg)?;
        let status = status_in(&tx, &target).await?;
        check_applied(&status)?;
        let pending = MIGRATIONS
            .iter()
            .take_while(|m| upto.is_none_or(|u| m.version <= u))
            .find(|m| !status.iter().any(|s| s.version == m.version && s.state == MigrationState::Applied));
        let Some(m) = pending else {
            tx.commit().await.map_err(pg)?;
            return Ok(applied);
        };
        // The whole file as one simple query, inside this transaction; `in_file` tells the
        // file's own failure from the ledger's and the commit's.
        let done = match tx.batch_execute(m.sql).await {
            Err(e) => Err((true, e)),
            Ok(()) => {
                let ledger = tx
                    .execute(
                        "insert into todo_db_migrations (version, name, checksum) values ($1, $2, $3)",
                        &[&m.version, &m.name, &m.checksum()],
                    )
                    .await;
                match ledger {
                    Ok(_) => tx.commit().await.map_err(|e| (false, e)),
                    Err(e) => Err((false, e)),
                }
            }
        };
        match done {
            Ok(()) => applied.push(Applied { version: m.version, name: m.name.to_string() }),
            // The transaction was rolled back whole: run the file again.
            Err((_, e)) if races < RACE_ATTEMPTS && shared_catalog_race(&e) => races = pause(races).await,
            Err((true, e)) => return Err(migration_failed(m, &e)),
            Err((false, e)) => return Err(pg(e)),
        }
    }
}

/// How often a migration step runs at most when it keeps losing races on shared catalogs.
const RACE_ATTEMPTS: u32 = 5;

/// Whether `e` is PostgreSQL losing a race on a shared catalog row (roles, memberships, database
/// privileges: "tuple concurrently updated/deleted") with another database's DDL in the same
/// cluster. The statement did nothing; running it again is safe.
pub(super) fn shared_catalog_race(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        d.code() == &tokio_postgres::error::SqlState::INTERNAL_ERROR && d.message().contains("concurrently")
    })
}

/// A short pause, longer each time, before another attempt; returns the attempts so far.
async fn pause(races: u32) -> u32 {
    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(races + 1))).await;
    races + 1
}

/// Refuses a ledger with a modified, unknown or folded migration.
fn check_applied(status: &[MigrationStatus]) -> Result<()> {
    for s in status {
        if let Some(refusal) = folded("the database", s.version, &s.name) {
            return Err(Error::Migration(refusal));
        }
    }
    if let Some(bad) = status.iter().find(|s| s.state == MigrationState::Modified) {
        return Err(Error::Migration(format!(
            "migration {:04}_{} was changed after it was applied; restore the original file and add a new migration instead",
            bad.version, bad.name
        )));
    }
    if let Some(newer) = status.iter().find(|s| s.state == MigrationState::Unknown) {
        return Err(Error::Migration(format!(
            "the database has migration {:04}_{}, which this todo-db does not know: upgrade todo-db",
            newer.version, newer.name
        )));
    }
    Ok(())
}

/// A failed migration's error: the file, the server's message, and the line it points at.
fn migration_failed(m: &Migration, e: &tokio_postgres::Error) -> Error {
    let at = e
        .as_db_error()
        .and_then(|db| match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
            _ => None,
        })
        .map(|p| {
            // The position counts characters, from 1.
            let line = m.sql.chars().take(p.saturating_sub(1)).filter(|&c| c == '\n').count() + 1;
            format!("\n  at line {line}: {}", m.sql.lines().nth(line - 1).unwrap_or("").trim())
        })
        .unwrap_or_default();
    Error::Migration(format!("{:04}_{} failed: {}{at}", m.version, m.name, crate::error::error_chain(e)))
}

/// Each known and each applied migration with its state. No ledger yet: everything pending.
pub async fn status(client: &ClientWrapper) -> Result<Vec<MigrationStatus>> {
    status_in(&**client, client.target()).await
}

async fn status_in(client: &impl tokio_postgres::GenericClient, target: &str) -> Result<Vec<MigrationStatus>> {
    let pg = |e| Error::from_pg(e, target);
    let exists: bool =
        client.query_one("select to_regclass('public.todo_db_migrations') is not null", &[]).await.map_err(pg)?.get(0);
    let rows = if exists {
        client
            .query("select version, name, checksum from todo_db_migrations order by version", &[])
            .await
            .map_err(pg)?
    } else {
        Vec::new()
    };
    let mut out: Vec<MigrationStatus> = MIGRATIONS
        .iter()
        .map(|m| {
            let state = match rows.iter().find(|r| r.get::<_, i32>(0) == m.version) {
                None => MigrationState::Pending,
                Some(r) if r.get::<_, String>(2) == m.checksum() => MigrationState::Applied,
                Some(_) => MigrationState::Modified,
            };
            MigrationStatus { version: m.version, name: m.name.to_string(), state }
        })
        .collect();
    for r in &rows {
        let v: i32 = r.get(0);
        if !MIGRATIONS.iter().any(|m| m.version == v) {
            out.push(MigrationStatus { version: v, name: r.get(1), state: MigrationState::Unknown });
        }
    }
    Ok(out)
}
