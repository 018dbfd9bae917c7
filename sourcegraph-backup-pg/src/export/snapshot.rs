//! One instant for every connection: the leader exports its snapshot, workers adopt it.

use std::time::Duration;

use tokio_postgres::Client;

use crate::connection::PgConnectionConfig;
use crate::error::PgError;
use crate::export::names::sql_literal;
use crate::schema::TableInfo;

fn query_err(context: &str) -> impl Fn(tokio_postgres::Error) -> PgError + '_ {
    move |source| PgError::Query {
        context: context.to_owned(),
        source,
    }
}

/// Session settings of every export connection: no statement timeout, and a lock timeout so
/// that a table locked by a concurrent `DROP`/`ALTER` fails the backup instead of hanging it
/// (size functions and the deparsers take `ACCESS SHARE` locks too).
pub(crate) async fn session_setup(client: &Client, lock_timeout: Duration) -> Result<(), PgError> {
    let ms = lock_timeout.as_millis().max(1);
    client
        .batch_execute(&format!(
            "SET lock_timeout = {ms}; SET statement_timeout = 0; \
             SET idle_in_transaction_session_timeout = 0"
        ))
        .await
        .map_err(query_err("setting up the export session"))
}

/// Opens the leader's `REPEATABLE READ READ ONLY` transaction and returns its exported
/// snapshot id. `row_security = off` makes a role that RLS would filter fail loudly instead of
/// dumping a partial table.
pub(crate) async fn begin_leader(client: &Client) -> Result<String, PgError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL row_security = off")
        .await
        .map_err(query_err("opening the snapshot transaction"))?;
    let row = client
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .map_err(query_err("exporting the snapshot"))?;
    row.try_get(0).map_err(query_err("reading the snapshot id"))
}

/// Takes `ACCESS SHARE` locks on every dumped table, one statement per table so a failure
/// names it. A concurrent `DROP`/`ALTER` then waits for the backup, or the backup fails here.
pub(crate) async fn lock_tables(client: &Client, tables: &[TableInfo]) -> Result<(), PgError> {
    for t in tables {
        client
            .batch_execute(&format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE",
                t.qualified_name
            ))
            .await
            .map_err(|source| PgError::Lock {
                table: t.qualified_name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Connects a worker and makes it see the leader's snapshot.
/// A worker's `COPY` waits for its table's lock at most `lock_timeout`: a `DROP` queued
/// behind the leader's lock would otherwise block it forever (as in pg_dump's workers).
pub(crate) async fn worker(
    config: &PgConnectionConfig,
    snapshot: &str,
    lock_timeout: Duration,
) -> Result<Client, PgError> {
    let client = config.connect().await?;
    session_setup(&client, lock_timeout).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET TRANSACTION SNAPSHOT {}; \
             SET LOCAL row_security = off",
            sql_literal(snapshot)
        ))
        .await
        .map_err(query_err("adopting the leader's snapshot in a worker"))?;
    Ok(client)
}

/// `pg_relation_size` (main fork) of each table, in the snapshot, and the block size.
pub(crate) async fn relation_sizes(
    client: &Client,
    tables: &[TableInfo],
) -> Result<(Vec<i64>, i64), PgError> {
    let names: Vec<&str> = tables.iter().map(|t| t.qualified_name.as_str()).collect();
    let rows = client
        .query(
            "SELECT pg_catalog.pg_relation_size(n::regclass) \
             FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY i",
            &[&names],
        )
        .await
        .map_err(query_err("reading table sizes"))?;
    let sizes = rows
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(query_err("reading table sizes"))?;
    let block: String = client
        .query_one("SELECT pg_catalog.current_setting('block_size')", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(query_err("reading block_size"))?;
    Ok((sizes, block.parse().unwrap_or(8192)))
}

/// `(last_value, is_called)` of each sequence, in the snapshot.
pub(crate) async fn sequence_values(
    client: &Client,
    sequences: &[crate::schema::SequenceInfo],
) -> Result<Vec<(i64, bool)>, PgError> {
    let mut out = Vec::with_capacity(sequences.len());
    for s in sequences {
        let context = format!("reading sequence {}", s.qualified_name);
        let row = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", s.qualified_name),
                &[],
            )
            .await
            .map_err(query_err(&context))?;
        let last: i64 = row.try_get(0).map_err(query_err(&context))?;
        let called: bool = row.try_get(1).map_err(query_err(&context))?;
        out.push((last, called));
    }
    Ok(out)
}

/// Whether an error is a lock timeout (SQLSTATE 55P03).
pub(crate) fn is_lock_timeout(e: &PgError) -> bool {
    let source = match e {
        PgError::Query { source, .. } | PgError::Copy { source, .. } | PgError::Lock { source, .. } => source,
        _ => return false,
    };
    source.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

/// Turns a lock timeout into an error naming the tables other sessions hold (or wait for)
/// in `ACCESS EXCLUSIVE` mode, asked on a fresh connection (the failed transaction cannot).
pub(crate) async fn name_lock_conflict(config: &PgConnectionConfig, e: PgError) -> PgError {
    if !is_lock_timeout(&e) {
        return e;
    }
    let Ok(client) = config.connect().await else {
        return e;
    };
    let rows = client
        .query(
            "SELECT DISTINCT l.relation::regclass::text FROM pg_catalog.pg_locks l \
             JOIN pg_catalog.pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'relation' \
               AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid() ORDER BY 1",
            &[],
        )
        .await;
    let tables: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .collect(),
        Err(_) => return e,
    };
    match (tables.is_empty(), e) {
        (
            false,
            PgError::Query { source, .. } | PgError::Copy { source, .. } | PgError::Lock { source, .. },
        ) => PgError::Lock {
            table: tables.join(", "),
            source,
        },
        (_, e) => e,
    }
}
