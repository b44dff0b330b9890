-- todo-db user preferences: one row per user, typed, under RLS; a user without a row has the
-- defaults (the library reads them from here: `Preferences::default` is checked against them).

create type ui_theme as enum ('light', 'dark', 'system');
create type profile_visibility as enum ('private', 'contacts', 'public');

create table user_preferences (
    user_id              uuid primary key references users (id) on delete cascade,
    theme                ui_theme not null default 'system',
    -- A BCP 47 language tag: en, pt-BR, zh-Hant.
    language             text not null default 'en',
    email_notifications  boolean not null default true,
    push_notifications   boolean not null default false,
    task_reminders       boolean not null default true,
    task_assignments     boolean not null default true,
    task_completions     boolean not null default false,
    weekly_summary       boolean not null default true,
    profile_visibility   profile_visibility not null default 'private',
    show_email           boolean not null default false,
    show_activity        boolean not null default true,
    show_tasks           boolean not null default false,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint user_preferences_language_format check (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$')
);

create trigger user_preferences_set_updated_at before update on user_preferences
    for each row when (old is distinct from new) execute function set_updated_at();

select todo_db_isolate('user_preferences', 'user_id', array['select', 'insert', 'update']);
grant select, insert, update on user_preferences to todo_app;
select audit.attach('user_preferences');
