-- todo-db audit trail: every change to users, tasks, tags, task_tags and task_trash, append-only, sealed.

create schema audit;
grant usage on schema audit to todo_app;

create table audit.log (
    id          bigint generated always as identity primary key,
    at          timestamptz not null default statement_timestamp(),
    txid        bigint not null default pg_current_xact_id()::text::bigint,
    table_name  text not null,
    record_id   uuid,
    user_id     uuid,
    op          text not null,
    old         jsonb,
    new         jsonb,
    changed     text[],
    actor       text not null,
    request_id  text,
    -- op is not CHECKed: only the capture trigger writes it (from TG_OP), and a CHECK is paid by
    -- every audited write (docs/architecture.md, "The audit log").
    reason      text
);
-- History of one record (record ids are UUIDs: the id alone finds it); everything one user did;
-- a time range (entries arrive in time order, so BRIN serves ranges at almost no cost per insert).
create index log_record_idx on audit.log (record_id, id);
create index log_user_idx on audit.log (user_id, id);
create index log_at_idx on audit.log using brin (at) with (autosummarize = on);

-- Seals: a SHA-256 chain over the log. Each seal lists the ids and digests of the entries it
-- covers, so that `audit verify` can name the entry that was altered, removed or inserted.
create table audit.seal (
    id             bigint generated always as identity primary key,
    from_id        bigint not null,
    upto_id        bigint not null,
    entries        bigint not null,
    entry_ids      bigint[] not null,
    entry_digests  bytea not null,
    prev_digest    bytea not null,
    digest         bytea not null,
    sealed_at      timestamptz not null default now(),
    constraint seal_range check (upto_id >= from_id)
);
-- Prunes: what retention removed, so the chain can still be checked after it.
create table audit.prune (
    id          bigint generated always as identity primary key,
    through_id  bigint not null,
    removed     bigint not null,
    pruned_at   timestamptz not null default now(),
    actor       text not null
);

-- The capture trigger. SECURITY DEFINER (as todo_owner) so the app role needs no right on the log
-- at all; search_path pinned. Column names given as trigger arguments are secrets: their values
-- never reach the log, only the fact that they changed. One INSERT ... VALUES per captured row;
-- an UPDATE's changed columns come from hstore (`hstore(new) - hstore(old)`: one C expression,
-- no executor started), and an UPDATE that changed nothing writes nothing.
--
-- hstore is a trusted contrib extension (the database owner may create it; Neon allows it). It
-- goes into the audit schema, where the capture finds it; a database that already has it
-- elsewhere keeps it there and the capture's search path names that schema instead (todo_owner
-- needs USAGE on it; the migration stops and says so when it has not). akeys lists keys shorter
-- first (hstore's own order); the library sorts them.
do $migrate$
declare
    home name;
begin
    select n.nspname into home from pg_extension e join pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'hstore';
    if home is null then
        create extension hstore schema audit;
        home := 'audit';
    elsif not has_schema_privilege(home, 'usage') then
        raise exception 'hstore is installed in schema %, which todo_owner cannot use', home
            using hint = format('grant usage on schema %I to todo_owner, then run the migrations again', home);
    end if;
    execute format($f$
create or replace function audit.capture() returns trigger
language plpgsql security definer set search_path = pg_catalog, %I as $body$
declare
    old_row jsonb;
    new_row jsonb;
    changed_cols text[];
    secret text;
begin
    if tg_op = 'TRUNCATE' then
        insert into audit.log (table_name, op, actor, request_id, reason)
        values (tg_table_name, 'TRUNCATE',
                coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
                nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), ''));
        return null;
    end if;
    if tg_op = 'UPDATE' then
        changed_cols := akeys(hstore(new) - hstore(old));
        if cardinality(changed_cols) = 0 then
            return null;  -- an UPDATE that changes nothing writes nothing
        end if;
    end if;
    if tg_op <> 'INSERT' then
        old_row := to_jsonb(old);
    end if;
    if tg_op <> 'DELETE' then
        new_row := to_jsonb(new);
    end if;
    if tg_nargs > 0 then
        foreach secret in array tg_argv loop
            if old_row ->> secret is not null then
                old_row := jsonb_set(old_row, array[secret], '"[secret]"');
            end if;
            if new_row ->> secret is not null then
                new_row := jsonb_set(new_row, array[secret], '"[secret]"');
            end if;
        end loop;
    end if;
    insert into audit.log (table_name, record_id, user_id, op, old, new, changed, actor, request_id, reason)
    values (tg_table_name,
            coalesce(new_row ->> 'id', old_row ->> 'id', new_row ->> 'task_id', old_row ->> 'task_id')::uuid,
            (case when tg_table_name = 'users' then coalesce(new_row ->> 'id', old_row ->> 'id')
                  else coalesce(new_row ->> 'user_id', old_row ->> 'user_id') end)::uuid,
            tg_op, old_row, new_row, changed_cols,
            coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
            nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), ''));
    return null;
end
$body$
$f$, home);
end
$migrate$;
comment on function audit.capture() is
    'todo-db audit capture: one row in audit.log per INSERT, UPDATE (that changes something) and DELETE, and per TRUNCATE; trigger arguments name secret columns, recorded only as changed';

-- Append-only: nobody updates or deletes entries, except the retention path, which sets
-- audit.allow_prune for its own transaction.
create function audit.refuse_change() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
    if tg_op = 'DELETE' and current_setting('audit.allow_prune', true) = 'on' then
        return old;
    end if;
    raise exception 'audit.log is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
end
$$;
create trigger log_append_only before update or delete on audit.log
    for each row execute function audit.refuse_change();
create trigger log_no_truncate before truncate on audit.log
    for each statement execute function audit.refuse_change();

-- Attaches capture to a table: one row trigger and one TRUNCATE trigger.
create function audit.attach(tbl regclass, secrets text[] default '{}')
returns void language plpgsql set search_path = pg_catalog, public as $$
declare
    name text := (select relname from pg_class where oid = tbl);
begin
    execute format('create trigger %I after insert or update or delete on %s for each row execute function audit.capture(%s)',
                   name || '_audit', tbl, coalesce((select string_agg(quote_literal(s), ', ') from unnest(secrets) s), ''));
    execute format('create trigger %I after truncate on %s for each statement execute function audit.capture()',
                   name || '_audit_truncate', tbl);
end
$$;

select audit.attach('users', array['password_hash']);
select audit.attach('tasks');
select audit.attach('tags');
select audit.attach('task_tags');
select audit.attach('task_trash');

alter table audit.log enable row level security;
alter table audit.log force row level security;
create policy log_select on audit.log for select to todo_app
    using (user_id = (select nullif(current_setting('app.user_id', true), '')::uuid));
create policy log_capture on audit.log for insert to todo_owner with check (true);
create policy log_prune on audit.log for delete to todo_owner using (true);
grant select on audit.log to todo_app;
