-- todo-db core schema: users, tasks, tags, task_tags.
-- Runs as todo_owner (the runner sets the role), so todo_owner owns every object.
-- Every user-owned row carries user_id: the RLS key and the leading column of the main indexes.

create type task_priority as enum ('low', 'medium', 'high', 'urgent');
create type task_status as enum ('todo', 'in_progress', 'review', 'done', 'blocked');

-- Keeps updated_at honest without trusting every writer to set it.
create function set_updated_at() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create table users (
    id             uuid primary key,
    email          text not null,
    display_name   text not null default '',
    first_name     text not null default '',
    last_name      text not null default '',
    bio            text not null default '',
    avatar_url     text,
    email_verified boolean not null default false,
    password_hash  text,
    is_active      boolean not null default true,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    last_login_at  timestamptz,
    constraint users_email_format check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$' and octet_length(email) <= 254),
    constraint users_display_name_length check (char_length(display_name) <= 100),
    constraint users_first_name_length check (char_length(first_name) <= 100),
    constraint users_last_name_length check (char_length(last_name) <= 100),
    constraint users_bio_length check (char_length(bio) <= 500),
    constraint users_avatar_url_format check (avatar_url ~ '^https?://[^[:space:]]+$' and octet_length(avatar_url) <= 500)
);
-- Unique ignoring case: Alice@x and alice@x are one account.
create unique index users_email_key on users (lower(email));

create table tasks (
    id            uuid primary key,
    user_id       uuid not null references users (id) on delete cascade,
    title         text not null,
    description   text not null default '',
    priority      task_priority not null default 'medium',
    status        task_status not null default 'todo',
    completed     boolean not null default false,
    completed_at  timestamptz,
    due_at        timestamptz,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint tasks_title_trimmed check (title = btrim(title)),
    constraint tasks_title_length check (char_length(title) between 1 and 255),
    constraint tasks_description_length check (char_length(description) <= 10000),
    -- completed_at is set exactly when the task is completed, and a task is completed exactly
    -- when its status is done.
    constraint tasks_completed_at_matches check (completed = (completed_at is not null)),
    constraint tasks_status_matches check (completed = (status = 'done'))
);
-- (user_id, id) is unique so task_tags can reference a task *of the same user*.
create unique index tasks_user_id_key on tasks (user_id, id);
-- One index per sort order of the listing, each leading with user_id (keyset pagination).
create index tasks_user_created_idx on tasks (user_id, created_at, id);
create index tasks_user_updated_idx on tasks (user_id, updated_at, id);
create index tasks_user_due_idx on tasks (user_id, (coalesce(due_at, 'infinity'::timestamptz)), id);
create index tasks_user_priority_idx on tasks (user_id, priority, id);

-- The trash: a deleted task moves here whole, with the ids of its tags, until it is restored
-- (back into tasks) or purged. Kept apart from tasks, so that every listing, count, view and
-- index of tasks holds live tasks only, with no filter to forget and no dead rows to skip.
create table task_trash (
    id            uuid primary key,
    user_id       uuid not null references users (id) on delete cascade,
    title         text not null,
    description   text not null,
    priority      task_priority not null,
    status        task_status not null,
    completed     boolean not null,
    completed_at  timestamptz,
    due_at        timestamptz,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    tag_ids       uuid[] not null default '{}',
    deleted_at    timestamptz not null default now()
);
create index task_trash_user_deleted_idx on task_trash (user_id, deleted_at, id);
create index task_trash_deleted_idx on task_trash (deleted_at);

create table tags (
    id          uuid primary key,
    user_id     uuid not null references users (id) on delete cascade,
    name        text not null,
    color       text,
    created_at  timestamptz not null default now(),
    constraint tags_name_length check (char_length(name) between 1 and 50 and name = btrim(name)),
    constraint tags_color_format check (color is null or color ~ '^#[0-9a-f]{6}$')
);
create unique index tags_user_name_key on tags (user_id, lower(name));
create unique index tags_user_id_key on tags (user_id, id);

create table task_tags (
    user_id  uuid not null,
    task_id  uuid not null,
    tag_id   uuid not null,
    constraint task_tags_pkey primary key (user_id, task_id, tag_id),
    -- Composite keys: a task can only carry tags of its own user.
    constraint task_tags_task_fkey foreign key (user_id, task_id) references tasks (user_id, id) on delete cascade,
    constraint task_tags_tag_fkey foreign key (user_id, tag_id) references tags (user_id, id) on delete cascade
);
create index task_tags_tag_idx on task_tags (user_id, tag_id);

create trigger users_set_updated_at before update on users
    for each row when (old is distinct from new) execute function set_updated_at();
create trigger tasks_set_updated_at before update on tasks
    for each row when (old is distinct from new) execute function set_updated_at();

-- Row-level security: the app role sees and changes only the rows of the user whose id the
-- transaction set in app.user_id. A missing or empty identity matches no row (nullif -> null),
-- never all rows and never a cast error. The (select ...) wrapper evaluates it once per statement.
-- todo_db_isolate(table, column, commands) enables and forces RLS on a table (forced: its owner is
-- held to it too) and gives todo_app one policy per command, named <table>_<command>, matching
-- the column that names each row's user against app.user_id.
create function todo_db_isolate(tbl regclass, owner_column text, commands text[]) returns void
language plpgsql set search_path = pg_catalog, public as $$
declare
    me constant text := '(select nullif(current_setting(''app.user_id'', true), '''')::uuid)';
    rule text := format('(%I = %s)', owner_column, me);
    name text := (select relname from pg_class where oid = tbl);
    command text;
begin
    execute format('alter table %s enable row level security', tbl);
    execute format('alter table %s force row level security', tbl);
    foreach command in array commands loop
        execute format('create policy %I on %s for %s to todo_app %s', name || '_' || command, tbl, command,
                       case command
                           when 'insert' then 'with check ' || rule
                           when 'update' then format('using %s with check %s', rule, rule)
                           else 'using ' || rule
                       end);
    end loop;
end
$$;

select todo_db_isolate('users', 'id', array['select', 'update', 'delete']);
select todo_db_isolate('tasks', 'user_id', array['select', 'insert', 'update', 'delete']);
select todo_db_isolate('tags', 'user_id', array['select', 'insert', 'update', 'delete']);
select todo_db_isolate('task_tags', 'user_id', array['select', 'insert', 'delete']);
select todo_db_isolate('task_trash', 'user_id', array['select', 'insert', 'delete']);

-- The app role gets DML only; it owns nothing.
grant select, update, delete on users to todo_app;
grant select, insert, update, delete on tasks, tags to todo_app;
grant select, insert, delete on task_tags, task_trash to todo_app;
