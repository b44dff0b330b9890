-- todo-db reporting: user_task_summary and tasks_by_priority count each user's tasks in a lateral
-- subquery; recently_completed_tasks computes its window's start once per query.
--
-- user_task_summary joined users to tasks and grouped the joined rows by the user and report_today's
-- day bounds. The planner pulls report_today into the query, so its expressions (the report time
-- zone read from app.time_zone, now() converted into that zone, the day's start and end) were
-- evaluated for every task row: in the GROUP BY key and in the due-today filter. Counted per user in
-- a lateral subquery, the day bounds are the subquery's parameters, computed once per user.
-- Measured on 5 000 users x 200 tasks (BENCHMARKS.md, session 22): one user's summary ~240 us of
-- server time instead of ~360, with a non-UTC time zone ~280 instead of ~470.
--
-- tasks_by_priority joined users, the four priorities and tasks, then grouped everything: a page of
-- users (`limit`) meant aggregating all of them first. Per user and priority in a lateral subquery
-- it reads tasks_user_priority_idx for exactly the rows it returns: one user ~190 us instead of
-- ~260-340, the first 2 500 users of 10 000 in 0.15 s instead of 0.5 s.
--
-- recently_completed_tasks compared each completion time with `now() - app.recent_days days`
-- computed for every completed task a read without a user (an admin's) scanned; as a scalar
-- subquery it is computed once (an InitPlan), and a user's read still enters
-- tasks_user_completed_idx with it: every user's first 10 000 rows 0.13-0.18 s instead of 0.30.
--
-- Same rows, same columns: compared with EXCEPT both ways over every user.

create or replace view user_task_summary with (security_invoker = true) as
select u.id as user_id,
       a.total,
       a.completed,
       a.pending,
       a.overdue,
       a.due_today,
       a.completion_rate,
       a.last_activity
from users u
cross join report_today d
cross join lateral (
    select count(*) as total,
           count(*) filter (where t.completed) as completed,
           count(*) filter (where not t.completed) as pending,
           count(*) filter (where not t.completed and t.due_at < now()) as overdue,
           count(*) filter (where not t.completed and t.due_at >= d.today_start and t.due_at < d.tomorrow_start) as due_today,
           round(count(*) filter (where t.completed)::numeric / nullif(count(*), 0), 4)::float8 as completion_rate,
           max(t.updated_at) as last_activity
    from tasks t
    where t.user_id = u.id
) a;

create or replace view tasks_by_priority with (security_invoker = true) as
select u.id as user_id,
       p.priority,
       a.total,
       a.completed,
       a.pending,
       a.overdue
from users u
cross join unnest(enum_range(null::task_priority)) as p(priority)
cross join lateral (
    select count(*) as total,
           count(*) filter (where t.completed) as completed,
           count(*) filter (where not t.completed) as pending,
           count(*) filter (where not t.completed and t.due_at < now()) as overdue
    from tasks t
    where t.user_id = u.id and t.priority = p.priority
) a;

create or replace view recently_completed_tasks with (security_invoker = true) as
select t.id as task_id, t.user_id, t.title, t.priority, t.completed_at, t.due_at
from tasks t
where t.completed
  and t.completed_at >= (select now() - make_interval(days => coalesce(nullif(current_setting('app.recent_days', true), '')::int, 7)))
order by t.completed_at desc, t.id desc;

comment on view user_task_summary is
    'todo-db: per user, task counts (total, completed, pending, overdue, due today in app.time_zone), completion rate, last activity';
comment on view tasks_by_priority is
    'todo-db: per user and priority (all four, zeros included), task counts: total, completed, pending, overdue';
