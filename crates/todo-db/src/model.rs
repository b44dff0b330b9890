//! Domain types. Input is parsed into these before any SQL runs: a bad title, email, priority or
//! date is a `Validation` error naming the field, and nothing is written.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
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

fn reject_nul(field: &'static str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::validation(field, "must not contain a NUL byte"));
    }
    Ok(())
}

/// A task title: trimmed, 1..=255 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub const MAX_CHARS: usize = 255;
    pub fn parse(raw: &str) -> Result<Self> {
        reject_nul("title", raw)?;
        let t = raw.trim();
        if t.is_empty() {
            return Err(Error::validation("title", "must not be empty"));
        }
        let n = t.chars().count();
        if n > Self::MAX_CHARS {
            return Err(Error::validation("title", format!("is {n} characters; at most {} allowed", Self::MAX_CHARS)));
        }
        Ok(TaskTitle(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task description: at most 10 000 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 10_000;
    pub fn parse(raw: &str) -> Result<Self> {
        reject_nul("description", raw)?;
        let n = raw.chars().count();
        if n > Self::MAX_CHARS {
            return Err(Error::validation(
                "description",
                format!("is {n} characters; at most {} allowed", Self::MAX_CHARS),
            ));
        }
        Ok(Description(raw.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, stored as given (trimmed) and unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self> {
        reject_nul("email", raw)?;
        let e = raw.trim();
        let Some((local, domain)) = e.split_once('@') else {
            return Err(Error::validation("email", "must look like name@example.com"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') || e.chars().any(char::is_whitespace) {
            return Err(Error::validation("email", "must look like name@example.com"));
        }
        if e.len() > 254 {
            return Err(Error::validation("email", "is longer than 254 bytes"));
        }
        Ok(Email(e.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self> {
        reject_nul("display_name", raw)?;
        let t = raw.trim();
        if t.chars().count() > 100 {
            return Err(Error::validation("display_name", "is longer than 100 characters"));
        }
        Ok(DisplayName(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tag name: trimmed, 1..=50 characters, unique per user ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TagName(String);

impl TagName {
    pub fn parse(raw: &str) -> Result<Self> {
        reject_nul("tag", raw)?;
        let t = raw.trim();
        if t.is_empty() {
            return Err(Error::validation("tag", "must not be empty"));
        }
        if t.chars().count() > 50 {
            return Err(Error::validation("tag", "is longer than 50 characters"));
        }
        Ok(TagName(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tag colour, `#rrggbb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Color(String);

impl Color {
    pub fn parse(raw: &str) -> Result<Self> {
        let c = raw.trim();
        let ok = c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit());
        if !ok {
            return Err(Error::validation("color", format!("{raw:?} is not a colour like #1e90ff")));
        }
        Ok(Color(c.to_ascii_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::Low, Priority::Medium, Priority::High, Priority::Urgent];
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl FromStr for Priority {
    type Err = Error;
    /// Case-insensitive, surrounding spaces ignored. Allocates nothing: every task read from the
    /// database goes through here.
    fn from_str(raw: &str) -> Result<Self> {
        let name = raw.trim();
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::validation("priority", format!("{raw:?} is not one of low, medium, high, urgent")))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-27T10:00:00Z`) for the named field.
pub fn parse_time(field: &'static str, raw: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::validation(field, format!("{raw:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z")))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
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
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
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
    pub due_at: Option<OffsetDateTime>,
}

impl NewTask {
    pub fn new(title: &str) -> Result<Self> {
        Ok(NewTask {
            id: TaskId::new(),
            title: TaskTitle::parse(title)?,
            description: Description::default(),
            priority: Priority::default(),
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
}

/// A partial update: `None` leaves a field as it is; `due_at: Some(None)` clears the due date.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<Description>,
    pub priority: Option<Priority>,
    pub due_at: Option<Option<OffsetDateTime>>,
    pub completed: Option<bool>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.due_at.is_none()
            && self.completed.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub id: TagId,
    pub name: String,
    pub color: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskSort {
    /// Newest first.
    #[default]
    Created,
    /// Most recently changed first.
    Updated,
    /// Soonest due first; tasks without a due date last.
    Due,
    /// Most urgent first, then newest.
    Priority,
}

impl FromStr for TaskSort {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "created" => Ok(TaskSort::Created),
            "updated" => Ok(TaskSort::Updated),
            "due" => Ok(TaskSort::Due),
            "priority" => Ok(TaskSort::Priority),
            _ => Err(Error::validation("sort", format!("{raw:?} is not one of created, updated, due, priority"))),
        }
    }
}

/// Which tasks to list. Every field narrows the result; the default lists everything.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub completed: Option<bool>,
    pub priority: Option<Priority>,
    pub due_before: Option<OffsetDateTime>,
    pub due_after: Option<OffsetDateTime>,
    /// Tag name, ignoring case.
    pub tag: Option<String>,
    /// Substring of title or description, ignoring case.
    pub search: Option<String>,
    pub sort: TaskSort,
    /// At most this many (1..=500, default 50).
    pub limit: Option<u32>,
    /// From a previous page's `next`.
    pub after: Option<Cursor>,
}

/// An opaque, stable position in a sorted listing: the sort key and id of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: TaskSort,
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("cursor serialises");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }
    pub fn decode(raw: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| Error::validation("cursor", "is not a cursor returned by a previous page"))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| Error::validation("cursor", "is not a cursor returned by a previous page"))
    }
}

/// One page of a listing, and the cursor of the next page if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
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
        for p in Priority::ALL {
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
