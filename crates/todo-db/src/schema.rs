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
    Migration { version: 6, name: "audit_lighter", sql: include_str!("../migrations/0006_audit_lighter.sql") },
    Migration { version: 7, name: "audit_insert_path", sql: include_str!("../migrations/0007_audit_insert_path.sql") },
    Migration {
        version: 8,
        name: "audit_changed_by_hstore",
        sql: include_str!("../migrations/0008_audit_changed_by_hstore.sql"),
    },
    Migration { version: 9, name: "views_per_user", sql: include_str!("../migrations/0009_views_per_user.sql") },
];

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

/// Creates the roles, then applies pending migrations in one transaction as `todo_owner`.
/// Refuses to run if an applied migration was modified or the database is newer than this binary.
pub async fn migrate(client: &mut Client) -> Result<Vec<Applied>> {
    migrate_to(client, None).await
}

/// As [`migrate`], but stops after migration `upto` (a restore loads a backup into the schema
/// version it was taken from, then migrates forward).
pub async fn migrate_to(client: &mut Client, upto: Option<i32>) -> Result<Vec<Applied>> {
    let pg = |e| Error::from_pg(e, "migrate");
    client.batch_execute(BOOTSTRAP).await.map_err(pg)?;
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute("set local role todo_owner").await.map_err(pg)?;
    tx.batch_execute(LEDGER).await.map_err(pg)?;
    let status = status_in(&tx).await?;
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
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().take_while(|m| upto.is_none_or(|u| m.version <= u)) {
        if status.iter().any(|s| s.version == m.version && s.state == MigrationState::Applied) {
            continue;
        }
        for stmt in split_statements(m.sql) {
            tx.batch_execute(stmt).await.map_err(|e| {
                Error::Migration(format!(
                    "{:04}_{} failed: {}\n  in statement: {}",
                    m.version,
                    m.name,
                    crate::error::error_chain(&e),
                    one_line(stmt)
                ))
            })?;
        }
        tx.execute(
            "insert into todo_db_migrations (version, name, checksum) values ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .map_err(pg)?;
        applied.push(Applied { version: m.version, name: m.name.to_string() });
    }
    tx.commit().await.map_err(pg)?;
    Ok(applied)
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

/// Splits a migration into its statements at top-level semicolons, respecting quoted strings,
/// quoted identifiers, dollar-quoted bodies and comments; so each statement runs on its own and
/// a failure names its statement.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 1; // doubled quote: still inside
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // A dollar quote: $$ or $tag$ ... the same tag.
                let tag_end = sql[i + 1..].find(|c: char| !(c.is_alphanumeric() || c == '_')).map(|n| i + 1 + n);
                if let Some(end) = tag_end.filter(|&e| bytes.get(e) == Some(&b'$')) {
                    let tag = &sql[i..=end];
                    match sql[end + 1..].find(tag) {
                        Some(close) => i = end + 1 + close + tag.len() - 1,
                        None => i = bytes.len(),
                    }
                }
            }
            b';' => {
                out.push(&sql[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&sql[start.min(sql.len())..]);
    out.into_iter().filter(|s| s.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))).collect()
}

/// A statement on one line without comments, shortened for an error message.
fn one_line(stmt: &str) -> String {
    let text = stmt
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(|l| l.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 160 {
        format!("{}...", text.chars().take(160).collect::<String>())
    } else {
        text
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_top_level_semicolons_only() {
        let sql = "create table a (x text default 'a;b'); -- one; two\n\
                   create function f() returns int language sql as $$ select 1; $$;\n\
                   create function g() returns int language plpgsql as $body$ begin return 1; end $body$;\n\
                   comment on table a is 'it''s; fine'; /* a; comment */ select \"odd;name\" from a";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 5, "{parts:#?}");
        assert!(parts[1].contains("select 1; $$;"));
        assert!(parts[2].contains("return 1; end $body$;"));
        assert!(parts[3].contains("it''s; fine"));
        assert!(parts[4].contains("\"odd;name\""));
    }

    #[test]
    fn every_migration_splits_into_whole_statements() {
        for m in MIGRATIONS {
            let parts = split_statements(m.sql);
            assert!(parts.len() > 1, "{}", m.name);
            for p in &parts {
                assert_eq!(p.matches("$$").count() % 2, 0, "{}: unbalanced dollar quote in {p}", m.name);
            }
            assert!(parts.concat().split_whitespace().count() <= m.sql.split_whitespace().count());
        }
    }
}
