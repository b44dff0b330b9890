//! Whole-database maintenance: reset, the protected mark, content checksums.

use serde::Serialize;

use super::TABLES;
use crate::db::ClientWrapper;
use crate::error::Result;

/// Drops every todo-db object in this database (the roles, shared by the cluster, stay).
pub async fn drop_all(client: &ClientWrapper) -> Result<()> {
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
            Err(e) if attempt < 5 && super::shared_catalog_race(&e) => {
                let _ = client.batch_execute("rollback").await;
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map_err(|e| client.map_err(e)),
        }
    }
}

/// The objects `drop_all` would remove, for `reset --dry-run`.
pub async fn owned_objects(client: &ClientWrapper) -> Result<Vec<String>> {
    let rows = client
        .query(
            "select c.relkind::text || ' ' || c.relname from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = 'public' and pg_get_userbyid(c.relowner) = 'todo_owner' and c.relkind in ('r','v','m') \
             order by c.relname",
            &[],
        )
        .await
        .map_err(|e| client.map_err(e))?;
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
pub async fn protection(client: &ClientWrapper, environment: Option<&str>) -> Result<Option<String>> {
    if let Some(env) = environment.filter(|e| e.eq_ignore_ascii_case("production")) {
        return Ok(Some(format!("TODO_DB_ENVIRONMENT={env}")));
    }
    let fail = |e| client.map_err(e);
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
pub async fn set_protected(client: &ClientWrapper, on: bool) -> Result<()> {
    client
        .execute(
            "insert into todo_db_settings (name, value) values ('protected', $1) \
             on conflict (name) do update set value = excluded.value, updated_at = now(), updated_by = session_user",
            &[&if on { "on" } else { "off" }],
        )
        .await
        .map_err(|e| client.map_err(e))?;
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
pub async fn checksum(client: &mut ClientWrapper) -> Result<Vec<TableChecksum>> {
    let target = client.target().to_string();
    let fail = |e| crate::Error::from_pg(e, &target);
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
