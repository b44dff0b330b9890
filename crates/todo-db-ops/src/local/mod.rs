//! The embedded default: a PostgreSQL cluster that todo-db creates, starts and owns under
//! `.todo-db/` (or `TODO_DB_HOME`), which the CLI uses when no `DATABASE_URL` is set (the library
//! itself starts it only when asked: [`Cluster::ensure_running`]).
//!
//! It uses the PostgreSQL server binaries installed on the machine (or `TODO_DB_PG_BIN`). `initdb`
//! and `postgres` refuse to run as root; when todo-db runs as root it runs them as the `postgres`
//! system account. The cluster listens on 127.0.0.1 only, on a free port chosen at creation, with
//! TLS from a private CA created alongside it (so the URL uses `sslmode=verify-full`), and password
//! authentication (SCRAM).
//!
//! Its admin login is made the way Neon makes `neondb_owner`, so that everything run against the
//! embedded default proves what a Neon user gets: [`OWNER`] is not a superuser; it has LOGIN,
//! CREATEDB, CREATEROLE and BYPASSRLS and is a member of the NOLOGIN role `neon_superuser`. Its
//! password is kept in `.todo-db/password` (mode 0600). The cluster's superuser ([`SUPERUSER`],
//! password in `.todo-db/superuser-password`) only creates that login, and takes base backups for
//! a replica (which needs the REPLICATION attribute; Neon makes its replicas itself).

mod process;
mod setup;

pub use process::{find_bin_dir, find_bin_dir_for, free_port, server_major};

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;

use todo_db::error::{Error, Result};

use process::*;
use setup::*;

/// The database the embedded default's URL names.
pub const DATABASE: &str = "todo";
/// The cluster's superuser: creates the admin login, takes a replica's base backup; nothing else.
pub const SUPERUSER: &str = "postgres";
/// todo-db's admin login, made as Neon makes its owner role (not a superuser).
pub const OWNER: &str = "todo";
/// The NOLOGIN role the owner is a member of, as on Neon.
pub const NEON_SUPERUSER: &str = "neon_superuser";
/// The cluster's login for user scopes: a member of `todo_app` only (see
/// [`schema::app_login_sql`](todo_db::schema)); its password is kept in `.todo-db/app-password`.
pub const APP_LOGIN: &str = "todo_app_login";

#[derive(Debug, Clone)]
pub struct Cluster {
    home: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub home: PathBuf,
    pub initialized: bool,
    pub running: bool,
    pub port: Option<u16>,
    pub bin_dir: Option<PathBuf>,
    /// The major version of the binaries in `bin_dir`.
    pub version: Option<u32>,
}

/// A running embedded cluster and how to reach it.
#[derive(Debug, Clone)]
pub struct Running {
    pub port: u16,
    /// The owner login's password.
    password: String,
    superuser_password: String,
    /// The app login's password (`None` for a cluster that has none yet: a replica of one).
    app_password: Option<String>,
    ca: PathBuf,
}

impl Running {
    /// The connection URL (holds the password: keep it in a `Secret`, never log it).
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }
    pub fn url_for(&self, database: &str) -> String {
        self.login_url(OWNER, &self.password, database)
    }

    /// The cluster superuser's URL: for what only a superuser may do to a local cluster (creating
    /// the owner login, a replica's base backup); never todo-db's own work.
    pub fn superuser_url_for(&self, database: &str) -> String {
        self.login_url(SUPERUSER, &self.superuser_password, database)
    }

    /// The URL user scopes use (`APP_DATABASE_URL`): the app login, which cannot bypass RLS.
    pub fn app_url(&self) -> Option<String> {
        self.app_url_for(DATABASE)
    }
    pub fn app_url_for(&self, database: &str) -> Option<String> {
        Some(self.login_url(APP_LOGIN, self.app_password.as_deref()?, database))
    }

    fn login_url(&self, login: &str, password: &str, database: &str) -> String {
        format!(
            "postgresql://{login}:{password}@127.0.0.1:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.ca.display()
        )
    }
}

/// The account that runs the server: `None` means this process's own.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// A relative `home` is taken from the current directory (the server's tools run from `/`).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        let home =
            if home.is_relative() { std::env::current_dir().map(|d| d.join(&home)).unwrap_or(home) } else { home };
        Cluster { home }
    }

    fn data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Creates the cluster on first use, starts it if it is stopped, and returns how to reach it.
    /// Safe to call from several processes at once (a lock file serialises them).
    pub async fn ensure_running(&self) -> Result<Running> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.ensure_running_blocking())
            .await
            .map_err(|e| Error::Local(format!("start task failed: {e}")))?
    }

    pub fn ensure_running_blocking(&self) -> Result<Running> {
        fs::create_dir_all(&self.home).map_err(|e| self.io("create", &self.home, e))?;
        let home = fs::canonicalize(&self.home).map_err(|e| self.io("resolve", &self.home, e))?;
        let this = Cluster::new(home);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(this.home.join("lock"))
            .map_err(|e| this.io("open", &this.home.join("lock"), e))?;
        lock.lock().map_err(|e| this.io("lock", &this.home.join("lock"), e))?;
        let bin = this.bin_dir()?;
        let run_as = run_as()?;
        if !this.data().join("PG_VERSION").exists() {
            this.create(&bin, run_as)?;
        } else if !this.home.join("superuser-password").exists() {
            return Err(Error::Local(format!(
                "the embedded cluster at {} was made by an older todo-db, with a superuser as its admin login; \
                 todo-db now logs in as a non-superuser owner, as on Neon. Keep its data with `todo-db backup \
                 create` (DATABASE_URL=postgresql://todo:<the password in {}>@127.0.0.1:<the port in {}>/todo), \
                 then `todo-db local stop`, remove the directory, and start again (`todo-db backup restore` \
                 brings the data back)",
                this.home.display(),
                this.home.join("password").display(),
                this.home.join("port").display()
            )));
        }
        if !this.is_running(&bin, run_as)? {
            this.start(&bin, run_as)?;
        }
        if !this.home.join("app-password").exists() {
            this.create_logins()?;
        }
        let running = this.running()?;
        drop(lock);
        Ok(running)
    }

    pub fn status(&self) -> Result<Status> {
        let bin = self.bin_dir().ok();
        let initialized = self.data().join("PG_VERSION").exists();
        let running = match (&bin, initialized) {
            (Some(bin), true) => self.is_running(bin, run_as()?)?,
            _ => false,
        };
        let version = bin.as_deref().and_then(|b| server_major(b).ok());
        Ok(Status { home: self.home.clone(), initialized, running, port: self.read_port().ok(), bin_dir: bin, version })
    }

    /// Makes this (not yet created) cluster a streaming replica of `primary`, which must be
    /// running: a `pg_basebackup` of the primary as its superuser, standby settings, its own port,
    /// then started. For tests and for
    /// trying `DATABASE_READ_URL` locally.
    pub fn create_replica_of(&self, primary: &Cluster) -> Result<Running> {
        let bin = primary.bin_dir()?;
        let run_as = run_as()?;
        let source = primary.running()?;
        fs::create_dir_all(&self.home).map_err(|e| self.io("create", &self.home, e))?;
        for f in ["password", "superuser-password", "app-password", "ca.crt"] {
            if f == "app-password" && !primary.home.join(f).exists() {
                continue;
            }
            fs::copy(primary.home.join(f), self.home.join(f)).map_err(|e| self.io("copy", &self.home.join(f), e))?;
        }
        let data = self.data();
        fs::create_dir_all(&data).map_err(|e| self.io("create", &data, e))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).map_err(|e| self.io("chmod", &data, e))?;
        if let Some(r) = run_as {
            chown(&self.home, r)?;
            chown(&data, r)?;
        }
        let out = run(command(&bin, "pg_basebackup", run_as)
            .env("PGPASSWORD", &source.superuser_password)
            .env("PGSSLMODE", "require")
            .arg("-D")
            .arg(&data)
            .args(["-X", "stream", "--checkpoint=fast", "-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
            .arg(source.port.to_string()))?;
        check(&out, "pg_basebackup")?;
        // The standby settings are written here rather than by `pg_basebackup -R`: a newer
        // pg_basebackup writes connection options (sslnegotiation, ...) an older server's
        // walreceiver refuses.
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={} sslmode=require application_name=todo-db-replica",
            source.port, source.superuser_password
        );
        write_private(&data.join("standby.signal"), b"", run_as)?;
        self.write_conf_with(free_port()?, run_as, &format!("primary_conninfo = '{conninfo}'\n"))?;
        self.start(&bin, run_as)?;
        self.running()
    }

    /// Stops the cluster if it runs; returns whether it was running.
    pub fn stop(&self) -> Result<bool> {
        self.stop_with("fast")
    }

    /// Stops the server with `pg_ctl -m MODE`: `fast` (roll back sessions, checkpoint), or
    /// `immediate` (no checkpoint: the next start runs crash recovery, as after a power loss).
    pub fn stop_with(&self, mode: &str) -> Result<bool> {
        let bin = self.bin_dir()?;
        let run_as = run_as()?;
        if !self.data().join("PG_VERSION").exists() || !self.is_running(&bin, run_as)? {
            return Ok(false);
        }
        let data = fs::canonicalize(self.data()).map_err(|e| self.io("resolve", &self.data(), e))?;
        let out = run(command(&bin, "pg_ctl", run_as).arg("-D").arg(&data).args(["-m", mode, "-w", "stop"]))?;
        check(&out, "pg_ctl stop")?;
        Ok(true)
    }

    fn running(&self) -> Result<Running> {
        let password = fs::read_to_string(self.home.join("password"))
            .map_err(|e| self.io("read", &self.home.join("password"), e))?;
        let superuser_password = fs::read_to_string(self.home.join("superuser-password"))
            .map_err(|e| self.io("read", &self.home.join("superuser-password"), e))?;
        let app_password = fs::read_to_string(self.home.join("app-password")).ok().map(|p| p.trim().to_string());
        Ok(Running {
            port: self.read_port()?,
            password: password.trim().to_string(),
            superuser_password: superuser_password.trim().to_string(),
            app_password,
            ca: self.home.join("ca.crt"),
        })
    }

    /// Creates the logins on a new cluster: the superuser makes the owner as Neon makes
    /// `neondb_owner` (and nothing else); the owner then makes the app login, as a Neon user would,
    /// with a new random password kept in `app-password`. Idempotent.
    fn create_logins(&self) -> Result<()> {
        let running = self.running()?;
        run_sql(&running.superuser_url_for("postgres"), &owner_login_sql(OWNER, &running.password)?)
            .map_err(|e| Error::Local(format!("creating the owner login {OWNER}: {e}")))?;
        let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
        let sql = todo_db::schema::app_login_sql(APP_LOGIN, &password)?;
        run_sql(&running.url_for("postgres"), &sql)
            .map_err(|e| Error::Local(format!("creating the app login {APP_LOGIN}: {e}")))?;
        write_private(&self.home.join("app-password"), password.as_bytes(), None)
    }

    /// The server binaries this cluster runs on: `TODO_DB_PG_BIN`, or those found on the machine,
    /// preferring the major version an existing cluster was made with.
    pub fn bin_dir(&self) -> Result<PathBuf> {
        let made_with = fs::read_to_string(self.data().join("PG_VERSION")).ok().and_then(|v| v.trim().parse().ok());
        let bin = find_bin_dir_for(made_with)?;
        if let Some(made_with) = made_with {
            let have = server_major(&bin)?;
            if have != made_with {
                return Err(Error::Local(format!(
                    "the embedded cluster at {} is PostgreSQL {made_with}, but the server binaries in {} are \
                     PostgreSQL {have}: set TODO_DB_PG_BIN to a PostgreSQL {made_with} bin directory, or \
                     TODO_DB_HOME to another directory for a cluster of {have}",
                    self.home.display(),
                    bin.display()
                )));
            }
        }
        Ok(bin)
    }

    fn read_port(&self) -> Result<u16> {
        let raw =
            fs::read_to_string(self.home.join("port")).map_err(|e| self.io("read", &self.home.join("port"), e))?;
        raw.trim()
            .parse()
            .map_err(|_| Error::Local(format!("{} does not hold a port number", self.home.join("port").display())))
    }

    fn is_running(&self, bin: &Path, run_as: Option<RunAs>) -> Result<bool> {
        let out = run(command(bin, "pg_ctl", run_as).arg("-D").arg(self.data()).arg("status"))?;
        Ok(out.status.success())
    }

    fn create(&self, bin: &Path, run_as: Option<RunAs>) -> Result<()> {
        tracing::info!(home = %self.home.display(), "creating the embedded PostgreSQL cluster");
        let data = self.data();
        fs::create_dir_all(&data).map_err(|e| self.io("create", &data, e))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).map_err(|e| self.io("chmod", &data, e))?;
        let random = || -> String { rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect() };
        write_private(&self.home.join("password"), random().as_bytes(), None)?;
        let password = random();
        write_private(&self.home.join("superuser-password"), password.as_bytes(), None)?;
        let pwfile = self.home.join("initdb.pw");
        write_private(&pwfile, password.as_bytes(), run_as)?;
        if let Some(r) = run_as {
            chown(&data, r)?;
        }
        let out = run(command(bin, "initdb", run_as)
            .arg("-D")
            .arg(&data)
            .args([
                "--username",
                SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--pwfile",
            ])
            .arg(&pwfile));
        let _ = fs::remove_file(&pwfile);
        check(&out?, "initdb")?;

        let (ca_pem, cert_pem, key_pem) = certificates()?;
        write_private(&self.home.join("ca.crt"), ca_pem.as_bytes(), None)?;
        fs::set_permissions(self.home.join("ca.crt"), fs::Permissions::from_mode(0o644))
            .map_err(|e| self.io("chmod", &self.home, e))?;
        write_private(&data.join("server.crt"), cert_pem.as_bytes(), run_as)?;
        write_private(&data.join("server.key"), key_pem.as_bytes(), run_as)?;
        let port = free_port()?;
        self.write_conf(port, run_as)?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| self.io("open", &data, e))?;
        writeln!(conf, "\ninclude_if_exists = 'todo-db.conf'").map_err(|e| self.io("write", &data, e))?;
        Ok(())
    }

    fn write_conf(&self, port: u16, run_as: Option<RunAs>) -> Result<()> {
        let extra = fs::read_to_string(self.data().join("todo-db.conf"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("primary_conninfo"))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        self.write_conf_with(port, run_as, &extra)
    }

    /// `todo-db.conf`, with `extra` lines at its end (a standby's `primary_conninfo`).
    fn write_conf_with(&self, port: u16, run_as: Option<RunAs>, extra: &str) -> Result<()> {
        let conf = format!(
            "# Written by todo-db: the embedded default cluster.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             max_connections = 200\n\
             logging_collector = off\n\
             {extra}"
        );
        write_private(&self.data().join("todo-db.conf"), conf.as_bytes(), run_as)?;
        fs::write(self.home.join("port"), port.to_string()).map_err(|e| self.io("write", &self.home, e))
    }

    fn start(&self, bin: &Path, run_as: Option<RunAs>) -> Result<()> {
        // The port chosen at creation may have been taken since: pick another.
        let port = self.read_port()?;
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            let port = free_port()?;
            tracing::info!(port, "the embedded cluster's port is taken; moving it");
            self.write_conf(port, run_as)?;
        }
        let log = self.data().join("postgres.log");
        let out = run(command(bin, "pg_ctl", run_as)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]))?;
        if !out.status.success() {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            return Err(Error::Local(format!(
                "pg_ctl start failed: {}\nlast lines of {}:\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(())
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> Error {
        Error::Local(format!("cannot {what} {}: {e}", path.display()))
    }
}
