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
//! And two peers, what a team would use instead of todo-db, with the same RLS identity per
//! transaction:
//! - sqlx (mix/sqlx_peer.rs): a `PgPool` and, per operation, a transaction that sets the identity
//!   and runs the same statement as todo-db, prepared and cached as sqlx does by default;
//! - SQLModel (peers/sqlmodel_mix.py): the seed's stack, SQLModel on SQLAlchemy's asyncio engine
//!   with asyncpg and the Python module's pool, one session per operation, in a Python process of
//!   its own (one FastAPI worker), its virtual environment made by scripts/install-peers.
//!
//! Scenario 2: the same operations, one at a time, directly and through a proxy that delays each
//! direction by 2 ms (the two alternated, 100 times each); the delay the proxy added to each one's
//! median, in round trips (the delay it added to `select 1`'s), and its median through the proxy
//! over `select 1`'s (an upper bound, which counts the operation's server work too); then the
//! peers' round trips counted the same way (sqlx also with its default ping on acquire).
//! Scenario 2b: the mix through the proxy at BENCH_LATENCY_CLIENTS, todo-db against the peers.
//!
//! `cargo bench --bench mix` (DATABASE_URL, or the embedded default). Knobs: BENCH_MIX_USERS (5000),
//! BENCH_MIX_TASKS (200 per user), BENCH_SECONDS (5 per run), BENCH_CONCURRENCY ("1,8,32"),
//! BENCH_MIX_ROUNDS (6: each side runs once per round, the order reversed every round; many short
//! rounds, because a side's rate moves by ±15% from round to round on a shared machine),
//! BENCH_DELAY_MS (2), BENCH_PGBOUNCER (1: also run the mix through a local PgBouncer in
//! transaction mode, next to pgbench's same statements through it and todo-db direct; skipped,
//! with a note, when pgbouncer is not installed; PGBOUNCER names it), BENCH_POOLED_CLIENTS (8),
//! BENCH_POOLED_ROUNDS (3); BENCH_PEERS ("sqlx,sqlmodel": the SQLModel side runs when named; sqlx
//! always runs), BENCH_SQLX_POOL (the sqlx pool's connections; default the clients, as todo-db's),
//! BENCH_LATENCY_CLIENTS (8), BENCH_LATENCY_ROUNDS (3);
//! BENCH_QUICK=1 for a smoke run; BENCH_SETTLE=0 (no VACUUM and CHECKPOINT before each run);
//! BENCH_KEEP=1 keeps the database; BENCH_SCRIPTS_DIR=DIR writes the references' pgbench scripts
//! there (same-OP.sql, plain-OP.sql), to run pgbench by hand.

#[path = "mix/sqlmodel_peer.rs"]
mod sqlmodel_peer;
#[path = "mix/sqlx_peer.rs"]
mod sqlx_peer;

use todo_db_testkit::bench as support;

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

    // The proxy of scenario 2, started here because the SQLModel side needs its address.
    let target = db.target().clone();
    let port = delay_proxy((target.host.clone(), target.port), delay)?;
    let via_proxy = |u: &str| -> anyhow::Result<String> {
        let mut u = url::Url::parse(u)?;
        u.set_port(Some(port)).map_err(|()| anyhow::anyhow!("no port in the URL"))?;
        Ok(u.to_string())
    };
    let (slow_url, slow_scoped_url) = (via_proxy(&url)?, via_proxy(&scoped_url)?);

    // The peers: sqlx on the login user scopes use, and the seed's SQLModel stack in a Python
    // process of its own (its virtual environment made by scripts/install-peers).
    // Its pool has as many connections as todo-db's (the clients) unless BENCH_SQLX_POOL says.
    let sqlx_pool =
        |clients: u64| std::env::var("BENCH_SQLX_POOL").ok().and_then(|v| v.parse().ok()).unwrap_or(clients as u32);
    let sqlx = Arc::new(sqlx_peer::Peer::connect(&scoped_url, sqlx_pool(max_clients), false).await?);
    let sqlmodel = if peers_wanted("sqlmodel") {
        Some(sqlmodel_peer::Peer::start(&scoped_url, &slow_scoped_url)?)
    } else {
        println!("(the SQLModel side is left out: BENCH_PEERS does not name it)");
        None
    };
    let mut sides: Vec<Side> = vec![Side::TodoDb, Side::PgbenchPlain, Side::PgbenchSame, Side::Sqlx];
    if sqlmodel.is_some() {
        sides.push(Side::SqlModel);
    }

    // Every side does the same work under the same isolation: each peer's list for a few users
    // is todo-db's, and holds only that user's tasks.
    same_answers(&db, &sqlx, sqlmodel.as_ref(), &data).await?;

    // Warm the cache for everyone.
    run_mix(&db, &data, max_clients, 1).await;
    run_sqlx_mix(&sqlx, &data, max_clients, 1).await;
    println!();
    println!("Scenario 1: workload mix (RLS and audit on), p50/p99 in ms; CPU per operation, server/client");
    println!(
        "{:<8} {:<16} {:>8} {:>13} {:>13} {:>13} {:>13} {:>13} {:>13} {:>11}",
        "clients", "side", "ops/s", "overall", "list", "create", "complete", "tag", "summary", "cpu us/op"
    );
    // Each round runs every side, in the reverse order of the round before, so that no side
    // always runs first (on a colder cache) or last; ops/s are the mean over rounds, latencies all
    // of the rounds' operations.
    let rounds = knob("BENCH_MIX_ROUNDS", 6, 1);
    let postmaster = postmaster_pid(&db).await;
    for &clients in &concurrency {
        let n = sides.len();
        let mut totals: Vec<(f64, Vec<Vec<f64>>)> = vec![Default::default(); n];
        let mut spent = vec![Spent::default(); n];
        // Per round, todo-db's rate over each other side's.
        let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); n];
        for round in 0..rounds {
            let mut got: Vec<(f64, Vec<Vec<f64>>)> = vec![Default::default(); n];
            let mut order: Vec<usize> = (0..n).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                settle(&db).await;
                let before = cpu(postmaster);
                let mut client_cpu = None;
                got[i] = match sides[i] {
                    Side::TodoDb => run_mix(&db, &data, clients, seconds).await,
                    Side::PgbenchPlain => pgbench_mix(&url, &plain, clients, seconds).map(|r| (r.tps, r.latencies))?,
                    Side::PgbenchSame => {
                        pgbench_mix(&scoped_url, &same, clients, seconds).map(|r| (r.tps, r.latencies))?
                    }
                    Side::Sqlx => run_sqlx_mix(&sqlx, &data, clients, seconds).await,
                    Side::SqlModel => {
                        let run = sqlmodel.as_ref().expect("started").run(clients, seconds)?;
                        client_cpu = Some(run.cpu);
                        (run.rate, run.latencies)
                    }
                };
                if let Some(used) = cpu_since(postmaster, before) {
                    let s = &mut spent[i];
                    s.server += used.server;
                    s.client += match sides[i] {
                        Side::TodoDb | Side::Sqlx => used.client,
                        Side::PgbenchPlain | Side::PgbenchSame => used.children,
                        Side::SqlModel => client_cpu.unwrap_or(0.0),
                    };
                    s.ops += got[i].0 * seconds as f64;
                }
            }
            for i in 1..n {
                per_round[i].push(got[0].0 / got[i].0);
            }
            for (total, (ops, lat)) in totals.iter_mut().zip(got) {
                total.0 += ops / rounds as f64;
                total.1.resize(lat.len().max(total.1.len()), Vec::new());
                total.1.iter_mut().zip(lat).for_each(|(all, l)| all.extend(l));
            }
        }
        let ours = totals[0].0;
        for (i, (ops, lat)) in totals.iter().enumerate() {
            print_row(clients, sides[i].name(), *ops, lat.clone(), spent[i]);
        }
        for i in 1..n {
            println!(
                "{:<8} {:<16} todo-db / {}: {:.2}x; per round {} (median, range: {})",
                clients,
                "ratio",
                sides[i].name(),
                ours / totals[i].0,
                per_round[i].iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
                ratio_spread(per_round[i].clone())
            );
        }
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
    let mut settings = Settings::default();
    settings.pool.size = 1;
    settings.pool.overflow = 0;
    let slow = Db::connect_url(&slow_url, &settings).await?;
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
    let mut trips: Vec<Vec<f64>> = Vec::new();
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
        trips.push(vec![(p50[1] - p50[0]) / trip]);
    }
    fast.close();
    slow.close();

    // The peers' round trips, counted the same way: sqlx as configured above, sqlx with its
    // default pool (which pings each connection before handing it out), and SQLModel.
    let pair = async |ping| -> anyhow::Result<[Arc<sqlx_peer::Peer>; 2]> {
        Ok([
            Arc::new(sqlx_peer::Peer::connect(&scoped_url, 1, ping).await?),
            Arc::new(sqlx_peer::Peer::connect(&slow_scoped_url, 1, ping).await?),
        ])
    };
    for ping in [false, true] {
        let peers = pair(ping).await?;
        for (i, row) in trips.iter_mut().enumerate() {
            let p50 = alternated_p50(samples, async |side| {
                one_sqlx_op(&peers[side], &data, i).await;
                Ok(())
            })
            .await?;
            row.push((p50[1] - p50[0]) / trip);
        }
        peers.iter().for_each(|p| p.close());
    }
    if let Some(peer) = &sqlmodel {
        for (i, row) in trips.iter_mut().enumerate() {
            let p50 = peer.trips(i, samples)?;
            row.push((p50[1] - p50[0]) / trip);
        }
    }
    println!();
    println!("Round trips per operation through the proxy, by side");
    println!(
        "{:<12} {:>10} {:>10} {:>22} {:>10}",
        "operation",
        "todo-db",
        "sqlx",
        "sqlx, ping on acquire",
        if sqlmodel.is_some() { "SQLModel" } else { "" }
    );
    for ((name, _), row) in OPS.iter().zip(&trips) {
        let cell = |i: usize| row.get(i).map_or(String::new(), |t| format!("{t:.2}"));
        println!("{:<12} {:>10} {:>10} {:>22} {:>10}", name, cell(0), cell(1), cell(2), cell(3));
    }

    // Scenario 2b: the mix at a few clients through the proxy: what the round trips cost a
    // service whose database is a network hop away.
    let clients = knob("BENCH_LATENCY_CLIENTS", 8, 4);
    let rounds = knob("BENCH_LATENCY_ROUNDS", 3, 1);
    let mut s = Settings::default();
    s.pool.size = clients as usize;
    s.pool.overflow = 0;
    if db.app_login().is_some() {
        s.app_url = Some(todo_db::config::Secret::new(slow_scoped_url.clone()));
    }
    let far = Db::connect_url(&slow_url, &s).await?;
    let far_sqlx = Arc::new(sqlx_peer::Peer::connect(&slow_scoped_url, sqlx_pool(clients), false).await?);
    let names: Vec<&str> =
        ["todo-db", "sqlx", "SQLModel"].into_iter().take(if sqlmodel.is_some() { 3 } else { 2 }).collect();
    let mut totals = vec![0.0f64; names.len()];
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    run_mix(&far, &data, clients, 1).await;
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..names.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut got = vec![0.0f64; names.len()];
        for i in order {
            settle(&db).await;
            got[i] = match i {
                0 => run_mix(&far, &data, clients, seconds).await.0,
                1 => run_sqlx_mix(&far_sqlx, &data, clients, seconds).await.0,
                _ => sqlmodel.as_ref().expect("started").run_via_proxy(clients, seconds)?.rate,
            };
        }
        for i in 1..names.len() {
            per_round[i].push(got[0] / got[i]);
        }
        totals.iter_mut().zip(&got).for_each(|(t, g)| *t += g / rounds as f64);
    }
    println!();
    println!("Scenario 2b: the mix through the proxy ({delay:?} each way), {clients} clients");
    println!("{:<12} {:>10}   ratio todo-db / side: mean, per-round median (range)", "side", "ops/s");
    for (i, name) in names.iter().enumerate() {
        let ratio = if i == 0 {
            String::new()
        } else {
            format!("{:.2}x, {}", totals[0] / totals[i], ratio_spread(per_round[i].clone()))
        };
        println!("{:<12} {:>10.0}   {ratio}", name, totals[i]);
    }
    far.close();
    far_sqlx.close();
    sqlx.close();
    if let Some(peer) = sqlmodel {
        peer.stop()?;
    }
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

/// What operation `i` of [`OPS`] acts on: a random user, a random open task (with its user) and a
/// random tag name.
fn draw(data: &Data) -> (uuid::Uuid, (uuid::Uuid, uuid::Uuid), &'static str) {
    let mut rng = rand::thread_rng();
    let user = data.users[rng.gen_range(0..data.users.len())];
    (user, data.tasks[rng.gen_range(0..data.tasks.len())], TAGS[rng.gen_range(0..TAGS.len())])
}

/// Operation `i` of [`OPS`] for a random user (or a random open task's user), through todo-db.
async fn one_op(db: &Db, data: &Data, i: usize) {
    let (user, (task_user, task), tag) = draw(data);
    let user = UserId(user);
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

/// Fails unless the peers' first page of open tasks is todo-db's for a few users (the first, the
/// last, and one between), and holds only the user's own tasks.
async fn same_answers(
    db: &Db,
    sqlx: &sqlx_peer::Peer,
    sqlmodel: Option<&sqlmodel_peer::Peer>,
    data: &Data,
) -> anyhow::Result<()> {
    let n = data.users.len();
    for user in [data.users[0], data.users[n / 2], data.users[n - 1]] {
        let filter = TaskFilter { completed: Some(false), limit: Some(20), ..Default::default() };
        let ours: Vec<(uuid::Uuid, uuid::Uuid)> =
            db.user(UserId(user)).tasks().list(&filter).await?.items.iter().map(|t| (t.id.0, t.user_id.0)).collect();
        anyhow::ensure!(
            !ours.is_empty() && ours.iter().all(|t| t.1 == user),
            "todo-db's list of user {user}: {ours:?}"
        );
        let theirs: Vec<_> = sqlx.list(user).await?.iter().map(|t| (t.id.0, t.user_id.0)).collect();
        anyhow::ensure!(theirs == ours, "sqlx's list of user {user} is not todo-db's: {theirs:?} against {ours:?}");
        if let Some(peer) = sqlmodel {
            let theirs = peer.list(user)?;
            anyhow::ensure!(
                theirs == ours,
                "SQLModel's list of user {user} is not todo-db's: {theirs:?} against {ours:?}"
            );
        }
    }
    Ok(())
}

/// Operation `i` of [`OPS`], as [`one_op`] draws it, through the sqlx peer.
async fn one_sqlx_op(peer: &sqlx_peer::Peer, data: &Data, i: usize) {
    let (user, (task_user, task), tag) = draw(data);
    let result = match i {
        0 => peer.list(user).await.map(|_| ()),
        1 => peer.create(user, "benchmark task").await.map(|_| ()),
        2 => peer.complete(task_user, task).await.map(|_| ()),
        3 => peer.tag(task_user, task, &[tag]).await.map(|_| ()),
        _ => peer.summary(user).await.map(|_| ()),
    };
    result.expect("sqlx operation succeeds");
}

/// The mix through todo-db: ops/s and, per operation, every latency in ms.
async fn run_mix(db: &Db, data: &Arc<Data>, clients: u64, seconds: u64) -> (f64, Vec<Vec<f64>>) {
    let (db, data) = (db.clone(), data.clone());
    weighted_loop(clients, seconds, move |i| {
        let (db, data) = (db.clone(), data.clone());
        async move { one_op(&db, &data, i).await }
    })
    .await
}

/// The mix through the sqlx peer.
async fn run_sqlx_mix(
    peer: &Arc<sqlx_peer::Peer>,
    data: &Arc<Data>,
    clients: u64,
    seconds: u64,
) -> (f64, Vec<Vec<f64>>) {
    let (peer, data) = (peer.clone(), data.clone());
    weighted_loop(clients, seconds, move |i| {
        let (peer, data) = (peer.clone(), data.clone());
        async move { one_sqlx_op(&peer, &data, i).await }
    })
    .await
}

/// A closed loop over the operations of [`OPS`], each drawn at its weight and run by `op`: ops/s
/// and, per operation, every latency in ms.
async fn weighted_loop<F, Fut>(clients: u64, seconds: u64, op: F) -> (f64, Vec<Vec<f64>>)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let total: u32 = OPS.iter().map(|(_, w)| w).sum();
    let latencies = Arc::new(Mutex::new(vec![Vec::new(); OPS.len()]));
    let lat2 = latencies.clone();
    let rate = closed_loop(clients, seconds, move || {
        let (op, lat) = (op.clone(), lat2.clone());
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
            op(i).await;
            lat.lock().expect("not poisoned")[i].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    })
    .await;
    let lat = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    (rate, lat)
}

/// The sides of scenario 1.
#[derive(Clone, Copy)]
enum Side {
    TodoDb,
    PgbenchPlain,
    PgbenchSame,
    Sqlx,
    SqlModel,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::TodoDb => "todo-db",
            Side::PgbenchPlain => "pgbench plain",
            Side::PgbenchSame => "pgbench same",
            Side::Sqlx => "sqlx",
            Side::SqlModel => "SQLModel",
        }
    }
}

/// BENCH_PEERS=sqlmodel (the default) runs the SQLModel side; BENCH_PEERS=sqlx leaves it out
/// (sqlx always runs: it costs no set-up).
fn peers_wanted(name: &str) -> bool {
    std::env::var("BENCH_PEERS").map_or(true, |v| v.split(',').any(|p| p.trim() == name))
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
        "{};\n",
        bind(
            todo_db::store::tasks::sql::TAG,
            &[task_user, task_id, "array[(array['work','home','errands'])[:k]]", "array[gen_random_uuid()]"]
        )
    );
    let summary_sql = views::statement::<TaskSummary>(&ReportOptions::default()).expect("valid options");
    // A view read's settings ride on the identity statement (db/scope.rs), as the library writes
    // them, with the default time zone and window.
    let settings = views::settings_columns(1).replace("$1", "'UTC'").replace("$2", "'30'");
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
