//! The names of the schema's constraints, as Rust constants, and what a violation of each means:
//! a leaf module (it imports nothing of todo-db's), which error mapping reads and `verify` lists.

pub const USERS_EMAIL_KEY: &str = "users_email_key";
pub const USERS_EMAIL_FORMAT: &str = "users_email_format";
pub const USERS_DISPLAY_NAME_LENGTH: &str = "users_display_name_length";
pub const USERS_FIRST_NAME_LENGTH: &str = "users_first_name_length";
pub const USERS_LAST_NAME_LENGTH: &str = "users_last_name_length";
pub const USERS_BIO_LENGTH: &str = "users_bio_length";
pub const USERS_AVATAR_URL_FORMAT: &str = "users_avatar_url_format";
pub const TASKS_PKEY: &str = "tasks_pkey";
pub const TASKS_USER_ID_FKEY: &str = "tasks_user_id_fkey";
pub const TASKS_TITLE_TRIMMED: &str = "tasks_title_trimmed";
pub const TASKS_TITLE_LENGTH: &str = "tasks_title_length";
pub const TASKS_DESCRIPTION_LENGTH: &str = "tasks_description_length";
pub const TASKS_COMPLETED_AT_MATCHES: &str = "tasks_completed_at_matches";
pub const TASKS_STATUS_MATCHES: &str = "tasks_status_matches";
pub const TASK_TRASH_PKEY: &str = "task_trash_pkey";
pub const TAGS_PKEY: &str = "tags_pkey";
pub const TAGS_USER_ID_FKEY: &str = "tags_user_id_fkey";
pub const TAGS_USER_NAME_KEY: &str = "tags_user_name_key";
pub const TAGS_NAME_LENGTH: &str = "tags_name_length";
pub const TAGS_COLOR_FORMAT: &str = "tags_color_format";
pub const TASK_TAGS_PKEY: &str = "task_tags_pkey";
pub const TASK_TAGS_TASK_FKEY: &str = "task_tags_task_fkey";
pub const TASK_TAGS_TAG_FKEY: &str = "task_tags_tag_fkey";
pub const API_TOKENS_PURPOSE_LENGTH: &str = "api_tokens_purpose_length";
pub const API_TOKENS_HASH_KEY: &str = "api_tokens_hash_key";
pub const API_TOKENS_EXPIRY: &str = "api_tokens_expiry_after_creation";
pub const SECURITY_EVENTS_KIND_KNOWN: &str = "security_events_kind_known";
pub const USER_PREFERENCES_LANGUAGE_FORMAT: &str = "user_preferences_language_format";

/// Every named constraint `verify` expects, with its table.
pub const ALL: &[(&str, &str)] = &[
    ("users", "users_pkey"),
    ("users", USERS_EMAIL_FORMAT),
    ("users", USERS_DISPLAY_NAME_LENGTH),
    ("users", USERS_FIRST_NAME_LENGTH),
    ("users", USERS_LAST_NAME_LENGTH),
    ("users", USERS_BIO_LENGTH),
    ("users", USERS_AVATAR_URL_FORMAT),
    ("tasks", TASKS_PKEY),
    ("tasks", TASKS_USER_ID_FKEY),
    ("tasks", TASKS_TITLE_TRIMMED),
    ("tasks", TASKS_TITLE_LENGTH),
    ("tasks", TASKS_DESCRIPTION_LENGTH),
    ("tasks", TASKS_COMPLETED_AT_MATCHES),
    ("tasks", TASKS_STATUS_MATCHES),
    ("task_trash", TASK_TRASH_PKEY),
    ("task_trash", "task_trash_user_id_fkey"),
    ("tags", TAGS_PKEY),
    ("tags", TAGS_USER_ID_FKEY),
    ("tags", TAGS_NAME_LENGTH),
    ("tags", TAGS_COLOR_FORMAT),
    ("task_tags", TASK_TAGS_PKEY),
    ("task_tags", TASK_TAGS_TASK_FKEY),
    ("task_tags", TASK_TAGS_TAG_FKEY),
    ("api_tokens", "api_tokens_pkey"),
    ("api_tokens", API_TOKENS_PURPOSE_LENGTH),
    ("api_tokens", "api_tokens_hash_length"),
    ("api_tokens", API_TOKENS_EXPIRY),
    ("security_events", "security_events_pkey"),
    ("security_events", SECURITY_EVENTS_KIND_KNOWN),
    ("security_events", "security_events_user_agent_length"),
    ("user_preferences", "user_preferences_pkey"),
    ("user_preferences", "user_preferences_user_id_fkey"),
    ("user_preferences", USER_PREFERENCES_LANGUAGE_FORMAT),
];

/// What a violated constraint means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// The value is taken (a unique key or primary key): `field`.
    Conflict { field: &'static str, constraint: &'static str },
    /// The value is not acceptable: `field`, and why.
    Invalid { field: &'static str, reason: &'static str },
    /// What it refers to does not exist: `entity`.
    Missing { entity: &'static str },
}

/// What the violation of constraint `name` means, or `None` for a name todo-db does not know.
pub fn meaning(name: &str) -> Option<Violation> {
    let v = |field, reason| Some(Violation::Invalid { field, reason });
    match name {
        USERS_EMAIL_KEY => Some(Violation::Conflict { field: "email", constraint: USERS_EMAIL_KEY }),
        USERS_EMAIL_FORMAT => v("email", "must look like name@example.com"),
        USERS_DISPLAY_NAME_LENGTH => v("display_name", "is longer than 100 characters"),
        USERS_FIRST_NAME_LENGTH => v("first_name", "is longer than 100 characters"),
        USERS_LAST_NAME_LENGTH => v("last_name", "is longer than 100 characters"),
        USERS_BIO_LENGTH => v("bio", "is longer than 500 characters"),
        USERS_AVATAR_URL_FORMAT => v("avatar_url", "must be an http(s) URL of at most 500 bytes"),
        TASKS_PKEY => Some(Violation::Conflict { field: "task id", constraint: TASKS_PKEY }),
        TASKS_USER_ID_FKEY | TAGS_USER_ID_FKEY => Some(Violation::Missing { entity: "user" }),
        TASKS_TITLE_TRIMMED => v("title", "must not start or end with white space"),
        TASKS_TITLE_LENGTH => v("title", "must be 1 to 255 characters"),
        TASKS_DESCRIPTION_LENGTH => v("description", "must be at most 10000 characters"),
        TASKS_COMPLETED_AT_MATCHES => v("completed_at", "is set exactly when the task is completed"),
        TASKS_STATUS_MATCHES => v("status", "is done exactly when the task is completed"),
        TASK_TRASH_PKEY => Some(Violation::Conflict { field: "task id", constraint: TASK_TRASH_PKEY }),
        TAGS_PKEY => Some(Violation::Conflict { field: "tag id", constraint: TAGS_PKEY }),
        TAGS_USER_NAME_KEY => Some(Violation::Conflict { field: "tag", constraint: TAGS_USER_NAME_KEY }),
        TAGS_NAME_LENGTH => v("tag", "must be 1 to 50 characters without surrounding white space"),
        TAGS_COLOR_FORMAT => v("color", "must be a colour like #1e90ff"),
        TASK_TAGS_PKEY => Some(Violation::Conflict { field: "tag on task", constraint: TASK_TAGS_PKEY }),
        TASK_TAGS_TASK_FKEY => Some(Violation::Missing { entity: "task" }),
        TASK_TAGS_TAG_FKEY => Some(Violation::Missing { entity: "tag" }),
        API_TOKENS_PURPOSE_LENGTH => v("purpose", "must be 1 to 100 characters without surrounding white space"),
        API_TOKENS_HASH_KEY => Some(Violation::Conflict { field: "token", constraint: API_TOKENS_HASH_KEY }),
        API_TOKENS_EXPIRY => v("expires_at", "must be in the future"),
        SECURITY_EVENTS_KIND_KNOWN => v("kind", "is not a known security event kind"),
        USER_PREFERENCES_LANGUAGE_FORMAT => v("language", "must be a language tag like en or pt-BR"),
        _ => None,
    }
}
