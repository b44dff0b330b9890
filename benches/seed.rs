//! Seeding / bulk load: `todo-db seed`'s loader next to psql's raw binary `\copy` of the very same
//! rows into the same (migrated, indexed, empty) tables, in the same run, as a ratio.
//!
//! `cargo bench --bench seed` (DATABASE_URL, or the embedded default). Knobs: BENCH_SEED_USERS
//! (10000), BENCH_SEED_TASKS (100 per user: 1 000 000 tasks), BENCH_ROUNDS (2, alternated);
//! BENCH_QUICK=1 for a smoke run; BENCH_KEEP=1 keeps the databases.
//!
//! Both sides run in one transaction with the audit triggers disabled inside it (what the seed
//! does), so the reference pays for the same indexes, constraints and foreign keys, and nothing
//! else. The reference's input files are exported from the seeded database, so both load
//! identical rows; the per-table checksums of the two databases are compared at the end.

use todo_db_testkit::bench as support;

use std::process::Command;
use std::time::Instant;

use todo_db::schema;
use todo_db_ops::seed::{self, SeedSpec};

use support::*;

/// The seed's tables and columns, from the library.
const TABLES: [(&str, &str); 4] = todo_db_ops::seed::TABLES;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_SEED_USERS", 10_000, 100);
    let per_user = knob("BENCH_SEED_TASKS", 100, 10) as u32;
    let rounds = knob("BENCH_ROUNDS", 2, 1);
    let server = server_url().await?;
    let spec = SeedSpec::new(users, per_user).seed(1);
    let psql = todo_db_ops::local::find_bin_dir()?.join("psql");
    let dir = std::env::temp_dir().join(format!("todo-db-bench-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("seeding {users} users x {per_user} tasks; {rounds} rounds, alternated");

    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    let mut bytes = 0u64;
    let mut rows = 0u64;
    for round in 0..rounds {
        // todo-db's loader.
        let (url_a, db_a) = fresh_database(&server, "todo_bench_seed_a", 2).await?;
        let report = seed::load(&db_a, &spec, Default::default()).await?;
        ours.push(report.load_seconds);
        rows = report.rows();
        if round == 0 {
            // The reference's input: the same rows, exported in binary COPY format.
            for (table, cols) in TABLES {
                let file = dir.join(format!("{table}.bin"));
                let cmd = format!("\\copy {table} ({cols}) to '{}' with (format binary)", file.display());
                run(Command::new(&psql).arg(&url_a).args(["-X", "-q", "-c", &cmd]))?;
                bytes += std::fs::metadata(&file)?.len();
            }
        }
        // psql's raw \copy of those files, one transaction, triggers as the seed has them.
        let (url_b, db_b) = fresh_database(&server, "todo_bench_seed_b", 2).await?;
        let mut script = String::from("begin;\nset statement_timeout = 0;\n");
        for (table, _) in TABLES {
            script.push_str(&format!("alter table {table} disable trigger {table}_audit;\n"));
        }
        for (table, cols) in TABLES {
            let file = dir.join(format!("{table}.bin"));
            script.push_str(&format!("\\copy {table} ({cols}) from '{}' with (format binary)\n", file.display()));
        }
        for (table, _) in TABLES {
            script.push_str(&format!("alter table {table} enable trigger {table}_audit;\n"));
        }
        script.push_str("commit;\n");
        let script_file = dir.join("load.sql");
        std::fs::write(&script_file, script)?;
        let started = Instant::now();
        run(Command::new(&psql).arg(&url_b).args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"]).arg(&script_file))?;
        raw.push(started.elapsed().as_secs_f64());
        if round + 1 == rounds {
            let (mut conn_a, mut conn_b) = (db_a.admin().connection().await?, db_b.admin().connection().await?);
            let (a, b) = (schema::checksum(&mut conn_a).await?, schema::checksum(&mut conn_b).await?);
            anyhow::ensure!(a == b, "the reference loaded different rows: {a:?} vs {b:?}");
            println!("both databases hold identical rows (per-table checksums match)");
        }
        let _ = url_b;
        db_a.close();
        db_b.close();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (t_ours, t_raw) = (mean(&ours), mean(&raw));
    println!();
    println!("{:<40} {:>10} {:>12} {:>8}", "bulk load (rows, one transaction)", "seconds", "rows/s", "ratio");
    println!(
        "{:<40} {:>10.2} {:>12.0} {:>8.2}",
        "todo-db seed (generate + binary COPY)",
        t_ours,
        rows as f64 / t_ours,
        t_raw / t_ours
    );
    println!(
        "{:<40} {:>10.2} {:>12.0} {:>8}",
        "psql \\copy of the same rows (binary)",
        t_raw,
        rows as f64 / t_raw,
        "1.00"
    );
    println!("rows {rows}, binary size {:.1} MB; per round: todo-db {ours:.2?}, \\copy {raw:.2?}", bytes as f64 / 1e6);
    std::fs::remove_dir_all(&dir).ok();
    drop_database(&server, "todo_bench_seed_a").await;
    drop_database(&server, "todo_bench_seed_b").await;
    Ok(())
}
