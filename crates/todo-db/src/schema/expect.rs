//! What `verify` expects of a migrated database, beside the migrations themselves.

/// Every table holding user data: RLS enabled and forced on each.
pub const TABLES: &[&str] =
    &["users", "tasks", "task_trash", "tags", "task_tags", "api_tokens", "security_events", "user_preferences"];

pub const INDEXES: &[&str] = &[
    "users_pkey",
    "users_email_key",
    "tasks_pkey",
    "tasks_user_id_key",
    "tasks_user_created_idx",
    "tasks_user_updated_idx",
    "tasks_user_due_idx",
    "tasks_user_priority_idx",
    "task_trash_pkey",
    "task_trash_user_deleted_idx",
    "task_trash_deleted_idx",
    "user_preferences_pkey",
    "tags_pkey",
    "tags_user_name_key",
    "tags_user_id_key",
    "task_tags_pkey",
    "task_tags_tag_idx",
    "api_tokens_pkey",
    "api_tokens_hash_key",
    "api_tokens_user_idx",
    "api_tokens_expires_idx",
    "security_events_pkey",
    "security_events_user_idx",
    "security_events_kind_idx",
    "security_events_at_idx",
    "tasks_user_overdue_idx",
    "tasks_user_completed_idx",
    "log_pkey",
    "log_record_idx",
    "log_user_idx",
    "log_at_idx",
];

pub const TRIGGERS: &[(&str, &str)] = &[
    ("users", "users_set_updated_at"),
    ("tasks", "tasks_set_updated_at"),
    ("user_preferences", "user_preferences_set_updated_at"),
];
