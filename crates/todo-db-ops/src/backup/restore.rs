//! Restoring a backup: in one transaction, indexes and keys built after the data.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use todo_db::db::{Conn, Db};
use todo_db::error::{Error, Result};
use todo_db::schema;

use super::dump::*;
use super::stream::*;
use super::*;
use crate::bulk;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Overwrite a target that already holds todo-db data.
    pub replace: bool,
    /// The key of an encrypted backup.
    pub key: Option<Key>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub target: String,
    pub rows: u64,
    pub tables: usize,
    /// Migrations applied after loading (the backup was older than this todo-db).
    pub migrated_forward: Vec<i32>,
    pub seconds: f64,
}

/// Loads the backup in `dir` into `db`. The target must hold no todo-db data unless `replace`.
/// Everything is loaded in one transaction: indexes and keys are dropped and rebuilt inside it
/// ([`crate::bulk`], as pg_restore builds them after the data), the audit triggers are off inside it (restored
/// rows make no new audit entries; the log itself is restored as it was), and row counts are
/// checked before it commits. An interruption leaves the target as it was.
pub async fn restore(db: &Db, dir: &Path, options: &RestoreOptions, progress: Arc<Progress>) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    let replace = options.replace;
    let manifest = Manifest::read(dir)?;
    let key = manifest.key(options.key.as_ref())?;
    if let Some(refusal) = manifest.migrations.iter().find_map(|m| schema::folded("the backup", m.version, &m.name)) {
        return Err(Error::validation("backup", refusal));
    }
    for m in &manifest.migrations {
        match schema::MIGRATIONS.iter().find(|k| k.version == m.version) {
            None => {
                return Err(Error::validation(
                    "backup",
                    format!(
                        "it was taken at migration {:04}_{}, which this todo-db does not know: restore it with a newer todo-db",
                        m.version, m.name
                    ),
                ))
            }
            Some(k) if k.checksum() != m.checksum => {
                return Err(Error::validation(
                    "backup",
                    format!("its migration {:04}_{} differs from this todo-db's", m.version, m.name),
                ))
            }
            Some(_) => {}
        }
    }
    let (rows, migrated_forward) = db
        .admin()
        .with_connection(async |conn| load_all(conn, db, dir, &manifest, key, replace, progress).await)
        .await?;
    Ok(RestoreReport {
        target: db.target().to_string(),
        rows,
        tables: manifest.tables.len(),
        migrated_forward,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Loads every table of the backup in `dir` in one transaction on `conn` (see [`restore`]):
/// the rows loaded, and the migrations applied after.
pub(super) async fn load_all(
    conn: &mut Conn,
    db: &Db,
    dir: &Path,
    manifest: &Manifest,
    key: Option<&Key>,
    replace: bool,
    progress: Arc<Progress>,
) -> Result<(u64, Vec<i32>)> {
    let target = db.target().to_string();
    let fail = |e| Error::from_pg(e, &target);
    schema::migrate_to(conn, Some(manifest.migration_version())).await?;
    // The backup's tables, in load order: a backup taken at an older schema version holds only
    // the tables that existed then (the later migrations make the rest, empty).
    let tables: Vec<&str> = TABLES.iter().copied().filter(|t| manifest.tables.iter().any(|m| m.name == *t)).collect();
    let tx = conn.transaction().await.map_err(fail)?;
    tx.batch_execute("set local statement_timeout = 0").await.map_err(fail)?;
    if !replace && !bulk::all_empty(&tx, &target, &tables).await? {
        return Err(Error::validation(
            "into",
            format!("{target} already holds todo-db data; pass --replace to overwrite it"),
        ));
    }
    let deferred = bulk::Deferred::begin(&tx, &target, &tables).await?;
    if replace {
        tx.batch_execute(&format!("truncate {}", tables.join(", "))).await.map_err(fail)?;
    }
    let mut rows = 0;
    for t in &manifest.tables {
        if !TABLES.contains(&t.name.as_str()) {
            return Err(Error::validation("backup", format!("unknown table {} in the manifest", t.name)));
        }
        let loaded = load_table(&tx, &target, dir, t, key, &progress).await?;
        if loaded != t.rows {
            return Err(Error::validation(
                "backup",
                format!("{}: loaded {loaded} rows, the manifest says {}", t.name, t.rows),
            ));
        }
        rows += loaded;
    }
    deferred.finish(&tx, &target).await?;
    let mut after = String::new();
    // Identity columns continue after the restored ids.
    for t in ["audit.log", "audit.seal", "audit.prune"] {
        after.push_str(&format!(
            "select setval(pg_get_serial_sequence('{t}', 'id'), coalesce(max(id), 0) + 1, false) from {t};\n"
        ));
    }
    tx.batch_execute(&after).await.map_err(fail)?;
    for t in &manifest.tables {
        let n: i64 = tx.query_one(&format!("select count(*) from {}", t.name), &[]).await.map_err(fail)?.get(0);
        if n as u64 != t.rows {
            return Err(Error::validation(
                "backup",
                format!("{}: {n} rows after loading, expected {}", t.name, t.rows),
            ));
        }
    }
    tx.commit().await.map_err(fail)?;
    let migrated_forward = schema::migrate(conn).await?.iter().map(|a| a.version).collect();
    conn.batch_execute(&format!("analyze {}", tables.join(", "))).await.map_err(fail)?;
    Ok((rows, migrated_forward))
}

/// Streams one table's file into COPY, decompressing and hashing on a blocking thread; the
/// hash is checked before the COPY is finished, so damaged data is never committed.
pub(super) async fn load_table(
    tx: &tokio_postgres::Transaction<'_>,
    target: &str,
    dir: &Path,
    t: &TableEntry,
    key: Option<&Key>,
    progress: &Arc<Progress>,
) -> Result<u64> {
    let fail = |e| Error::from_pg(e, target);
    let path: PathBuf = dir.join(&t.file);
    let (send, mut recv) = tokio::sync::mpsc::channel::<Bytes>(8);
    let (expected, key, table) = (t.sha256.clone(), key.cloned(), t.name.clone());
    let reader = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut hashing =
            HashingReader { inner: BufReader::with_capacity(1 << 20, file), hash: Sha256::new(), bytes: 0 };
        {
            let mut z = decompressor(&mut hashing, key.as_ref(), &table).map_err(|e| e.to_string())?;
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                let n = z.read(&mut buf).map_err(|e| format!("does not read back: {e}"))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                if send.blocking_send(Bytes::from(buf)).is_err() {
                    return Ok(());
                }
            }
        }
        if hex::encode(hashing.hash.finalize()) != expected {
            return Err("SHA-256 differs from the manifest (the data was altered)".into());
        }
        Ok(())
    });
    let sink = tx
        .copy_in::<_, Bytes>(&format!("copy {} ({}) from stdin (format binary)", t.name, column_list(&t.columns)))
        .await
        .map_err(fail)?;
    futures_util::pin_mut!(sink);
    while let Some(chunk) = recv.recv().await {
        progress.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        sink.send(chunk).await.map_err(fail)?;
    }
    reader
        .await
        .map_err(|e| Error::Internal(format!("restore reader: {e}")))?
        .map_err(|reason| Error::validation("backup", format!("{}: {reason}", t.name)))?;
    sink.finish().await.map_err(fail)
}
