//! Backups: one consistent snapshot, copied table by table in parallel, zstd-compressed, with a
//! checksummed manifest; verified offline; restored in one transaction or not at all.
//!
//! A backup is a directory: `manifest.json` and one `<table>.copy.zst` per table (PostgreSQL's
//! binary COPY format, zstd with frame checksums). It is written under a temporary name, flushed,
//! and renamed into place last, so a crash never leaves something that looks like a good backup.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use todo_db::db::{Conn, Db};
use todo_db::error::{Error, Result};
use todo_db::schema;

mod crypt;
pub use crypt::Key;

/// The manifest's format version; a backup with a newer one is refused.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// The tables a backup holds, parents first (the restore's load order).
pub const TABLES: &[&str] =
    &["users", "tags", "tasks", "task_tags", "api_tokens", "security_events", "audit.log", "audit.seal", "audit.prune"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub todo_db_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `host:port/database` of the source (never the URL: no password).
    pub source: String,
    pub server_version: String,
    pub migrations: Vec<ManifestMigration>,
    /// The audit seal taken just before the snapshot, if anything was left to seal.
    pub audit_seal: Option<i64>,
    /// Set when the table files are encrypted.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Encryption {
    pub cipher: String,
    /// Fingerprint of the key (not the key): tells a wrong key from damage.
    pub key_id: String,
}

impl Manifest {
    /// The key to read this backup's files with: `None` for a plain backup; an error when the
    /// backup is encrypted and `key` is missing or another key.
    pub fn key<'k>(&self, key: Option<&'k Key>) -> Result<Option<&'k Key>> {
        let Some(enc) = &self.encryption else { return Ok(None) };
        if enc.cipher != crypt::CIPHER {
            return Err(Error::validation("backup", format!("unknown cipher {}", enc.cipher)));
        }
        match key {
            None => Err(Error::validation(
                "TODO_DB_BACKUP_KEY",
                format!("this backup is encrypted (key id {}): set TODO_DB_BACKUP_KEY to its key", enc.key_id),
            )),
            Some(k) if k.id() != enc.key_id => Err(Error::validation(
                "TODO_DB_BACKUP_KEY",
                format!("is not this backup's key (backup key id {}, given key id {})", enc.key_id, k.id()),
            )),
            Some(k) => Ok(Some(k)),
        }
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestMigration {
    pub version: i32,
    pub name: String,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub name: String,
    pub file: String,
    pub columns: Vec<String>,
    pub rows: u64,
    /// Size of the compressed file.
    pub bytes: u64,
    /// SHA-256 of the compressed file.
    pub sha256: String,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    pub fn migration_version(&self) -> i32 {
        self.migrations.iter().map(|m| m.version).max().unwrap_or(0)
    }

    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::validation(
                "backup",
                format!("{}: no readable manifest ({e}); is this a todo-db backup?", dir.display()),
            )
        })?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::validation("backup", format!("{}: damaged manifest: {e}", path.display())))?;
        if m.format > FORMAT {
            return Err(Error::validation(
                "backup",
                format!("format {} is newer than this todo-db reads ({FORMAT}): upgrade todo-db", m.format),
            ));
        }
        Ok(m)
    }
}

/// Live progress of a backup or restore: uncompressed bytes moved so far.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
}

impl Progress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::File { action: what.to_string(), path: path.to_path_buf(), source: e }
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

async fn create_in(db: &Db, dir: &Path, options: &CreateOptions, progress: Arc<Progress>) -> Result<Manifest> {
    let audit_seal = todo_db::audit::seal(db, std::time::Duration::from_secs(30)).await?.map(|s| s.id);
    db.admin().with_connection(async |lead| dump_all(lead, db, dir, options, progress, audit_seal).await).await
}

/// Dumps every table on `options.workers` connections that all read the snapshot `lead` exports.
async fn dump_all(
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
async fn read_only_snapshot(
    conn: &mut Conn,
) -> std::result::Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    conn.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// The table's columns in order (dropped ones skipped).
async fn columns(
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

fn column_list(cols: &[String]) -> String {
    cols.iter().map(|c| schema::quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// Copies one table out in binary, compressing and hashing on a blocking thread.
async fn dump_table(
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

/// Compresses every chunk from `recv` into `out` (zstd level 3, with frame checksums).
fn compress<W: Write>(out: W, recv: std::sync::mpsc::Receiver<Bytes>) -> std::io::Result<W> {
    let mut z = zstd::stream::Encoder::new(out, 3)?;
    z.include_checksum(true)?;
    for chunk in recv {
        z.write_all(&chunk)?;
    }
    z.finish()
}

/// A reader of one table file's COPY data: decrypted when `key` is set, then decompressed.
fn decompressor<'r, R: Read + 'r>(
    file: R,
    key: Option<&Key>,
    table: &str,
) -> std::io::Result<zstd::stream::Decoder<'r, BufReader<Box<dyn Read + 'r>>>> {
    let source: Box<dyn Read + 'r> = match key {
        Some(k) => Box::new(crypt::Opener::new(file, k, table)?),
        None => Box::new(file),
    };
    zstd::stream::Decoder::new(source)
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter { inner, hash: Sha256::new(), bytes: 0 }
    }

    fn finish(mut self) -> (W, u64, String) {
        let _ = self.inner.flush();
        (self.inner, self.bytes, hex::encode(self.hash.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// One table's problem found by [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Damage {
    pub table: String,
    pub reason: String,
}

/// Checks the manifest and every file against it, offline: sizes, SHA-256, and that each file
/// decompresses cleanly. Returns the manifest and the damaged tables (empty when all is well).
/// An encrypted backup is checked without decrypting unless `key` is given.
pub fn verify(dir: &Path, key: Option<&Key>) -> Result<(Manifest, Vec<Damage>)> {
    let manifest = Manifest::read(dir)?;
    let key = match (&manifest.encryption, key) {
        (Some(_), None) => None,
        _ => manifest.key(key)?,
    };
    let decrypt = manifest.encryption.is_none() || key.is_some();
    let mut damage = Vec::new();
    for t in &manifest.tables {
        if let Err(reason) = verify_file(dir, t, key, decrypt) {
            damage.push(Damage { table: t.name.clone(), reason });
        }
    }
    if let Some(d) = damage.first() {
        tracing::warn!(table = %d.table, reason = %d.reason, "backup damaged");
    }
    Ok((manifest, damage))
}

fn verify_file(dir: &Path, t: &TableEntry, key: Option<&Key>, decompress: bool) -> std::result::Result<(), String> {
    let path = dir.join(&t.file);
    let size = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size != t.bytes {
        return Err(format!("{} is {size} bytes, the manifest says {} (truncated or replaced)", t.file, t.bytes));
    }
    let mut reader = HashingReader {
        inner: BufReader::new(File::open(&path).map_err(|e| e.to_string())?),
        hash: Sha256::new(),
        bytes: 0,
    };
    if decompress {
        let mut z = decompressor(&mut reader, key, &t.name).map_err(|e| format!("{}: {e}", t.file))?;
        std::io::copy(&mut z, &mut std::io::sink()).map_err(|e| format!("{}: does not read back: {e}", t.file))?;
    } else {
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| format!("{}: {e}", t.file))?;
    }
    if hex::encode(reader.hash.finalize()) != t.sha256 {
        return Err(format!("{}: SHA-256 differs from the manifest (the data was altered)", t.file));
    }
    Ok(())
}

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
/// (as pg_restore builds them after the data), the audit triggers are off inside it (restored
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
async fn load_all(
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
    if !replace {
        let any: bool = conn
            .query_one(
                &format!(
                    "select exists (select 1 from ({}) x)",
                    TABLES
                        .iter()
                        .map(|t| format!("(select 1 from {t} limit 1)"))
                        .collect::<Vec<_>>()
                        .join(" union all ")
                ),
                &[],
            )
            .await
            .map_err(fail)?
            .get(0);
        if any {
            return Err(Error::validation(
                "into",
                format!("{target} already holds todo-db data; pass --replace to overwrite it"),
            ));
        }
    }
    let tx = conn.transaction().await.map_err(fail)?;
    let tables: Vec<&str> = TABLES.to_vec();
    tx.batch_execute("set local statement_timeout = 0; set local maintenance_work_mem = '256MB'")
        .await
        .map_err(fail)?;
    // Foreign keys and secondary indexes of the backup's tables, to drop now and rebuild after the
    // load. Primary keys stay: views that group by them depend on them.
    let keys = tx
        .query(
            "select conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid), contype::text \
             from pg_constraint where conrelid = any(select t::regclass from unnest($1::text[]) t) \
             and contype = 'f'",
            &[&tables],
        )
        .await
        .map_err(fail)?;
    let indexes = tx
        .query(
            "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i \
             where i.indrelid = any(select t::regclass from unnest($1::text[]) t) \
             and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x'))",
            &[&tables],
        )
        .await
        .map_err(fail)?;
    let mut before = String::new();
    for t in &tables {
        before.push_str(&format!("alter table {t} disable trigger user;\n"));
    }
    if replace {
        before.push_str(&format!("truncate {};\n", tables.join(", ")));
    }
    for k in &keys {
        let (table, name): (String, String) = (k.get(0), k.get(1));
        before.push_str(&format!("alter table {table} drop constraint {name};\n"));
    }
    for i in &indexes {
        let name: String = i.get(0);
        before.push_str(&format!("drop index {name};\n"));
    }
    tx.batch_execute(&before).await.map_err(fail)?;
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
    let mut after = String::new();
    for i in &indexes {
        let def: String = i.get(1);
        after.push_str(&format!("{def};\n"));
    }
    for k in keys.iter().rev() {
        let (table, name, def): (String, String, String) = (k.get(0), k.get(1), k.get(2));
        after.push_str(&format!("alter table {table} add constraint {name} {def};\n"));
    }
    for t in &tables {
        after.push_str(&format!("alter table {t} enable trigger user;\n"));
    }
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
async fn load_table(
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

/// A backup found by [`list`].
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: PathBuf,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub bytes: u64,
    pub tables: usize,
    pub rows: u64,
    pub migration: i32,
    /// Whether every file has the size the manifest records (a full check is `verify`).
    pub complete: bool,
}

/// The backups directly under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("read", root, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.join(MANIFEST).is_file() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(m) = Manifest::read(&path) else { continue };
        let complete =
            m.tables.iter().all(|t| std::fs::metadata(path.join(&t.file)).is_ok_and(|md| md.len() == t.bytes));
        out.push(Listed {
            created_at: m.created_at,
            bytes: m.bytes(),
            tables: m.tables.len(),
            rows: m.rows(),
            migration: m.migration_version(),
            complete,
            path,
        });
    }
    out.sort_by_key(|l| l.created_at);
    Ok(out)
}

/// Removes backups under `root` beyond the newest `keep_last`, or older than `older_than`; returns
/// what it removed (or would, with `dry_run`).
pub fn prune(
    root: &Path,
    keep_last: Option<usize>,
    older_than: Option<std::time::Duration>,
    dry_run: bool,
) -> Result<Vec<Listed>> {
    let all = list(root)?;
    let now = OffsetDateTime::now_utc();
    let n = all.len();
    let doomed: Vec<Listed> = all
        .into_iter()
        .enumerate()
        .filter(|(i, b)| {
            keep_last.is_some_and(|k| *i + k < n) || older_than.is_some_and(|age| now - b.created_at > age)
        })
        .map(|(_, b)| b)
        .collect();
    if !dry_run {
        for b in &doomed {
            std::fs::remove_dir_all(&b.path).map_err(|e| io_err("remove", &b.path, e))?;
        }
    }
    Ok(doomed)
}
