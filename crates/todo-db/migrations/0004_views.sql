-- Reporting views. All are security_invoker: a user scope sees only its own rows through them,
-- the admin login sees everyone's.
--
-- Time: "now" is the transaction's now(). Calendar days ("today", streak days) are taken in the
-- time zone named by the transaction setting app.time_zone (default UTC). "Overdue" means open
-- (not completed) with a due time before now. "Due today" means open with a due time within
-- today's calendar day in that zone. The recently-completed window is app.recent_days days
-- (default 7).

-- Plain (inlinable) SQL: no SET clause, so the planner folds it into the views.
create function report_time_zone() returns text language sql stable as $$
    select coalesce(nullif(pg_catalog.current_setting('app.time_zone', true), ''), 'UTC')
$$;

-- Today's calendar day in the report time zone, as [start, end) instants; computed once per query.
create view report_today with (security_invoker = true) as
select ((now() at time zone z.tz)::date)::timestamp at time zone z.tz as today_start,
       ((now() at time zone z.tz)::date + 1)::timestamp at time zone z.tz as tomorrow_start,
       (now() at time zone z.tz)::date as today
from (select report_time_zone() as tz) z;

-- Serve the views' per-user reads.
create index tasks_user_overdue_idx on tasks (user_id, due_at) where not completed;
create index tasks_user_completed_idx on tasks (user_id, completed_at) where completed;

-- Each user's tasks counted in a lateral subquery: the day bounds are its parameters, computed
-- once per user rather than for every task row (docs/architecture.md, "Reporting views").
create view user_task_summary with (security_invoker = true) as
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

-- Per user and priority in a lateral subquery: a page of users reads tasks_user_priority_idx for
-- exactly the rows it returns, rather than aggregating every user first.
create view tasks_by_priority with (security_invoker = true) as
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

create view overdue_tasks with (security_invoker = true) as
select t.id as task_id, t.user_id, t.title, t.priority, t.due_at, now() - t.due_at as overdue_by
from tasks t
where not t.completed and t.due_at < now()
order by t.due_at, t.id;

-- The window's start as a scalar subquery: computed once (an InitPlan), not for every row.
create view recently_completed_tasks with (security_invoker = true) as
select t.id as task_id, t.user_id, t.title, t.priority, t.completed_at, t.due_at
from tasks t
where t.completed
  and t.completed_at >= (select now() - make_interval(days => coalesce(nullif(current_setting('app.recent_days', true), '')::int, 7)))
order by t.completed_at desc, t.id desc;

create view user_productivity_metrics with (security_invoker = true) as
select u.id as user_id,
       a.completed_last_7_days,
       a.completed_last_30_days,
       a.created_last_7_days,
       a.avg_completion_seconds,
       a.on_time_rate,
       s.streak as current_streak_days
from users u
cross join report_today d
cross join lateral (
    select count(*) filter (where t.completed and t.completed_at >= now() - interval '7 days') as completed_last_7_days,
           count(*) filter (where t.completed and t.completed_at >= now() - interval '30 days') as completed_last_30_days,
           count(*) filter (where t.created_at >= now() - interval '7 days') as created_last_7_days,
           extract(epoch from avg(t.completed_at - t.created_at) filter (where t.completed))::float8 as avg_completion_seconds,
           round(count(*) filter (where t.completed and t.due_at is not null and t.completed_at <= t.due_at)::numeric
                 / nullif(count(*) filter (where t.completed and t.due_at is not null), 0), 4)::float8 as on_time_rate
    from tasks t where t.user_id = u.id
) a
cross join lateral (
    -- Consecutive calendar days with a completion, ending today (or yesterday, if nothing has
    -- been completed yet today): day k back from the anchor is the k-th newest completion day.
    with days as (
        select distinct (c.completed_at at time zone report_time_zone())::date as day
        from tasks c where c.user_id = u.id and c.completed
    ), anchor as (
        select case when exists (select 1 from days where day = d.today) then d.today else d.today - 1 end as day
    )
    select count(*) as streak
    from (select x.day, row_number() over (order by x.day desc) as rn
          from days x, anchor a where x.day <= a.day) r, anchor a
    where a.day - r.day = r.rn - 1
) s;

create view tasks_with_tags with (security_invoker = true) as
select t.id as task_id, t.user_id, t.title, t.priority, t.completed, t.due_at,
       coalesce(array_agg(g.name order by lower(g.name)) filter (where g.id is not null), '{}') as tag_names,
       coalesce(array_agg(g.id order by lower(g.name)) filter (where g.id is not null), '{}') as tag_ids
from tasks t
left join task_tags tt on tt.user_id = t.user_id and tt.task_id = t.id
left join tags g on g.user_id = tt.user_id and g.id = tt.tag_id
group by t.id;

grant select on report_today, user_task_summary, tasks_by_priority, overdue_tasks, recently_completed_tasks,
    user_productivity_metrics, tasks_with_tags to todo_app;

comment on view user_task_summary is
    'todo-db: per user, task counts (total, completed, pending, overdue, due today in app.time_zone), completion rate, last activity';
comment on view tasks_by_priority is
    'todo-db: per user and priority (all four, zeros included), task counts: total, completed, pending, overdue';
