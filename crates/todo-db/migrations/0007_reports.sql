-- The reporting views with the columns the original module's reports read (its names: id,
-- due_date, total_tasks, user_email, priority_order, days_overdue, tags, ...), todo-db's own
-- columns beside them (due today, completion rate, streak, on-time share), and the per-priority
-- counts under a name of their own (task_priority_counts). Same rules as 0004: security_invoker,
-- "now" is the transaction's now(), calendar days in app.time_zone (default UTC); the window of
-- recently_completed_tasks is app.recent_days days, now 30 by default (the original's window).
-- Tasks in the trash are not in tasks, so no view counts or lists them.

drop view user_task_summary, tasks_by_priority, overdue_tasks, recently_completed_tasks,
    user_productivity_metrics, tasks_with_tags;

-- Urgency rank of a priority: urgent 1, high 2, medium 3, low 4. Plain SQL: inlined into the views.
create function priority_order(p task_priority) returns int language sql immutable parallel safe as $$
    select case p when 'urgent' then 1 when 'high' then 2 when 'medium' then 3 else 4 end
$$;

create view user_task_summary with (security_invoker = true) as
select u.id as user_id,
       u.email,
       u.first_name,
       u.last_name,
       a.total_tasks,
       a.completed_tasks,
       a.pending_tasks,
       a.overdue_tasks,
       a.urgent_tasks,
       a.high_priority_tasks,
       a.last_task_created,
       a.last_task_completed,
       a.due_today,
       a.completion_rate,
       a.last_activity
from users u
cross join report_today d
cross join lateral (
    select count(*) as total_tasks,
           count(*) filter (where t.completed) as completed_tasks,
           count(*) filter (where not t.completed) as pending_tasks,
           count(*) filter (where not t.completed and t.due_at < now()) as overdue_tasks,
           count(*) filter (where not t.completed and t.priority = 'urgent') as urgent_tasks,
           count(*) filter (where not t.completed and t.priority = 'high') as high_priority_tasks,
           max(t.created_at) as last_task_created,
           max(t.completed_at) as last_task_completed,
           count(*) filter (where not t.completed and t.due_at >= d.today_start and t.due_at < d.tomorrow_start) as due_today,
           round(count(*) filter (where t.completed)::numeric / nullif(count(*), 0), 4)::float8 as completion_rate,
           max(t.updated_at) as last_activity
    from tasks t
    where t.user_id = u.id
) a;

create view task_priority_counts with (security_invoker = true) as
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

-- Open tasks in urgency order: priority, then due date (undated last), then newest.
create view tasks_by_priority with (security_invoker = true) as
select t.id, t.user_id, t.title, t.description, t.priority, t.status, t.due_at as due_date, t.completed,
       t.created_at, t.updated_at,
       u.email as user_email, u.first_name as user_first_name, u.last_name as user_last_name,
       priority_order(t.priority) as priority_order
from tasks t
join users u on u.id = t.user_id
where not t.completed
order by priority_order(t.priority), t.due_at nulls last, t.created_at desc, t.id;

create view overdue_tasks with (security_invoker = true) as
select t.id, t.user_id, t.title, t.description, t.priority, t.status, t.due_at as due_date, t.completed,
       t.created_at, t.updated_at,
       u.email as user_email, u.first_name as user_first_name, u.last_name as user_last_name,
       extract(day from now() - t.due_at)::int as days_overdue,
       now() - t.due_at as overdue_by
from tasks t
join users u on u.id = t.user_id
where not t.completed and t.due_at < now()
order by t.due_at, t.id;

-- The window's start as a scalar subquery: computed once (an InitPlan), not for every row.
create view recently_completed_tasks with (security_invoker = true) as
select t.id, t.user_id, t.title, t.description, t.priority, t.status, t.due_at as due_date, t.completed,
       t.created_at, t.updated_at, t.completed_at,
       u.email as user_email, u.first_name as user_first_name, u.last_name as user_last_name,
       extract(day from t.completed_at - t.created_at)::int as days_to_complete
from tasks t
join users u on u.id = t.user_id
where t.completed
  and t.completed_at >= (select now() - make_interval(days => coalesce(nullif(current_setting('app.recent_days', true), '')::int, 30)))
order by t.completed_at desc, t.id desc;

create view user_productivity_metrics with (security_invoker = true) as
select u.id as user_id,
       u.email,
       u.first_name,
       u.last_name,
       a.active_days,
       a.total_completed,
       a.completed_last_7_days,
       a.completed_last_30_days,
       a.avg_days_to_complete,
       a.completed_before_due,
       a.completed_after_due,
       a.created_last_7_days,
       a.avg_completion_seconds,
       a.on_time_rate,
       s.streak as current_streak_days
from users u
cross join report_today d
cross join lateral (
    select count(distinct (t.created_at at time zone report_time_zone())::date) as active_days,
           count(*) filter (where t.completed) as total_completed,
           count(*) filter (where t.completed and t.completed_at >= now() - interval '7 days') as completed_last_7_days,
           count(*) filter (where t.completed and t.completed_at >= now() - interval '30 days') as completed_last_30_days,
           round((extract(epoch from avg(t.completed_at - t.created_at) filter (where t.completed)) / 86400)::numeric, 2)::float8
               as avg_days_to_complete,
           count(*) filter (where t.completed and t.completed_at <= t.due_at) as completed_before_due,
           count(*) filter (where t.completed and t.completed_at > t.due_at) as completed_after_due,
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

-- Each task with its tags' names (case-insensitive name order) and ids; empty arrays when none.
create view tasks_with_tags with (security_invoker = true) as
select t.id, t.user_id, t.title, t.description, t.priority, t.status, t.due_at as due_date, t.completed,
       t.created_at, t.updated_at,
       coalesce(array_agg(g.name order by lower(g.name)) filter (where g.id is not null), '{}') as tags,
       count(g.id) as tag_count,
       coalesce(array_agg(g.id order by lower(g.name)) filter (where g.id is not null), '{}') as tag_ids
from tasks t
left join task_tags tt on tt.user_id = t.user_id and tt.task_id = t.id
left join tags g on g.user_id = tt.user_id and g.id = tt.tag_id
group by t.id;

grant select on user_task_summary, task_priority_counts, tasks_by_priority, overdue_tasks, recently_completed_tasks,
    user_productivity_metrics, tasks_with_tags to todo_app;
grant execute on function priority_order(task_priority) to todo_app;

comment on view user_task_summary is
    'todo-db: per user, email and names, task counts (total, completed, pending, overdue, open urgent and high, due today in app.time_zone), last created and completed, completion rate, last activity';
comment on view task_priority_counts is
    'todo-db: per user and priority (all four, zeros included), task counts: total, completed, pending, overdue';
comment on view tasks_by_priority is
    'todo-db: open tasks in urgency order (priority_order: urgent 1 .. low 4, then due date, undated last, then newest), with the user''s email and names';
