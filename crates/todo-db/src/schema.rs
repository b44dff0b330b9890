//! Embedded, checksummed, forward-only migrations; role set-up; `init`, `verify` and `reset`.

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

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
    Migration { version: 1, name: "core", sql: include_str!("../migrations/0001_core.sql") },
    Migration { version: 2, name: "security", sql: include_str!("../migrations/0002_security.sql") },
    Migration { version: 3, name: "audit", sql: include_str!("../migrations/0003_audit.sql") },
    Migration { version: 4, name: "views", sql: include_str!("../migrations/0004_views.sql") },
    Migration { version: 5, name: "settings", sql: include_str!("../migrations/0005_settings.sql") },
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

/// The roles of the RLS model (DESIGN.md), created once per cluster, and what the login needs to
/// act as them: SET (migrations run as `todo_owner`, user scopes as `todo_app`) and INHERIT (the
/// admin login reads and writes what `todo_owner` owns without switching). Idempotent; safe to run
/// concurrently.
///
/// Since PostgreSQL 16 a role created by a non-superuser with CREATEROLE (Neon's owner role) is
/// granted back to its creator with ADMIN OPTION only, not SET nor INHERIT (unless
/// `createrole_self_grant` says otherwise), so the login grants itself both, which ADMIN OPTION
/// allows. A login that lacks them and may not grant them is told which grant to ask for.
const BOOTSTRAP: &str = r#"
do $$
declare
    r text;
    since_16 boolean := current_setting('server_version_num')::int >= 160000;
begin
    -- Cluster-wide objects (roles, memberships) are touched only when missing: concurrent
    -- bootstraps of other databases would otherwise race on the same shared catalog rows.
    if not exists (select 1 from pg_roles where rolname = 'todo_owner') then
        begin
            create role todo_owner nologin;
        exception when duplicate_object or unique_violation then null;
        end;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'todo_app') then
        begin
            create role todo_app nologin nobypassrls;
        exception when duplicate_object or unique_violation then null;
        end;
    end if;
    foreach r in array array['todo_owner', 'todo_app'] loop
        if since_16 then
            if not (pg_has_role(current_user, r, 'set') and pg_has_role(current_user, r, 'usage')) then
                begin
                    execute format('grant %I to current_user with inherit true, set true', r);
                exception when insufficient_privilege then
                    raise exception 'the login % may not act as role %: it needs SET and INHERIT on it', current_user, r
                        using errcode = 'insufficient_privilege',
                              hint = format('as a role with ADMIN OPTION on %s (its creator, or a superuser), run: grant %s to %s with set true, inherit true',
                                            r, r, quote_ident(current_user));
                end;
            end if;
        elsif not pg_has_role(current_user, r, 'member') then
            begin
                execute format('grant %I to current_user', r);
            exception when insufficient_privilege then
                raise exception 'the login % may not act as role %: it is not a member', current_user, r
                    using errcode = 'insufficient_privilege',
                          hint = format('as a role with ADMIN OPTION on %s (or a superuser), run: grant %s to %s', r, r, quote_ident(current_user));
            end;
        end if;
    end loop;
    if not pg_has_role(current_user, 'todo_owner', 'usage') then
        raise exception 'the login % does not inherit the privileges of todo_owner', current_user
            using errcode = 'insufficient_privilege',
                  hint = format('run: alter role %s inherit', quote_ident(current_user));
    end if;
    if not has_database_privilege('todo_owner', current_database(), 'create') then
        execute format('grant create on database %I to todo_owner', current_database());
    end if;
end
$$;
grant usage, create on schema public to todo_owner;
grant usage on schema public to todo_app;
"#;

/// Checks that `login` is a plain lower-case identifier ([a-z_][a-z0-9_]*): safe in SQL unquoted.
pub fn plain_identifier(login: &str) -> Result<()> {
    let plain = login.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && login.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(Error::Config(format!("login name {login:?} must be a lower-case identifier ([a-z_][a-z0-9_]*)")));
    }
    Ok(())
}

/// The SQL that creates (or re-passwords) a login for user scopes: a member of `todo_app` and
/// nothing else (not superuser, no BYPASSRLS, owns nothing), so code holding it cannot leave row-
/// level security even by `RESET ROLE`. Cluster-wide; creates `todo_app` when `init` has not yet.
/// `login` is a plain lower-case identifier. Holds the password: send it, never log it.
pub fn app_login_sql(login: &str, password: &str) -> Result<String> {
    plain_identifier(login)?;
    let password = password.replace('\'', "''");
    Ok(format!(
        r#"do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'todo_app') then
        create role todo_app nologin nobypassrls;
    end if;
    if not exists (select 1 from pg_roles where rolname = '{login}') then
        create role {login} login;
    end if;
    -- Only a superuser may take SUPERUSER or BYPASSRLS away (PostgreSQL 15): refuse instead.
    if exists (select 1 from pg_roles where rolname = '{login}' and (rolsuper or rolbypassrls)) then
        raise exception 'the login {login} is a superuser or bypasses row-level security, so it cannot be the app login'
            using errcode = 'insufficient_privilege',
                  hint = 'as a superuser, run: alter role {login} nosuperuser nobypassrls';
    end if;
end
$$;
alter role {login} login nocreatedb nocreaterole inherit password '{password}';
grant todo_app to {login};
-- A creator that is not a superuser (Neon's owner role) may not signal the app login's sessions
-- (`branch create --force`, `reset`, a replacing restore end them) until it has the app login's
-- privileges: it takes them, which gives it nothing more (the login holds only todo_app's).
do $$
begin
    if not (select rolsuper from pg_roles where rolname = current_user)
        and not pg_has_role(current_user, '{login}', 'usage') then
        if current_setting('server_version_num')::int >= 160000 then
            execute 'grant {login} to current_user with inherit true, set false';
        else
            grant {login} to current_user;
        end if;
    end if;
end
$$;
"#
    ))
}

const LEDGER: &str = r#"
create table if not exists todo_db_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,
    applied_at  timestamptz not null default now()
)"#;

/// Serialises concurrent migrators of one database.
const MIGRATION_LOCK: i64 = 0x746f_646f_6462; // "tododb"

/// Names of the schema's constraints and what each violation means (a leaf module that error
/// mapping reads).
pub use crate::constraints;

/// Every table holding user data: RLS enabled and forced on each.
pub const TABLES: &[&str] = &["users", "tasks", "tags", "task_tags", "api_tokens", "security_events"];

pub const INDEXES: &[&str] = &[
    "users_pkey",
    "users_email_key",
    "tasks_pkey",
    "tasks_user_id_key",
    "tasks_user_created_idx",
    "tasks_user_updated_idx",
    "tasks_user_due_idx",
    "tasks_user_priority_idx",
    "tags_pkey",
    "tags_user_name_key",
    "tags_user_id_key",
    "task_tags_pkey",
    "task_tags_tag_idx",
    "api_tokens_pkey",
    "api_tokens_hash_key",
    "api_tokens_user_idx",
    "api_tokens_expires_idx",
    "security_events_pkey",
    "security_events_user_idx",
    "security_events_kind_idx",
    "security_events_at_idx",
    "tasks_user_overdue_idx",
    "tasks_user_completed_idx",
    "log_pkey",
    "log_record_idx",
    "log_user_idx",
    "log_at_idx",
];

pub const TRIGGERS: &[(&str, &str)] = &[("users", "users_set_updated_at"), ("tasks", "tasks_set_updated_at")];

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
pub async fn migrate(client: &mut Client) -> Result<Vec<Applied>> {
    migrate_to(client, None).await
}

/// As [`migrate`], but stops after migration `upto` (a restore loads a backup into the schema
/// version it was taken from, then migrates forward).
pub async fn migrate_to(client: &mut Client, upto: Option<i32>) -> Result<Vec<Applied>> {
    let pg = |e| Error::from_pg(e, "migrate");
    client.batch_execute(BOOTSTRAP).await.map_err(pg)?;
    let mut applied = Vec::new();
    loop {
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        tx.batch_execute("set local role todo_owner").await.map_err(pg)?;
        tx.batch_execute(LEDGER).await.map_err(pg)?;
        let status = status_in(&tx).await?;
        check_applied(&status)?;
        let pending = MIGRATIONS
            .iter()
            .take_while(|m| upto.is_none_or(|u| m.version <= u))
            .find(|m| !status.iter().any(|s| s.version == m.version && s.state == MigrationState::Applied));
        let Some(m) = pending else {
            tx.commit().await.map_err(pg)?;
            return Ok(applied);
        };
        // The whole file as one simple query, inside this transaction.
        tx.batch_execute(m.sql).await.map_err(|e| migration_failed(m, &e))?;
        tx.execute(
            "insert into todo_db_migrations (version, name, checksum) values ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        applied.push(Applied { version: m.version, name: m.name.to_string() });
    }
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
pub async fn status(client: &Client) -> Result<Vec<MigrationStatus>> {
    status_in(client).await
}

async fn status_in(client: &impl tokio_postgres::GenericClient) -> Result<Vec<MigrationStatus>> {
    let pg = |e| Error::from_pg(e, "migration status");
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

/// Drops every todo-db object in this database (the roles, shared by the cluster, stay).
pub async fn drop_all(client: &Client) -> Result<()> {
    // DROP OWNED also touches shared catalogs (the database's privileges), where a concurrent
    // change elsewhere in the cluster can make it fail with "tuple concurrently updated/deleted";
    // it is all-or-nothing, so trying again is safe.
    let mut attempt = 0;
    loop {
        let r = client
            .batch_execute(
                "begin; drop owned by todo_owner, todo_app cascade; drop table if exists todo_db_migrations; commit",
            )
            .await;
        match r {
            Err(e) if attempt < 5 && e.to_string().contains("concurrently") => {
                let _ = client.batch_execute("rollback").await;
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map_err(|e| Error::from_pg(e, "reset")),
        }
    }
}

/// The objects `drop_all` would remove, for `reset --dry-run`.
pub async fn owned_objects(client: &Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            "select c.relkind::text || ' ' || c.relname from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = 'public' and pg_get_userbyid(c.relowner) = 'todo_owner' and c.relkind in ('r','v','m') \
             order by c.relname",
            &[],
        )
        .await
        .map_err(|e| Error::from_pg(e, "reset"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let s: String = r.get(0);
            s.replacen("r ", "table ", 1).replacen("v ", "view ", 1).replacen("m ", "materialized view ", 1)
        })
        .collect())
}

/// Quotes an identifier for the few statements that cannot take parameters (CREATE DATABASE).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Why destructive commands (`reset`, `seed`, `backup restore --replace`) must refuse on this
/// database without `--force`, if they must: the database's protected mark (`todo-db protect on`)
/// or `TODO_DB_ENVIRONMENT=production`.
pub async fn protection(client: &Client, environment: Option<&str>) -> Result<Option<String>> {
    if let Some(env) = environment.filter(|e| e.eq_ignore_ascii_case("production")) {
        return Ok(Some(format!("TODO_DB_ENVIRONMENT={env}")));
    }
    let fail = |e| Error::from_pg(e, "protection check");
    let exists: bool =
        client.query_one("select to_regclass('todo_db_settings') is not null", &[]).await.map_err(fail)?.get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "select updated_by, updated_at::text from todo_db_settings where name = 'protected' and value = 'on'",
            &[],
        )
        .await
        .map_err(fail)?;
    Ok(row.map(|r| {
        let (by, at): (String, String) = (r.get(0), r.get(1));
        format!("the database is marked protected (by {by} at {at}; `todo-db protect off` removes the mark)")
    }))
}

/// Sets or clears the database's protected mark.
pub async fn set_protected(client: &Client, on: bool) -> Result<()> {
    client
        .execute(
            "insert into todo_db_settings (name, value) values ('protected', $1) \
             on conflict (name) do update set value = excluded.value, updated_at = now(), updated_by = session_user",
            &[&if on { "on" } else { "off" }],
        )
        .await
        .map_err(|e| Error::from_pg(e, "protect"))?;
    Ok(())
}

/// A table's row count and content digest, computed by the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableChecksum {
    pub table: String,
    pub rows: i64,
    /// MD5 over the MD5s of each row's text form, in primary-key order (UTC, fixed formats).
    pub digest: String,
}

/// Row counts and content digests of every todo-db table, from one snapshot. Two databases with
/// the same data give the same digests, whatever their physical layout.
pub async fn checksum(client: &mut Client) -> Result<Vec<TableChecksum>> {
    let fail = |e| Error::from_pg(e, "checksum");
    let tx = client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true);
    let tx = tx.start().await.map_err(fail)?;
    tx.batch_execute("set local timezone = 'UTC'; set local datestyle = 'ISO, YMD'; set local extra_float_digits = 1")
        .await
        .map_err(fail)?;
    let mut out = Vec::new();
    for table in TABLES.iter().copied().chain(["audit.log"]) {
        let key: String = tx
            .query_one(
                "select string_agg(quote_ident(a.attname), ', ' order by k.ord) from pg_index i \
                 cross join unnest(i.indkey) with ordinality k(attnum, ord) \
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
                 where i.indrelid = $1::text::regclass and i.indisprimary",
                &[&table],
            )
            .await
            .map_err(fail)?
            .get(0);
        let row = tx
            .query_one(
                &format!(
                    "select count(*), coalesce(md5(string_agg(md5(t::text), '' order by {key})), '') from {table} t"
                ),
                &[],
            )
            .await
            .map_err(fail)?;
        out.push(TableChecksum { table: table.to_string(), rows: row.get(0), digest: row.get(1) });
    }
    tx.commit().await.map_err(fail)?;
    Ok(out)
}
