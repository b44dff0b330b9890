//! Backups: one consistent snapshot, copied table by table in parallel, zstd-compressed, with a
//! checksummed manifest; verified offline; restored in one transaction or not at all.
//!
//! A backup is a directory: `manifest.json` and one `<table>.copy.zst` per table (PostgreSQL's
//! binary COPY format, zstd with frame checksums). It is written under a temporary name, flushed,
//! and renamed into place last, so a crash never leaves something that looks like a good backup.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use todo_db::error::Error;

mod catalog;
mod crypt;
mod dump;
mod manifest;
mod restore;
mod stream;
mod verify;

pub use catalog::{list, prune, Listed};
pub use crypt::{Key, Opener};
pub use dump::{create, CreateOptions};
pub use manifest::{Encryption, Manifest, ManifestMigration, TableEntry};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use verify::{verify, Damage};

/// The manifest's format version; a backup with a newer one is refused.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// The tables a backup holds, parents first (the restore's load order).
pub const TABLES: &[&str] = &[
    "users",
    "tags",
    "tasks",
    "task_tags",
    "task_trash",
    "api_tokens",
    "security_events",
    "user_preferences",
    "audit.log",
    "audit.seal",
    "audit.prune",
];

/// Live progress of a backup or restore: uncompressed bytes moved so far.
#[derive(Debug, Default)]
pub struct Progress {
    pub(crate) bytes: AtomicU64,
}

impl Progress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

pub(crate) fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::File { action: what.to_string(), path: path.to_path_buf(), source: e }
}
