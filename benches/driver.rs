//! The list operation (a user's first page of 20 open tasks, RLS on) through todo-db, next to the
//! driver todo-db is built on used bare, and to pgbench: what todo-db's own layers cost, and what
//! reading the rows into owned values costs any client. Closed loop, alternated rounds:
//!
//! - todo-db: `UserScope::tasks().list`;
//! - driver, pooled: tokio-postgres (todo-db's copy) on a connection from todo-db's pool, the
//!   scope's two statements (identity, list) prepared and cached, pipelined with one Sync, every
//!   row read into owned values (the fields of a `Task`);
//! - driver, decoded: the same on one connection per client, held for the whole run;
//! - driver, counted: the same, the rows only counted (what pgbench does with them);
//! - pgbench same: the same two statements in `\startpipeline` / `\endpipeline`;
//! - pgbench plain: the bare list (as the owner login, filtering by `user_id`), the mix's plain
//!   reference for this operation.
//!
//! `cargo bench --bench driver` (DATABASE_URL, or the embedded default). Knobs: BENCH_USERS (2000),
//! BENCH_TASKS (100 per user), BENCH_CLIENTS (8), BENCH_SECONDS (5 per run), BENCH_ROUNDS (6, the
//! order reversed every round); BENCH_QUICK=1 for a smoke run.

use todo_db_testkit::bench as support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use time::OffsetDateTime;
use todo_db::model::{TaskFilter, UserId};
use todo_db::{Db, Settings};
use tokio_postgres::{PipelineStatement, Row, Statement};

use support::*;

const SIDES: [&str; 6] =
    ["todo-db", "driver, pooled", "driver, decoded", "driver, counted", "pgbench same", "pgbench plain"];
const PLAIN: usize = 5;

/// The statements a user scope sends for the list (db/scope.rs, store/tasks.rs).
struct Statements {
    identity: String,
    list: String,
}

/// What the driver sides do with the rows.
#[derive(Clone, Copy, PartialEq)]
enum Rows {
    Decoded,
    Counted,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_USERS", 2000, 100);
    let per_user = knob("BENCH_TASKS", 100, 20) as u32;
    let clients = knob("BENCH_CLIENTS", 8, 2);
    let seconds = knob("BENCH_SECONDS", 5, 1);
    let rounds = knob("BENCH_ROUNDS", 6, 1);
    let server = server_url().await?;
    let (url, db) = fresh_database(&server, "todo_bench_driver", clients as usize).await?;
    let ids = Arc::new(seed_numbered(&db, users, per_user).await?);
    // The driver sides log in as user scopes do: the app login where there is one, else the admin
    // login switching role in the identity statement.
    let app = app_url("todo_bench_driver").await?;
    let scoped_url = app.clone().unwrap_or_else(|| url.clone());
    let mut settings = Settings::default();
    settings.pool.size = clients as usize;
    settings.pool.overflow = 0;
    let scoped = Db::connect_url(&scoped_url, &settings).await?;
    let statements = Arc::new(Statements {
        identity: identity_select(&db, "$1::uuid"),
        list: format!(
            "select {} from tasks t where true and t.completed = $1 order by t.created_at desc, t.id desc limit $2",
            columns("t")
        ),
    });
    let n = ids.len();
    let list = format!(
        "select {} from tasks t where true and t.completed = false order by t.created_at desc, t.id desc limit 21;\n",
        columns("t")
    );
    let same = format!(
        "\\set n random(1, {n})\n\\startpipeline\n{}{list}\\endpipeline\n",
        identity_sql(&db, "id", "bench_users where n = :n")
    );
    let plain = format!(
        "\\set n random(1, {n})\nselect {} from tasks t where t.user_id = (select id from bench_users where n = :n) \
         and t.completed = false order by t.created_at desc, t.id desc limit 21;\n",
        columns("t")
    );
    println!("seeded {users} users x {per_user} tasks; {clients} clients, {rounds} rounds of {seconds}s");

    let postmaster = postmaster_pid(&db).await;
    let mut rate = [0.0; SIDES.len()];
    let mut spent = [(0.0, 0.0, 0.0); SIDES.len()];
    let mut per_round: Vec<[f64; SIDES.len()]> = Vec::new();
    for round in 0..rounds {
        let mut got = [0.0; SIDES.len()];
        let mut order: Vec<usize> = (0..SIDES.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for side in order {
            let before = cpu(postmaster);
            got[side] = match side {
                0 => list_through_todo_db(&db, &ids, clients, seconds).await,
                1 => list_pooled(&scoped, &ids, &statements, clients, seconds).await,
                2 => list_dedicated(&scoped, &ids, &statements, clients, seconds, Rows::Decoded).await?,
                3 => list_dedicated(&scoped, &ids, &statements, clients, seconds, Rows::Counted).await?,
                4 => pgbench(&scoped_url, &same, clients, seconds)?,
                _ => pgbench(&url, &plain, clients, seconds)?,
            };
            if let Some(used) = cpu_since(postmaster, before) {
                let client = if side >= 4 { used.children } else { used.client };
                let s = &mut spent[side];
                (s.0, s.1, s.2) = (s.0 + used.server, s.1 + client, s.2 + got[side] * seconds as f64);
            }
        }
        for (total, r) in rate.iter_mut().zip(got) {
            *total += r / rounds as f64;
        }
        per_round.push(got);
    }

    println!();
    println!("list 20 open tasks, {clients} clients (RLS on; CPU per operation, server/client)");
    println!("{:<18} {:>9} {:>9} {:>22} {:>11}", "side", "ops/s", "vs plain", "rounds: median", "cpu us/op");
    for (side, name) in SIDES.iter().enumerate() {
        let ratios = per_round.iter().map(|r| r[side] / r[PLAIN]).collect();
        let (server, client, ops) = spent[side];
        let us = |cpu: f64| if ops > 0.0 && server > 0.0 { format!("{:.0}", cpu * 1e6 / ops) } else { "-".into() };
        println!(
            "{:<18} {:>9.0} {:>9.2} {:>22} {:>11}",
            name,
            rate[side],
            rate[side] / rate[PLAIN],
            ratio_spread(ratios),
            format!("{}/{}", us(server), us(client))
        );
    }
    scoped.close();
    db.close();
    drop_database(&server, "todo_bench_driver").await;
    Ok(())
}

async fn list_through_todo_db(db: &Db, ids: &Arc<Vec<uuid::Uuid>>, clients: u64, seconds: u64) -> f64 {
    let (db, ids) = (db.clone(), ids.clone());
    closed_loop(clients, seconds, move || {
        let (db, ids) = (db.clone(), ids.clone());
        async move {
            let filter = TaskFilter { completed: Some(false), limit: Some(20), ..Default::default() };
            db.user(UserId(random(&ids))).tasks().list(&filter).await.expect("list succeeds");
        }
    })
    .await
}

/// The driver on a connection from todo-db's pool, statements from its cache, for every operation.
async fn list_pooled(db: &Db, ids: &Arc<Vec<uuid::Uuid>>, sql: &Arc<Statements>, clients: u64, seconds: u64) -> f64 {
    let (db, ids, sql) = (db.clone(), ids.clone(), sql.clone());
    closed_loop(clients, seconds, move || {
        let (db, ids, sql) = (db.clone(), ids.clone(), sql.clone());
        async move {
            let conn = db.admin().connection().await.expect("a connection");
            let identity = conn.prepare_cached(&sql.identity).await.expect("prepared");
            let list = conn.prepare_cached(&sql.list).await.expect("prepared");
            let rows = list_once(&conn, &identity, &list, random(&ids)).await;
            std::hint::black_box(decode(&rows));
        }
    })
    .await
}

/// The driver on one connection per client, held for the run, its statements prepared once.
async fn list_dedicated(
    db: &Db,
    ids: &Arc<Vec<uuid::Uuid>>,
    sql: &Arc<Statements>,
    clients: u64,
    seconds: u64,
    rows: Rows,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients {
        let conn = db.admin().connection().await?;
        let identity = conn.prepare(&sql.identity).await?;
        let list = conn.prepare(&sql.list).await?;
        let (ids, done) = (ids.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let got = list_once(&conn, &identity, &list, random(&ids)).await;
                match rows {
                    Rows::Decoded => {
                        std::hint::black_box(decode(&got));
                    }
                    Rows::Counted => {
                        std::hint::black_box(got.len());
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / seconds as f64)
}

/// The identity and the list, pipelined with one Sync: the list's rows.
async fn list_once(
    conn: &tokio_postgres::Client,
    identity: &Statement,
    list: &Statement,
    user: uuid::Uuid,
) -> Vec<Row> {
    let mut rows = conn
        .pipeline(&[
            (PipelineStatement::Prepared(identity), &[&user]),
            (PipelineStatement::Prepared(list), &[&false, &21i64]),
        ])
        .await
        .expect("list succeeds");
    rows.pop().expect("the list's rows")
}

/// A task's fields, as owned values (id, user, title, description, priority, status, completed,
/// completed at, due, created, updated, tags), in the library's column order.
type Fields = (
    uuid::Uuid,
    uuid::Uuid,
    String,
    String,
    String,
    String,
    bool,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    OffsetDateTime,
    OffsetDateTime,
    Vec<String>,
);

fn decode(rows: &[Row]) -> Vec<Fields> {
    rows.iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
                r.get(9),
                r.get(10),
                r.get(11),
            )
        })
        .collect()
}

fn random(ids: &[uuid::Uuid]) -> uuid::Uuid {
    ids[rand::thread_rng().gen_range(0..ids.len())]
}
