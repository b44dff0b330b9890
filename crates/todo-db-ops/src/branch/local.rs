//! Local branches: a branch is a database copied from its parent with `CREATE DATABASE ...
//! TEMPLATE`. Its metadata (name, parent, creation, protection, expiry) is the database's comment,
//! so it lives and dies with the copy and needs no table of its own.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{check_name, url_with_database, Branch, CreateOptions, Provider, MAIN};
use todo_db::config::Settings;
use todo_db::db::Target;
use todo_db::error::{Error, Result};
use todo_db::schema::quote_ident;

/// Parents at least this large are copied with `STRATEGY file_copy` (a file-level copy plus two
/// checkpoints), smaller ones with `wal_log` (block by block through the WAL): see BENCHMARKS.md.
pub const FILE_COPY_FROM_BYTES: i64 = 64 * 1024 * 1024;

/// The local provider, rooted at the database `root_url` names.
pub struct Local {
    root_url: String,
    root: Target,
    settings: Settings,
    /// One connection to the server's maintenance database, opened on first use and kept.
    maintenance: tokio::sync::Mutex<Option<todo_db::db::ClientWrapper>>,
}

/// What a branch database's comment holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    todo_db_branch: String,
    parent: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    protected: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    expires_at: Option<OffsetDateTime>,
}

impl Local {
    pub fn new(root_url: &str, settings: &Settings) -> Result<Local> {
        let root = Target::parse(root_url, &settings.pool, settings.allow_insecure)?;
        Ok(Local { root_url: root_url.to_string(), root, settings: settings.clone(), maintenance: Default::default() })
    }

    /// The database a branch lives in.
    pub fn database_of(&self, name: &str) -> String {
        if name == MAIN {
            self.root.database.clone()
        } else {
            format!("{}_br_{}", self.root.database, name.replace('-', "_"))
        }
    }

    /// The maintenance connection (CREATE / DROP DATABASE run there, never on a branch).
    async fn maintenance(&self) -> Result<tokio::sync::MappedMutexGuard<'_, todo_db::db::ClientWrapper>> {
        let mut slot = self.maintenance.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            let client = self
                .root
                .with_database("postgres")
                .connect(self.settings.pool.connect_retry, self.settings.pool.connect_timeout)
                .await?;
            *slot = Some(client);
        }
        Ok(tokio::sync::MutexGuard::map(slot, |c| c.as_mut().expect("just connected")))
    }

    fn fail(&self) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
        move |e| Error::from_pg(e, &self.root.with_database("postgres").to_string())
    }

    async fn branches(&self, client: &tokio_postgres::Client) -> Result<Vec<Branch>> {
        let rows = client
            .query(
                "select datname, shobj_description(oid, 'pg_database') from pg_database \
                 where datname = $1 or shobj_description(oid, 'pg_database') like '{\"todo_db_branch\"%' order by oid",
                &[&self.root.database],
            )
            .await
            .map_err(self.fail())?;
        let mut out = Vec::new();
        for r in &rows {
            let (db, comment): (String, Option<String>) = (r.get(0), r.get(1));
            if db == self.root.database {
                out.push(Branch {
                    name: MAIN.into(),
                    parent: None,
                    location: db,
                    created_at: None,
                    protected: true,
                    expires_at: None,
                });
                continue;
            }
            let Some(meta) = comment.and_then(|c| serde_json::from_str::<Meta>(&c).ok()) else { continue };
            // Branches of another root on the same server share the naming scheme, not the root.
            if db != self.database_of(&meta.todo_db_branch) {
                continue;
            }
            out.push(Branch {
                name: meta.todo_db_branch,
                parent: Some(meta.parent),
                location: db,
                created_at: Some(meta.created_at),
                protected: meta.protected,
                expires_at: meta.expires_at,
            });
        }
        Ok(out)
    }

    async fn find(&self, client: &tokio_postgres::Client, name: &str) -> Result<Branch> {
        self.branches(client).await?.into_iter().find(|b| b.name == name).ok_or(Error::NotFound { entity: "branch" })
    }

    /// Waits for every other session on `database` to end, up to `wait`; then, with `force`,
    /// terminates them, else fails naming them.
    async fn quiesce(
        &self,
        client: &tokio_postgres::Client,
        database: &str,
        wait: Duration,
        force: bool,
    ) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let rows = client
                .query(
                    // Autovacuum workers are not counted: CREATE DATABASE stops them itself.
                    "select pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(state, '') \
                     from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() \
                     and backend_type <> 'autovacuum worker'",
                    &[&database],
                )
                .await
                .map_err(self.fail())?;
            if rows.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if force {
                    client
                        .execute(
                            "select pg_terminate_backend(pid) from pg_stat_activity \
                             where datname = $1 and pid <> pg_backend_pid()",
                            &[&database],
                        )
                        .await
                        .map_err(self.fail())?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let who: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "pid {} ({} {} {})",
                            r.get::<_, i32>(0),
                            r.get::<_, String>(1),
                            r.get::<_, String>(2),
                            r.get::<_, String>(3)
                        )
                    })
                    .collect();
                return Err(Error::validation(
                    "branch",
                    format!(
                        "{database} is in use by {} session(s): {}; they must end first (wait longer, or --force to terminate them)",
                        rows.len(),
                        who.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Copies `parent_db` to the new database `db` with the strategy its size calls for, and
    /// stamps it with `meta`. On any failure the new database is dropped again.
    async fn copy(
        &self,
        client: &tokio_postgres::Client,
        parent_db: &str,
        db: &str,
        meta: &Meta,
        options: &CreateOptions,
    ) -> Result<()> {
        self.quiesce(client, parent_db, options.wait, options.force).await?;
        copy_database(client, parent_db, db).await.map_err(self.fail())?;
        let comment = serde_json::to_string(meta).map_err(|e| Error::Internal(e.to_string()))?;
        let stamped = client
            .batch_execute(&format!("comment on database {} is {}", quote_ident(db), quote_literal(&comment)))
            .await;
        if let Err(e) = stamped {
            let _ = client.batch_execute(&format!("drop database if exists {} with (force)", quote_ident(db))).await;
            return Err(self.fail()(e));
        }
        Ok(())
    }

    async fn set_meta(&self, client: &tokio_postgres::Client, b: &Branch) -> Result<()> {
        let meta = Meta {
            todo_db_branch: b.name.clone(),
            parent: b.parent.clone().unwrap_or_default(),
            created_at: b.created_at.unwrap_or_else(OffsetDateTime::now_utc),
            protected: b.protected,
            expires_at: b.expires_at,
        };
        let comment = serde_json::to_string(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        client
            .batch_execute(&format!("comment on database {} is {}", quote_ident(&b.location), quote_literal(&comment)))
            .await
            .map_err(self.fail())
    }
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `CREATE DATABASE new TEMPLATE parent`, choosing the copy strategy by the parent's size. The
/// one mechanism behind local branches and the test suite's per-test databases.
pub async fn copy_database(
    client: &tokio_postgres::Client,
    parent: &str,
    new: &str,
) -> std::result::Result<(), tokio_postgres::Error> {
    let size: i64 = client.query_one("select pg_database_size($1::text)", &[&parent]).await?.get(0);
    let strategy = if size >= FILE_COPY_FROM_BYTES { "file_copy" } else { "wal_log" };
    client
        .batch_execute(&format!(
            "create database {} template {} strategy {strategy}",
            quote_ident(new),
            quote_ident(parent)
        ))
        .await
}

impl Provider for Local {
    async fn create(&self, name: &str, options: &CreateOptions) -> Result<Branch> {
        check_name(name)?;
        if name == MAIN {
            return Err(Error::validation("branch", "main is the root: it exists already"));
        }
        if options.at.is_some() {
            return Err(Error::validation("at", "local branches have no history: --at needs the Neon provider"));
        }
        let client = self.maintenance().await?;
        let existing = self.branches(&client).await?;
        let parent_name = options.from.clone().unwrap_or_else(|| MAIN.into());
        let parent = existing.iter().find(|b| b.name == parent_name).ok_or_else(|| {
            Error::validation("from", format!("no branch named {parent_name:?} (see `todo-db branch list`)"))
        })?;
        if existing.iter().any(|b| b.name == name) {
            return Err(Error::Conflict { field: "branch", constraint: "branch name" });
        }
        let now = OffsetDateTime::now_utc();
        let meta = Meta {
            todo_db_branch: name.into(),
            parent: parent_name.clone(),
            created_at: now,
            protected: false,
            expires_at: options.expires_in.map(|d| now + d),
        };
        let db = self.database_of(name);
        self.copy(&client, &parent.location, &db, &meta, options).await?;
        Ok(Branch {
            name: name.into(),
            parent: Some(parent_name),
            location: db,
            created_at: Some(now),
            protected: false,
            expires_at: meta.expires_at,
        })
    }

    async fn list(&self) -> Result<Vec<Branch>> {
        let client = self.maintenance().await?;
        self.branches(&client).await
    }

    async fn delete(&self, name: &str, force: bool) -> Result<()> {
        let client = self.maintenance().await?;
        let all = self.branches(&client).await?;
        let b = all.iter().find(|b| b.name == name).ok_or(Error::NotFound { entity: "branch" })?;
        if b.protected {
            return Err(Error::validation(
                "branch",
                format!("{name} is protected (`todo-db branch protect {name} --off` first)"),
            ));
        }
        let children: Vec<&str> =
            all.iter().filter(|c| c.parent.as_deref() == Some(name)).map(|c| c.name.as_str()).collect();
        if !children.is_empty() {
            return Err(Error::validation(
                "branch",
                format!("{name} has branches of its own: {}", children.join(", ")),
            ));
        }
        self.quiesce(&client, &b.location, Duration::ZERO, force).await?;
        client.batch_execute(&format!("drop database {}", quote_ident(&b.location))).await.map_err(self.fail())
    }

    async fn reset(&self, name: &str, options: &CreateOptions) -> Result<Branch> {
        let client = self.maintenance().await?;
        let all = self.branches(&client).await?;
        let b = all.iter().find(|b| b.name == name).ok_or(Error::NotFound { entity: "branch" })?.clone();
        if b.protected {
            return Err(Error::validation("branch", format!("{name} is protected: it cannot be reset")));
        }
        let parent =
            b.parent.as_deref().ok_or_else(|| Error::validation("branch", "main has no parent to reset to"))?;
        let parent = all.iter().find(|p| p.name == parent).ok_or(Error::NotFound { entity: "parent branch" })?;
        // Copy first, swap after: the branch is never missing its data for longer than two renames.
        let fresh = format!("{}_reset", b.location);
        let _ = client.batch_execute(&format!("drop database if exists {}", quote_ident(&fresh))).await;
        let meta = Meta {
            todo_db_branch: b.name.clone(),
            parent: parent.name.clone(),
            created_at: OffsetDateTime::now_utc(),
            protected: false,
            expires_at: b.expires_at,
        };
        self.copy(&client, &parent.location, &fresh, &meta, options).await?;
        if let Err(e) = self.quiesce(&client, &b.location, options.wait, options.force).await {
            let _ = client.batch_execute(&format!("drop database if exists {}", quote_ident(&fresh))).await;
            return Err(e);
        }
        let old = format!("{}_old", b.location);
        client
            .batch_execute(&format!(
                "alter database {loc} rename to {old}; alter database {fresh} rename to {loc}",
                loc = quote_ident(&b.location),
                old = quote_ident(&old),
                fresh = quote_ident(&fresh)
            ))
            .await
            .map_err(self.fail())?;
        client
            .batch_execute(&format!("drop database {} with (force)", quote_ident(&old)))
            .await
            .map_err(self.fail())?;
        self.find(&client, name).await
    }

    async fn protect(&self, name: &str, on: bool) -> Result<Branch> {
        if name == MAIN {
            return Err(Error::validation(
                "branch",
                "main is always protected from branch delete and reset; use `todo-db protect` for reset/seed",
            ));
        }
        let client = self.maintenance().await?;
        let mut b = self.find(&client, name).await?;
        b.protected = on;
        if on {
            b.expires_at = None; // a protected branch does not expire
        }
        self.set_meta(&client, &b).await?;
        Ok(b)
    }

    async fn url(&self, name: &str, _pooled: bool) -> Result<String> {
        let client = self.maintenance().await?;
        let b = self.find(&client, name).await?;
        url_with_database(&self.root_url, &b.location)
    }
}
