//! The SHA-256 seal chain over the log: sealing, retention (prune) and verification.

use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::db::{Conn, Db};
use crate::error::{Error, Result};

/// A seal: the SHA-256 chain over a range of entries.
#[derive(Debug, Clone, Serialize)]
pub struct Seal {
    pub id: i64,
    pub from_id: i64,
    pub upto_id: i64,
    pub entries: i64,
    pub digest: String,
    pub prev_digest: String,
}

/// The per-entry digest, over every column, in a form that does not depend on session settings.
pub(super) const ENTRY_DIGEST: &str = "sha256(convert_to(concat_ws(chr(31), id::text, \
     (extract(epoch from at) * 1000000)::bigint::text, txid::text, table_name, coalesce(record_id::text, '\\N'), \
     coalesce(user_id::text, '\\N'), op, coalesce(old::text, '\\N'), coalesce(new::text, '\\N'), \
     coalesce(changed::text, '\\N'), actor, coalesce(request_id, '\\N'), coalesce(reason, '\\N')), 'UTF8'))";

pub(super) const GENESIS: [u8; 32] = [0; 32];

pub(super) fn chain(prev: &[u8], entry_digests: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(entry_digests);
    h.finalize().to_vec()
}

/// Seals every entry written since the last seal. Writers never wait: the sealer takes a
/// snapshot, waits (up to `wait`) for the transactions that were running then to finish, so that
/// no entry can still appear below the range's end, and chains what it reads.
pub async fn seal(db: &Db, wait: Duration) -> Result<Option<Seal>> {
    let admin = db.admin();
    let row =
        admin.query("select pg_current_snapshot()::text, coalesce((select max(id) from audit.log), 0)", &[]).await?;
    let (snapshot, upto): (String, i64) = (row[0].get(0), row[0].get(1));
    let deadline = Instant::now() + wait;
    loop {
        let done: bool = admin
            .query(
                "select coalesce(bool_and(pg_xact_status(x) is distinct from 'in progress'), true) \
                 from pg_snapshot_xip($1::text::pg_snapshot) x",
                &[&snapshot],
            )
            .await?[0]
            .get(0);
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Unavailable {
                target: db.target().to_string(),
                reason: format!("transactions older than the seal were still running after {wait:?}; try again"),
                source: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    admin.with_connection(async |conn| seal_upto(conn, db, upto).await).await
}

/// Chains the entries after the last seal up to `upto` and stores the seal.
pub(super) async fn seal_upto(conn: &mut Conn, db: &Db, upto: i64) -> Result<Option<Seal>> {
    let pg = |e| db.map_err(e);
    let tx = conn.transaction().await.map_err(pg)?;
    tx.execute("select pg_advisory_xact_lock(7402001)", &[]).await.map_err(pg)?;
    let last =
        tx.query_opt("select upto_id, digest from audit.seal order by id desc limit 1", &[]).await.map_err(pg)?;
    let (last_upto, prev): (i64, Vec<u8>) = last.map(|r| (r.get(0), r.get(1))).unwrap_or((0, GENESIS.to_vec()));
    if upto <= last_upto {
        return Ok(None);
    }
    let rows = tx
        .query(
            &format!("select id, {ENTRY_DIGEST} from audit.log where id > $1 and id <= $2 order by id"),
            &[&last_upto, &upto],
        )
        .await
        .map_err(pg)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let digests: Vec<u8> = rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(1)).collect();
    let digest = chain(&prev, &digests);
    let id: i64 = tx
        .query_one(
            "insert into audit.seal (from_id, upto_id, entries, entry_ids, entry_digests, prev_digest, digest) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
            &[&(last_upto + 1), &upto, &(ids.len() as i64), &ids, &digests, &prev, &digest],
        )
        .await
        .map_err(pg)?
        .get(0);
    tx.commit().await.map_err(pg)?;
    Ok(Some(Seal {
        id,
        from_id: last_upto + 1,
        upto_id: upto,
        entries: ids.len() as i64,
        digest: hex::encode(&digest),
        prev_digest: hex::encode(&prev),
    }))
}

/// What a prune removed.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// Entries with an id up to and including this were removed (0: none).
    pub through_id: i64,
    pub removed: i64,
}

/// Removes entries older than `before`, but only whole sealed ranges: the boundary is the end of
/// the last seal whose every entry is older than `before`. The prune is recorded in
/// `audit.prune`, and `verify` keeps checking the seal chain across the removed range.
pub async fn prune(db: &Db, before: OffsetDateTime) -> Result<Pruned> {
    db.admin().with_connection(async |conn| prune_on(conn, db, before).await).await
}

pub(super) async fn prune_on(conn: &mut Conn, db: &Db, before: OffsetDateTime) -> Result<Pruned> {
    let pg = |e| db.map_err(e);
    let tx = conn.transaction().await.map_err(pg)?;
    tx.execute("select pg_advisory_xact_lock(7402001)", &[]).await.map_err(pg)?;
    let through: i64 = tx
        .query_one(
            "select coalesce(max(s.upto_id), 0) from audit.seal s \
             where not exists (select 1 from audit.log l where l.id <= s.upto_id and l.at >= $1)",
            &[&before],
        )
        .await
        .map_err(pg)?
        .get(0);
    let already: i64 =
        tx.query_one("select coalesce(max(through_id), 0) from audit.prune", &[]).await.map_err(pg)?.get(0);
    if through <= already {
        return Ok(Pruned { through_id: already, removed: 0 });
    }
    tx.batch_execute("set local audit.allow_prune = on").await.map_err(pg)?;
    let removed = tx.execute("delete from audit.log where id <= $1", &[&through]).await.map_err(pg)? as i64;
    tx.execute(
        "insert into audit.prune (through_id, removed, actor) values ($1, $2, session_user)",
        &[&through, &removed],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(Pruned { through_id: through, removed })
}

/// What `verify` found wrong first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Tamper {
    /// The entry's content differs from what was sealed.
    Altered { entry: i64, seal: i64 },
    /// A sealed entry is missing.
    Removed { entry: i64, seal: i64 },
    /// An entry inside a sealed range that the seal does not list.
    Inserted { entry: i64, seal: i64 },
    /// The seal row itself was changed, or the chain of seals is broken.
    Seal { seal: i64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub seals: i64,
    pub sealed_entries: i64,
    /// Entries after the last seal (not yet covered).
    pub unsealed_entries: i64,
    pub first_problem: Option<Tamper>,
}

/// Recomputes every seal's chain and compares it with the log, naming the first entry that was
/// altered, removed or inserted.
pub async fn verify(db: &Db) -> Result<VerifyReport> {
    let admin = db.admin();
    let seals = admin
        .query(
            "select id, from_id, upto_id, entry_ids, entry_digests, prev_digest, digest from audit.seal order by id",
            &[],
        )
        .await?;
    let pruned_through: i64 = admin.query("select coalesce(max(through_id), 0) from audit.prune", &[]).await?[0].get(0);
    let mut prev = GENESIS.to_vec();
    let mut sealed = 0i64;
    let mut last_upto = 0i64;
    let mut problem = None;
    for s in &seals {
        let (id, from_id, upto_id): (i64, i64, i64) = (s.get(0), s.get(1), s.get(2));
        let ids: Vec<i64> = s.get(3);
        let digests: Vec<u8> = s.get(4);
        let (prev_digest, digest): (Vec<u8>, Vec<u8>) = (s.get(5), s.get(6));
        if prev_digest != prev
            || chain(&prev, &digests) != digest
            || digests.len() != ids.len() * 32
            || from_id != last_upto + 1
        {
            problem = Some(Tamper::Seal { seal: id });
            break;
        }
        // Entries pruned by retention are gone by design; the seal chain above still covers them.
        let from_checked = from_id.max(pruned_through + 1);
        let rows = admin
            .query(
                &format!("select id, {ENTRY_DIGEST} from audit.log where id >= $1 and id <= $2 order by id"),
                &[&from_checked, &upto_id],
            )
            .await?;
        let mut expected = ids.iter().zip(digests.chunks(32)).filter(|(id, _)| **id >= from_checked).peekable();
        let mut actual = rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))).peekable();
        loop {
            match (expected.peek(), actual.peek()) {
                (None, None) => break,
                (Some((&e, _)), None) => {
                    problem = Some(Tamper::Removed { entry: e, seal: id });
                }
                (None, Some((a, _))) => {
                    problem = Some(Tamper::Inserted { entry: *a, seal: id });
                }
                (Some((&e, ed)), Some((a, ad))) => {
                    if e < *a {
                        problem = Some(Tamper::Removed { entry: e, seal: id });
                    } else if *a < e {
                        problem = Some(Tamper::Inserted { entry: *a, seal: id });
                    } else if *ed != ad.as_slice() {
                        problem = Some(Tamper::Altered { entry: e, seal: id });
                    } else {
                        expected.next();
                        actual.next();
                        continue;
                    }
                }
            }
            break;
        }
        if problem.is_some() {
            break;
        }
        sealed += ids.len() as i64;
        prev = digest;
        last_upto = upto_id;
    }
    let unsealed: i64 = admin.query("select count(*) from audit.log where id > $1", &[&last_upto]).await?[0].get(0);
    Ok(VerifyReport {
        ok: problem.is_none(),
        seals: seals.len() as i64,
        sealed_entries: sealed,
        unsealed_entries: unsealed,
        first_problem: problem,
    })
}
