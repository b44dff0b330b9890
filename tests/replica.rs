//! A real streaming replica (pg_basebackup of a private primary, a second server): reporting
//! reads go to it, a user's own reads stay on the primary, and when it goes away reads fall back
//! to the primary while health warns.

use todo_db_testkit::harness as common;

use std::time::{Duration, Instant};

use todo_db::model::{NewTask, NewUser, TaskFilter};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::{Db, Secret};
use todo_db_ops::health::{self, Status, Thresholds};
use todo_db_ops::local::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_reads_use_the_replica_own_reads_the_primary_and_a_lost_replica_falls_back() {
    let base = std::env::temp_dir().join(format!("todo-db-replica-{}", std::process::id()));
    let (primary, primary_url) = common::private_cluster(&base.join("primary")).await;
    let mut s = common::settings();
    let replica = Cluster::new(base.join("replica"));
    let replica_url = {
        let (p, r) = (primary.clone(), replica.clone());
        tokio::task::spawn_blocking(move || r.create_replica_of(&p)).await.unwrap().unwrap().url()
    };
    s.read_url = Some(Secret::new(replica_url));
    let db = Db::connect_url(&primary_url, &s).await.unwrap();

    // Reporting reads are answered by a server in recovery: the replica.
    let on: bool = db.reporting().query("select pg_is_in_recovery()", &[]).await.unwrap()[0].get(0);
    assert!(on, "reporting reads go to the replica");
    let primary_side: bool = db.admin().query("select pg_is_in_recovery()", &[]).await.unwrap()[0].get(0);
    assert!(!primary_side, "admin work stays on the primary");

    // A user's own writes are visible to their own reads at once (primary), and reach the
    // reports once replayed.
    let u = db.admin().users().create(&NewUser::new("replica@example.com", "R").unwrap()).await.unwrap().id;
    let me = db.user(u);
    me.tasks().create(&NewTask::new("written on the primary").unwrap()).await.unwrap();
    assert_eq!(me.tasks().list(&TaskFilter::default()).await.unwrap().items.len(), 1, "read-your-writes");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = views::read_all::<TaskSummary>(&db, &ReportOptions { user: Some(u.0), ..Default::default() })
            .await
            .unwrap();
        if rows.first().is_some_and(|r| r.total_tasks == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = health::run(&db, None, &Thresholds::default(), &["replica_lag".into()]).await.unwrap();
    assert_eq!(report.checks[0].status, Status::Ok, "{}", report.checks[0].message);

    // The replica goes away: reports still answer (from the primary), health warns.
    replica.stop().unwrap();
    let rows =
        views::read_all::<TaskSummary>(&db, &ReportOptions { user: Some(u.0), ..Default::default() }).await.unwrap();
    assert_eq!(rows[0].total_tasks, 1, "reports fall back to the primary");
    let on: bool = db.reporting().query("select pg_is_in_recovery()", &[]).await.unwrap()[0].get(0);
    assert!(!on, "while the replica is down, the primary answers");
    let report = health::run(&db, None, &Thresholds::default(), &["replica_lag".into()]).await.unwrap();
    assert_eq!(report.checks[0].status, Status::Warning, "{}", report.checks[0].message);
    assert!(report.checks[0].message.contains("fall back to the primary"));

    db.close();
    primary.stop().unwrap();
    std::fs::remove_dir_all(&base).ok();
}
