//! Core-operation benchmark: todo-db's user-scoped operations next to pgbench running the same
//! SQL against the same database in the same run, printed as ratios.
//!
//! `cargo bench --bench core` (DATABASE_URL, or the embedded default). Knobs: BENCH_USERS (2000),
//! BENCH_TASKS (100 per user), BENCH_SECONDS (5 per scenario), BENCH_CLIENTS (8), BENCH_RLS_ROUNDS
//! (4); BENCH_ONLY (the parts to run, of `ops,rls,audit,views`; all when unset); BENCH_QUICK=1 for
//! a smoke run; BENCH_KEEP=1 keeps the database; BENCH_APP_LOGIN=0 runs user scopes on the admin
//! login (a role switch per operation) instead of the embedded default's app login;
//! BENCH_AUDIT_SQL=FILE runs that SQL file as the admin after seeding (to measure a variant of the
//! audit capture or of the log's indexes against the shipped one).
//!
//! The audit comparison runs three sides in each round: the shipped capture, the floor (a trigger
//! that only writes a bare row into the log), and no capture; each of the first two is printed
//! against the third.

use todo_db_testkit::bench as support;

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use todo_db::db::Stmt;
use todo_db::model::{NewTask, TaskFilter, TaskId, TaskPatch, TaskTitle, UserId};
use todo_db::views::{self, *};
use todo_db::Db;

use support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let users = knob("BENCH_USERS", 2000, 200);
    let per_user = knob("BENCH_TASKS", 100, 20) as u32;
    let seconds = knob("BENCH_SECONDS", 5, 1);
    let clients = knob("BENCH_CLIENTS", 8, 4);
    let server = server_url().await?;
    // A fresh, migrated database, filled by `todo-db seed`'s generator.
    let (url, db) = fresh_database(&server, "todo_bench", clients as usize).await?;
    let started = Instant::now();
    let ids = seed_numbered(&db, users, per_user).await?;
    if let Ok(file) = std::env::var("BENCH_AUDIT_SQL") {
        let sql = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("BENCH_AUDIT_SQL {file}: {e}"))?;
        db.admin().batch(&sql).await?;
        println!("ran {file} after seeding");
    }
    println!(
        "seeded {users} users x {per_user} tasks in {:.1}s; {clients} clients, {seconds}s per scenario",
        started.elapsed().as_secs_f64()
    );

    if part("ops") {
        operations(&db, &url, &ids, users, clients, seconds).await?;
    }
    if part("rls") {
        rls_overhead(&db, &ids, clients, seconds).await;
    }
    if part("audit") {
        audit_overhead(&db, &ids, clients, seconds).await?;
    }
    if part("views") {
        view_latencies(&db, &ids).await?;
    }
    drop_database(&server, "todo_bench").await;
    Ok(())
}

/// todo-db's list and create next to pgbench sending the same statements, and the bare list.
async fn operations(
    db: &Db,
    url: &str,
    ids: &[uuid::Uuid],
    users: u64,
    clients: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    // Exactly what todo-db sends: the identity and the statement before one Sync (no BEGIN/COMMIT).
    // On the app login when there is one (the embedded default's), as todo-db's user scopes are.
    let identity = identity_sql(db, "id", "bench_users where n = :n");
    let scoped_url = app_url("todo_bench").await?.unwrap_or_else(|| url.to_string());
    let cols = columns("t");
    let list_sql =
        format!("select {cols} from tasks t where t.completed = false order by t.created_at desc, t.id desc limit 21;");
    let create_sql = format!("{};", create_script());
    let pipelined =
        |sql: &str| format!("\\set n random(1, {users})\n\\startpipeline\n{identity}{sql}\n\\endpipeline\n");
    let bare_list = format!(
        "\\set n random(1, {users})\nselect {cols} from tasks t where t.user_id = (select id from bench_users where n = :n) \
         and t.completed = false order by t.created_at desc, t.id desc limit 21;\n"
    );
    // Reads first, both sides, on the seeded data; then the writes (which add open tasks that
    // would make later listings cheaper). A short warm-up loads the cache for everyone.
    let _warm = run_todo_db(db, ids, clients, 1, list_open).await;
    let list = run_todo_db(db, ids, clients, seconds, list_open).await;
    let pg_list = pgbench(&scoped_url, &pipelined(&list_sql), clients, seconds)?;
    let pg_bare = pgbench(url, &bare_list, clients, seconds)?;
    let create = run_todo_db(db, ids, clients, seconds, |scope| async move {
        scope.tasks().create(&NewTask::new("benchmark task").expect("valid")).await.map(|_| ())
    })
    .await;

    let pg_create = pgbench(&scoped_url, &pipelined(&create_sql), clients, seconds)?;

    println!();
    println!("{:<44} {:>10} {:>10} {:>7}", "operation", "todo-db/s", "pgbench/s", "ratio");
    println!("{:<44} {:>10.0} {:>10.0} {:>7.2}", "list 20 open tasks (pipelined, RLS)", list, pg_list, list / pg_list);
    println!(
        "{:<44} {:>10.0} {:>10.0} {:>7.2}",
        "create a task (pipelined, RLS)",
        create,
        pg_create,
        create / pg_create
    );
    println!(
        "{:<44} {:>10} {:>10.0} {:>7.2}",
        "list vs pgbench bare query (no tx, no RLS)",
        "",
        pg_bare,
        list / pg_bare
    );
    Ok(())
}

/// Rounds and their length for the alternated comparisons: short rounds, so that drift on a
/// shared machine hits both sides alike.
fn rounds(seconds: u64) -> (u64, u64) {
    (knob("BENCH_RLS_ROUNDS", 4, 1), seconds.div_ceil(2).max(1))
}

/// RLS overhead: the same operations with and without identity and RLS, alternated.
async fn rls_overhead(db: &Db, ids: &[uuid::Uuid], clients: u64, seconds: u64) {
    let (rounds, slice) = rounds(seconds);
    // Two references: the same operation as the admin login with the scope's timeouts set the
    // same way (what a user operation without RLS would still send), and the bare statement.
    let mut compared: [[Alternated; 2]; 2] = Default::default();
    for (op, pair) in compared.iter_mut().enumerate() {
        let create = op == 1;
        for _ in 0..rounds {
            let rls = run_raw(db, ids, clients, slice, create, Side::Rls).await;
            pair[0].push(rls, run_raw(db, ids, clients, slice, create, Side::Timeouts).await);
            pair[1].push(rls, run_raw(db, ids, clients, slice, create, Side::Bare).await);
        }
    }
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>7} {:>18}",
        "RLS overhead (same pipeline, alternated)", "RLS/s", "no RLS/s", "ratio", "rounds: median"
    );
    for (op, [timeouts, bare]) in ["list 20 open tasks", "create a task"].iter().zip(&compared) {
        timeouts.print(&format!("{op}, vs timeouts + statement"));
        bare.print(&format!("{op}, vs bare statement"));
    }
}

/// The floor of any in-transaction capture, run beside the shipped one: a trigger that does only
/// what every capture must, writing a row into the log (a bare one: table, operation, actor),
/// as the log's owner like the capture (SECURITY DEFINER, search path pinned).
const AUDIT_FLOOR: &str = "begin; set local role todo_owner; \
    create function audit.bench_floor() returns trigger language plpgsql security definer \
        set search_path = pg_catalog as $$ \
    begin \
        insert into audit.log (table_name, op, actor) values (tg_table_name, tg_op, session_user::text); \
        return null; \
    end $$; \
    create trigger tasks_audit_floor after insert or update or delete on tasks \
        for each row execute function audit.bench_floor(); \
    commit";

/// Audit overhead: single-row insert and update with the audit capture on, with only the floor
/// (a trigger writing a bare log row), and with no capture, at 1 and `clients` connections,
/// alternated in rounds.
async fn audit_overhead(db: &Db, ids: &[uuid::Uuid], clients: u64, seconds: u64) -> anyhow::Result<()> {
    let (rounds, slice) = rounds(seconds);
    let pairs: Vec<(uuid::Uuid, uuid::Uuid)> = db
        .admin()
        .query("select user_id, id from tasks tablesample system (10) limit 20000", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let pairs = Arc::new(pairs);
    db.admin().batch(AUDIT_FLOOR).await?;
    // Side 0: the shipped capture; 1: the floor; 2: no capture.
    let triggers = [
        "enable trigger tasks_audit, disable trigger tasks_audit_floor",
        "disable trigger tasks_audit, enable trigger tasks_audit_floor",
        "disable trigger tasks_audit, disable trigger tasks_audit_floor",
    ];
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>7} {:>18} {:>12} {:>6}",
        "audit overhead (alternated)", "audit/s", "no audit/s", "ratio", "rounds: median", "cpu us/op", "ratio"
    );
    let postmaster = postmaster_pid(db).await;
    for conns in [1, clients] {
        // Per operation: [the capture against none, the floor against none].
        let mut insert: [Alternated; 2] = Default::default();
        let mut update: [Alternated; 2] = Default::default();
        for r in 0..rounds {
            let mut round = [(0.0, 0.0); 3];
            // Every other round the order is reversed. No checkpoint before each side: the sides
            // differ in how much WAL they write (see `settle`).
            let order = if r % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for side in order {
                db.admin().batch(&format!("alter table tasks {}", triggers[side])).await?;
                let before = cpu(postmaster);
                let ins = run_todo_db(db, ids, conns, slice, |scope| async move {
                    scope.tasks().create(&NewTask::new("audited task").expect("valid")).await.map(|_| ())
                })
                .await;
                let ins_cpu = cpu_since(postmaster, before);
                let before = cpu(postmaster);
                let upd = run_updates(db, pairs.clone(), conns, slice).await;
                let upd_cpu = cpu_since(postmaster, before);
                // No capture is the reference of both comparisons.
                let slots: &[(usize, usize)] = match side {
                    0 => &[(0, 0)],
                    1 => &[(1, 0)],
                    _ => &[(0, 1), (1, 1)],
                };
                for &(pair, i) in slots {
                    insert[pair].spent(i, ins_cpu, ins * slice as f64);
                    update[pair].spent(i, upd_cpu, upd * slice as f64);
                }
                round[side] = (ins, upd);
            }
            for pair in 0..2 {
                insert[pair].push(round[pair].0, round[2].0);
                update[pair].push(round[pair].1, round[2].1);
            }
        }
        insert[0].print(&format!("insert a task, {conns} conn"));
        insert[1].print("  floor: a trigger writing a bare log row");
        update[0].print(&format!("update a task, {conns} conn"));
        update[1].print("  floor: a trigger writing a bare log row");
    }
    db.admin()
        .batch(
            "begin; set local role todo_owner; alter table tasks enable trigger tasks_audit; \
             drop trigger tasks_audit_floor on tasks; drop function audit.bench_floor(); commit",
        )
        .await?;
    Ok(())
}

/// Reporting views: one user's read through a user scope (RLS), sequential, median latency; next
/// to the same-sized read of a user's first page of open tasks as the reference.
async fn view_latencies(db: &Db, ids: &[uuid::Uuid]) -> anyhow::Result<()> {
    println!();
    println!("{:<44} {:>10} {:>10}", "view read for one user (sequential)", "p50 ms", "p95 ms");
    let reference = latencies(ids, list_open, db).await;
    println!("{:<44} {:>10.2} {:>10.2}", "(reference: list 20 open tasks)", reference.0, reference.1);
    macro_rules! view_latency {
        ($t:ty) => {{
            let (p50, p95) = latencies(
                &ids,
                |scope| async move {
                    views::read::<$t>(&scope, &ReportOptions { limit: Some(100), ..Default::default() })
                        .await
                        .map(|_| ())
                },
                &db,
            )
            .await;
            println!("{:<44} {:>10.2} {:>10.2}", <$t as View>::NAME, p50, p95);
            let started = Instant::now();
            let all = views::read_all::<$t>(&db, &ReportOptions { limit: Some(10_000), ..Default::default() }).await?;
            println!(
                "{:<44} {:>10.2} {:>10}",
                format!("  all users (admin, {} rows)", all.len()),
                started.elapsed().as_secs_f64() * 1000.0,
                ""
            );
        }};
    }
    view_latency!(TaskSummary);
    view_latency!(PriorityCounts);
    view_latency!(PriorityTask);
    view_latency!(OverdueTask);
    view_latency!(CompletedTask);
    view_latency!(Productivity);
    view_latency!(TaskWithTags);

    Ok(())
}

/// The store's list and insert statements sent through the same pipeline and read the same way,
/// once in a user scope (the identity statement first, row-level security on: the list has no
/// `user_id` filter of its own) and once as the owner login with an explicit `user_id` filter (no
/// identity, no RLS). Both are one round trip; the difference is the cost of RLS.
/// What [`run_raw`] sends besides the operation's statement.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// A user scope: its identity statement, RLS on, no `user_id` filter in the list.
    Rls,
    /// The admin login: the scope's timeouts (`set_config`, transaction-local), explicit filter.
    Timeouts,
    /// The admin login: the statement alone, explicit filter.
    Bare,
}

async fn run_raw(db: &Db, ids: &[uuid::Uuid], clients: u64, seconds: u64, create: bool, side: Side) -> f64 {
    let timeouts = format!(
        "select set_config('statement_timeout', '{}ms', true), set_config('lock_timeout', '{}ms', true)",
        db.pool_settings().statement_timeout.as_millis(),
        db.pool_settings().lock_timeout.as_millis()
    );
    let list = format!(
        "select {} from tasks t where t.user_id = $1 and t.completed = $2 \
         order by t.created_at desc, t.id desc limit $3",
        columns("t")
    );
    const CREATE: &str = todo_db::store::tasks::sql::CREATE;
    let list_rls = list.replace("t.user_id = $1 and t.completed = $2", "t.completed = $1").replace("$3", "$2");
    let (db, ids, timeouts) = (db.clone(), Arc::new(ids.to_vec()), Arc::new(timeouts));
    let (list, list_rls) = (Arc::new(list), Arc::new(list_rls));
    closed_loop(clients, seconds, move || {
        let (db, ids, timeouts) = (db.clone(), ids.clone(), timeouts.clone());
        let (list, list_rls) = (list.clone(), list_rls.clone());
        async move {
            let user = ids[rand::thread_rng().gen_range(0..ids.len())];
            let (id, none) = (uuid::Uuid::now_v7(), None::<time::OffsetDateTime>);
            let (limit, open) = (21i64, false);
            let create_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                [&id, &user, &"benchmark task", &"", &"medium", &none, &"todo"];
            let list_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&user, &open, &limit];
            let statement = match (create, side) {
                (true, _) => Stmt::new(CREATE, &create_params),
                (false, Side::Rls) => Stmt::new(&list_rls, &list_params[1..]),
                (false, _) => Stmt::new(&list, &list_params),
            };
            let result = match side {
                Side::Rls => db.user(UserId(user)).pipeline(&[statement]).await,
                Side::Timeouts => db.admin().pipeline(&[Stmt::new(&timeouts, &[]), statement]).await,
                Side::Bare => db.admin().pipeline(&[statement]).await,
            };
            result.expect("operation succeeds");
        }
    })
    .await
}

/// Throughput of one side with a feature on and off, measured in alternated rounds. Printed as
/// mean rates, the ratio of the totals, and the median and range of the per-round ratios (drift
/// on a shared machine moves both sides of a round alike, so per-round ratios vary less).
#[derive(Default)]
struct Alternated {
    on: Vec<f64>,
    off: Vec<f64>,
    /// CPU seconds (server and client) and operations of each side, when /proc shows the server.
    cpu: [(f64, f64); 2],
}

impl Alternated {
    fn push(&mut self, on: f64, off: f64) {
        self.on.push(on);
        self.off.push(off);
    }

    /// Adds one side's CPU (`side` 0 = on, 1 = off) over `ops` operations.
    fn spent(&mut self, side: usize, used: Option<Cpu>, ops: f64) {
        if let Some(used) = used {
            self.cpu[side].0 += used.server + used.client;
            self.cpu[side].1 += ops;
        }
    }

    fn print(&self, label: &str) {
        let (on, off): (f64, f64) = (self.on.iter().sum(), self.off.iter().sum());
        let n = self.on.len() as f64;
        let ratios = self.on.iter().zip(&self.off).map(|(a, b)| a / b).collect();
        let mut line =
            format!("{:<44} {:>10.0} {:>10.0} {:>7.2} {:>18}", label, on / n, off / n, on / off, ratio_spread(ratios));
        // CPU per operation, server and client together: at saturation the ratio of the rates is
        // about the inverse ratio of these, and these say how much work the difference was.
        let [(on_s, on_ops), (off_s, off_ops)] = self.cpu;
        if on_ops > 0.0 && off_ops > 0.0 {
            let (on_us, off_us) = (on_s * 1e6 / on_ops, off_s * 1e6 / off_ops);
            line.push_str(&format!(" {:>12} {:>6.2}", format!("{on_us:.0}/{off_us:.0}"), off_us / on_us));
        }
        println!("{line}");
    }
}

/// Closed loop of single-row updates (a new title) of random existing tasks, each by its owner.
async fn run_updates(db: &Db, pairs: Arc<Vec<(uuid::Uuid, uuid::Uuid)>>, clients: u64, seconds: u64) -> f64 {
    let db = db.clone();
    closed_loop(clients, seconds, move || {
        let (db, pairs) = (db.clone(), pairs.clone());
        async move {
            let (user, task) = pairs[rand::thread_rng().gen_range(0..pairs.len())];
            let title = format!("renamed {}", rand::thread_rng().gen::<u32>());
            let patch = TaskPatch { title: Some(TaskTitle::parse(&title).expect("valid")), ..Default::default() };
            db.user(UserId(user)).tasks().update(TaskId(task), &patch).await.expect("update succeeds");
        }
    })
    .await
}

/// `op` for a random user's scope, in a closed loop.
async fn run_todo_db<F, Fut>(db: &Db, ids: &[uuid::Uuid], clients: u64, seconds: u64, op: F) -> f64
where
    F: Fn(todo_db::UserScope) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = todo_db::Result<()>> + Send,
{
    let (db, ids) = (db.clone(), Arc::new(ids.to_vec()));
    closed_loop(clients, seconds, move || {
        let (db, ids) = (db.clone(), ids.clone());
        async move {
            let user = ids[rand::thread_rng().gen_range(0..ids.len())];
            op(db.user(UserId(user))).await.expect("operation succeeds");
        }
    })
    .await
}

/// p50 and p95 latency in ms of 200 sequential runs of `op` for random users.
async fn latencies<F, Fut>(ids: &[uuid::Uuid], op: F, db: &Db) -> (f64, f64)
where
    F: Fn(todo_db::UserScope) -> Fut,
    Fut: std::future::Future<Output = todo_db::Result<()>>,
{
    let mut ms = Vec::with_capacity(200);
    for _ in 0..200 {
        let user = ids[rand::thread_rng().gen_range(0..ids.len())];
        let started = Instant::now();
        op(db.user(UserId(user))).await.expect("read succeeds");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[ms.len() / 2], ms[ms.len() * 95 / 100])
}

/// The benchmark's read: a user's first page of 20 open tasks.
async fn list_open(scope: todo_db::UserScope) -> todo_db::Result<()> {
    scope.tasks().list(&TaskFilter { completed: Some(false), limit: Some(20), ..Default::default() }).await.map(|_| ())
}
