//! todo-db: the database layer of a multi-user Todo application on PostgreSQL.
//!
//! - [`Db`] holds the pool; [`Db::user`] gives a [`UserScope`] whose every operation runs under
//!   row-level security as that user, in one transaction, in one network round trip;
//!   [`Db::admin`] is for owner work across users.
//! - [`schema`] embeds the migrations and sets up roles; [`verify`] checks a database.
//! - [`local`] runs the embedded default cluster when no `DATABASE_URL` is set.

pub mod audit;
pub mod backup;
pub mod branch;
pub mod config;
pub mod constraints;
pub mod db;
pub mod error;
pub mod health;
pub mod local;
pub mod model;
pub mod neon;
pub mod schema;
pub mod security;
pub mod seed;
pub mod store;
pub mod verify;
pub mod views;

pub use config::{PoolSettings, Secret, Settings};
pub use db::{Admin, Db, UserScope};
pub use error::{Error, Result};
