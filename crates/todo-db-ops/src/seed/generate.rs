//! The generator: one user's rows for each pass, deterministic from the seed, written as binary COPY.

use bytes::{BufMut, BytesMut};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    Users,
    Tags,
    Tasks,
    TaskTags,
}

/// Generates user `i` and writes the rows of `pass` to `out`; returns how many. The random stream
/// is consumed identically in every pass (what a pass does not write goes to `scratch`), so the
/// passes agree on every id.
pub(super) fn generate(spec: &SeedSpec, i: u64, pass: Pass, out: &mut Encoder, scratch: &mut Encoder) -> u64 {
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
        w.row(11);
        w.uuid(id);
        w.uuid(user_id);
        w.text_with(|b| title(&mut rng, b));
        w.text_with(|b| description(&mut rng, b));
        w.text(priority);
        // Done exactly when completed; open tasks spread over the other statuses by position,
        // drawing nothing from the random stream (so the passes stay in step).
        w.text(match completed_at {
            Some(_) => "done",
            None => ["todo", "todo", "in_progress", "review", "blocked"][(id.as_u128() % 5) as usize],
        });
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

pub(super) const MINUTE: i64 = 60_000_000;
pub(super) const HOUR: i64 = 60 * MINUTE;
pub(super) const DAY: i64 = 24 * HOUR;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub(super) const PG_EPOCH: i64 = 946_684_800_000_000;

pub(super) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub(super) fn title(rng: &mut Rng, b: &mut BytesMut) {
    b.put_slice(rng.pick(VERBS).as_bytes());
    b.put_u8(b' ');
    b.put_slice(rng.pick(OBJECTS).as_bytes());
    if rng.below(10) < 3 {
        b.put_slice(b" #");
        b.put_slice(itoa(rng.below(100), &mut [0; 20]));
    }
}

/// Empty for about a third; otherwise one to a few sentences, now and then many.
pub(super) fn description(rng: &mut Rng, b: &mut BytesMut) {
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

pub(super) fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
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
pub(super) struct Encoder {
    pub(super) buf: BytesMut,
}

impl Encoder {
    pub(super) fn new() -> Self {
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
pub(super) struct Rng(u64);

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

pub(super) const FIRST_NAMES: &[&str] = &[
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
pub(super) const LAST_NAMES: &[&str] = &[
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
pub(super) const TAG_NAMES: &[&str] = &[
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
pub(super) const COLORS: &[&str] =
    &["#e11d48", "#f97316", "#eab308", "#22c55e", "#06b6d4", "#3b82f6", "#8b5cf6", "#64748b"];
pub(super) const VERBS: &[&str] = &[
    "Call", "Email", "Review", "Buy", "Fix", "Plan", "Book", "Renew", "Write", "Read", "Clean", "Organise", "Pay",
    "Schedule", "Prepare", "Update", "Cancel", "Return", "Order", "Draft", "Check", "Finish",
];
pub(super) const OBJECTS: &[&str] = &[
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
pub(super) const SENTENCES: &[&str] = &[
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
