//! `verify`: every component of a todo-db database, checked and reported.

use std::time::Instant;

use serde::Serialize;

use todo_db::db::{Conn, Db};
use todo_db::error::Result;
use todo_db::schema::{self, MigrationState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// connection, server, migration, role, table, rls, constraint, index, trigger, security
    pub kind: &'static str,
    pub name: String,
    pub status: State,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub components: Vec<Component>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(|c| c.status == State::Fail)
    }
}

fn component(kind: &'static str, name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Component {
    Component { kind, name: name.into(), status: if ok { State::Ok } else { State::Fail }, detail: detail.into() }
}

/// Checks the connection, the server version, migrations, roles, and every table, RLS setting,
/// constraint, index and trigger the schema defines.
pub async fn verify(db: &Db) -> Result<Report> {
    let started = Instant::now();
    db.admin().with_connection(async |conn| verify_on(conn, db, started).await).await
}

async fn verify_on(conn: &Conn, db: &Db, started: Instant) -> Result<Report> {
    let mut out = Vec::new();
    let pg = |e| db.map_err(e);
    let row = conn.query_one("select current_setting('server_version_num')::int, version()", &[]).await.map_err(pg)?;
    out.push(component(
        "connection",
        db.target().to_string(),
        true,
        format!("connected in {} ms, sslmode={}", started.elapsed().as_millis(), db.target().tls.mode.as_str()),
    ));
    let num: i32 = row.get(0);
    let version: String = row.get(1);
    let short = version.split(" on ").next().unwrap_or(&version).to_string();
    let supported = schema::SUPPORTED_MAJORS;
    let (oldest, newest) = (*supported.start(), *supported.end());
    out.push(component(
        "server",
        "version",
        num / 10_000 >= oldest,
        match num / 10_000 {
            m if m < oldest => format!("{short}: todo-db needs PostgreSQL {oldest} or newer"),
            m if m > newest => format!("{short} (newer than todo-db is tested on: {oldest} to {newest})"),
            _ => short,
        },
    ));

    for m in schema::status(conn).await? {
        let (ok, detail) = match m.state {
            MigrationState::Applied => (true, "applied".to_string()),
            MigrationState::Pending => (false, "pending: run `todo-db init`".to_string()),
            MigrationState::Modified => (false, "modified after it was applied: restore the original file".to_string()),
            MigrationState::Unknown => (false, "applied by a newer todo-db: upgrade todo-db".to_string()),
        };
        out.push(component("migration", format!("{:04}_{}", m.version, m.name), ok, detail));
    }

    let roles = conn
        .query(
            "select r.rolname, r.rolsuper, r.rolbypassrls, pg_has_role(current_user, r.oid, 'member') \
             from pg_roles r where r.rolname in ('todo_owner', 'todo_app')",
            &[],
        )
        .await
        .map_err(pg)?;
    for name in ["todo_owner", "todo_app"] {
        let c = match roles.iter().find(|r| r.get::<_, String>(0) == name) {
            None => component("role", name, false, "missing: run `todo-db init`"),
            Some(r) if name == "todo_app" && (r.get::<_, bool>(1) || r.get::<_, bool>(2)) => {
                component("role", name, false, "must be neither superuser nor BYPASSRLS")
            }
            Some(r) if !r.get::<_, bool>(3) => {
                component("role", name, false, "the login cannot SET ROLE to it: grant it to the login")
            }
            Some(_) => component("role", name, true, "present; the login can act as it"),
        };
        out.push(c);
    }

    let tables = conn
        .query(
            "select c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname in ('public', 'audit') and c.relkind = 'r'",
            &[],
        )
        .await
        .map_err(pg)?;
    for &t in schema::TABLES {
        match tables.iter().find(|r| r.get::<_, String>(0) == t) {
            None => out.push(component("table", t, false, "missing")),
            Some(r) => {
                let owner: String = r.get(3);
                out.push(component("table", t, owner == "todo_owner", format!("owner {owner}")));
                let (enabled, forced): (bool, bool) = (r.get(1), r.get(2));
                out.push(component(
                    "rls",
                    t,
                    enabled && forced,
                    match (enabled, forced) {
                        (true, true) => "enabled and forced",
                        (true, false) => "enabled but not forced: alter table ... force row level security",
                        _ => "disabled: alter table ... enable row level security",
                    },
                ));
            }
        }
    }

    let constraints = conn
        .query(
            "select conname from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = 'public'",
            &[],
        )
        .await
        .map_err(pg)?;
    let have: Vec<String> = constraints.iter().map(|r| r.get(0)).collect();
    for (table, name) in schema::constraints::ALL {
        let ok = have.iter().any(|h| h == name);
        out.push(component(
            "constraint",
            *name,
            ok,
            if ok { format!("on {table}") } else { format!("missing on {table}") },
        ));
    }

    let indexes = conn
        .query("select indexname from pg_indexes where schemaname in ('public', 'audit')", &[])
        .await
        .map_err(pg)?;
    let have: Vec<String> = indexes.iter().map(|r| r.get(0)).collect();
    for name in schema::INDEXES {
        let ok = have.iter().any(|h| h == name);
        out.push(component(
            "index",
            *name,
            ok,
            if ok { "present" } else { "missing: run `todo-db init` or recreate it" },
        ));
    }

    let triggers = conn
        .query("select tgname from pg_trigger where not tgisinternal and tgenabled <> 'D'", &[])
        .await
        .map_err(pg)?;
    let have: Vec<String> = triggers.iter().map(|r| r.get(0)).collect();
    for (table, name) in schema::TRIGGERS {
        let ok = have.iter().any(|h| h == name);
        out.push(component(
            "trigger",
            *name,
            ok,
            if ok { format!("on {table}") } else { format!("missing or disabled on {table}") },
        ));
    }

    let views = conn
        .query(
            "select c.relname::text, coalesce(c.reloptions, '{}'), \
                    array(select a.attname::text from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 \
                          and not a.attisdropped order by a.attnum) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'v'",
            &[],
        )
        .await
        .map_err(pg)?;
    for (name, _, columns) in todo_db::views::ALL {
        let c = match views.iter().find(|r| r.get::<_, String>(0) == *name) {
            None => component("view", *name, false, "missing: run `todo-db init`"),
            Some(r) => {
                let opts: Vec<String> = r.get(1);
                let have: Vec<String> = r.get(2);
                if !opts.iter().any(|o| o == "security_invoker=true" || o == "security_invoker=on") {
                    component(
                        "view",
                        *name,
                        false,
                        format!("not security_invoker: alter view {name} set (security_invoker = true)"),
                    )
                } else if have.iter().map(String::as_str).ne(columns.iter().copied()) {
                    component(
                        "view",
                        *name,
                        false,
                        format!("columns are ({}), expected ({})", have.join(", "), columns.join(", ")),
                    )
                } else {
                    component("view", *name, true, "present, security_invoker, expected columns")
                }
            }
        };
        out.push(c);
    }

    for f in todo_db::security::posture::check(db).await? {
        out.push(component("security", format!("{}: {}", f.object, f.check), f.ok, f.detail));
    }

    let ok = out.iter().all(|c| c.status == State::Ok);
    Ok(Report { ok, components: out })
}
