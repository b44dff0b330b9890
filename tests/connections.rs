//! Connections: one round trip per operation, cancellation safety, reconnects, TLS, secrets.

use todo_db_testkit::harness as common;

use std::time::Duration;

use common::{server_url, settings, with_database, FlightCounter, TestDb};
use todo_db::db::Target;
use todo_db::model::{NewTask, TaskFilter};
use todo_db::{Db, Error};

#[tokio::test]
async fn a_user_scoped_create_or_list_is_one_network_round_trip() {
    let t = TestDb::new().await;
    let u = t.user("rtt@example.com").await;
    let target = t.db.target().clone();
    let proxy = FlightCounter::start((target.host.clone(), target.port)).await;
    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let mut query: Vec<(String, String)> =
        url.query_pairs().into_owned().filter(|(k, _)| k != "sslmode" && k != "sslrootcert").collect();
    query.push(("sslmode".into(), "disable".into()));
    url.query_pairs_mut().clear().extend_pairs(query);
    let mut s = settings();
    s.pool.size = 1;
    let db = Db::connect_url(url.as_str(), &s).await.unwrap();
    let scope = db.user(u);
    // Warm up: the first use of each statement on a connection prepares it.
    scope.tasks().create(&NewTask::new("warm").unwrap()).await.unwrap();
    scope.tasks().list(&TaskFilter::default()).await.unwrap();
    proxy.take();

    scope.tasks().create(&NewTask::new("counted").unwrap()).await.unwrap();
    assert_eq!(proxy.take(), 1, "create: BEGIN, identity, INSERT, COMMIT in one flight");
    let page = scope.tasks().list(&TaskFilter::default()).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(proxy.take(), 1, "list: one flight");

    // The same four statements awaited one by one take four flights: the counter can tell.
    let conn = db.admin().connection().await.unwrap();
    proxy.take();
    for sql in ["begin", "select set_config('app.user_id', 'x', true)", "select 1", "commit"] {
        conn.simple_query(sql).await.unwrap();
    }
    assert_eq!(proxy.take(), 4);
}

#[tokio::test]
async fn a_cancelled_operation_never_leaves_its_connection_inside_a_transaction() {
    let mut s = settings();
    s.pool.size = 1;
    let t = TestDb::with_settings(s).await;
    let (a, b) = (t.user("ca@example.com").await, t.user("cb@example.com").await);
    t.db.user(a).tasks().create(&NewTask::new("a's").unwrap()).await.unwrap();
    t.db.user(b).tasks().create(&NewTask::new("b's").unwrap()).await.unwrap();
    let mut cancelled = 0;
    for i in 0..400u64 {
        let (me, other) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let scope = t.db.user(me);
        let deadline = Duration::from_micros((i * 37) % 3000);
        match tokio::time::timeout(deadline, scope.tasks().list(&TaskFilter::default())).await {
            Err(_) => cancelled += 1,
            Ok(r) => {
                let page = r.unwrap();
                assert_eq!(page.items.len(), 1);
                assert!(page.items.iter().all(|t| t.user_id == me && t.user_id != other), "never another user's rows");
            }
        }
        let state = t.db.admin().query("select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'", &[]).await;
        assert_eq!(state.unwrap()[0].get::<_, i64>(0), 0, "no connection left inside a transaction");
    }
    assert!(cancelled > 0, "some operations were cancelled mid-flight");
}

#[tokio::test]
async fn pooled_connections_killed_by_the_server_are_replaced() {
    let t = TestDb::new().await;
    let u = t.user("kill@example.com").await;
    let scope = t.db.user(u);
    scope.tasks().create(&NewTask::new("before").unwrap()).await.unwrap();
    let killer = Db::connect_url(&with_database(&server_url(), "postgres"), &settings()).await.unwrap();
    let killed = killer
        .admin()
        .query("select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()) k", &[&t.name])
        .await
        .unwrap();
    assert!(killed[0].get::<_, i64>(0) >= 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first use of a dead connection may fail as retryable; nothing else does.
    let mut ok = 0;
    for _ in 0..5 {
        match scope.tasks().list(&TaskFilter::default()).await {
            Ok(p) => {
                assert_eq!(p.items.len(), 1);
                ok += 1;
            }
            Err(e) => assert!(e.is_retryable(), "a broken connection is a retryable error: {e:?}"),
        }
    }
    assert!(ok >= 4, "the pool replaced the dead connections");
}

#[tokio::test]
async fn tls_require_encrypts_and_verify_full_with_the_wrong_root_fails_clearly() {
    let t = TestDb::new().await;
    let mut url = url::Url::parse(&t.url).unwrap();
    let keep: Vec<(String, String)> =
        url.query_pairs().into_owned().filter(|(k, _)| k != "sslmode" && k != "sslrootcert").collect();
    url.query_pairs_mut().clear().extend_pairs(keep.clone()).append_pair("sslmode", "require");
    let db = Db::connect_url(url.as_str(), &settings()).await.unwrap();
    let ssl = db.admin().query("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(ssl[0].get::<_, bool>(0), "sslmode=require is encrypted");

    // A CA that did not sign the server's certificate.
    let dir = std::env::temp_dir().join(format!("todo-db-wrong-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let wrong = dir.join("wrong-ca.crt");
    std::fs::write(&wrong, params.self_signed(&key).unwrap().pem()).unwrap();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(keep)
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", wrong.to_str().unwrap());
    let mut s = settings();
    s.pool.connect_retry = Duration::from_millis(200);
    let err = Db::connect_url(url.as_str(), &s).await.err().expect("verify-full with the wrong root must fail");
    let msg = err.to_string();
    assert!(msg.contains("TLS") && msg.contains("verify-full") && msg.contains("wrong-ca.crt"), "{msg}");
}

#[tokio::test]
async fn no_password_appears_in_connection_errors() {
    let password = "s3cr3t-P4ssw0rd-never-shown";
    let base = url::Url::parse(&server_url()).unwrap();
    let mut s = settings();
    s.pool.connect_retry = Duration::from_millis(100);
    s.pool.connect_timeout = Duration::from_secs(2);
    let mut urls = Vec::new();
    let mut wrong_pw = base.clone();
    wrong_pw.set_username("nobody_here").unwrap();
    wrong_pw.set_password(Some(password)).unwrap();
    urls.push(wrong_pw.to_string());
    let mut wrong_db = base.clone();
    wrong_db.set_password(Some(password)).unwrap();
    wrong_db.set_path("/no_such_database_here");
    urls.push(wrong_db.to_string());
    urls.push(format!("postgresql://user:{password}@127.0.0.1:1/db?sslmode=disable"));
    urls.push(format!("postgresql://user:{password}@db.example.com/db?sslmode=disable"));
    urls.push(format!("postgresql://user:{password}@127.0.0.1/db?sslmode=bogus"));
    for url in urls {
        let err = Db::connect_url(&url, &s).await.err().expect("must fail");
        let shown = format!(
            "{err} / {err:?} / {}",
            todo_db::db::Target::parse(&url, &s.pool, false).map(|t| format!("{t:?}")).unwrap_or_default()
        );
        assert!(!shown.contains(password), "password leaked: {shown}");
    }
}

#[tokio::test]
async fn sslmode_disable_to_a_remote_host_is_refused_unless_allowed() {
    let s = settings();
    let err = Target::parse("postgresql://u:p@db.example.com/x?sslmode=disable", &s.pool, false).unwrap_err();
    assert!(matches!(err, Error::Config(ref m) if m.contains("TODO_DB_ALLOW_INSECURE")));
    assert!(Target::parse("postgresql://u:p@db.example.com/x?sslmode=disable", &s.pool, true).is_ok());
    assert!(Target::parse("postgresql://u:p@127.0.0.1/x?sslmode=disable", &s.pool, false).is_ok());
}

#[tokio::test]
async fn an_exhausted_pool_answers_busy_after_the_acquire_timeout() {
    let mut s = settings();
    s.pool.size = 1;
    s.pool.acquire_timeout = Duration::from_millis(200);
    // One pool for admin work and user scopes (no app login), so holding one connection starves
    // the other.
    let t = TestDb::connect(s, false).await;
    let held = t.db.admin().connection().await.unwrap();
    let u = todo_db::model::UserId::new();
    let err = t.db.user(u).tasks().list(&TaskFilter::default()).await.unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err:?}");
    drop(held);
    assert!(t.db.user(u).tasks().list(&TaskFilter::default()).await.is_ok(), "recovers when the connection returns");
}

fn url_via_port(url: &str, port: u16) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_port(Some(port)).unwrap();
    let keep: Vec<(String, String)> =
        u.query_pairs().into_owned().filter(|(k, _)| k != "sslmode" && k != "sslrootcert").collect();
    u.query_pairs_mut().clear().extend_pairs(keep).append_pair("sslmode", "disable");
    u.to_string()
}

#[tokio::test]
async fn connecting_retries_with_backoff_until_the_server_appears() {
    let t = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = url_via_port(&t.url, port);
    let mut s = settings();
    s.pool.connect_retry = Duration::from_secs(10);
    s.pool.connect_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let connecting = tokio::spawn(async move { Db::connect_url(&url, &s).await });
    // Nothing listens for 700 ms: a suspended compute waking up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let target = t.db.target().clone();
    let _proxy = FlightCounter::start_on(port, (target.host.clone(), target.port)).await;
    let db = connecting.await.unwrap().expect("connects once the server is there");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(db.admin().query("select 1", &[]).await.is_ok());

    let mut quick = settings();
    quick.pool.connect_retry = Duration::from_millis(300);
    let dead = url_via_port(&t.url, std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let started = std::time::Instant::now();
    let err = Db::connect_url(&dead, &quick).await.err().expect("nobody listens");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "gives up at the retry deadline");
}

#[tokio::test]
async fn an_idle_connection_is_pinged_before_use_and_replaced_if_dead() {
    let mut s = settings();
    s.pool.size = 1;
    s.pool.idle_check_after = Duration::ZERO;
    let t = TestDb::with_settings(s).await;
    let u = t.user("ping@example.com").await;
    t.db.user(u).tasks().create(&NewTask::new("x").unwrap()).await.unwrap();
    let killer = Db::connect_url(&with_database(&server_url(), "postgres"), &settings()).await.unwrap();
    killer
        .admin()
        .query(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
            &[&t.name],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let page =
        t.db.user(u).tasks().list(&TaskFilter::default()).await.expect("the ping found the dead connection first");
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn overflow_connections_close_again_when_idle() {
    let mut s = settings();
    s.pool.size = 1;
    s.pool.overflow = 3;
    s.pool.overflow_idle = Duration::from_millis(500);
    let t = TestDb::connect(s, false).await;
    let u = t.user("burst@example.com").await;
    let scope = t.db.user(u);
    let slow = || scope.query("select pg_sleep(0.3)", &[]);
    let (a, b, c, d) = tokio::join!(slow(), slow(), slow(), slow());
    for r in [a, b, c, d] {
        r.unwrap();
    }
    assert_eq!(t.db.pool_status().open, 4, "a burst opens overflow connections");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(t.db.pool_status().open, 1, "only the steady connection stays");
}

#[tokio::test]
async fn sequential_work_reuses_the_most_recently_used_connection() {
    let mut s = settings();
    s.pool.size = 4;
    s.pool.overflow = 0;
    let t = TestDb::connect(s, false).await;
    // Open all four at once, then hand them back.
    let admin = t.db.admin();
    let conns = futures_util::future::join_all((0..4).map(|_| admin.connection())).await;
    let mut pids = std::collections::HashSet::new();
    for c in &conns {
        let pid: i32 = c.as_ref().unwrap().query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 4);
    drop(conns);
    // One operation at a time keeps landing on the same (hot) server process instead of
    // rotating through the idle ones.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let pid: i32 = t.db.admin().query("select pg_backend_pid()", &[]).await.unwrap()[0].get(0);
        seen.insert(pid);
    }
    assert_eq!(seen.len(), 1, "sequential operations used {} server processes", seen.len());
    assert_eq!(t.db.pool_status().open, 4, "the others stay open, idle, for a burst");
}

/// Neon hands out URLs ending in `?sslmode=require&channel_binding=require`. Over TLS they log in
/// with SCRAM-SHA-256-PLUS, the server's certificate bound into the exchange (the driver refuses
/// a login without the binding, so connecting proves it); without TLS, where nothing can be
/// bound, they are refused, saying why.
#[tokio::test]
async fn a_url_requiring_channel_binding_logs_in_over_tls_and_is_refused_clearly_without() {
    let home = std::env::temp_dir().join(format!("todo-db-binding-{}", std::process::id()));
    let (cluster, url) = common::private_cluster(&home).await;
    let with_query = |pairs: &[(&str, &str)]| {
        let mut u = url::Url::parse(&url).unwrap();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u.to_string()
    };
    let neon_style = with_query(&[("sslmode", "require"), ("channel_binding", "require")]);
    let db = Db::connect_url(&neon_style, &settings()).await.unwrap();
    let rows = db.admin().query("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(rows[0].get::<_, bool>(0), "the session is encrypted");
    db.close();

    let plain = with_query(&[("sslmode", "disable"), ("channel_binding", "require")]);
    let password = url::Url::parse(&url).unwrap().password().unwrap().to_string();
    match Db::connect_url(&plain, &settings()).await {
        Err(Error::Config(m)) => {
            assert!(m.contains("channel_binding=require") && m.contains("sslmode=disable"), "{m}");
            assert!(!m.contains(&password), "no password in the error");
        }
        other => panic!("channel_binding=require without TLS must be refused: {:?}", other.map(|_| ())),
    }
    // Where the server cannot bind, `prefer` logs in without the binding.
    let prefer = with_query(&[("sslmode", "disable"), ("channel_binding", "prefer")]);
    Db::connect_url(&prefer, &settings()).await.unwrap().close();
    cluster.stop().unwrap();
    let _ = std::fs::remove_dir_all(&home);
}

/// The server is the version the run asked for (`TODO_DB_TEST_PG_MAJOR`, set by scripts/test for
/// each version), and the embedded cluster's admin login is Neon's kind of owner: not a superuser,
/// with CREATEDB, CREATEROLE and BYPASSRLS, a member of `neon_superuser`.
#[tokio::test]
async fn the_server_is_the_version_asked_for_and_the_admin_login_is_not_a_superuser() {
    let t = TestDb::new().await;
    let major = common::server_major(&t.db).await;
    eprintln!("server: PostgreSQL {major}");
    if let Ok(want) = std::env::var("TODO_DB_TEST_PG_MAJOR") {
        assert_eq!(major.to_string(), want, "TODO_DB_TEST_PG_MAJOR={want}, but the server is PostgreSQL {major}");
    }
    assert!((15..=18).contains(&major), "todo-db supports PostgreSQL 15 to 18, not {major}");
    if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        return; // another server: its login is whatever DATABASE_URL names
    }
    let rows = t
        .db
        .admin()
        .query(
            "select rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, pg_has_role(current_user, 'neon_superuser', 'member') \
             from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    let flags: Vec<bool> = (0..5).map(|i| rows[0].get(i)).collect();
    assert_eq!(flags, [false, true, true, true, true], "superuser, createdb, createrole, bypassrls, in neon_superuser");
}

/// The library connects to what it is given: without DATABASE_URL, `Db::connect` fails naming it
/// and how to reach the embedded cluster, and starts nothing (no cluster appears in TODO_DB_HOME).
#[tokio::test]
async fn connect_without_a_database_url_says_so_and_starts_nothing() {
    let home = std::env::temp_dir().join(format!("todo-db-no-url-{}", std::process::id()));
    let mut s = settings();
    s.database_url = None;
    s.home = Some(home.clone());
    match Db::connect(&s).await {
        Err(Error::Config(m)) => assert!(m.contains("DATABASE_URL") && m.contains("todo-db local url"), "{m}"),
        other => panic!("Db::connect without DATABASE_URL must refuse: {:?}", other.map(|_| ())),
    }
    assert!(!home.exists(), "no embedded cluster was created");
}

#[tokio::test]
async fn a_lost_connection_under_schema_work_names_host_port_and_database() {
    let t = TestDb::new().await;
    let conn = t.db.admin().connection().await.unwrap();
    let pid: i32 = conn.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    t.db.admin().query("select pg_terminate_backend($1)", &[&pid]).await.unwrap();
    let err = todo_db::schema::status(&conn).await.unwrap_err();
    let expected = format!("/{}", t.name);
    match &err {
        Error::Unavailable { target, .. } | Error::Database { target, .. } => {
            assert!(target.ends_with(&expected) && target.contains(':'), "target {target:?}")
        }
        other => panic!("expected the server to be reported gone: {other}"),
    }
}
