//! The backups of a directory: listed, and pruned to a number kept.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use todo_db::error::Result;

use super::*;

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
