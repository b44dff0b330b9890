//! The fuzz targets: one function per parser of outside bytes, each asserting what must hold for
//! any input (no panic; a refusal is a typed error naming what is wrong; no secret in an error).
//! `fuzz/` runs them under libFuzzer (`cargo fuzz run NAME`); `tests/fuzz_corpus.rs` replays
//! their corpus (`fuzz/corpus/NAME/`) on every test run.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use todo_db::model::Cursor;
use todo_db::{Error, PoolSettings, Settings};
use todo_db_ops::backup::{self, Key, Manifest, TableEntry};

/// A fuzz target: its invariants, asserted for one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("database_url", database_url),
    ("settings", settings),
    ("duration", duration),
    ("cursor", cursor),
    ("backup_manifest", backup_manifest),
    ("backup_table", backup_table),
    ("encrypted_chunk", encrypted_chunk),
    ("neon_response", neon_response),
];

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The password of `raw` when it is a URL with one worth looking for in an output: long enough
/// not to appear by chance (`a` in `database`), and nowhere else in the URL (a database named like
/// the password is shown as the database).
fn password(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    let p = percent_decoded(u.password()?);
    let mut rest = u.clone();
    rest.set_password(None).ok()?;
    let elsewhere = rest.as_str().contains(p.as_str()) || percent_decoded(rest.as_str()).contains(p.as_str());
    (p.len() >= 8 && !elsewhere).then_some(p)
}

/// `%XX` sequences decoded (lossily where they are not UTF-8); everything else as it is.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn no_secret(output: &str, secret: &Option<String>, what: &str) {
    if let Some(p) = secret {
        assert!(!output.contains(p.as_str()), "{what} shows the password: {output}");
    }
}

/// A database URL: parsed into a target or refused as configuration; neither the target, the
/// error nor the redacted form shows the password.
pub fn database_url(data: &[u8]) {
    let raw = text(data);
    let secret = password(&raw);
    for insecure in [false, true] {
        match todo_db::db::Target::parse(&raw, &PoolSettings::default(), insecure) {
            Ok(t) => no_secret(&format!("{t} {t:?}"), &secret, "the target"),
            Err(e) => {
                assert!(matches!(e, Error::Config(_)), "a bad URL is a configuration error: {e:?}");
                no_secret(&e.to_string(), &secret, "the error");
            }
        }
    }
    no_secret(&todo_db::config::redact_url(&raw), &secret, "the redacted URL");
}

/// Settings from a `.env` file (and so from the environment): accepted and valid, or refused
/// naming the variable; no password of any URL among them in the error or the settings' Debug.
pub fn settings(data: &[u8]) {
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(data) {
        match item {
            Ok((k, v)) => {
                vars.insert(k, v);
            }
            Err(_) => break,
        }
    }
    // The passwords of the URL variables, unless another variable's value holds the same text
    // (a number's error names the value it was given).
    let secrets: Vec<Option<String>> = vars
        .iter()
        .filter(|(k, _)| k.ends_with("_URL"))
        .map(|(k, v)| password(v).filter(|p| !vars.iter().any(|(o, ov)| o != k && ov.contains(p.as_str()))))
        .collect();
    match Settings::from_lookup(|k| vars.get(k).cloned()) {
        Ok(s) => {
            let shown = format!("{s:?}");
            for p in &secrets {
                no_secret(&shown, p, "Settings' Debug");
            }
            if let Err(e) = s.validate() {
                assert!(matches!(e, Error::Config(_)), "{e:?}");
            }
        }
        Err(e) => {
            assert!(matches!(e, Error::Config(_) | Error::Validation { .. }), "{e:?}");
            let shown = e.to_string();
            assert!(shown.contains("TODO_DB_") || shown.contains("DATABASE_") || shown.contains("NEON_"), "{shown}");
            for p in &secrets {
                no_secret(&shown, p, "the error");
            }
        }
    }
}

/// A duration (`500ms`, `10s`, `5m`, `1h`, seconds): parsed, or refused with a reason.
pub fn duration(data: &[u8]) {
    let raw = text(data);
    match todo_db::config::parse_duration(&raw) {
        Ok(d) => assert!(d.as_secs() < u64::MAX),
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// A list cursor from a client: decoded, or refused naming the cursor.
pub fn cursor(data: &[u8]) {
    if let Err(e) = Cursor::decode(&text(data)) {
        assert!(matches!(e, Error::Validation { field: "cursor", .. }), "{e:?}");
    }
}

/// A directory of this process's for backups the targets write.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("todo-db-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Removes the scratch directories this process's targets wrote.
pub fn cleanup() {
    for name in ["manifest", "table", "encrypted"] {
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("todo-db-fuzz-{}-{name}", std::process::id())));
    }
}

/// A manifest as bytes: `backup verify` reads it, or refuses it as a damaged backup; what it
/// accepts names only files inside the backup's directory.
pub fn backup_manifest(data: &[u8]) {
    let dir = scratch("manifest");
    std::fs::write(dir.join(backup::MANIFEST), data).expect("write the manifest");
    match backup::verify(&dir, None) {
        Ok((m, damage)) => {
            for t in &m.tables {
                assert!(!t.file.contains('/') && t.file != ".." && !t.file.is_empty(), "{:?}", t.file);
            }
            // No table file exists here: each table listed is damaged.
            assert_eq!(damage.len(), m.tables.len(), "{damage:?}");
        }
        Err(e) => assert!(matches!(e, Error::Validation { .. }), "{e:?}"),
    }
}

fn manifest_for(file: &[u8], encrypted: Option<&Key>) -> Manifest {
    Manifest {
        format: backup::FORMAT,
        todo_db_version: "fuzz".into(),
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        source: "fuzz".into(),
        server_version: "15".into(),
        migrations: Vec::new(),
        audit_seal: None,
        encryption: encrypted
            .map(|k| backup::Encryption { cipher: "chacha20poly1305-stream-64k".into(), key_id: k.id() }),
        tables: vec![TableEntry {
            name: "tasks".into(),
            file: "tasks.copy.zst".into(),
            columns: vec!["id".into()],
            rows: 0,
            bytes: file.len() as u64,
            sha256: hex::encode(Sha256::digest(file)),
        }],
    }
}

/// A hostile table file, with a manifest whose size and digest match it: `backup verify` reports
/// the table damaged (it does not decompress) or accepts it, and never panics.
pub fn backup_table(data: &[u8]) {
    let dir = scratch("table");
    std::fs::write(dir.join("tasks.copy.zst"), data).expect("write the table file");
    let m = manifest_for(data, None);
    std::fs::write(dir.join(backup::MANIFEST), serde_json::to_vec(&m).expect("json")).expect("write the manifest");
    let (_, damage) = backup::verify(&dir, None).expect("the manifest is valid");
    for d in &damage {
        assert_eq!(d.table, "tasks");
        assert!(d.reason.contains("tasks.copy.zst"), "{}", d.reason);
    }
}

/// The fixed key the encrypted target opens with.
fn fuzz_key() -> Key {
    Key::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("a valid key")
}

/// An encrypted table file: the opener refuses damage, truncation and a wrong key with an error,
/// and so does `backup verify` with the key; nothing panics.
pub fn encrypted_chunk(data: &[u8]) {
    let key = fuzz_key();
    if let Ok(mut opener) = backup::Opener::new(data, &key, "tasks") {
        let mut out = Vec::new();
        let _ = opener.by_ref().take(1 << 24).read_to_end(&mut out);
    }
    let dir = scratch("encrypted");
    std::fs::write(dir.join("tasks.copy.zst"), data).expect("write the table file");
    let m = manifest_for(data, Some(&key));
    std::fs::write(dir.join(backup::MANIFEST), serde_json::to_vec(&m).expect("json")).expect("write the manifest");
    let (_, damage) = backup::verify(&dir, Some(&key)).expect("the manifest is valid");
    assert!(damage.len() <= 1);
}

/// A Neon API answer: the first two bytes are the HTTP status, the rest the body. A success is
/// JSON or nothing; every failure a typed error; a branch or a list of branches parsed or refused.
pub fn neon_response(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (100 + u16::from_be_bytes([*a, *b]) % 500, rest),
        _ => (200, data),
    };
    let body = text(body);
    match todo_db_ops::neon::answer(status, &body, 1) {
        Ok(v) => {
            let _ = todo_db_ops::neon::branch_of(&v);
            let _ = todo_db_ops::neon::branches_of(&v);
        }
        Err(e) => {
            assert!(!(200..300).contains(&status));
            assert!(e.to_string().chars().count() < 400, "the API's message is cut: {e}");
        }
    }
}
