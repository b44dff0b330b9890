//! Schema diff: the objects of the todo-db schemas (`public`, `audit`) of two databases, compared
//! definition by definition.

use std::collections::BTreeMap;

use serde::Serialize;

use todo_db::db::Db;
use todo_db::error::Result;

/// One object's definition, keyed by "kind schema.object[.member]".
pub type Snapshot = BTreeMap<String, String>;

/// What each catalog query contributes: (key, definition) rows.
const QUERIES: &[&str] = &[
    // Tables.
    "select 'table ' || n.nspname || '.' || c.relname, 'table' from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname in ('public', 'audit') and c.relkind in ('r', 'p')",
    // Columns: type, nullability, default.
    "select 'column ' || n.nspname || '.' || c.relname || '.' || a.attname, \
            format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then ' not null' else '' end \
            || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') \
            || case when a.attidentity <> '' then ' identity ' || a.attidentity::text else '' end \
     from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace \
     left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
     where n.nspname in ('public', 'audit') and c.relkind in ('r', 'p', 'v', 'm') and a.attnum > 0 and not a.attisdropped",
    // Constraints.
    "select 'constraint ' || n.nspname || '.' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid) \
     from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname in ('public', 'audit')",
    // Indexes.
    "select 'index ' || n.nspname || '.' || ic.relname, pg_get_indexdef(i.indexrelid) \
     from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace \
     where n.nspname in ('public', 'audit')",
    // Views: definition and options (security_invoker).
    "select 'view ' || n.nspname || '.' || c.relname, \
            coalesce(array_to_string(c.reloptions, ','), '') || ' ' || pg_get_viewdef(c.oid, true) \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname in ('public', 'audit') and c.relkind in ('v', 'm')",
    // Row-level security flags.
    "select 'rls ' || n.nspname || '.' || c.relname, \
            'enabled=' || c.relrowsecurity || ' forced=' || c.relforcerowsecurity \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname in ('public', 'audit') and c.relkind in ('r', 'p')",
    // Policies.
    "select 'policy ' || schemaname || '.' || tablename || '.' || policyname, \
            cmd || ' to ' || array_to_string(roles, ',') || ' using (' || coalesce(qual, '') || ') check (' \
            || coalesce(with_check, '') || ')' \
     from pg_policies where schemaname in ('public', 'audit')",
    // Triggers: definition and whether enabled.
    "select 'trigger ' || n.nspname || '.' || c.relname || '.' || t.tgname, \
            pg_get_triggerdef(t.oid) || ' [enabled=' || t.tgenabled::text || ']' \
     from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname in ('public', 'audit') and not t.tgisinternal",
    // Functions.
    "select 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
            pg_get_functiondef(p.oid) \
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
     where n.nspname in ('public', 'audit') and p.prokind in ('f', 'p')",
    // Table privileges per grantee.
    "select 'grant ' || table_schema || '.' || table_name || ' to ' || grantee, \
            string_agg(privilege_type, ',' order by privilege_type) \
     from information_schema.role_table_grants where table_schema in ('public', 'audit') \
     group by table_schema, table_name, grantee",
];

/// The schema of `db`, object by object.
pub async fn snapshot(db: &Db) -> Result<Snapshot> {
    let admin = db.admin();
    let mut out = Snapshot::new();
    for q in QUERIES {
        for r in admin.query(q, &[]).await? {
            out.insert(r.get(0), r.get(1));
        }
    }
    Ok(out)
}

/// One difference.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// table, column, constraint, index, view, rls, policy, trigger, function or grant.
    pub kind: String,
    pub object: String,
    /// `added` (only in B), `removed` (only in A) or `changed`.
    pub change: &'static str,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// What changes from `a` to `b`.
pub fn compare(a: &Snapshot, b: &Snapshot) -> Vec<Change> {
    let split = |key: &str| {
        let (kind, object) = key.split_once(' ').unwrap_or((key, ""));
        (kind.to_string(), object.to_string())
    };
    let mut out = Vec::new();
    for (k, va) in a {
        let (kind, object) = split(k);
        match b.get(k) {
            None => out.push(Change { kind, object, change: "removed", a: Some(va.clone()), b: None }),
            Some(vb) if vb != va => {
                out.push(Change { kind, object, change: "changed", a: Some(va.clone()), b: Some(vb.clone()) })
            }
            Some(_) => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            let (kind, object) = split(k);
            out.push(Change { kind, object, change: "added", a: None, b: Some(vb.clone()) });
        }
    }
    out.sort_by(|x, y| (&x.kind, &x.object).cmp(&(&y.kind, &y.object)));
    out
}

/// The differences as readable lines: `- removed`, `+ added`, `~ changed: A -> B`.
pub fn render(changes: &[Change]) -> String {
    let one_line = |s: &Option<String>| s.as_deref().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for c in changes {
        let line = match c.change {
            "added" => format!("+ {} {}: {}", c.kind, c.object, one_line(&c.b)),
            "removed" => format!("- {} {}: {}", c.kind, c.object, one_line(&c.a)),
            _ => format!("~ {} {}: {}  ->  {}", c.kind, c.object, one_line(&c.a), one_line(&c.b)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
