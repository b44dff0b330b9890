//! The roles of the RLS model and the logins that act as them.

use crate::error::{Error, Result};

/// The roles of the RLS model (DESIGN.md), created once per cluster, and what the login needs to
/// act as them: SET (migrations run as `todo_owner`, user scopes as `todo_app`) and INHERIT (the
/// admin login reads and writes what `todo_owner` owns without switching). Idempotent; safe to run
/// concurrently.
///
/// Since PostgreSQL 16 a role created by a non-superuser with CREATEROLE (Neon's owner role) is
/// granted back to its creator with ADMIN OPTION only, not SET nor INHERIT (unless
/// `createrole_self_grant` says otherwise), so the login grants itself both, which ADMIN OPTION
/// allows. A login that lacks them and may not grant them is told which grant to ask for.
pub(super) const BOOTSTRAP: &str = r#"
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
