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
