//! Local branches, schema diff and migration rehearsal, against the real server.

use todo_db_testkit::harness as common;

use std::time::Duration;

use assert_cmd::Command;
use common::TestDb;
use predicates::prelude::*;
use todo_db::model::NewUser;
use todo_db::Db;
use todo_db_ops::branch::{diff, local::Local, CreateOptions, Provider};

fn quick() -> CreateOptions {
    CreateOptions { wait: Duration::from_secs(5), ..Default::default() }
}

async fn connect(p: &Local, name: &str) -> Db {
    Db::connect_url(&p.url(name, false).await.unwrap(), &common::settings()).await.unwrap()
}

async fn emails(db: &Db) -> Vec<String> {
    db.admin().query("select email from users order by email", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

async fn add_user(db: &Db, email: &str) {
    db.admin().users().create(&NewUser::new(email, "B").unwrap()).await.unwrap();
}

#[tokio::test]
async fn branches_copy_isolate_reset_protect_and_delete() {
    let t = TestDb::new().await;
    add_user(&t.db, "a@example.com").await;
    t.db.close();
    let p = Local::new(&t.url, &common::settings()).unwrap();

    let dev = p.create("dev", &quick()).await.unwrap();
    assert_eq!(dev.parent.as_deref(), Some("main"));
    let list = p.list().await.unwrap();
    assert_eq!(list.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["main", "dev"]);

    // Writes on the branch and on main do not cross.
    let on_dev = connect(&p, "dev").await;
    assert_eq!(emails(&on_dev).await, ["a@example.com"]);
    add_user(&on_dev, "b@example.com").await;
    let on_main = connect(&p, "main").await;
    add_user(&on_main, "c@example.com").await;
    assert_eq!(emails(&on_main).await, ["a@example.com", "c@example.com"]);
    assert_eq!(emails(&on_dev).await, ["a@example.com", "b@example.com"]);

    // Reset: dev becomes main as it is now.
    on_dev.close();
    on_main.close();
    p.reset("dev", &quick()).await.unwrap();
    let on_dev = connect(&p, "dev").await;
    assert_eq!(emails(&on_dev).await, ["a@example.com", "c@example.com"]);
    on_dev.close();

    // A child blocks deleting its parent; protection blocks delete and reset.
    p.create("feat", &CreateOptions { from: Some("dev".into()), ..quick() }).await.unwrap();
    let err = p.delete("dev", false).await.unwrap_err();
    assert!(err.to_string().contains("feat"), "{err}");
    p.protect("feat", true).await.unwrap();
    assert!(p.delete("feat", false).await.unwrap_err().to_string().contains("protected"));
    assert!(p.reset("feat", &quick()).await.unwrap_err().to_string().contains("protected"));
    assert!(p.list().await.unwrap().iter().any(|b| b.name == "feat" && b.protected));
    p.protect("feat", false).await.unwrap();
    p.delete("feat", false).await.unwrap();
    p.delete("dev", false).await.unwrap();
    assert!(p.delete("main", false).await.is_err(), "main cannot be deleted");
    assert_eq!(p.list().await.unwrap().len(), 1);
    // Bad names are refused, naming the rule.
    assert!(p.create("Bad Name", &quick()).await.unwrap_err().to_string().contains("a-z"));
}

#[tokio::test]
async fn a_busy_parent_is_named_then_waited_for_or_forced() {
    let t = TestDb::new().await;
    let p = Local::new(&t.url, &common::settings()).unwrap();
    // t.db still holds a session on main.
    let _busy = t.db.admin().connection().await.unwrap();
    let short = CreateOptions { wait: Duration::from_millis(300), ..Default::default() };
    let err = p.create("busy", &short).await.unwrap_err();
    assert!(err.to_string().contains("in use by") && err.to_string().contains("pid"), "{err}");
    assert!(!p.list().await.unwrap().iter().any(|b| b.name == "busy"), "no half-made branch");
    let forced = CreateOptions { force: true, ..short };
    p.create("busy", &forced).await.unwrap();
    p.delete("busy", true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_names_each_kind_of_change_and_finds_identical_branches_identical() {
    let t = TestDb::new().await;
    t.db.close();
    let p = Local::new(&t.url, &common::settings()).unwrap();
    p.create("changed", &quick()).await.unwrap();
    let (main, changed) = (connect(&p, "main").await, connect(&p, "changed").await);
    assert!(diff::compare(&diff::snapshot(&main).await.unwrap(), &diff::snapshot(&changed).await.unwrap()).is_empty());
    changed
        .admin()
        .batch(
            "alter table tasks add column estimate int; \
             alter table users alter column display_name set default 'anon'; \
             drop index tasks_user_due_idx; \
             alter table tags disable row level security; \
             create or replace view overdue_tasks with (security_invoker = true) as \
               select t.id, t.user_id, t.title, t.description, t.priority, t.status, t.due_at as due_date, \
               t.completed, t.created_at, t.updated_at, u.email as user_email, u.first_name as user_first_name, \
               u.last_name as user_last_name, extract(day from now() - t.due_at)::int as days_overdue, \
               now() - t.due_at as overdue_by \
               from tasks t join users u on u.id = t.user_id where not t.completed and t.due_at < now() - interval '1 hour'",
        )
        .await
        .unwrap();
    let changes = diff::compare(&diff::snapshot(&main).await.unwrap(), &diff::snapshot(&changed).await.unwrap());
    let found = |kind: &str, object: &str, change: &str| {
        changes.iter().any(|c| c.kind == kind && c.object == object && c.change == change)
    };
    assert!(found("column", "public.tasks.estimate", "added"), "{changes:#?}");
    assert!(found("column", "public.users.display_name", "changed"));
    assert!(found("index", "public.tasks_user_due_idx", "removed"));
    assert!(found("rls", "public.tags", "changed"));
    assert!(found("view", "public.overdue_tasks", "changed"));
    assert_eq!(changes.len(), 5, "{}", diff::render(&changes));
    main.close();
    changed.close();
    // The CLI: exit 1 and a readable diff; exit 0 for identical branches.
    let cli = || {
        let mut c = Command::cargo_bin("todo-db").unwrap();
        c.env("DATABASE_URL", &t.url).env_remove("DATABASE_DIRECT_URL").env_remove("NEON_API_KEY");
        c
    };
    cli().args(["branch", "diff", "main", "changed"]).assert().code(1).stdout(
        predicate::str::contains("- index public.tasks_user_due_idx").and(predicate::str::contains("5 difference(s)")),
    );
    cli().args(["branch", "diff", "main", "main"]).assert().success().stdout(predicate::str::contains("identical"));
    // Deleting asks first, as `reset` does: off a terminal it needs --yes; --dry-run names what
    // would go and changes nothing.
    cli()
        .args(["branch", "delete", "changed"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("needs confirmation: pass --yes"));
    cli()
        .args(["branch", "delete", "changed", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would delete branch changed"));
    assert!(p.list().await.unwrap().iter().any(|b| b.name == "changed"), "still there");
    cli().args(["branch", "delete", "changed", "--yes", "--force"]).assert().success();
    assert!(!p.list().await.unwrap().iter().any(|b| b.name == "changed"), "deleted");
}

// Multi-threaded: the CLI runs as a blocking child process, and closed pools must still get to
// end their sessions (connection tasks run on the runtime) so the target is idle to branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_check_rehearses_on_a_throwaway_branch_and_never_touches_the_target() {
    let t = TestDb::new().await;
    let ledger = |db: &Db| {
        let db = db.clone();
        async move { db.admin().query("select count(*) from todo_db_migrations", &[]).await.unwrap()[0].get::<_, i64>(0) }
    };
    // A broken pending migration: 0005 marked unapplied while its table exists.
    t.db.admin().batch("delete from todo_db_migrations where version = 5").await.unwrap();
    let before = ledger(&t.db).await;
    t.db.close();
    let cli = || {
        let mut c = Command::cargo_bin("todo-db").unwrap();
        c.env("DATABASE_URL", &t.url).env_remove("DATABASE_DIRECT_URL").env_remove("NEON_API_KEY");
        c
    };
    cli().args(["migrate", "--check"]).assert().code(1).stdout(
        predicate::str::contains("0005_settings failed")
            .and(predicate::str::contains("relation \"todo_db_settings\" already exists"))
            .and(predicate::str::contains("target is untouched")),
    );
    // --apply rehearses first, so it refuses too.
    cli().args(["migrate", "--apply"]).assert().code(1);
    let db = Db::connect_url(&t.url, &common::settings()).await.unwrap();
    assert_eq!(ledger(&db).await, before, "the target's ledger is unchanged");
    // A good pending migration: the rehearsal shows its schema diff and timing.
    db.admin().batch("drop table todo_db_settings").await.unwrap();
    db.close();
    cli().args(["migrate", "--check"]).assert().success().stdout(
        predicate::str::contains("applied 0005_settings in")
            .and(predicate::str::contains("+ table public.todo_db_settings")),
    );
    let db = Db::connect_url(&t.url, &common::settings()).await.unwrap();
    assert_eq!(ledger(&db).await, before, "--check applies nothing");
    db.close();
    cli()
        .args(["migrate", "--apply"])
        .assert()
        .success()
        .stdout(predicate::str::contains("applied migration 0005_settings"));
    let db = Db::connect_url(&t.url, &common::settings()).await.unwrap();
    assert_eq!(ledger(&db).await, before + 1);
    let p = Local::new(&t.url, &common::settings()).unwrap();
    assert_eq!(p.list().await.unwrap().len(), 1, "no rehearsal branch left behind");
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_branch() {
    let t = TestDb::new().await;
    add_user(&t.db, "kept@example.com").await;
    let dir = std::env::temp_dir().join(format!("todo-db-branch-backup-{}", std::process::id()));
    let out = dir.join("b");
    todo_db_ops::backup::create(&t.db, &out, &Default::default(), Default::default()).await.unwrap();
    t.db.admin().batch("delete from users").await.unwrap();
    t.db.close();
    let p = Local::new(&t.url, &common::settings()).unwrap();
    p.create("restored", &quick()).await.unwrap();
    Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", &t.url)
        .env_remove("DATABASE_DIRECT_URL")
        .env_remove("NEON_API_KEY")
        .args(["backup", "restore", out.to_str().unwrap(), "--branch", "restored", "--replace"])
        .assert()
        .success();
    let on_branch = connect(&p, "restored").await;
    assert_eq!(emails(&on_branch).await, ["kept@example.com"]);
    let on_main = connect(&p, "main").await;
    assert!(emails(&on_main).await.is_empty(), "main is untouched");
    on_branch.close();
    on_main.close();
    p.delete("restored", true).await.unwrap();
    std::fs::remove_dir_all(dir).ok();
}
