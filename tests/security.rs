//! Isolation, posture, passwords, lockout, tokens and security events, against the real server.

use todo_db_testkit::harness as common;

use std::time::{Duration, Instant};

use common::TestDb;
use todo_db::db::Stmt;
use todo_db::model::*;
use todo_db::security::{self, events, posture, tokens, ClientInfo, EventFilter, EventKind, LockoutPolicy};
use todo_db::Error;

fn client() -> ClientInfo {
    ClientInfo { addr: Some("203.0.113.7".parse().unwrap()), user_agent: Some("tests/1.0".into()) }
}

async fn snapshot(t: &TestDb, user: UserId) -> Vec<String> {
    let rows =
        t.db.admin()
            .query(
                "select row_to_json(x)::text from (select * from tasks where user_id = $1 \
             union all select t.* from tasks t where false) x order by 1",
                &[&user.0],
            )
            .await
            .unwrap();
    let mut out: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for sql in [
        "select row_to_json(g)::text from tags g where user_id = $1 order by id",
        "select row_to_json(l)::text from task_tags l where user_id = $1 order by task_id, tag_id",
    ] {
        out.extend(t.db.admin().query(sql, &[&user.0]).await.unwrap().iter().map(|r| r.get::<_, String>(0)));
    }
    out
}

#[tokio::test]
async fn user_b_can_neither_read_nor_change_any_of_user_as_rows() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("a@example.com").await, t.user("b@example.com").await);
    let sa = t.db.user(a);
    let task =
        sa.tasks().create(&NewTask::new("A's secret plan").unwrap().description("classified").unwrap()).await.unwrap();
    sa.tasks().tag(task.id, &[TagName::parse("private").unwrap()]).await.unwrap();
    let a_tag = sa.tags().list().await.unwrap()[0].clone();
    let before = snapshot(&t, a).await;

    let sb = t.db.user(b);
    assert!(matches!(sb.tasks().get(task.id).await, Err(Error::NotFound { .. })));
    assert!(sb.tasks().list(&TaskFilter::default()).await.unwrap().items.is_empty());
    assert!(sb
        .tasks()
        .list(&TaskFilter { search: Some("secret".into()), ..Default::default() })
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(sb
        .tasks()
        .list(&TaskFilter { tag: Some("private".into()), ..Default::default() })
        .await
        .unwrap()
        .items
        .is_empty());
    let patch = TaskPatch { title: Some(TaskTitle::parse("mine now").unwrap()), ..Default::default() };
    assert!(matches!(sb.tasks().update(task.id, &patch).await, Err(Error::NotFound { .. })));
    assert!(matches!(sb.tasks().complete(task.id).await, Err(Error::NotFound { .. })));
    assert_eq!(sb.tasks().complete_many(&[task.id]).await.unwrap(), 0);
    assert!(matches!(sb.tasks().delete(task.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(sb.tasks().tag(task.id, &[TagName::parse("x").unwrap()]).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        sb.tasks().untag(task.id, &TagName::parse("private").unwrap()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        sb.tags().rename(a_tag.id, &TagName::parse("stolen").unwrap()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(sb.tags().delete(a_tag.id).await, Err(Error::NotFound { .. })));
    assert!(sb.tags().list().await.unwrap().iter().all(|g| g.id != a_tag.id));
    let counted = sb.query("select count(*) from tasks", &[]).await.unwrap();
    assert_eq!(counted[0].get::<_, i64>(0), 0, "counting sees none of A's rows");
    let reowned =
        sb.query("update tasks set user_id = $1 where id = $2 returning id", &[&b.0, &task.id.0]).await.unwrap();
    assert!(reowned.is_empty(), "re-owning A's task touches nothing");
    let to_a = sb.query("update tasks set user_id = $1 returning id", &[&a.0]).await.unwrap();
    assert!(to_a.is_empty());
    let forged =
        sb.query("insert into tasks (id, user_id, title) values ($1, $2, 'forged')", &[&TaskId::new().0, &a.0]).await;
    match forged {
        Err(Error::Database { code, message, .. }) => {
            assert_eq!(code, "42501", "insufficient privilege: {message}");
            assert!(message.contains("row-level security"), "{message}");
        }
        other => panic!("inserting with A's user id must be refused: {other:?}"),
    }
    let link = sb
        .query("insert into task_tags (user_id, task_id, tag_id) values ($1, $2, $3)", &[&b.0, &task.id.0, &a_tag.id.0])
        .await;
    assert!(link.is_err(), "linking A's task to anything from B is refused");
    assert_eq!(snapshot(&t, a).await, before, "A's rows are byte-identical");
}

#[tokio::test]
async fn raw_sql_in_a_scope_sees_only_its_user_and_no_identity_sees_nothing() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("ra@example.com").await, t.user("rb@example.com").await);
    t.db.user(a).tasks().create(&NewTask::new("a1").unwrap()).await.unwrap();
    t.db.user(b).tasks().create(&NewTask::new("b1").unwrap()).await.unwrap();
    t.db.user(b).tasks().create(&NewTask::new("b2").unwrap()).await.unwrap();
    let rows = t.db.user(b).query("select user_id from tasks", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get::<_, uuid::Uuid>(0) == b.0));

    let mut conn = t.db.admin().connection().await.unwrap();
    for identity in [None, Some(""), Some("not-a-uuid-at-all")] {
        let tx = conn.transaction().await.unwrap();
        tx.batch_execute("set local role todo_app").await.unwrap();
        if let Some(v) = identity {
            tx.execute("select set_config('app.user_id', $1, true)", &[&v]).await.unwrap();
        }
        let r = tx.query("select count(*) from tasks", &[]).await;
        match identity {
            Some("not-a-uuid-at-all") => assert!(r.is_err(), "a malformed identity is an error, never all rows"),
            _ => assert_eq!(r.unwrap()[0].get::<_, i64>(0), 0, "no identity ({identity:?}) sees no rows"),
        }
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn on_the_app_login_a_scope_cannot_leave_rls_even_by_resetting_its_role() {
    let t = TestDb::new().await;
    let Some(login) = t.db.app_login().map(str::to_string) else {
        eprintln!("no app login on this server (DATABASE_URL without one): nothing to check");
        return;
    };
    let (a, b) = (t.user("la@example.com").await, t.user("lb@example.com").await);
    t.db.user(a).tasks().create(&NewTask::new("a's").unwrap()).await.unwrap();
    let sb = t.db.user(b);
    let who = sb.query("select current_user::text, session_user::text", &[]).await.unwrap();
    assert_eq!((who[0].get::<_, String>(0), who[0].get::<_, String>(1)), (login.clone(), login.clone()));
    // RESET ROLE goes back to the login itself, which is bound by the same policies.
    let rows =
        sb.pipeline(&[Stmt::new("reset role", &[]), Stmt::new("select count(*) from tasks", &[])]).await.unwrap();
    assert_eq!(rows[1][0].get::<_, i64>(0), 0, "B still sees none of A's rows");
    for role in ["todo_owner", todo_db_ops::local::SUPERUSER, todo_db_ops::local::OWNER] {
        match sb.query(&format!("set role {role}"), &[]).await {
            Err(Error::Database { code, .. }) => {
                assert!(matches!(code.as_str(), "42501" | "22023" | "42704"), "set role {role}: {code}")
            }
            other => panic!("set role {role} from a user scope must fail: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_app_login_that_bypasses_rls_or_is_not_a_member_of_todo_app_is_refused_at_connect() {
    let t = TestDb::new().await;
    let direct = common::with_database(&common::server_url(), &t.name);
    // The admin login itself (superuser or BYPASSRLS) as APP_DATABASE_URL.
    let mut s = common::settings();
    s.pool.statements = todo_db::config::StatementMode::Auto;
    s.app_url = Some(todo_db::config::Secret::new(direct.clone()));
    match todo_db::Db::connect_url(&direct, &s).await {
        Err(Error::Config(m)) => {
            assert!(m.contains("APP_DATABASE_URL") && m.contains("bypasses row-level security"), "{m}")
        }
        other => panic!("a bypassing app login must be refused: {:?}", other.map(|_| ())),
    }
    // A login that is not a member of todo_app.
    let name = format!("outsider_{}", uuid::Uuid::now_v7().simple());
    let password = uuid::Uuid::now_v7().simple().to_string();
    t.db.admin().batch(&format!("create role {name} login password '{password}'")).await.unwrap();
    let mut outsider = url::Url::parse(&direct).unwrap();
    outsider.set_username(&name).unwrap();
    outsider.set_password(Some(&password)).unwrap();
    s.app_url = Some(todo_db::config::Secret::new(outsider.to_string()));
    let result = todo_db::Db::connect_url(&direct, &s).await;
    t.db.admin().batch(&format!("drop role {name}")).await.unwrap();
    match result {
        Err(Error::Config(m)) => assert!(m.contains("not a member of todo_app") && !m.contains(&password), "{m}"),
        other => panic!("an app login outside todo_app must be refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn identity_never_outlives_its_transaction_under_random_cancellation() {
    let mut s = common::settings();
    s.pool.size = 1;
    // On the admin login, switching role per operation: the session is shared with admin work.
    identity_is_contained(TestDb::connect(s.clone(), false).await, true).await;
    // On the app login (the embedded default's), where there is one.
    if common::app_url("postgres").is_some() {
        let t = TestDb::connect(s, true).await;
        assert!(t.db.app_login().is_some());
        identity_is_contained(t, false).await;
    }
}

/// 10 000 interleaved operations of two users on a pool of one connection, each under a random
/// 0-5 ms timeout: every completed one sees exactly its user's row, no connection is left inside
/// a transaction, and (when admin work shares the session) no identity is left on it.
async fn identity_is_contained(t: TestDb, shared_with_admin: bool) {
    let (a, b) = (t.user("ia@example.com").await, t.user("ib@example.com").await);
    for (u, title) in [(a, "only a"), (b, "only b")] {
        t.db.user(u).tasks().create(&NewTask::new(title).unwrap()).await.unwrap();
    }
    let (mut completed, mut cancelled) = (0, 0);
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for i in 0..10_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let me = if seed.is_multiple_of(2) { a } else { b };
        let timeout = Duration::from_micros(seed % 5_000);
        let scope = t.db.user(me);
        let op = async {
            if i % 3 == 0 {
                scope
                    .query("select user_id, title from tasks", &[])
                    .await
                    .map(|rows| rows.iter().map(|r| r.get::<_, uuid::Uuid>(0)).collect::<Vec<_>>())
            } else {
                scope.tasks().list(&TaskFilter::default()).await.map(|p| p.items.iter().map(|t| t.user_id.0).collect())
            }
        };
        match tokio::time::timeout(timeout, op).await {
            Err(_) => cancelled += 1,
            Ok(r) => {
                let owners = r.unwrap();
                assert_eq!(owners, vec![me.0], "op {i}: exactly the caller's one row");
                completed += 1;
            }
        }
        if i % 500 == 0 {
            let open = t
                .db
                .admin()
                .query("select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'", &[])
                .await
                .unwrap();
            assert_eq!(open[0].get::<_, i64>(0), 0, "no connection parked inside a transaction");
        }
    }
    assert!(completed > 1000 && cancelled > 20, "both paths exercised: {completed} completed, {cancelled} cancelled");
    if !shared_with_admin {
        return;
    }
    let settings =
        t.db.admin().query("select current_setting('app.user_id', true), current_user::text", &[]).await.unwrap();
    let leftover: Option<String> = settings[0].get(0);
    assert!(leftover.unwrap_or_default().is_empty(), "no identity left on the session");
}

#[tokio::test]
async fn the_posture_check_names_a_table_without_rls_and_a_role_with_bypassrls() {
    let t = TestDb::new().await;
    let ok = posture::check(&t.db).await.unwrap();
    assert!(ok.iter().all(|f| f.ok), "{:?}", ok.iter().filter(|f| !f.ok).collect::<Vec<_>>());

    t.db.admin().batch("alter table tags disable row level security").await.unwrap();
    let findings = posture::check(&t.db).await.unwrap();
    let bad: Vec<_> = findings.iter().filter(|f| !f.ok).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].object, "table tags");
    assert!(bad[0].detail.contains("alter table tags enable row level security"));

    // A throwaway role stands in for the app role, so the shared todo_app is never weakened.
    // Made by the superuser: only one may create a BYPASSRLS role on PostgreSQL 15.
    let probe = format!("todo_probe_{}", uuid::Uuid::now_v7().simple());
    let superuser = todo_db::Db::connect_url(&common::superuser_url(&t.name), &common::settings()).await.unwrap();
    superuser
        .admin()
        .batch(&format!("create role {probe} nologin bypassrls; grant select on tasks to {probe}"))
        .await
        .unwrap();
    let findings = posture::check_role(&t.db, &probe).await.unwrap();
    superuser.admin().batch(&format!("drop owned by {probe}; drop role {probe}")).await.unwrap();
    superuser.close();
    let role_bad: Vec<_> = findings.iter().filter(|f| !f.ok && f.object == format!("role {probe}")).collect();
    assert_eq!(role_bad.len(), 1, "{findings:?}");
    assert_eq!(role_bad[0].check, "no BYPASSRLS");
    assert!(role_bad[0].detail.contains(&format!("alter role {probe} nobypassrls")));
}

#[tokio::test]
async fn a_view_without_security_invoker_and_an_unpinned_definer_function_are_findings() {
    let t = TestDb::new().await;
    t.db.admin()
        .batch(
            "create view leaky as select * from tasks; grant select on leaky to todo_app; \
             create function peek() returns bigint language sql security definer as 'select count(*) from tasks'",
        )
        .await
        .unwrap();
    let findings = posture::check(&t.db).await.unwrap();
    let bad: Vec<String> = findings.iter().filter(|f| !f.ok).map(|f| f.object.clone()).collect();
    assert_eq!(bad, vec!["view leaky".to_string(), "function peek()".to_string()]);
    t.db.admin().batch("alter view leaky set (security_invoker = true); alter function peek() set search_path = pg_catalog, public").await.unwrap();
    assert!(posture::check(&t.db).await.unwrap().iter().all(|f| f.ok));
}

#[tokio::test]
async fn login_with_argon2id_and_the_same_answer_for_unknown_email_and_wrong_password() {
    let t = TestDb::new().await;
    let u = t.user("login@example.com").await;
    security::set_password(&t.db.user(u), "correct horse battery", &client()).await.unwrap();
    let stored: String =
        t.db.admin().query("select password_hash from users where id = $1", &[&u.0]).await.unwrap()[0].get(0);
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let policy = LockoutPolicy::default();
    assert_eq!(
        security::login(&t.db, "LOGIN@example.com", "correct horse battery", &client(), &policy).await.unwrap(),
        u
    );

    let started = Instant::now();
    let wrong =
        security::login(&t.db, "login@example.com", "wrong horse battery", &client(), &policy).await.unwrap_err();
    let wrong_took = started.elapsed();
    let started = Instant::now();
    let unknown =
        security::login(&t.db, "nobody@example.com", "wrong horse battery", &client(), &policy).await.unwrap_err();
    let unknown_took = started.elapsed();
    assert!(matches!(wrong, Error::InvalidCredentials) && matches!(unknown, Error::InvalidCredentials));
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(
        unknown_took * 3 > wrong_took,
        "unknown email also pays for a hash check: {unknown_took:?} vs {wrong_took:?}"
    );

    let evs = events::list(&t.db, &EventFilter { user: Some(u.0), ..Default::default() }).await.unwrap();
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["login_failure", "login_success", "password_changed"]);
    assert_eq!(evs[1].client_addr, client().addr);
    assert_eq!(evs[1].user_agent.as_deref(), Some("tests/1.0"));
}

#[tokio::test]
async fn a_legacy_bcrypt_hash_logs_in_once_and_is_rehashed_to_argon2id() {
    let t = TestDb::new().await;
    let u = t.user("legacy@example.com").await;
    let legacy = bcrypt::hash("from-the-python-days", 4).unwrap();
    t.db.admin().query("update users set password_hash = $1 where id = $2", &[&legacy, &u.0]).await.unwrap();
    let policy = LockoutPolicy::default();
    assert_eq!(
        security::login(&t.db, "legacy@example.com", "from-the-python-days", &client(), &policy).await.unwrap(),
        u
    );
    let stored: String =
        t.db.admin().query("select password_hash from users where id = $1", &[&u.0]).await.unwrap()[0].get(0);
    assert!(stored.starts_with("$argon2id$"), "re-hashed: {stored}");
    assert_eq!(
        security::login(&t.db, "legacy@example.com", "from-the-python-days", &client(), &policy).await.unwrap(),
        u
    );

    // bcrypt only reads 72 bytes: an 80-byte password whose first 72 bytes match must not pass.
    let long = "L".repeat(80);
    let truncated = bcrypt::hash(&long[..72], 4).unwrap();
    t.db.admin().query("update users set password_hash = $1 where id = $2", &[&truncated, &u.0]).await.unwrap();
    let err = security::login(&t.db, "legacy@example.com", &long, &client(), &policy).await.unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_the_cool_down_and_it_is_logged() {
    let t = TestDb::new().await;
    let u = t.user("locked@example.com").await;
    security::set_password(&t.db.user(u), "the right password", &client()).await.unwrap();
    let policy = LockoutPolicy { max_failures: 3, window: Duration::from_secs(60), cooldown: Duration::from_secs(2) };
    for _ in 0..3 {
        let e = security::login(&t.db, "locked@example.com", "not it at all", &client(), &policy).await.unwrap_err();
        assert!(matches!(e, Error::InvalidCredentials));
    }
    let locked =
        security::login(&t.db, "locked@example.com", "the right password", &client(), &policy).await.unwrap_err();
    assert!(matches!(locked, Error::Locked { .. }), "{locked:?}");
    let kinds: Vec<String> = events::list(&t.db, &EventFilter { user: Some(u.0), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(&kinds[..3], &["login_refused_locked", "lockout", "login_failure"]);

    let cli = assert_cmd::Command::cargo_bin("todo-db")
        .unwrap()
        .env("DATABASE_URL", &t.url)
        .args(["security", "events", "--type", "lockout", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["user_id"], u.0.to_string());

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        security::login(&t.db, "locked@example.com", "the right password", &client(), &policy).await.unwrap(),
        u,
        "unlocked after the cool-down"
    );
}

#[tokio::test]
async fn tokens_are_shown_once_stored_as_digests_and_can_be_revoked_expired_and_purged() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("tok@example.com").await, t.user("other@example.com").await);
    let sa = t.db.user(a);
    let issued = tokens::issue(&sa, "cli", Duration::from_secs(3600), &client()).await.unwrap();
    let token = issued.token.expose().clone();
    assert!(!format!("{issued:?}").contains(&token), "Debug never shows the token");
    let stored: Vec<u8> =
        t.db.admin().query("select token_hash from api_tokens where id = $1", &[&issued.id]).await.unwrap()[0].get(0);
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, token.as_bytes());
    let everything = t.db.admin().query("select row_to_json(t)::text from api_tokens t", &[]).await.unwrap();
    assert!(everything.iter().all(|r| !r.get::<_, String>(0).contains(&token)), "the token itself is stored nowhere");

    let scope = tokens::authenticate(&t.db, &token, &client()).await.unwrap();
    assert_eq!(scope.user_id(), a);
    let listed = tokens::list(&sa).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    assert!(tokens::list(&t.db.user(b)).await.unwrap().is_empty(), "B does not see A's tokens");
    assert!(matches!(tokens::revoke(&t.db.user(b), issued.id, &client()).await, Err(Error::NotFound { .. })));

    assert!(matches!(tokens::authenticate(&t.db, "tdb_forged", &client()).await, Err(Error::Unauthorized)));
    tokens::revoke(&sa, issued.id, &client()).await.unwrap();
    assert!(matches!(tokens::authenticate(&t.db, &token, &client()).await, Err(Error::Unauthorized)));

    let short = tokens::issue(&sa, "short", Duration::from_secs(1), &client()).await.unwrap();
    let other = tokens::issue(&sa, "other", Duration::from_secs(3600), &client()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        matches!(tokens::authenticate(&t.db, short.token.expose(), &client()).await, Err(Error::Unauthorized)),
        "expired"
    );
    assert_eq!(tokens::revoke_all(&sa, &client()).await.unwrap(), 2, "the live and the expired-but-unrevoked");
    assert!(matches!(tokens::authenticate(&t.db, other.token.expose(), &client()).await, Err(Error::Unauthorized)));
    assert_eq!(tokens::purge_expired(&t.db, Duration::ZERO).await.unwrap(), 3);
    assert!(tokens::list(&sa).await.unwrap().is_empty());

    let kinds: Vec<String> = events::list(&t.db, &EventFilter { user: Some(a.0), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["token_issued", "token_used", "token_revoked"] {
        assert!(kinds.iter().any(|x| x == k), "{k} logged: {kinds:?}");
    }
    let rejected =
        events::list(&t.db, &EventFilter { kind: Some(EventKind::TokenRejected), ..Default::default() }).await.unwrap();
    assert!(rejected.len() >= 3);
    let own = events::list_own(&t.db.user(b), &EventFilter::default()).await.unwrap();
    assert!(own.iter().all(|e| e.user_id == Some(b.0)), "a user reads only their own events");
}

#[tokio::test]
async fn a_password_reset_token_works_once_sets_the_password_and_revokes_the_other_tokens() {
    let t = TestDb::new().await;
    let u = t.user("reset@example.com").await;
    let policy = LockoutPolicy::default();
    security::set_password(&t.db.user(u), "old password 1", &client()).await.unwrap();
    let api = tokens::issue(&t.db.user(u), "cli", Duration::from_secs(3600), &client()).await.unwrap();
    let single = tokens::SingleUse::PasswordReset;
    let reset = tokens::issue_single_use(&t.db, u, single, single.default_ttl(), &client()).await.unwrap();
    // Not an API credential.
    let r = tokens::authenticate(&t.db, reset.token.expose(), &client()).await;
    assert!(matches!(r, Err(Error::Unauthorized)));
    let who = tokens::reset_password(&t.db, reset.token.expose(), "new password 2", &client()).await.unwrap();
    assert_eq!(who, u);
    assert_eq!(security::login(&t.db, "reset@example.com", "new password 2", &client(), &policy).await.unwrap(), u);
    let old = security::login(&t.db, "reset@example.com", "old password 1", &client(), &policy).await;
    assert!(matches!(old, Err(Error::InvalidCredentials)));
    // The other tokens were revoked; the reset token is spent.
    let r = tokens::authenticate(&t.db, api.token.expose(), &client()).await;
    assert!(matches!(r, Err(Error::Unauthorized)));
    let again = tokens::reset_password(&t.db, reset.token.expose(), "third password 3", &client()).await;
    assert!(matches!(again, Err(Error::Unauthorized)));
    assert!(security::login(&t.db, "reset@example.com", "new password 2", &client(), &policy).await.is_ok());
    // A reset is a password change in the security log; the failed reuse a rejected token.
    let ev = events::list(&t.db, &EventFilter { user: Some(u.0), ..Default::default() }).await.unwrap();
    let changed = ev.iter().filter(|e| e.kind == "password_changed").count();
    assert_eq!(changed, 2, "set_password and the reset");
    // Nothing in the log holds the token.
    let log: String =
        t.db.admin()
            .query("select coalesce(string_agg(details::text, ' '), '') from security_events", &[])
            .await
            .unwrap()[0]
            .get(0);
    assert!(!log.contains(reset.token.expose().as_str()));
}

#[tokio::test]
async fn single_use_tokens_expire_are_revocable_and_serve_only_their_purpose() {
    let t = TestDb::new().await;
    let u = t.user("verify@example.com").await;
    let verification = tokens::SingleUse::EmailVerification;
    let v = tokens::issue_single_use(&t.db, u, verification, verification.default_ttl(), &client()).await.unwrap();
    // A verification token cannot reset a password.
    let r = tokens::reset_password(&t.db, v.token.expose(), "new password 2", &client()).await;
    assert!(matches!(r, Err(Error::Unauthorized)));
    assert!(!t.db.user(u).profile().get().await.unwrap().email_verified);
    assert_eq!(tokens::verify_email(&t.db, v.token.expose(), &client()).await.unwrap(), u);
    assert!(t.db.user(u).profile().get().await.unwrap().email_verified);
    assert!(matches!(tokens::verify_email(&t.db, v.token.expose(), &client()).await, Err(Error::Unauthorized)));
    // Expired: refused.
    let late = tokens::issue_single_use(&t.db, u, verification, verification.default_ttl(), &client()).await.unwrap();
    t.db.admin()
        .query(
            "update api_tokens set created_at = now() - interval '2 days', expires_at = now() - interval '1 day' where id = $1",
            &[&late.id],
        )
        .await
        .unwrap();
    assert!(matches!(tokens::verify_email(&t.db, late.token.expose(), &client()).await, Err(Error::Unauthorized)));
    // Revoked by its user: refused.
    let reset = tokens::SingleUse::PasswordReset;
    let r = tokens::issue_single_use(&t.db, u, reset, reset.default_ttl(), &client()).await.unwrap();
    tokens::revoke(&t.db.user(u), r.id, &client()).await.unwrap();
    let used = tokens::reset_password(&t.db, r.token.expose(), "new password 2", &client()).await;
    assert!(matches!(used, Err(Error::Unauthorized)));
    // Bad input names its field; an inactive or unknown user gets none.
    let long = tokens::issue_single_use(&t.db, u, reset, Duration::from_secs(8 * 86400), &client()).await;
    assert!(matches!(long, Err(Error::Validation { field: "expires_in", .. })));
    let nobody = tokens::issue_single_use(&t.db, UserId::new(), reset, reset.default_ttl(), &client()).await;
    assert!(matches!(nobody, Err(Error::NotFound { .. })));
}
