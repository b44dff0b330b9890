//! The audit trail against the real server: capture, isolation, tamper evidence, time travel.

use todo_db_testkit::harness as common;

use std::time::Duration;

use common::TestDb;
use time::OffsetDateTime;
use todo_db::audit::{self, LogFilter, Tamper};
use todo_db::model::*;
use todo_db::security::{self, ClientInfo};
use todo_db::Error;

async fn entries(t: &TestDb, record: uuid::Uuid) -> Vec<audit::Entry> {
    let mut e = audit::log(&t.db, &LogFilter { record: Some(record), limit: Some(1000), ..Default::default() })
        .await
        .unwrap()
        .items;
    e.reverse();
    e
}

#[tokio::test]
async fn every_store_write_makes_exactly_one_entry_with_actor_old_new_and_changed_columns() {
    let t = TestDb::new().await;
    let u = t.user("audited@example.com").await;
    let s = t.db.user(u).with_context("req-42", "support ticket 7");
    let task = s.tasks().create(&NewTask::new("first").unwrap()).await.unwrap();
    s.tasks()
        .update(task.id, &TaskPatch { title: Some(TaskTitle::parse("second").unwrap()), ..Default::default() })
        .await
        .unwrap();
    s.tasks().complete(task.id).await.unwrap();
    s.tasks().complete(task.id).await.unwrap(); // changes nothing: no entry
    s.tasks().delete(task.id).await.unwrap();

    let e = entries(&t, task.id.0).await;
    let ops: Vec<&str> = e.iter().map(|e| e.op.as_str()).collect();
    // The delete moves the task to the trash: out of tasks, into task_trash, in one transaction.
    assert_eq!(ops, ["INSERT", "UPDATE", "UPDATE", "DELETE", "INSERT"]);
    let tables: Vec<&str> = e.iter().map(|e| e.table.as_str()).collect();
    assert_eq!(tables, ["tasks", "tasks", "tasks", "tasks", "task_trash"]);
    assert_eq!(e[3].txid, e[4].txid);
    assert!(e.iter().all(|e| e.actor == u.0.to_string() && e.user_id == Some(u.0)));
    assert!(e
        .iter()
        .all(|e| e.request_id.as_deref() == Some("req-42") && e.reason.as_deref() == Some("support ticket 7")));
    assert_eq!(e[0].new.as_ref().unwrap()["title"], "first");
    assert!(e[0].old.is_none());
    assert_eq!(e[1].changed.as_deref(), Some(&["title".to_string(), "updated_at".to_string()][..]));
    assert_eq!(e[1].old.as_ref().unwrap()["title"], "first");
    assert_eq!(e[1].new.as_ref().unwrap()["title"], "second");
    assert_eq!(
        e[2].changed.as_deref(),
        Some(
            &["completed".to_string(), "completed_at".to_string(), "status".to_string(), "updated_at".to_string()][..]
        )
    );
    assert!(e[3].new.is_none() && e[3].old.as_ref().unwrap()["completed"] == true);

    // Admin work is attributed to the login role.
    let admin_actor: String = t.db.admin().query("select session_user::text", &[]).await.unwrap()[0].get(0);
    let user_entries = entries(&t, u.0).await;
    assert_eq!(user_entries[0].actor, admin_actor);
}

#[tokio::test]
async fn inserts_into_every_audited_table_name_their_record_and_owner() {
    let t = TestDb::new().await;
    let u = t.user("inserts@example.com").await;
    let s = t.db.user(u);
    let task = s.tasks().create(&NewTask::new("tagged").unwrap()).await.unwrap();
    let tag = s.tags().create(&TagName::parse("Work").unwrap(), None).await.unwrap();
    s.tasks().tag(task.id, &[TagName::parse("Work").unwrap()]).await.unwrap();

    let tag_entries = entries(&t, tag.id.0).await;
    assert_eq!(tag_entries.len(), 1, "{tag_entries:?}");
    let e = &tag_entries[0];
    assert_eq!((e.table.as_str(), e.op.as_str(), e.user_id), ("tags", "INSERT", Some(u.0)));
    assert_eq!(e.new.as_ref().unwrap()["name"], "Work");
    assert!(e.old.is_none() && e.changed.is_none());
    // A task's tag links sit in the task's own history (their record id is the task's id).
    let task_entries = entries(&t, task.id.0).await;
    let tables: Vec<(&str, &str)> = task_entries.iter().map(|e| (e.table.as_str(), e.op.as_str())).collect();
    assert_eq!(tables, [("tasks", "INSERT"), ("task_tags", "INSERT")]);
    assert!(task_entries.iter().all(|e| e.user_id == Some(u.0) && e.actor == u.0.to_string()));
    assert_eq!(task_entries[1].new.as_ref().unwrap()["tag_id"], tag.id.0.to_string());
    // The user's own row (a table with a secret column) is captured too, owned by itself.
    let user_entries = entries(&t, u.0).await;
    assert_eq!((user_entries[0].table.as_str(), user_entries[0].user_id), ("users", Some(u.0)));
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing_even_from_an_admin_connection() {
    let t = TestDb::new().await;
    let u = t.user("noop@example.com").await;
    let task = t.db.user(u).tasks().create(&NewTask::new("same").unwrap()).await.unwrap();
    let count = || async {
        let n: i64 = t.db.admin().query("select count(*) from audit.log", &[]).await.unwrap()[0].get(0);
        n
    };
    let before = count().await;
    // Every column assigned its own value, on both a plain table and one with a secret column.
    t.db.admin().batch("update tasks set title = title, priority = priority, due_at = due_at").await.unwrap();
    t.db.admin().batch("update users set password_hash = password_hash, email = email").await.unwrap();
    assert_eq!(count().await, before, "no entry for rows that did not change");
    t.db.admin().query("update tasks set priority = 'high' where id = $1", &[&task.id.0]).await.unwrap();
    let last = entries(&t, task.id.0).await.pop().unwrap();
    assert_eq!(last.changed.as_deref(), Some(&["priority".to_string(), "updated_at".to_string()][..]));
    assert_eq!(count().await, before + 1);
}

/// A database that already has hstore (the capture's changed-columns comparison) in another schema
/// keeps it there, and the capture finds it.
#[tokio::test]
async fn the_capture_uses_an_hstore_the_database_already_had() {
    let t = TestDb::empty().await;
    let db = &t.db;
    db.admin().batch("create schema extensions; create extension hstore schema extensions").await.unwrap();
    // A schema the migrations' role cannot use: they stop, and say what to grant.
    let refused = todo_db::schema::migrate(&mut db.admin().connection().await.unwrap()).await.unwrap_err().to_string();
    assert!(refused.contains("hstore is installed in schema extensions"), "{refused}");
    assert!(refused.contains("grant usage on schema extensions to todo_owner"), "{refused}");
    db.admin().batch("grant usage on schema extensions to todo_owner").await.unwrap();
    todo_db::schema::migrate(&mut db.admin().connection().await.unwrap()).await.unwrap();
    let home: String = db
        .admin()
        .query("select extnamespace::regnamespace::text from pg_extension where extname = 'hstore'", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(home, "extensions", "left where it was");

    let u = UserId::new();
    db.admin().query("insert into users (id, email) values ($1, 'h@example.com')", &[&u.0]).await.unwrap();
    let task = db.user(u).tasks().create(&NewTask::new("before").unwrap()).await.unwrap();
    let patch = TaskPatch { title: Some(TaskTitle::parse("after").unwrap()), ..Default::default() };
    db.user(u).tasks().update(task.id, &patch).await.unwrap();
    let e = audit::log(db, &LogFilter { record: Some(task.id.0), ..Default::default() }).await.unwrap().items;
    assert_eq!(e[0].op, "UPDATE");
    assert_eq!(e[0].changed.as_deref(), Some(&["title".to_string(), "updated_at".to_string()][..]));
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_entry_and_password_hashes_never_reach_the_log() {
    let t = TestDb::new().await;
    let u = t.user("secret@example.com").await;
    let before: i64 = t.db.admin().query("select count(*) from audit.log", &[]).await.unwrap()[0].get(0);
    // The second statement fails, so the first is rolled back with it.
    let failed =
        t.db.user(u)
            .pipeline(&[
                todo_db::db::Stmt::new(
                    "insert into tasks (id, user_id, title) values ($1, $2, 'kept?')",
                    &[&TaskId::new().0, &u.0],
                ),
                todo_db::db::Stmt::new(
                    "insert into tasks (id, user_id, title) values ($1, $2, '')",
                    &[&TaskId::new().0, &u.0],
                ),
            ])
            .await;
    assert!(matches!(failed, Err(Error::Validation { field: "title", .. })));
    let after: i64 = t.db.admin().query("select count(*) from audit.log", &[]).await.unwrap()[0].get(0);
    assert_eq!(after, before, "nothing from the rolled-back transaction");

    security::set_password(&t.db.user(u), "a very secret passphrase", &ClientInfo::default()).await.unwrap();
    let hash: String =
        t.db.admin().query("select password_hash from users where id = $1", &[&u.0]).await.unwrap()[0].get(0);
    let log: Vec<String> =
        t.db.admin()
            .query("select row_to_json(l)::text from audit.log l", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(log.iter().all(|l| !l.contains(&hash) && !l.contains("argon2")), "no hash in the log");
    let change = entries(&t, u.0).await.pop().unwrap();
    assert_eq!(change.changed.as_deref(), Some(&["password_hash".to_string(), "updated_at".to_string()][..]));
    assert_eq!(change.new.as_ref().unwrap()["password_hash"], "[secret]");
}

#[tokio::test]
async fn the_app_role_cannot_change_the_log_and_b_cannot_read_as_entries() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("la@example.com").await, t.user("lb@example.com").await);
    let task = t.db.user(a).tasks().create(&NewTask::new("a's").unwrap()).await.unwrap();
    let sa = t.db.user(a);
    for sql in [
        "update audit.log set reason = 'x'",
        "delete from audit.log",
        "truncate audit.log",
        "insert into audit.log (table_name, op, actor) values ('tasks', 'INSERT', 'me')",
    ] {
        let err = sa.query(sql, &[]).await.unwrap_err();
        assert!(matches!(&err, Error::Database { code, .. } if code == "42501"), "{sql}: {err:?}");
    }
    let own = audit::log_own(&t.db.user(a), &LogFilter::default()).await.unwrap();
    assert!(own.items.iter().any(|e| e.record_id == Some(task.id.0)));
    let theirs =
        audit::log_own(&t.db.user(b), &LogFilter { record: Some(task.id.0), ..Default::default() }).await.unwrap();
    assert!(theirs.items.is_empty(), "B reads none of A's entries");
    // Even the owner login cannot rewrite history: the append-only trigger refuses.
    let err = t.db.admin().batch("update audit.log set reason = 'rewritten'").await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// Seals a log with a gap (an id consumed by a rolled-back transaction), tampers through the owner
/// login with the append-only guard switched off, and returns what verify found and the victim id
/// (`$1`: an existing entry, or the gap when `into_gap`).
async fn tamper_and_verify(sql: &str, into_gap: bool) -> (Option<Tamper>, i64) {
    let t = TestDb::new().await;
    let u = t.user("tamper@example.com").await;
    let s = t.db.user(u);
    for i in 0..5 {
        s.tasks().create(&NewTask::new(&format!("t{i}")).unwrap()).await.unwrap();
        if i == 2 {
            let mut conn = t.db.admin().connection().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.execute(
                "insert into tasks (id, user_id, title) values ($1, $2, 'rolled back')",
                &[&TaskId::new().0, &u.0],
            )
            .await
            .unwrap();
            tx.rollback().await.unwrap();
        }
    }
    audit::seal(&t.db, Duration::from_secs(10)).await.unwrap().expect("a seal");
    assert!(audit::verify(&t.db).await.unwrap().ok);
    let victim: i64 = if into_gap {
        t.db.admin()
            .query("select min(g) from generate_series((select min(id) from audit.log), (select max(id) from audit.log)) g where not exists (select 1 from audit.log where id = g)", &[])
            .await
            .unwrap()[0]
            .get(0)
    } else {
        t.db.admin().query("select min(id) + 2 from audit.log", &[]).await.unwrap()[0].get(0)
    };
    tamper(&t, sql, victim).await;
    let report = audit::verify(&t.db).await.unwrap();
    assert!(!report.ok);
    let cli = assert_cmd::Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", &t.url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains(&format!("entry {victim} ")),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );
    (report.first_problem, victim)
}

#[tokio::test]
async fn verify_names_an_altered_entry() {
    let (p, victim) =
        tamper_and_verify("update audit.log set new = jsonb_set(new, '{title}', '\"forged\"') where id = $1", false)
            .await;
    assert!(matches!(p, Some(Tamper::Altered { entry, .. }) if entry == victim), "{p:?}");
}

#[tokio::test]
async fn verify_names_a_removed_entry() {
    let (p, victim) = tamper_and_verify("delete from audit.log where id = $1", false).await;
    assert!(matches!(p, Some(Tamper::Removed { entry, .. }) if entry == victim), "{p:?}");
}

#[tokio::test]
async fn verify_names_an_inserted_entry() {
    let (p, victim) = tamper_and_verify(
        "insert into audit.log (id, table_name, op, actor) overriding system value values ($1, 'tasks', 'INSERT', 'forger')",
        true,
    )
    .await;
    assert!(matches!(p, Some(Tamper::Inserted { entry, .. }) if entry == victim), "{p:?}");
}

#[tokio::test]
async fn a_task_edited_five_times_and_deleted_comes_back_as_it_was_at_the_second_edit() {
    let t = TestDb::new().await;
    let u = t.user("restore@example.com").await;
    let s = t.db.user(u);
    let task = s.tasks().create(&NewTask::new("v0").unwrap()).await.unwrap();
    s.tasks().tag(task.id, &[TagName::parse("keep").unwrap()]).await.unwrap();
    let mut at_second = None;
    for i in 1..=5 {
        s.tasks()
            .update(
                task.id,
                &TaskPatch { title: Some(TaskTitle::parse(&format!("v{i}")).unwrap()), ..Default::default() },
            )
            .await
            .unwrap();
        if i == 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            at_second = Some(OffsetDateTime::now_utc());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    s.tasks().untag(task.id, &TagName::parse("keep").unwrap()).await.unwrap();
    s.tasks().delete(task.id).await.unwrap();
    let at = at_second.unwrap();

    let state = audit::state_at(&t.db, "tasks", task.id.0, at).await.unwrap().unwrap();
    assert_eq!(state["title"], "v2");
    let plan = audit::restore_task(&t.db, task.id, at, true, false).await.unwrap();
    assert_eq!(plan.action, "recreate");
    assert!(!plan.applied);
    assert!(matches!(s.tasks().get(task.id).await, Err(Error::NotFound { .. })), "a dry run changes nothing");

    let done = audit::restore_task(&t.db, task.id, at, false, false).await.unwrap();
    assert!(done.applied);
    let back = s.tasks().get(task.id).await.unwrap();
    assert_eq!(back.title, "v2");
    assert_eq!(back.tags, vec!["keep".to_string()]);
    let last = entries(&t, task.id.0).await;
    let restore_entries: Vec<_> =
        last.iter().filter(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("restore of task"))).collect();
    // Out of the trash, the task back in, its tag link back: all audited, with the reason.
    let what: Vec<(&str, &str)> = restore_entries.iter().map(|e| (e.table.as_str(), e.op.as_str())).collect();
    assert_eq!(what, [("task_trash", "DELETE"), ("tasks", "INSERT"), ("task_tags", "INSERT")], "{last:?}");

    // Edited since: an update back to the old fields.
    s.tasks()
        .update(task.id, &TaskPatch { title: Some(TaskTitle::parse("v9").unwrap()), ..Default::default() })
        .await
        .unwrap();
    let plan = audit::restore_task(&t.db, task.id, at, false, false).await.unwrap();
    assert_eq!(plan.action, "update");
    assert_eq!(s.tasks().get(task.id).await.unwrap().title, "v2");
}

#[tokio::test]
async fn pruning_stops_at_a_sealed_boundary_is_recorded_and_verify_still_catches_tampering() {
    let t = TestDb::new().await;
    let u = t.user("prune@example.com").await;
    let s = t.db.user(u);
    for i in 0..3 {
        s.tasks().create(&NewTask::new(&format!("old {i}")).unwrap()).await.unwrap();
    }
    let first = audit::seal(&t.db, Duration::from_secs(10)).await.unwrap().unwrap();
    for i in 0..3 {
        s.tasks().create(&NewTask::new(&format!("unsealed {i}")).unwrap()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = OffsetDateTime::now_utc();
    s.tasks().create(&NewTask::new("new").unwrap()).await.unwrap();

    let pruned = audit::prune(&t.db, cut).await.unwrap();
    assert_eq!(pruned.through_id, first.upto_id, "only the sealed range goes, not the unsealed entries before the cut");
    assert_eq!(pruned.removed, first.entries);
    let left: i64 =
        t.db.admin().query("select count(*) from audit.log where id <= $1", &[&first.upto_id]).await.unwrap()[0].get(0);
    assert_eq!(left, 0);
    let recorded: i64 = t.db.admin().query("select count(*) from audit.prune", &[]).await.unwrap()[0].get(0);
    assert_eq!(recorded, 1);
    audit::seal(&t.db, Duration::from_secs(10)).await.unwrap().unwrap();
    let report = audit::verify(&t.db).await.unwrap();
    assert!(report.ok, "{report:?}");

    let victim: i64 = t.db.admin().query("select max(id) from audit.log", &[]).await.unwrap()[0].get(0);
    tamper(&t, "update audit.log set actor = 'someone else' where id = $1", victim).await;
    let report = audit::verify(&t.db).await.unwrap();
    assert!(matches!(report.first_problem, Some(Tamper::Altered { entry, .. }) if entry == victim), "{report:?}");
}

#[tokio::test]
async fn a_users_tasks_and_tags_are_restored_together_and_later_ones_removed() {
    let t = TestDb::new().await;
    let u = t.user("whole@example.com").await;
    let s = t.db.user(u);
    let kept = s.tasks().create(&NewTask::new("kept").unwrap()).await.unwrap();
    s.tasks().tag(kept.id, &[TagName::parse("home").unwrap()]).await.unwrap();
    let deleted = s.tasks().create(&NewTask::new("deleted later").unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.tasks()
        .update(kept.id, &TaskPatch { title: Some(TaskTitle::parse("edited").unwrap()), ..Default::default() })
        .await
        .unwrap();
    let home = s.tags().list().await.unwrap().into_iter().find(|g| g.name == "home").unwrap();
    s.tags().delete(home.id).await.unwrap();
    s.tasks().delete(deleted.id).await.unwrap();
    let later = s.tasks().create(&NewTask::new("created later").unwrap()).await.unwrap();
    s.tags().create(&TagName::parse("new tag").unwrap(), None).await.unwrap();

    let at_text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let dry = assert_cmd::Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", &t.url)
        .args(["audit", "restore", "--user", &u.to_string(), "--as-of", &at_text, "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["tasks"].as_array().unwrap().len(), 3, "kept (update), deleted (recreate), later (delete)");
    assert_eq!(s.tasks().list(&TaskFilter::default()).await.unwrap().items.len(), 2, "a dry run changes nothing");

    // With --keep-created, what was created since stays: only the update and the recreate remain.
    let keep = audit::restore_user(&t.db, u, at, true, true).await.unwrap();
    let actions: Vec<&str> = keep.tasks.iter().map(|p| p.action).collect();
    assert_eq!(keep.tasks.len(), 2, "{actions:?}");
    assert!(!actions.contains(&"delete") && !keep.tags.iter().any(|g| g.action == "delete"), "{actions:?}");
    let single = audit::restore_task(&t.db, later.id, at, true, true).await.unwrap();
    assert_eq!(single.action, "none", "a task created since is kept");

    let done = audit::restore_user(&t.db, u, at, false, false).await.unwrap();
    assert!(done.applied);
    let mut titles: Vec<String> =
        s.tasks().list(&TaskFilter::default()).await.unwrap().items.into_iter().map(|t| t.title).collect();
    titles.sort();
    assert_eq!(titles, vec!["deleted later".to_string(), "kept".to_string()]);
    assert!(matches!(s.tasks().get(later.id).await, Err(Error::NotFound { .. })));
    assert_eq!(
        s.tasks().get(kept.id).await.unwrap().tags,
        vec!["home".to_string()],
        "the deleted tag and its link are back"
    );
    let names: Vec<String> = s.tags().list().await.unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, vec!["home".to_string()], "the tag created later is gone");
    let reasons =
        audit::log(&t.db, &LogFilter { user: Some(u.0), limit: Some(1000), ..Default::default() }).await.unwrap();
    assert!(
        reasons.items.iter().filter(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("restore of user"))).count()
            >= 5
    );
}

/// What an attacker holding the owner login (not a superuser, as on Neon) can do to the log: as
/// the log's owner, switch its append-only guard off, change it, and switch the guard back on, all
/// in one transaction.
async fn tamper(t: &TestDb, sql: &str, victim: i64) {
    let mut conn = t.db.admin().connection().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.batch_execute("alter table audit.log disable trigger user").await.unwrap();
    tx.execute(sql, &[&victim]).await.unwrap();
    tx.batch_execute("alter table audit.log enable trigger user").await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_tasks_history_and_a_users_activity_read_in_the_apps_change_types() {
    use serde_json::json;
    use todo_db::audit::history::{self, ChangeType::*};
    let t = TestDb::new().await;
    let (u, other) = (t.user("hist@example.com").await, t.user("other@example.com").await);
    let s = t.db.user(u);
    let task = s.tasks().create(&NewTask::new("draft").unwrap()).await.unwrap();
    let patch = TaskPatch {
        title: Some(TaskTitle::parse("final").unwrap()),
        priority: Some(Priority::High),
        due_at: Some(Some(time::OffsetDateTime::now_utc())),
        ..Default::default()
    };
    s.tasks().update(task.id, &patch).await.unwrap();
    s.tasks().update(task.id, &TaskPatch { status: Some(TaskStatus::InProgress), ..Default::default() }).await.unwrap();
    s.tasks().complete(task.id).await.unwrap();
    s.tasks().reopen(task.id).await.unwrap();
    s.tasks().tag(task.id, &[TagName::parse("Home").unwrap()]).await.unwrap();
    s.tasks().untag(task.id, &TagName::parse("home").unwrap()).await.unwrap();
    s.tasks().tag(task.id, &[TagName::parse("Home").unwrap()]).await.unwrap();
    s.tasks().delete(task.id).await.unwrap();
    s.tasks().restore(task.id).await.unwrap();
    let h = history::task_history(&s, task.id, 100).await.unwrap();
    // Newest first; the changes of one write in a fixed order (completion, priority, status, due
    // date, then title and description).
    let kinds: Vec<_> = h.iter().map(|c| c.change_type).collect();
    assert_eq!(
        kinds,
        [
            TaskRestored,
            TaskDeleted,
            TagAdded,
            TagRemoved,
            TagAdded,
            TaskUncompleted,
            TaskStatusChanged,
            TaskCompleted,
            TaskStatusChanged,
            TaskStatusChanged,
            TaskPriorityChanged,
            TaskDueDateChanged,
            TaskUpdated,
            TaskCreated,
        ]
    );
    let edit = h.iter().find(|c| c.change_type == TaskUpdated).unwrap();
    assert_eq!(edit.old_value.as_ref().unwrap()["title"], "draft");
    assert_eq!(edit.new_value.as_ref().unwrap()["title"], "final");
    let pri = h.iter().find(|c| c.change_type == TaskPriorityChanged).unwrap();
    assert_eq!((pri.old_value.clone().unwrap(), pri.new_value.clone().unwrap()), (json!("medium"), json!("high")));
    let added = h.iter().find(|c| c.change_type == TagAdded).unwrap();
    assert_eq!(added.new_value.as_ref().unwrap()["name"], "Home");
    // Purged: a deletion for good.
    s.tasks().delete(task.id).await.unwrap();
    s.tasks().purge(task.id).await.unwrap();
    let h = history::task_history(&s, task.id, 100).await.unwrap();
    assert_eq!(h[0].change_type, TaskDeleted);
    assert_eq!(h[0].new_value, Some(json!({"purged": true})));
    // A user's activity and its statistics; another user sees none of it.
    let activity = history::user_activity(&s, 1000).await.unwrap();
    assert_eq!(activity.len(), h.len());
    let stats = history::statistics(&s).await.unwrap();
    assert_eq!(stats[&TaskStatusChanged], 3);
    assert_eq!(stats[&TaskDeleted], 3, "trashed twice, then purged");
    assert_eq!(stats[&TagAdded], 2);
    let theirs = t.db.user(other);
    assert!(history::task_history(&theirs, task.id, 100).await.unwrap().is_empty());
    assert!(history::statistics(&theirs).await.unwrap().is_empty());

    // The original's activity reports, typed: per change type over a window, and per task.
    let second = s.tasks().create(&NewTask::new("second").unwrap()).await.unwrap();
    s.tasks().complete(second.id).await.unwrap();
    let recent = history::recent_user_activity(&s, 30).await.unwrap();
    let count = |k| recent.iter().find(|a| a.change_type == k).map(|a| a.change_count);
    assert_eq!((count(TaskStatusChanged), count(TaskDeleted), count(TaskCreated)), (Some(4), Some(3), Some(2)));
    assert!(recent.windows(2).all(|w| w[0].change_count >= w[1].change_count), "most frequent first");
    assert!(recent.iter().all(|a| a.user_id == u.0 && a.email == "hist@example.com"));
    assert_eq!(recent.iter().map(|a| a.change_count).sum::<u64>(), stats.values().sum::<u64>() + 3);
    assert!(matches!(
        history::recent_user_activity(&s, 0).await,
        Err(todo_db::Error::Validation { field: "days", .. })
    ));
    let summary = history::task_change_summary(&s, 10).await.unwrap();
    assert_eq!(summary.iter().map(|t| t.task_id).collect::<Vec<_>>(), vec![second.id.0, task.id.0], "latest first");
    assert_eq!(summary[0].title.as_deref(), Some("second"));
    assert_eq!(summary[0].change_types, [TaskCreated, TaskCompleted, TaskStatusChanged]);
    assert_eq!(summary[0].total_changes, 3);
    assert_eq!(summary[1].title, None, "purged: no title left");
    assert_eq!(summary[1].total_changes, h.len() as u64);
    assert_eq!(summary[1].change_types[0], TaskCreated);
    assert!(summary[1].first_change < summary[1].last_change);
    assert_eq!(history::task_change_summary(&s, 1).await.unwrap().len(), 1);
    assert!(history::task_change_summary(&theirs, 10).await.unwrap().is_empty());
    assert!(history::recent_user_activity(&theirs, 30).await.unwrap().is_empty());
}
