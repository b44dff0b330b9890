//! A new cluster's logins and TLS certificates.

use todo_db::error::{Error, Result};

use super::*;

/// The SQL, run by the cluster's superuser, that makes `login` as Neon makes `neondb_owner`:
/// LOGIN, CREATEDB, CREATEROLE, BYPASSRLS, a member of the NOLOGIN `neon_superuser`. Idempotent.
/// Holds the password: send it, never log it.
pub(super) fn owner_login_sql(login: &str, password: &str) -> Result<String> {
    todo_db::schema::plain_identifier(login)?;
    let password = password.replace('\'', "''");
    Ok(format!(
        r#"do $$
begin
    if not exists (select 1 from pg_roles where rolname = '{NEON_SUPERUSER}') then
        create role {NEON_SUPERUSER} nologin createdb createrole bypassrls replication;
    end if;
    if not exists (select 1 from pg_roles where rolname = '{login}') then
        create role {login} login;
    end if;
end
$$;
alter role {login} login nosuperuser createdb createrole bypassrls inherit password '{password}';
grant {NEON_SUPERUSER} to {login};
"#
    ))
}

/// Runs `sql` (several statements) on its own connection to `url`, from any thread: a runtime of
/// its own on a thread of its own, so it works inside and outside an async context.
pub(super) fn run_sql(url: &str, sql: &str) -> Result<()> {
    let target = todo_db::db::Target::parse(url, &todo_db::config::PoolSettings::default(), false)?;
    let sql = sql.to_string();
    std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Local(format!("cannot start a runtime: {e}")))?;
        rt.block_on(async {
            let client = target.connect(std::time::Duration::from_secs(10), std::time::Duration::from_secs(10)).await?;
            client.batch_execute(&sql).await.map_err(|e| Error::from_pg(e, &target.to_string()))
        })
    })
    .join()
    .map_err(|_| Error::Local("the SQL thread panicked".into()))?
}

/// A private CA, and a server certificate it signs for localhost and 127.0.0.1.
pub(super) fn certificates() -> Result<(String, String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let e = |e: rcgen::Error| Error::Local(format!("cannot create TLS certificates: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "todo-db local CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(e)?;
    server.distinguished_name.push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().map_err(e)?;
    let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}
