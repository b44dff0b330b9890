//! todo-db: the database layer of a multi-user Todo application on PostgreSQL, the crate a web
//! backend links.
//!
//! - [`Db`] holds the pool; [`Db::user`] gives a [`UserScope`] whose every operation runs under
//!   row-level security as that user, in one transaction, in one network round trip;
//!   [`Db::admin`] is for owner work across users.
//! - [`store`] holds the users, tasks and tags; [`views`] the reports; [`security`] login,
//!   tokens and posture; [`audit`] the history.
//! - [`schema`] embeds the migrations and sets up roles.
//!
//! It connects to the server it is given and does nothing else: the operations (backups, seeding,
//! branches, health, the embedded local cluster) are the `todo-db-ops` crate's.

pub mod audit;
pub mod config;
pub mod constraints;
pub mod db;
pub mod error;
pub mod model;
pub mod schema;
pub mod security;
pub mod store;
pub mod views;

pub use config::{PoolSettings, Secret, Settings};
pub use db::{Admin, Db, UserScope};
pub use error::{Error, Result};
