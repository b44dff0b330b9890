//! Faults injected for real: a proxy that black-holes or loses answers, and a server crash
//! (`pg_ctl stop -m immediate`) on a private cluster. No acknowledged write is lost, no write runs
//! twice, no operation hangs.

use todo_db_testkit::harness as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{settings, Fault, FaultProxy, TestDb};
use todo_db::model::{NewTask, TaskFilter};
use todo_db::{Db, Error};

async fn through_proxy(t: &TestDb) -> (FaultProxy, Db) {
    let target = t.db.target().clone();
    let proxy = FaultProxy::start((target.host.clone(), target.port)).await;
    let mut s = settings();
    s.pool.size = 1;
    s.pool.statement_timeout = Duration::from_secs(1);
    s.pool.connect_retry = Duration::from_secs(1);
    let db = Db::connect_url(&proxy.url(&t.url), &s).await.unwrap();
    (proxy, db)
}

#[tokio::test]
async fn a_half_open_connection_fails_within_the_deadline_and_the_pool_heals() {
    let t = TestDb::new().await;
    let u = t.user("halfopen@example.com").await;
    let (proxy, db) = through_proxy(&t).await;
    db.user(u).tasks().list(&TaskFilter::default()).await.unwrap();
    proxy.set(Fault::BlackHole);
    let started = Instant::now();
    let err = db.user(u).tasks().list(&TaskFilter::default()).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Unavailable { .. }) && err.is_retryable(), "{err}");
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
    assert!(took < Duration::from_secs(5), "failed after {took:?}, not minutes");
    // Traffic flows again: the dead connection was discarded, a new one serves.
    proxy.set(Fault::None);
    let page = db.user(u).tasks().list(&TaskFilter::default()).await.unwrap();
    assert!(page.items.is_empty());
    db.close();
}

#[tokio::test]
async fn a_lost_commit_answer_is_reported_unknown_and_retrying_the_same_create_makes_one_task() {
    let t = TestDb::new().await;
    let u = t.user("lost@example.com").await;
    let (proxy, db) = through_proxy(&t).await;
    db.user(u).tasks().list(&TaskFilter::default()).await.unwrap();
    let task = NewTask::new("sent once, answered never").unwrap();
    proxy.set(Fault::LoseAnswers);
    let err = db.user(u).tasks().create(&task).await.unwrap_err();
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
    proxy.set(Fault::None);
    // The server did commit it. The caller retries with the same client-generated id.
    let retried = db.user(u).tasks().create(&task).await;
    assert!(retried.is_ok() || matches!(retried, Err(Error::Conflict { .. })), "{retried:?}");
    let n: i64 = t.db.admin().query("select count(*) from tasks where id = $1", &[&task.id.0]).await.unwrap()[0].get(0);
    assert_eq!(n, 1, "exactly one task");
    let audited: i64 =
        t.db.admin()
            .query("select count(*) from audit.log where record_id = $1 and op = 'INSERT'", &[&task.id.0])
            .await
            .unwrap()[0]
            .get(0);
    assert_eq!(audited, 1, "and exactly one audit entry");
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_acknowledged_write() {
    // A private cluster: this test kills its server.
    let home = std::env::temp_dir().join(format!("todo-db-crash-{}", std::process::id()));
    let (cluster, url) = common::private_cluster(&home).await;
    let mut s = settings();
    s.pool.size = 4;
    s.pool.connect_retry = Duration::from_secs(1);
    let db = Db::connect_url(&url, &s).await.unwrap();
    let user =
        db.admin().users().create(&todo_db::model::NewUser::new("crash@example.com", "C").unwrap()).await.unwrap().id;

    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (db, acknowledged) = (db.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let task = NewTask::new(&format!("writer {w} task {n}")).unwrap();
                    match db.user(user).tasks().create(&task).await {
                        Ok(t) => acknowledged.lock().unwrap().push(t.id.0),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopper = cluster.clone();
    tokio::task::spawn_blocking(move || stopper.stop_with("immediate").unwrap()).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    db.close();
    let ids = acknowledged.lock().unwrap().clone();
    assert!(ids.len() > 20, "the workload ran ({} acknowledged)", ids.len());

    // Restart (crash recovery) and count.
    let url = cluster.ensure_running().await.unwrap().url();
    let db = Db::connect_url(&url, &s).await.unwrap();
    let found: i64 =
        db.admin().query("select count(*) from tasks where id = any($1)", &[&ids]).await.unwrap()[0].get(0);
    assert_eq!(found as usize, ids.len(), "every acknowledged task survived the crash");
    let audited: i64 = db
        .admin()
        .query("select count(distinct record_id) from audit.log where op = 'INSERT' and record_id = any($1)", &[&ids])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(audited as usize, ids.len(), "each with its audit entry");
    db.close();
    cluster.stop().unwrap();
    std::fs::remove_dir_all(&home).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_transaction_is_retryable_and_writes_nothing() {
    let t = TestDb::new().await;
    let u = t.user("killed@example.com").await;
    let id = uuid::Uuid::now_v7();
    let op = tokio::spawn({
        let db = t.db.clone();
        async move {
            let title = "half-written";
            db.user(u)
                .pipeline(&[
                    todo_db::db::Stmt::new(
                        "insert into tasks (id, user_id, title) values ($1, $2, $3)",
                        &[&id, &u.0, &title],
                    ),
                    todo_db::db::Stmt::new("select pg_sleep(5)", &[]),
                ])
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let killed: i64 =
            t.db.admin()
                .query(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity \
                 where datname = current_database() and query like 'select pg_sleep(5)%' and pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()[0]
                .get(0);
        if killed == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the operation never reached its sleep");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = op.await.unwrap().unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let count = |sql: &'static str| {
        let db = t.db.clone();
        async move { db.admin().query(sql, &[&id]).await.unwrap()[0].get::<_, i64>(0) }
    };
    assert_eq!(count("select count(*) from tasks where id = $1").await, 0, "no partial task");
    assert_eq!(count("select count(*) from audit.log where record_id = $1").await, 0, "no audit entry");
    // The pool goes on.
    t.db.user(u).tasks().create(&NewTask::new("after the kill").unwrap()).await.unwrap();
}

#[tokio::test]
async fn a_statement_timeout_is_a_typed_error_and_the_connection_comes_back_clean() {
    let t = TestDb::new().await;
    let u = t.user("timeout@example.com").await;
    let mut s = settings();
    s.pool.size = 1;
    s.pool.statement_timeout = Duration::from_millis(300);
    let db = Db::connect_url(&t.url, &s).await.unwrap();
    let err = db.user(u).query("select pg_sleep(2)", &[]).await.unwrap_err();
    match &err {
        Error::Database { code, .. } => assert_eq!(code, "57014", "{err}"),
        other => panic!("expected a statement timeout, got {other:?}"),
    }
    // The same (only) connection serves the next operation, outside any transaction.
    db.user(u).tasks().create(&NewTask::new("next").unwrap()).await.unwrap();
    let in_tx: i64 = db
        .admin()
        .query(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and state like 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(in_tx, 0);
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_costs_only_in_flight_operations_and_service_returns_within_seconds() {
    let home = std::env::temp_dir().join(format!("todo-db-restart-{}", std::process::id()));
    let (cluster, url) = common::private_cluster(&home).await;
    let mut s = settings();
    s.pool.size = 4;
    s.pool.connect_retry = Duration::from_millis(500);
    s.pool.connect_timeout = Duration::from_secs(2);
    let db = Db::connect_url(&url, &s).await.unwrap();
    let user =
        db.admin().users().create(&todo_db::model::NewUser::new("restart@example.com", "R").unwrap()).await.unwrap().id;

    let started = Instant::now();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (db, log) = (db.clone(), log.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(9) {
                    let at = started.elapsed();
                    let ok = db.user(user).tasks().create(&NewTask::new(&format!("w{w} {n}")).unwrap()).await.is_ok();
                    log.lock().unwrap().push((at, ok));
                    n += 1;
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_with("fast").unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.ensure_running().await.unwrap();
    let back = started.elapsed();
    for w in workers {
        w.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let failed = log.iter().filter(|(_, ok)| !ok).count();
    assert!(failed > 0, "the restart was felt");
    assert!(log.iter().filter(|(at, _)| *at < Duration::from_millis(1900)).all(|(_, ok)| *ok), "no errors before it");
    let after: Vec<_> = log.iter().filter(|(at, _)| *at > back + Duration::from_secs(3)).collect();
    assert!(after.len() > 20, "the workload ran after the restart ({} ops)", after.len());
    assert!(after.iter().all(|(_, ok)| *ok), "full service within 3 s of the server being back");
    db.close();
    cluster.stop().unwrap();
    std::fs::remove_dir_all(&home).ok();
}

#[tokio::test]
async fn deadlocks_and_serialization_failures_are_retried_within_a_bound() {
    let t = TestDb::new().await;
    let u = t.user("conflict@example.com").await;
    // A trigger that fails the first attempt of every insert as a deadlock would, then lets the
    // retry through (nextval is not rolled back, so it counts attempts).
    t.db.admin()
        .batch(
            "create sequence attempts; grant usage on sequence attempts to todo_app; \
             create function flaky() returns trigger language plpgsql as $$ begin \
               if nextval('attempts') % 2 = 1 then raise exception 'simulated deadlock' using errcode = '40P01'; end if; \
               return new; end $$; \
             create trigger flaky before insert on tasks for each row execute function flaky()",
        )
        .await
        .unwrap();
    let task = t.db.user(u).tasks().create(&NewTask::new("second time lucky").unwrap()).await.unwrap();
    let n: i64 = t.db.admin().query("select count(*) from tasks where id = $1", &[&task.id.0]).await.unwrap()[0].get(0);
    assert_eq!(n, 1);
    let attempts: i64 = t.db.admin().query("select last_value from attempts", &[]).await.unwrap()[0].get(0);
    assert_eq!(attempts, 2, "failed once, retried once");
    // Always failing: given up after the bound, with the typed, retryable error.
    t.db.admin()
        .batch(
            "create or replace function flaky() returns trigger language plpgsql as $$ begin \
               perform nextval('attempts'); raise exception 'always' using errcode = '40001'; end $$; \
             select setval('attempts', 1, false)",
        )
        .await
        .unwrap();
    let err = t.db.user(u).tasks().create(&NewTask::new("never").unwrap()).await.unwrap_err();
    assert!(err.is_retryable() && matches!(&err, Error::Database { code, .. } if code == "40001"), "{err:?}");
    let attempts: i64 = t.db.admin().query("select last_value from attempts", &[]).await.unwrap()[0].get(0);
    assert_eq!(attempts as u32, todo_db::db::CONFLICT_ATTEMPTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_end_in_a_serial_order_state() {
    let t = TestDb::new().await;
    let u = t.user("race@example.com").await;
    let me = t.db.user(u);
    // Complete vs delete of one task, many times over.
    for _ in 0..20 {
        let task = me.tasks().create(&NewTask::new("contested").unwrap()).await.unwrap();
        let (tasks_a, tasks_b) = (me.tasks(), me.tasks());
        let (a, b) = tokio::join!(tasks_a.complete(task.id), tasks_b.delete(task.id));
        assert!(a.is_ok() || matches!(a, Err(Error::NotFound { .. })), "{a:?}");
        b.unwrap();
        assert!(matches!(me.tasks().get(task.id).await, Err(Error::NotFound { .. })), "delete wins in the end");
    }
    // Two renames of one tag: both succeed, the last one stands, the audit log has both.
    let tag = me.tags().create(&todo_db::model::TagName::parse("start").unwrap(), None).await.unwrap();
    let (tags_x, tags_y) = (me.tags(), me.tags());
    let (left, right) =
        (todo_db::model::TagName::parse("left").unwrap(), todo_db::model::TagName::parse("right").unwrap());
    let (x, y) = tokio::join!(tags_x.rename(tag.id, &left), tags_y.rename(tag.id, &right));
    x.unwrap();
    y.unwrap();
    let name = me.tags().list().await.unwrap().into_iter().find(|g| g.id == tag.id).unwrap().name;
    assert!(name == "left" || name == "right", "{name}");
    let updates: i64 =
        t.db.admin()
            .query("select count(*) from audit.log where record_id = $1 and op = 'UPDATE'", &[&tag.id.0])
            .await
            .unwrap()[0]
            .get(0);
    assert_eq!(updates, 2, "both renames happened, one after the other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_past_the_lock_timeout_is_a_typed_error_and_changes_nothing() {
    let t = TestDb::new().await;
    let u = t.user("locked@example.com").await;
    let task = t.db.user(u).tasks().create(&NewTask::new("held").unwrap()).await.unwrap();
    let mut s = settings();
    s.pool.lock_timeout = Duration::from_millis(300);
    let db = Db::connect_url(&t.url, &s).await.unwrap();
    let holder = t.db.admin().connection().await.unwrap();
    holder.batch_execute(&format!("begin; select 1 from tasks where id = '{}' for update", task.id.0)).await.unwrap();
    let started = Instant::now();
    let err = db.user(u).tasks().complete(task.id).await.unwrap_err();
    assert!(matches!(&err, Error::Database { code, .. } if code == "55P03"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "waited {:?}", started.elapsed());
    holder.batch_execute("rollback").await.unwrap();
    assert!(!db.user(u).tasks().get(task.id).await.unwrap().completed, "nothing changed");
    // The lock gone, the same operation goes through on the same pool.
    assert!(db.user(u).tasks().complete(task.id).await.unwrap().completed);
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_idle_in_transaction_timeout_is_replaced_not_reused() {
    let t = TestDb::new().await;
    let u = t.user("idle@example.com").await;
    let mut s = settings();
    s.pool.size = 1;
    let db = Db::connect_url(&t.url, &s).await.unwrap();
    {
        let conn = db.admin().connection().await.unwrap();
        conn.batch_execute("set idle_in_transaction_session_timeout = '200ms'; begin; select 1").await.unwrap();
        // Returned to the pool while inside a transaction; the server ends the session.
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let task = db.user(u).tasks().create(&NewTask::new("after the idle kill").unwrap()).await.unwrap();
    let n: i64 = t.db.admin().query("select count(*) from tasks where id = $1", &[&task.id.0]).await.unwrap()[0].get(0);
    assert_eq!(n, 1, "committed on a fresh session, not swallowed by a dead transaction");
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_work_cut_off_by_the_server_does_not_return_its_dead_connection_to_the_pool() {
    let t = TestDb::new().await;
    let mut s = settings();
    s.pool.size = 1;
    let db = Db::connect_url(&t.url, &s).await.unwrap();
    assert_eq!(db.pool_status().open, 1);
    let kill_self = "select pg_terminate_backend(pg_backend_pid())";
    // A statement, a batch and multi-statement work, each on a session the server then ends.
    let err = db.admin().query(kill_self, &[]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(db.pool_status().open, 0, "the dead connection left the pool at once");
    db.admin().query("select 1", &[]).await.unwrap();
    let err = db.admin().batch(kill_self).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(db.pool_status().open, 0);
    db.admin().query("select 1", &[]).await.unwrap();
    let err = db
        .admin()
        .with_connection(async |conn| {
            let pid: i32 = conn.query_one("select pg_backend_pid()", &[]).await.expect("pid").get(0);
            t.db.admin().query("select pg_terminate_backend($1, 5000)", &[&pid]).await.expect("terminate");
            todo_db::schema::status(conn).await
        })
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(db.pool_status().open, 0);
    // The next owner work gets a live session, not the one the server ended.
    let pid: i32 = db.admin().query("select pg_backend_pid()", &[]).await.unwrap()[0].get(0);
    assert!(pid > 0);
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_connection_lost_behind_pgbouncer_is_unavailable_not_a_database_error() {
    // PgBouncer tells the client itself, with SQLSTATE 08P01 ("server conn crashed?"), when the
    // server connection under a statement breaks: the connection failed (retryable, the outcome
    // unknown), not the statement. A private cluster: a backend is killed with SIGKILL.
    let home = std::env::temp_dir().join(format!("todo-db-pooler-crash-{}", std::process::id()));
    let (cluster, url) = common::private_cluster(&home).await;
    let running = cluster.ensure_running().await.unwrap();
    let su = Db::connect_url(&running.superuser_url_for("todo"), &settings()).await.unwrap();
    let pooler = todo_db_testkit::pooler::LocalPooler::start(&url, 2).unwrap();
    let mut s = settings();
    s.pool.connect_retry = Duration::ZERO;
    s.pool.statements = todo_db::config::StatementMode::Unnamed;
    let db = Db::connect_url(&pooler.url(&url), &s).await.unwrap();
    let sleeper = {
        let db = db.clone();
        tokio::spawn(async move { db.admin().query("select pg_sleep(20)", &[]).await.map(|_| ()) })
    };
    let mut pid = None;
    for _ in 0..100 {
        let rows = su
            .admin()
            .query("select pid from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'", &[])
            .await
            .unwrap();
        if let Some(r) = rows.first() {
            pid = Some(r.get::<_, i32>(0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = pid.expect("the statement reached the server");
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let err = sleeper.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }) && err.is_retryable(), "{err:?}");
    db.close();
    su.close();
    drop(pooler);
    cluster.stop_with("immediate").unwrap();
    std::fs::remove_dir_all(&home).ok();
}
