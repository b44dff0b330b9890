//! The server's programs: finding them (and their version), and running them, as the `postgres`
//! account when todo-db runs as root.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use todo_db::error::{Error, Result};

use super::*;

pub(super) fn command(bin: &Path, program: &str, run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    cmd.current_dir("/").env_remove("PGDATA");
    if let Some(r) = run_as {
        // Not root's HOME: libpq (pg_basebackup, a standby's walreceiver) looks there for
        // client certificates and would fail on a directory the account cannot read.
        cmd.uid(r.uid).gid(r.gid).env("HOME", "/nonexistent");
    }
    cmd
}

pub(super) fn run(cmd: &mut Command) -> Result<Output> {
    cmd.output().map_err(|e| Error::Local(format!("cannot run {:?}: {e}", cmd.get_program())))
}

pub(super) fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Local(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )))
}

pub(super) fn write_private(path: &Path, bytes: &[u8], owner: Option<RunAs>) -> Result<()> {
    let err = |e: std::io::Error| Error::Local(format!("cannot write {}: {e}", path.display()));
    let mut f = fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    if let Some(r) = owner {
        chown(path, r)?;
    }
    Ok(())
}

pub(super) fn chown(path: &Path, r: RunAs) -> Result<()> {
    std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
        .map_err(|e| Error::Local(format!("cannot chown {}: {e}", path.display())))
}

/// A free TCP port of 127.0.0.1 (free when asked: bind it soon).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Local(format!("no free local port: {e}")))?;
    Ok(l.local_addr().map_err(|e| Error::Local(e.to_string()))?.port())
}

/// Root cannot run the server: use the `postgres` system account when todo-db runs as root.
pub(super) fn run_as() -> Result<Option<RunAs>> {
    let me = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if me != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                return Ok(Some(RunAs { uid, gid }));
            }
        }
    }
    Err(Error::Local(
        "todo-db runs as root, and PostgreSQL's initdb and postgres refuse to run as root; no `postgres` \
         account exists to run them as. Create one (`useradd --system --home /var/lib/postgresql postgres`), \
         run todo-db as an ordinary user, or set DATABASE_URL to an existing server"
            .into(),
    ))
}

/// Finds a directory with initdb, pg_ctl and postgres: `TODO_DB_PG_BIN`, then PATH, `pg_config
/// --bindir`, and the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Result<PathBuf> {
    find_bin_dir_for(None)
}

/// As [`find_bin_dir`], preferring a directory of PostgreSQL `major` when one is found.
pub fn find_bin_dir_for(major: Option<u32>) -> Result<PathBuf> {
    let complete = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("TODO_DB_PG_BIN").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !complete(&dir) {
            return Err(Error::Config(format!(
                "TODO_DB_PG_BIN={}: not a PostgreSQL bin directory (it needs initdb, pg_ctl and postgres; \
                 scripts/install-servers installs PostgreSQL 15 to 18)",
                dir.display()
            )));
        }
        return Ok(dir);
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if let Ok(real) = fs::canonicalize(dir.join("initdb")) {
                if let Some(parent) = real.parent() {
                    candidates.push(parent.to_path_buf());
                }
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    candidates.retain(|d| complete(d));
    let preferred = major.and_then(|m| candidates.iter().find(|d| server_major(d).ok() == Some(m)).cloned());
    preferred.or_else(|| candidates.into_iter().next()).ok_or_else(|| {
        Error::Local(
            "no PostgreSQL server binaries found (initdb, pg_ctl, postgres) in TODO_DB_PG_BIN, on PATH, via \
             pg_config or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install \
             postgresql`, or scripts/install-servers for 15 to 18) or set DATABASE_URL to an existing server"
                .into(),
        )
    })
}

/// The major version of the server in `bin` (`postgres --version`: "postgres (PostgreSQL) 17.10").
pub fn server_major(bin: &Path) -> Result<u32> {
    let out = run(Command::new(bin.join("postgres")).arg("--version"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "(PostgreSQL)")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| Error::Local(format!("{}: cannot read the version from {text:?}", bin.display())))
}
