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

-- The capture trigger, with one statement per captured row: an UPDATE used to run a query for its
-- changed columns and then the insert (two executor runs inside the trigger); now the insert
-- computes them itself and writes nothing when nothing changed. Secret values are masked in the
-- stored rows only, after the comparison, so a changed secret is still listed in `changed`.
create or replace function audit.capture() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    old_row jsonb;
    new_row jsonb;
    old_kept jsonb;
    new_kept jsonb;
    secret text;
    row_id uuid;
    owner_id uuid;
    who text := coalesce(nullif(current_setting('app.user_id', true), ''), session_user::text);
    request text := nullif(current_setting('app.request_id', true), '');
    why text := nullif(current_setting('app.reason', true), '');
begin
    if tg_op = 'TRUNCATE' then
        insert into audit.log (table_name, op, actor, request_id, reason)
        values (tg_table_name, 'TRUNCATE', who, request, why);
        return null;
    end if;
    if tg_op <> 'INSERT' then old_row := to_jsonb(old); end if;
    if tg_op <> 'DELETE' then new_row := to_jsonb(new); end if;
    old_kept := old_row;
    new_kept := new_row;
    if tg_nargs > 0 then
        foreach secret in array tg_argv loop
            if old_kept ->> secret is not null then
                old_kept := jsonb_set(old_kept, array[secret], '"[secret]"');
            end if;
            if new_kept ->> secret is not null then
                new_kept := jsonb_set(new_kept, array[secret], '"[secret]"');
            end if;
        end loop;
    end if;
    row_id := coalesce(new_row ->> 'id', old_row ->> 'id', new_row ->> 'task_id', old_row ->> 'task_id')::uuid;
    owner_id := case when tg_table_name = 'users' then row_id
                     else coalesce(new_row ->> 'user_id', old_row ->> 'user_id')::uuid end;
    if tg_op = 'UPDATE' then
        insert into audit.log (table_name, record_id, user_id, op, old, new, changed, actor, request_id, reason)
        select tg_table_name, row_id, owner_id, 'UPDATE', old_kept, new_kept, c.cols, who, request, why
        from (select array_agg(n.key order by n.key) as cols from jsonb_each(new_row) n
              where n.value is distinct from old_row -> n.key) c
        where c.cols is not null;
    else
        insert into audit.log (table_name, record_id, user_id, op, old, new, actor, request_id, reason)
        values (tg_table_name, row_id, owner_id, tg_op, old_kept, new_kept, who, request, why);
    end if;
    return null;
end
$$;
