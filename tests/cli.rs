//! The CLI as a person or script uses it, through assert_cmd.

use todo_db_testkit::harness as common;

use assert_cmd::Command;
use common::TestDb;
use predicates::prelude::*;

fn todo_db(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("todo-db").unwrap();
    cmd.env("DATABASE_URL", url).env_remove("DATABASE_DIRECT_URL").env("TODO_DB_CONNECT_RETRY", "1s");
    cmd
}

#[tokio::test]
async fn init_is_idempotent_and_verify_json_lists_every_component() {
    let t = TestDb::new().await;
    todo_db(&t.url)
        .args(["init", "--demo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("demo account alice@example.com password "));
    todo_db(&t.url).arg("init").assert().success().stdout(predicate::str::contains("migrations: up to date"));
    let out = todo_db(&t.url).args(["verify", "--json"]).assert().success().get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], true);
    let comps = report["components"].as_array().unwrap();
    for kind in ["connection", "server", "migration", "role", "table", "rls", "constraint", "index", "trigger"] {
        assert!(comps.iter().any(|c| c["kind"] == kind && c["status"] == "ok"), "{kind} reported");
    }
    let n = t.db.admin().query("select count(*) from users", &[]).await.unwrap();
    assert_eq!(n[0].get::<_, i64>(0), 3, "demo users loaded once");
}

#[tokio::test]
async fn verify_fails_and_names_a_dropped_index() {
    let t = TestDb::new().await;
    t.db.admin().batch("drop index tasks_user_due_idx").await.unwrap();
    let out = todo_db(&t.url).args(["verify", "--json"]).assert().code(1).get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], false);
    let failed: Vec<&str> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["tasks_user_due_idx"]);
    todo_db(&t.url)
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("tasks_user_due_idx").and(predicate::str::contains("FAIL")));
}

#[tokio::test]
async fn verify_reports_disabled_rls_and_a_modified_migration() {
    let t = TestDb::new().await;
    t.db.admin()
        .batch("alter table tags no force row level security; update todo_db_migrations set checksum = 'x'")
        .await
        .unwrap();
    todo_db(&t.url).arg("verify").assert().code(1).stdout(
        predicate::str::contains("enabled but not forced")
            .and(predicate::str::contains("modified after it was applied")),
    );
    todo_db(&t.url)
        .args(["migrate", "--apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was changed after it was applied"));
}

#[tokio::test]
async fn each_migration_commits_whole_on_its_own_and_a_failure_names_its_file() {
    let t = TestDb::empty().await;
    // Migration 0004 creates a view named report_today: a table of that name makes it fail.
    t.db.admin().batch("create table report_today (x int)").await.unwrap();
    let mut conn = t.db.admin().connection().await.unwrap();
    let err = todo_db::schema::migrate(&mut conn).await.unwrap_err().to_string();
    assert!(err.contains("0004_views failed") && err.contains("report_today"), "{err}");
    // 0001-0003 are applied and committed, each whole; nothing of 0004 is left.
    let rows = conn.query("select version from todo_db_migrations order by version", &[]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), vec![1, 2, 3]);
    let left: bool =
        conn.query_one("select to_regprocedure('public.report_time_zone()') is not null", &[]).await.unwrap().get(0);
    assert!(!left, "0004's first statement was rolled back with the rest of it");
    assert!(conn.query_one("select to_regclass('audit.log') is not null", &[]).await.unwrap().get::<_, bool>(0));
    // Once the obstacle is gone, the rest applies.
    conn.batch_execute("drop table report_today").await.unwrap();
    let applied = todo_db::schema::migrate(&mut conn).await.unwrap();
    let rest: Vec<i32> = todo_db::schema::MIGRATIONS.iter().map(|m| m.version).filter(|&v| v >= 4).collect();
    assert_eq!(applied.iter().map(|a| a.version).collect::<Vec<_>>(), rest);
}

#[tokio::test]
async fn a_database_of_folded_development_migrations_is_refused_clearly() {
    let t = TestDb::new().await;
    t.db.admin()
        .batch("insert into todo_db_migrations (version, name, checksum) values (9, 'views_per_user', 'x')")
        .await
        .unwrap();
    todo_db(&t.url).args(["migrate", "--apply"]).assert().code(1).stderr(
        predicate::str::contains("0009_views_per_user").and(predicate::str::contains("folded into 0003_audit")),
    );
}

#[tokio::test]
async fn reset_needs_yes_off_a_terminal_offers_a_dry_run_and_recreates_everything() {
    let t = TestDb::new().await;
    let u = t.user("gone@example.com").await;
    t.db.user(u).tasks().create(&todo_db::model::NewTask::new("gone").unwrap()).await.unwrap();
    todo_db(&t.url).arg("reset").assert().failure().stderr(predicate::str::contains("--yes"));
    todo_db(&t.url).args(["reset", "--dry-run"]).assert().success().stdout(predicate::str::contains("table tasks"));
    assert_eq!(
        t.db.admin().query("select count(*) from tasks", &[]).await.unwrap()[0].get::<_, i64>(0),
        1,
        "dry run changed nothing"
    );
    todo_db(&t.url).args(["reset", "--yes"]).assert().success();
    // The pool's cached statements refer to dropped tables: use a fresh connection.
    let fresh = todo_db::Db::connect_url(&t.url, &common::settings()).await.unwrap();
    assert_eq!(fresh.admin().query("select count(*) from tasks", &[]).await.unwrap()[0].get::<_, i64>(0), 0);
    todo_db(&t.url).arg("verify").assert().success();
}

#[tokio::test]
async fn cli_errors_never_print_the_password() {
    let url = "postgresql://nobody:Pa55-w0rd-hidden@127.0.0.1:1/x?sslmode=disable";
    let out = todo_db(url).arg("verify").assert().failure().get_output().clone();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("127.0.0.1:1/x"), "the error names host, port and database: {all}");
    assert!(!all.contains("Pa55-w0rd-hidden"), "{all}");
}

#[test]
fn help_explains_every_command() {
    let out = Command::cargo_bin("todo-db").unwrap().arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for cmd in ["init", "verify", "reset", "migrate", "local"] {
        assert!(help.contains(cmd), "{cmd} in --help");
    }
    // A command's own flags come first; the connection options under a heading of their own.
    let out = Command::cargo_bin("todo-db").unwrap().args(["audit", "log", "--help"]).assert().success();
    let help = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let at = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s} in audit log --help:\n{help}"));
    assert!(at("--record") < at("Connection options") && at("Connection options") < at("--pool-size"), "{help}");
    assert!(at("--limit") < at("Connection options"), "{help}");
}

#[tokio::test]
async fn security_check_passes_then_names_the_table_whose_rls_is_off() {
    let t = TestDb::new().await;
    todo_db(&t.url).args(["security", "check"]).assert().success().stdout(predicate::str::contains("all ok"));
    t.db.admin().batch("alter table api_tokens disable row level security").await.unwrap();
    let out = todo_db(&t.url).args(["security", "check", "--json"]).assert().code(1).get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let bad: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    assert_eq!(bad, vec!["table api_tokens"]);
    todo_db(&t.url)
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("alter table api_tokens enable row level security"));
}

#[test]
fn the_embedded_cluster_starts_reports_and_stops() {
    let home = std::env::temp_dir().join(format!("todo-db-local-{}", std::process::id()));
    let run = |args: &[&str]| {
        let mut cmd = Command::cargo_bin("todo-db").unwrap();
        cmd.env_remove("DATABASE_URL").env("TODO_DB_HOME", &home).args(args);
        cmd
    };
    run(&["local", "status"]).assert().code(3).stdout(predicate::str::contains("initialized: false"));
    run(&["local", "start"]).assert().success().stdout(predicate::str::contains("running on 127.0.0.1:"));
    let url = String::from_utf8(run(&["local", "url"]).assert().success().get_output().stdout.clone()).unwrap();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    run(&["init"]).assert().success().stdout(predicate::str::contains("created database todo"));
    let out = run(&["local", "status", "--json"]).assert().success().get_output().stdout.clone();
    let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["running"], true);
    // It runs on the version asked for (TODO_DB_PG_BIN, inherited from scripts/test).
    if let Ok(want) = std::env::var("TODO_DB_TEST_PG_MAJOR") {
        assert_eq!(status["version"].to_string(), want, "{status}");
    }
    assert!(status["version"].as_u64().is_some_and(|v| (15..=18).contains(&v)), "{status}");
    run(&["local", "stop"]).assert().success().stdout(predicate::str::contains("stopped"));
    run(&["local", "status"]).assert().code(3).stdout(predicate::str::contains("running:     false"));
    std::fs::remove_dir_all(&home).unwrap();
}

/// A cluster made with one major version is not started on the binaries of another (the data
/// directory would not load): the error names both versions and TODO_DB_PG_BIN.
#[test]
fn a_cluster_of_another_version_than_the_binaries_is_refused_naming_todo_db_pg_bin() {
    let home = std::env::temp_dir().join(format!("todo-db-other-version-{}", std::process::id()));
    std::fs::create_dir_all(home.join("data")).unwrap();
    std::fs::write(home.join("data/PG_VERSION"), "14\n").unwrap();
    std::fs::write(home.join("superuser-password"), "x").unwrap();
    let out = Command::cargo_bin("todo-db")
        .unwrap()
        .env_remove("DATABASE_URL")
        .env("TODO_DB_HOME", &home)
        .args(["local", "start"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is PostgreSQL 14") && err.contains("TODO_DB_PG_BIN"), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn views_are_listed_and_shown_as_json_and_a_wrong_name_is_a_clear_error() {
    let t = TestDb::new().await;
    todo_db(&t.url)
        .args(["views", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("user_productivity_metrics"));
    let u = t.user("cliview@example.com").await;
    t.db.user(u).tasks().create(&todo_db::model::NewTask::new("one").unwrap()).await.unwrap();
    let out = todo_db(&t.url)
        .args(["views", "show", "user_task_summary", "--user", &u.to_string(), "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["total_tasks"], 1);
    assert_eq!(rows[0]["user_id"], u.to_string());
    // An activity report reads one user's history: --user is required.
    let out = todo_db(&t.url)
        .args(["views", "show", "task_change_summary", "--user", &u.to_string(), "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((rows[0]["title"].as_str(), rows[0]["total_changes"].as_u64()), (Some("one"), Some(1)));
    todo_db(&t.url)
        .args(["views", "show", "recent_user_activity"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--user"));
    todo_db(&t.url)
        .args(["views", "show", "no_such_view"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid view").and(predicate::str::contains("tasks_with_tags")));
}

#[test]
fn environment_values_that_are_not_utf8_are_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"postgresql://u:secret\xff\xfe@h/db");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("todo-db"))
        .env("DATABASE_URL", bad)
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL is not valid UTF-8"), "{err}");
    assert!(!err.contains("secret"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("todo-db"))
        .env("TODO_DB_POOL_SIZE", std::ffi::OsStr::from_bytes(b"\xff"))
        .arg("verify")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("TODO_DB_POOL_SIZE is not valid UTF-8"));
}

/// Day one on Neon: a fresh cluster whose only login is Neon's kind of owner (not a superuser;
/// CREATEDB, CREATEROLE, BYPASSRLS, in `neon_superuser`), which made the app login and so
/// `todo_app` itself. `init` sets everything up as that login, on every version (from 16 on, a
/// role it created is granted back to it with ADMIN OPTION only: it grants itself SET and
/// INHERIT), and `verify` is all ok.
#[tokio::test]
async fn init_as_neons_owner_role_on_a_fresh_cluster_then_verify_is_all_ok() {
    let home = std::env::temp_dir().join(format!("todo-db-day-one-{}", std::process::id()));
    let cluster = todo_db_ops::local::Cluster::new(&home);
    let running = cluster.ensure_running().await.unwrap();
    let url = running.url();
    todo_db(&url).arg("init").assert().success().stdout(predicate::str::contains("verify"));
    let out = todo_db(&url).args(["verify", "--json"]).assert().success().get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let db = todo_db::Db::connect_url(&url, &common::settings()).await.unwrap();
    let major = common::server_major(&db).await;
    let who: bool =
        db.admin().query("select rolsuper from pg_roles where rolname = current_user", &[]).await.unwrap()[0].get(0);
    assert!(!who, "init ran as a login that is not a superuser");
    for role in ["todo_owner", "todo_app"] {
        let rows = db
            .admin()
            .query("select pg_has_role(current_user, $1, 'usage'), pg_has_role(current_user, $1, 'member')", &[&role])
            .await
            .unwrap();
        assert!(rows[0].get::<_, bool>(0) && rows[0].get::<_, bool>(1), "the login inherits and may act as {role}");
    }
    // The app login works under RLS as a member of todo_app only.
    let mut s = common::settings();
    s.app_url = running.app_url().map(todo_db::config::Secret::new);
    let app = todo_db::Db::connect_url(&url, &s).await.unwrap();
    let u = app.admin().users().create(&todo_db::model::NewUser::new("day1@example.com", "D").unwrap()).await.unwrap();
    app.user(u.id).tasks().create(&todo_db::model::NewTask::new("first").unwrap()).await.unwrap();
    assert_eq!(app.app_login(), Some(todo_db_ops::local::APP_LOGIN));
    app.close();

    // A second owner-like login that did not create the roles: on 16 and later it may not grant
    // itself SET and INHERIT on them, and `init` says exactly which grant to ask for; on 15 its
    // CREATEROLE lets it take the membership.
    let superuser =
        todo_db::Db::connect_url(&running.superuser_url_for("postgres"), &common::settings()).await.unwrap();
    for sql in [
        "create role neondb_owner login password 'second-owner-pw' createdb createrole bypassrls in role neon_superuser",
        "create database neondb owner neondb_owner",
    ] {
        superuser.admin().batch(sql).await.unwrap();
    }
    superuser.close();
    let mut second = url::Url::parse(&running.url_for("neondb")).unwrap();
    second.set_username("neondb_owner").unwrap();
    second.set_password(Some("second-owner-pw")).unwrap();
    let out = todo_db(second.as_str()).arg("init").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if major >= 16 {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("grant todo_owner to neondb_owner with set true, inherit true"), "{err}");
        assert!(!err.contains("second-owner-pw"), "no password in the error");
    } else {
        assert!(out.status.success(), "{err}");
    }
    db.close();
    cluster.stop().unwrap();
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn purge_trash_removes_what_has_been_in_the_trash_longer_than_asked() {
    let t = TestDb::new().await;
    let u = t.user("trash@example.com").await;
    let task = t.db.user(u).tasks().create(&todo_db::model::NewTask::new("old").unwrap()).await.unwrap();
    t.db.user(u).tasks().delete(task.id).await.unwrap();
    t.db.admin().batch("update task_trash set deleted_at = now() - interval '40 days'").await.unwrap();
    todo_db(&t.url)
        .args(["purge-trash", "--older-than", "60d"])
        .assert()
        .success()
        .stdout(predicate::str::contains("purged 0 tasks that had been in the trash longer than 60d"));
    todo_db(&t.url)
        .args(["purge-trash", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 tasks have been in the trash longer than 30d"));
    assert_eq!(t.count("select count(*) from task_trash").await, 1);
    todo_db(&t.url).arg("purge-trash").assert().success().stdout(predicate::str::contains("purged 1 tasks"));
    assert_eq!(t.count("select count(*) from task_trash").await, 0);
    todo_db(&t.url)
        .args(["purge-trash", "--older-than", "soon"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--older-than"));
}
