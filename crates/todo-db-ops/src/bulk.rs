//! The bulk path shared by restore, seed and import: inside the loader's transaction, the tables'
//! foreign keys and secondary indexes are dropped and their user triggers (audit capture,
//! `updated_at`) disabled; after the rows are in, the indexes are built once each and the keys
//! added back (each checked in one pass over the loaded rows), as pg_restore does. Nobody else
//! sees the tables without them: the drops hold their locks until the transaction ends, and an
//! error or an interruption rolls everything back with the rows.
//!
//! Primary keys and unique constraints stay: views that group by a primary key depend on it, and
//! keeping them catches a duplicate at the row that carries it.

use tokio_postgres::Transaction;

use todo_db::error::{Error, Result};

/// The keys and indexes dropped by [`Deferred::begin`], to build again in [`Deferred::finish`].
#[derive(Debug)]
pub struct Deferred {
    tables: Vec<String>,
    /// (table, quoted name, definition) of each foreign key.
    keys: Vec<(String, String, String)>,
    /// `CREATE INDEX` statement of each secondary index.
    indexes: Vec<String>,
}

impl Deferred {
    /// Drops the foreign keys and secondary indexes of `tables` (schema-qualified where not in
    /// `public`) and disables their user triggers, inside `tx`.
    pub async fn begin(tx: &Transaction<'_>, target: &str, tables: &[&str]) -> Result<Deferred> {
        let fail = |e| Error::from_pg(e, target);
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let keys = tx
            .query(
                "select conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) \
                 from pg_constraint where conrelid = any(select t::regclass from unnest($1::text[]) t) \
                 and contype = 'f' order by conrelid, conname",
                &[&tables],
            )
            .await
            .map_err(fail)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<_>>();
        let indexes = tx
            .query(
                "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i \
                 where i.indrelid = any(select t::regclass from unnest($1::text[]) t) \
                 and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x')) \
                 order by i.indexrelid",
                &[&tables],
            )
            .await
            .map_err(fail)?;
        let mut sql = String::from("set local maintenance_work_mem = '256MB';\n");
        sql.push_str(&triggers(&tables, false));
        // Keys first: a foreign key may rest on one of the unique indexes dropped next.
        for (table, name, _) in &keys {
            sql.push_str(&format!("alter table {table} drop constraint {name};\n"));
        }
        for i in &indexes {
            let name: String = i.get(0);
            sql.push_str(&format!("drop index {name};\n"));
        }
        tx.batch_execute(&sql).await.map_err(fail)?;
        Ok(Deferred { tables, keys, indexes: indexes.iter().map(|r| r.get(1)).collect() })
    }

    /// Builds the indexes, adds the keys back and enables the triggers, inside `tx`.
    pub async fn finish(self, tx: &Transaction<'_>, target: &str) -> Result<()> {
        let mut sql = String::new();
        for def in &self.indexes {
            sql.push_str(&format!("{def};\n"));
        }
        for (table, name, def) in &self.keys {
            sql.push_str(&format!("alter table {table} add constraint {name} {def};\n"));
        }
        sql.push_str(&triggers(&self.tables, true));
        tx.batch_execute(&sql).await.map_err(|e| Error::from_pg(e, target))
    }
}

/// `alter table ... enable|disable trigger user` for each of `tables`: the user triggers (audit
/// capture, `updated_at`), not the foreign keys' internal ones.
pub fn triggers(tables: &[impl AsRef<str>], on: bool) -> String {
    let verb = if on { "enable" } else { "disable" };
    tables.iter().map(|t| format!("alter table {} {verb} trigger user;\n", t.as_ref())).collect()
}

/// Whether every one of `tables` is empty (read in `tx`, under the caller's locks).
pub async fn all_empty(tx: &Transaction<'_>, target: &str, tables: &[&str]) -> Result<bool> {
    let probe = tables.iter().map(|t| format!("(select 1 from {t} limit 1)")).collect::<Vec<_>>().join(" union all ");
    let any: bool = tx
        .query_one(&format!("select exists (select 1 from ({probe}) x)"), &[])
        .await
        .map_err(|e| Error::from_pg(e, target))?
        .get(0);
    Ok(!any)
}
