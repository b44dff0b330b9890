//! The harness of todo-db's tests and benchmarks, against a real PostgreSQL (`DATABASE_URL`, or
//! the embedded default): fresh databases, fault proxies, the local pooler (a real PgBouncer), and
//! the statements todo-db sends, taken from the library itself, for pgbench scripts; and the fuzz
//! targets of every parser of outside bytes.

pub mod bench;
pub mod fuzz;
pub mod harness;
pub mod original;
pub mod pooler;
