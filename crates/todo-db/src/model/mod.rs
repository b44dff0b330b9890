//! Domain types. Input is parsed into these before any SQL runs: a bad title, email, priority or
//! date is a `Validation` error naming the field, and nothing is written.

mod input;
mod list;

pub use input::{
    parse_time, AvatarUrl, Color, Description, DisplayName, Email, Language, Priority, ProfileText, TagName,
    TaskStatus, TaskTitle, Theme, Visibility,
};
pub use list::{Cursor, Page, TaskFilter, TaskSort};

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};

macro_rules! id_type {
    ($name:ident, $field:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id, generated here rather than by the server: no round
            /// trip, and a retried create with the same id cannot insert twice.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
            pub fn parse(raw: &str) -> Result<Self> {
                Uuid::parse_str(raw.trim())
                    .map($name)
                    .map_err(|_| Error::validation($field, format!("{raw:?} is not a UUID")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(UserId, "user_id");
id_type!(TaskId, "task_id");
id_type!(TagId, "tag_id");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    /// Set by an email verification token, never by the user.
    pub email_verified: bool,
    pub is_active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub display_name: DisplayName,
}

impl NewUser {
    pub fn new(email: &str, display_name: &str) -> Result<Self> {
        Ok(NewUser { id: UserId::new(), email: Email::parse(email)?, display_name: DisplayName::parse(display_name)? })
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub display_name: Option<DisplayName>,
    pub first_name: Option<ProfileText>,
    pub last_name: Option<ProfileText>,
    pub bio: Option<ProfileText>,
    /// `Some(None)` removes the avatar.
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub is_active: Option<bool>,
}

/// A user's preferences. A user who never set any has [`Preferences::default`], which are the
/// database's column defaults (a test holds them equal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preferences {
    pub theme: Theme,
    pub language: Language,
    pub notifications: Notifications,
    pub privacy: Privacy,
}

/// Which notifications a user wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Notifications {
    pub email: bool,
    pub push: bool,
    pub task_reminders: bool,
    pub task_assignments: bool,
    pub task_completions: bool,
    pub weekly_summary: bool,
}

/// What a user shows others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Privacy {
    pub profile_visibility: Visibility,
    pub show_email: bool,
    pub show_activity: bool,
    pub show_tasks: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            theme: Theme::System,
            language: Language::default(),
            notifications: Notifications {
                email: true,
                push: false,
                task_reminders: true,
                task_assignments: true,
                task_completions: false,
                weekly_summary: true,
            },
            privacy: Privacy {
                profile_visibility: Visibility::Private,
                show_email: false,
                show_activity: true,
                show_tasks: false,
            },
        }
    }
}

/// A partial update of preferences: `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct PreferencesPatch {
    pub theme: Option<Theme>,
    pub language: Option<Language>,
    pub email_notifications: Option<bool>,
    pub push_notifications: Option<bool>,
    pub task_reminders: Option<bool>,
    pub task_assignments: Option<bool>,
    pub task_completions: Option<bool>,
    pub weekly_summary: Option<bool>,
    pub profile_visibility: Option<Visibility>,
    pub show_email: Option<bool>,
    pub show_activity: Option<bool>,
    pub show_tasks: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub completed: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Tag names, sorted case-insensitively (by lowercase form, whatever the database collation).
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    /// Client-generated, so a retried create after a lost answer inserts at most once.
    pub id: TaskId,
    pub title: TaskTitle,
    pub description: Description,
    pub priority: Priority,
    /// `Done` creates the task completed.
    pub status: TaskStatus,
    pub due_at: Option<OffsetDateTime>,
}

impl NewTask {
    pub fn new(title: &str) -> Result<Self> {
        Ok(NewTask {
            id: TaskId::new(),
            title: TaskTitle::parse(title)?,
            description: Description::default(),
            priority: Priority::default(),
            status: TaskStatus::default(),
            due_at: None,
        })
    }
    pub fn description(mut self, d: &str) -> Result<Self> {
        self.description = Description::parse(d)?;
        Ok(self)
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    pub fn due_at(mut self, due: OffsetDateTime) -> Self {
        self.due_at = Some(due);
        self
    }
    pub fn status(mut self, s: TaskStatus) -> Self {
        self.status = s;
        self
    }
}

/// A partial update: `None` leaves a field as it is; `due_at: Some(None)` clears the due date.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<Description>,
    pub priority: Option<Priority>,
    pub due_at: Option<Option<OffsetDateTime>>,
    /// Completing sets the status `Done`; reopening a done task sets `Todo`.
    pub completed: Option<bool>,
    /// `Done` completes the task; another status reopens a completed one.
    pub status: Option<TaskStatus>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.due_at.is_none()
            && self.completed.is_none()
            && self.status.is_none()
    }

    /// Refuses a patch whose `completed` and `status` disagree (completed with a status other
    /// than done, or reopened as done).
    pub fn check(&self) -> Result<()> {
        match (self.completed, self.status) {
            (Some(c), Some(s)) if c != (s == TaskStatus::Done) => Err(Error::validation(
                "status",
                format!("{s} disagrees with completed = {c}: a task is completed exactly when its status is done"),
            )),
            _ => Ok(()),
        }
    }
}

/// A user's task counts ([`Tasks::statistics`](crate::store::Tasks::statistics)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskStatistics {
    pub total: i64,
    pub completed: i64,
    pub pending: i64,
    pub overdue: i64,
    pub trashed: i64,
    pub by_priority: std::collections::BTreeMap<Priority, i64>,
    pub by_status: std::collections::BTreeMap<TaskStatus, i64>,
}

/// A tag with the number of the user's live tasks that carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagUsage {
    pub tag: Tag,
    pub tasks: i64,
}

/// A task in the trash: as it was when deleted, with the ids of its tags then.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrashedTask {
    pub task: Task,
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub id: TagId,
    pub name: String,
    pub color: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(TaskTitle::parse("  Buy milk ").unwrap().as_str(), "Buy milk");
        assert!(matches!(TaskTitle::parse("   "), Err(Error::Validation { field: "title", .. })));
        assert!(TaskTitle::parse(&"x".repeat(255)).is_ok());
        assert!(matches!(TaskTitle::parse(&"x".repeat(256)), Err(Error::Validation { field: "title", .. })));
        assert!(matches!(TaskTitle::parse("a\0b"), Err(Error::Validation { field: "title", .. })));
        assert!(TaskTitle::parse(&"é".repeat(255)).is_ok(), "length counts characters, not bytes");
    }

    #[test]
    fn priorities_parse_whatever_their_case_and_spacing() {
        for &p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().ok(), Some(p));
            assert_eq!(format!(" {} ", p.as_str().to_uppercase()).parse::<Priority>().ok(), Some(p));
        }
        assert!("".parse::<Priority>().is_err());
        assert!("lowest".parse::<Priority>().is_err());
    }

    #[test]
    fn bad_inputs_name_their_field() {
        assert!(matches!("critical".parse::<Priority>(), Err(Error::Validation { field: "priority", .. })));
        assert!(matches!(Email::parse("no-at-sign"), Err(Error::Validation { field: "email", .. })));
        assert!(matches!(parse_time("due_at", "tomorrow"), Err(Error::Validation { field: "due_at", .. })));
        assert!(matches!(Description::parse(&"d".repeat(10_001)), Err(Error::Validation { field: "description", .. })));
        assert!(matches!(Color::parse("red"), Err(Error::Validation { field: "color", .. })));
        assert!(matches!(Cursor::decode("!!"), Err(Error::Validation { field: "cursor", .. })));
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { sort: TaskSort::Due, key: "2026-01-01T00:00:00Z".into(), id: Uuid::now_v7() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }
}
