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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use todo_db::db::Db;
use todo_db::error::{Error, Result};
use todo_db::model::{NewTask, NewUser, Priority, TagName};
use todo_db::security::{self, ClientInfo};

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
pub const PHASES: [&str; 5] = ["users", "tags", "tasks", "task_tags", "vacuum"];

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

/// The tables in load order, with the columns the COPY fills.
const COPIES: [(&str, Pass); 4] = [
    ("copy users (id, email, display_name, is_active, created_at, updated_at) from stdin (format binary)", Pass::Users),
    ("copy tags (id, user_id, name, color, created_at) from stdin (format binary)", Pass::Tags),
    (
        "copy tasks (id, user_id, title, description, priority, completed, completed_at, due_at, created_at, updated_at) \
         from stdin (format binary)",
        Pass::Tasks,
    ),
    ("copy task_tags (user_id, task_id, tag_id) from stdin (format binary)", Pass::TaskTags),
];

const AUDITED: [&str; 4] = ["users", "tags", "tasks", "task_tags"];

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
    let toggle = |on: bool| {
        let verb = if on { "enable" } else { "disable" };
        AUDITED.iter().map(|t| format!("alter table {t} {verb} trigger {t}_audit;")).collect::<String>()
    };
    tx.batch_execute(&format!("set local statement_timeout = 0; {}", toggle(false))).await.map_err(fail)?;
    let mut counts = [0u64; 4];
    for (i, (sql, pass)) in COPIES.iter().enumerate() {
        progress.phase.store(i, Ordering::Relaxed);
        counts[i] = copy_pass(&tx, sql, *spec, *pass, progress.clone()).await.map_err(fail)?;
    }
    tx.batch_execute(&toggle(true)).await.map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress.phase.store(4, Ordering::Relaxed);
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
            rows += generate(&spec, i, pass, &mut out, &mut scratch);
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
        if pass == COPIES[COPIES.len() - 1].1 {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Users,
    Tags,
    Tasks,
    TaskTags,
}

/// Generates user `i` and writes the rows of `pass` to `out`; returns how many. The random stream
/// is consumed identically in every pass (what a pass does not write goes to `scratch`), so the
/// passes agree on every id.
fn generate(spec: &SeedSpec, i: u64, pass: Pass, out: &mut Encoder, scratch: &mut Encoder) -> u64 {
    let mut rng = Rng::new(spec.seed, i);
    let anchor = micros(spec.anchor);
    let user_created = anchor - (30 + rng.below(365) as i64) * DAY - rng.below(DAY as u64) as i64;
    let user_id = rng.uuid(user_created);
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    if pass == Pass::Users {
        out.row(6);
        out.uuid(user_id);
        out.text(&spec.email(i));
        out.text_with(|b| {
            b.put_slice(first.as_bytes());
            b.put_u8(b' ');
            b.put_slice(last.as_bytes());
        });
        out.bool(rng.below(100) < 97);
        out.ts(user_created);
        out.ts(user_created);
        return 1;
    }
    // Tags: 3 to 8 distinct names from the pool.
    let tag_count = 3 + rng.below(6) as usize;
    let mut tags = [(Uuid::nil(), 0usize); 8];
    let mut chosen = 0u64; // bit set of pool indexes
    for slot in tags.iter_mut().take(tag_count) {
        let mut name = rng.below(TAG_NAMES.len() as u64);
        while chosen & (1 << name) != 0 {
            name = (name + 1) % TAG_NAMES.len() as u64;
        }
        chosen |= 1 << name;
        let created = user_created + rng.below(7 * DAY as u64) as i64;
        *slot = (rng.uuid(created), name as usize);
        let color = if rng.below(4) == 0 { None } else { Some(*rng.pick(COLORS)) };
        if pass == Pass::Tags {
            out.row(5);
            out.uuid(slot.0);
            out.uuid(user_id);
            out.text(TAG_NAMES[name as usize]);
            match color {
                Some(c) => out.text(c),
                None => out.null(),
            }
            out.ts(created);
        }
    }
    if pass == Pass::Tags {
        return tag_count as u64;
    }
    let mut rows = 0;
    let life = anchor - user_created;
    for _ in 0..spec.tasks_per_user {
        let created = user_created + (rng.unit() * life as f64) as i64;
        let id = rng.uuid(created);
        let priority = match rng.below(100) {
            0..30 => "low",
            30..75 => "medium",
            75..93 => "high",
            _ => "urgent",
        };
        let completed_at = (rng.below(100) < 60).then(|| {
            // Most work is done within days; some takes weeks. Never after the anchor.
            let took = MINUTE + (rng.unit().powi(3) * (30 * DAY) as f64) as i64;
            (created + took).min(anchor.max(created + 1))
        });
        let due_at = (rng.below(100) < 75).then(|| {
            let around = anchor + (rng.below(66 * DAY as u64) as i64) - 21 * DAY;
            (around / HOUR * HOUR).max(created + HOUR)
        });
        let link_count = match rng.below(100) {
            0..30 => 0,
            30..65 => 1,
            65..90 => 2,
            _ => 3,
        };
        let first_tag = rng.below(tag_count as u64) as usize;
        let step = 1 + rng.below(tag_count as u64 - 1) as usize;
        let w = if pass == Pass::Tasks { &mut *out } else { &mut *scratch };
        w.row(10);
        w.uuid(id);
        w.uuid(user_id);
        w.text_with(|b| title(&mut rng, b));
        w.text_with(|b| description(&mut rng, b));
        w.text(priority);
        w.bool(completed_at.is_some());
        w.opt_ts(completed_at);
        w.opt_ts(due_at);
        w.ts(created);
        w.ts(completed_at.unwrap_or(created));
        if pass == Pass::Tasks {
            rows += 1;
        } else {
            scratch.buf.clear();
            // Distinct tags: walk the user's set by a random step, skipping repeats
            // (tag_count >= 3 >= link_count).
            let mut seen = [usize::MAX; 3];
            let mut at = first_tag;
            for n in 0..link_count {
                while seen.contains(&at) {
                    at = (at + 1) % tag_count;
                }
                seen[n] = at;
                out.row(3);
                out.uuid(user_id);
                out.uuid(id);
                out.uuid(tags[at].0);
                at = (at + step) % tag_count;
                rows += 1;
            }
        }
    }
    rows
}

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH: i64 = 946_684_800_000_000;

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn title(rng: &mut Rng, b: &mut BytesMut) {
    b.put_slice(rng.pick(VERBS).as_bytes());
    b.put_u8(b' ');
    b.put_slice(rng.pick(OBJECTS).as_bytes());
    if rng.below(10) < 3 {
        b.put_slice(b" #");
        b.put_slice(itoa(rng.below(100), &mut [0; 20]));
    }
}

/// Empty for about a third; otherwise one to a few sentences, now and then many.
fn description(rng: &mut Rng, b: &mut BytesMut) {
    let sentences = match rng.below(100) {
        0..35 => 0,
        35..85 => 1 + rng.below(3),
        85..98 => 4 + rng.below(8),
        _ => 12 + rng.below(30),
    };
    for s in 0..sentences {
        if s > 0 {
            b.put_u8(b' ');
        }
        b.put_slice(rng.pick(SENTENCES).as_bytes());
    }
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// PostgreSQL's binary COPY format, written directly (no per-value dispatch).
struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    fn new() -> Self {
        let mut buf = BytesMut::with_capacity(512 * 1024);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        Encoder { buf }
    }

    fn row(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    fn uuid(&mut self, id: Uuid) {
        self.buf.put_i32(16);
        self.buf.put_slice(id.as_bytes());
    }

    fn text(&mut self, s: &str) {
        self.buf.put_i32(s.len() as i32);
        self.buf.put_slice(s.as_bytes());
    }

    /// A text field written in place; its length is filled in afterwards.
    fn text_with(&mut self, write: impl FnOnce(&mut BytesMut)) {
        let at = self.buf.len();
        self.buf.put_i32(0);
        write(&mut self.buf);
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn bool(&mut self, v: bool) {
        self.buf.put_i32(1);
        self.buf.put_u8(u8::from(v));
    }

    fn ts(&mut self, unix_micros: i64) {
        self.buf.put_i32(8);
        self.buf.put_i64(unix_micros - PG_EPOCH);
    }

    fn opt_ts(&mut self, v: Option<i64>) {
        match v {
            Some(t) => self.ts(t),
            None => self.null(),
        }
    }

    fn null(&mut self) {
        self.buf.put_i32(-1);
    }
}

/// SplitMix64: tiny, fast, and fixed forever, so a seed means the same data in every version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A version-7 UUID for time `unix_micros`, random bits from this stream.
    fn uuid(&mut self, unix_micros: i64) -> Uuid {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next().to_le_bytes());
        random[8..].copy_from_slice(&self.next().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis((unix_micros / 1000) as u64, &random).into_uuid()
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Ben",
    "Chloé",
    "Dmitri",
    "Elena",
    "Farah",
    "Gustav",
    "Hana",
    "Igor",
    "José",
    "Kai",
    "Leïla",
    "Mateo",
    "Nadia",
    "Owen",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Viktor",
    "Wen",
    "Xiu",
    "Yusuf",
    "Zoë",
    "李娜",
    "さくら",
];
const LAST_NAMES: &[&str] = &[
    "Andersson",
    "Bianchi",
    "Çelik",
    "Dubois",
    "Eriksen",
    "Fernández",
    "García",
    "Hoffmann",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "López",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Østergaard",
    "Wang",
];
/// Tag names (at most 64, so a bit set can track which a user has).
const TAG_NAMES: &[&str] = &[
    "work",
    "home",
    "errands",
    "health",
    "finance",
    "reading",
    "family",
    "garden",
    "travel",
    "shopping",
    "learning",
    "fitness",
    "admin",
    "car",
    "kids",
    "music",
    "café",
    "bürokratie",
    "日本語",
    "someday",
    "waiting",
    "ideas",
];
const COLORS: &[&str] = &["#e11d48", "#f97316", "#eab308", "#22c55e", "#06b6d4", "#3b82f6", "#8b5cf6", "#64748b"];
const VERBS: &[&str] = &[
    "Call", "Email", "Review", "Buy", "Fix", "Plan", "Book", "Renew", "Write", "Read", "Clean", "Organise", "Pay",
    "Schedule", "Prepare", "Update", "Cancel", "Return", "Order", "Draft", "Check", "Finish",
];
const OBJECTS: &[&str] = &[
    "the quarterly report",
    "the plumber",
    "passport application",
    "dentist appointment",
    "team offsite",
    "car insurance",
    "the garage",
    "birthday present for Zoë",
    "tickets to Zürich",
    "the café booking",
    "tax return",
    "library books",
    "the budget spreadsheet",
    "conference talk",
    "grocery list",
    "the 東京 itinerary",
    "bike brakes",
    "electricity bill",
    "release notes",
    "résumé",
    "the onboarding checklist ✅",
    "flat viewing",
    "gym membership",
    "photo album",
];
const SENTENCES: &[&str] = &[
    "Needs to happen before the end of the month.",
    "Ask Priya whether the numbers from last week are final.",
    "Keep the receipt.",
    "The form is on the website under Services → Renewals.",
    "Bring the documents: ID, proof of address, two photos.",
    "Last time this took about an hour, so block the afternoon.",
    "Check the weather first.",
    "Coordinate with the others in the group chat 💬 before booking anything.",
    "Budget: roughly 120 €.",
    "See the notes from the meeting on Tuesday for the open questions and who owns which part of the follow-up.",
    "Low effort, but easy to forget.",
    "Straße und Hausnummer noch einmal prüfen.",
    "This depends on the reply from the landlord.",
    "Try the new place near the station; reviews say it is quiet in the mornings.",
];

/// Demo accounts for trying todo-db by hand: email, display name, tasks (title, priority, tags).
type DemoUser = (&'static str, &'static str, &'static [(&'static str, Priority, &'static [&'static str])]);

const DEMO: [DemoUser; 3] = [
    (
        "alice@example.com",
        "Alice",
        &[
            ("Write the quarterly report", Priority::High, &["work"]),
            ("Book dentist appointment", Priority::Medium, &["health"]),
            ("Renew passport", Priority::Urgent, &["errands"]),
            ("Plan the team offsite", Priority::Low, &["work", "planning"]),
        ],
    ),
    (
        "bob@example.com",
        "Bob",
        &[
            ("Fix the bike's brakes", Priority::High, &["errands"]),
            ("Read \"The Pragmatic Programmer\"", Priority::Low, &["reading"]),
            ("Call grandma", Priority::Medium, &[]),
        ],
    ),
    (
        "chloe@example.com",
        "Chloé",
        &[
            ("Réserver le train pour Lyon", Priority::Medium, &["voyage"]),
            ("Renew the car insurance", Priority::High, &["admin", "car"]),
        ],
    ),
];

/// A demo account created by [`load_demo`], with the password it was given. The password exists
/// only here: print it once, store it nowhere.
#[derive(Debug, Clone, Serialize)]
pub struct DemoAccount {
    pub email: String,
    pub password: String,
    pub tasks: usize,
}

/// Creates the demo accounts that do not exist yet, through the ordinary store (so they are
/// audited like any user's work), each with a fresh random password. Existing ones are skipped
/// and their passwords left alone.
pub async fn load_demo(db: &Db) -> Result<Vec<DemoAccount>> {
    let mut made = Vec::new();
    for (email, name, tasks) in DEMO {
        let user = match db.admin().users().create(&NewUser::new(email, name)?).await {
            Ok(u) => u,
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        };
        let scope = db.user(user.id);
        let password = security::tokens::readable_password();
        security::set_password(&scope, &password, &ClientInfo::default()).await?;
        for (i, (title, priority, tags)) in tasks.iter().enumerate() {
            let task = scope.tasks().create(&NewTask::new(title)?.priority(*priority)).await?;
            let tags = tags.iter().map(|t| TagName::parse(t)).collect::<Result<Vec<_>>>()?;
            if !tags.is_empty() {
                scope.tasks().tag(task.id, &tags).await?;
            }
            if i == 1 {
                scope.tasks().complete(task.id).await?;
            }
        }
        made.push(DemoAccount { email: email.to_string(), password, tasks: tasks.len() });
    }
    Ok(made)
}

/// Test fixtures: exactly the user, tasks and tags a test needs, created through the ordinary
/// store (so they are validated, isolated and audited like real use).
///
/// ```ignore
/// let f = seed::UserFixture::new("ann@example.com")
///     .tasks("chore", 5)
///     .task(NewTask::new("pay rent")?.priority(Priority::High), true, &["home"])
///     .create(&db)
///     .await?;
/// ```
#[derive(Debug, Clone)]
pub struct UserFixture {
    email: String,
    tasks: Vec<(NewTask, bool, Vec<String>)>,
}

/// What [`UserFixture::create`] made, in the order the tasks were given.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub user: todo_db::model::UserId,
    pub tasks: Vec<todo_db::model::TaskId>,
}

impl UserFixture {
    pub fn new(email: &str) -> Self {
        UserFixture { email: email.to_string(), tasks: Vec::new() }
    }

    /// One task, completed or not, with these tag names (created as needed).
    pub fn task(mut self, task: NewTask, completed: bool, tags: &[&str]) -> Self {
        self.tasks.push((task, completed, tags.iter().map(|t| t.to_string()).collect()));
        self
    }

    /// `n` open, untagged tasks titled "`prefix` 1" to "`prefix` n".
    pub fn tasks(mut self, prefix: &str, n: usize) -> Self {
        for i in 1..=n {
            let task = NewTask::new(&format!("{prefix} {i}")).expect("a fixture title is valid");
            self.tasks.push((task, false, Vec::new()));
        }
        self
    }

    pub async fn create(self, db: &Db) -> Result<Fixture> {
        let user = db.admin().users().create(&NewUser::new(&self.email, "Fixture User")?).await?.id;
        let scope = db.user(user);
        let new: Vec<NewTask> = self.tasks.iter().map(|(t, _, _)| t.clone()).collect();
        scope.tasks().create_many(&new).await?;
        let done: Vec<_> = self.tasks.iter().filter(|(_, c, _)| *c).map(|(t, _, _)| t.id).collect();
        if !done.is_empty() {
            scope.tasks().complete_many(&done).await?;
        }
        for (task, _, tags) in self.tasks.iter().filter(|(_, _, tags)| !tags.is_empty()) {
            let names = tags.iter().map(|t| TagName::parse(t)).collect::<Result<Vec<_>>>()?;
            scope.tasks().tag(task.id, &names).await?;
        }
        Ok(Fixture { user, tasks: self.tasks.iter().map(|(t, _, _)| t.id).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SeedSpec {
        SeedSpec::new(3, 50).seed(42).anchor(time::macros::datetime!(2026-01-15 0:00 UTC))
    }

    fn pass_bytes(spec: &SeedSpec, pass: Pass) -> (u64, Vec<u8>) {
        let (mut out, mut scratch) = (Encoder::new(), Encoder::new());
        let rows = (0..spec.users).map(|i| generate(spec, i, pass, &mut out, &mut scratch)).sum();
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
