-- todo-db security: API tokens, the security event log, and account lockout.

-- Lockout: set when too many logins failed within the window; logins are refused until then.
alter table users add column locked_until timestamptz;

-- API tokens. Only a SHA-256 digest of the token is stored; the token is shown once, at issue.
-- The purposes password_reset and email_verification are single-use tokens: consumed once
-- (consumed_at), never accepted as API credentials.
create table api_tokens (
    id            uuid primary key,
    user_id       uuid not null references users (id) on delete cascade,
    purpose       text not null,
    token_hash    bytea not null,
    created_at    timestamptz not null default now(),
    expires_at    timestamptz not null,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    consumed_at   timestamptz,
    constraint api_tokens_purpose_length check (char_length(purpose) between 1 and 100 and purpose = btrim(purpose)),
    constraint api_tokens_hash_length check (octet_length(token_hash) = 32),
    constraint api_tokens_expiry_after_creation check (expires_at > created_at)
);
create unique index api_tokens_hash_key on api_tokens (token_hash);
create index api_tokens_user_idx on api_tokens (user_id, created_at);
create index api_tokens_expires_idx on api_tokens (expires_at);

-- Security events: logins, lockouts, tokens, password changes, denied access. A user's events
-- outlive the account (user_id set null) so that an investigation still sees them.
create table security_events (
    id           uuid primary key,
    user_id      uuid references users (id) on delete set null,
    kind         text not null,
    at           timestamptz not null default now(),
    client_addr  inet,
    user_agent   text,
    details      jsonb not null default '{}',
    constraint security_events_kind_known check (kind in (
        'login_success', 'login_failure', 'login_refused_locked', 'lockout',
        'token_issued', 'token_used', 'token_revoked', 'token_rejected',
        'password_changed', 'email_verified', 'access_denied')),
    constraint security_events_user_agent_length check (char_length(user_agent) <= 512)
);
create index security_events_user_idx on security_events (user_id, at);
create index security_events_kind_idx on security_events (kind, at);
create index security_events_at_idx on security_events (at);

select todo_db_isolate('api_tokens', 'user_id', array['select', 'insert', 'update', 'delete']);
select todo_db_isolate('security_events', 'user_id', array['select', 'insert']);

-- Secrets stay out of the app role's reach even for its own rows: it can write a password hash
-- or a token digest, never read one back (login and token checks run as the owner login).
revoke select, update on users from todo_app;
grant select (id, email, display_name, first_name, last_name, bio, avatar_url, email_verified, is_active, created_at,
              updated_at, last_login_at, locked_until) on users to todo_app;
-- email_verified is not among them: only a verification (as the owner login) sets it.
grant update (email, display_name, first_name, last_name, bio, avatar_url, is_active, password_hash) on users to todo_app;

-- Tokens: a user lists, issues and revokes their own. Events: a user reads their own and the app
-- may record events about the current user; nobody but the owner changes or deletes them.
grant select (id, user_id, purpose, created_at, expires_at, revoked_at, last_used_at, consumed_at) on api_tokens to todo_app;
grant insert, delete on api_tokens to todo_app;
grant update (revoked_at) on api_tokens to todo_app;
grant select, insert on security_events to todo_app;
