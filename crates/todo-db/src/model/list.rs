//! Listings: which tasks, in which order, and pages with keyset cursors.

use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};

use super::*;

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
    pub status: Option<TaskStatus>,
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
