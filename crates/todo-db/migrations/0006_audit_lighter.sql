-- todo-db audit log, lighter to write. Every audited write adds one row to audit.log, so every
-- index and check on the log is paid by every write of the application.

-- The CHECK on op goes: only the capture trigger writes op (from TG_OP), and PostgreSQL rebuilds a
-- CHECK's expression for each statement that inserts, here once per audited row (about 2% of an
-- audited insert's server time, by profile).
alter table audit.log drop constraint log_op_known;

-- History of one record: record ids are UUIDs, so the id alone finds a record; the table name is
-- a filter on the few entries found (a task's tag links share its id, and sit next to its history).
drop index audit.log_record_idx;
create index log_record_idx on audit.log (record_id, id);

-- Time ranges: entries arrive in time order, so a BRIN index serves a range at almost no cost per
-- insert (a B-tree on `at` was one more index insert per audited write).
drop index audit.log_at_idx;
create index log_at_idx on audit.log using brin (at) with (autosummarize = on);

-- The capture trigger, with one statement per captured row. The first version ran a query for an
-- UPDATE's changed columns before its insert (two executor runs inside the trigger) and computed
-- ids, actor and masks as separate PL/pgSQL expressions, each compiled again in every transaction
-- (PL/pgSQL keeps them per transaction, and an operation is one transaction). Now a table without
-- secret columns gets one INSERT ... SELECT that does all of it and writes nothing when an UPDATE
-- changed nothing. Tables with secret columns (users) take the longer path: the comparison runs
-- on the real values, the stored rows are masked, so a changed secret is listed in `changed`.
create or replace function audit.capture() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    old_row jsonb;
    new_row jsonb;
    changed_cols text[];
    secret text;
    row_id uuid;
begin
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
