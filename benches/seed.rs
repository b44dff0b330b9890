//! Bulk loads: `todo-db seed`'s loader, and `todo-db import` of a database in the original
//! module's shape, each next to psql's raw binary `\copy` of the very same rows into the same
//! (migrated, indexed, empty) tables, in the same run, as a ratio.
//!
//! `cargo bench --bench seed` (DATABASE_URL, or the embedded default). Knobs: BENCH_SEED_USERS
//! (10000), BENCH_SEED_TASKS (100 per user: 1 000 000 tasks), BENCH_ROUNDS (2, alternated);
//! BENCH_ONLY=seed or import; BENCH_QUICK=1 for a smoke run; BENCH_KEEP=1 keeps the databases.
//!
//! The reference runs in one transaction with the tables' user triggers disabled inside it (as
//! both loaders have them), so it pays for the indexes, constraints and foreign keys, and nothing
//! else. Its input files are exported from the loaded database, so both sides load identical
//! rows; the per-table checksums of the two databases are compared at the end. The import's
//! source is generated on the server (`todo_db_testkit::original::generated`) before the rounds.

use todo_db_testkit::bench as support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use todo_db::db::Db;
use todo_db::schema;
use todo_db::Settings;
use todo_db_ops::import::{self, ImportOptions};
use todo_db_ops::seed::{self, SeedSpec};

use support::*;

/// One loader's side of a round: its seconds and the rows it wrote.
struct Load {
    seconds: f64,
    rows: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_SEED_USERS", 10_000, 100);
    let per_user = knob("BENCH_SEED_TASKS", 100, 10) as u32;
    let rounds = knob("BENCH_ROUNDS", 2, 1);
    let server = server_url().await?;
    let psql = todo_db_ops::local::find_bin_dir()?.join("psql");
    let dir = std::env::temp_dir().join(format!("todo-db-bench-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut lines = Vec::new();

    if part("seed") {
        let spec = SeedSpec::new(users, per_user).seed(1);
        let tables: Vec<(String, String)> = seed::TABLES.iter().map(|(t, c)| (t.to_string(), c.to_string())).collect();
        println!("seed: {users} users x {per_user} tasks; {rounds} rounds, alternated");
        let (ours, raw) = compare(&server, &psql, &dir, "seed", &tables, rounds, async |db: Db| {
            let r = seed::load(&db, &spec, Default::default()).await?;
            Ok(Load { seconds: r.load_seconds, rows: r.rows() })
        })
        .await?;
        lines.push(("todo-db seed (generate + binary COPY)", ours, raw));
    }

    if part("import") {
        println!("import: generating the original module's database, {users} users x {per_user} tasks");
        let source_url = plain_database(&server, "todo_bench_original").await?;
        let mut s = Settings::default();
        s.pool.size = 1;
        let source = Db::connect_url(&source_url, &s).await?;
        let started = Instant::now();
        source.admin().batch(todo_db_testkit::original::SCHEMA).await?;
        source.admin().batch(&todo_db_testkit::original::generated(users, per_user.into())).await?;
        source.admin().batch("analyze").await?;
        println!("  generated in {:.1}s", started.elapsed().as_secs_f64());
        let tables: Vec<(String, String)> =
            import::TARGETS.iter().map(|t| (t.to_string(), import::columns(t).to_string())).collect();
        let (ours, raw) = compare(&server, &psql, &dir, "import", &tables, rounds, async |db: Db| {
            let started = Instant::now();
            let r = import::import(&db, &source, &ImportOptions::default(), Arc::default()).await?;
            Ok(Load { seconds: started.elapsed().as_secs_f64(), rows: r.rows })
        })
        .await?;
        lines.push(("todo-db import (plan + source COPY -> COPY)", ours, raw));
        source.close();
        drop_database(&server, "todo_bench_original").await;
    }

    println!();
    println!("{:<46} {:>10} {:>12} {:>8}", "bulk load (rows, one transaction)", "seconds", "rows/s", "ratio");
    for (name, ours, raw) in lines {
        println!(
            "{:<46} {:>10.2} {:>12.0} {:>8.2}",
            name,
            ours.seconds,
            ours.rows as f64 / ours.seconds,
            raw / ours.seconds
        );
        println!(
            "{:<46} {:>10.2} {:>12.0} {:>8}",
            "  psql \\copy of the same rows (binary)",
            raw,
            ours.rows as f64 / raw,
            "1.00"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// `rounds` alternated rounds of `load` into a fresh database and of psql's raw `\copy` of the
/// rows it wrote (exported after the first round) into another: the loader's mean and the
/// reference's mean seconds.
async fn compare(
    server: &str,
    psql: &Path,
    dir: &Path,
    name: &str,
    tables: &[(String, String)],
    rounds: u64,
    load: impl AsyncFn(Db) -> anyhow::Result<Load>,
) -> anyhow::Result<(Load, f64)> {
    let (a, b) = (format!("todo_bench_{name}_a"), format!("todo_bench_{name}_b"));
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    let mut rows = 0;
    let mut bytes = 0u64;
    for round in 0..rounds {
        let (url_a, db_a) = fresh_database(server, &a, 2).await?;
        let l = load(db_a.clone()).await?;
        ours.push(l.seconds);
        rows = l.rows;
        if round == 0 {
            for (table, cols) in tables {
                let file = dir.join(format!("{name}-{table}.bin"));
                let cmd = format!("\\copy {table} ({cols}) to '{}' with (format binary)", file.display());
                run(Command::new(psql).arg(&url_a).args(["-X", "-q", "-c", &cmd]))?;
                bytes += std::fs::metadata(&file)?.len();
            }
        }
        let (url_b, db_b) = fresh_database(server, &b, 2).await?;
        let mut script = String::from("begin;\nset statement_timeout = 0;\n");
        for (table, _) in tables {
            script.push_str(&format!("alter table {table} disable trigger user;\n"));
        }
        for (table, cols) in tables {
            let file = dir.join(format!("{name}-{table}.bin"));
            script.push_str(&format!("\\copy {table} ({cols}) from '{}' with (format binary)\n", file.display()));
        }
        for (table, _) in tables {
            script.push_str(&format!("alter table {table} enable trigger user;\n"));
        }
        script.push_str("commit;\n");
        let script_file = dir.join(format!("{name}-load.sql"));
        std::fs::write(&script_file, script)?;
        let started = Instant::now();
        run(Command::new(psql).arg(&url_b).args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"]).arg(&script_file))?;
        raw.push(started.elapsed().as_secs_f64());
        if round + 1 == rounds {
            let (mut conn_a, mut conn_b) = (db_a.admin().connection().await?, db_b.admin().connection().await?);
            // The audit log's ids and transaction ids are the loading transaction's own: its rows
            // are compared by count.
            let content = |mut s: Vec<schema::TableChecksum>| {
                s.iter_mut().filter(|t| t.table == "audit.log").for_each(|t| t.digest.clear());
                s
            };
            let sa = content(schema::checksum(&mut conn_a).await?);
            let sb = content(schema::checksum(&mut conn_b).await?);
            anyhow::ensure!(sa == sb, "{name}: the reference loaded different rows: {sa:?} vs {sb:?}");
            println!("  {name}: both databases hold identical rows (per-table checksums match)");
        }
        db_a.close();
        db_b.close();
    }
    println!(
        "  {name}: rows {rows}, binary size {:.1} MB; per round: todo-db {ours:.2?}, \\copy {raw:.2?}",
        bytes as f64 / 1e6
    );
    drop_database(server, &a).await;
    drop_database(server, &b).await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok((Load { seconds: mean(&ours), rows }, mean(&raw)))
}
