//! Backups: round trip equality, offline verification, all-or-nothing restore, consistency under
//! concurrent writes, and the CLI.

use todo_db_testkit::harness as common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use common::TestDb;
use predicates::prelude::*;
use todo_db::model::{NewTask, TagName, TaskPatch, TaskTitle};
use todo_db::schema;
use todo_db_ops::backup::{self, Progress};
use todo_db_ops::seed::{self, SeedSpec, UserFixture};

fn workers(n: usize) -> backup::CreateOptions {
    backup::CreateOptions { workers: n, key: None }
}

fn replace() -> backup::RestoreOptions {
    backup::RestoreOptions { replace: true, key: None }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("todo-db-test-backup-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn checksums(t: &TestDb) -> Vec<schema::TableChecksum> {
    schema::checksum(&mut t.db.admin().connection().await.unwrap()).await.unwrap()
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    t.count(sql).await
}

/// Seeded data plus audited activity and a seal, so every table has rows.
async fn populated() -> TestDb {
    let t = TestDb::new().await;
    seed::load(&t.db, &SeedSpec::new(30, 20).seed(11), Arc::default()).await.unwrap();
    let f = UserFixture::new("bk@example.com").tasks("chore", 3).create(&t.db).await.unwrap();
    let scope = t.db.user(f.user);
    let patch = TaskPatch { title: Some(TaskTitle::parse("renamed").unwrap()), ..Default::default() };
    scope.tasks().update(f.tasks[0], &patch).await.unwrap();
    scope.tasks().tag(f.tasks[1], &[TagName::parse("home").unwrap()]).await.unwrap();
    scope.tasks().tag(f.tasks[2], &[TagName::parse("home").unwrap()]).await.unwrap();
    scope.tasks().delete(f.tasks[2]).await.unwrap(); // in the trash, with its tag's id
    let dark = todo_db::model::PreferencesPatch { theme: Some(todo_db::model::Theme::Dark), ..Default::default() };
    scope.profile().set_preferences(&dark).await.unwrap();
    let hour = std::time::Duration::from_secs(3600);
    todo_db::security::tokens::issue(&scope, "cli", hour, &Default::default()).await.unwrap();
    t
}

/// Catalog facts a restore must reproduce: constraints, policies, grants, RLS flags.
async fn catalog(t: &TestDb) -> Vec<String> {
    let rows = t
        .db
        .admin()
        .query(
            "select 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
               from pg_constraint where connamespace in ('public'::regnamespace, 'audit'::regnamespace) \
             union all select 'index ' || indexrelid::regclass || ' ' || pg_get_indexdef(indexrelid) from pg_index \
               where indrelid in (select oid from pg_class where relnamespace in ('public'::regnamespace, 'audit'::regnamespace)) \
             union all select 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' ' \
               || coalesce(qual, '') || ' ' || coalesce(with_check, '') from pg_policies \
             union all select 'grant ' || table_schema || '.' || table_name || ' ' || grantee || ' ' || privilege_type \
               from information_schema.role_table_grants where grantee in ('todo_app', 'todo_owner') \
             union all select 'rls ' || oid::regclass || ' ' || relrowsecurity || ' ' || relforcerowsecurity from pg_class \
               where relnamespace in ('public'::regnamespace, 'audit'::regnamespace) and relkind = 'r' \
             union all select 'trigger ' || tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text from pg_trigger where not tgisinternal \
             order by 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_restored_backup_equals_its_source_row_for_row_with_the_same_keys_policies_and_grants() {
    let (source, target) = tokio::join!(populated(), TestDb::new());
    let dir = scratch();
    let out = dir.join("b1");
    let progress = Arc::new(Progress::default());
    let manifest = backup::create(&source.db, &out, &workers(3), progress.clone()).await.unwrap();
    assert!(progress.bytes() > 0);
    assert!(manifest.audit_seal.is_some(), "the audit log was sealed first");
    assert_eq!(manifest.tables.len(), backup::TABLES.len());
    assert!(!manifest.source.contains('@') && !manifest.source.contains("://"), "{}", manifest.source);
    let (_, damage) = backup::verify(&out, None).unwrap();
    assert!(damage.is_empty(), "{damage:?}");

    let report = backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap();
    assert_eq!(report.rows, manifest.rows());
    let (a, b) = (checksums(&source).await, checksums(&target).await);
    assert_eq!(a, b, "every table, the audit log included, equal row for row");
    assert!(a.iter().all(|s| s.rows > 0 || s.table == "audit.prune"), "{a:?}");
    assert_eq!(catalog(&source).await, catalog(&target).await);
    let v = todo_db_ops::verify::verify(&target.db).await.unwrap();
    assert!(v.ok, "{v:?}");
    // The restore wrote no audit entries of its own, the seals still verify, and new work is
    // audited with ids after the restored ones.
    assert_eq!(
        count(&source, "select count(*) from audit.log").await,
        count(&target, "select count(*) from audit.log").await
    );
    assert!(todo_db::audit::verify(&target.db).await.unwrap().ok);
    let max_before = count(&target, "select max(id) from audit.log").await;
    let user = target.db.admin().users().find_by_email("bk@example.com").await.unwrap().id;
    target.db.user(user).tasks().create(&NewTask::new("after restore").unwrap()).await.unwrap();
    assert!(count(&target, "select max(id) from audit.log").await > max_before);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn verify_names_the_damaged_table_and_restore_refuses_it_leaving_the_target_untouched() {
    let (source, target) = tokio::join!(populated(), TestDb::new());
    let dir = scratch();
    let out = dir.join("b");
    backup::create(&source.db, &out, &workers(2), Arc::default()).await.unwrap();
    // One flipped byte in the middle of the tasks file.
    let tasks = out.join("tasks.copy.zst");
    let mut bytes = std::fs::read(&tasks).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&tasks, &bytes).unwrap();
    let (_, damage) = backup::verify(&out, None).unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0].table, "tasks");
    let err = backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("tasks"), "{err}");
    assert_eq!(count(&target, "select count(*) from users").await, 0, "nothing of the load was kept");
    assert!(todo_db_ops::verify::verify(&target.db).await.unwrap().ok, "keys and indexes are back");
    // A truncated file is named as such.
    bytes[mid] ^= 0x40;
    std::fs::write(&tasks, &bytes[..bytes.len() - 100]).unwrap();
    let (_, damage) = backup::verify(&out, None).unwrap();
    assert!(damage[0].reason.contains("truncated"), "{damage:?}");
    // A missing manifest is a clear error.
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let err = backup::verify(&out, None).unwrap_err();
    assert!(err.to_string().contains("no readable manifest"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_restore_killed_halfway_leaves_the_target_empty_and_usable() {
    let (source, target) = tokio::join!(TestDb::new(), TestDb::new());
    seed::load(&source.db, &SeedSpec::new(2000, 100).seed(3), Arc::default()).await.unwrap();
    let dir = scratch();
    let out = dir.join("big");
    backup::create(&source.db, &out, &workers(2), Arc::default()).await.unwrap();
    let progress = Arc::new(Progress::default());
    let restore = tokio::spawn({
        let (db, out, progress) = (target.db.clone(), out.clone(), progress.clone());
        async move { backup::restore(&db, &out, &Default::default(), progress).await }
    });
    while progress.bytes() < 4_000_000 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(!restore.is_finished(), "the restore ended before it could be interrupted");
    }
    let killed = target.terminate_copies().await;
    assert_eq!(killed, 1);
    assert!(restore.await.unwrap().is_err());
    for table in backup::TABLES {
        assert_eq!(count(&target, &format!("select count(*) from {table}")).await, 0, "{table} is empty");
    }
    assert!(todo_db_ops::verify::verify(&target.db).await.unwrap().ok, "schema intact");
    // Usable: the same restore now succeeds.
    backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap();
    assert_eq!(checksums(&source).await, checksums(&target).await);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_backup_taken_during_writes_restores_consistent() {
    let (source, target) = tokio::join!(populated(), TestDb::new());
    let users: Vec<uuid::Uuid> =
        source.db.admin().query("select id from users", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = users
        .iter()
        .take(4)
        .map(|&u| {
            let (db, stop) = (source.db.clone(), stop.clone());
            tokio::spawn(async move {
                let scope = db.user(todo_db::model::UserId(u));
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let task = scope.tasks().create(&NewTask::new(&format!("during {n}")).unwrap()).await.unwrap();
                    scope.tasks().tag(task.id, &[TagName::parse(&format!("t{}", n % 5)).unwrap()]).await.unwrap();
                    if n % 3 == 0 {
                        scope.tasks().delete(task.id).await.unwrap();
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = scratch();
    let out = dir.join("live");
    let manifest = backup::create(&source.db, &out, &workers(4), Arc::default()).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        assert!(w.await.unwrap() > 0);
    }
    // The restore re-creates every foreign key, so an orphan would fail it; check explicitly too.
    backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap();
    let orphans = count(
        &target,
        "select (select count(*) from task_tags x where not exists (select 1 from tasks t where t.id = x.task_id)) \
              + (select count(*) from tasks t where not exists (select 1 from users u where u.id = t.user_id))",
    )
    .await;
    assert_eq!(orphans, 0);
    let tasks = manifest.tables.iter().find(|t| t.name == "tasks").unwrap().rows as i64;
    assert_eq!(count(&target, "select count(*) from tasks").await, tasks);
    // Every audited task insert in the restored log has its task or a later delete: one snapshot.
    let unexplained = count(
        &target,
        "select count(*) from audit.log l where l.table_name = 'tasks' and l.op = 'INSERT' \
         and not exists (select 1 from tasks t where t.id = l.record_id) \
         and not exists (select 1 from audit.log d where d.record_id = l.record_id and d.op = 'DELETE')",
    )
    .await;
    assert_eq!(unexplained, 0);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_hostile_manifest_is_refused_by_verify_and_restore_naming_what_is_wrong() {
    let (source, target) = tokio::join!(populated(), TestDb::new());
    let dir = scratch();
    let out = dir.join("b");
    backup::create(&source.db, &out, &workers(2), Arc::default()).await.unwrap();
    // A file the backup points at outside its directory, with the size and digest to match.
    let outside = dir.join("outside.copy.zst");
    std::fs::copy(out.join("tasks.copy.zst"), &outside).unwrap();
    let path = out.join("manifest.json");
    let pristine: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tasks = pristine["tables"].as_array().unwrap().iter().position(|t| t["name"] == "tasks").unwrap();
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("file", "../outside.copy.zst".into(), "is not a file name in the backup's directory"),
        ("file", outside.display().to_string().into(), "is not a file name in the backup's directory"),
        ("file", "".into(), "is not a file name"),
        ("name", "pg_authid".into(), "unknown table \"pg_authid\""),
        ("name", "users".into(), "table users listed twice"),
    ];
    for (field, value, expected) in cases {
        let mut m = pristine.clone();
        m["tables"][tasks][field] = value.clone();
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let err = backup::verify(&out, None).unwrap_err();
        assert!(err.to_string().contains("damaged manifest") && err.to_string().contains(expected), "{value}: {err}");
        let err = backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{value}: {err}");
        assert_eq!(count(&target, "select count(*) from users").await, 0, "{value}: the target is untouched");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn restore_refuses_a_non_empty_target_and_a_backup_from_a_newer_todo_db() {
    let (source, target) = tokio::join!(populated(), populated());
    let dir = scratch();
    let out = dir.join("b");
    backup::create(&source.db, &out, &workers(2), Arc::default()).await.unwrap();
    let err = backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("--replace"), "{err}");
    // --replace overwrites it, in the same transaction as the load.
    backup::restore(&target.db, &out, &replace(), Arc::default()).await.unwrap();
    assert_eq!(checksums(&source).await, checksums(&target).await);
    // A backup from a newer schema is refused before anything is touched.
    let path = out.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["migrations"].as_array_mut().unwrap().push(serde_json::json!({"version": 99, "name": "future", "checksum": "x"}));
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = backup::restore(&target.db, &out, &replace(), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("0099_future") && err.to_string().contains("newer todo-db"), "{err}");
    // So is one taken by a development build whose migrations were since folded into 0003 and 0004.
    m["migrations"].as_array_mut().unwrap().pop();
    m["migrations"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"version": 8, "name": "audit_changed_by_hstore", "checksum": "x"}));
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = backup::restore(&target.db, &out, &replace(), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("0008_audit_changed_by_hstore") && err.to_string().contains("folded"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

fn todo_db(url: &str, backups: &Path) -> Command {
    let mut cmd = Command::cargo_bin("todo-db").unwrap();
    cmd.env("DATABASE_URL", url)
        .env_remove("DATABASE_DIRECT_URL")
        .env_remove("TODO_DB_ENVIRONMENT")
        .env_remove("TODO_DB_BACKUP_KEY")
        .env("TODO_DB_BACKUP_DIR", backups)
        .env("TODO_DB_CONNECT_RETRY", "1s");
    cmd
}

#[tokio::test]
async fn cli_creates_lists_verifies_restores_into_a_new_database_and_prunes() {
    let source = populated().await;
    let dir = scratch();
    for _ in 0..2 {
        todo_db(&source.url, &dir)
            .args(["backup", "create"])
            .assert()
            .success()
            .stdout(predicate::str::contains("written to"));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // distinct names
    }
    let out =
        todo_db(&source.url, &dir).args(["backup", "list", "--json"]).assert().success().get_output().stdout.clone();
    let list: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["complete"], true);
    let newest = list[1]["path"].as_str().unwrap().to_string();
    todo_db(&source.url, &dir)
        .args(["backup", "verify", &newest])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("ok:"));
    // Restore into a database that does not exist yet: created, migrated, loaded.
    let name = format!("todo_test_restored_{}", uuid::Uuid::now_v7().simple());
    todo_db(&source.url, &dir)
        .args(["backup", "restore", &newest, "--into", &name, "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"rows\""));
    let restored_url = common::with_database(&common::server_url(), &name);
    let restored = todo_db::Db::connect_url(&restored_url, &common::settings()).await.unwrap();
    let a = checksums(&source).await;
    let b = schema::checksum(&mut restored.admin().connection().await.unwrap()).await.unwrap();
    assert_eq!(a, b);
    restored.close();
    // Again without --replace: refused, naming the flag.
    todo_db(&source.url, &dir)
        .args(["backup", "restore", &newest, "--into", &name])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--replace"));
    let maint =
        todo_db::Db::connect_url(&common::with_database(&common::server_url(), "postgres"), &common::settings())
            .await
            .unwrap();
    maint.admin().batch(&format!("drop database {name} with (force)")).await.unwrap();
    // A flipped byte: verify exits 1 naming the table.
    let users_file = Path::new(&newest).join("users.copy.zst");
    let mut bytes = std::fs::read(&users_file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&users_file, bytes).unwrap();
    todo_db(&source.url, &dir)
        .args(["backup", "verify", &newest])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("DAMAGED: table users"));
    // Prune keeps the newest one.
    todo_db(&source.url, &dir)
        .args(["backup", "prune", "--keep-last", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 1 backups"));
    assert_eq!(backup::list(&dir).unwrap().len(), 1);
    todo_db(&source.url, &dir).args(["backup", "prune"]).assert().failure();
    // Encryption: a key from keygen; --encrypt without one is refused.
    todo_db(&source.url, &dir)
        .args(["backup", "create", "--encrypt"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("needs TODO_DB_BACKUP_KEY"));
    let key = todo_db(&source.url, &dir).args(["backup", "keygen"]).assert().success().get_output().stdout.clone();
    let key = String::from_utf8(key).unwrap().trim().to_string();
    let enc = dir.join("enc");
    todo_db(&source.url, &dir)
        .env("TODO_DB_BACKUP_KEY", &key)
        .args(["backup", "create", "--encrypt", "--out", enc.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(&key).not());
    todo_db(&source.url, &dir)
        .env("TODO_DB_BACKUP_KEY", &key)
        .args(["backup", "verify", enc.to_str().unwrap()])
        .assert()
        .success();
    todo_db(&source.url, &dir)
        .env("TODO_DB_BACKUP_KEY", todo_db_ops::backup::Key::generate().encode())
        .args(["backup", "verify", enc.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not this backup's key"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn encrypted_backups_restore_with_their_key_and_name_a_wrong_or_missing_key() {
    let (source, target) = tokio::join!(populated(), TestDb::new());
    let dir = scratch();
    let out = dir.join("enc");
    let key = backup::Key::generate();
    let options = backup::CreateOptions { workers: 2, key: Some(key.clone()) };
    let manifest = backup::create(&source.db, &out, &options, Arc::default()).await.unwrap();
    assert_eq!(manifest.encryption.as_ref().unwrap().key_id, key.id());
    let raw = std::fs::read(out.join("users.copy.zst")).unwrap();
    assert!(raw.starts_with(b"TDBENC1\0"), "the file is encrypted, not plain zstd");
    assert!(!std::fs::read_to_string(out.join("manifest.json")).unwrap().contains(&key.encode()));
    // Offline checks work without the key (sizes, SHA-256) and with it (decrypt, decompress).
    assert!(backup::verify(&out, None).unwrap().1.is_empty());
    assert!(backup::verify(&out, Some(&key)).unwrap().1.is_empty());
    // Missing and wrong keys are clear errors, and nothing is loaded.
    let err = backup::restore(&target.db, &out, &Default::default(), Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("encrypted") && err.to_string().contains("TODO_DB_BACKUP_KEY"), "{err}");
    let wrong = backup::RestoreOptions { replace: false, key: Some(backup::Key::generate()) };
    let err = backup::restore(&target.db, &out, &wrong, Arc::default()).await.unwrap_err();
    assert!(err.to_string().contains("is not this backup's key"), "{err}");
    assert!(backup::verify(&out, wrong.key.as_ref()).is_err());
    assert_eq!(count(&target, "select count(*) from users").await, 0);
    // The right key restores it exactly.
    let right = backup::RestoreOptions { replace: false, key: Some(key) };
    backup::restore(&target.db, &out, &right, Arc::default()).await.unwrap();
    assert_eq!(checksums(&source).await, checksums(&target).await);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_backup_from_an_older_schema_is_loaded_at_its_version_then_migrated_forward() {
    let source = populated().await;
    // No preferences yet, as before the migration that made them.
    source.db.admin().batch("delete from user_preferences").await.unwrap();
    let dir = scratch();
    let out = dir.join("old");
    backup::create(&source.db, &out, &workers(2), Arc::default()).await.unwrap();
    // Present it as taken before the latest migration, which made user_preferences: without that
    // migration and without that table, as a backup taken then would be.
    let path = out.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let latest = todo_db::schema::MIGRATIONS.last().unwrap().version;
    m["migrations"].as_array_mut().unwrap().retain(|x| x["version"] != latest);
    m["tables"].as_array_mut().unwrap().retain(|x| x["name"] != "user_preferences");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    // Into a brand-new, empty database: no schema at all yet.
    let empty = TestDb::empty().await;
    let target = &empty.db;
    let report = backup::restore(target, &out, &Default::default(), Arc::default()).await.unwrap();
    assert_eq!(report.migrated_forward, vec![latest], "loaded at the backup's version, then migrated");
    let b = schema::checksum(&mut target.admin().connection().await.unwrap()).await.unwrap();
    assert_eq!(checksums(&source).await, b);
    assert!(todo_db_ops::verify::verify(target).await.unwrap().ok);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_backup_directory_that_cannot_be_made_is_a_file_error_naming_the_path() {
    let t = TestDb::new().await;
    let blocker = std::env::temp_dir().join(format!("todo-db-not-a-dir-{}", std::process::id()));
    std::fs::write(&blocker, b"a file").unwrap();
    let out = blocker.join("backup");
    let err = backup::create(&t.db, &out, &workers(1), Arc::default()).await.unwrap_err();
    std::fs::remove_file(&blocker).ok();
    assert!(matches!(err, todo_db::Error::File { .. }), "{err:?}");
    assert!(err.to_string().contains(&*blocker.to_string_lossy()), "{err}");
}
