//! Faults injected for real: a proxy that black-holes or loses answers, and a server crash
//! (`pg_ctl stop -m immediate`) on a private cluster. No acknowledged write is lost, no write runs
//! twice, no operation hangs.

mod common;

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
    let cluster = todo_db::local::Cluster::new(&home);
    let running = cluster.ensure_running().await.unwrap();
    let url = running.url();
    let mut s = settings();
    let maint = Db::connect_url(&running.url_for("postgres"), &s).await.unwrap();
    maint.admin().batch("create database todo").await.unwrap();
    maint.close();
    s.pool.size = 4;
    s.pool.connect_retry = Duration::from_secs(1);
    let db = Db::connect_url(&url, &s).await.unwrap();
    todo_db::schema::migrate(&mut db.admin().connection().await.unwrap()).await.unwrap();
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
