//! One instant for every connection: the leader exports its snapshot, workers adopt it.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::connection::PgConnectionConfig;
use crate::error::PgError;
use crate::schema::{ExtractOptions, TableInfo};
use crate::sizes::table_sizes;
use crate::sql::{query_err, quote_literal};

/// Session settings of every export connection: no statement timeout; `lock_timeout` as
/// the options say (`Duration::ZERO` waits forever); synchronized scans off, so that a
/// sequential scan in one snapshot returns its rows in the same order every time (a redone
/// part is checked against what was already written; `pg_dump` sets it off too).
pub(crate) async fn session_setup(client: &Client, lock_timeout: Duration) -> Result<(), PgError> {
    let ms = lock_timeout.as_millis();
    client
        .batch_execute(&format!(
            "SET lock_timeout = {ms}; SET statement_timeout = 0; \
             SET idle_in_transaction_session_timeout = 0; SET synchronize_seqscans = off"
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

/// The quoted qualified names of the tables the schema extractor will dump (ordinary and
/// partitioned tables of the selected schemas, extension members left out), read in the
/// snapshot so that they can be locked before the schema is read.
pub(crate) async fn dumped_tables(client: &Client, opts: &ExtractOptions) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp' \
               AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[])) \
               AND NOT (n.nspname = ANY($2::text[])) \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e \
                   WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                     AND e.objid = c.oid AND e.deptype = 'e') \
             ORDER BY n.nspname, c.relname",
            &[&opts.include_schemas, &opts.exclude_schemas],
        )
        .await
        .map_err(query_err("listing the tables to lock"))?;
    rows.iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(query_err("listing the tables to lock"))
}

/// Takes `ACCESS SHARE` locks on `tables` in the leader's transaction, as `pg_dump` does
/// before it reads the schema: a `DROP`/`ALTER TABLE` issued afterwards waits for the backup.
/// The statements are pipelined (one round trip for all), one per table so that a failure
/// names it. Each waits at most the session's `lock_timeout`; a timeout becomes
/// [`PgError::LockTimeout`] naming the table and the blocking session's statement.
pub(crate) async fn lock_tables(
    client: &Client,
    config: &PgConnectionConfig,
    tables: &[String],
    lock_timeout: Duration,
) -> Result<(), PgError> {
    let statements: Vec<String> = tables
        .iter()
        .map(|t| format!("LOCK TABLE ONLY {t} IN ACCESS SHARE MODE"))
        .collect();
    let results = futures::future::join_all(statements.iter().map(|s| client.batch_execute(s))).await;
    // The first failure is the cause; the statements after it fail only because the
    // transaction is aborted.
    let Some((table, source)) = tables
        .iter()
        .zip(results)
        .find_map(|(t, r)| r.err().map(|e| (t, e)))
    else {
        return Ok(());
    };
    if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return Err(PgError::LockTimeout {
            table: table.clone(),
            waited: lock_timeout,
            blockers: describe_blockers(config, Some(table)).await,
        });
    }
    Err(PgError::Lock {
        table: table.clone(),
        source,
    })
}

/// Takes a worker's `ACCESS SHARE` lock on `table` without waiting (in a savepoint, so that
/// a refusal leaves the transaction usable). `Ok(false)` when another session is queued for
/// an `ACCESS EXCLUSIVE` lock on it (a `DROP`/`ALTER TABLE` waiting for the leader's lock): a
/// worker that queued behind it would wait for a lock that is only granted after the backup
/// ends, so the part goes to the leader, which holds the lock already. `label` names the part
/// in errors.
pub(crate) async fn try_lock(client: &Client, table: &str, label: &str) -> Result<bool, PgError> {
    let result = client
        .batch_execute(&format!(
            "SAVEPOINT sgb_worker_lock; LOCK TABLE ONLY {table} IN ACCESS SHARE MODE NOWAIT; \
             RELEASE SAVEPOINT sgb_worker_lock"
        ))
        .await;
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT sgb_worker_lock; RELEASE SAVEPOINT sgb_worker_lock")
                .await
                .map_err(|source| PgError::Lock {
                    table: label.to_owned(),
                    source,
                })?;
            Ok(false)
        }
        Err(source) => Err(PgError::Lock {
            table: label.to_owned(),
            source,
        }),
    }
}

/// Connects a worker and makes it see the leader's snapshot; fails (SQLSTATE 22023, invalid
/// snapshot identifier) once the leader's transaction has ended. Workers never wait for a
/// table lock: they take it with [`try_lock`] before each `COPY`.
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
            quote_literal(snapshot)
        ))
        .await
        .map_err(query_err("adopting the leader's snapshot in a worker"))?;
    Ok(client)
}

/// The main fork's size (`pg_relation_size`) of each table, in the snapshot, and the block
/// size.
pub(crate) async fn relation_sizes(
    client: &Client,
    tables: &[TableInfo],
) -> Result<(Vec<i64>, i64), PgError> {
    let names: Vec<&str> = tables.iter().map(|t| t.qualified_name.as_str()).collect();
    let sizes = table_sizes(client, &names)
        .await?
        .into_iter()
        .zip(&names)
        .map(|(s, name)| {
            // The tables are locked: none can be gone.
            s.map(|s| s.main_fork).ok_or_else(|| PgError::SchemaCatalog {
                context: "reading table sizes".into(),
                reason: format!("table {name} does not exist any more"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
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
    source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// Turns a lock timeout anywhere else in the export (after the up-front locks) into
/// [`PgError::LockTimeout`], naming the tables other sessions hold (or wait for) in
/// `ACCESS EXCLUSIVE` mode and those sessions' statements, asked on a fresh connection (the
/// failed transaction cannot).
pub(crate) async fn name_lock_conflict(
    config: &PgConnectionConfig,
    lock_timeout: Duration,
    e: PgError,
) -> PgError {
    if !is_lock_timeout(&e) {
        return e;
    }
    let table = match &e {
        PgError::Lock { table, .. } => Some(table.as_str()),
        _ => None,
    };
    let Ok(found) = blockers(config, table).await else {
        return e;
    };
    if found.is_empty() && table.is_none() {
        return e;
    }
    let mut tables: Vec<&str> = found.iter().map(|b| b.table.as_str()).collect();
    tables.dedup();
    PgError::LockTimeout {
        table: table.map_or_else(|| tables.join(", "), str::to_owned),
        waited: lock_timeout,
        blockers: render_blockers(&found),
    }
}

/// Longest statement text shown for a blocking session.
const MAX_STATEMENT: usize = 200;

/// A session holding or queued for an `ACCESS EXCLUSIVE` lock on a dumped table.
struct Blocker {
    table: String,
    pid: Option<i32>,
    granted: bool,
    user: String,
    state: String,
    xact_seconds: Option<i64>,
    query: String,
}

/// The sessions holding (or queued ahead for) `ACCESS EXCLUSIVE` locks on `table` (every
/// relation of the database when `None`), rendered for an error message; asked on a fresh
/// connection. Only the pid, user, state, transaction age and the statement text
/// (whitespace collapsed, truncated) of each session are shown.
pub(crate) async fn describe_blockers(config: &PgConnectionConfig, table: Option<&str>) -> String {
    match blockers(config, table).await {
        Ok(found) => render_blockers(&found),
        Err(e) => format!("unknown (looking it up failed: {e})"),
    }
}

async fn blockers(config: &PgConnectionConfig, table: Option<&str>) -> Result<Vec<Blocker>, PgError> {
    let client = config.connect().await?;
    let context = "looking up the sessions that lock the table";
    // The lock manager's queue is what blocks: granted ACCESS EXCLUSIVE locks first, then
    // requests queued for one (pg_blocking_pids' "soft" blockers).
    let rows = client
        .query(
            "SELECT l.relation::pg_catalog.regclass::text, l.pid, l.granted, \
                    coalesce(a.usename::text, ''), coalesce(a.state, ''), \
                    floor(extract(epoch FROM (pg_catalog.now() - a.xact_start)))::int8, \
                    coalesce(a.query, '') \
             FROM pg_catalog.pg_locks l \
             LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' \
               AND l.database = (SELECT oid FROM pg_catalog.pg_database \
                                 WHERE datname = pg_catalog.current_database()) \
               AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid() \
               AND ($1::text IS NULL OR l.relation = pg_catalog.to_regclass($1::text)) \
             ORDER BY 1, l.granted DESC, a.backend_start, l.pid",
            &[&table],
        )
        .await
        .map_err(query_err(context))?;
    rows.iter()
        .map(|r| {
            Ok(Blocker {
                table: r.try_get(0)?,
                pid: r.try_get(1)?,
                granted: r.try_get(2)?,
                user: r.try_get(3)?,
                state: r.try_get(4)?,
                xact_seconds: r.try_get(5)?,
                query: r.try_get(6)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(query_err(context))
}

fn render_blockers(found: &[Blocker]) -> String {
    if found.is_empty() {
        return "no session holds or waits for an exclusive lock on it any more (the blocker \
                finished after the wait ran out)"
            .into();
    }
    found
        .iter()
        .map(|b| {
            let who = match b.pid {
                Some(pid) => {
                    let mut facts = Vec::new();
                    if !b.user.is_empty() {
                        facts.push(format!("user {}", b.user));
                    }
                    if !b.state.is_empty() {
                        facts.push(b.state.clone());
                    }
                    if let Some(s) = b.xact_seconds {
                        facts.push(format!("transaction open {s} s"));
                    }
                    format!("session pid {pid} ({})", facts.join(", "))
                }
                None => "a prepared transaction".to_owned(),
            };
            let what = if b.granted {
                "holds ACCESS EXCLUSIVE on"
            } else {
                "is queued for ACCESS EXCLUSIVE on"
            };
            let statement = if b.query.is_empty() {
                String::new()
            } else {
                format!(", statement: {}", statement_excerpt(&b.query))
            };
            format!("{who} {what} {}{statement}", b.table)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A statement for a message: whitespace runs collapsed to one space, cut after
/// [`MAX_STATEMENT`] characters.
fn statement_excerpt(query: &str) -> String {
    let collapsed = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(MAX_STATEMENT) {
        Some((cut, _)) => format!("{}...", &collapsed[..cut]),
        None => collapsed,
    }
}

/// Whether a driver error means the connection is gone (the server terminated the backend,
/// shut down, or the socket broke), as opposed to an error in the data or the statement.
pub(crate) fn is_connection_loss(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || code.code().starts_with("08");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The driver error of a lost connection, if `e` is one.
pub(crate) fn connection_lost(e: &PgError) -> Option<&tokio_postgres::Error> {
    match e {
        PgError::Query { source, .. } | PgError::Copy { source, .. } | PgError::Lock { source, .. } => {
            Some(source).filter(|s| is_connection_loss(s))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_collapsed_and_cut() {
        assert_eq!(
            statement_excerpt("LOCK TABLE\n\t x   IN ACCESS EXCLUSIVE MODE"),
            "LOCK TABLE x IN ACCESS EXCLUSIVE MODE"
        );
        let long = format!("SELECT '{}'", "é".repeat(300));
        let cut = statement_excerpt(&long);
        assert!(cut.ends_with("..."));
        assert_eq!(cut.chars().count(), MAX_STATEMENT + 3);
    }

    #[test]
    fn blockers_render_without_session_details_beyond_the_statement() {
        let b = Blocker {
            table: "public.repo".into(),
            pid: Some(42),
            granted: true,
            user: "sg".into(),
            state: "idle in transaction".into(),
            xact_seconds: Some(7),
            query: "DROP TABLE repo".into(),
        };
        assert_eq!(
            render_blockers(&[b]),
            "session pid 42 (user sg, idle in transaction, transaction open 7 s) holds ACCESS \
             EXCLUSIVE on public.repo, statement: DROP TABLE repo"
        );
    }
}
