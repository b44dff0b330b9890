//! Backup and restore: `todo-db backup create` / `restore` next to `pg_dump -Fc` / `pg_restore`
//! of the same seeded database in the same run, as ratios of time and size.
//!
//! `cargo bench --bench backup` (DATABASE_URL, or the embedded default). Knobs: BENCH_BACKUP_USERS
//! (10000), BENCH_BACKUP_TASKS (100 per user: 1 000 000 tasks), BENCH_WORKERS (4); BENCH_QUICK=1
//! for a smoke run; BENCH_KEEP=1 keeps the databases.

use todo_db_testkit::bench as support;

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use todo_db::schema;
use todo_db_ops::backup;
use todo_db_ops::seed::{self, SeedSpec};

use support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_BACKUP_USERS", 10_000, 100);
    let per_user = knob("BENCH_BACKUP_TASKS", 100, 10) as u32;
    let workers = knob("BENCH_WORKERS", 4, 2) as usize;
    let server = server_url().await?;
    let bin = todo_db_ops::local::find_bin_dir()?;
    let dir = std::env::temp_dir().join(format!("todo-db-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let (url, db) = fresh_database(&server, "todo_bench_backup", workers + 1).await?;
    let report = seed::load(&db, &SeedSpec::new(users, per_user).seed(1), Default::default()).await?;
    println!("seeded {users} users x {per_user} tasks ({} rows); {workers} backup workers", report.rows());
    checkpoint(&db).await?;

    // Backup: todo-db, then pg_dump -Fc, then todo-db again (the mean of the two is reported).
    let mut ours = Vec::new();
    let mut manifest = None;
    let mut pg_dump = 0.0;
    for round in 0..2 {
        let out = dir.join(format!("todo-db-{round}"));
        let started = Instant::now();
        manifest =
            Some(backup::create(&db, &out, &backup::CreateOptions { workers, key: None }, Arc::default()).await?);
        ours.push(started.elapsed().as_secs_f64());
        if round == 0 {
            let dump = dir.join("pg.dump");
            let started = Instant::now();
            run(Command::new(bin.join("pg_dump")).args(["-Fc", "-f"]).arg(&dump).arg(&url))?;
            pg_dump = started.elapsed().as_secs_f64();
        }
    }
    let manifest = manifest.expect("two rounds");
    let pg_size = std::fs::metadata(dir.join("pg.dump"))?.len();
    let ours_backup = ours.iter().sum::<f64>() / ours.len() as f64;

    // Restore: into fresh databases, alternated the same way.
    let mut ours_restore = Vec::new();
    let mut pg_restore = 0.0;
    for round in 0..2 {
        let (_, target) = fresh_database(&server, "todo_bench_restore", 2).await?;
        let started = Instant::now();
        backup::restore(&target, &dir.join("todo-db-0"), &Default::default(), Arc::default()).await?;
        ours_restore.push(started.elapsed().as_secs_f64());
        if round == 1 {
            let mut a = db.admin().connection().await?;
            let mut b = target.admin().connection().await?;
            anyhow::ensure!(
                schema::checksum(&mut a).await? == schema::checksum(&mut b).await?,
                "the restored database differs from its source"
            );
            println!("restored database equals its source (per-table checksums match)");
        }
        target.close();
        if round == 0 {
            let maint = todo_db::Db::connect_url(&with_database(&server, "postgres"), &Default::default()).await?;
            maint.admin().batch("drop database if exists todo_bench_pg_restore with (force)").await?;
            maint.admin().batch("create database todo_bench_pg_restore").await?;
            // pg_restore as the embedded cluster's superuser, as it is usually run (the dump's
            // schema grants and owners need more than the owner login may do); todo-db's own
            // restore above ran as the owner login.
            let pg_url = match superuser_url("todo_bench_pg_restore").await {
                Some(url) => url,
                None => with_database(&server, "todo_bench_pg_restore"),
            };
            let started = Instant::now();
            run(Command::new(bin.join("pg_restore"))
                .args(["--exit-on-error", "-d", &pg_url])
                .arg(dir.join("pg.dump")))?;
            pg_restore = started.elapsed().as_secs_f64();
        }
    }
    let ours_restore = ours_restore.iter().sum::<f64>() / ours_restore.len() as f64;

    println!();
    println!("{:<44} {:>9} {:>10} {:>16}", "backup and restore", "seconds", "size MB", "speed vs pg");
    println!(
        "{:<44} {:>9.2} {:>10.1} {:>16.2}",
        format!("todo-db backup create ({workers} workers)"),
        ours_backup,
        manifest.bytes() as f64 / 1e6,
        pg_dump / ours_backup
    );
    println!("{:<44} {:>9.2} {:>10.1} {:>16}", "pg_dump -Fc", pg_dump, pg_size as f64 / 1e6, "1.00");
    println!("{:<44} {:>9.2} {:>10} {:>16.2}", "todo-db backup restore", ours_restore, "", pg_restore / ours_restore);
    println!("{:<44} {:>9.2} {:>10} {:>16}", "pg_restore", pg_restore, "", "1.00");
    println!("size ratio (todo-db / pg_dump): {:.2}", manifest.bytes() as f64 / pg_size as f64);
    std::fs::remove_dir_all(&dir).ok();
    db.close();
    for name in ["todo_bench_backup", "todo_bench_restore", "todo_bench_pg_restore"] {
        drop_database(&server, name).await;
    }
    Ok(())
}
