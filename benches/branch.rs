//! Branch creation: `todo-db branch create` (local provider) next to the raw `CREATE DATABASE ...
//! TEMPLATE` with each copy strategy, on an empty and on a seeded database, in the same run.
//!
//! `cargo bench --bench branch` (DATABASE_URL, or the embedded default). Knobs: BENCH_BRANCH_USERS
//! (10000), BENCH_BRANCH_TASKS (100 per user: 1 000 000 tasks), BENCH_ROUNDS (5, median);
//! BENCH_QUICK=1 for a smoke run.

use todo_db_testkit::bench as support;

use std::time::Instant;

use todo_db::{Db, Settings};
use todo_db_ops::branch::{local::Local, CreateOptions, Provider};
use todo_db_ops::seed::{self, SeedSpec};

use support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_BRANCH_USERS", 10_000, 50);
    let per_user = knob("BENCH_BRANCH_TASKS", 100, 10) as u32;
    let rounds = knob("BENCH_ROUNDS", 5, 1) as usize;
    let server = server_url().await?;
    let maint = Db::connect_url(&with_database(&server, "postgres"), &Settings::default()).await?;

    println!(
        "{:<28} {:>10} {:>12} {:>12} {:>12} {:>8}",
        "parent", "size MB", "todo-db s", "wal_log s", "file_copy s", "ratio"
    );
    for (label, seeded) in [("empty (migrated)", false), ("seeded", true)] {
        let (url, db) = fresh_database(&server, "todo_bench_branch", 2).await?;
        if seeded {
            seed::load(&db, &SeedSpec::new(users, per_user).seed(1), Default::default()).await?;
        }
        checkpoint(&db).await?;
        let size: i64 = db.admin().query("select pg_database_size(current_database())", &[]).await?[0].get(0);
        db.close();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let provider = Local::new(&url, &Settings::default())?;
        let (mut ours, mut wal, mut file) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            let wait = CreateOptions { wait: std::time::Duration::from_secs(30), ..Default::default() };
            provider.create("bench", &wait).await?;
            ours.push(started.elapsed().as_secs_f64());
            provider.delete("bench", true).await?;
            for (strategy, times) in [("wal_log", &mut wal), ("file_copy", &mut file)] {
                let started = Instant::now();
                maint
                    .admin()
                    .batch(&format!("create database todo_bench_raw template todo_bench_branch strategy {strategy}"))
                    .await?;
                times.push(started.elapsed().as_secs_f64());
                maint.admin().batch("drop database todo_bench_raw").await?;
            }
        }
        let (o, w, f) = (percentile(&mut ours, 0.5), percentile(&mut wal, 0.5), percentile(&mut file, 0.5));
        let label = if seeded { format!("{label} {}x{} tasks", users, per_user) } else { label.to_string() };
        println!("{:<28} {:>10.1} {:>12.3} {:>12.3} {:>12.3} {:>8.2}", label, size as f64 / 1e6, o, w, f, o / w.min(f));
    }
    println!("ratio: todo-db's time over the faster raw strategy (goal <= 1.1)");
    drop_database(&server, "todo_bench_branch").await;
    Ok(())
}
