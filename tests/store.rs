//! Core operations against a real PostgreSQL: tasks, tags, users, filters, pagination, errors.

use todo_db_testkit::harness as common;

use common::TestDb;
use time::{Duration, OffsetDateTime};
use todo_db::model::*;
use todo_db::Error;

fn tag(name: &str) -> TagName {
    TagName::parse(name).unwrap()
}

#[tokio::test]
async fn a_task_is_created_read_patched_completed_reopened_and_deleted() {
    let t = TestDb::new().await;
    let alice = t.user("alice@example.com").await;
    let tasks = t.db.user(alice);
    let tasks = tasks.tasks();

    let due = OffsetDateTime::now_utc() + Duration::days(2);
    let new =
        NewTask::new("  Buy milk  ").unwrap().priority(Priority::High).due_at(due).description("2 litres").unwrap();
    let created = tasks.create(&new).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.title, "Buy milk");
    assert_eq!(created.priority, Priority::High);
    assert!(!created.completed && created.completed_at.is_none());
    assert_eq!(tasks.get(created.id).await.unwrap(), created);

    let patched = tasks
        .update(
            created.id,
            &TaskPatch {
                title: Some(TaskTitle::parse("Buy oat milk").unwrap()),
                due_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.title, "Buy oat milk");
    assert_eq!(patched.description, "2 litres", "fields not in the patch stay");
    assert_eq!(patched.due_at, None, "Some(None) clears the due date");
    assert!(patched.updated_at >= created.updated_at);

    let done = tasks.complete(created.id).await.unwrap();
    assert!(done.completed && done.completed_at.is_some());
    let again = tasks.complete(created.id).await.unwrap();
    assert_eq!(again.completed_at, done.completed_at, "completing twice keeps the first completion time");
    let open = tasks.reopen(created.id).await.unwrap();
    assert!(!open.completed && open.completed_at.is_none());

    tasks.delete(created.id).await.unwrap();
    assert!(matches!(tasks.get(created.id).await, Err(Error::NotFound { entity: "task" })));
    assert!(matches!(tasks.delete(created.id).await, Err(Error::NotFound { entity: "task" })));
}

#[tokio::test]
async fn retrying_a_create_with_the_same_id_never_makes_two_tasks() {
    let t = TestDb::new().await;
    let u = t.user("retry@example.com").await;
    let s = t.db.user(u);
    let new = NewTask::new("once").unwrap();
    s.tasks().create(&new).await.unwrap();
    let err = s.tasks().create(&new).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { constraint: "tasks_pkey", .. }), "{err:?}");
    assert_eq!(s.tasks().list(&TaskFilter::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_with_a_stable_cursor() {
    let t = TestDb::new().await;
    let u = t.user("lister@example.com").await;
    let s = t.db.user(u);
    let now = OffsetDateTime::now_utc();
    let mut batch = Vec::new();
    for i in 0..23 {
        let mut n = NewTask::new(&format!("task {i:02}")).unwrap().priority(Priority::ALL[i % 4]);
        if i % 3 != 0 {
            n = n.due_at(now + Duration::hours(i as i64 - 10));
        }
        if i == 7 {
            n = n.description("contains 100%_literal text").unwrap();
        }
        batch.push(n);
    }
    assert_eq!(s.tasks().create_many(&batch).await.unwrap(), 23);
    let done: Vec<TaskId> = batch.iter().take(5).map(|n| n.id).collect();
    assert_eq!(s.tasks().complete_many(&done).await.unwrap(), 5);
    assert_eq!(s.tasks().complete_many(&done).await.unwrap(), 0, "already complete");
    s.tasks().tag(batch[10].id, &[tag("Home"), tag("urgent-ish")]).await.unwrap();
    s.tasks().tag(batch[11].id, &[tag("home")]).await.unwrap();

    for sort in [TaskSort::Created, TaskSort::Updated, TaskSort::Due, TaskSort::Priority] {
        let mut seen = Vec::new();
        let mut filter = TaskFilter { sort, limit: Some(5), ..Default::default() };
        loop {
            let page = s.tasks().list(&filter).await.unwrap();
            seen.extend(page.items.iter().cloned());
            match page.next {
                Some(c) => filter.after = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{sort:?}: every task exactly once");
        let mut ids: Vec<_> = seen.iter().map(|t| t.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 23);
        let ordered = seen.windows(2).all(|w| match sort {
            TaskSort::Created => (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id),
            TaskSort::Updated => (w[0].updated_at, w[0].id) > (w[1].updated_at, w[1].id),
            TaskSort::Due => {
                let k = |t: &Task| (t.due_at.is_none(), t.due_at, t.id);
                k(&w[0]) < k(&w[1])
            }
            TaskSort::Priority => (w[0].priority, w[0].id) > (w[1].priority, w[1].id),
        });
        assert!(ordered, "{sort:?} order holds across pages");
    }

    let open = s.tasks().list(&TaskFilter { completed: Some(false), ..Default::default() }).await.unwrap();
    assert_eq!(open.items.len(), 18);
    let urgent = s.tasks().list(&TaskFilter { priority: Some(Priority::Urgent), ..Default::default() }).await.unwrap();
    assert!(urgent.items.iter().all(|t| t.priority == Priority::Urgent) && urgent.items.len() == 5);
    let overdue = s.tasks().list(&TaskFilter { due_before: Some(now), ..Default::default() }).await.unwrap();
    assert!(overdue.items.iter().all(|t| t.due_at.unwrap() < now) && !overdue.items.is_empty());
    let later = s.tasks().list(&TaskFilter { due_after: Some(now), ..Default::default() }).await.unwrap();
    assert_eq!(overdue.items.len() + later.items.len(), 15, "every task with a due date is before or after now");
    let home = s.tasks().list(&TaskFilter { tag: Some("HOME".into()), ..Default::default() }).await.unwrap();
    assert_eq!(home.items.len(), 2, "tag filter ignores case");
    let literal = s.tasks().list(&TaskFilter { search: Some("100%_lit".into()), ..Default::default() }).await.unwrap();
    assert_eq!(literal.items.len(), 1, "% and _ in a search are literal");
    let by_title = s.tasks().list(&TaskFilter { search: Some("TASK 1".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_title.items.len(), 10, "task 1, 10..19");

    let bad = s.tasks().list(&TaskFilter { limit: Some(0), ..Default::default() }).await;
    assert!(matches!(bad, Err(Error::Validation { field: "limit", .. })));
    let wrong_sort = TaskFilter {
        sort: TaskSort::Due,
        after: Some(Cursor { sort: TaskSort::Created, key: "x".into(), id: uuid::Uuid::nil() }),
        ..Default::default()
    };
    assert!(matches!(s.tasks().list(&wrong_sort).await, Err(Error::Validation { field: "cursor", .. })));
}

#[tokio::test]
async fn tags_are_unique_per_user_ignoring_case_and_attach_and_detach() {
    let t = TestDb::new().await;
    let u = t.user("tagger@example.com").await;
    let s = t.db.user(u);
    let work = s.tags().create(&tag("Work"), Some(&Color::parse("#1E90FF").unwrap())).await.unwrap();
    assert_eq!(work.color.as_deref(), Some("#1e90ff"));
    let dup = s.tags().create(&tag("work"), None).await.unwrap_err();
    assert!(matches!(dup, Error::Conflict { field: "tag", constraint: "tags_user_name_key" }), "{dup:?}");

    let task = s.tasks().create(&NewTask::new("Report").unwrap()).await.unwrap();
    let tagged = s.tasks().tag(task.id, &[tag("WORK"), tag("q4")]).await.unwrap();
    assert_eq!(tagged.tags, vec!["q4".to_string(), "Work".to_string()]);
    assert_eq!(s.tags().list().await.unwrap().len(), 2, "WORK reused Work; q4 was created");
    let again = s.tasks().tag(task.id, &[tag("work")]).await.unwrap();
    assert_eq!(again.tags.len(), 2, "attaching twice is a no-op");
    // One statement creates, attaches and answers: what it returns is what it stored.
    let plan = s.tasks().create(&NewTask::new("Plan").unwrap()).await.unwrap();
    let both = s.tasks().tag(plan.id, &[tag("Errand"), tag("ERRAND"), tag("q4")]).await.unwrap();
    assert_eq!(both.tags, vec!["Errand".to_string(), "q4".to_string()], "one tag per name, whatever its case");
    assert_eq!(s.tasks().get(plan.id).await.unwrap().tags, both.tags);
    assert_eq!(s.tags().list().await.unwrap().len(), 3, "Errand was created once");

    let renamed = s.tags().rename(work.id, &tag("Job")).await.unwrap();
    assert_eq!(renamed.name, "Job");
    assert_eq!(s.tasks().get(task.id).await.unwrap().tags, vec!["Job".to_string(), "q4".to_string()]);
    let untagged = s.tasks().untag(task.id, &tag("JOB")).await.unwrap();
    assert_eq!(untagged.tags, vec!["q4".to_string()]);
    let q4 = s.tags().list().await.unwrap().into_iter().find(|g| g.name == "q4").unwrap();
    s.tags().delete(q4.id).await.unwrap();
    assert!(s.tasks().get(task.id).await.unwrap().tags.is_empty(), "deleting a tag detaches it");

    let missing = s.tasks().tag(TaskId::new(), &[tag("x")]).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { entity: "task" }), "{missing:?}");
    assert!(s.tags().list().await.unwrap().iter().all(|g| g.name != "x"), "nothing half-written");
}

#[tokio::test]
async fn users_are_unique_by_email_ignoring_case_and_deleting_cascades() {
    let t = TestDb::new().await;
    let admin = t.db.admin();
    let bob = admin.users().create(&NewUser::new("Bob@Example.com", "Bob").unwrap()).await.unwrap();
    let dup = admin.users().create(&NewUser::new("bob@example.COM", "Other").unwrap()).await.unwrap_err();
    assert!(matches!(dup, Error::Conflict { field: "email", constraint: "users_email_key" }), "{dup:?}");
    assert_eq!(admin.users().find_by_email("BOB@example.com").await.unwrap().id, bob.id);

    let s = t.db.user(bob.id);
    let me = s
        .profile()
        .update(&UserPatch { display_name: Some(DisplayName::parse("Robert").unwrap()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(me.display_name, "Robert");
    assert_eq!(s.profile().get().await.unwrap().email, "Bob@Example.com");
    s.tasks().create(&NewTask::new("t").unwrap()).await.unwrap();
    s.tasks().tag(s.tasks().create(&NewTask::new("u").unwrap()).await.unwrap().id, &[tag("x")]).await.unwrap();
    s.profile().delete().await.unwrap();
    assert!(matches!(admin.users().get(bob.id).await, Err(Error::NotFound { .. })));
    let left = admin
        .query(
            "select (select count(*) from tasks) + (select count(*) from tags) + (select count(*) from task_tags)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(left[0].get::<_, i64>(0), 0, "tasks, tags and links went with the user");
}

#[tokio::test]
async fn constraint_violations_become_typed_errors_and_write_nothing() {
    let t = TestDb::new().await;
    let u = t.user("raw@example.com").await;
    let s = t.db.user(u);
    let id = uuid::Uuid::now_v7();
    let cases: [(&str, &str, &str); 6] = [
        ("insert into tasks (id, user_id, title) values ($1, $2, ' padded ')", "title", "tasks_title_trimmed"),
        ("insert into tasks (id, user_id, title) values ($1, $2, '')", "title", "tasks_title_length"),
        (
            "insert into tasks (id, user_id, title, description) values ($1, $2, 't', repeat('d', 10001))",
            "description",
            "len",
        ),
        ("insert into tasks (id, user_id, title, completed) values ($1, $2, 't', true)", "completed_at", "matches"),
        (
            "insert into tasks (id, user_id, title, completed, completed_at) values ($1, $2, 't', true, now())",
            "status",
            "matches",
        ),
        ("insert into tags (id, user_id, name, color) values ($1, $2, 'n', 'red')", "color", "format"),
    ];
    for (sql, field, _) in cases {
        let err = s.query(sql, &[&id, &u.0]).await.unwrap_err();
        assert!(matches!(&err, Error::Validation { field: f, .. } if *f == field), "{sql}: {err:?}");
    }
    let n = t.db.admin().query("select (select count(*) from tasks) + (select count(*) from tags)", &[]).await.unwrap();
    assert_eq!(n[0].get::<_, i64>(0), 0);
    let unknown_user = t.db.user(UserId::new());
    let err = unknown_user.tasks().create(&NewTask::new("orphan").unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }) || matches!(err, Error::Database { .. }), "{err:?}");
}

#[tokio::test]
async fn one_user_never_sees_or_changes_another_users_rows() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("a@example.com").await, t.user("b@example.com").await);
    let task = t.db.user(a).tasks().create(&NewTask::new("secret").unwrap()).await.unwrap();
    let sb = t.db.user(b);
    assert!(matches!(sb.tasks().get(task.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(sb.tasks().complete(task.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(sb.tasks().delete(task.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(sb.tasks().tag(task.id, &[tag("mine")]).await, Err(Error::NotFound { .. })));
    assert!(sb.tasks().list(&TaskFilter::default()).await.unwrap().items.is_empty());
    assert_eq!(sb.query("select * from tasks", &[]).await.unwrap().len(), 0, "raw SQL still runs under RLS");
    let forged = sb
        .query("insert into tasks (id, user_id, title) values ($1, $2, 'forged')", &[&uuid::Uuid::now_v7(), &a.0])
        .await;
    assert!(forged.is_err(), "inserting with another user's id is refused");
    assert_eq!(t.db.user(a).tasks().get(task.id).await.unwrap(), task, "A's task unchanged");
}

#[tokio::test]
async fn status_and_completion_follow_one_rule_and_listings_filter_by_status() {
    let t = TestDb::new().await;
    let alice = t.user("alice@example.com").await;
    let scope = t.db.user(alice);
    let tasks = scope.tasks();
    let a = tasks.create(&NewTask::new("plan").unwrap()).await.unwrap();
    assert_eq!(a.status, TaskStatus::Todo);
    // Completing sets done; reopening a done task sets todo.
    let done = tasks.complete(a.id).await.unwrap();
    assert_eq!((done.status, done.completed), (TaskStatus::Done, true));
    let open = tasks.reopen(a.id).await.unwrap();
    assert_eq!((open.status, open.completed, open.completed_at), (TaskStatus::Todo, false, None));
    // Setting done completes; another status reopens.
    let set = |s| TaskPatch { status: Some(s), ..Default::default() };
    let review = tasks.update(a.id, &set(TaskStatus::Review)).await.unwrap();
    assert_eq!((review.status, review.completed), (TaskStatus::Review, false));
    let done = tasks.update(a.id, &set(TaskStatus::Done)).await.unwrap();
    assert!(done.completed && done.completed_at.is_some());
    let blocked = tasks.update(a.id, &set(TaskStatus::Blocked)).await.unwrap();
    assert_eq!((blocked.status, blocked.completed, blocked.completed_at), (TaskStatus::Blocked, false, None));
    // Reopening a task that is not done keeps its status.
    assert_eq!(tasks.reopen(a.id).await.unwrap().status, TaskStatus::Blocked);
    // A patch that contradicts itself is refused, naming the field, and changes nothing.
    let bad = TaskPatch { completed: Some(true), status: Some(TaskStatus::InProgress), ..Default::default() };
    assert!(matches!(tasks.update(a.id, &bad).await, Err(Error::Validation { field: "status", .. })));
    assert_eq!(tasks.get(a.id).await.unwrap().status, TaskStatus::Blocked);
    // Created done is created completed; complete_many sets done.
    let b = tasks.create(&NewTask::new("shipped").unwrap().status(TaskStatus::Done)).await.unwrap();
    assert!(b.completed && b.completed_at.is_some());
    let c = tasks.create(&NewTask::new("write").unwrap().status(TaskStatus::InProgress)).await.unwrap();
    assert_eq!(tasks.complete_many(&[c.id]).await.unwrap(), 1);
    assert_eq!(tasks.get(c.id).await.unwrap().status, TaskStatus::Done);
    let by = |s| TaskFilter { status: Some(s), ..Default::default() };
    let ids = |p: Page<Task>| p.items.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(tasks.list(&by(TaskStatus::Blocked)).await.unwrap()), vec![a.id]);
    let mut done_ids = ids(tasks.list(&by(TaskStatus::Done)).await.unwrap());
    done_ids.sort();
    let mut want = vec![b.id, c.id];
    want.sort();
    assert_eq!(done_ids, want);
    assert!(matches!("finished".parse::<TaskStatus>(), Err(Error::Validation { field: "status", .. })));
    assert_eq!(" In_Progress ".parse::<TaskStatus>().unwrap(), TaskStatus::InProgress);
}

#[tokio::test]
async fn deleted_tasks_wait_in_the_trash_until_restored_or_purged_and_only_their_owner_sees_them() {
    let t = TestDb::new().await;
    let alice = t.user("alice@example.com").await;
    let bob = t.user("bob@example.com").await;
    let scope = t.db.user(alice);
    let tasks = scope.tasks();
    let kept = tasks.create(&NewTask::new("kept").unwrap()).await.unwrap();
    let gone = tasks.create(&NewTask::new("gone").unwrap().priority(Priority::Urgent)).await.unwrap();
    let gone = tasks.tag(gone.id, &[tag("Home"), tag("q4")]).await.unwrap();
    let gone =
        tasks.update(gone.id, &TaskPatch { status: Some(TaskStatus::Review), ..Default::default() }).await.unwrap();
    tasks.delete(gone.id).await.unwrap();
    // Out of every listing, read, change and report...
    assert!(matches!(tasks.get(gone.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(tasks.complete(gone.id).await, Err(Error::NotFound { .. })));
    let listed: Vec<_> = tasks.list(&TaskFilter::default()).await.unwrap().items.into_iter().map(|t| t.id).collect();
    assert_eq!(listed, vec![kept.id]);
    let summary = todo_db::views::read::<todo_db::views::TaskSummary>(&scope, &Default::default()).await.unwrap();
    assert_eq!(summary[0].total_tasks, 1, "the summary counts live tasks only");
    // ...and in the trash, whole, with its tags; nobody else sees it or can bring it back.
    let trash = tasks.trash(50).await.unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].task.id, gone.id);
    assert_eq!(trash[0].task.tags, vec!["Home", "q4"]);
    assert_eq!((trash[0].task.status, trash[0].task.priority), (TaskStatus::Review, Priority::Urgent));
    let bobs = t.db.user(bob);
    assert!(bobs.tasks().trash(50).await.unwrap().is_empty());
    assert!(matches!(bobs.tasks().restore(gone.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(bobs.tasks().purge(gone.id).await, Err(Error::NotFound { .. })));
    // Restored: as it was, tags included (a tag deleted meanwhile is not), and the trash is empty.
    let q4 = scope.tags().list().await.unwrap().into_iter().find(|g| g.name == "q4").unwrap();
    scope.tags().delete(q4.id).await.unwrap();
    let back = tasks.restore(gone.id).await.unwrap();
    assert_eq!((back.title.as_str(), back.status, back.created_at), ("gone", TaskStatus::Review, gone.created_at));
    assert_eq!(back.tags, vec!["Home"]);
    assert_eq!(tasks.get(gone.id).await.unwrap().tags, vec!["Home"]);
    assert!(tasks.trash(50).await.unwrap().is_empty());
    assert!(matches!(tasks.restore(gone.id).await, Err(Error::NotFound { .. })));
    // Purged: gone for good.
    tasks.delete(gone.id).await.unwrap();
    tasks.purge(gone.id).await.unwrap();
    assert!(tasks.trash(50).await.unwrap().is_empty());
    assert!(matches!(tasks.restore(gone.id).await, Err(Error::NotFound { .. })));
    // Every step is in the task's history.
    let entries = todo_db::audit::log(
        &t.db,
        &todo_db::audit::LogFilter { record: Some(gone.id.0), limit: Some(100), ..Default::default() },
    )
    .await
    .unwrap();
    let steps: Vec<(String, String)> = entries.items.iter().rev().map(|e| (e.table.clone(), e.op.clone())).collect();
    let trash_steps: Vec<&(String, String)> = steps.iter().filter(|(t, _)| t == "task_trash").collect();
    assert_eq!(trash_steps.len(), 4, "in, out, in, purged: {steps:?}");
}

#[tokio::test]
async fn the_trash_is_purged_by_age_across_users() {
    let t = TestDb::new().await;
    let (alice, bob) = (t.user("alice@example.com").await, t.user("bob@example.com").await);
    let mut ids = Vec::new();
    for user in [alice, bob] {
        let tasks = t.db.user(user);
        let task = tasks.tasks().create(&NewTask::new("old").unwrap()).await.unwrap();
        tasks.tasks().delete(task.id).await.unwrap();
        ids.push(task.id);
    }
    let fresh = t.db.user(alice).tasks().create(&NewTask::new("fresh").unwrap()).await.unwrap();
    t.db.user(alice).tasks().delete(fresh.id).await.unwrap();
    t.db.admin()
        .query(
            "update task_trash set deleted_at = now() - interval '40 days' where id = any($1)",
            &[&ids.iter().map(|i| i.0).collect::<Vec<_>>()],
        )
        .await
        .unwrap();
    let month = std::time::Duration::from_secs(30 * 86_400);
    let admin = t.db.admin();
    assert_eq!(todo_db::store::tasks::purge_trash(&admin, month, true).await.unwrap(), 2);
    assert_eq!(t.count("select count(*) from task_trash").await, 3, "a dry run removes nothing");
    assert_eq!(todo_db::store::tasks::purge_trash(&admin, month, false).await.unwrap(), 2);
    let left: Vec<TaskId> = t.db.user(alice).tasks().trash(50).await.unwrap().into_iter().map(|x| x.task.id).collect();
    assert_eq!(left, vec![fresh.id]);
    assert!(t.db.user(bob).tasks().trash(50).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_profile_holds_names_bio_and_avatar_and_email_verification_is_not_the_users_to_set() {
    let t = TestDb::new().await;
    let alice = t.user("alice@example.com").await;
    let me = t.db.user(alice);
    let fresh = me.profile().get().await.unwrap();
    assert_eq!((fresh.first_name.as_str(), fresh.bio.as_str(), fresh.avatar_url.clone()), ("", "", None));
    assert!(!fresh.email_verified);
    let patch = UserPatch {
        first_name: Some(ProfileText::parse("first_name", " Ada ", ProfileText::NAME_MAX).unwrap()),
        last_name: Some(ProfileText::parse("last_name", "Lovelace", ProfileText::NAME_MAX).unwrap()),
        bio: Some(ProfileText::parse("bio", "Analyst.", ProfileText::BIO_MAX).unwrap()),
        avatar_url: Some(Some(AvatarUrl::parse("https://cdn.example.com/a.png").unwrap())),
        ..Default::default()
    };
    let u = me.profile().update(&patch).await.unwrap();
    assert_eq!((u.first_name.as_str(), u.last_name.as_str(), u.bio.as_str()), ("Ada", "Lovelace", "Analyst."));
    assert_eq!(u.avatar_url.as_deref(), Some("https://cdn.example.com/a.png"));
    let cleared = me.profile().update(&UserPatch { avatar_url: Some(None), ..Default::default() }).await.unwrap();
    assert_eq!((cleared.avatar_url, cleared.first_name.as_str()), (None, "Ada"), "only the avatar goes");
    // Bad input names its field; the database refuses what slips past the library.
    let long = "x".repeat(501);
    assert!(matches!(
        ProfileText::parse("bio", &long, ProfileText::BIO_MAX),
        Err(Error::Validation { field: "bio", .. })
    ));
    for bad in ["javascript:alert(1)", "ftp://x.example/a", "not a url", "https://"] {
        assert!(matches!(AvatarUrl::parse(bad), Err(Error::Validation { field: "avatar_url", .. })), "{bad}");
    }
    let err = me.query("update users set bio = repeat('b', 501) where id = $1", &[&alice.0]).await.unwrap_err();
    assert!(matches!(err, Error::Validation { field: "bio", .. }), "{err:?}");
    // Only a verification (the owner login) sets email_verified: the app role may not.
    let err = me.query("update users set email_verified = true where id = $1", &[&alice.0]).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    assert!(!me.profile().get().await.unwrap().email_verified);
}

#[tokio::test]
async fn preferences_default_until_set_are_typed_and_each_users_own() {
    let t = TestDb::new().await;
    let (alice, bob) = (t.user("alice@example.com").await, t.user("bob@example.com").await);
    let me = t.db.user(alice);
    assert_eq!(me.profile().preferences().await.unwrap(), Preferences::default());
    // An empty patch stores the database's defaults: the library's defaults are the same.
    assert_eq!(me.profile().set_preferences(&PreferencesPatch::default()).await.unwrap(), Preferences::default());
    let set = PreferencesPatch {
        theme: Some(Theme::Dark),
        language: Some(Language::parse("pt-BR").unwrap()),
        push_notifications: Some(true),
        profile_visibility: Some(Visibility::Public),
        show_email: Some(true),
        ..Default::default()
    };
    let p = me.profile().set_preferences(&set).await.unwrap();
    assert_eq!(
        (p.theme, p.language.as_str(), p.privacy.profile_visibility),
        (Theme::Dark, "pt-BR", Visibility::Public)
    );
    assert!(p.notifications.push && p.privacy.show_email);
    assert_eq!(p.notifications.email, Preferences::default().notifications.email, "unset settings keep theirs");
    let light = PreferencesPatch { theme: Some(Theme::Light), ..Default::default() };
    let again = me.profile().set_preferences(&light).await.unwrap();
    assert_eq!((again.theme, again.language.as_str()), (Theme::Light, "pt-BR"));
    assert_eq!(me.profile().preferences().await.unwrap(), again);
    // Bob has his own (the defaults) and cannot read or change Alice's.
    let bobs = t.db.user(bob);
    assert_eq!(bobs.profile().preferences().await.unwrap(), Preferences::default());
    assert!(bobs.query("select * from user_preferences", &[]).await.unwrap().is_empty());
    let n = bobs.query("update user_preferences set theme = 'dark' returning 1", &[]).await.unwrap();
    assert!(n.is_empty());
    for bad in ["english", "EN", "e", "pt_BR", "en-"] {
        assert!(matches!(Language::parse(bad), Err(Error::Validation { field: "language", .. })), "{bad}");
    }
    assert!(matches!("neon".parse::<Theme>(), Err(Error::Validation { field: "theme", .. })));
    let err = me.query("update user_preferences set language = 'English'", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Validation { field: "language", .. }), "{err:?}");
}

#[tokio::test]
async fn a_batch_applies_one_operation_to_many_tasks_in_one_round_trip_and_reports_each_id() {
    use todo_db::store::{BatchOp, BatchOutcome};
    let t = TestDb::new().await;
    let (alice, bob) = (t.user("alice@example.com").await, t.user("bob@example.com").await);
    let scope = t.db.user(alice);
    let tasks = scope.tasks();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(tasks.create(&NewTask::new(&format!("t{i}")).unwrap()).await.unwrap().id);
    }
    let theirs = t.db.user(bob).tasks().create(&NewTask::new("bob's").unwrap()).await.unwrap().id;
    let unknown = TaskId::new();
    tasks.complete(ids[0]).await.unwrap();
    let outcomes = |r: Vec<todo_db::store::BatchResult>| r.into_iter().map(|r| r.outcome).collect::<Vec<_>>();
    let list = [ids[0], ids[1], theirs, unknown, ids[2]];
    let r = tasks.batch(&list, &BatchOp::Complete).await.unwrap();
    assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), list, "in the order given");
    use BatchOutcome::*;
    assert_eq!(outcomes(r), [Unchanged, Updated, NotFound, NotFound, Updated]);
    assert!(!t.db.user(bob).tasks().get(theirs).await.unwrap().completed, "another user's task is untouched");
    let all = tasks.list(&TaskFilter::default()).await.unwrap().items;
    assert!(all.iter().all(|t| t.completed && t.status == TaskStatus::Done));
    let r = tasks.batch(&ids, &BatchOp::SetStatus(TaskStatus::Review)).await.unwrap();
    assert_eq!(outcomes(r), [Updated, Updated, Updated]);
    assert!(tasks
        .list(&TaskFilter::default())
        .await
        .unwrap()
        .items
        .iter()
        .all(|t| !t.completed && t.status == TaskStatus::Review));
    let r = tasks.batch(&ids[..2], &BatchOp::SetPriority(Priority::Urgent)).await.unwrap();
    assert_eq!(outcomes(r), [Updated, Updated]);
    let r = tasks.batch(&ids[..2], &BatchOp::SetPriority(Priority::Urgent)).await.unwrap();
    assert_eq!(outcomes(r), [Unchanged, Unchanged]);
    let r = tasks.batch(&[ids[0], ids[1], theirs], &BatchOp::AddTag(tag("Q4"))).await.unwrap();
    assert_eq!(outcomes(r), [Updated, Updated, NotFound]);
    assert_eq!(tasks.get(ids[1]).await.unwrap().tags, vec!["Q4"]);
    let r = tasks.batch(&[ids[0], ids[2]], &BatchOp::RemoveTag(tag("q4"))).await.unwrap();
    assert_eq!(outcomes(r), [Updated, Unchanged]);
    // Trash and restore, tags kept; a live task that took a trashed one's id is refused.
    let r = tasks.batch(&ids, &BatchOp::Trash).await.unwrap();
    assert_eq!(outcomes(r), [Updated, Updated, Updated]);
    assert!(tasks.list(&TaskFilter::default()).await.unwrap().items.is_empty());
    let mut squatter = NewTask::new("squatter").unwrap();
    squatter.id = ids[2];
    tasks.create(&squatter).await.unwrap();
    let r = tasks.batch(&[ids[1], ids[2], unknown], &BatchOp::Restore).await.unwrap();
    let got = outcomes(r);
    assert_eq!(got[0], Updated);
    assert!(matches!(&got[1], Refused { reason } if reason.contains("live task")), "{got:?}");
    assert_eq!(got[2], NotFound);
    assert_eq!(tasks.get(ids[1]).await.unwrap().tags, vec!["Q4"]);
    assert_eq!(tasks.trash(50).await.unwrap().len(), 2, "the refused and the untouched stay in the trash");
    // Bad input names the field and writes nothing.
    assert!(matches!(tasks.batch(&[], &BatchOp::Complete).await, Err(Error::Validation { field: "ids", .. })));
    let twice = tasks.batch(&[ids[1], ids[1]], &BatchOp::Reopen).await;
    assert!(matches!(twice, Err(Error::Validation { field: "ids", .. })));
    assert_eq!(tasks.get(ids[1]).await.unwrap().status, TaskStatus::Review);
}

#[tokio::test]
async fn statistics_count_tasks_by_priority_and_status_and_tags_by_use_with_autocomplete() {
    let t = TestDb::new().await;
    let (alice, bob) = (t.user("alice@example.com").await, t.user("bob@example.com").await);
    let scope = t.db.user(alice);
    let tasks = scope.tasks();
    let past = OffsetDateTime::now_utc() - Duration::days(1);
    let a = tasks.create(&NewTask::new("a").unwrap().priority(Priority::Urgent).due_at(past)).await.unwrap();
    let b =
        tasks.create(&NewTask::new("b").unwrap().priority(Priority::Urgent).status(TaskStatus::Done)).await.unwrap();
    let c = tasks.create(&NewTask::new("c").unwrap().status(TaskStatus::Blocked)).await.unwrap();
    let d = tasks.create(&NewTask::new("d").unwrap()).await.unwrap();
    tasks.delete(d.id).await.unwrap();
    t.db.user(bob).tasks().create(&NewTask::new("bob's").unwrap().priority(Priority::Low)).await.unwrap();
    let s = tasks.statistics().await.unwrap();
    assert_eq!((s.total, s.completed, s.pending, s.overdue, s.trashed), (3, 1, 2, 1, 1));
    assert_eq!(s.by_priority[&Priority::Urgent], 2);
    assert_eq!(s.by_priority[&Priority::Medium], 1);
    assert_eq!(s.by_priority[&Priority::Low], 0, "another user's task is not counted; zeros are listed");
    assert_eq!(s.by_priority.len(), 4);
    assert_eq!(
        (s.by_status[&TaskStatus::Done], s.by_status[&TaskStatus::Blocked], s.by_status[&TaskStatus::Todo]),
        (1, 1, 1)
    );
    assert_eq!(s.by_status.len(), 5);
    // Tags: tasks per tag, most used first; autocomplete by prefix, ignoring case.
    tasks.tag(a.id, &[tag("Work"), tag("worm_farm")]).await.unwrap();
    tasks.tag(b.id, &[tag("work")]).await.unwrap();
    tasks.tag(c.id, &[tag("Home"), tag("work")]).await.unwrap();
    t.db.user(bob).tags().create(&tag("Workshop"), None).await.unwrap();
    let stats = scope.tags().statistics().await.unwrap();
    let names: Vec<(String, i64)> = stats.iter().map(|u| (u.tag.name.clone(), u.tasks)).collect();
    assert_eq!(names, [("Work".to_string(), 3), ("Home".to_string(), 1), ("worm_farm".to_string(), 1)]);
    let wo: Vec<String> = scope.tags().autocomplete("WO", 10).await.unwrap().into_iter().map(|u| u.tag.name).collect();
    assert_eq!(wo, ["Work", "worm_farm"], "bob's Workshop is not offered");
    let literal: Vec<String> =
        scope.tags().autocomplete("worm_", 10).await.unwrap().into_iter().map(|u| u.tag.name).collect();
    assert_eq!(literal, ["worm_farm"]);
    assert!(scope.tags().autocomplete("w%", 10).await.unwrap().is_empty(), "% is literal");
    assert_eq!(scope.tags().autocomplete("w", 1).await.unwrap().len(), 1);
    assert!(matches!(scope.tags().autocomplete("w", 0).await, Err(Error::Validation { field: "limit", .. })));
}
