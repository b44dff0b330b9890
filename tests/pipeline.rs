//! The driver crate's own addition (vendor/tokio-postgres, `Client::pipeline`), tested directly on
//! a connection: several statements and one Sync, run by the server as one implicit transaction;
//! an error in the middle rolls back everything before it and leaves the connection usable; a
//! pipeline dropped in flight runs whole or not at all (never half) and leaves the connection
//! usable.

use todo_db_testkit::harness as common;

use std::time::Duration;

use common::TestDb;
use tokio_postgres::types::Type;
use tokio_postgres::PipelineStatement;

async fn scratch(t: &TestDb) -> todo_db::db::Conn {
    let conn = t.db.admin().connection().await.unwrap();
    conn.batch_execute("create table pipe (n int primary key)").await.unwrap();
    conn
}

async fn count(conn: &todo_db::db::Conn) -> i64 {
    conn.query_one("select count(*) from pipe", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_pipeline_runs_its_statements_as_one_transaction_and_answers_each() {
    let t = TestDb::new().await;
    let conn = scratch(&t).await;
    let insert = conn.prepare("insert into pipe values ($1) returning n").await.unwrap();
    let txid = conn.prepare("select txid_current()").await.unwrap();
    let (one, two) = (1i32, 2i32);
    let rows = conn
        .pipeline(&[
            (PipelineStatement::Prepared(&insert), &[&one]),
            (PipelineStatement::Prepared(&txid), &[]),
            (PipelineStatement::Unnamed("insert into pipe values ($1) returning n", &[Type::INT4]), &[&two]),
            (PipelineStatement::Prepared(&txid), &[]),
        ])
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "one answer per statement");
    assert_eq!(rows[0][0].get::<_, i32>(0), 1);
    assert_eq!(rows[2][0].get::<_, i32>(0), 2);
    assert_eq!(rows[1][0].get::<_, i64>(0), rows[3][0].get::<_, i64>(0), "one transaction");
    assert_eq!(count(&conn).await, 2, "committed at the Sync");
    // The next transaction is a new one.
    let next: i64 = conn.query_one(&txid, &[]).await.unwrap().get(0);
    assert_ne!(next, rows[1][0].get::<_, i64>(0));
}

#[tokio::test]
async fn an_error_in_the_middle_rolls_back_the_whole_pipeline_and_the_connection_goes_on() {
    let t = TestDb::new().await;
    let conn = scratch(&t).await;
    let insert = conn.prepare("insert into pipe values ($1)").await.unwrap();
    let (one, dup, three) = (1i32, 1i32, 3i32);
    let err = conn
        .pipeline(&[
            (PipelineStatement::Prepared(&insert), &[&one]),
            (PipelineStatement::Prepared(&insert), &[&dup]), // unique violation
            (PipelineStatement::Prepared(&insert), &[&three]),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err}");
    assert_eq!(count(&conn).await, 0, "the statement before the error is rolled back too");
    let in_tx: String = conn
        .query_one("select coalesce(state, '') from pg_stat_activity where pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_tx, "active", "not left inside a failed transaction");
    // The same statements again, without the duplicate: the connection is in sync.
    conn.pipeline(&[
        (PipelineStatement::Prepared(&insert), &[&one]),
        (PipelineStatement::Prepared(&insert), &[&three]),
    ])
    .await
    .unwrap();
    assert_eq!(count(&conn).await, 2);
}

#[tokio::test]
async fn a_pipeline_dropped_in_flight_runs_whole_never_half_and_the_connection_goes_on() {
    let t = TestDb::new().await;
    let conn = scratch(&t).await;
    let insert = conn.prepare("insert into pipe values ($1)").await.unwrap();
    let sleep = conn.prepare("select pg_sleep(0.5)").await.unwrap();
    let one = 1i32;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&one];
    let statements =
        [(PipelineStatement::Prepared(&insert), &params[..]), (PipelineStatement::Prepared(&sleep), &[][..])];
    let flight = conn.pipeline(&statements);
    assert!(tokio::time::timeout(Duration::from_millis(100), flight).await.is_err(), "cancelled mid-flight");
    // The server still finishes the pipeline (the request was sent whole); the connection reads
    // past its answers before answering the next request, which sees the pipeline's outcome and
    // nothing half-done.
    let two = 2i32;
    conn.pipeline(&[(PipelineStatement::Prepared(&insert), &[&two])]).await.unwrap();
    let rows: Vec<i32> =
        conn.query("select n from pipe order by n", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(rows == vec![1, 2], "the dropped pipeline ran whole, once, before the next: {rows:?}");
}
