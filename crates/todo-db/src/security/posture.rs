//! The security posture check: is the database set up so that one user cannot reach another's
//! data, even through a bug in the application?

use serde::Serialize;

use crate::db::{Conn, Db};
use crate::error::Result;
use crate::schema;

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The object checked: a role, table, view or function.
    pub object: String,
    pub check: &'static str,
    pub ok: bool,
    /// What was found, and for a failure, how to fix it.
    pub detail: String,
}

fn finding(object: impl Into<String>, check: &'static str, ok: bool, detail: impl Into<String>) -> Finding {
    Finding { object: object.into(), check, ok, detail: detail.into() }
}

/// Runs every check against the app role `todo_app`.
pub async fn check(db: &Db) -> Result<Vec<Finding>> {
    check_role(db, "todo_app").await
}

/// Runs every check, treating `app_role` as the application's role.
pub async fn check_role(db: &Db, app_role: &str) -> Result<Vec<Finding>> {
    db.admin().with_connection(async |conn| check_on(conn, db, app_role).await).await
}

async fn check_on(conn: &Conn, db: &Db, app_role: &str) -> Result<Vec<Finding>> {
    let pg = |e| db.map_err(e);
    let mut out = Vec::new();
    out.extend(role_findings(conn, app_role).await.map_err(pg)?);
    if let Some(login) = db.app_login() {
        // The login user scopes run as (APP_DATABASE_URL): bound by RLS like the app role.
        out.extend(role_findings(conn, login).await.map_err(pg)?);
        let member: bool = conn
            .query_one(
                "select exists (select 1 from pg_roles a where a.rolname = $2 and pg_has_role($1, a.oid, 'usage'))",
                &[&login, &app_role],
            )
            .await
            .map_err(pg)?
            .get(0);
        out.push(finding(
            format!("role {login}"),
            "member of the app role",
            member,
            if member { format!("member of {app_role}") } else { format!("not a member: grant {app_role} to {login}") },
        ));
    }

    let tables = conn
        .query(
            "select c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity, \
                    has_any_column_privilege($1, c.oid, 'select'), has_any_column_privilege($1, c.oid, 'insert'), \
                    has_any_column_privilege($1, c.oid, 'update'), has_table_privilege($1, c.oid, 'delete'), \
                    coalesce((select array_agg(p.polcmd::text) from pg_policy p where p.polrelid = c.oid), '{}') \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname in ('public', 'audit') and c.relkind = 'r' and c.oid::regclass::text = any($2)",
            &[&app_role, &schema::TABLES],
        )
        .await
        .map_err(pg)?;
    for &t in schema::TABLES {
        let object = format!("table {t}");
        let Some(r) = tables.iter().find(|r| r.get::<_, String>(0) == t) else {
            out.push(finding(object, "exists", false, "missing: run `todo-db init`"));
            continue;
        };
        let (enabled, forced): (bool, bool) = (r.get(1), r.get(2));
        out.push(finding(
            &object,
            "RLS enabled and forced",
            enabled && forced,
            match (enabled, forced) {
                (true, true) => "enabled and forced".to_string(),
                (false, _) => format!("RLS disabled: alter table {t} enable row level security"),
                (true, false) => {
                    format!("RLS not forced: alter table {t} force row level security")
                }
            },
        ));
        let cmds: Vec<String> = r.get(7);
        let has = |c: &str| cmds.iter().any(|p| p == c || p == "*");
        let missing: Vec<&str> = [("select", 3, "r"), ("insert", 4, "a"), ("update", 5, "w"), ("delete", 6, "d")]
            .into_iter()
            .filter(|(_, col, cmd)| r.get::<_, bool>(*col) && !has(cmd))
            .map(|(name, _, _)| name)
            .collect();
        out.push(finding(
            &object,
            "a policy per granted operation",
            missing.is_empty(),
            if missing.is_empty() {
                "every operation granted to the app role has a policy".to_string()
            } else {
                format!("{app_role} may {} but no policy covers it: add one, or revoke the grant", missing.join(", "))
            },
        ));
    }

    let views = conn
        .query(
            "select c.relname::text, coalesce(c.reloptions, '{}') from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'v' and n.nspname not in ('pg_catalog', 'information_schema') \
               and has_table_privilege($1, c.oid, 'select')",
            &[&app_role],
        )
        .await
        .map_err(pg)?;
    for v in &views {
        let name: String = v.get(0);
        let opts: Vec<String> = v.get(1);
        let invoker = opts
            .iter()
            .any(|o| matches!(o.as_str(), "security_invoker=true" | "security_invoker=on" | "security_invoker=1"));
        out.push(finding(
            format!("view {name}"),
            "security_invoker",
            invoker,
            if invoker {
                "security_invoker".to_string()
            } else {
                format!("runs with its owner's rights, bypassing RLS: alter view {name} set (security_invoker = true)")
            },
        ));
    }

    let functions = conn
        .query(
            "select p.oid::regprocedure::text, coalesce(p.proconfig, '{}') from pg_proc p \
             join pg_namespace n on n.oid = p.pronamespace \
             where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(pg)?;
    for f in &functions {
        let name: String = f.get(0);
        let config: Vec<String> = f.get(1);
        let pinned = config.iter().any(|c| c.starts_with("search_path="));
        out.push(finding(
            format!("function {name}"),
            "SECURITY DEFINER pins search_path",
            pinned,
            if pinned {
                "search_path pinned".to_string()
            } else {
                format!("SECURITY DEFINER without a fixed search_path: alter function {name} set search_path = pg_catalog, public")
            },
        ));
    }

    let login = conn
        .query_one(
            "select current_user::text, rolsuper, rolbypassrls, pg_has_role(current_user, 'todo_owner', 'member'), \
                    pg_has_role(current_user, $1, 'member') from pg_roles where rolname = current_user",
            &[&app_role],
        )
        .await
        .map_err(pg)?;
    let (name, sup, bypass, owner, app): (String, bool, bool, bool, bool) =
        (login.get(0), login.get(1), login.get(2), login.get(3), login.get(4));
    let ok = (sup || bypass) && owner && app;
    out.push(finding(
        format!("login {name}"),
        "can do admin work",
        ok,
        if ok {
            format!("{} and may act as todo_owner and {app_role}", if sup { "superuser" } else { "BYPASSRLS" })
        } else if !(sup || bypass) {
            format!("needs BYPASSRLS for cross-user admin work (backups, reports): alter role {name} bypassrls")
        } else {
            format!("cannot SET ROLE to todo_owner and {app_role}: grant todo_owner, {app_role} to {name}")
        },
    ));
    Ok(out)
}

/// A role that works under RLS must not be superuser, have BYPASSRLS, or own anything.
async fn role_findings(
    conn: &tokio_postgres::Client,
    app_role: &str,
) -> std::result::Result<Vec<Finding>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let role = format!("role {app_role}");
    match conn.query_opt("select rolsuper, rolbypassrls, oid from pg_roles where rolname = $1", &[&app_role]).await? {
        None => out.push(finding(&role, "exists", false, "missing: run `todo-db init`")),
        Some(r) => {
            let (sup, bypass): (bool, bool) = (r.get(0), r.get(1));
            out.push(finding(
                &role,
                "not superuser",
                !sup,
                if sup { format!("is superuser: alter role {app_role} nosuperuser") } else { "not superuser".into() },
            ));
            out.push(finding(
                &role,
                "no BYPASSRLS",
                !bypass,
                if bypass {
                    format!("has BYPASSRLS: alter role {app_role} nobypassrls")
                } else {
                    "no BYPASSRLS".into()
                },
            ));
            let owned: Vec<String> = conn
                .query(
                    "select c.relname::text from pg_class c where c.relowner = $1 \
                     union all select p.proname::text from pg_proc p where p.proowner = $1 \
                     union all select t.typname::text from pg_type t where t.typowner = $1 and t.typrelid = 0",
                    &[&r.get::<_, u32>(2)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            out.push(finding(
                &role,
                "owns nothing",
                owned.is_empty(),
                if owned.is_empty() {
                    "owns no object".to_string()
                } else {
                    format!("owns {}: alter ... owner to todo_owner", owned.join(", "))
                },
            ));
        }
    }

    Ok(out)
}
