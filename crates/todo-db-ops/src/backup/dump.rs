//! Taking a backup: one exported snapshot, tables copied out in parallel.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use time::OffsetDateTime;

use todo_db::db::{Conn, Db};
use todo_db::error::{Error, Result};
use todo_db::schema;

use super::stream::*;
use super::*;

/// How to take a backup.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Connections copying tables at the same time.
    pub workers: usize,
    /// Encrypt the table files with this key.
    pub key: Option<Key>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { workers: 4, key: None }
    }
}

/// Takes a backup of `db` into the new directory `out`, with `workers` connections copying tables
/// concurrently from one exported snapshot. Seals the audit log first.
pub async fn create(db: &Db, out: &Path, options: &CreateOptions, progress: Arc<Progress>) -> Result<Manifest> {
    if out.exists() {
        return Err(Error::validation("out", format!("{} already exists", out.display())));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    let name = out.file_name().ok_or_else(|| Error::validation("out", "needs a directory name"))?;
    let tmp = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let result = create_in(db, &tmp, options, progress).await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| io_err("rename into", out, e))?;
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(manifest)
}

pub(super) async fn create_in(
    db: &Db,
    dir: &Path,
    options: &CreateOptions,
    progress: Arc<Progress>,
) -> Result<Manifest> {
    let audit_seal = todo_db::audit::seal(db, std::time::Duration::from_secs(30)).await?.map(|s| s.id);
    db.admin().with_connection(async |lead| dump_all(lead, db, dir, options, progress, audit_seal).await).await
}

/// Dumps every table on `options.workers` connections that all read the snapshot `lead` exports.
pub(super) async fn dump_all(
    lead: &mut Conn,
    db: &Db,
    dir: &Path,
    options: &CreateOptions,
    progress: Arc<Progress>,
    audit_seal: Option<i64>,
) -> Result<Manifest> {
    let target = db.target().to_string();
    let fail = |e| Error::from_pg(e, &target);
    // The snapshot every worker reads: exported by a transaction that stays open until they end.
    let tx = read_only_snapshot(lead).await.map_err(fail)?;
    let snapshot: String = tx.query_one("select pg_export_snapshot()", &[]).await.map_err(fail)?.get(0);
    let migrations = tx
        .query("select version, name, checksum from todo_db_migrations order by version", &[])
        .await
        .map_err(fail)?
        .iter()
        .map(|r| ManifestMigration { version: r.get(0), name: r.get(1), checksum: r.get(2) })
        .collect();
    let server_version: String = tx.query_one("show server_version", &[]).await.map_err(fail)?.get(0);
    // Largest first, so the big table starts at once and the small ones fill in around it.
    let sizes = tx
        .query("select t, pg_total_relation_size(t::regclass) from unnest($1::text[]) t order by 2 desc", &[&TABLES])
        .await
        .map_err(fail)?;
    let queue: VecDeque<String> = sizes.iter().map(|r| r.get(0)).collect();
    let queue = Arc::new(Mutex::new(queue));
    let entries = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..options.workers.clamp(1, TABLES.len()) {
        let (db, queue, entries, snapshot, dir, progress) =
            (db.clone(), queue.clone(), entries.clone(), snapshot.clone(), dir.to_path_buf(), progress.clone());
        let key = options.key.clone();
        handles.push(tokio::spawn(async move {
            db.admin()
                .with_connection(async |conn| {
                    let target = db.target().to_string();
                    let fail = |e| Error::from_pg(e, &target);
                    let tx = read_only_snapshot(conn).await.map_err(fail)?;
                    tx.batch_execute(&format!("set transaction snapshot '{snapshot}'")).await.map_err(fail)?;
                    loop {
                        let Some(table) = queue.lock().expect("not poisoned").pop_front() else { break };
                        let entry = dump_table(&tx, &target, &table, &dir, key.as_ref(), &progress).await?;
                        entries.lock().expect("not poisoned").push(entry);
                    }
                    tx.commit().await.map_err(fail)
                })
                .await
        }));
    }
    for h in handles {
        h.await.map_err(|e| Error::Internal(format!("backup worker: {e}")))??;
    }
    tx.commit().await.map_err(fail)?;
    let mut tables = std::mem::take(&mut *entries.lock().expect("not poisoned"));
    tables.sort_by_key(|t| TABLES.iter().position(|n| *n == t.name));
    let manifest = Manifest {
        format: FORMAT,
        todo_db_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: OffsetDateTime::now_utc(),
        source: target.clone(),
        server_version,
        migrations,
        audit_seal,
        encryption: options.key.as_ref().map(|k| Encryption { cipher: crypt::CIPHER.into(), key_id: k.id() }),
        tables,
    };
    let path = dir.join(MANIFEST);
    let mut f = File::create(&path).map_err(|e| io_err("write", &path, e))?;
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    f.write_all(&text).and_then(|_| f.sync_all()).map_err(|e| io_err("write", &path, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(manifest)
}

/// A read-only, repeatable-read transaction: one snapshot for everything a backup connection reads.
pub(super) async fn read_only_snapshot(
    conn: &mut Conn,
) -> std::result::Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    conn.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// The table's columns in order (dropped ones skipped).
pub(super) async fn columns(
    client: &impl tokio_postgres::GenericClient,
    table: &str,
) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select attname::text from pg_attribute where attrelid = $1::text::regclass and attnum > 0 \
             and not attisdropped order by attnum",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) fn column_list(cols: &[String]) -> String {
    cols.iter().map(|c| schema::quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// Copies one table out in binary, compressing and hashing on a blocking thread.
pub(super) async fn dump_table(
    tx: &tokio_postgres::Transaction<'_>,
    target: &str,
    table: &str,
    dir: &Path,
    key: Option<&Key>,
    progress: &Arc<Progress>,
) -> Result<TableEntry> {
    let fail = |e| Error::from_pg(e, target);
    let cols = columns(tx, table).await.map_err(fail)?;
    let rows: i64 = tx.query_one(&format!("select count(*) from {table}"), &[]).await.map_err(fail)?.get(0);
    let file = format!("{table}.copy.zst");
    let path = dir.join(&file);
    let (send, recv) = std::sync::mpsc::sync_channel::<Bytes>(8);
    let writer = {
        let (path, key, table) = (path.clone(), key.cloned(), table.to_string());
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
            let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(&path)?));
            let out = match key {
                Some(key) => compress(crypt::Sealer::new(out, &key, &table)?, recv)?.finish()?,
                None => compress(out, recv)?,
            };
            let (inner, bytes, digest) = out.finish();
            inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok((bytes, digest))
        })
    };
    let stream =
        tx.copy_out(&format!("copy (select {} from {table}) to stdout (format binary)", column_list(&cols))).await;
    let copied = async {
        let stream = stream.map_err(fail)?;
        futures_util::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(fail)?;
            progress.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if send.send(chunk).is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(send);
    let written = writer.await.map_err(|e| Error::Internal(format!("backup writer: {e}")))?;
    copied?;
    let (bytes, sha256) = written.map_err(|e| io_err("write", &path, e))?;
    Ok(TableEntry { name: table.to_string(), file, columns: cols, rows: rows as u64, bytes, sha256 })
}
