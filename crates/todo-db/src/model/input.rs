//! Parsed input values: each checks its field once, so a value of its type is always valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

pub(super) fn reject_nul(field: &'static str, s: &str) -> Result<()> {
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

/// Free text of a profile (first and last name, bio): trimmed, no NUL, at most a given number of
/// characters; empty clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ProfileText(String);

impl ProfileText {
    /// Names have at most 100 characters.
    pub const NAME_MAX: usize = 100;
    /// A bio has at most 500.
    pub const BIO_MAX: usize = 500;

    pub fn parse(field: &'static str, raw: &str, max: usize) -> Result<Self> {
        reject_nul(field, raw)?;
        let t = raw.trim();
        if t.chars().count() > max {
            return Err(Error::validation(field, format!("is longer than {max} characters")));
        }
        Ok(ProfileText(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An avatar's address: an absolute http or https URL of at most 500 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub fn parse(raw: &str) -> Result<Self> {
        let t = raw.trim();
        let bad = |why: &str| Error::validation("avatar_url", format!("{why}: {t:?}"));
        if t.len() > 500 {
            return Err(Error::validation("avatar_url", "is longer than 500 bytes"));
        }
        let u = url::Url::parse(t).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || t.contains(char::is_whitespace) {
            return Err(bad("must be an http or https URL"));
        }
        Ok(AvatarUrl(t.to_string()))
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

/// A closed set of names, as the database's enum and the API spell them: `as_str`, `ALL`, parsing
/// (case-insensitive, surrounding spaces ignored, allocating nothing: every row read goes through
/// it) with a `Validation` error naming `$field`, and `Display`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident ($field:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(raw: &str) -> Result<Self> {
                let name = raw.trim();
                $name::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(name)).ok_or_else(|| {
                    Error::validation($field, format!("{raw:?} is not one of {}", [$($text),+].join(", ")))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// How urgent a task is.
    Priority ("priority") { Low = "low", Medium = "medium", High = "high", Urgent = "urgent" } default Medium
}

named_enum! {
    /// Where a task stands. `Done` exactly when the task is completed: completing a task sets it,
    /// setting it completes the task, and reopening a done task sets `Todo`.
    TaskStatus ("status") {
        Todo = "todo",
        InProgress = "in_progress",
        Review = "review",
        Done = "done",
        Blocked = "blocked",
    } default Todo
}

named_enum! {
    /// The colour scheme of the app.
    Theme ("theme") { Light = "light", Dark = "dark", System = "system" } default System
}

named_enum! {
    /// Who may see a user's profile.
    Visibility ("profile_visibility") { Private = "private", Contacts = "contacts", Public = "public" } default Private
}

/// A BCP 47 language tag (`en`, `pt-BR`, `zh-Hant`): a 2-3 letter language, then up to two
/// subtags of 2-8 letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Language(String);

impl Language {
    pub fn parse(raw: &str) -> Result<Self> {
        let t = raw.trim();
        let mut parts = t.split('-');
        let lang = parts.next().unwrap_or("");
        let subtags: Vec<&str> = parts.collect();
        let ok = (2..=3).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_lowercase())
            && subtags.len() <= 2
            && subtags.iter().all(|s| (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok {
            return Err(Error::validation("language", format!("{raw:?} is not a language tag like en or pt-BR")));
        }
        Ok(Language(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Language {
    fn default() -> Self {
        Language("en".into())
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-27T10:00:00Z`) for the named field.
pub fn parse_time(field: &'static str, raw: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::validation(field, format!("{raw:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z")))
}
