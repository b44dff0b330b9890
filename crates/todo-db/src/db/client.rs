//! A pooled connection: the driver's client, the task that drives its connection (stopped when
//! the client is dropped), and the statements prepared on it.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::RwLock;

use tokio::task::JoinHandle;
use tokio_postgres::Statement;

/// One connection to PostgreSQL, as the pool holds it. Derefs to the driver's client.
pub struct ClientWrapper {
    client: tokio_postgres::Client,
    connection: JoinHandle<()>,
    /// The statements prepared on this connection, by their SQL.
    statements: RwLock<HashMap<String, Statement>>,
    /// `host:port/database`, for errors.
    target: String,
}

impl ClientWrapper {
    /// `client`, whose connection `connection` drives, connected to `target` (`host:port/database`).
    pub fn new(client: tokio_postgres::Client, connection: JoinHandle<()>, target: String) -> Self {
        ClientWrapper { client, connection, statements: RwLock::new(HashMap::new()), target }
    }

    /// The server and database this connection reaches, as `host:port/database`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A driver error on this connection, classified, naming its target.
    pub fn map_err(&self, e: tokio_postgres::Error) -> crate::Error {
        crate::Error::from_pg(e, &self.target)
    }

    /// The statement for `sql`, prepared on this connection the first time it is asked for.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let cached = self.statements.read().unwrap_or_else(|e| e.into_inner()).get(sql).cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.write().unwrap_or_else(|e| e.into_inner()).insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl Deref for ClientWrapper {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl DerefMut for ClientWrapper {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

impl Drop for ClientWrapper {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
