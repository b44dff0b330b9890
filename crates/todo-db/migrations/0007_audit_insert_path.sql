-- todo-db audit capture: an INSERT takes one short path. Inserts are the most frequent audited
-- write, and on a row that was just created there is nothing to compare: no old image, no changed
-- columns. The general path (from 0006, below) ran one INSERT ... SELECT with a lateral aggregate for
-- every operation, and PostgreSQL sets up that whole plan (a nested loop, an aggregate, a function
-- scan) on each call even when the aggregate has no rows to see. Now an INSERT into a table
-- without secret columns costs two PL/pgSQL steps: the row's jsonb image, and an INSERT ... VALUES
-- (one Result node) that derives the record and owner ids from it. With pgbench sending what a
-- user scope sends (identity and insert in one pipeline, 8 clients), the trigger's share of the
-- server's time for a task insert went from 29% to 25%.

create or replace function audit.capture() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    old_row jsonb;
    new_row jsonb;
    changed_cols text[];
    secret text;
    row_id uuid;
begin
    if tg_op = 'INSERT' and tg_nargs = 0 then
        new_row := to_jsonb(new);
        insert into audit.log (table_name, record_id, user_id, op, new, actor, request_id, reason)
        values (tg_table_name, coalesce(new_row ->> 'id', new_row ->> 'task_id')::uuid,
                (case when tg_table_name = 'users' then new_row ->> 'id' else new_row ->> 'user_id' end)::uuid,
                'INSERT', new_row,
                coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
                nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), ''));
        return null;
    end if;
    if tg_op = 'TRUNCATE' then
        insert into audit.log (table_name, op, actor, request_id, reason)
        values (tg_table_name, 'TRUNCATE',
                coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
                nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), ''));
        return null;
    end if;
    if tg_nargs = 0 then
        insert into audit.log (table_name, record_id, user_id, op, old, new, changed, actor, request_id, reason)
        select tg_table_name,
               coalesce(r.n ->> 'id', r.o ->> 'id', r.n ->> 'task_id', r.o ->> 'task_id')::uuid,
               case when tg_table_name = 'users' then coalesce(r.n ->> 'id', r.o ->> 'id')::uuid
                    else coalesce(r.n ->> 'user_id', r.o ->> 'user_id')::uuid end,
               tg_op, r.o, r.n, c.cols,
               coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
               nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), '')
        from (select to_jsonb(old) as o, to_jsonb(new) as n offset 0) r  -- offset 0: each converted once
        cross join lateral (
            select array_agg(e.key order by e.key) as cols
            from jsonb_each(case when tg_op = 'UPDATE' then r.n end) e
            where e.value is distinct from r.o -> e.key) c
        where tg_op <> 'UPDATE' or c.cols is not null;
        return null;
    end if;
    old_row := to_jsonb(old);
    new_row := to_jsonb(new);
    if tg_op = 'UPDATE' then
        select array_agg(e.key order by e.key) into changed_cols
        from jsonb_each(new_row) e where e.value is distinct from old_row -> e.key;
        if changed_cols is null then
            return null;
        end if;
    end if;
    foreach secret in array tg_argv loop
        if old_row ->> secret is not null then
            old_row := jsonb_set(old_row, array[secret], '"[secret]"');
        end if;
        if new_row ->> secret is not null then
            new_row := jsonb_set(new_row, array[secret], '"[secret]"');
        end if;
    end loop;
    row_id := coalesce(new_row ->> 'id', old_row ->> 'id', new_row ->> 'task_id', old_row ->> 'task_id')::uuid;
    insert into audit.log (table_name, record_id, user_id, op, old, new, changed, actor, request_id, reason)
    values (tg_table_name, row_id,
            case when tg_table_name = 'users' then row_id
                 else coalesce(new_row ->> 'user_id', old_row ->> 'user_id')::uuid end,
            tg_op, old_row, new_row, changed_cols,
            coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text),
            nullif(current_setting('app.request_id', true), ''), nullif(current_setting('app.reason', true), ''));
    return null;
end
$$;

comment on function audit.capture() is
    'todo-db audit capture: one row in audit.log per INSERT, UPDATE (that changes something) and DELETE, and per TRUNCATE; trigger arguments name secret columns, recorded only as changed';
