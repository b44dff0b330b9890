//! Connection target parsing, connecting with retry, and the pool's connection manager.

use std::str::FromStr;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rand::Rng;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::client::ClientWrapper;
use super::tls::{self, SslMode, TlsOptions};
use crate::config::PoolSettings;
use tokio_postgres::error::SqlState;

use crate::error::{error_chain, is_state, Error, Result};

/// Where a connection goes, parsed from a URL. `Display` is `host:port/database`: safe to log.
#[derive(Clone)]
pub struct Target {
    pub(crate) pg: tokio_postgres::Config,
    pub tls: TlsOptions,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.database)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self}, user={}, sslmode={})", self.user, self.tls.mode.as_str())
    }
}

impl Target {
    /// Parses a `postgres://` / `postgresql://` URL. `sslmode` and `sslrootcert` are taken out and
    /// handled by todo-db's TLS layer; every other parameter goes to the driver.
    pub fn parse(raw: &str, pool: &PoolSettings, allow_insecure: bool) -> Result<Self> {
        let mut url = url::Url::parse(raw).map_err(|e| {
            Error::Config(format!(
                "DATABASE_URL is not a valid URL ({e}); expected postgresql://user:password@host:port/database"
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Config(format!(
                "DATABASE_URL scheme {:?} is not postgres:// or postgresql://",
                url.scheme()
            )));
        }
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => mode = SslMode::parse(&v)?,
                "sslrootcert" => root_cert = Some(std::path::PathBuf::from(v.as_ref())),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        url.set_query(None);
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
        let mut pg = tokio_postgres::Config::from_str(url.as_str())
            .map_err(|e| Error::Config(format!("DATABASE_URL could not be read by the driver: {e}")))?;
        pg.ssl_mode(mode.driver_mode());
        pg.connect_timeout(pool.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(pool.keepalive_idle);
        pg.keepalives_interval(Duration::from_secs(10));
        pg.keepalives_retries(3);
        if pg.get_application_name().is_none() {
            pg.application_name("todo-db");
        }
        let host = match pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let user = pg.get_user().unwrap_or("").to_string();
        if user.is_empty() {
            return Err(Error::Config("DATABASE_URL names no user (postgresql://USER:password@host/db)".into()));
        }
        let database = pg.get_dbname().unwrap_or(&user).to_string();
        let local = is_local_host(&host);
        if mode == SslMode::Disable && !local && !allow_insecure {
            return Err(Error::Config(format!(
                "sslmode=disable to {host} would send credentials and data unencrypted; use sslmode=require \
                 (or verify-full), or set TODO_DB_ALLOW_INSECURE=1 if the network is trusted"
            )));
        }
        Ok(Target { pg, tls: TlsOptions { mode, root_cert }, host, port, database, user })
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Target {
        let mut t = self.clone();
        t.pg.dbname(database);
        t.database = database.to_string();
        t
    }

    /// Opens one connection, retrying transient failures with exponential backoff and jitter
    /// until `retry_for` has passed (a suspended Neon compute takes a moment to wake).
    pub async fn connect(&self, retry_for: Duration, connect_timeout: Duration) -> Result<ClientWrapper> {
        let tls = MakeRustlsConnect::new(tls::client_config(&self.tls)?);
        let deadline = Instant::now() + retry_for;
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1u32;
        loop {
            let outcome = tokio::time::timeout(connect_timeout, self.pg.connect(tls.clone())).await;
            let err = match outcome {
                Ok(Ok((client, connection))) => {
                    let target = self.to_string();
                    let named = target.clone();
                    let task = tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(target = %named, error = %e, "connection closed with an error");
                        }
                    });
                    return Ok(ClientWrapper::new(client, task, target));
                }
                Ok(Err(e)) => self.connect_error(e),
                Err(_) => Error::Unavailable {
                    target: self.to_string(),
                    reason: format!("no answer within the connect timeout of {connect_timeout:?}"),
                    source: None,
                },
            };
            let transient = match &err {
                Error::Unavailable { .. } => true,
                Error::Database { code, .. } => is_state(
                    code,
                    &[
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::TOO_MANY_CONNECTIONS,
                        SqlState::CONNECTION_FAILURE,
                        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                    ],
                ),
                _ => false,
            };
            let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=delay.as_millis() as u64 / 2));
            if !transient || Instant::now() + delay + jitter > deadline {
                return Err(err);
            }
            tracing::warn!(target = %self, attempt, error = %err, retry_in = ?(delay + jitter), "connect failed; retrying");
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> Error {
        let text = error_chain(&e);
        if text.contains("did not use channel binding") {
            return Error::Config(format!(
                "the server at {self} did not use channel binding, which the URL's channel_binding=require \
                 demands: binding needs TLS (sslmode=require or stricter, sslmode={} here) and SCRAM password \
                 authentication end to end (a pooler or proxy that ends TLS itself cannot bind); use \
                 channel_binding=prefer where the server cannot bind",
                self.tls.mode.as_str()
            ));
        }
        if text.contains("TLS") || text.contains("certificate") || text.contains("tls") {
            let root =
                self.tls.root_cert.as_ref().map(|p| format!(", sslrootcert={}", p.display())).unwrap_or_default();
            return Error::Config(format!("TLS to {self} failed (sslmode={}{root}): {text}", self.tls.mode.as_str()));
        }
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            // Class 28: invalid authorization specification (a wrong password, say).
            if code.starts_with(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION.code()[..2]) {
                return Error::Config(format!(
                    "the server at {self} refused login for user {:?}: {}",
                    self.user,
                    db.message()
                ));
            }
            if code == SqlState::INVALID_CATALOG_NAME.code() {
                return Error::Config(format!(
                    "database {:?} does not exist on {}:{} (run `todo-db init`)",
                    self.database, self.host, self.port
                ));
            }
        }
        Error::from_pg(e, &self.to_string())
    }
}

pub fn is_local_host(host: &str) -> bool {
    host == "localhost" || host.starts_with('/') || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Creates and recycles pooled connections.
pub struct Manager {
    pub(crate) target: Target,
    pub(crate) settings: PoolSettings,
}

impl managed::Manager for Manager {
    type Type = ClientWrapper;
    type Error = Error;

    async fn create(&self) -> Result<ClientWrapper> {
        self.target.connect(self.settings.connect_retry, self.settings.connect_timeout).await
    }

    /// Checks a connection before it is handed out again: closed or too old connections are
    /// dropped; one idle for longer than `idle_check_after` is pinged (an empty query, one round
    /// trip), the others are handed out without touching the network.
    async fn recycle(&self, client: &mut ClientWrapper, metrics: &Metrics) -> RecycleResult<Error> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if metrics.age() > self.settings.max_lifetime {
            return Err(RecycleError::message("connection reached its maximum lifetime"));
        }
        if metrics.last_used() > self.settings.idle_check_after {
            client
                .simple_query("")
                .await
                .map_err(|e| RecycleError::Backend(Error::from_pg(e, &self.target.to_string())))?;
        }
        Ok(())
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Conn = managed::Object<Manager>;
