-- todo-db audit capture: the columns an UPDATE changed come from hstore, and every operation takes
-- one path. Until 0007 an UPDATE found its changed columns with a query (jsonb_each over the new
-- image, compared key by key with the old one, aggregated): PostgreSQL sets up a function scan and
-- an aggregate for it on every row. hstore's `hstore(new) - hstore(old)` is the same comparison as
-- one C expression (each column's text form, old against new), which PL/pgSQL evaluates without
-- starting an executor; `akeys` of the difference are the changed columns, and an empty difference
-- is an UPDATE that changed nothing. With that, INSERT, UPDATE and DELETE share one INSERT ...
-- VALUES into the log; only TRUNCATE (no row) and secret columns (masked in both images) differ.
--
-- hstore is a contrib extension shipped with PostgreSQL and trusted (the database owner may
-- create it; Neon allows it). It goes into the audit schema, where the capture finds it; a
-- database that already has it elsewhere keeps it there and the capture's search path names that
-- schema instead (todo_owner needs USAGE on it; the migration stops and says so when it has
-- not). akeys lists keys shorter first (hstore's own order); the library sorts them.

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
