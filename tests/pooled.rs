//! Behind a transaction-mode pooler (what Neon's pooled endpoint is): a real PgBouncer started by
//! the harness, unnamed statements, still one round trip per operation, admin work refused.

mod common;

use common::{pgbouncer_url, settings, FlightCounter, TestDb};
use todo_db::config::StatementMode;
use todo_db::model::{NewTask, TagName, TaskFilter};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::Db;

fn unnamed() -> todo_db::Settings {
    let mut s = settings();
    s.pool.size = 8;
    s.pool.statements = StatementMode::Unnamed;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_operation_works_through_pgbouncer_with_clients_sharing_server_connections() {
    let t = TestDb::new().await;
    let db = Db::connect_url(&pgbouncer_url(&t.url), &unnamed()).await.unwrap();
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
    // interleave on the same server sessions, which named prepared statements would not survive.
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
            assert_eq!((summary[0].total, summary[0].completed), (10, 5));
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
    let db = Db::connect_url(&todo_db::local::via_local_port(&t.url, proxy.port), &s).await.unwrap();
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
