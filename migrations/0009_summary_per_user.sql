-- todo-db reporting: user_task_summary counts each user's tasks in a lateral subquery.
--
-- Until now the view joined users to tasks and grouped the joined rows by the user and report_today's
-- day bounds. The planner pulls report_today into the query, so its expressions (the report time zone
-- read from app.time_zone, now() converted into that zone, the day's start and end) were evaluated for
-- every task row: in the GROUP BY key and in the due-today filter. Counted per user in a lateral
-- subquery, the day bounds are the subquery's parameters, computed once per user. Same rows, same
-- columns; measured on 5 000 users x 200 tasks (BENCHMARKS.md, session 22): one user's summary
-- ~240 us of server time instead of ~360, with a non-UTC time zone ~280 instead of ~470, and all
-- users' summaries ~0.25 s instead of ~0.85 s.

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

comment on view user_task_summary is
    'todo-db: per user, task counts (total, completed, pending, overdue, due today in app.time_zone), completion rate, last activity';
