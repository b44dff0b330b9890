//! Branches: instant copies of a todo-db database for development and migration rehearsal.
//!
//! One interface, [`Provider`], with two implementations: [`local::Local`] (a branch is a
//! database created from its parent with `CREATE DATABASE ... TEMPLATE`) and
//! [`neon::NeonProvider`] (Neon API v2), chosen by configuration ([`AnyProvider`]). The database that
//! `DATABASE_URL` names is the root branch, `main`. [`diff`] compares the schemas of any two
//! databases.

pub mod diff;
pub mod local;
pub mod neon;

use serde::Serialize;
use time::OffsetDateTime;

use todo_db::error::{Error, Result};

/// The root branch's name.
pub const MAIN: &str = "main";

/// A branch as a provider lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Branch {
    pub name: String,
    /// `None` for the root.
    pub parent: Option<String>,
    /// Where the branch lives: a database name (local) or a branch id (Neon).
    pub location: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    pub protected: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl Branch {
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// How to make a branch.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The parent branch (default `main`).
    pub from: Option<String>,
    /// Branch the parent as it was at this time (providers with history only).
    pub at: Option<OffsetDateTime>,
    /// Delete-by time.
    pub expires_in: Option<std::time::Duration>,
    /// How long to wait for other sessions on the parent to go away.
    pub wait: std::time::Duration,
    /// Terminate the parent's other sessions after the wait instead of failing.
    pub force: bool,
}

/// What every branch provider does.
#[allow(async_fn_in_trait)]
pub trait Provider {
    async fn create(&self, name: &str, options: &CreateOptions) -> Result<Branch>;
    async fn list(&self) -> Result<Vec<Branch>>;
    /// Refuses protected branches and branches with children.
    async fn delete(&self, name: &str, force: bool) -> Result<()>;
    /// Back to the parent's current state.
    async fn reset(&self, name: &str, options: &CreateOptions) -> Result<Branch>;
    async fn protect(&self, name: &str, on: bool) -> Result<Branch>;
    /// A connection URL (pooled when the provider has a pooler and `pooled` is set).
    async fn url(&self, name: &str, pooled: bool) -> Result<String>;
}

/// The provider the configuration chose.
pub enum AnyProvider {
    Local(Box<local::Local>),
    Neon(neon::NeonProvider),
}

impl AnyProvider {
    pub fn name(&self) -> &'static str {
        match self {
            AnyProvider::Local(_) => "local",
            AnyProvider::Neon(_) => "neon",
        }
    }
}

macro_rules! delegate {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            AnyProvider::Local($p) => $call,
            AnyProvider::Neon($p) => $call,
        }
    };
}

impl Provider for AnyProvider {
    async fn create(&self, name: &str, options: &CreateOptions) -> Result<Branch> {
        delegate!(self, p => p.create(name, options).await)
    }
    async fn list(&self) -> Result<Vec<Branch>> {
        delegate!(self, p => p.list().await)
    }
    async fn delete(&self, name: &str, force: bool) -> Result<()> {
        delegate!(self, p => p.delete(name, force).await)
    }
    async fn reset(&self, name: &str, options: &CreateOptions) -> Result<Branch> {
        delegate!(self, p => p.reset(name, options).await)
    }
    async fn protect(&self, name: &str, on: bool) -> Result<Branch> {
        delegate!(self, p => p.protect(name, on).await)
    }
    async fn url(&self, name: &str, pooled: bool) -> Result<String> {
        delegate!(self, p => p.url(name, pooled).await)
    }
}

/// Checks a branch name: 1 to 40 of a-z, 0-9, `-` and `_`, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "branch",
            format!("{name:?} is not 1-40 characters of a-z, 0-9, '-' and '_' starting with a letter"),
        ))
    }
}

/// Replaces the database of a PostgreSQL URL.
pub fn url_with_database(url: &str, database: &str) -> Result<String> {
    let mut u = url::Url::parse(url).map_err(|_| Error::Config("the database URL does not parse".into()))?;
    u.set_path(&format!("/{database}"));
    Ok(u.to_string())
}
