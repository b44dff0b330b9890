//! The manifest: what a backup holds, its schema version, its tables' digests, its encryption.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use todo_db::error::{Error, Result};

use super::*;

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
        m.check()?;
        Ok(m)
    }

    /// What a damaged or hostile manifest could hold that no backup of todo-db's does: a table
    /// todo-db does not have, a table twice, or a file outside the backup's directory.
    fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::validation("backup", format!("damaged manifest: {reason}")));
        for (i, t) in self.tables.iter().enumerate() {
            if !TABLES.contains(&t.name.as_str()) {
                return bad(format!("unknown table {:?}", t.name));
            }
            if self.tables[..i].iter().any(|o| o.name == t.name) {
                return bad(format!("table {} listed twice", t.name));
            }
            let plain = !t.file.is_empty()
                && t.file != "."
                && t.file != ".."
                && !t.file.contains(['/', '\\', '\0'])
                && Path::new(&t.file).file_name().is_some_and(|n| n == t.file.as_str());
            if !plain {
                return bad(format!(
                    "table {}: file {:?} is not a file name in the backup's directory",
                    t.name, t.file
                ));
            }
            if t.columns.is_empty() {
                return bad(format!("table {}: no columns", t.name));
            }
        }
        Ok(())
    }
}
