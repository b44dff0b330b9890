//! Seeding: a deterministic generator of realistic todo data, loaded through binary COPY.
//!
//! The same [`SeedSpec`] (seed, sizes and anchor time) always produces the same rows with the same
//! ids: each user's data comes from its own random stream, so any user can be generated on its own
//! and every table is generated in the same order. The loader streams the four tables (users, tags,
//! tasks, task_tags) through `COPY ... (FORMAT binary)` on one connection, in one transaction, with
//! a generator thread encoding the next chunk while the server ingests the last: a failure or an
//! interruption leaves nothing behind.
//!
//! Seeded rows are not audited row by row: they are synthetic, and a million INSERT entries would
//! double the load and bury the real history. The loader disables the audit triggers inside its
//! own transaction (other sessions never see them disabled; they wait for the seed's lock instead)
//! and enables them again before committing.
//!
//! Into empty tables the load takes the bulk path ([`crate::bulk`]): secondary indexes and foreign
//! keys are dropped inside the transaction and built once after the rows, rather than updated row
//! by row (benches/seed.rs measures both against psql's raw `\copy`).

mod demo;
mod generate;
use generate::{Encoder, Pass};

pub use demo::{load_demo, DemoAccount, Fixture, UserFixture};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use futures_util::SinkExt;
use serde::Serialize;
use time::OffsetDateTime;

use todo_db::db::Db;
use todo_db::error::{Error, Result};

/// What to generate. Equal specs generate equal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedSpec {
    pub users: u64,
    pub tasks_per_user: u32,
    pub seed: u64,
    /// "Now" for the generated data: creation times lie before it, due dates around it. Defaults
    /// to the start of the current UTC day, so that runs on the same day generate the same data.
    #[serde(with = "time::serde::rfc3339")]
    pub anchor: OffsetDateTime,
}

pub const MAX_USERS: u64 = 10_000_000;
pub const MAX_TASKS_PER_USER: u32 = 100_000;

impl SeedSpec {
    pub fn new(users: u64, tasks_per_user: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        SeedSpec { users, tasks_per_user, seed: 1, anchor: now.replace_time(time::Time::MIDNIGHT) }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn anchor(mut self, anchor: OffsetDateTime) -> Self {
        self.anchor = anchor;
        self
    }

    pub fn validate(&self) -> Result<()> {
        if self.users == 0 || self.users > MAX_USERS {
            return Err(Error::validation("users", format!("{} is not between 1 and {MAX_USERS}", self.users)));
        }
        if self.tasks_per_user > MAX_TASKS_PER_USER {
            return Err(Error::validation(
                "tasks-per-user",
                format!("{} is more than {MAX_TASKS_PER_USER}", self.tasks_per_user),
            ));
        }
        Ok(())
    }

    /// Rows the load will write, on average (tags and tag links are random): for progress.
    pub fn expected_rows(&self) -> u64 {
        let tasks = self.users * u64::from(self.tasks_per_user);
        self.users * 7 + tasks * 2 + tasks / 6
    }

    /// The email of seeded user `i`: unique per seed, so two seeds can share a database.
    pub fn email(&self, i: u64) -> String {
        format!("user{i}.seed{}@seed.example", self.seed)
    }
}

/// Rows written by [`load`], and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub spec: SeedSpec,
    pub users: u64,
    pub tags: u64,
    pub tasks: u64,
    pub task_tags: u64,
    /// Seconds from the first COPY to the commit.
    pub load_seconds: f64,
    /// Seconds spent settling the loaded tables afterwards: `VACUUM (ANALYZE)` records every row's
    /// commit status and the visibility map once, so the first queries do not, and refreshes the
    /// planner statistics.
    pub settle_seconds: f64,
}

impl SeedReport {
    pub fn rows(&self) -> u64 {
        self.users + self.tags + self.tasks + self.task_tags
    }
}

/// Live progress of a load, shared with whoever draws a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    rows: AtomicU64,
    phase: AtomicUsize,
    /// Every row of the last table has been generated (the server may still be checking them).
    generated: AtomicBool,
}

/// The load's phases, in order; [`Progress::phase`] is an index into this.
pub const PHASES: [&str; 6] = ["users", "tags", "tasks", "task_tags", "indexes", "vacuum"];

impl Progress {
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn phase(&self) -> &'static str {
        PHASES[self.phase.load(Ordering::Relaxed).min(PHASES.len() - 1)]
    }

    /// The rows the whole load writes, for a progress bar's length: `expected` (from
    /// [`SeedSpec::expected_rows`], an average) while rows are being generated, never less than
    /// what already is, and exactly the rows generated once the last table's are.
    pub fn total(&self, expected: u64) -> u64 {
        let rows = self.rows();
        if self.generated.load(Ordering::Acquire) {
            rows
        } else {
            expected.max(rows)
        }
    }
}

/// The tables in load order, with the columns the generator writes, in its order (the seed
/// benchmark's raw `\copy` reference uses the same).
pub const TABLES: [(&str, &str); 4] = [
    ("users", "id, email, display_name, is_active, created_at, updated_at"),
    ("tags", "id, user_id, name, color, created_at"),
    (
        "tasks",
        "id, user_id, title, description, priority, status, completed, completed_at, due_at, created_at, updated_at",
    ),
    ("task_tags", "user_id, task_id, tag_id"),
];

/// Which generator pass writes each of [`TABLES`].
const PASSES: [Pass; 4] = [Pass::Users, Pass::Tags, Pass::Tasks, Pass::TaskTags];

/// Generates `spec` and loads it into `db` in one transaction. Refuses if this seed's first user
/// already exists (the data would collide); say so rather than half-load.
pub async fn load(db: &Db, spec: &SeedSpec, progress: Arc<Progress>) -> Result<SeedReport> {
    spec.validate()?;
    db.admin().with_connection(async |conn| load_on(conn, db, spec, progress).await).await
}

async fn load_on(
    conn: &mut todo_db::db::Conn,
    db: &Db,
    spec: &SeedSpec,
    progress: Arc<Progress>,
) -> Result<SeedReport> {
    let target = db.target().to_string();
    let fail = |e| Error::from_pg(e, &target);
    let exists =
        conn.query_opt("select 1 from users where lower(email) = $1", &[&spec.email(0)]).await.map_err(fail)?;
    if exists.is_some() {
        return Err(Error::validation(
            "seed",
            format!(
                "seed {} is already loaded here ({} exists): reset, or use another --seed",
                spec.seed,
                spec.email(0)
            ),
        ));
    }
    let started = std::time::Instant::now();
    let tx = conn.transaction().await.map_err(fail)?;
    let tables: Vec<&str> = TABLES.iter().map(|t| t.0).collect();
    // Into empty tables, the bulk path: indexes and keys built once after the rows. Into tables
    // that hold rows already, the triggers are off and the indexes take each row.
    tx.batch_execute(&format!("set local statement_timeout = 0; lock table {} in exclusive mode", tables.join(", ")))
        .await
        .map_err(fail)?;
    let deferred = match crate::bulk::all_empty(&tx, &target, &tables).await? {
        true => Some(crate::bulk::Deferred::begin(&tx, &target, &tables).await?),
        false => {
            tx.batch_execute(&crate::bulk::triggers(&tables, false)).await.map_err(fail)?;
            None
        }
    };
    let mut counts = [0u64; 4];
    for (i, ((table, cols), pass)) in TABLES.iter().zip(PASSES).enumerate() {
        progress.phase.store(i, Ordering::Relaxed);
        let sql = format!("copy {table} ({cols}) from stdin (format binary)");
        counts[i] = copy_pass(&tx, &sql, *spec, pass, progress.clone()).await.map_err(fail)?;
    }
    progress.phase.store(4, Ordering::Relaxed);
    match deferred {
        Some(deferred) => deferred.finish(&tx, &target).await?,
        None => tx.batch_execute(&crate::bulk::triggers(&tables, true)).await.map_err(fail)?,
    }
    tx.commit().await.map_err(fail)?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress.phase.store(5, Ordering::Relaxed);
    let started = std::time::Instant::now();
    // A bulk load leaves each row's commit status to be looked up, and written into its page, by
    // the first query that reads it, and no visibility map (no index-only scans): one pass now
    // (about a second per million tasks; pages already all-visible are skipped) rather than in
    // the first queries that touch each page.
    conn.batch_execute("vacuum (analyze) users, tags, tasks, task_tags").await.map_err(fail)?;
    tracing::info!(users = counts[0], tasks = counts[2], seconds = load_seconds, "seeded");
    Ok(SeedReport {
        spec: *spec,
        users: counts[0],
        tags: counts[1],
        tasks: counts[2],
        task_tags: counts[3],
        load_seconds,
        settle_seconds: started.elapsed().as_secs_f64(),
    })
}

/// One table's COPY: a generator thread encodes chunks while this task sends them.
async fn copy_pass(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    spec: SeedSpec,
    pass: Pass,
    progress: Arc<Progress>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    const CHUNK: usize = 256 * 1024;
    let (send, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
    let generator = tokio::task::spawn_blocking(move || {
        let mut out = Encoder::new();
        let mut scratch = Encoder::new();
        let (mut rows, mut reported) = (0u64, 0u64);
        for i in 0..spec.users {
            rows += generate::generate(&spec, i, pass, &mut out, &mut scratch);
            if out.buf.len() >= CHUNK {
                progress.rows.fetch_add(rows - reported, Ordering::Relaxed);
                reported = rows;
                if send.blocking_send(out.buf.split().freeze()).is_err() {
                    return rows; // the COPY failed; its error is reported by the sender
                }
            }
        }
        out.buf.put_i16(-1);
        progress.rows.fetch_add(rows - reported, Ordering::Relaxed);
        if pass == PASSES[PASSES.len() - 1] {
            progress.generated.store(true, Ordering::Release);
        }
        let _ = send.blocking_send(out.buf.split().freeze());
        rows
    });
    let sink = tx.copy_in::<_, Bytes>(sql).await?;
    futures_util::pin_mut!(sink);
    while let Some(chunk) = chunks.recv().await {
        sink.send(chunk).await?;
    }
    let written = sink.finish().await?;
    let generated = generator.await.unwrap_or(0);
    debug_assert_eq!(written, generated);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SeedSpec {
        SeedSpec::new(3, 50).seed(42).anchor(time::macros::datetime!(2026-01-15 0:00 UTC))
    }

    fn pass_bytes(spec: &SeedSpec, pass: Pass) -> (u64, Vec<u8>) {
        let (mut out, mut scratch) = (Encoder::new(), Encoder::new());
        let rows = (0..spec.users).map(|i| generate::generate(spec, i, pass, &mut out, &mut scratch)).sum();
        (rows, out.buf.to_vec())
    }

    #[test]
    fn same_spec_same_bytes_and_other_seed_other_bytes() {
        for pass in [Pass::Users, Pass::Tags, Pass::Tasks, Pass::TaskTags] {
            assert_eq!(pass_bytes(&spec(), pass), pass_bytes(&spec(), pass));
            assert_ne!(pass_bytes(&spec(), pass).1, pass_bytes(&spec().seed(43), pass).1);
        }
        assert_eq!(pass_bytes(&spec(), Pass::Tasks).0, 150);
    }

    #[test]
    fn passes_agree_on_ids() {
        // The task ids the links refer to are ids the tasks pass wrote.
        let tasks = pass_bytes(&spec(), Pass::Tasks).1;
        let (links, link_bytes) = pass_bytes(&spec(), Pass::TaskTags);
        assert!(links > 0);
        let rows = &link_bytes[19..];
        let first_task_id = &rows[2 + 20 + 4..2 + 20 + 20];
        assert!(tasks.windows(16).any(|w| w == first_task_id));
    }
}
