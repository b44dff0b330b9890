//! Several statements sent as one pipeline that ends in a single Sync.
//!
//! The server runs everything before a Sync as one implicit transaction (committed at the Sync
//! if every statement succeeded, rolled back if one failed) and flushes its answers once, at the
//! Sync. Sending one Sync per statement, as `query` does, makes the server flush (and, over TLS,
//! encrypt and send) once per statement.

use crate::client::InnerClient;
use crate::codec::FrontendMessage;
use crate::connection::RequestMessages;
use crate::prepare::get_type;
use crate::query::{encode_bind, encode_bind_raw};
use crate::types::{ToSql, Type};
use crate::{Column, Error, Row, Statement};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{DataRowBody, Message};
use postgres_protocol::message::frontend;
use std::sync::Arc;

/// One statement of a pipeline.
pub enum PipelineStatement<'a> {
    /// A statement prepared on this connection: Bind and Execute.
    Prepared(&'a Statement),
    /// An unnamed statement with the declared type of each parameter: Parse, Bind, Describe and
    /// Execute, leaving nothing behind on the server (for transaction-mode poolers).
    Unnamed(&'a str, &'a [Type]),
}

/// A result column as RowDescription gives it: name, table oid, column number, type modifier, type oid.
type Field = (String, Option<u32>, Option<i16>, i32, u32);

enum Answer {
    Prepared(Statement, Vec<DataRowBody>),
    Unnamed(Vec<Field>, Vec<DataRowBody>),
}

pub(crate) async fn pipeline(
    client: &Arc<InnerClient>,
    statements: &[(PipelineStatement<'_>, &[&(dyn ToSql + Sync)])],
) -> Result<Vec<Vec<Row>>, Error> {
    let buf = client.with_buf(|buf| {
        for (statement, params) in statements {
            match statement {
                PipelineStatement::Prepared(st) => {
                    encode_bind(st, params.iter().copied(), "", buf)?
                }
                PipelineStatement::Unnamed(sql, types) => {
                    if types.len() != params.len() {
                        return Err(Error::parameters(params.len(), types.len()));
                    }
                    frontend::parse("", sql, types.iter().map(Type::oid), buf)
                        .map_err(Error::encode)?;
                    encode_bind_raw(
                        "",
                        params.iter().copied().zip(types.iter().cloned()),
                        "",
                        buf,
                    )?;
                    frontend::describe(b'P', "", buf).map_err(Error::encode)?;
                }
            }
            frontend::execute("", 0, buf).map_err(Error::encode)?;
        }
        frontend::sync(buf);
        Ok(buf.split().freeze())
    })?;
    let mut responses = client.send(RequestMessages::Single(FrontendMessage::Raw(buf)))?;

    // Every answer is read before any column type is looked up: a type lookup is a query of its
    // own, answered only after this pipeline's Sync.
    let mut answers = Vec::with_capacity(statements.len());
    for (statement, _) in statements {
        let unnamed = matches!(statement, PipelineStatement::Unnamed(..));
        if unnamed {
            expect(responses.next().await?, |m| {
                matches!(m, Message::ParseComplete)
            })?;
        }
        expect(responses.next().await?, |m| {
            matches!(m, Message::BindComplete)
        })?;
        let mut columns = Vec::new();
        if unnamed {
            match responses.next().await? {
                Message::NoData => {}
                Message::RowDescription(description) => {
                    let mut fields = description.fields();
                    while let Some(f) = fields.next().map_err(Error::parse)? {
                        columns.push((
                            f.name().to_string(),
                            Some(f.table_oid()).filter(|n| *n != 0),
                            Some(f.column_id()).filter(|n| *n != 0),
                            f.type_modifier(),
                            f.type_oid(),
                        ));
                    }
                }
                _ => return Err(Error::unexpected_message()),
            }
        }
        let mut rows = Vec::new();
        loop {
            match responses.next().await? {
                Message::DataRow(body) => rows.push(body),
                Message::CommandComplete(_) | Message::EmptyQueryResponse => break,
                _ => return Err(Error::unexpected_message()),
            }
        }
        answers.push(match statement {
            PipelineStatement::Prepared(st) => Answer::Prepared((*st).clone(), rows),
            PipelineStatement::Unnamed(..) => Answer::Unnamed(columns, rows),
        });
    }
    // The commit happens at the Sync: an error there (a deferred constraint, a serialization
    // failure) comes before ReadyForQuery and means nothing was written.
    expect(responses.next().await?, |m| {
        matches!(m, Message::ReadyForQuery(_))
    })?;

    let mut out = Vec::with_capacity(answers.len());
    for answer in answers {
        let (statement, rows) = match answer {
            Answer::Prepared(st, rows) => (st, rows),
            Answer::Unnamed(fields, rows) => {
                let mut columns = Vec::with_capacity(fields.len());
                for (name, table_oid, column_id, type_modifier, oid) in fields {
                    let r#type = get_type(client, oid).await?;
                    columns.push(Column {
                        name,
                        table_oid,
                        column_id,
                        type_modifier,
                        r#type,
                    });
                }
                (Statement::unnamed(Vec::new(), columns), rows)
            }
        };
        out.push(
            rows.into_iter()
                .map(|body| Row::new(statement.clone(), body))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(out)
}

fn expect(message: Message, want: impl Fn(&Message) -> bool) -> Result<(), Error> {
    if want(&message) {
        Ok(())
    } else {
        Err(Error::unexpected_message())
    }
}
