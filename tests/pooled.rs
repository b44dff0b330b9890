//! Behind a transaction-mode pooler (what Neon's pooled endpoint is): a real PgBouncer started by
//! the harness, with unnamed statements and with prepared ones (which PgBouncer 1.21 and later
//! tracks across its server connections, as Neon's does), still one round trip per operation,
//! admin work refused, and many app instances sharing one pooler.

use todo_db_testkit::harness as common;

use common::{pgbouncer_url, settings, FlightCounter, TestDb};
use todo_db::config::StatementMode;
use todo_db::model::{NewTask, TagName, TaskFilter};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::Db;

fn unnamed() -> todo_db::Settings {
    with_statements(StatementMode::Unnamed)
}

fn with_statements(mode: StatementMode) -> todo_db::Settings {
    let mut s = settings();
    s.pool.size = 8;
    s.pool.statements = mode;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_operation_works_through_pgbouncer_with_clients_sharing_server_connections() {
    every_kind_of_operation(StatementMode::Unnamed).await;
}

/// Prepared statements through a pooler that tracks them: each client's statements are prepared
/// on whichever server connection serves it, transparently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_work_through_a_pgbouncer_that_tracks_them() {
    let pooler = common::pooler();
    assert!(
        pooler.tracks_prepared,
        "PgBouncer {} does not track prepared statements (1.21 and later do; scripts/install-servers builds 1.24)",
        pooler.version
    );
    every_kind_of_operation(StatementMode::Prepared).await;
}

async fn every_kind_of_operation(mode: StatementMode) {
    let t = TestDb::new().await;
    let db = Db::connect_url(&pgbouncer_url(&t.url), &with_statements(mode)).await.unwrap();
    let users: Vec<_> = futures_util::future::join_all((0..6).map(|i| {
        let db = db.clone();
        async move {
            db.admin()
                .users()
                .create(&todo_db::model::NewUser::new(&format!("pool{i}@example.com"), "P").unwrap())
                .await
                .unwrap()
                .id
        }
    }))
    .await;
    // Eight client connections, two server connections: statements of different clients
    // interleave on the same server sessions, which named prepared statements survive only when
    // the pooler tracks them.
    let work = users.iter().map(|&u| {
        let db = db.clone();
        async move {
            let me = db.user(u);
            for n in 0..10 {
                let task = me.tasks().create(&NewTask::new(&format!("task {n}")).unwrap()).await.unwrap();
                if n % 2 == 0 {
                    me.tasks().complete(task.id).await.unwrap();
                }
                me.tasks().tag(task.id, &[TagName::parse("pooled").unwrap()]).await.unwrap();
            }
            let open = me.tasks().list(&TaskFilter { completed: Some(false), ..Default::default() }).await.unwrap();
            assert_eq!(open.items.len(), 5);
            assert!(open.items.iter().all(|t| t.user_id == u && t.tags == ["pooled"]));
            let summary = views::read::<TaskSummary>(&me, &ReportOptions::default()).await.unwrap();
            assert_eq!((summary[0].total_tasks, summary[0].completed_tasks), (10, 5));
        }
    });
    futures_util::future::join_all(work).await;
    let n: i64 = db.admin().query("select count(*) from tasks", &[]).await.unwrap()[0].get(0);
    assert_eq!(n, 60);
    db.close();
}

#[tokio::test]
async fn unnamed_statements_still_take_one_round_trip() {
    let t = TestDb::new().await;
    let u = t.user("flight@example.com").await;
    let target = t.db.target().clone();
    let proxy = FlightCounter::start((target.host.clone(), target.port)).await;
    let mut s = unnamed();
    s.pool.size = 1;
    let db = Db::connect_url(&todo_db_testkit::pooler::via_local_port(&t.url, proxy.port), &s).await.unwrap();
    let scope = db.user(u);
    scope.tasks().create(&NewTask::new("warm").unwrap()).await.unwrap();
    proxy.take();
    scope.tasks().create(&NewTask::new("counted").unwrap()).await.unwrap();
    assert_eq!(proxy.take(), 1, "create: one flight without prepared statements too");
    scope.tasks().list(&TaskFilter::default()).await.unwrap();
    assert_eq!(proxy.take(), 1, "list: one flight");
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_work_through_the_pooled_url_is_refused_naming_the_direct_url() {
    let t = TestDb::new().await;
    let pooled = pgbouncer_url(&t.url);
    let run = |direct: Option<&str>| {
        let mut c = assert_cmd::Command::cargo_bin("todo-db").unwrap();
        c.env("DATABASE_URL", &pooled).env("TODO_DB_STATEMENTS", "unnamed").args(["migrate", "--apply"]);
        match direct {
            Some(d) => c.env("DATABASE_DIRECT_URL", d),
            None => c.env_remove("DATABASE_DIRECT_URL"),
        };
        c.output().unwrap()
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_DIRECT_URL") && err.contains("pooled endpoint"), "{err}");
    let out = run(Some(&t.url));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Everyday reads through the pooled URL are fine.
    let out = assert_cmd::Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", &pooled)
        .env("TODO_DB_STATEMENTS", "unnamed")
        .env_remove("DATABASE_DIRECT_URL")
        .args(["views", "show", "user_task_summary", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Neon's serverless pattern: many small app instances, each with its own pool, all through one
/// pooler onto a few server connections. Twenty pools of twenty connections (400 clients) share
/// one PgBouncer with twenty server connections and run a mix of writes and reads for a bounded
/// time: no operation fails, and every acknowledged write is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_app_instances_share_one_pooler_without_errors_or_lost_writes() {
    const INSTANCES: usize = 20;
    const CONNECTIONS: usize = 20;
    let t = TestDb::new().await;
    let pooler = todo_db_testkit::pooler::LocalPooler::start(&t.url, 20).unwrap();
    let mode = if pooler.tracks_prepared { StatementMode::Prepared } else { StatementMode::Unnamed };
    let mut users = Vec::new();
    for i in 0..INSTANCES * CONNECTIONS {
        users.push(t.user(&format!("instance{i}@example.com")).await);
    }
    let mut s = settings();
    s.pool.size = CONNECTIONS;
    s.pool.statements = mode;
    s.pool.acquire_timeout = std::time::Duration::from_secs(30);
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(Db::connect_url(&pooler.url(&t.url), &s).await.unwrap());
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let workers = users.iter().enumerate().map(|(i, &u)| {
        let db = instances[i % INSTANCES].clone();
        tokio::spawn(async move {
            let me = db.user(u);
            let (mut created, mut done, mut ops) = (Vec::new(), 0usize, 0usize);
            while std::time::Instant::now() < until {
                let task = me.tasks().create(&NewTask::new(&format!("task {ops}")).unwrap()).await.unwrap();
                created.push(task.id);
                if ops % 3 == 0 {
                    me.tasks().complete(task.id).await.unwrap();
                    done += 1;
                }
                if ops % 4 == 0 {
                    me.tasks().tag(task.id, &[TagName::parse("shared").unwrap()]).await.unwrap();
                }
                let page = me.tasks().list(&TaskFilter { limit: Some(5), ..Default::default() }).await.unwrap();
                assert!(page.items.iter().all(|t| t.user_id == u), "never another user's rows");
                ops += 4;
            }
            (u, created, done, ops)
        })
    });
    let results: Vec<_> = futures_util::future::join_all(workers).await.into_iter().map(|r| r.unwrap()).collect();
    let ops: usize = results.iter().map(|r| r.3).sum();
    for db in &instances {
        db.close();
    }
    for (u, created, done, _) in &results {
        let rows =
            t.db.admin()
                .query(
                    "select count(*), count(*) filter (where completed) from tasks where user_id = $1 and id = any($2)",
                    &[&u.0, &created.iter().map(|id| id.0).collect::<Vec<_>>()],
                )
                .await
                .unwrap();
        let (present, completed): (i64, i64) = (rows[0].get(0), rows[0].get(1));
        assert_eq!(present as usize, created.len(), "every acknowledged create is there");
        assert_eq!(completed as usize, *done, "every acknowledged complete is there");
    }
    eprintln!(
        "{INSTANCES} instances x {CONNECTIONS} connections through PgBouncer {} ({mode:?}): {ops} operations, \
         0 errors, every acknowledged write present",
        pooler.version
    );
}

/// Through a transaction-mode pooler that does not track prepared statements (PgBouncer before
/// 1.21, or `max_prepared_statements = 0`), a statement prepared in one transaction may reach
/// another server session in the next: the operation fails, naming TODO_DB_STATEMENTS=unnamed,
/// and never runs another client's statement (names carry a tag of the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_through_a_pooler_that_does_not_track_them_fail_naming_the_fix() {
    let t = TestDb::new().await;
    let pooler = todo_db_testkit::pooler::LocalPooler::start_with(&t.url, 2, &[], false).unwrap();
    assert!(!pooler.tracks_prepared);
    let users = [t.user("untracked1@example.com").await, t.user("untracked2@example.com").await];
    let mut s = settings();
    s.pool.size = 4;
    s.pool.statements = StatementMode::Prepared;
    let db = Db::connect_url(&pooler.url(&t.url), &s).await.unwrap();
    let work = (0..4).map(|w| {
        let db = db.clone();
        let u = users[w % 2];
        async move {
            let mut errors = Vec::new();
            for n in 0..25 {
                match db.user(u).tasks().create(&NewTask::new(&format!("t{n}")).unwrap()).await {
                    Ok(task) => assert_eq!(task.user_id, u),
                    Err(e) => errors.push(e),
                }
            }
            errors
        }
    });
    let errors: Vec<todo_db::Error> = futures_util::future::join_all(work).await.into_iter().flatten().collect();
    assert!(!errors.is_empty(), "statements prepared on one server session were missing on another");
    for e in &errors {
        let text = e.to_string();
        assert!(matches!(e, todo_db::Error::Config(_)) && text.contains("TODO_DB_STATEMENTS=unnamed"), "{text}");
    }
    db.close();
}
