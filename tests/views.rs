//! Reporting views with hand-built data whose answers are known.

use todo_db_testkit::harness as common;

use common::TestDb;
use todo_db::db::Stmt;
use todo_db::model::{Priority, TaskStatus, UserId};
use todo_db::views::{self, *};
use todo_db::Error;
use uuid::Uuid;

/// Inserts a task with explicit times, written as SQL expressions relative to now().
async fn task(
    t: &TestDb,
    user: UserId,
    title: &str,
    priority: &str,
    created: &str,
    completed: Option<&str>,
    due: Option<&str>,
) -> Uuid {
    let id = Uuid::now_v7();
    let sql = format!(
        "insert into tasks (id, user_id, title, priority, created_at, completed, status, completed_at, due_at) \
         values ($1, $2, $3, $4::text::task_priority, {created}, {}, '{}', {}, {})",
        completed.is_some(),
        if completed.is_some() { "done" } else { "todo" },
        completed.unwrap_or("null"),
        due.unwrap_or("null")
    );
    t.db.admin().query(&sql, &[&id, &user.0, &title, &priority]).await.unwrap();
    id
}

fn opts() -> ReportOptions {
    ReportOptions::default()
}

#[tokio::test]
async fn summary_counts_overdue_due_today_and_completion_rate() {
    let t = TestDb::new().await;
    let (a, empty) = (t.user("sum@example.com").await, t.user("empty@example.com").await);
    // Due yesterday: overdue, and not due today whatever the time of day.
    task(
        &t,
        a,
        "overdue",
        "high",
        "now() - interval '2 days'",
        None,
        Some("date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '1 hour'"),
    )
    .await;
    task(
        &t,
        a,
        "due today",
        "low",
        "now() - interval '2 days'",
        None,
        Some("date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' + interval '23:59:59.999'"),
    )
    .await;
    task(
        &t,
        a,
        "done on time",
        "medium",
        "now() - interval '3 days'",
        Some("now() - interval '2 days'"),
        Some("now() - interval '1 day'"),
    )
    .await;
    task(
        &t,
        a,
        "done late",
        "urgent",
        "now() - interval '3 days'",
        Some("now() - interval '1 day'"),
        Some("now() - interval '2 days'"),
    )
    .await;

    let mine = views::read::<TaskSummary>(&t.db.user(a), &opts()).await.unwrap();
    assert_eq!(mine.len(), 1);
    let s = &mine[0];
    assert_eq!((s.total_tasks, s.completed_tasks, s.pending_tasks, s.overdue_tasks, s.due_today), (4, 2, 2, 1, 1));
    // Open urgent and high only: the urgent task is done, the high one is open.
    assert_eq!((s.urgent_tasks, s.high_priority_tasks), (0, 1));
    assert_eq!(s.email, "sum@example.com");
    assert!(s.last_task_created.is_some() && s.last_task_completed.is_some());
    assert!(s.last_task_completed <= s.last_activity);
    assert_eq!(s.completion_rate, Some(0.5));
    assert!(s.last_activity.is_some());

    let none = views::read::<TaskSummary>(&t.db.user(empty), &opts()).await.unwrap();
    assert_eq!(
        (none[0].total_tasks, none[0].completion_rate, none[0].last_activity, none[0].last_task_created),
        (0, None, None, None),
        "no tasks: no rate, no activity"
    );

    // Due exactly now is not overdue (overdue is strictly before now), and is due today.
    let id = Uuid::now_v7();
    let rows =
        t.db.admin()
            .pipeline(&[
                Stmt::new(
                    "insert into tasks (id, user_id, title, due_at) values ($1, $2, 'due exactly now', now())",
                    &[&id, &empty.0],
                ),
                Stmt::new("select overdue_tasks, due_today from user_task_summary where user_id = $1", &[&empty.0]),
            ])
            .await
            .unwrap();
    assert_eq!((rows[1][0].get::<_, i64>(0), rows[1][0].get::<_, i64>(1)), (0, 1));

    let all = views::read_all::<TaskSummary>(&t.db, &opts()).await.unwrap();
    assert_eq!(all.len(), 2, "admin sees every user");
    let one = views::read_all::<TaskSummary>(&t.db, &ReportOptions { user: Some(a.0), ..opts() }).await.unwrap();
    assert_eq!(one, mine);
}

#[tokio::test]
async fn due_today_is_the_calendar_day_of_the_report_time_zone() {
    let t = TestDb::new().await;
    let a = t.user("zones@example.com").await;
    // Open tasks due every five hours from 30 hours ago to 30 hours ahead, and one done today.
    for h in (-30..=30).step_by(5) {
        task(
            &t,
            a,
            &format!("due {h}h"),
            "low",
            "now() - interval '2 days'",
            None,
            Some(&format!("now() + interval '{h} hours'")),
        )
        .await;
    }
    task(&t, a, "done", "low", "now() - interval '2 days'", Some("now()"), Some("now()")).await;
    let me = t.db.user(a);
    // UTC+14 and UTC-11 (never on the same date) and UTC+1/+2.
    let mut counts = Vec::new();
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Paris"] {
        let o = ReportOptions { time_zone: Some(zone.into()), ..opts() };
        let got = views::read::<TaskSummary>(&me, &o).await.unwrap()[0].due_today;
        // The same question asked another way: open tasks whose due date, read on that zone's
        // clock, is that zone's date now.
        let want: i64 = me
            .query(
                "select count(*) from tasks where not completed \
                 and (due_at at time zone $1)::date = (now() at time zone $1)::date",
                &[&zone],
            )
            .await
            .unwrap()[0]
            .get(0);
        assert_eq!(got, want, "due today in {zone}");
        counts.push(got);
    }
    assert!(counts.iter().all(|&c| (4..=5).contains(&c)), "a day holds 4 or 5 of the 5-hourly tasks: {counts:?}");
}

#[tokio::test]
async fn by_priority_lists_all_four_priorities_with_counts() {
    let t = TestDb::new().await;
    let a = t.user("prio@example.com").await;
    task(&t, a, "u1", "urgent", "now()", None, Some("now() - interval '1 minute'")).await;
    task(&t, a, "u2", "urgent", "now()", Some("now()"), None).await;
    task(&t, a, "l1", "low", "now()", None, None).await;
    let rows = views::read::<PriorityCounts>(&t.db.user(a), &opts()).await.unwrap();
    let got: Vec<(Priority, i64, i64, i64, i64)> =
        rows.iter().map(|r| (r.priority, r.total, r.completed, r.pending, r.overdue)).collect();
    assert_eq!(
        got,
        vec![
            (Priority::Low, 1, 0, 1, 0),
            (Priority::Medium, 0, 0, 0, 0),
            (Priority::High, 0, 0, 0, 0),
            (Priority::Urgent, 2, 1, 1, 1)
        ]
    );
}

#[tokio::test]
async fn tasks_by_priority_lists_open_tasks_in_urgency_order() {
    let t = TestDb::new().await;
    let a = t.user("order@example.com").await;
    let undated = task(&t, a, "urgent, undated", "urgent", "now() - interval '1 hour'", None, None).await;
    let dated = task(&t, a, "urgent, due", "urgent", "now()", None, Some("now() + interval '2 days'")).await;
    let high = task(&t, a, "high", "high", "now()", None, Some("now() + interval '1 hour'")).await;
    let old_low = task(&t, a, "low, older", "low", "now() - interval '2 days'", None, None).await;
    let new_low = task(&t, a, "low, newer", "low", "now() - interval '1 day'", None, None).await;
    task(&t, a, "urgent, done", "urgent", "now()", Some("now()"), None).await;
    let rows = views::read::<PriorityTask>(&t.db.user(a), &opts()).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.task.id).collect::<Vec<_>>(),
        vec![dated, undated, high, new_low, old_low],
        "urgent first, dated before undated, then newest first; done tasks left out"
    );
    assert_eq!(rows.iter().map(|r| r.priority_order).collect::<Vec<_>>(), vec![1, 1, 2, 4, 4]);
    assert_eq!((rows[0].owner.user_email.as_str(), rows[0].task.status), ("order@example.com", TaskStatus::Todo));
}

#[tokio::test]
async fn overdue_is_most_overdue_first_and_recently_completed_honours_its_window() {
    let t = TestDb::new().await;
    let a = t.user("late@example.com").await;
    let week =
        task(&t, a, "a week late", "high", "now() - interval '30 days'", None, Some("now() - interval '7 days'")).await;
    let hour =
        task(&t, a, "an hour late", "high", "now() - interval '30 days'", None, Some("now() - interval '1 hour'"))
            .await;
    task(
        &t,
        a,
        "done, was due",
        "high",
        "now() - interval '30 days'",
        Some("now() - interval '2 days'"),
        Some("now() - interval '3 days'"),
    )
    .await;
    task(&t, a, "not due yet", "high", "now()", None, Some("now() + interval '1 day'")).await;
    task(&t, a, "done long ago", "low", "now() - interval '30 days'", Some("now() - interval '10 days'"), None).await;

    let overdue = views::read::<OverdueTask>(&t.db.user(a), &opts()).await.unwrap();
    assert_eq!(overdue.iter().map(|o| o.task.id).collect::<Vec<_>>(), vec![week, hour]);
    assert!((overdue[0].overdue_seconds - 7.0 * 86400.0).abs() < 120.0);
    assert_eq!(overdue.iter().map(|o| o.days_overdue).collect::<Vec<_>>(), vec![7, 0], "whole days");
    assert_eq!(overdue[0].owner.user_email, "late@example.com");

    // The original's window: 30 days.
    let recent = views::read::<CompletedTask>(&t.db.user(a), &opts()).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.task.title.as_str()).collect::<Vec<_>>(),
        vec!["done, was due", "done long ago"]
    );
    assert_eq!(recent.iter().map(|r| r.days_to_complete).collect::<Vec<_>>(), vec![28, 20]);
    let week =
        views::read::<CompletedTask>(&t.db.user(a), &ReportOptions { recent_days: Some(7), ..opts() }).await.unwrap();
    assert_eq!(week.iter().map(|r| r.task.title.as_str()).collect::<Vec<_>>(), vec!["done, was due"]);
    // The settings ride on the identity statement, after the request context when there is one.
    let traced = t.db.user(a).with_context("req-7", "support ticket");
    let window = ReportOptions { recent_days: Some(14), time_zone: Some("Europe/Paris".into()), ..opts() };
    let with_context = views::read::<CompletedTask>(&traced, &window).await.unwrap();
    assert_eq!(
        with_context.iter().map(|r| r.task.title.as_str()).collect::<Vec<_>>(),
        ["done, was due", "done long ago"]
    );
    let bad = views::read::<CompletedTask>(&t.db.user(a), &ReportOptions { recent_days: Some(0), ..opts() }).await;
    assert!(matches!(bad, Err(Error::Validation { field: "recent_days", .. })));
    let tz =
        views::read::<TaskSummary>(&t.db.user(a), &ReportOptions { time_zone: Some("Mars/Olympus".into()), ..opts() })
            .await;
    assert!(matches!(tz, Err(Error::Validation { field: "time_zone", .. })), "{tz:?}");
}

#[tokio::test]
async fn productivity_counts_windows_average_on_time_share_and_streaks() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("streak@example.com").await, t.user("broken@example.com").await);
    // A: completions today, yesterday, two days ago, then a gap, then four days ago: streak 3.
    let today = "date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'";
    for (i, day) in [0, 1, 2, 4].iter().enumerate() {
        let done = format!("least(now(), {today} - interval '{day} days' + interval '1 minute')");
        let created = format!("{done} - interval '1 hour'");
        let due = if i == 0 {
            Some("now() + interval '1 day'".to_string())
        } else if i == 1 {
            Some(format!("{done} - interval '1 second'"))
        } else {
            None
        };
        task(&t, a, &format!("d{day}"), "medium", &created, Some(&done), due.as_deref()).await;
    }
    task(&t, a, "created, open", "medium", "now() - interval '1 day'", None, None).await;
    task(
        &t,
        a,
        "done 20 days ago",
        "medium",
        "now() - interval '20 days' - interval '1 hour'",
        Some("now() - interval '20 days'"),
        None,
    )
    .await;
    // B: completions yesterday and three days ago, none today: streak 1 (counted to yesterday).
    for day in [1, 3] {
        let done = format!("{today} - interval '{day} days' + interval '1 hour'");
        task(&t, b, "b", "low", &format!("{done} - interval '1 hour'"), Some(&done), None).await;
    }

    let pa = &views::read::<Productivity>(&t.db.user(a), &opts()).await.unwrap()[0];
    assert_eq!(pa.current_streak_days, 3);
    assert_eq!(pa.completed_last_7_days, 4);
    assert_eq!(pa.completed_last_30_days, 5);
    assert_eq!(pa.created_last_7_days, 5);
    assert_eq!(pa.on_time_rate, Some(0.5), "one of two completed tasks with a due time was on time");
    assert!((pa.avg_completion_seconds.unwrap() - 3600.0).abs() < 1.0, "{:?}", pa.avg_completion_seconds);
    assert_eq!(pa.avg_days_to_complete, Some(0.04), "an hour, in days to two decimals");
    assert_eq!(pa.total_completed, 5);
    assert_eq!((pa.completed_before_due, pa.completed_after_due), (1, 1));
    // Creation days: each completion's hour before it (days 1, 2, 3 and 5 back), the open task
    // (day 1 back) and the one done 20 days ago.
    assert_eq!(pa.active_days, 5);
    assert_eq!(pa.email, "streak@example.com");
    let pb = &views::read::<Productivity>(&t.db.user(b), &opts()).await.unwrap()[0];
    assert_eq!(pb.current_streak_days, 1, "a streak broken by one day");
    assert_eq!(pb.on_time_rate, None);
}

#[tokio::test]
async fn tasks_with_tags_includes_untagged_tasks_and_never_mixes_users_tags() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("ta@example.com").await, t.user("tb@example.com").await);
    let sa = t.db.user(a);
    let tagged = sa.tasks().create(&todo_db::model::NewTask::new("tagged").unwrap()).await.unwrap();
    sa.tasks()
        .tag(
            tagged.id,
            &[todo_db::model::TagName::parse("work").unwrap(), todo_db::model::TagName::parse("Alpha").unwrap()],
        )
        .await
        .unwrap();
    let plain = sa.tasks().create(&todo_db::model::NewTask::new("plain").unwrap()).await.unwrap();
    let sb = t.db.user(b);
    let btask = sb.tasks().create(&todo_db::model::NewTask::new("b's").unwrap()).await.unwrap();
    sb.tasks().tag(btask.id, &[todo_db::model::TagName::parse("work").unwrap()]).await.unwrap();

    let rows = views::read::<TaskWithTags>(&sa, &opts()).await.unwrap();
    assert_eq!(rows.len(), 2);
    let with = rows.iter().find(|r| r.task.id == tagged.id.0).unwrap();
    assert_eq!(with.tags, vec!["Alpha".to_string(), "work".to_string()]);
    assert_eq!(with.tag_count, 2);
    let a_tags: Vec<Uuid> = sa.tags().list().await.unwrap().iter().map(|g| g.id.0).collect();
    assert!(with.tag_ids.iter().all(|id| a_tags.contains(id)), "only A's own 'work' tag");
    let without = rows.iter().find(|r| r.task.id == plain.id.0).unwrap();
    assert!(without.tags.is_empty() && without.tag_ids.is_empty() && without.tag_count == 0);
}

#[tokio::test]
async fn user_b_sees_none_of_user_as_rows_through_any_view() {
    let t = TestDb::new().await;
    let (a, b) = (t.user("va@example.com").await, t.user("vb@example.com").await);
    task(&t, a, "late", "high", "now() - interval '2 days'", None, Some("now() - interval '1 day'")).await;
    task(&t, a, "done", "high", "now() - interval '2 days'", Some("now()"), None).await;
    let sb = t.db.user(b);
    let o = opts();
    assert!(views::read::<TaskSummary>(&sb, &o).await.unwrap().iter().all(|r| r.user_id == b.0));
    assert!(views::read::<PriorityCounts>(&sb, &o).await.unwrap().iter().all(|r| r.user_id == b.0 && r.total == 0));
    assert!(views::read::<OverdueTask>(&sb, &o).await.unwrap().is_empty());
    assert!(views::read::<PriorityTask>(&sb, &o).await.unwrap().is_empty());
    assert!(views::read::<CompletedTask>(&sb, &o).await.unwrap().is_empty());
    assert!(views::read::<Productivity>(&sb, &o)
        .await
        .unwrap()
        .iter()
        .all(|r| r.user_id == b.0 && r.completed_last_7_days == 0));
    assert!(views::read::<TaskWithTags>(&sb, &o).await.unwrap().is_empty());
    // Even asking for A's rows by id returns nothing.
    let raw = sb.query("select count(*) from overdue_tasks where user_id = $1", &[&a.0]).await.unwrap();
    assert_eq!(raw[0].get::<_, i64>(0), 0);
}
