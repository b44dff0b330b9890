-- todo-db database-level settings, such as the "protected" mark that makes destructive commands
-- (reset, seed, restore --replace) refuse without --force. Owner-only: the app role has no access.

create table todo_db_settings (
    name        text primary key,
    value       text not null,
    updated_at  timestamptz not null default now(),
    updated_by  text not null default session_user,
    constraint settings_name_known check (name in ('protected'))
);
comment on table todo_db_settings is 'todo-db database settings (todo-db protect on|off)';
