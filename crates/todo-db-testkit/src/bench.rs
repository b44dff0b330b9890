//! Helpers shared by the benchmarks: settings from the environment, a fresh database, closed
//! loops, and pgbench as the reference.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use todo_db::{Db, Settings};

/// A number from the environment, or `default`; BENCH_QUICK=1 (the CI smoke run) uses `quick`.
pub fn knob(name: &str, default: u64, quick: u64) -> u64 {
    let fallback = if quick_mode() { quick } else { default };
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(fallback)
}

/// BENCH_QUICK=1: tiny sizes and short runs, to prove the harness works, not to measure.
pub fn quick_mode() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// The server to benchmark against: DATABASE_URL, or the embedded default.
pub async fn server_url() -> anyhow::Result<String> {
    Ok(match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(u) => u,
        None => todo_db_ops::local::Cluster::new(".todo-db").ensure_running().await?.url(),
    })
}

/// The embedded default's superuser URL for database `db` (`None` against DATABASE_URL).
pub async fn superuser_url(db: &str) -> Option<String> {
    if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        return None;
    }
    Some(todo_db_ops::local::Cluster::new(".todo-db").ensure_running().await.ok()?.superuser_url_for(db))
}

/// A CHECKPOINT of `db`'s server. The embedded default's admin login is Neon's kind of owner,
/// which may not checkpoint: its superuser does (the benchmark's own housekeeping, not todo-db's
/// work); against DATABASE_URL, `db`'s login.
pub async fn checkpoint(db: &Db) -> todo_db::Result<()> {
    match superuser_url("postgres").await {
        Some(url) => {
            let su = Db::connect_url(&url, &Settings::default()).await?;
            let done = su.admin().batch("checkpoint").await;
            su.close();
            done
        }
        None => db.admin().batch("checkpoint").await,
    }
}

/// Drops and creates database `name` on `server`, migrated; returns its URL and a pool of `size`.
pub async fn fresh_database(server: &str, name: &str, size: usize) -> anyhow::Result<(String, Db)> {
    let maint = Db::connect_url(&with_database(server, "postgres"), &Settings::default()).await?;
    maint.admin().batch(&format!("drop database if exists {name} with (force)")).await?;
    maint.admin().batch(&format!("create database {name}")).await?;
    let url = with_database(server, name);
    let mut settings = Settings::default();
    settings.pool.size = size;
    settings.pool.overflow = 0;
    settings.app_url = app_url(name).await?.map(todo_db::config::Secret::new);
    let db = Db::connect_url(&url, &settings).await?;
    todo_db::schema::migrate(&mut *db.admin().connection().await?).await?;
    Ok((url, db))
}

/// Seeds `db` with `users` x `per_user` tasks (`todo-db seed`'s generator, seed 1) and numbers
/// the users in table `bench_users (n, id)`, readable by the app role, for pgbench scripts to
/// pick one at random (`\set n random(1, N)`). Returns the user ids in that order.
pub async fn seed_numbered(db: &Db, users: u64, per_user: u32) -> anyhow::Result<Vec<uuid::Uuid>> {
    todo_db_ops::seed::load(db, &todo_db_ops::seed::SeedSpec::new(users, per_user).seed(1), Default::default()).await?;
    db.admin()
        .batch(
            "create table bench_users as select row_number() over (order by id) as n, id from users; \
             alter table bench_users add primary key (n); grant select on bench_users to todo_app; \
             analyze bench_users",
        )
        .await?;
    let rows = db.admin().query("select id from bench_users order by n", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The URL user scopes log in with on database `name`: the embedded default's app login. `None`
/// against DATABASE_URL, and with BENCH_APP_LOGIN=0: user scopes then switch role on the admin
/// login.
pub async fn app_url(name: &str) -> anyhow::Result<Option<String>> {
    if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty())
        || std::env::var("BENCH_APP_LOGIN").is_ok_and(|v| v == "0")
    {
        return Ok(None);
    }
    Ok(todo_db_ops::local::Cluster::new(".todo-db").ensure_running().await?.app_url_for(name))
}

/// The identity statement `db`'s user scopes send, from the library
/// ([`Db::scope_identity_sql`]), the user given by the SQL expression `id`.
pub fn identity_select(db: &Db, id: &str) -> String {
    db.scope_identity_sql().replace("$1", id)
}

/// [`identity_select`] for pgbench scripts: the user is column `id` of `from`.
pub fn identity_sql(db: &Db, id: &str, from: &str) -> String {
    format!("{} from {from};\n", identity_select(db, id))
}

/// `sql` with its parameters `$1`, `$2`, ... replaced by `values` (SQL expressions), for pgbench
/// scripts that replay a statement of the library's.
pub fn bind(sql: &str, values: &[&str]) -> String {
    // From the highest number down, so that `$1` does not match the start of `$10`.
    values.iter().enumerate().rev().fold(sql.to_string(), |s, (i, v)| s.replace(&format!("${}", i + 1), v))
}

/// The library's task creation as a pgbench statement: a new task titled "benchmark task" for the
/// user numbered `:n` of `bench_users`.
pub fn create_script() -> String {
    bind(
        todo_db::store::tasks::sql::CREATE,
        &[
            "gen_random_uuid()",
            "(select id from bench_users where n = :n)",
            "'benchmark task'",
            "''",
            "'medium'",
            "null::timestamptz",
            "'todo'",
        ],
    )
}

/// A task's own columns as the library's task queries read them, for table alias `t`.
pub fn fields(t: &str) -> String {
    aliased(todo_db::store::tasks::sql::FIELDS.trim_end_matches(", "), t)
}

/// The columns of a task query as the library's task queries read them: the fields and the tag
/// names, for table alias `t`.
pub fn columns(t: &str) -> String {
    aliased(todo_db::store::tasks::sql::COLUMNS, t)
}

/// `sql`, written for table alias `t`, for alias `to`.
fn aliased(sql: &str, to: &str) -> String {
    if to == "t" {
        return sql.to_string();
    }
    // `t.` only where it is the alias (not the end of `tt.`).
    let mut out = String::with_capacity(sql.len());
    let mut prev = ' ';
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == 't' && chars.peek() == Some(&'.') && !prev.is_ascii_alphanumeric() && prev != '_' {
            out.push_str(to);
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Drops database `name` unless BENCH_KEEP is set.
/// A new empty database `name` (dropped first if there), with no schema: its URL.
pub async fn plain_database(server: &str, name: &str) -> anyhow::Result<String> {
    let maint = Db::connect_url(&with_database(server, "postgres"), &Settings::default()).await?;
    maint.admin().batch(&format!("drop database if exists {name} with (force)")).await?;
    maint.admin().batch(&format!("create database {name}")).await?;
    Ok(with_database(server, name))
}

pub async fn drop_database(server: &str, name: &str) {
    if std::env::var_os("BENCH_KEEP").is_some() {
        return;
    }
    if let Ok(maint) = Db::connect_url(&with_database(server, "postgres"), &Settings::default()).await {
        maint.admin().batch(&format!("drop database if exists {name} with (force)")).await.ok();
    }
}

/// Starts a run from the same place as every other, as pgbench does by vacuuming first: VACUUM of
/// the tables the runs write, then a CHECKPOINT. The vacuum leaves nothing for autovacuum to
/// start inside the run (a vacuum of the task table or the audit log, its CPU counted against
/// whichever side happened to be running); the checkpoint makes each side pay the full-page
/// images of the pages it touches first (the mix writes over a million tasks at random, and a
/// checkpoint falling inside one side's run and not the other's moves its rate by a fifth).
/// For sides that write the same rows; not for a comparison of how much WAL two sides write
/// (audit on and off), where starting every run at a checkpoint would inflate the shared cost of
/// full-page images and flatter the ratio. BENCH_SETTLE=0 turns it off. Returns false, once
/// saying why, where the login may not checkpoint (PostgreSQL 15 needs superuser or
/// pg_checkpoint): the runs then start wherever the server's own checkpoints are.
pub async fn settle(db: &Db) -> bool {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if std::env::var("BENCH_SETTLE").is_ok_and(|v| v == "0") {
        return false;
    }
    // Two batches: several statements in one would be one transaction, which VACUUM refuses.
    let admin = db.admin();
    match async {
        admin.batch("vacuum tasks, tags, task_tags, audit.log").await?;
        checkpoint(db).await
    }
    .await
    {
        Ok(()) => true,
        Err(e) => {
            WARNED.call_once(|| println!("(no VACUUM and CHECKPOINT between runs: {e})"));
            false
        }
    }
}

/// Closed loop: `clients` workers each run `op` back to back until `seconds` have passed;
/// returns operations per second.
pub async fn closed_loop<F, Fut>(clients: u64, seconds: u64, op: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    op().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

/// Runs pgbench (-M prepared) with `script` and returns its transactions per second.
pub fn pgbench(url: &str, script: &str, clients: u64, seconds: u64) -> anyhow::Result<f64> {
    let bin = todo_db_ops::local::find_bin_dir()?.join("pgbench");
    let file = std::env::temp_dir().join(format!("todo-db-bench-{}.sql", std::process::id()));
    std::fs::write(&file, script)?;
    let out = Command::new(&bin)
        .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    let tps = tps_of(&text)?;
    Ok(tps)
}

/// A TCP proxy on 127.0.0.1 that delays every byte by `delay` in each direction (so a round trip
/// costs at least 2 x `delay`), preserving order and throughput. Returns the port it listens on.
/// It runs on OS threads, two per direction (one reads, one writes when a chunk is due), because
/// their sleeps end within ~0.1 ms of the deadline where tokio's timer rounds up to its 1 ms tick:
/// that rounding made one trip cost ~6.5 ms instead of ~4 and blurred the count of trips.
pub fn delay_proxy(upstream: (String, u16), delay: Duration) -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else { continue };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pipes = || Some([(client.try_clone().ok()?, server.try_clone().ok()?), (server, client)]);
            let Some(pipes) = pipes() else { continue };
            for (mut from, mut to) in pipes {
                let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    while let Ok((due, bytes)) = rx.recv() {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        if to.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    Ok(port)
}

/// Latency percentile (`q` in 0..=1) of `ms`, which it sorts.
pub fn percentile(ms: &mut [f64], q: f64) -> f64 {
    if ms.is_empty() {
        return f64::NAN;
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[((ms.len() - 1) as f64 * q).round() as usize]
}

/// Per-round ratios as `median (lowest-highest)`. Drift on a shared machine moves both sides of a
/// round alike, so the per-round ratios vary less than the rates they come from.
pub fn ratio_spread(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(|a, b| a.total_cmp(b));
    let n = ratios.len();
    if n == 0 {
        return "-".into();
    }
    // An even count's median is the mean of the middle two.
    let median = (ratios[(n - 1) / 2] + ratios[n / 2]) / 2.0;
    format!("{median:.2} ({:.2}-{:.2})", ratios[0], ratios[n - 1])
}

/// One pgbench run of several weighted scripts (`-M prepared`), with per-transaction logging:
/// the overall rate and, per script, every latency in ms.
pub struct PgbenchMix {
    pub tps: f64,
    pub latencies: Vec<Vec<f64>>,
}

pub fn pgbench_mix(
    url: &str,
    scripts: &[(&str, String, u32)],
    clients: u64,
    seconds: u64,
) -> anyhow::Result<PgbenchMix> {
    let bin = todo_db_ops::local::find_bin_dir()?.join("pgbench");
    let dir = std::env::temp_dir().join(format!("todo-db-pgbench-{}-{clients}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(&bin);
    cmd.args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &seconds.to_string(), "-l", "--log-prefix"])
        .arg(dir.join("log"));
    for (name, script, weight) in scripts {
        let file = dir.join(format!("{name}.sql"));
        std::fs::write(&file, script)?;
        cmd.arg("-f").arg(format!("{}@{weight}", file.display()));
    }
    let out = cmd.arg(url).current_dir(&dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    let tps = tps_of(&text)?;
    let mut latencies = vec![Vec::new(); scripts.len()];
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")) {
            continue;
        }
        // client_id transaction_no latency_us script_no epoch epoch_us
        for line in std::fs::read_to_string(&path)?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(us), Some(script)) =
                (f.get(2).and_then(|v| v.parse::<f64>().ok()), f.get(3).and_then(|v| v.parse::<usize>().ok()))
            {
                if let Some(slot) = latencies.get_mut(script) {
                    slot.push(us / 1000.0);
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(PgbenchMix { tps, latencies })
}

/// The transactions per second pgbench printed.
fn tps_of(text: &str) -> anyhow::Result<f64> {
    text.lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))
}

/// Runs a command to completion; a failure is an error with its stderr (never its arguments,
/// which may hold a URL with a password).
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        cmd.get_program().to_string_lossy(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// BENCH_ONLY=part,part: run only the named parts of a benchmark (all when unset).
pub fn part(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == name))
}

/// CPU seconds spent by the server and by the client, read from /proc (Linux, and a server on
/// this machine): what a side's operations cost where, beside how many of them ran. On a machine
/// whose cores the server and the client share, ops/s alone cannot say whether a side was slower
/// because its server work was heavier, its client heavier, or the machine busier.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// The postmaster and all its processes, those that exited during the run included.
    pub server: f64,
    /// This process.
    pub client: f64,
    /// This process's finished children (pgbench).
    pub children: f64,
}

/// Reads the CPU used so far; `postmaster` from [`postmaster_pid`]. `None` without /proc.
pub fn cpu(postmaster: Option<u32>) -> Option<Cpu> {
    let tick = 100.0; // USER_HZ, 100 on every Linux this runs on
    let me = proc_times("self")?;
    let server = match postmaster {
        Some(pm) => {
            let (u, s, cu, cs, _) = proc_times(&pm.to_string())?;
            let mut total = u + s + cu + cs;
            for entry in std::fs::read_dir("/proc").ok()?.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
                if let Some((u, s, _, _, ppid)) = proc_times(pid) {
                    if ppid == pm {
                        total += u + s;
                    }
                }
            }
            total
        }
        None => 0,
    };
    Some(Cpu {
        server: server as f64 / tick,
        client: (me.0 + me.1) as f64 / tick,
        children: (me.2 + me.3) as f64 / tick,
    })
}

/// The CPU used since `before` (from [`cpu`] with the same `postmaster`), when both reads worked.
pub fn cpu_since(postmaster: Option<u32>, before: Option<Cpu>) -> Option<Cpu> {
    before.zip(cpu(postmaster)).map(|(before, after)| after - before)
}

/// utime, stime, cutime, cstime (ticks) and the parent pid of `/proc/<pid>/stat`.
fn proc_times(pid: &str) -> Option<(u64, u64, u64, u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(11)?, n(12)?, n(13)?, n(14)?, n(1)? as u32))
}

/// The pid of the server's postmaster, when it runs on this machine and /proc shows it: the
/// parent of this connection's backend.
pub async fn postmaster_pid(db: &Db) -> Option<u32> {
    let conn = db.admin().connection().await.ok()?;
    let backend: i32 = conn.query_one("select pg_backend_pid()", &[]).await.ok()?.get(0);
    let (.., ppid) = proc_times(&backend.to_string())?;
    // A server elsewhere: the pid, if it exists here at all, is some other program.
    let is_postgres =
        |pid: String| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
    (is_postgres(backend.to_string()) && is_postgres(ppid.to_string())).then_some(ppid)
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu { server: self.server - o.server, client: self.client - o.client, children: self.children - o.children }
    }
}
