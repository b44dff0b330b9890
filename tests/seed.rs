//! Seeding: deterministic, realistic, all-or-nothing, unaudited, refused on protected databases;
//! and the fixture API.

use todo_db_testkit::harness as common;

use std::sync::Arc;

use assert_cmd::Command;
use common::TestDb;
use predicates::prelude::*;
use todo_db::model::{NewTask, Priority, TaskFilter};
use todo_db::schema;
use todo_db_ops::seed::{self, Progress, SeedSpec, UserFixture};

fn spec(seed: u64) -> SeedSpec {
    SeedSpec::new(40, 25).seed(seed).anchor(time::macros::datetime!(2026-06-01 0:00 UTC))
}

async fn checksums(t: &TestDb) -> Vec<schema::TableChecksum> {
    schema::checksum(&mut t.db.admin().connection().await.unwrap()).await.unwrap()
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    t.count(sql).await
}

#[tokio::test]
async fn same_seed_gives_identical_data_and_another_seed_does_not() {
    let (a, b, c) = tokio::join!(TestDb::new(), TestDb::new(), TestDb::new());
    let progress = Arc::new(Progress::default());
    let report = seed::load(&a.db, &spec(7), progress.clone()).await.unwrap();
    seed::load(&b.db, &spec(7), Arc::default()).await.unwrap();
    seed::load(&c.db, &spec(8), Arc::default()).await.unwrap();
    assert_eq!((report.users, report.tasks), (40, 1000));
    assert_eq!(progress.rows(), report.rows(), "progress counted every row");
    let expected = spec(7).expected_rows();
    assert_ne!(expected, report.rows(), "the estimate is an average, not this seed's count");
    assert_eq!(progress.total(expected), report.rows(), "a finished load's total is what it wrote");
    assert_eq!(Progress::default().total(expected), expected, "before any row, the estimate");
    let (sa, sb, sc) = (checksums(&a).await, checksums(&b).await, checksums(&c).await);
    assert_eq!(sa, sb, "same seed, same rows, same ids");
    for table in ["users", "tasks", "tags", "task_tags"] {
        let digest = |s: &[schema::TableChecksum]| s.iter().find(|x| x.table == table).unwrap().digest.clone();
        assert_ne!(digest(&sa), digest(&sc), "{table} differs for another seed");
    }
    let tasks = sa.iter().find(|s| s.table == "tasks").unwrap();
    assert_eq!(tasks.rows, 1000);
}

#[tokio::test]
async fn seeded_data_is_realistic_valid_and_unaudited() {
    let t = TestDb::new().await;
    let report = seed::load(&t.db, &spec(3), Arc::default()).await.unwrap();
    // About 60% completed, each completion after its creation.
    let done = count(&t, "select count(*) from tasks where completed").await;
    assert!((500..=700).contains(&done), "{done} of 1000 completed");
    assert_eq!(count(&t, "select count(*) from tasks where completed_at <= created_at").await, 0);
    // Skewed priorities: medium most common, urgent rarest.
    let by: Vec<(String, i64)> =
        t.db.admin()
            .query("select priority::text, count(*) from tasks group by 1 order by 2 desc", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(by.first().unwrap().0, "medium");
    assert_eq!(by.last().unwrap().0, "urgent");
    // Due dates around the anchor: some open tasks overdue, some due later, some without.
    let overdue = count(&t, "select count(*) from tasks where not completed and due_at < '2026-06-01'").await;
    let later = count(&t, "select count(*) from tasks where due_at > '2026-06-01'").await;
    assert!(overdue > 0 && later > 0, "overdue {overdue}, later {later}");
    assert!(count(&t, "select count(*) from tasks where due_at is null").await > 0);
    // 0-3 tags per task, from the task's own user's tags (the composite keys guarantee the latter).
    let max_tags =
        count(&t, "select coalesce(max(n), 0) from (select count(*) n from task_tags group by task_id) x").await;
    assert!((1..=3).contains(&max_tags), "max tags per task {max_tags}");
    assert!(
        count(&t, "select count(*) from tasks t where not exists (select 1 from task_tags x where x.task_id = t.id)")
            .await
            > 0
    );
    // Varied descriptions, some unicode, some empty.
    assert!(count(&t, "select count(*) from tasks where description = ''").await > 0);
    assert!(count(&t, "select count(*) from tasks where char_length(description) > 400").await > 0);
    assert!(
        count(
            &t,
            "select count(*) from tasks where octet_length(title || description) > char_length(title || description)"
        )
        .await
            > 0
    );
    // No usable password, no audit entries, and the audit triggers are back on.
    assert_eq!(count(&t, "select count(*) from users where password_hash is not null").await, 0);
    assert_eq!(count(&t, "select count(*) from audit.log").await, 0, "seeded rows are not audited");
    assert_eq!(count(&t, "select count(*) from pg_trigger where tgname like '%\\_audit' and tgenabled = 'D'").await, 0);
    // Settled: vacuumed (commit status recorded, pages marked all-visible) and analyzed.
    for table in ["users", "tags", "tasks", "task_tags"] {
        let sql = format!(
            "select count(*) from pg_stat_user_tables s join pg_class c on c.oid = s.relid \
             where s.relname = '{table}' and s.last_vacuum is not null and s.last_analyze is not null \
               and c.relallvisible > 0"
        );
        assert_eq!(count(&t, &sql).await, 1, "{table} vacuumed and analyzed");
    }
    // The data is usable through a user scope, and writes after seeding are audited again.
    let user = t.db.admin().users().find_by_email(&spec(3).email(0)).await.unwrap().id;
    let open =
        t.db.user(user).tasks().list(&TaskFilter { completed: Some(false), ..Default::default() }).await.unwrap();
    assert!(!open.items.is_empty());
    t.db.user(user).tasks().complete(open.items[0].id).await.unwrap();
    assert_eq!(count(&t, "select count(*) from audit.log").await, 1);
    assert!(report.load_seconds > 0.0);
}

#[tokio::test]
async fn loading_a_seed_twice_is_refused_and_changes_nothing() {
    let t = TestDb::new().await;
    // Every secondary index and foreign key of the seeded tables: name -> oid.
    let keys = async |t: &TestDb| -> Vec<(String, u32)> {
        let sql = "select c.relname::text, c.oid from pg_index i join pg_class c on c.oid = i.indexrelid \
                   where i.indrelid in ('users'::regclass, 'tags'::regclass, 'tasks'::regclass, 'task_tags'::regclass) \
                   union all select conname::text, oid from pg_constraint where contype = 'f' \
                   and conrelid in ('tasks'::regclass, 'tags'::regclass, 'task_tags'::regclass) order by 1";
        t.db.admin().query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let empty = keys(&t).await;
    seed::load(&t.db, &spec(5), Arc::default()).await.unwrap();
    // Into empty tables the bulk path: the same indexes and keys, built anew after the rows.
    let bulk = keys(&t).await;
    let names = |k: &[(String, u32)]| k.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&bulk), names(&empty));
    let rebuilt = bulk.iter().zip(&empty).filter(|(a, b)| a.1 != b.1).count();
    let primary = bulk.iter().filter(|k| k.0.ends_with("_pkey")).count();
    assert_eq!(rebuilt, bulk.len() - primary, "every secondary index and key rebuilt, the primary keys kept");
    assert!(todo_db_ops::verify::verify(&t.db).await.unwrap().ok, "verify passes after a bulk seed");
    let before = checksums(&t).await;
    let err = seed::load(&t.db, &spec(5), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("seed 5 is already loaded"), "{err}");
    assert_eq!(checksums(&t).await, before);
    // Another seed fits beside it.
    seed::load(&t.db, &spec(6), Arc::default()).await.unwrap();
    assert_eq!(count(&t, "select count(*) from users").await, 80);
    assert_eq!(keys(&t).await, bulk, "into tables with rows, the indexes take each row: none rebuilt");
}

#[tokio::test]
async fn a_seed_killed_halfway_leaves_nothing_behind() {
    let t = TestDb::new().await;
    let big = SeedSpec::new(3000, 100).seed(9);
    let progress = Arc::new(Progress::default());
    let load = tokio::spawn({
        let (db, progress) = (t.db.clone(), progress.clone());
        async move { seed::load(&db, &big, progress).await }
    });
    while progress.rows() < 20_000 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(!load.is_finished(), "the load ended before it could be interrupted");
    }
    let killed = t.terminate_copies().await;
    assert_eq!(killed, 1, "the COPY backend was found");
    let err = load.await.unwrap().unwrap_err();
    assert!(err.is_retryable() || matches!(err, todo_db::Error::Database { .. }), "{err}");
    for table in ["users", "tags", "tasks", "task_tags"] {
        assert_eq!(count(&t, &format!("select count(*) from {table}")).await, 0, "{table} is empty");
    }
    assert_eq!(count(&t, "select count(*) from pg_trigger where tgname like '%\\_audit' and tgenabled = 'D'").await, 0);
    // And the database is usable: the same seed loads cleanly now.
    seed::load(&t.db, &SeedSpec::new(10, 5).seed(9), Arc::default()).await.unwrap();
}

#[tokio::test]
async fn bad_sizes_are_refused_naming_the_field() {
    let t = TestDb::new().await;
    let err = seed::load(&t.db, &SeedSpec::new(0, 5), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("invalid users"), "{err}");
    let err = seed::load(&t.db, &SeedSpec::new(5, 1_000_000), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("invalid tasks-per-user"), "{err}");
    assert_eq!(count(&t, "select count(*) from users").await, 0);
}

#[tokio::test]
async fn fixtures_create_exactly_what_the_test_asks_for() {
    let t = TestDb::new().await;
    let f = UserFixture::new("fix@example.com")
        .tasks("chore", 3)
        .task(NewTask::new("pay rent").unwrap().priority(Priority::High), true, &["home", "money"])
        .create(&t.db)
        .await
        .unwrap();
    assert_eq!(f.tasks.len(), 4);
    let scope = t.db.user(f.user);
    let all = scope.tasks().list(&TaskFilter::default()).await.unwrap().items;
    assert_eq!(all.len(), 4);
    let rent = scope.tasks().get(f.tasks[3]).await.unwrap();
    assert!(rent.completed);
    assert_eq!(rent.priority, Priority::High);
    assert_eq!(rent.tags, vec!["home".to_string(), "money".to_string()]);
    assert_eq!(count(&t, "select count(*) from tasks where completed").await, 1);
}

fn todo_db(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("todo-db").unwrap();
    cmd.env("DATABASE_URL", url)
        .env_remove("DATABASE_DIRECT_URL")
        .env_remove("TODO_DB_ENVIRONMENT")
        .env("TODO_DB_CONNECT_RETRY", "1s");
    cmd
}

#[tokio::test]
async fn cli_seed_reports_json_prints_progress_and_demo_passwords_once() {
    let t = TestDb::new().await;
    let out = todo_db(&t.url)
        .args(["seed", "--users", "30", "--tasks-per-user", "10", "--seed", "4", "--demo", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seeded"]["tasks"], 300);
    assert_eq!(report["seeded"]["spec"]["seed"], 4);
    let demo = report["demo_accounts"].as_array().unwrap();
    assert_eq!(demo.len(), 3);
    // The printed password logs in; it is stored only as a hash.
    let (email, password) = (demo[0]["email"].as_str().unwrap(), demo[0]["password"].as_str().unwrap());
    todo_db::security::login(&t.db, email, password, &Default::default(), &Default::default()).await.unwrap();
    assert_eq!(count(&t, &format!("select count(*) from users where password_hash like '%{password}%'")).await, 0);
    // Again: the seed is refused, the demo accounts are kept and no password is printed.
    todo_db(&t.url).args(["seed", "--users", "0", "--demo"]).assert().success().stdout(
        predicate::str::contains("demo accounts already exist").and(predicate::str::contains(" password ").not()),
    );
    todo_db(&t.url)
        .args(["seed", "--users", "30", "--tasks-per-user", "10", "--seed", "4"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("seed 4 is already loaded"));
    // Not on a terminal: progress as plain lines on stderr, the summary on stdout.
    todo_db(&t.url)
        .args(["seed", "--users", "2000", "--tasks-per-user", "40", "--seed", "5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rows/s"))
        .stderr(predicate::str::contains("seed: "));
}

#[tokio::test]
async fn protected_databases_refuse_seed_and_reset_without_force() {
    let t = TestDb::new().await;
    todo_db(&t.url).args(["protect", "on"]).assert().success().stdout(predicate::str::contains("protected"));
    todo_db(&t.url)
        .args(["seed", "--users", "5"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("seed refused").and(predicate::str::contains("--force")));
    todo_db(&t.url).args(["reset", "--yes"]).assert().failure().stderr(predicate::str::contains("reset refused"));
    assert_eq!(count(&t, "select count(*) from users").await, 0);
    todo_db(&t.url).args(["seed", "--users", "5", "--force"]).assert().success();
    assert_eq!(count(&t, "select count(*) from users").await, 5);
    todo_db(&t.url).args(["protect", "off"]).assert().success().stdout(predicate::str::contains("not protected"));
    // The environment marks it too.
    todo_db(&t.url)
        .env("TODO_DB_ENVIRONMENT", "production")
        .args(["seed", "--users", "5", "--seed", "2"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("TODO_DB_ENVIRONMENT=production"));
    todo_db(&t.url).args(["seed", "--users", "5", "--seed", "2"]).assert().success();
}
