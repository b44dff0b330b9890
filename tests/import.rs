//! `todo-db import`: a database created with the original module's table shapes, filled with
//! the cases its users have, brought over whole; rows todo-db would refuse named, and all or
//! nothing.

use todo_db_testkit::harness as common;

use assert_cmd::Command;
use common::TestDb;
use predicates::prelude::*;
use serde_json::Value;
use todo_db::audit::history::{self, ChangeType};
use todo_db::model::{Priority, TaskFilter, TaskId, TaskStatus, Theme, Visibility};
use todo_db::security::{self, ClientInfo, LockoutPolicy};
use todo_db_testkit::original;
use uuid::Uuid;

fn todo_db(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("todo-db").unwrap();
    cmd.env("DATABASE_URL", url).env_remove("DATABASE_DIRECT_URL").env("TODO_DB_CONNECT_RETRY", "1s");
    cmd
}

/// Fixed ids, so that the test can find each row again after the import.
fn id(n: u32) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 + u128::from(n))
}

/// The source: alice (three live tasks, one soft-deleted; mixed-case duplicate tags; history;
/// preferences), bob (one task, a tag of the same name as alice's), carol (no tasks), and a
/// token and analytics rows, which are not carried.
async fn source() -> TestDb {
    let s = TestDb::empty().await;
    let alice = bcrypt::hash("alice's old password", 4).unwrap();
    let bob = bcrypt::hash("bob's old password", 4).unwrap();
    let sql = format!(
        "{schema}
insert into users (id, email, first_name, last_name, display_name, bio, avatar_url, avatar_thumbnail_url, is_active,
                   email_verified, password_hash, last_login_at, created_at, updated_at) values
 ('{a}', 'Alice@Example.com', 'Alice', 'Archer', 'alice', 'Writes lists', 'https://img.example/a.png', 'https://img.example/a_t.png',
  true, true, '{alice}', '2026-05-01 10:00', '2026-01-01 09:00', '2026-05-01 10:00'),
 ('{b}', 'bob@example.com', 'Bob', 'Baker', null, null, null, null, true, false, '{bob}', null, '2026-02-01 09:00', '2026-02-01 09:00'),
 ('{c}', 'carol@example.com', 'Carol', 'Cole', null, null, '', null, true, false, '{bob}', null, '2026-03-01 09:00', '2026-03-01 09:00');
insert into tasks (id, user_id, title, description, completed, priority, status, due_date, completed_at, deleted, deleted_at,
                   created_at, updated_at) values
 ('{t1}', '{a}', 'Buy milk', '', false, 'high', 'todo', null, null, false, null, '2026-04-01 08:00', '2026-04-02 08:00'),
 ('{t2}', '{a}', 'Write report', 'Quarterly', true, 'urgent', 'done', '2026-04-10 17:00', '2026-04-09 12:00', false, null,
  '2026-04-01 08:00', '2026-04-09 12:00'),
 ('{t3}', '{a}', 'Review draft', null, false, 'medium', 'review', '2026-04-20 17:00', null, false, null,
  '2026-04-03 08:00', '2026-04-03 08:00'),
 ('{t4}', '{a}', 'Old chore', 'gone', false, 'low', 'todo', null, null, true, '2026-04-05 08:00', '2026-03-01 08:00', '2026-04-05 08:00'),
 ('{t5}', '{b}', ' Status says done ', 'x', false, 'low', 'done', null, null, false, null, '2026-04-01 08:00', '2026-04-06 08:00');
insert into task_tags (id, task_id, tag, created_at) values
 ('{g1}', '{t1}', 'Work', '2026-04-01 08:00'),
 ('{g2}', '{t2}', 'work', '2026-04-02 08:00'),
 ('{g3}', '{t2}', 'WORK', '2026-04-02 08:00'),
 ('{g4}', '{t4}', 'Home', '2026-03-01 08:00'),
 ('{g5}', '{t5}', 'work', '2026-04-01 08:00');
insert into task_history (id, task_id, user_id, change_type, old_value, new_value, created_at) values
 ('{h1}', '{t1}', '{a}', 'task_created', null, '{{\"title\": \"Buy milk\"}}', '2026-04-01 08:00'),
 ('{h2}', '{t1}', '{a}', 'task_priority_changed', '\"medium\"', '\"high\"', '2026-04-02 08:00'),
 ('{h3}', '{t5}', '{b}', 'task_created', null, '{{\"title\": \"Status says done\"}}', '2026-04-01 08:00');
insert into user_preferences (id, user_id, theme, language, notifications, privacy, created_at, updated_at) values
 ('{p1}', '{a}', 'dark', 'pt-BR', '{{\"email_notifications\": false, \"push_notifications\": true}}',
  '{{\"profile_visibility\": \"public\", \"show_email\": true}}', '2026-01-01 09:00', '2026-01-02 09:00');
insert into password_reset_tokens (id, user_id, token_hash, expires_at, used, created_at) values
 ('{k1}', '{a}', 'abc', '2099-01-01', false, '2026-04-01');
insert into daily_analytics (id, user_id, date, tasks_created) values ('{k2}', '{a}', '2026-04-01', 3);
",
        schema = original::SCHEMA,
        a = id(1),
        b = id(2),
        c = id(3),
        t1 = id(11),
        t2 = id(12),
        t3 = id(13),
        t4 = id(14),
        t5 = id(15),
        g1 = id(21),
        g2 = id(22),
        g3 = id(23),
        g4 = id(24),
        g5 = id(25),
        h1 = id(31),
        h2 = id(32),
        h3 = id(33),
        p1 = id(41),
        k1 = id(51),
        k2 = id(52),
    );
    s.db.admin().batch(&sql).await.unwrap();
    s
}

async fn login(t: &TestDb, email: &str, password: &str) -> todo_db::Result<todo_db::model::UserId> {
    security::login(&t.db, email, password, &ClientInfo::default(), &LockoutPolicy::default()).await
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

#[tokio::test]
async fn a_database_of_the_original_module_comes_over_whole_and_each_row_only_to_its_owner() {
    let (src, t) = (source().await, TestDb::new().await);
    // A dry run counts everything and writes nothing.
    let out = todo_db(&t.url).args(["import", "--dry-run", "--json"]).env("TODO_DB_IMPORT_FROM", &src.url).assert();
    let plan = json(&out.success().get_output().stdout);
    assert_eq!(plan["imported"], false);
    assert_eq!(plan["plan"]["problems"], Value::Array(vec![]));
    assert_eq!(t.count("select count(*) from users").await, 0, "a dry run writes nothing");

    let out = todo_db(&t.url).args(["import", "--from", &src.url, "--json"]).assert().success();
    let report = json(&out.get_output().stdout);
    let rows = &report["plan"]["rows"];
    assert_eq!(
        (&rows["users"], &rows["tasks"], &rows["task_trash"], &rows["tags"], &rows["task_tags"]),
        (&Value::from(3), &Value::from(4), &Value::from(1), &Value::from(3), &Value::from(3)),
        "{report}"
    );
    assert_eq!((&rows["user_preferences"], &rows["audit.log"]), (&Value::from(1), &Value::from(3)));
    assert_eq!(report["rows"], 18);
    assert!(report["rows_per_second"].as_f64().unwrap() > 0.0);
    let not_carried = report["plan"]["not_carried"].to_string();
    assert!(not_carried.contains("password_reset_tokens") && not_carried.contains("daily_analytics"));
    assert!(!String::from_utf8_lossy(&out.get_output().stdout).contains("$2b$"), "no hash in the output");

    // Every user logs in with their old password (the bcrypt hash is then replaced by Argon2id).
    let alice = login(&t, "alice@example.com", "alice's old password").await.unwrap();
    assert_eq!(alice.0, id(1));
    assert!(login(&t, "bob@example.com", "not bob's password").await.is_err());
    let bob = login(&t, "bob@example.com", "bob's old password").await.unwrap();
    let rehashed = t.count("select count(*) from users where password_hash like '$argon2id$%'").await;
    assert_eq!(rehashed, 2, "the two logins rehashed their passwords");
    let carol = t.db.admin().users().find_by_email("carol@example.com").await.unwrap();
    assert_eq!(carol.avatar_url, None, "an empty avatar URL is none");

    // Alice's tasks, tags and trash, as she sees them.
    let sa = t.db.user(alice);
    let me = sa.profile().get().await.unwrap();
    assert_eq!((me.first_name.as_str(), me.bio.as_str(), me.email_verified), ("Alice", "Writes lists", true));
    let page = sa.tasks().list(&TaskFilter::default()).await.unwrap();
    let mut titles: Vec<&str> = page.items.iter().map(|t| t.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["Buy milk", "Review draft", "Write report"]);
    let milk = sa.tasks().get(TaskId(id(11))).await.unwrap();
    assert_eq!((milk.description.as_str(), milk.due_at, milk.priority), ("", None, Priority::High));
    assert_eq!(milk.tags, ["Work"], "the earliest spelling");
    let report_task = sa.tasks().get(TaskId(id(12))).await.unwrap();
    assert_eq!(report_task.tags, ["Work"], "work and WORK on one task: one tag");
    assert!(report_task.completed && report_task.status == TaskStatus::Done);
    assert_eq!(report_task.completed_at.unwrap().to_string(), "2026-04-09 12:00:00.0 +00:00:00", "naive UTC");
    let draft = sa.tasks().get(TaskId(id(13))).await.unwrap();
    assert_eq!((draft.status, draft.description.as_str()), (TaskStatus::Review, ""));
    assert_eq!(sa.tags().list().await.unwrap().len(), 2, "Work and Home: one tag per name ignoring case");
    let trash = sa.tasks().trash(10).await.unwrap();
    assert_eq!(trash.iter().map(|t| t.task.title.as_str()).collect::<Vec<_>>(), ["Old chore"]);
    assert_eq!(trash[0].deleted_at.to_string(), "2026-04-05 8:00:00.0 +00:00:00");
    let restored = sa.tasks().restore(TaskId(id(14))).await.unwrap();
    assert_eq!(restored.tags, ["Home"], "a trashed task keeps its tags");

    // History, as the app's change types, with the original's values.
    let h = history::task_history(&sa, TaskId(id(11)), 50).await.unwrap();
    let kinds: Vec<ChangeType> = h.iter().map(|c| c.change_type).collect();
    assert_eq!(kinds, [ChangeType::TaskPriorityChanged, ChangeType::TaskCreated]);
    assert_eq!((h[0].old_value.clone(), h[0].new_value.clone()), (Some("medium".into()), Some("high".into())));
    assert_eq!(h[1].at.to_string(), "2026-04-01 8:00:00.0 +00:00:00");

    // Preferences, typed; a user without a row has the defaults.
    let prefs = sa.profile().preferences().await.unwrap();
    assert_eq!((prefs.theme, prefs.language.as_str()), (Theme::Dark, "pt-BR"));
    assert!(!prefs.notifications.email && prefs.notifications.push && prefs.notifications.task_reminders);
    assert_eq!((prefs.privacy.profile_visibility, prefs.privacy.show_email), (Visibility::Public, true));
    let sb = t.db.user(bob);
    assert_eq!(sb.profile().preferences().await.unwrap(), todo_db::model::Preferences::default());

    // Bob's task: status done made it completed (todo-db's rule), the title trimmed; his "work"
    // tag is his own, and he sees nothing of Alice's.
    let bobs = sb.tasks().get(TaskId(id(15))).await.unwrap();
    assert_eq!((bobs.title.as_str(), bobs.completed, bobs.status), ("Status says done", true, TaskStatus::Done));
    assert_eq!(bobs.completed_at.unwrap().to_string(), "2026-04-06 8:00:00.0 +00:00:00", "its last update");
    assert!(sb.tasks().get(TaskId(id(11))).await.is_err());
    assert!(history::task_history(&sb, TaskId(id(11)), 50).await.unwrap().is_empty());
    assert_eq!(sb.tasks().list(&TaskFilter::default()).await.unwrap().items.len(), 1);
    assert_eq!(sb.tags().list().await.unwrap().len(), 1);
    let sc = t.db.user(carol.id);
    assert!(sc.tasks().list(&TaskFilter::default()).await.unwrap().items.is_empty());

    // The database is whole: verify and the security check pass.
    todo_db(&t.url).arg("verify").assert().success();
    todo_db(&t.url).args(["security", "check"]).assert().success().stdout(predicate::str::contains("all ok"));

    // A second import is refused: the target holds todo-db data now; with --replace it runs.
    todo_db(&t.url)
        .args(["import", "--from", &src.url])
        .assert()
        .failure()
        .stderr(predicate::str::contains("already holds todo-db data").and(predicate::str::contains("--replace")));
    todo_db(&t.url).args(["import", "--from", &src.url, "--replace"]).assert().success();
    assert_eq!(t.count("select count(*) from tasks").await, 4, "replaced: the restored task is back in the trash");
}

#[tokio::test]
async fn rows_todo_db_would_refuse_are_named_and_nothing_is_half_imported() {
    let (src, t) = (source().await, TestDb::new().await);
    src.db
        .admin()
        .batch(&format!(
            "insert into users (id, email, first_name, last_name, is_active, email_verified, password_hash, created_at, updated_at)
               values ('{dup}', 'ALICE@example.com', 'Other', 'Alice', true, false, 'x', '2026-06-01', '2026-06-01');
             insert into tasks (id, user_id, title, completed, priority, status, deleted, created_at, updated_at) values
               ('{t6}', '{dup}', 'of the duplicate', false, 'low', 'todo', false, '2026-06-01', '2026-06-01'),
               ('{t7}', '{a}', 'critical?', false, 'critical', 'todo', false, '2026-06-01', '2026-06-01'),
               ('{t8}', '{a}', '   ', false, 'low', 'todo', false, '2026-06-01', '2026-06-01');
             insert into task_tags (id, task_id, tag, created_at) values ('{g6}', '{t1}', '  ', '2026-06-01');",
            dup = id(4),
            a = id(1),
            t6 = id(16),
            t7 = id(17),
            t8 = id(18),
            g6 = id(26),
            t1 = id(11)
        ))
        .await
        .unwrap();
    let out = todo_db(&t.url).args(["import", "--from", &src.url, "--dry-run", "--json"]).assert().success();
    let plan = json(&out.get_output().stdout);
    let problems: Vec<(String, String, String)> = plan["plan"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["table"].as_str().unwrap().into(),
                p["id"].as_str().unwrap().into(),
                p["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let has = |table: &str, row: u32, reason: &str| {
        problems.iter().any(|p| p.0 == table && p.1 == id(row).to_string() && p.2.contains(reason))
    };
    assert!(has("users", 4, "older account's, ignoring case"), "{problems:?}");
    assert!(has("tasks", 16, "its user cannot be imported"), "{problems:?}");
    assert!(has("tasks", 17, "priority is not"), "{problems:?}");
    assert!(has("tasks", 18, "title is empty"), "{problems:?}");
    assert!(has("task_tags", 26, "tag is empty"), "{problems:?}");
    assert_eq!(problems.len(), 5, "{problems:?}");

    // The real run refuses, naming the counts, and writes nothing.
    todo_db(&t.url)
        .args(["import", "--from", &src.url])
        .assert()
        .failure()
        .stderr(predicate::str::contains("5 rows cannot be imported").and(predicate::str::contains("--skip-invalid")));
    assert_eq!(t.count("select count(*) from users").await, 0);
    assert_eq!(t.count("select count(*) from audit.log").await, 0);

    // Leaving them behind imports the rest and counts what was left.
    let out = todo_db(&t.url).args(["import", "--from", &src.url, "--skip-invalid"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("left behind 1 row(s) of tasks: priority is not"), "{text}");
    assert_eq!(t.count("select count(*) from users").await, 3);
    assert_eq!(t.count("select count(*) from tasks").await, 4);
}

#[tokio::test]
async fn a_source_that_is_not_the_original_module_is_refused_by_name() {
    let (src, t) = (TestDb::empty().await, TestDb::new().await);
    src.db.admin().batch("create table users (id uuid primary key, email text)").await.unwrap();
    todo_db(&t.url)
        .args(["import", "--from", &src.url, "--dry-run"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no table tasks"));
    src.db.admin().batch("create table tasks (id uuid primary key)").await.unwrap();
    todo_db(&t.url)
        .args(["import", "--from", &src.url, "--dry-run"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("table users lacks column(s) first_name"));
}
