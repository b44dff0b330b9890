//! A database in the original Python module's shape (`../shared/ORIGINAL-MODULE.md`: its tables
//! as SQLModel creates them, naive UTC timestamps, no CHECK constraints), for the import's tests
//! and benchmark.

/// The original's tables, indexes and keys.
pub const SCHEMA: &str = "
create table users (
    id uuid primary key, email varchar not null, first_name varchar(100) not null, last_name varchar(100) not null,
    display_name varchar(100), bio varchar(500), avatar_url varchar(500), avatar_thumbnail_url varchar(500),
    is_active boolean not null, email_verified boolean not null, password_hash varchar not null,
    last_login_at timestamp, created_at timestamp not null, updated_at timestamp not null);
create unique index ix_users_email on users (email);
create table tasks (
    id uuid primary key, user_id uuid not null references users (id), title varchar(255) not null,
    description varchar(1000), completed boolean not null, priority varchar not null, status varchar not null,
    due_date timestamp, completed_at timestamp, deleted boolean not null, deleted_at timestamp,
    created_at timestamp not null, updated_at timestamp not null);
create index ix_tasks_user_id on tasks (user_id);
create index ix_tasks_completed on tasks (completed);
create index ix_tasks_priority on tasks (priority);
create index ix_tasks_status on tasks (status);
create index ix_tasks_due_date on tasks (due_date);
create index ix_tasks_deleted on tasks (deleted);
create index ix_tasks_created_at on tasks (created_at);
create index ix_tasks_updated_at on tasks (updated_at);
create table task_tags (
    id uuid primary key, task_id uuid not null references tasks (id), tag varchar(50) not null,
    created_at timestamp not null);
create table task_history (
    id uuid primary key, task_id uuid not null references tasks (id), user_id uuid not null references users (id),
    change_type varchar(50) not null, old_value json, new_value json, created_at timestamp not null);
create table user_preferences (
    id uuid primary key, user_id uuid not null unique references users (id), theme varchar not null,
    language varchar(10) not null, notifications json, privacy json, created_at timestamp not null,
    updated_at timestamp not null);
create table password_reset_tokens (
    id uuid primary key, user_id uuid not null references users (id), token_hash varchar not null,
    expires_at timestamp not null, used boolean not null, created_at timestamp not null);
create table email_verification_tokens (
    id uuid primary key, user_id uuid not null references users (id), token_hash varchar not null,
    expires_at timestamp not null, created_at timestamp not null);
create table daily_analytics (
    id uuid primary key, user_id uuid not null references users (id), date date not null, tasks_created int,
    tasks_completed int, tasks_deleted int, completion_rate float8);
create table analytics_cache (
    id uuid primary key, user_id uuid not null references users (id), metric_name varchar not null,
    metric_value json, expires_at timestamp);
create table security_audit_log (
    id uuid primary key, event_type varchar not null, user_id uuid, ip_address varchar(45), user_agent varchar,
    resource_type varchar, resource_id varchar, action varchar, status varchar, details jsonb,
    created_at timestamp not null);
";

/// Fills the original's tables with `users` users of `tasks_per_user` tasks each, generated on
/// the server: a tenth of the tasks soft-deleted, 40% completed, a tag on every other task (two
/// spellings of one), one history entry per task, preferences for every user. No password is
/// a real one.
pub fn generated(users: u64, tasks_per_user: u64) -> String {
    format!(
        "
insert into users (id, email, first_name, last_name, display_name, is_active, email_verified, password_hash, created_at, updated_at)
select md5('u' || i)::uuid, 'user' || i || '@original.example', 'First' || i, 'Last' || i, null, true, i % 2 = 0,
       '$2b$04$' || rpad(md5(i::text), 53, 'x'), localtimestamp - interval '400 days', localtimestamp - interval '1 day'
from generate_series(1, {users}) i;
insert into tasks (id, user_id, title, description, completed, priority, status, due_date, completed_at, deleted,
                   deleted_at, created_at, updated_at)
select md5('t' || u || '/' || j)::uuid, md5('u' || u)::uuid, 'Task ' || j || ' of user ' || u,
       case when j % 3 = 0 then '' else 'Description of task ' || j end, j % 5 < 2,
       (array['low', 'medium', 'medium', 'high', 'urgent'])[1 + j % 5],
       case when j % 5 < 2 then 'done' else (array['todo', 'in_progress', 'review', 'blocked'])[1 + j % 4] end,
       case when j % 4 = 0 then null else localtimestamp + (j % 30 - 15) * interval '1 day' end,
       case when j % 5 < 2 then localtimestamp - (j % 20) * interval '1 day' end, j % 10 = 9,
       case when j % 10 = 9 then localtimestamp - interval '2 days' end,
       localtimestamp - (30 + j % 300) * interval '1 day', localtimestamp - (j % 20) * interval '1 day'
from generate_series(1, {users}) u, generate_series(1, {tasks_per_user}) j;
insert into task_tags (id, task_id, tag, created_at)
select md5('g' || u || '/' || j)::uuid, md5('t' || u || '/' || j)::uuid,
       (array['work', 'Work', 'home', 'errands', 'Urgent'])[1 + j % 5], localtimestamp - interval '10 days'
from generate_series(1, {users}) u, generate_series(1, {tasks_per_user}) j where j % 2 = 0;
insert into task_history (id, task_id, user_id, change_type, old_value, new_value, created_at)
select md5('h' || u || '/' || j)::uuid, md5('t' || u || '/' || j)::uuid, md5('u' || u)::uuid, 'task_created', null,
       json_build_object('title', 'Task ' || j), localtimestamp - (30 + j % 300) * interval '1 day'
from generate_series(1, {users}) u, generate_series(1, {tasks_per_user}) j;
insert into user_preferences (id, user_id, theme, language, notifications, privacy, created_at, updated_at)
select md5('p' || i)::uuid, md5('u' || i)::uuid, (array['light', 'dark', 'system'])[1 + i % 3], 'en',
       '{{\"email_notifications\": true, \"weekly_summary\": false}}', '{{\"profile_visibility\": \"private\"}}',
       localtimestamp, localtimestamp
from generate_series(1, {users}) i;
"
    )
}
