//! Offline verification of a backup: every file against the manifest.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use todo_db::error::Result;

use super::stream::*;
use super::*;

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

pub(super) fn verify_file(
    dir: &Path,
    t: &TableEntry,
    key: Option<&Key>,
    decompress: bool,
) -> std::result::Result<(), String> {
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
