//! Health checks flip when their condition is created for real; the service answers /livez,
//! /readyz, /health and /metrics, and follows the database down and back up.

use todo_db_testkit::harness as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::TestDb;
use todo_db_ops::health::{self, Limit, Status, Thresholds};

fn tight() -> Thresholds {
    Thresholds {
        long_queries: Limit { warning: 1.0, critical: 600.0 },
        idle_in_transaction: Limit { warning: 1.0, critical: 600.0 },
        blocked: Limit { warning: 1.0, critical: 50.0 },
        ..Thresholds::default()
    }
}

async fn status_of(t: &TestDb, check: &str, th: &Thresholds) -> (Status, String) {
    let r = health::run(&t.db, None, th, &[check.to_string()]).await.unwrap();
    assert_eq!(r.checks.len(), 1);
    (r.checks[0].status, r.checks[0].message.clone())
}

#[tokio::test]
async fn a_fresh_database_is_healthy_and_a_slow_check_is_unknown_not_a_hang() {
    let t = TestDb::new().await;
    let r = health::run(&t.db, None, &Thresholds::default(), &[]).await.unwrap();
    assert_eq!(r.checks.len(), health::CHECKS.len());
    for c in &r.checks {
        assert_eq!(c.status, Status::Ok, "{}: {}", c.name, c.message);
    }
    let hurried = Thresholds { check_timeout: Duration::from_micros(1), ..Thresholds::default() };
    let started = Instant::now();
    let r = health::run(&t.db, None, &hurried, &["rls_posture".into()]).await.unwrap();
    assert_eq!(r.status, Status::Unknown);
    assert!(r.checks[0].message.contains("no answer within"), "{}", r.checks[0].message);
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = health::run(&t.db, None, &hurried, &["nope".into()]).await.unwrap_err();
    assert!(err.to_string().contains("invalid check"), "{err}");
}

#[tokio::test]
async fn concurrent_callers_share_one_run_and_a_report_is_reused_for_its_max_age() {
    let t = TestDb::new().await;
    // Max age zero: 20 callers at once are answered by at most two runs (the one in progress
    // when a caller asks cannot answer it; the next one answers everyone who waited).
    let shared = std::sync::Arc::new(health::Shared::new(t.db.clone(), Thresholds::default(), Duration::ZERO));
    let callers = (0..20).map(|_| {
        let shared = shared.clone();
        tokio::spawn(async move { shared.report().await.map(|(r, _)| r.checks.len()) })
    });
    for n in futures_util::future::join_all(callers).await {
        assert_eq!(n.unwrap().unwrap(), health::CHECKS.len());
    }
    assert!((1..=2).contains(&shared.runs()), "{} runs for 20 concurrent callers", shared.runs());
    // A caller after the runs gets a new one: a zero max age reuses nothing finished.
    let before = shared.runs();
    shared.report().await.unwrap();
    assert_eq!(shared.runs(), before + 1);

    // Max age one minute: later callers reuse the report and say how old it is.
    let cached = health::Shared::new(t.db.clone(), Thresholds::default(), Duration::from_secs(60));
    let (_, age) = cached.report().await.unwrap();
    assert_eq!(age, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        let (_, age) = cached.report().await.unwrap();
        assert!(age >= Duration::from_millis(20), "{age:?}");
    }
    assert_eq!(cached.runs(), 1);
}

#[tokio::test]
async fn session_checks_flip_on_idle_transactions_locks_and_long_statements() {
    let t = TestDb::new().await;
    let th = tight();
    // Idle in transaction.
    let idle = t.db.admin().connection().await.unwrap();
    idle.batch_execute("begin; select 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (s, msg) = status_of(&t, "idle_in_transaction", &th).await;
    assert_eq!(s, Status::Warning, "{msg}");
    assert!(msg.contains("pg_terminate_backend"), "{msg}");
    // A lock held by that transaction blocks another session.
    idle.batch_execute("lock table tags in access exclusive mode").await.unwrap();
    let blocked = tokio::spawn({
        let db = t.db.clone();
        async move { db.admin().query("select count(*) from tags", &[]).await.map(|_| ()) }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut s, mut msg) = (Status::Ok, String::new());
    while Instant::now() < deadline && s == Status::Ok {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (s, msg) = status_of(&t, "blocked", &th).await;
    }
    assert_eq!(s, Status::Warning, "{msg}");
    assert!(msg.contains("waits") && msg.contains("pid"), "{msg}");
    idle.batch_execute("rollback").await.unwrap();
    blocked.await.unwrap().unwrap();
    assert_eq!(status_of(&t, "blocked", &th).await.0, Status::Ok);
    assert_eq!(status_of(&t, "idle_in_transaction", &th).await.0, Status::Ok);
    // A long statement.
    let sleeper = tokio::spawn({
        let db = t.db.clone();
        async move { db.admin().query("select pg_sleep(2.5)", &[]).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (s, msg) = status_of(&t, "long_queries", &th).await;
    assert_eq!(s, Status::Warning, "{msg}");
    assert!(msg.contains("pg_cancel_backend"), "{msg}");
    sleeper.await.unwrap().unwrap();
    assert_eq!(status_of(&t, "long_queries", &th).await.0, Status::Ok);
}

#[tokio::test]
async fn schema_checks_flip_on_a_dropped_audit_trigger_disabled_rls_and_a_pending_migration() {
    let t = TestDb::new().await;
    let th = Thresholds::default();
    t.db.admin().batch("drop trigger tasks_audit on tasks").await.unwrap();
    let (s, msg) = status_of(&t, "audit_triggers", &th).await;
    assert_eq!(s, Status::Critical, "{msg}");
    assert!(msg.contains("tasks"), "{msg}");
    t.db.admin().batch("alter table tags disable row level security").await.unwrap();
    let (s, msg) = status_of(&t, "rls_posture", &th).await;
    assert_eq!(s, Status::Critical, "{msg}");
    assert!(msg.contains("tags"), "{msg}");
    t.db.admin()
        .batch("delete from todo_db_migrations where version = (select max(version) from todo_db_migrations)")
        .await
        .unwrap();
    let (s, msg) = status_of(&t, "migrations", &th).await;
    assert_eq!(s, Status::Warning, "{msg}");
    assert!(msg.contains("migrate --apply"), "{msg}");
}

#[tokio::test]
async fn cli_exit_codes_follow_the_worst_status() {
    let t = TestDb::new().await;
    let run = || {
        let mut cmd = std::process::Command::cargo_bin("todo-db").unwrap();
        cmd.env("DATABASE_URL", &t.url).env_remove("DATABASE_DIRECT_URL").env_remove("DATABASE_READ_URL");
        cmd
    };
    let out = run().args(["health", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    // A pending migration: warning, exit 1.
    t.db.admin()
        .batch("delete from todo_db_migrations where version = (select max(version) from todo_db_migrations)")
        .await
        .unwrap();
    assert_eq!(run().args(["health", "--check", "migrations"]).output().unwrap().status.code(), Some(1));
    // A dropped audit trigger: critical, exit 2 (the worst wins over the warning).
    t.db.admin().batch("drop trigger tags_audit on tags").await.unwrap();
    assert_eq!(run().arg("health").output().unwrap().status.code(), Some(2));
    // A check that cannot finish in time: unknown, exit 3.
    let out =
        run().env("TODO_DB_HEALTH_CHECK_TIMEOUT", "1ms").args(["health", "--check", "rls_posture"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    // Unreachable: critical.
    let out = std::process::Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?sslmode=disable")
        .env("TODO_DB_CONNECT_RETRY", "0s")
        .arg("health")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CRITICAL connection"));
}

/// GET `path` from `addr`: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// `todo-db serve` on a free port, against the embedded cluster in `home`; returns the process
/// and the address it printed.
fn serve(home: &std::path::Path) -> (std::process::Child, String) {
    let mut child = std::process::Command::cargo_bin("todo-db")
        .unwrap()
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_DIRECT_URL")
        .env_remove("DATABASE_READ_URL")
        .env("TODO_DB_HOME", home)
        .env("TODO_DB_CONNECT_RETRY", "1s")
        .env("TODO_DB_CONNECT_TIMEOUT", "1s")
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-deadline", "1s", "--report-max-age", "10m"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    (child, addr)
}

#[test]
fn the_service_follows_the_database_down_and_up_and_its_metrics_parse() {
    let home = std::env::temp_dir().join(format!("todo-db-serve-{}", std::process::id()));
    let local = |args: &[&str]| {
        let out = std::process::Command::cargo_bin("todo-db")
            .unwrap()
            .env_remove("DATABASE_URL")
            .env("TODO_DB_HOME", &home)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    local(&["init"]);
    let (mut child, addr) = serve(&home);
    assert_eq!(get(&addr, "/livez").0, 200);
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&addr, "/health");
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(report["checks"].as_array().unwrap().len() >= 10);

    // Metrics: valid exposition format (parsed), with check, pool and request series.
    let (code, text) = get(&addr, "/metrics");
    assert_eq!(code, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    let has = |name: &str, label: (&str, &str)| {
        scrape.samples.iter().any(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
    };
    assert!(has("todo_db_check_status", ("check", "migrations")));
    assert!(has("todo_db_pool_connections", ("state", "open")));
    assert!(has("todo_db_http_requests_total", ("route", "/readyz")));
    // /health and /metrics were answered by one run of the checks, within its max age.
    let value = |name: &str| match scrape.samples.iter().find(|s| s.metric == name).map(|s| &s.value) {
        Some(
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v),
        ) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(value("todo_db_health_runs_total"), 1.0);
    assert!(value("todo_db_health_report_age_seconds") > 0.0);
    assert!(scrape.samples.iter().any(|s| s.metric == "todo_db_http_request_duration_seconds_bucket"
        || s.metric == "todo_db_http_request_duration_seconds"));

    // Hostile requests (the `http_request` corpus, then random bytes) get an answer or a closed
    // connection; the service stays up, and its request metrics keep a bounded set of routes.
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/http_request");
    let mut blobs: Vec<Vec<u8>> =
        std::fs::read_dir(&corpus).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(blobs.len() >= 10, "the http_request corpus is missing");
    let mut rng = rand::thread_rng();
    for _ in 0..100 {
        let n = rand::Rng::gen_range(&mut rng, 0..2048);
        blobs.push((0..n).map(|_| rand::Rng::gen::<u8>(&mut rng)).collect());
    }
    for blob in &blobs {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(blob);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert_eq!(get(&addr, "/livez").0, 200, "after {:?}", String::from_utf8_lossy(&blob[..blob.len().min(80)]));
    }
    let (_, text) = get(&addr, "/metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    for s in scrape.samples.iter().filter(|s| s.metric == "todo_db_http_requests_total") {
        let route = s.labels.get("route").unwrap();
        assert!(["/livez", "/readyz", "/health", "/metrics", "other"].contains(&route), "route label {route}");
    }

    // The database goes away: /readyz answers 503 within its deadline, /livez stays 200.
    local(&["local", "stop"]);
    let started = Instant::now();
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered in {:?}", started.elapsed());
    assert!(body.contains("\"ready\":false"), "{body}");
    assert_eq!(get(&addr, "/livez").0, 200);
    // And comes back: ready again without restarting the service.
    local(&["local", "start"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = get(&addr, "/readyz");
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(get(&addr, "/livez").0, 200);

    // SIGTERM: a graceful exit.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    local(&["local", "stop"]);
    std::fs::remove_dir_all(&home).ok();
}
