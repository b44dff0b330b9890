//! Test harness: a real PostgreSQL (DATABASE_URL, or the embedded default under .todo-db/), one
//! fresh database per test cloned from a migrated template, dropped when the test passes.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use todo_db::db::Target;
use todo_db::model::{NewUser, UserId};
use todo_db::{Db, Settings};

/// URL of the test server's maintenance database (`postgres`).
pub fn server_url() -> String {
    match embedded() {
        Some(running) => running.url_for("postgres"),
        None => with_database(&std::env::var("DATABASE_URL").expect("DATABASE_URL"), "postgres"),
    }
}

/// The URL of database `db` as the server's superuser: for what a test does to the server from
/// outside todo-db (making a misconfigured role to be found). The embedded cluster's superuser, or
/// DATABASE_URL's login.
pub fn superuser_url(db: &str) -> String {
    match embedded() {
        Some(running) => running.superuser_url_for(db),
        None => with_database(&std::env::var("DATABASE_URL").expect("DATABASE_URL"), db),
    }
}

/// The embedded test cluster, when DATABASE_URL does not name a server: `TODO_DB_HOME` (default
/// `.todo-db` in the project), on the server binaries of `TODO_DB_PG_BIN` (default: found on the
/// machine). Its admin login is Neon's kind of owner, not a superuser.
fn embedded() -> Option<&'static todo_db_ops::local::Running> {
    static RUNNING: OnceLock<Option<todo_db_ops::local::Running>> = OnceLock::new();
    RUNNING
        .get_or_init(|| {
            if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
                return None;
            }
            let home = std::env::var_os("TODO_DB_HOME")
                .filter(|h| !h.is_empty())
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.todo-db"));
            Some(todo_db_ops::local::Cluster::new(home).ensure_running_blocking().expect("embedded test cluster"))
        })
        .as_ref()
}

/// The test server's major version (`server_version_num` / 10000).
pub async fn server_major(db: &Db) -> i32 {
    let rows = db.admin().query("select current_setting('server_version_num')::int / 10000", &[]).await.unwrap();
    rows[0].get(0)
}

/// The app login's URL for database `db` (APP_DATABASE_URL): the embedded cluster's own login.
/// `None` against DATABASE_URL, and through the harness's PgBouncer: there user scopes switch role
/// on the admin login, which those runs test.
pub fn app_url(db: &str) -> Option<String> {
    if through_pgbouncer() {
        return None;
    }
    embedded()?.app_url_for(db)
}

pub fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.pool.size = 4;
    s.pool.overflow = 0;
    s.pool.acquire_timeout = Duration::from_secs(10);
    s.pool.connect_retry = Duration::from_secs(5);
    match pgbouncer_mode() {
        Some(PgBouncerMode::Unnamed) => s.pool.statements = todo_db::config::StatementMode::Unnamed,
        Some(PgBouncerMode::Prepared) => s.pool.statements = todo_db::config::StatementMode::Prepared,
        None => {}
    }
    s
}

/// How the harness's PgBouncer is used (`TODO_DB_TEST_PGBOUNCER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgBouncerMode {
    /// `1` or `unnamed`: unnamed statements (any PgBouncer).
    Unnamed,
    /// `prepared`: prepared statements, which the pooler tracks across its server connections
    /// (PgBouncer 1.21 and later, as Neon's pooler is).
    Prepared,
}

pub fn pgbouncer_mode() -> Option<PgBouncerMode> {
    match std::env::var("TODO_DB_TEST_PGBOUNCER").unwrap_or_default().as_str() {
        "" | "0" => None,
        "1" | "unnamed" => Some(PgBouncerMode::Unnamed),
        "prepared" => Some(PgBouncerMode::Prepared),
        other => panic!("TODO_DB_TEST_PGBOUNCER={other:?}: expected 1, unnamed or prepared"),
    }
}

/// `TODO_DB_TEST_PGBOUNCER` set: each test's own connections go through a PgBouncer in
/// transaction mode that the harness starts (as Neon's pooled endpoint would); the harness's
/// admin work (templates, database copies) stays direct.
pub fn through_pgbouncer() -> bool {
    pgbouncer_mode().is_some()
}

/// The harness's PgBouncer (started on first use, stopped when this process exits). In the
/// `prepared` mode it must track prepared statements, or the run stops saying so.
pub fn pooler() -> &'static crate::pooler::LocalPooler {
    static POOLER: OnceLock<crate::pooler::LocalPooler> = OnceLock::new();
    POOLER.get_or_init(|| {
        let pooler = crate::pooler::LocalPooler::start(&server_url(), 2).expect("pgbouncer for the pooled tests");
        if pgbouncer_mode() == Some(PgBouncerMode::Prepared) {
            assert!(
                pooler.tracks_prepared,
                "TODO_DB_TEST_PGBOUNCER=prepared needs PgBouncer 1.21 or later, found {}; scripts/install-servers \
                 builds 1.24 (PGBOUNCER names the binary)",
                pooler.version
            );
        }
        eprintln!("through PgBouncer {} ({:?} statements)", pooler.version, pgbouncer_mode());
        pooler
    })
}

/// The URL a test's own pool uses: direct, or through the harness's PgBouncer.
pub fn client_url(direct: &str) -> String {
    if through_pgbouncer() {
        pgbouncer_url(direct)
    } else {
        direct.to_string()
    }
}

/// `direct`, but through the harness's PgBouncer (transaction mode; two server connections per
/// database, so concurrent clients share them).
pub fn pgbouncer_url(direct: &str) -> String {
    pooler().url(direct)
}

async fn maintenance() -> todo_db::db::ClientWrapper {
    let s = settings();
    Target::parse(&server_url(), &s.pool, false)
        .unwrap()
        .connect(Duration::from_secs(10), Duration::from_secs(10))
        .await
        .unwrap()
}

/// The migrated template's name changes whenever a migration does.
fn template_name() -> String {
    let all: String = todo_db::schema::MIGRATIONS.iter().map(|m| m.checksum()).collect();
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(all));
    format!("todo_tmpl_{}", &hex::encode(digest)[..12])
}

/// Creates the template once per server (serialised across test processes by an advisory lock).
async fn ensure_template(client: &tokio_postgres::Client) -> String {
    let name = template_name();
    client.execute("select pg_advisory_lock(7402)", &[]).await.unwrap();
    let exists = client.query_opt("select 1 from pg_database where datname = $1", &[&name]).await.unwrap().is_some();
    if !exists {
        let building = format!("{name}_build");
        client.batch_execute(&format!("drop database if exists {building}")).await.unwrap();
        client.batch_execute(&format!("create database {building}")).await.unwrap();
        {
            let db = Db::connect_url(&with_database(&server_url(), &building), &settings()).await.unwrap();
            let mut conn = db.admin().connection().await.unwrap();
            todo_db::schema::migrate(&mut conn).await.unwrap();
            drop(conn);
            db.close();
        }
        client.batch_execute(&format!("alter database {building} rename to {name}")).await.unwrap();
        client.batch_execute(&format!("alter database {name} is_template true")).await.unwrap();
        // Templates of earlier migration sets are left over from before a migration changed: drop
        // them (one still being copied by a test elsewhere stays, and goes next time).
        let stale = client
            .query(
                "select datname::text from pg_database where datname ~ '^todo_tmpl_[0-9a-f]{12}$' and datname <> $1",
                &[&name],
            )
            .await
            .unwrap();
        for row in stale {
            let old: String = row.get(0);
            // Two statements: DROP DATABASE cannot share an implicit transaction.
            if client.batch_execute(&format!("alter database {old} is_template false")).await.is_ok() {
                let _ = client.batch_execute(&format!("drop database {old}")).await;
            }
        }
    }
    client.execute("select pg_advisory_unlock(7402)", &[]).await.unwrap();
    name
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub db: Db,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        Self::with_settings(settings()).await
    }

    pub async fn with_settings(s: Settings) -> TestDb {
        Self::connect(s, true).await
    }

    /// A fresh database; with `app_login` false, its user scopes switch role on the admin login
    /// (no APP_DATABASE_URL) whatever the server.
    pub async fn connect(s: Settings, app_login: bool) -> TestDb {
        let client = maintenance().await;
        let template = ensure_template(&client).await;
        let name = format!("todo_test_{}", uuid::Uuid::now_v7().simple());
        // The same copy a local branch makes (`todo-db branch create`).
        todo_db_ops::branch::local::copy_database(&client, &template, &name).await.unwrap();
        let url = client_url(&with_database(&server_url(), &name));
        let mut s = s;
        if app_login && s.app_url.is_none() {
            s.app_url = app_url(&name).map(todo_db::config::Secret::new);
        }
        let db = Db::connect_url(&url, &s).await.unwrap();
        TestDb { db, name, url }
    }

    /// A brand-new, empty database (no schema yet), reached directly.
    pub async fn empty() -> TestDb {
        let name = format!("todo_test_{}", uuid::Uuid::now_v7().simple());
        maintenance().await.batch_execute(&format!("create database {name}")).await.unwrap();
        let url = with_database(&server_url(), &name);
        let db = Db::connect_url(&url, &settings()).await.unwrap();
        TestDb { db, name, url }
    }

    /// The first column of the first row of `sql`, as the admin login: a count, say.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db.admin().query(sql, &[]).await.unwrap()[0].get(0)
    }

    /// Ends the server sessions of this database running a COPY (a load or restore in flight),
    /// as a crash of their connection would; returns how many it ended.
    pub async fn terminate_copies(&self) -> i64 {
        self.count(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where datname = current_database() and query ilike 'copy %' and pid <> pg_backend_pid()",
        )
        .await
    }

    pub async fn user(&self, email: &str) -> UserId {
        self.db.admin().users().create(&NewUser::new(email, "Test User").unwrap()).await.unwrap().id
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.db.close();
        if std::thread::panicking() {
            eprintln!("test failed; its database {} is kept for inspection", self.name);
            return;
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let c = maintenance().await;
                let _ = c.batch_execute(&format!("drop database if exists {name} with (force)")).await;
            });
        })
        .join();
    }
}

/// A TCP proxy that counts client-to-server flights: a flight starts whenever the client sends
/// after the server has answered (or at the start). One flight per operation = one round trip.
pub struct FlightCounter {
    pub port: u16,
    flights: Arc<AtomicUsize>,
}

impl FlightCounter {
    pub async fn start(upstream: (String, u16)) -> FlightCounter {
        Self::start_on(0, upstream).await
    }

    /// As [`start`](Self::start), on a given local port (0: any free one).
    pub async fn start_on(port: u16, upstream: (String, u16)) -> FlightCounter {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let flights = Arc::new(AtomicUsize::new(0));
        let counter = flights.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // true while the last bytes seen went server -> client
                let answered = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let (a1, a2, c1) = (answered.clone(), answered, counter.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if a1.swap(false, Ordering::SeqCst) {
                            c1.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = sr.read(&mut buf).await {
                        a2.store(true, Ordering::SeqCst);
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FlightCounter { port, flights }
    }

    pub fn take(&self) -> usize {
        self.flights.swap(0, Ordering::SeqCst)
    }
}

/// What a [`FaultProxy`] does with the bytes it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    None = 0,
    /// Forward nothing either way, close nothing: a half-open connection.
    BlackHole = 1,
    /// Forward requests, drop every answer: the server acts, the client never hears.
    LoseAnswers = 2,
}

/// A TCP proxy whose behaviour a test switches at run time (see [`Fault`]); it can also delay
/// every chunk each way ([`FaultProxy::delay`]) and cut every open connection ([`FaultProxy::cut`]).
pub struct FaultProxy {
    pub port: u16,
    mode: Arc<std::sync::atomic::AtomicU8>,
    delay_us: Arc<std::sync::atomic::AtomicU64>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl FaultProxy {
    pub async fn start(upstream: (String, u16)) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(Fault::None as u8));
        let delay_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let (shared, delay) = (mode.clone(), delay_us.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                // Requests are dropped only when black-holed; answers whenever a fault is on.
                let requests = move |m: u8| m == Fault::BlackHole as u8;
                let answers = move |m: u8| m != Fault::None as u8;
                let (m1, m2, d1, d2) = (shared.clone(), shared.clone(), delay.clone(), delay.clone());
                tokio::spawn(forward(cr, sw, m1, requests, d1, cuts.clone()));
                tokio::spawn(forward(sr, cw, m2, answers, d2, cuts.clone()));
            }
        });
        FaultProxy { port, mode, delay_us, cut }
    }

    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }

    /// Delays every chunk, each way, by `by` (zero: none).
    pub fn delay(&self, by: Duration) {
        self.delay_us.store(by.as_micros() as u64, Ordering::SeqCst);
    }

    /// Closes every connection open now, both ways (new ones are forwarded).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// `direct` routed through this proxy, without TLS (the proxy sees the protocol).
    pub fn url(&self, direct: &str) -> String {
        crate::pooler::via_local_port(direct, self.port)
    }
}

/// Copies `from` to `to` until either closes or the proxy cuts, dropping chunks while
/// `drop(mode)` holds and delaying each by the proxy's delay.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<std::sync::atomic::AtomicU8>,
    drop: impl Fn(u8) -> bool,
    delay_us: Arc<std::sync::atomic::AtomicU64>,
    mut cuts: tokio::sync::watch::Receiver<u64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    cuts.mark_unchanged();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = cuts.changed() => break,
        };
        if drop(mode.load(Ordering::SeqCst)) {
            continue;
        }
        let us = delay_us.load(Ordering::SeqCst);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A private embedded cluster under `home`, for tests that stop, restart or kill their server
/// (never the shared one): started, with the `todo` database created and migrated. Returns the
/// cluster and that database's URL.
pub async fn private_cluster(home: &std::path::Path) -> (todo_db_ops::local::Cluster, String) {
    let cluster = todo_db_ops::local::Cluster::new(home);
    let running = cluster.ensure_running().await.unwrap();
    let maint = Db::connect_url(&running.url_for("postgres"), &settings()).await.unwrap();
    maint.admin().batch("create database todo").await.unwrap();
    maint.close();
    let db = Db::connect_url(&running.url(), &settings()).await.unwrap();
    todo_db::schema::migrate(&mut db.admin().connection().await.unwrap()).await.unwrap();
    db.close();
    (cluster, running.url())
}
