//! A PgBouncer in transaction mode in front of a local server, as Neon's pooled endpoint is: for
//! the tests and benchmarks.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use todo_db::error::{Error, Result};
use todo_db_ops::local::free_port;

/// A PgBouncer in transaction mode in front of a local server: what Neon's pooled endpoint is,
/// for development, tests and benchmarks. Stopped when this value is dropped, and by a watcher
/// when the process that started it ends.
pub struct LocalPooler {
    pub port: u16,
    pub dir: PathBuf,
    /// The PgBouncer version, e.g. `1.24.1`.
    pub version: String,
    /// Whether it tracks protocol-level prepared statements across its server connections
    /// (`max_prepared_statements`, PgBouncer 1.21 and later; set to 1000, as on Neon).
    pub tracks_prepared: bool,
    watcher: std::process::Child,
    /// What it was started with, for [`restart`](Self::restart).
    launch: Launch,
}

struct Launch {
    server_url: String,
    pool_size: usize,
    other_logins: Vec<String>,
    track_prepared: bool,
}

impl Drop for LocalPooler {
    fn drop(&mut self) {
        let _ = self.watcher.kill();
        let _ = self.watcher.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl LocalPooler {
    /// Starts `pgbouncer` (see [`pgbouncer_binary`]) on a free port of 127.0.0.1, forwarding every
    /// database to the server `server_url` names with its login, at most `pool_size` server
    /// connections per database. Clients connect without TLS. A PgBouncer that can track prepared
    /// statements (1.21 and later) does, for up to 1000 per connection, as Neon's pooler does.
    pub fn start(server_url: &str, pool_size: usize) -> Result<LocalPooler> {
        Self::start_with(server_url, pool_size, &[], true)
    }

    /// As [`start`](Self::start), also letting in the logins of `other_logins` (URLs of the same
    /// server: the app login, say), each with its own pool of `pool_size`; with `track_prepared`
    /// false it tracks no prepared statements even where it could (`max_prepared_statements = 0`,
    /// as PgBouncer before 1.21 and a pooler configured so behave).
    pub fn start_with(
        server_url: &str,
        pool_size: usize,
        other_logins: &[&str],
        track_prepared: bool,
    ) -> Result<LocalPooler> {
        Self::start_on(free_port()?, server_url, pool_size, other_logins, track_prepared)
    }

    /// Stops this PgBouncer (every client and server connection ends) and starts a new one on the
    /// same port with the same settings: a pooler restart, as a deploy or a crash of it is.
    pub fn restart(&mut self) -> Result<()> {
        let _ = self.watcher.kill();
        let _ = self.watcher.wait();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                return Err(Error::Local(format!("pgbouncer on port {} did not stop within 10 s", self.port)));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = fs::remove_dir_all(&self.dir);
        let l = &self.launch;
        let logins: Vec<&str> = l.other_logins.iter().map(String::as_str).collect();
        let fresh = Self::start_on(self.port, &l.server_url, l.pool_size, &logins, l.track_prepared)?;
        // The old value's Drop finds its watcher gone and removes the new directory: keep it.
        let old = std::mem::replace(self, fresh);
        std::mem::forget(old);
        Ok(())
    }

    fn start_on(
        port: u16,
        server_url: &str,
        pool_size: usize,
        other_logins: &[&str],
        track_prepared: bool,
    ) -> Result<LocalPooler> {
        let server = url::Url::parse(server_url).map_err(|_| Error::Config("the server URL does not parse".into()))?;
        let (user, password) = (server.username().to_string(), server.password().unwrap_or("").to_string());
        let mut users = format!("\"{user}\" \"{password}\"\n");
        for other in other_logins {
            let u = url::Url::parse(other).map_err(|_| Error::Config("a login URL does not parse".into()))?;
            users.push_str(&format!("\"{}\" \"{}\"\n", u.username(), u.password().unwrap_or("")));
        }
        let dir = std::env::temp_dir().join(format!("todo-db-pooler-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| Error::Local(format!("{}: {e}", dir.display())))?;
        let tls =
            if server.query_pairs().any(|(k, v)| k == "sslmode" && v != "disable") { "require" } else { "disable" };
        let auth = if password.is_empty() { "trust" } else { "scram-sha-256" };
        let bin = pgbouncer_binary().ok_or_else(|| {
            Error::Local(
                "pgbouncer is not installed (scripts/install-servers builds PgBouncer 1.24; or apt-get install \
                 pgbouncer, or set PGBOUNCER to its path)"
                    .into(),
            )
        })?;
        let version = pgbouncer_version(&bin)?;
        let can_track = version_at_least(&version, (1, 21));
        let tracks_prepared = can_track && track_prepared;
        let prepared = match (can_track, tracks_prepared) {
            (true, true) => "max_prepared_statements = 1000\n",
            (true, false) => "max_prepared_statements = 0\n",
            _ => "",
        };
        let config = format!(
            "[databases]\n* = host={} port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = {auth}\nauth_file = {auth_file}\npool_mode = transaction\n\
             max_client_conn = 2000\ndefault_pool_size = {pool_size}\nserver_tls_sslmode = {tls}\n\
             ignore_startup_parameters = extra_float_digits,options\n{prepared}",
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432),
            auth_file = dir.join("users.txt").display(),
        );
        let io = |p: &Path, e: std::io::Error| Error::Local(format!("{}: {e}", p.display()));
        fs::write(dir.join("pgbouncer.ini"), config).map_err(|e| io(&dir, e))?;
        fs::write(dir.join("users.txt"), users).map_err(|e| io(&dir, e))?;
        // Readable by the postgres account, which runs PgBouncer when todo-db runs as root.
        for (f, mode) in [("", 0o755), ("pgbouncer.ini", 0o644), ("users.txt", 0o644)] {
            fs::set_permissions(dir.join(f), fs::Permissions::from_mode(mode)).map_err(|e| io(&dir, e))?;
        }
        let as_root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        // PgBouncer must not outlive its watcher, however the watcher ends (Drop kills it with
        // SIGKILL, which no trap sees): `setpriv --pdeathsig` sends it SIGTERM when the watcher
        // dies. The switch to the postgres account happens in setpriv, before the exec, since a
        // change of credentials afterwards (`pgbouncer -u`) would clear the death signal.
        let ini = dir.join("pgbouncer.ini");
        let run = match (Path::new("/usr/bin/setpriv").is_file(), as_root) {
            (true, true) => format!(
                "/usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups --pdeathsig=TERM {} {}",
                bin.display(),
                ini.display()
            ),
            (true, false) => format!("/usr/bin/setpriv --pdeathsig=TERM {} {}", bin.display(), ini.display()),
            (false, true) => format!("{} -u postgres {}", bin.display(), ini.display()),
            (false, false) => format!("{} {}", bin.display(), ini.display()),
        };
        // The watcher stops PgBouncer when the owning process ends and then removes the directory
        // (it holds the login's password); a dropped pooler removes it itself.
        let script = format!(
            "{run} >\"{log}\" 2>&1 & child=$!; trap 'kill $child 2>/dev/null; rm -rf \"{dir}\"; exit' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
             kill $child 2>/dev/null; kill -0 {parent} 2>/dev/null || rm -rf \"{dir}\"",
            log = dir.join("pgbouncer.log").display(),
            dir = dir.display(),
            parent = std::process::id()
        );
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .map_err(|e| Error::Local(format!("cannot start pgbouncer (apt-get install pgbouncer): {e}")))?;
        let launch = Launch {
            server_url: server_url.to_string(),
            pool_size,
            other_logins: other_logins.iter().map(|l| l.to_string()).collect(),
            track_prepared,
        };
        let pooler = LocalPooler { port, dir, version, tracks_prepared, watcher, launch };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(pooler);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = fs::read_to_string(pooler.dir.join("pgbouncer.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let said = if tail.is_empty() {
            "its log is empty".to_string()
        } else {
            format!("its log ends:\n{}", tail.join("\n"))
        };
        Err(Error::Local(format!("pgbouncer ({}) did not start within 5 s; {said}", bin.display())))
    }

    /// `direct` (a URL of the same server), routed through this pooler.
    pub fn url(&self, direct: &str) -> String {
        via_local_port(direct, self.port)
    }
}

/// PgBouncer's executable: `PGBOUNCER`, the one scripts/install-servers builds (under
/// `TODO_DB_CACHE`, default /var/cache/todo-db), the usual install paths, then `PATH`.
pub fn pgbouncer_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PGBOUNCER") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("TODO_DB_CACHE").filter(|c| !c.is_empty()).unwrap_or("/var/cache/todo-db".into());
    let path = std::env::var_os("PATH").unwrap_or_default();
    [Path::new(&cache).join("pgbouncer/bin")]
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].iter().map(PathBuf::from))
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// `pgbouncer --version`'s version ("PgBouncer 1.24.1" -> "1.24.1").
pub fn pgbouncer_version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| Error::Local(format!("cannot run {}: {e}", bin.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("PgBouncer "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| Error::Local(format!("{}: not PgBouncer? --version said {:?}", bin.display(), text.trim())))
}

fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// `url` with its host and port replaced by 127.0.0.1:`port` and TLS off: for a pooler or a
/// proxy on this machine that forwards to the server `url` names.
pub fn via_local_port(url: &str, port: u16) -> String {
    let Ok(mut u) = url::Url::parse(url) else { return url.to_string() };
    let _ = u.set_host(Some("127.0.0.1"));
    let _ = u.set_port(Some(port));
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs).append_pair("sslmode", "disable");
    u.to_string()
}
