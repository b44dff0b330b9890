//! The soak: virtual users run the workload mix through the library, each on its own user, with
//! random cancellations (dropped futures) and deadlines, while a scheduler injects faults of every
//! class todo-db claims to survive. Every call's outcome is logged on the client side (ok with its
//! value, a definite error, or "outcome unknown"); an unknown outcome is retried idempotently until
//! it resolves. Afterwards a checker compares the database with the log, and the run exits 1 on any
//! violation: an acknowledged write missing, a write that failed definitely (or was never made)
//! visible, a duplicate, a row of another user in any read, a read that missed the caller's own
//! acknowledged write, an audit history that does not replay to the row, an audit seal that does
//! not verify, or `verify` / `security check` failing at the end.
//!
//! Faults (on a private embedded cluster, which the run creates and removes): backends terminated;
//! every server process killed with SIGKILL and the server restarted (crash recovery); a proxy in
//! front of the server that cuts every connection, stalls them (half-open), loses the answers, or
//! delays each direction; a table lock held past the lock timeout (a third of the users run with a
//! short lock timeout, a third with a short statement timeout, so both kinds of timeout fire); a
//! session left idle in a transaction on row locks until `idle_in_transaction_session_timeout`
//! ends it; the PgBouncer (transaction mode) the last third of the users go through, restarted.
//! The audit log is sealed once per cycle of faults. PgBouncer is `PGBOUNCER` or the one
//! `scripts/install-servers` builds; without one the run fails saying so.
//!
//! `cargo bench --bench soak`. Knobs: SOAK_SECONDS (600; quick 40), SOAK_USERS (16; quick 6),
//! SOAK_FAULT_EVERY_MS (mean gap between faults: 2500; quick 1500), SOAK_SEED (random);
//! BENCH_QUICK=1 for the CI mode. The server version is the embedded cluster's (`TODO_DB_PG_BIN`).

use todo_db_testkit::bench::{knob, quick_mode};
use todo_db_testkit::harness::{self, Fault, FaultProxy};
use todo_db_testkit::pooler::LocalPooler;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use todo_db::model::{NewTask, NewUser, TagName, Task, TaskFilter, TaskId, TaskPatch, UserId};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::{Db, Error, Secret};

const TAGS: [&str; 4] = ["work", "home", "errands", "later"];
/// How long an unknown outcome is retried before it is counted unresolved.
const RESOLVE_FOR: Duration = Duration::from_secs(90);

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Live,
    Trash,
    Absent,
}

/// The values a field may hold given the log: one when every write to it was acknowledged or
/// resolved, more while an outcome stayed unknown.
#[derive(Debug, Clone)]
struct Poss<T: Ord>(BTreeSet<T>);

impl<T: Ord + Clone> Poss<T> {
    fn known(v: T) -> Self {
        Poss(BTreeSet::from([v]))
    }
    fn set(&mut self, v: T) {
        *self = Poss::known(v);
    }
    fn maybe(&mut self, v: T) {
        self.0.insert(v);
    }
    fn is(&self, v: &T) -> bool {
        self.0.len() == 1 && self.0.contains(v)
    }
    fn allows(&self, v: &T) -> bool {
        self.0.contains(v)
    }
    fn single(&self) -> Option<&T> {
        if self.0.len() == 1 {
            self.0.iter().next()
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
struct TaskModel {
    place: Poss<Place>,
    title: Poss<String>,
    completed: Poss<bool>,
    tags: Poss<Vec<String>>,
}

impl TaskModel {
    fn from_task(t: &Task) -> Self {
        TaskModel {
            place: Poss::known(Place::Live),
            title: Poss::known(t.title.clone()),
            completed: Poss::known(t.completed),
            tags: Poss::known(sorted(&t.tags)),
        }
    }
    fn absent(title: &str) -> Self {
        TaskModel {
            place: Poss::known(Place::Absent),
            title: Poss::known(title.to_string()),
            completed: Poss::known(false),
            tags: Poss::known(Vec::new()),
        }
    }
    fn known(&self) -> bool {
        self.place.0.len() == 1 && self.title.0.len() == 1 && self.completed.0.len() == 1 && self.tags.0.len() == 1
    }
}

fn sorted(tags: &[String]) -> Vec<String> {
    let mut v: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    v.sort();
    v
}

/// What one call came to.
enum Outcome<T> {
    Ok(T),
    /// The server or the library answered: nothing was written.
    Definite(Error),
    /// The call was cancelled, ran out of time, or lost its connection: it may have committed.
    Unknown,
}

/// Shared counters of the run.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    ok: AtomicU64,
    definite: AtomicU64,
    unknown: AtomicU64,
    cancelled: AtomicU64,
    /// Unknown outcomes that turned out committed (the retry found the write done).
    resolved_committed: AtomicU64,
    /// Unknown outcomes that turned out not committed (the retry made the write).
    resolved_not_committed: AtomicU64,
    /// Unknown outcomes settled by repeating an idempotent write (either way, one effect).
    resolved_by_repeat: AtomicU64,
    unresolved: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<Vec<String>>,
}

impl Tally {
    fn violation(&self, v: String) {
        eprintln!("VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
    fn error(&self, e: &Error) {
        let kind = match e {
            Error::Database { code, .. } => format!("database {code}"),
            Error::Unavailable { .. } => "unavailable".into(),
            Error::Busy(_) => "busy (pool)".into(),
            Error::NotFound { .. } => "not found".into(),
            Error::Conflict { .. } => "conflict".into(),
            other => format!("{:?}", std::mem::discriminant(other)),
        };
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// A virtual user: its own user, its model of that user's tasks, and its random source.
struct Vu {
    db: Db,
    user: UserId,
    email: String,
    tasks: BTreeMap<TaskId, TaskModel>,
    rng: StdRng,
    tally: Arc<Tally>,
    /// Every task id of every user, to tell a row of another user from a phantom.
    owners: Arc<Mutex<HashMap<TaskId, UserId>>>,
    n: u64,
}

fn unknown(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Internal(_))
}

impl Vu {
    /// Runs `f` as a caller would: mostly with a generous deadline, sometimes cancelled at a random
    /// point (the future dropped), sometimes under a tight random deadline.
    async fn call<T>(&mut self, f: impl std::future::Future<Output = todo_db::Result<T>>) -> Outcome<T> {
        self.tally.ops.fetch_add(1, Ordering::Relaxed);
        let roll = self.rng.gen_range(0..100);
        let (limit, why) = match roll {
            0..=2 => (Duration::from_micros(self.rng.gen_range(0..3000)), "cancelled"),
            3..=5 => (Duration::from_millis(self.rng.gen_range(20..300)), "deadline"),
            _ => (Duration::from_secs(30), "deadline"),
        };
        self.classify(tokio::time::timeout(limit, f).await, why)
    }

    /// Runs `f` with the generous deadline only (a retry that resolves an unknown outcome).
    async fn retry<T>(&mut self, f: impl std::future::Future<Output = todo_db::Result<T>>) -> Outcome<T> {
        self.tally.ops.fetch_add(1, Ordering::Relaxed);
        self.classify(tokio::time::timeout(Duration::from_secs(30), f).await, "deadline")
    }

    fn classify<T>(&self, r: Result<todo_db::Result<T>, tokio::time::error::Elapsed>, why: &'static str) -> Outcome<T> {
        match r {
            Err(_) => {
                self.tally.unknown.fetch_add(1, Ordering::Relaxed);
                if why == "cancelled" {
                    self.tally.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Unknown
            }
            Ok(Ok(v)) => {
                self.tally.ok.fetch_add(1, Ordering::Relaxed);
                Outcome::Ok(v)
            }
            Ok(Err(e)) => {
                self.tally.error(&e);
                if unknown(&e) {
                    self.tally.unknown.fetch_add(1, Ordering::Relaxed);
                    Outcome::Unknown
                } else {
                    self.tally.definite.fetch_add(1, Ordering::Relaxed);
                    Outcome::Definite(e)
                }
            }
        }
    }

    async fn pause(&mut self) {
        let ms = self.rng.gen_range(50..250);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn pick(&mut self, place: Place) -> Option<TaskId> {
        let ids: Vec<TaskId> =
            self.tasks.iter().filter(|(_, m)| m.place.is(&place) && m.known()).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            None
        } else {
            Some(ids[self.rng.gen_range(0..ids.len())])
        }
    }

    fn title(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{} {what} {}", self.email, self.n)
    }

    fn new_task(&mut self) -> NewTask {
        let title = self.title("task");
        NewTask::new(&title).expect("a valid title")
    }

    /// A task the library returned: it must be this user's, and it is now what the model holds.
    fn returned(&mut self, t: &Task) {
        if t.user_id != self.user {
            self.tally.violation(format!("user {} was handed task {} of user {}", self.user, t.id, t.user_id));
            return;
        }
        self.tasks.insert(t.id, TaskModel::from_task(t));
    }

    fn lost(&self, what: &str, id: TaskId, e: &Error) {
        self.tally.violation(format!("{what} of acknowledged task {id} (user {}): {e}", self.user));
    }

    async fn step(&mut self) {
        // Each operation boxed: their futures are large, and an unoptimised build runs them too.
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=29 => Box::pin(self.list()).await,
            30..=44 => Box::pin(self.create()).await,
            45..=54 => Box::pin(self.retitle()).await,
            55..=64 => Box::pin(self.complete()).await,
            65..=74 => Box::pin(self.tag()).await,
            75..=81 => Box::pin(self.trash()).await,
            82..=86 => Box::pin(self.restore()).await,
            87..=91 => Box::pin(self.complete_many()).await,
            92..=94 => Box::pin(self.create_many()).await,
            _ => Box::pin(self.summary()).await,
        }
    }

    async fn create(&mut self) {
        let new = self.new_task();
        self.owners.lock().unwrap().insert(new.id, self.user);
        let db = self.db.clone();
        let scope = db.user(self.user);
        match self.call(scope.tasks().create(&new)).await {
            Outcome::Ok(t) => self.returned(&t),
            Outcome::Definite(_) => {
                self.tasks.insert(new.id, TaskModel::absent(new.title.as_str()));
            }
            Outcome::Unknown => {
                let mut m = TaskModel::absent(new.title.as_str());
                m.place.maybe(Place::Live);
                self.tasks.insert(new.id, m);
                let started = Instant::now();
                while started.elapsed() < RESOLVE_FOR {
                    match self.retry(scope.tasks().create(&new)).await {
                        Outcome::Ok(t) => {
                            self.tally.resolved_not_committed.fetch_add(1, Ordering::Relaxed);
                            return self.returned(&t);
                        }
                        Outcome::Definite(Error::Conflict { field: "task id", .. }) => {
                            self.tally.resolved_committed.fetch_add(1, Ordering::Relaxed);
                            // It committed as created: read it back for its exact state.
                            return self.reread(new.id).await;
                        }
                        _ => self.pause().await,
                    }
                }
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reads a task back after a resolution, into the model.
    async fn reread(&mut self, id: TaskId) {
        let db = self.db.clone();
        let started = Instant::now();
        while started.elapsed() < RESOLVE_FOR {
            if let Outcome::Ok(t) = self.retry(db.user(self.user).tasks().get(id)).await {
                return self.returned(&t);
            }
            self.pause().await;
        }
        self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
    }

    /// An idempotent write to a live task (`apply` returns the task): on an unknown outcome the
    /// field may hold either value until a repeat is acknowledged.
    async fn write<F, Fut>(&mut self, id: TaskId, what: &str, maybe: impl Fn(&mut TaskModel), apply: F)
    where
        F: Fn(Db, UserId) -> Fut,
        Fut: std::future::Future<Output = todo_db::Result<Task>>,
    {
        match self.call(apply(self.db.clone(), self.user)).await {
            Outcome::Ok(t) => self.returned(&t),
            Outcome::Definite(e @ Error::NotFound { .. }) => self.lost(what, id, &e),
            Outcome::Definite(_) => {}
            Outcome::Unknown => {
                if let Some(m) = self.tasks.get_mut(&id) {
                    maybe(m);
                }
                let started = Instant::now();
                while started.elapsed() < RESOLVE_FOR {
                    match self.retry(apply(self.db.clone(), self.user)).await {
                        Outcome::Ok(t) => {
                            self.tally.resolved_by_repeat.fetch_add(1, Ordering::Relaxed);
                            return self.returned(&t);
                        }
                        Outcome::Definite(e @ Error::NotFound { .. }) => return self.lost(what, id, &e),
                        _ => self.pause().await,
                    }
                }
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn retitle(&mut self) {
        let Some(id) = self.pick(Place::Live) else { return self.create().await };
        let title = self.title("renamed");
        let patch =
            TaskPatch { title: Some(todo_db::model::TaskTitle::parse(&title).expect("valid")), ..Default::default() };
        let t2 = title.clone();
        self.write(
            id,
            "rename",
            move |m| m.title.maybe(t2.clone()),
            move |db, u| {
                let patch = patch.clone();
                async move { db.user(u).tasks().update(id, &patch).await }
            },
        )
        .await;
    }

    async fn complete(&mut self) {
        let Some(id) = self.pick(Place::Live) else { return self.create().await };
        self.write(
            id,
            "complete",
            |m| m.completed.maybe(true),
            move |db, u| async move { db.user(u).tasks().complete(id).await },
        )
        .await;
    }

    async fn tag(&mut self) {
        let Some(id) = self.pick(Place::Live) else { return self.create().await };
        let name = TAGS[self.rng.gen_range(0..TAGS.len())];
        let mut with = self.tasks[&id].tags.single().cloned().unwrap_or_default();
        if !with.iter().any(|t| t == name) {
            with.push(name.to_string());
            with.sort();
        }
        self.write(
            id,
            "tag",
            move |m| m.tags.maybe(with.clone()),
            move |db, u| async move { db.user(u).tasks().tag(id, &[TagName::parse(name).expect("valid")]).await },
        )
        .await;
    }

    /// Trash and restore: not idempotent as calls, but each repeat says which way it went (the
    /// task is, or is not, where the call would move it from).
    async fn trash(&mut self) {
        let Some(id) = self.pick(Place::Live) else { return self.create().await };
        let db = self.db.clone();
        let scope = db.user(self.user);
        match self.call(scope.tasks().delete(id)).await {
            Outcome::Ok(()) => self.moved(id, Place::Trash),
            Outcome::Definite(e @ Error::NotFound { .. }) => self.lost("trash", id, &e),
            Outcome::Definite(_) => {}
            Outcome::Unknown => {
                if let Some(m) = self.tasks.get_mut(&id) {
                    m.place.maybe(Place::Trash);
                }
                let started = Instant::now();
                while started.elapsed() < RESOLVE_FOR {
                    match self.retry(scope.tasks().delete(id)).await {
                        Outcome::Ok(()) => {
                            self.tally.resolved_not_committed.fetch_add(1, Ordering::Relaxed);
                            return self.moved(id, Place::Trash);
                        }
                        Outcome::Definite(Error::NotFound { .. }) => {
                            self.tally.resolved_committed.fetch_add(1, Ordering::Relaxed);
                            return self.moved(id, Place::Trash);
                        }
                        _ => self.pause().await,
                    }
                }
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn restore(&mut self) {
        let Some(id) = self.pick(Place::Trash) else { return self.list().await };
        let db = self.db.clone();
        let scope = db.user(self.user);
        match self.call(scope.tasks().restore(id)).await {
            Outcome::Ok(t) => self.returned(&t),
            Outcome::Definite(e @ Error::NotFound { .. }) => self.lost("restore", id, &e),
            Outcome::Definite(_) => {}
            Outcome::Unknown => {
                if let Some(m) = self.tasks.get_mut(&id) {
                    m.place.maybe(Place::Live);
                }
                let started = Instant::now();
                while started.elapsed() < RESOLVE_FOR {
                    match self.retry(scope.tasks().restore(id)).await {
                        Outcome::Ok(t) => {
                            self.tally.resolved_not_committed.fetch_add(1, Ordering::Relaxed);
                            return self.returned(&t);
                        }
                        Outcome::Definite(Error::NotFound { .. }) => {
                            self.tally.resolved_committed.fetch_add(1, Ordering::Relaxed);
                            return self.reread(id).await;
                        }
                        _ => self.pause().await,
                    }
                }
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn moved(&mut self, id: TaskId, to: Place) {
        if let Some(m) = self.tasks.get_mut(&id) {
            m.place.set(to);
        }
    }

    /// Completes up to five live tasks in one statement (idempotent).
    async fn complete_many(&mut self) {
        let ids: Vec<TaskId> =
            (0..5).filter_map(|_| self.pick(Place::Live)).collect::<BTreeSet<_>>().into_iter().collect();
        if ids.is_empty() {
            return self.create().await;
        }
        let db = self.db.clone();
        let scope = db.user(self.user);
        let mut outcome = self.call(scope.tasks().complete_many(&ids)).await;
        if let Outcome::Unknown = outcome {
            for id in &ids {
                if let Some(m) = self.tasks.get_mut(id) {
                    m.completed.maybe(true);
                }
            }
            let started = Instant::now();
            outcome = Outcome::Unknown;
            while started.elapsed() < RESOLVE_FOR {
                match self.retry(scope.tasks().complete_many(&ids)).await {
                    Outcome::Ok(n) => {
                        self.tally.resolved_by_repeat.fetch_add(1, Ordering::Relaxed);
                        outcome = Outcome::Ok(n);
                        break;
                    }
                    _ => self.pause().await,
                }
            }
        }
        match outcome {
            Outcome::Ok(_) => {
                for id in &ids {
                    if let Some(m) = self.tasks.get_mut(id) {
                        m.completed.set(true);
                    }
                }
            }
            Outcome::Unknown => {
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Definite(_) => {}
        }
    }

    /// Creates three tasks in one statement, all or none.
    async fn create_many(&mut self) {
        let batch: Vec<NewTask> = (0..3).map(|_| self.new_task()).collect();
        {
            let mut owners = self.owners.lock().unwrap();
            for t in &batch {
                owners.insert(t.id, self.user);
            }
        }
        let db = self.db.clone();
        let scope = db.user(self.user);
        let placed = |tasks: &mut BTreeMap<TaskId, TaskModel>, maybe_live: bool| {
            for t in &batch {
                let mut m = TaskModel::absent(t.title.as_str());
                if maybe_live {
                    m.place.maybe(Place::Live);
                }
                tasks.insert(t.id, m);
            }
        };
        match self.call(scope.tasks().create_many(&batch)).await {
            Outcome::Ok(_) => {
                placed(&mut self.tasks, false);
                for t in &batch {
                    if let Some(m) = self.tasks.get_mut(&t.id) {
                        m.place.set(Place::Live);
                    }
                }
            }
            Outcome::Definite(_) => placed(&mut self.tasks, false),
            Outcome::Unknown => {
                placed(&mut self.tasks, true);
                let started = Instant::now();
                while started.elapsed() < RESOLVE_FOR {
                    match self.retry(scope.tasks().create_many(&batch)).await {
                        Outcome::Ok(_) => {
                            self.tally.resolved_not_committed.fetch_add(1, Ordering::Relaxed);
                            for t in &batch {
                                if let Some(m) = self.tasks.get_mut(&t.id) {
                                    m.place.set(Place::Live);
                                }
                            }
                            return;
                        }
                        Outcome::Definite(Error::Conflict { .. }) => {
                            self.tally.resolved_committed.fetch_add(1, Ordering::Relaxed);
                            for t in &batch {
                                if let Some(m) = self.tasks.get_mut(&t.id) {
                                    m.place.set(Place::Live);
                                }
                            }
                            return;
                        }
                        _ => self.pause().await,
                    }
                }
                self.tally.unresolved.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The first page of the user's tasks: every row is the user's, and every fully known task
    /// shows its acknowledged state.
    async fn list(&mut self) {
        let db = self.db.clone();
        let filter = TaskFilter { limit: Some(100), ..TaskFilter::default() };
        let Outcome::Ok(page) = self.call(db.user(self.user).tasks().list(&filter)).await else { return };
        for t in &page.items {
            if t.user_id != self.user {
                self.tally.violation(format!("user {} listed task {} of user {}", self.user, t.id, t.user_id));
                continue;
            }
            match self.tasks.get(&t.id) {
                None => {
                    let owner = self.owners.lock().unwrap().get(&t.id).copied();
                    self.tally.violation(format!(
                        "user {} listed task {} it never created (owner in the log: {owner:?})",
                        self.user, t.id
                    ));
                }
                Some(m) if m.known() => {
                    let seen = TaskModel::from_task(t);
                    if !m.place.is(&Place::Live)
                        || m.title.single() != seen.title.single()
                        || m.completed.single() != seen.completed.single()
                        || m.tags.single() != seen.tags.single()
                    {
                        self.tally.violation(format!(
                            "user {} read task {} as {seen:?}, acknowledged {m:?}",
                            self.user, t.id
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// The summary view: one row, this user's.
    async fn summary(&mut self) {
        let db = self.db.clone();
        let scope = db.user(self.user);
        let Outcome::Ok(rows) = self.call(views::read::<TaskSummary>(&scope, &ReportOptions::default())).await else {
            return;
        };
        for r in &rows {
            if r.user_id != self.user.0 || r.email != self.email {
                self.tally
                    .violation(format!("user {} read the summary of user {} ({})", self.user, r.user_id, r.email));
            }
        }
    }
}

/// The fault classes, in the order they are reported.
const FAULTS: [&str; 10] = [
    "backends terminated",
    "server SIGKILL + restart",
    "proxy cut",
    "proxy stall (half-open)",
    "proxy lost answers",
    "proxy delay",
    "table lock past the timeouts",
    "idle in transaction past its timeout",
    "PgBouncer restart",
    "audit seal",
];

struct Faults {
    cluster: todo_db_ops::local::Cluster,
    home: std::path::PathBuf,
    proxy: FaultProxy,
    /// The PgBouncer (transaction mode, as Neon's pooler) a third of the users go through.
    pooler: Arc<Mutex<LocalPooler>>,
    /// The cluster's superuser, directly (not through the proxy).
    su: Db,
    /// The owner login, directly: seals.
    owner: Db,
    counts: [AtomicU64; FAULTS.len()],
    /// How long the server was down in all.
    down: Mutex<Duration>,
}

impl Faults {
    async fn inject(&self, class: usize, rng: &mut StdRng) -> anyhow::Result<()> {
        match class {
            0 => {
                self.su
                    .admin()
                    .query(
                        "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = 'todo' \
                         and pid <> pg_backend_pid() and backend_type = 'client backend'",
                        &[],
                    )
                    .await?;
            }
            1 => {
                let started = Instant::now();
                kill_server(&self.home)?;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
                self.cluster.ensure_running().await?;
                *self.down.lock().unwrap() += started.elapsed();
            }
            2 => self.proxy.cut(),
            3 | 4 => {
                self.proxy.set(if class == 3 { Fault::BlackHole } else { Fault::LoseAnswers });
                tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
                self.proxy.set(Fault::None);
                // A half-open connection stays stuck after the stall: cut it, as a peer's
                // keepalive would.
                self.proxy.cut();
            }
            5 => {
                self.proxy.delay(Duration::from_millis(rng.gen_range(5..50)));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..3000))).await;
                self.proxy.delay(Duration::ZERO);
            }
            6 => {
                let hold = rng.gen_range(1500..2500);
                self.su
                    .admin()
                    .batch(&format!(
                        "begin; lock table tasks in exclusive mode; select pg_sleep({}); commit",
                        hold as f64 / 1000.0
                    ))
                    .await?;
            }
            7 => {
                let conn = self.su.admin().connection().await?;
                conn.batch_execute(
                    "set idle_in_transaction_session_timeout = '1500ms'; begin; \
                     select id from tasks order by random() limit 20 for update",
                )
                .await?;
                // Back to the pool inside its transaction; the server ends the session.
                drop(conn);
                tokio::time::sleep(Duration::from_millis(1600)).await;
            }
            8 => {
                let pooler = self.pooler.clone();
                tokio::task::spawn_blocking(move || pooler.lock().unwrap().restart()).await??;
            }
            _ => {
                todo_db::audit::seal(&self.owner, Duration::from_secs(5)).await?;
            }
        }
        self.counts[class].fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Stops the private cluster and removes it however the run ends (an error, a panic).
struct Cleanup(todo_db_ops::local::Cluster, std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.stop();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// SIGKILL to every process of the cluster's server (the postmaster and its children), as a
/// machine crash would leave it.
fn kill_server(home: &std::path::Path) -> anyhow::Result<()> {
    let pidfile = std::fs::read_to_string(home.join("data/postmaster.pid"))?;
    let postmaster: u32 = pidfile.lines().next().unwrap_or("").trim().parse()?;
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: the fields after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    let status = std::process::Command::new("kill").arg("-KILL").args(pids.iter().map(u32::to_string)).status()?;
    anyhow::ensure!(status.success(), "kill -KILL {pids:?} failed");
    // Wait until they are gone, so the restart finds no process attached to the old memory.
    let started = Instant::now();
    while pids.iter().any(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "server processes survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let seconds = knob("SOAK_SECONDS", 600, 40);
    let users = knob("SOAK_USERS", 16, 6) as usize;
    let fault_every = knob("SOAK_FAULT_EVERY_MS", 2500, 1500);
    let seed = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);

    let home = std::env::temp_dir().join(format!("todo-db-soak-{}", std::process::id()));
    let (cluster, url) = harness::private_cluster(&home).await;
    let _cleanup = Cleanup(cluster.clone(), home.clone());
    let running = cluster.ensure_running().await?;
    let base = harness::settings();
    let su = Db::connect_url(&running.superuser_url_for("todo"), &base).await?;
    let owner = Db::connect_url(&url, &base).await?;
    let version: String = su.admin().query("show server_version", &[]).await?[0].get(0);
    let proxy = FaultProxy::start(("127.0.0.1".into(), running.port)).await;
    println!(
        "soak: PostgreSQL {version}, {users} virtual users for {seconds} s, a fault every ~{fault_every} ms, seed {seed}{}",
        if quick_mode() { " (quick)" } else { "" }
    );

    // Two pools through the proxy, on the app login: one with a short lock timeout, one with a
    // short statement timeout (a table lock held past both makes each kind fire).
    let pool = |statement: u64, lock: u64| {
        let mut s = harness::settings();
        s.pool.size = 4;
        s.pool.acquire_timeout = Duration::from_secs(5);
        s.pool.connect_retry = Duration::from_secs(3);
        s.pool.connect_timeout = Duration::from_secs(2);
        s.pool.statement_timeout = Duration::from_millis(statement);
        s.pool.lock_timeout = Duration::from_millis(lock);
        s.app_url = running.app_url().map(|a| Secret::new(proxy.url(&a)));
        s
    };
    let short_lock = Db::connect_url(&proxy.url(&url), &pool(5000, 400)).await?;
    let short_statement = Db::connect_url(&proxy.url(&url), &pool(1000, 10_000)).await?;
    // A third of the users go through PgBouncer in transaction mode (to the server directly, on
    // TLS), with prepared statements where it tracks them (1.21+), unnamed ones otherwise.
    let app = running.app_url().ok_or_else(|| anyhow::anyhow!("the cluster has no app login"))?;
    let pooler = LocalPooler::start_with(&url, 4, &[&app], true)?;
    let pooled = {
        let mut s = pool(2000, 1000);
        s.app_url = Some(Secret::new(pooler.url(&app)));
        s.pool.statements = if pooler.tracks_prepared {
            todo_db::config::StatementMode::Prepared
        } else {
            todo_db::config::StatementMode::Unnamed
        };
        Db::connect_url(&pooler.url(&url), &s).await?
    };
    println!("  a third of the users through PgBouncer {} (transaction mode)", pooler.version);

    let tally = Arc::new(Tally::default());
    let owners = Arc::new(Mutex::new(HashMap::new()));
    let mut vus = Vec::new();
    for i in 0..users {
        let email = format!("soak{i}@example.com");
        let user = owner.admin().users().create(&NewUser::new(&email, &format!("Soak {i}"))?).await?.id;
        let db = match i % 3 {
            0 => short_lock.clone(),
            1 => short_statement.clone(),
            _ => pooled.clone(),
        };
        vus.push(Vu {
            db,
            user,
            email,
            tasks: BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed.wrapping_add(i as u64)),
            tally: tally.clone(),
            owners: owners.clone(),
            n: 0,
        });
    }

    let faults = Arc::new(Faults {
        cluster: cluster.clone(),
        home: home.clone(),
        proxy,
        pooler: Arc::new(Mutex::new(pooler)),
        su,
        owner: owner.clone(),
        counts: Default::default(),
        down: Mutex::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = vus
        .into_iter()
        .map(|mut vu| {
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    vu.step().await;
                }
                vu
            })
        })
        .collect();
    let scheduler = {
        let (faults, stop) = (faults.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut failed = Vec::new();
            let mut cycle: Vec<usize> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let gap = rng.gen_range(fault_every / 2..fault_every * 3 / 2);
                tokio::time::sleep(Duration::from_millis(gap)).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Every class once per cycle, in a shuffled order, then a seal.
                if cycle.is_empty() {
                    cycle = (0..FAULTS.len() - 1).collect();
                    cycle.shuffle(&mut rng);
                    cycle.insert(0, FAULTS.len() - 1);
                }
                let class = cycle.pop().unwrap_or(0);
                if let Err(e) = faults.inject(class, &mut rng).await {
                    failed.push(format!("{}: {e}", FAULTS[class]));
                }
            }
            failed
        })
    };
    let mut vus = Vec::new();
    for w in workers {
        vus.push(w.await?);
    }
    let ran = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let injection_failures = scheduler.await?;
    faults.proxy.set(Fault::None);
    faults.proxy.delay(Duration::ZERO);
    cluster.ensure_running().await?;

    // The checker, on the owner login, directly.
    let check = Db::connect_url(&url, &base).await?;
    todo_db::audit::seal(&check, Duration::from_secs(10)).await?;
    let rows = check
        .admin()
        .query(
            "select id, user_id, title, completed, \
               array(select lower(g.name) from task_tags tt join tags g on g.id = tt.tag_id \
                     where tt.task_id = t.id order by 1), 'live' from tasks t \
             union all select id, user_id, title, completed, '{}'::text[], 'trash' from task_trash",
            &[],
        )
        .await?;
    let mut actual: HashMap<uuid::Uuid, (uuid::Uuid, String, bool, Vec<String>, Place)> = HashMap::new();
    let mut titles: HashMap<String, u32> = HashMap::new();
    for r in &rows {
        let place = if r.get::<_, &str>(5) == "live" { Place::Live } else { Place::Trash };
        let title: String = r.get(2);
        *titles.entry(title.clone()).or_default() += 1;
        if actual.insert(r.get(0), (r.get(1), title, r.get(3), r.get(4), place)).is_some() {
            tally.violation(format!("task {} is both live and in the trash", r.get::<_, uuid::Uuid>(0)));
        }
    }
    for (title, n) in &titles {
        if *n > 1 {
            tally.violation(format!("{n} tasks titled {title:?}: a write took effect twice"));
        }
    }
    let (mut acknowledged, mut replayed) = (0u64, 0u64);
    let now = time::OffsetDateTime::now_utc();
    let mut modelled = BTreeSet::new();
    for vu in &vus {
        for (id, m) in &vu.tasks {
            modelled.insert(id.0);
            if m.known() && !m.place.is(&Place::Absent) {
                acknowledged += 1;
            }
            let place = actual.get(&id.0).map(|a| a.4.clone()).unwrap_or(Place::Absent);
            if !m.place.allows(&place) {
                tally.violation(format!("task {id} of user {} is {place:?}, the log allows {:?}", vu.user, m.place.0));
                continue;
            }
            let Some((owner, title, completed, tags, place)) = actual.get(&id.0) else { continue };
            if *owner != vu.user.0 {
                tally.violation(format!("task {id} belongs to {owner}, created by {}", vu.user));
            }
            if !m.title.allows(title) || !m.completed.allows(completed) {
                tally.violation(format!("task {id}: title {title:?} completed {completed}, the log allows {m:?}"));
            }
            if *place == Place::Live && !m.tags.allows(tags) {
                tally.violation(format!("task {id}: tags {tags:?}, the log allows {:?}", m.tags.0));
            }
            // The audit history replays to the row (a trashed task's history ends in its delete).
            let state = todo_db::audit::state_at(&check, "tasks", id.0, now).await?;
            replayed += 1;
            match (place, state) {
                (Place::Live, Some(s)) => {
                    if s["title"].as_str() != Some(title.as_str()) || s["completed"].as_bool() != Some(*completed) {
                        tally.violation(format!("task {id}: its audit history replays to {s}, the row is {title:?}"));
                    }
                }
                (Place::Trash, None) => {}
                (place, s) => tally.violation(format!("task {id} is {place:?}, its audit history replays to {s:?}")),
            }
        }
    }
    for (id, (owner, title, ..)) in &actual {
        if !modelled.contains(id) {
            tally.violation(format!("task {id} ({title:?}, user {owner}) is in the database but in no log"));
        }
    }
    let audit = todo_db::audit::verify(&check).await?;
    if !audit.ok {
        tally.violation(format!("audit verify: {:?}", audit.first_problem));
    }
    let verify = todo_db_ops::verify::verify(&check).await?;
    for f in verify.failures() {
        tally.violation(format!("verify: {f:?}"));
    }
    for f in todo_db::security::posture::check(&check).await?.iter().filter(|f| !f.ok) {
        tally.violation(format!("security check: {} {}: {}", f.object, f.check, f.detail));
    }

    // The report.
    let t = &tally;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let ops = get(&t.ops);
    println!(
        "operations: {ops} in {:.1} s ({:.0} ops/s while faults ran): {} ok, {} definite errors, {} unknown ({} cancelled by the caller)",
        ran.as_secs_f64(),
        ops as f64 / ran.as_secs_f64(),
        get(&t.ok),
        get(&t.definite),
        get(&t.unknown),
        get(&t.cancelled)
    );
    println!(
        "unknown outcomes resolved: {} had committed, {} had not (the retry wrote it once), {} settled by an idempotent repeat, {} unresolved",
        get(&t.resolved_committed),
        get(&t.resolved_not_committed),
        get(&t.resolved_by_repeat),
        get(&t.unresolved)
    );
    println!("errors by kind: {:?}", t.errors.lock().unwrap());
    let total: u64 = faults.counts[..FAULTS.len() - 1].iter().map(get).sum();
    println!("faults injected: {total} (server down {:.1} s in all)", faults.down.lock().unwrap().as_secs_f64());
    for (name, n) in FAULTS.iter().zip(&faults.counts) {
        println!("  {name:<40} {}", get(n));
    }
    for f in &injection_failures {
        println!("  (an injection failed: {f})");
    }
    let violations = t.violations.lock().unwrap().clone();
    let lost = violations.iter().filter(|v| v.contains("acknowledged") || v.contains("the log allows [Live]")).count();
    let cross = violations.iter().filter(|v| v.contains("of user") || v.contains("summary of user")).count();
    println!(
        "checked: {} tasks in the database, {acknowledged} acknowledged and known, {replayed} audit histories replayed; \
         audit verify {} ({} seals); verify {}; security check {}",
        actual.len(),
        if audit.ok { "ok" } else { "FAILED" },
        audit.seals,
        if verify.failures().count() == 0 { "ok" } else { "FAILED" },
        if violations.iter().any(|v| v.starts_with("security")) { "FAILED" } else { "ok" },
    );
    println!(
        "acknowledged writes lost: {lost}; cross-user rows seen: {cross}; violations in all: {}",
        violations.len()
    );

    for db in [&short_lock, &short_statement, &pooled, &owner, &check, &faults.su] {
        db.close();
    }
    if !violations.is_empty() || ops == 0 {
        anyhow::bail!("the soak found {} violation(s)", violations.len());
    }
    if faults.counts.iter().any(|c| get(c) == 0) {
        anyhow::bail!("a fault class was never injected: run longer (SOAK_SECONDS)");
    }
    Ok(())
}
