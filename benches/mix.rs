//! The workload mix (scenario 1) and round trips under latency (scenario 2).
//!
//! Scenario 1: closed loop at 1, 8 and 32 virtual users over a seeded database: 50% list my open
//! tasks (first page), 15% create a task, 15% complete a task, 10% tag a task, 10% read my summary
//! view; todo-db (RLS and audit on) next to two pgbench references in the same run, alternated:
//! - plain: each operation's bare SQL, one statement, no transaction, no identity;
//! - same statements: exactly what todo-db sends, the identity and the operation's statements,
//!   inside `\startpipeline` / `\endpipeline` (one Sync, one implicit transaction), so pgbench also
//!   pays one round trip.
//!
//! Scenario 2: the same operations, one at a time, directly and through a proxy that delays each
//! direction by 2 ms (the two alternated, 100 times each); the delay the proxy added to each one's
//! median, in round trips (the delay it added to `select 1`'s), and its median through the proxy
//! over `select 1`'s (an upper bound, which counts the operation's server work too).
//!
//! `cargo bench --bench mix` (DATABASE_URL, or the embedded default). Knobs: BENCH_MIX_USERS (5000),
//! BENCH_MIX_TASKS (200 per user), BENCH_SECONDS (5 per run), BENCH_CONCURRENCY ("1,8,32"),
//! BENCH_MIX_ROUNDS (6: each side runs once per round, the order reversed every round; many short
//! rounds, because a side's rate moves by ±15% from round to round on a shared machine),
//! BENCH_DELAY_MS (2), BENCH_PGBOUNCER (1: also run the mix through a local PgBouncer in
//! transaction mode, next to pgbench's same statements through it and todo-db direct; skipped,
//! with a note, when pgbouncer is not installed; PGBOUNCER names it), BENCH_POOLED_CLIENTS (8),
//! BENCH_POOLED_ROUNDS (3);
//! BENCH_QUICK=1 for a smoke run; BENCH_SETTLE=0 (no VACUUM and CHECKPOINT before each run);
//! BENCH_KEEP=1 keeps the database; BENCH_SCRIPTS_DIR=DIR writes the references' pgbench scripts
//! there (same-OP.sql, plain-OP.sql), to run pgbench by hand.

use todo_db_testkit::bench as support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use todo_db::model::{NewTask, TagName, TaskFilter, TaskId, UserId};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::{Db, Settings};

use support::*;

const OPS: [(&str, u32); 5] = [("list", 50), ("create", 15), ("complete", 15), ("tag", 10), ("summary", 10)];
const TAGS: [&str; 3] = ["work", "home", "errands"];

/// The data every virtual user draws from: seeded users, and a sample of their open tasks.
struct Data {
    users: Vec<uuid::Uuid>,
    tasks: Vec<(uuid::Uuid, uuid::Uuid)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_MIX_USERS", 5000, 100);
    let per_user = knob("BENCH_MIX_TASKS", 200, 20) as u32;
    let seconds = knob("BENCH_SECONDS", 5, 1);
    let delay = Duration::from_millis(knob("BENCH_DELAY_MS", 2, 2));
    let concurrency: Vec<u64> = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| if quick_mode() { vec![1, 4] } else { vec![1, 8, 32] });
    let max_clients = *concurrency.iter().max().unwrap_or(&8);
    let server = server_url().await?;
    let (url, db) = fresh_database(&server, "todo_bench_mix", max_clients as usize).await?;
    let started = Instant::now();
    let users_in_order = seed_numbered(&db, users, per_user).await?;
    db.admin()
        .batch(
            "create table bench_tasks as select row_number() over (order by id) as n, user_id, id as task_id \
                 from tasks where not completed; \
             alter table bench_tasks add primary key (n); \
             grant select on bench_tasks to todo_app; analyze bench_tasks",
        )
        .await?;
    let data = Arc::new(Data {
        users: users_in_order,
        tasks: db
            .admin()
            .query("select user_id, task_id from bench_tasks order by n", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
    });
    println!(
        "seeded {users} users x {per_user} tasks ({} open tasks to complete and tag) in {:.1}s; {seconds}s per run",
        data.tasks.len(),
        started.elapsed().as_secs_f64()
    );

    // The same statements run as the login todo-db's user scopes use (the embedded default's app
    // login, when there is one); the plain ones as the admin login (no RLS).
    let (same, plain) = scripts(&db, data.users.len(), data.tasks.len());
    let scoped_url = app_url("todo_bench_mix").await?.unwrap_or_else(|| url.clone());
    if let Some(dir) = std::env::var_os("BENCH_SCRIPTS_DIR") {
        // The references' scripts, to run pgbench by hand on the kept database (BENCH_KEEP=1).
        std::fs::create_dir_all(&dir)?;
        for ((name, _), (s, p)) in OPS.iter().zip(same.iter().zip(&plain)) {
            std::fs::write(std::path::Path::new(&dir).join(format!("same-{name}.sql")), s)?;
            std::fs::write(std::path::Path::new(&dir).join(format!("plain-{name}.sql")), p)?;
        }
    }
    let w = || OPS.iter().map(|(_, w)| *w);
    let same: Vec<(&str, String, u32)> =
        OPS.iter().map(|(n, _)| *n).zip(same).zip(w()).map(|((n, s), w)| (n, s, w)).collect();
    let plain: Vec<(&str, String, u32)> =
        OPS.iter().map(|(n, _)| *n).zip(plain).zip(w()).map(|((n, s), w)| (n, s, w)).collect();

    // Warm the cache for everyone.
    run_mix(&db, &data, max_clients, 1).await;
    println!();
    println!("Scenario 1: workload mix (RLS and audit on), p50/p99 in ms; CPU per operation, server/client");
    println!(
        "{:<8} {:<16} {:>8} {:>13} {:>13} {:>13} {:>13} {:>13} {:>13} {:>11}",
        "clients", "side", "ops/s", "overall", "list", "create", "complete", "tag", "summary", "cpu us/op"
    );
    // Each round runs the three sides, in the reverse order of the round before, so that no side
    // always runs first (on a colder cache) or last; ops/s are the mean over rounds, latencies all
    // of the rounds' operations.
    let rounds = knob("BENCH_MIX_ROUNDS", 6, 1);
    let postmaster = postmaster_pid(&db).await;
    for &clients in &concurrency {
        let mut sides: [(f64, Vec<Vec<f64>>); 3] = Default::default();
        let mut spent = [Spent::default(); 3];
        let mut per_round = Vec::new();
        for round in 0..rounds {
            let mut got: [(f64, Vec<Vec<f64>>); 3] = Default::default();
            let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for side in order {
                settle(&db).await;
                let before = cpu(postmaster);
                got[side] = match side {
                    0 => run_mix(&db, &data, clients, seconds).await,
                    1 => pgbench_mix(&url, &plain, clients, seconds).map(|r| (r.tps, r.latencies))?,
                    _ => pgbench_mix(&scoped_url, &same, clients, seconds).map(|r| (r.tps, r.latencies))?,
                };
                if let Some(used) = cpu_since(postmaster, before) {
                    let s = &mut spent[side];
                    s.server += used.server;
                    s.client += if side == 0 { used.client } else { used.children };
                    s.ops += got[side].0 * seconds as f64;
                }
            }
            per_round.push((got[0].0 / got[1].0, got[0].0 / got[2].0));
            for (total, (ops, lat)) in sides.iter_mut().zip(got) {
                total.0 += ops / rounds as f64;
                total.1.resize(lat.len().max(total.1.len()), Vec::new());
                total.1.iter_mut().zip(lat).for_each(|(all, l)| all.extend(l));
            }
        }
        let [ours, pg_plain, pg_same] = sides;
        let (ratio_plain, ratio_same) = (ours.0 / pg_plain.0, ours.0 / pg_same.0);
        print_row(clients, "todo-db", ours.0, ours.1, spent[0]);
        print_row(clients, "pgbench plain", pg_plain.0, pg_plain.1, spent[1]);
        print_row(clients, "pgbench same", pg_same.0, pg_same.1, spent[2]);
        let (vs_plain, vs_same): (Vec<f64>, Vec<f64>) = per_round.iter().copied().unzip();
        println!(
            "{:<8} {:<16} vs plain {ratio_plain:.2}x, vs same statements {ratio_same:.2}x (rounds: {})",
            clients,
            "ratio",
            per_round.iter().map(|(p, s)| format!("{p:.2}/{s:.2}")).collect::<Vec<_>>().join(", ")
        );
        println!(
            "{:<8} {:<16} per-round median (range): vs plain {}, vs same statements {}",
            clients,
            "ratio",
            ratio_spread(vs_plain),
            ratio_spread(vs_same)
        );
    }

    // Scenario 1b: the same mix through PgBouncer in transaction mode (what Neon's pooled endpoint
    // is): todo-db through it (prepared statements when it tracks them, as 1.21 and later do and
    // Neon's does; unnamed otherwise), pgbench sending todo-db's statements through the same
    // PgBouncer, todo-db direct, and todo-db through it with unnamed statements, alternated. Skipped, saying so, when PgBouncer is not
    // installed.
    let pooled_wanted = std::env::var("BENCH_PGBOUNCER").map_or(true, |v| v != "0");
    if pooled_wanted && todo_db_testkit::pooler::pgbouncer_binary().is_none() {
        println!();
        println!("Scenario 1b skipped: pgbouncer is not installed (scripts/install-servers, or set PGBOUNCER)");
    } else if pooled_wanted {
        let clients = knob("BENCH_POOLED_CLIENTS", 8, 4);
        // User scopes log in through the pooler as the app login, as they do direct (a Neon
        // user points APP_DATABASE_URL at the pooled endpoint too).
        let pooler = todo_db_testkit::pooler::LocalPooler::start_with(&url, clients as usize, &[&scoped_url], true)?;
        let mode = if pooler.tracks_prepared {
            todo_db::config::StatementMode::Prepared
        } else {
            todo_db::config::StatementMode::Unnamed
        };
        let mut s = Settings::default();
        s.pool.size = clients as usize;
        s.pool.overflow = 0;
        s.pool.statements = mode;
        let pooled_url = pooler.url(&url);
        let scoped_pooled_url = pooler.url(&scoped_url);
        if db.app_login().is_some() {
            s.app_url = Some(todo_db::config::Secret::new(scoped_pooled_url.clone()));
        }
        let pooled = Db::connect_url(&pooled_url, &s).await?;
        // Unnamed statements through the same pooler, for comparison (what TODO_DB_STATEMENTS=unnamed
        // gives).
        s.pool.statements = todo_db::config::StatementMode::Unnamed;
        let unnamed = Db::connect_url(&pooled_url, &s).await?;
        let rounds = knob("BENCH_POOLED_ROUNDS", 3, 1);
        let mut totals = [0.0f64; 4];
        let mut per_round = Vec::new();
        for round in 0..rounds {
            let mut got = [0.0f64; 4];
            let order: [usize; 4] = if round % 2 == 0 { [0, 1, 2, 3] } else { [3, 2, 1, 0] };
            for side in order {
                settle(&db).await;
                got[side] = match side {
                    0 => run_mix(&pooled, &data, clients, seconds).await.0,
                    1 => pgbench_mix(&scoped_pooled_url, &same, clients, seconds)?.tps,
                    2 => run_mix(&db, &data, clients, seconds).await.0,
                    _ => run_mix(&unnamed, &data, clients, seconds).await.0,
                };
            }
            per_round.push((got[0] / got[1], got[0] / got[2]));
            totals.iter_mut().zip(got).for_each(|(t, g)| *t += g / rounds as f64);
        }
        println!();
        println!(
            "Scenario 1b: the mix through PgBouncer {} (transaction mode, {} statements), {clients} clients",
            pooler.version,
            if pooler.tracks_prepared { "prepared" } else { "unnamed" }
        );
        println!("{:<44} {:>10}", "", "ops/s");
        println!("{:<44} {:>10.0}", "todo-db through PgBouncer", totals[0]);
        println!("{:<44} {:>10.0}", "pgbench same statements through PgBouncer", totals[1]);
        println!("{:<44} {:>10.0}", "todo-db direct", totals[2]);
        println!("{:<44} {:>10.0}", "todo-db through PgBouncer, unnamed statements", totals[3]);
        let (vs_pgbench, vs_direct): (Vec<f64>, Vec<f64>) = per_round.iter().copied().unzip();
        println!(
            "{:<44} vs pgbench through PgBouncer {:.2}x, vs todo-db direct {:.2}x",
            "ratio",
            totals[0] / totals[1],
            totals[0] / totals[2]
        );
        println!(
            "{:<44} per-round median (range): vs pgbench {}, vs direct {}",
            "",
            ratio_spread(vs_pgbench),
            ratio_spread(vs_direct)
        );
        pooled.close();
        unnamed.close();
    }

    // Scenario 2: round trips under latency, counted by the delay the proxy adds (server work, the
    // same both ways, cancels out).
    let target = db.target().clone();
    let port = delay_proxy((target.host.clone(), target.port), delay)?;
    let mut slow_url = url::Url::parse(&url)?;
    slow_url.set_port(Some(port)).ok();
    let mut settings = Settings::default();
    settings.pool.size = 1;
    settings.pool.overflow = 0;
    let slow = Db::connect_url(slow_url.as_str(), &settings).await?;
    let fast = Db::connect_url(&url, &settings).await?;
    let samples = if quick_mode() { 5 } else { 100 };
    let conns = [fast.admin().connection().await?, slow.admin().connection().await?];
    let unit = alternated_p50(samples, async |side| {
        conns[side].simple_query("select 1").await?;
        Ok(())
    })
    .await?;
    drop(conns);
    let trip = unit[1] - unit[0];
    println!();
    println!("Scenario 2: one operation at a time through a proxy adding {delay:?} each way");
    println!("{:<12} {:>12} {:>12} {:>14} {:>14}", "operation", "direct p50", "proxy p50", "x select 1", "round trips");
    println!("{:<12} {:>12.2} {:>12.2} {:>14.2} {:>14.2}", "select 1", unit[0], unit[1], 1.0, 1.0);
    for (i, (name, _)) in OPS.iter().enumerate() {
        let p50 = alternated_p50(samples, async |side| {
            one_op([&fast, &slow][side], &data, i).await;
            Ok(())
        })
        .await?;
        println!(
            "{:<12} {:>12.2} {:>12.2} {:>14.2} {:>14.2}",
            name,
            p50[0],
            p50[1],
            p50[1] / unit[1],
            (p50[1] - p50[0]) / trip
        );
    }
    fast.close();
    slow.close();
    db.close();
    drop_database(&server, "todo_bench_mix").await;
    Ok(())
}

/// The median milliseconds of `run` directly (side 0) and through the proxy (side 1), the two
/// alternated `samples` times so that both see the server in the same state.
async fn alternated_p50(
    samples: usize,
    mut run: impl AsyncFnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<[f64; 2]> {
    let mut ms = [Vec::new(), Vec::new()];
    for _ in 0..samples {
        for (side, times) in ms.iter_mut().enumerate() {
            let t = Instant::now();
            run(side).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(ms.map(|mut ms| percentile(&mut ms, 0.5)))
}

/// CPU seconds of the server and of the client, and the operations run, over a side's runs.
#[derive(Clone, Copy, Default)]
struct Spent {
    server: f64,
    client: f64,
    ops: f64,
}

/// One side's row: ops/s, p50/p99 overall and per operation, and CPU microseconds per operation
/// on the server and in the client (`-` where /proc does not show the server).
fn print_row(clients: u64, side: &str, ops: f64, mut lat: Vec<Vec<f64>>, spent: Spent) {
    let mut all: Vec<f64> = lat.iter().flatten().copied().collect();
    let cell = |v: &mut Vec<f64>| format!("{:.2}/{:.2}", percentile(v, 0.5), percentile(v, 0.99));
    let mut line = format!("{:<8} {:<16} {:>8.0} {:>13}", clients, side, ops, cell(&mut all));
    for v in lat.iter_mut() {
        line.push_str(&format!(" {:>13}", cell(v)));
    }
    let measured = spent.server > 0.0 && spent.ops > 0.0;
    let us = |cpu: f64| if measured { format!("{:.0}", cpu * 1e6 / spent.ops) } else { "-".into() };
    line.push_str(&format!(" {:>11}", format!("{}/{}", us(spent.server), us(spent.client))));
    println!("{line}");
}

/// Operation `i` of [`OPS`] for a random user (or a random open task's user), through todo-db.
async fn one_op(db: &Db, data: &Data, i: usize) {
    let (user, (task_user, task), tag) = {
        let mut rng = rand::thread_rng();
        let user = UserId(data.users[rng.gen_range(0..data.users.len())]);
        (user, data.tasks[rng.gen_range(0..data.tasks.len())], TAGS[rng.gen_range(0..TAGS.len())])
    };
    let result = match i {
        0 => db
            .user(user)
            .tasks()
            .list(&TaskFilter { completed: Some(false), limit: Some(20), ..Default::default() })
            .await
            .map(|_| ()),
        1 => db.user(user).tasks().create(&NewTask::new("benchmark task").expect("valid")).await.map(|_| ()),
        2 => db.user(UserId(task_user)).tasks().complete(TaskId(task)).await.map(|_| ()),
        3 => {
            let tag = TagName::parse(tag).expect("valid");
            db.user(UserId(task_user)).tasks().tag(TaskId(task), &[tag]).await.map(|_| ())
        }
        _ => views::read::<TaskSummary>(&db.user(user), &ReportOptions::default()).await.map(|_| ()),
    };
    result.expect("operation succeeds");
}

/// The mix through todo-db: ops/s and, per operation, every latency in ms.
async fn run_mix(db: &Db, data: &Arc<Data>, clients: u64, seconds: u64) -> (f64, Vec<Vec<f64>>) {
    let total: u32 = OPS.iter().map(|(_, w)| w).sum();
    let latencies = Arc::new(Mutex::new(vec![Vec::new(); OPS.len()]));
    let done = Arc::new(AtomicU64::new(0));
    let (db2, data2, lat2) = (db.clone(), data.clone(), latencies.clone());
    let rate = closed_loop(clients, seconds, move || {
        let (db, data, lat, done) = (db2.clone(), data2.clone(), lat2.clone(), done.clone());
        async move {
            let mut pick = rand::thread_rng().gen_range(0..total);
            let i = OPS
                .iter()
                .position(|(_, w)| {
                    pick < *w || {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let t = Instant::now();
            one_op(&db, &data, i).await;
            lat.lock().expect("not poisoned")[i].push(t.elapsed().as_secs_f64() * 1000.0);
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    let lat = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    (rate, lat)
}

/// pgbench scripts per operation: (same statements, plain), in [`OPS`] order. They mirror the
/// statements of todo-db's store (tasks.rs), the scope's identity (scope.rs) and views.rs.
fn scripts(db: &Db, users: usize, tasks: usize) -> (Vec<String>, Vec<String>) {
    let by_user = format!("\\set n random(1, {users})\n");
    let by_task = format!("\\set m random(1, {tasks})\n\\set k random(1, {})\n", TAGS.len());
    let identity = |from: &str, id: &str| identity_sql(db, id, from);
    let user_identity = identity("bench_users where n = :n", "id");
    let task_identity = identity("bench_tasks where n = :m", "user_id");
    // No BEGIN / COMMIT: like todo-db, the statements before the one Sync run as one implicit
    // transaction.
    let pipelined =
        |vars: &str, ident: &str, stmts: &str| format!("{vars}\\startpipeline\n{ident}{stmts}\\endpipeline\n");
    let cols = columns("t");
    let list = format!(
        "select {cols} from tasks t where t.completed = false order by t.created_at desc, t.id desc limit 21;\n"
    );
    let create = &format!("{};\n", create_script());
    let complete = format!(
        "{};\n",
        bind(
            todo_db::store::tasks::sql::UPDATE,
            &[
                "(select task_id from bench_tasks where n = :m)",
                "null::text",
                "null::text",
                "null::text",
                "false",
                "null::timestamptz",
                "true",
                "null::text",
            ]
        )
    );
    let task_user = "(select user_id from bench_tasks where n = :m)";
    let task_id = "(select task_id from bench_tasks where n = :m)";
    let wanted = "unnest(array[(array['work','home','errands'])[:k]], array[gen_random_uuid()])";
    // The bare attach (plain) and todo-db's tag statement, which also returns the task (same).
    let attach = format!(
        "with wanted(name, id) as (select * from {wanted}), \
         created as (insert into tags (id, user_id, name) select w.id, {task_user}, w.name from wanted w \
                     on conflict (user_id, lower(name)) do nothing returning id), \
         chosen as (select id from created union \
                    select g.id from tags g join wanted w on lower(g.name) = lower(w.name) where g.user_id = {task_user}) \
         insert into task_tags (user_id, task_id, tag_id) select {task_user}, {task_id}, id \
         from chosen on conflict do nothing;\n"
    );
    let tag = format!(
        "with wanted(name, id) as (select w.name, w.id from {wanted} w(name, id) \
         where exists (select 1 from tasks where id = {task_id})), \
         created as (insert into tags (id, user_id, name) select id, {task_user}, name from wanted \
         on conflict (user_id, lower(name)) do nothing returning id, name), \
         chosen as (select id, name from created union all \
         select g.id, g.name from tags g join wanted w on lower(g.name) = lower(w.name) where g.user_id = {task_user}), \
         attached as (insert into task_tags (user_id, task_id, tag_id) select {task_user}, {task_id}, id from chosen \
         on conflict do nothing) \
         select {}, array(select g.name from task_tags tt \
         join tags g on g.user_id = tt.user_id and g.id = tt.tag_id where tt.user_id = t.user_id and tt.task_id = t.id \
         union all select name from chosen) as tags from tasks t where t.id = {task_id};\n",
        fields("t")
    );
    let summary_sql = views::statement::<TaskSummary>(&ReportOptions::default()).expect("valid options");
    // A view read's settings ride on the identity statement (db/scope.rs), as the library writes
    // them, with the default time zone and window.
    let settings = views::settings_columns(1).replace("$1", "'UTC'").replace("$2", "'7'");
    let report_identity = user_identity.replacen(" from bench_users", &format!(", {settings} from bench_users"), 1);
    let summary = format!("{};\n", summary_sql.replace("$1", "null::uuid").replace("$2", "100").replace("$3", "0"));
    let same = vec![
        pipelined(&by_user, &user_identity, &list),
        pipelined(&by_user, &user_identity, create),
        pipelined(&by_task, &task_identity, &complete),
        pipelined(&by_task, &task_identity, &tag),
        pipelined(&by_user, &report_identity, &summary),
    ];
    let plain = vec![
        format!(
            "{by_user}select {cols} from tasks t where t.user_id = (select id from bench_users where n = :n) \
             and t.completed = false order by t.created_at desc, t.id desc limit 21;\n"
        ),
        format!("{by_user}{create}"),
        format!(
            "{by_task}update tasks t set completed = true, completed_at = coalesce(t.completed_at, now()), status = 'done' \
             from bench_tasks b where b.n = :m and t.id = b.task_id and t.user_id = b.user_id;\n"
        ),
        format!("{by_task}{attach}"),
        format!(
            "{by_user}{};\n",
            summary_sql
                .replace("($1::uuid is null or user_id = $1)", "user_id = (select id from bench_users where n = :n)")
                .replace("$2", "100")
                .replace("$3", "0")
        ),
    ];
    (same, plain)
}
