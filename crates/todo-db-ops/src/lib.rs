//! todo-db's operations, on top of the core library (`todo_db`): what the `todo-db` CLI runs.
//!
//! - [`backup`]: backups (compressed, optionally encrypted), verify and restore.
//! - [`bulk`]: the bulk path (indexes and keys built after the rows) of restore, seed and import.
//! - [`import`]: a database of the original Python module brought into todo-db's schema.
//! - [`seed`]: generated data at the server's bulk-load speed.
//! - [`branch`]: database branches, local (template copies) and on Neon ([`neon`]).
//! - [`health`] and [`verify`]: the checks of a running database and of its schema.
//! - [`local`]: the embedded default cluster when no `DATABASE_URL` is set.

pub mod backup;
pub mod branch;
pub mod bulk;
pub mod health;
pub mod import;
pub mod local;
pub mod neon;
pub mod seed;
pub mod verify;
