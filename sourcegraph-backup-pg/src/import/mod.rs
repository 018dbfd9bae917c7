//! Import: checks on the target (before any write), pre-data in one transaction, sequence
//! values, then table loads, post-data steps and `ANALYZE`s on N parallel connections.

mod copy_in;
mod privileges;
mod schedule;
mod target;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sourcegraph_backup_core::{ImportContext, ImportReport};
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::connection::PgConnectionConfig;
use crate::error::PgError;
use crate::layout::{ExcludedTable, PgStoreDetails, TableRecord, SCHEMA_JSON, SEQUENCES_SQL};
use crate::schema::{PostDataStep, RenderOptions, SchemaDump};
use schedule::{Next, Schedule, Task};

/// How a Postgres import runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgImportOptions {
    /// Parallel connections; 0 means the number of cores.
    pub jobs: usize,
    /// Drop the dumped schemas and extensions of a non-empty target first (otherwise a
    /// non-empty target is refused).
    pub clean_first: bool,
    /// With `clean_first`, restore even when the target records another Sourcegraph version.
    pub force: bool,
    /// `maintenance_work_mem` of each connection (index builds), e.g. `256MB`.
    pub maintenance_work_mem: String,
    /// Run `ANALYZE` on every loaded table at the end.
    pub analyze: bool,
    /// Owners, grants and role map for the DDL (the target version is filled in).
    pub render: RenderOptions,
}

impl Default for PgImportOptions {
    fn default() -> Self {
        PgImportOptions {
            jobs: 0,
            clean_first: false,
            force: false,
            maintenance_work_mem: "256MB".into(),
            analyze: true,
            render: RenderOptions::default(),
        }
    }
}

/// Retries of a post-data step that lost a deadlock (two foreign keys between the same
/// tables lock them in opposite orders).
const DEADLOCK_RETRIES: u32 = 5;

/// What an import did: the [`ImportReport::details`] of a Postgres store, read back with
/// `serde_json::from_value::<PgImportReport>(report.details)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PgImportReport {
    /// The target database's name.
    pub database: String,
    /// `server_version_num` of the target.
    pub target_server_version_num: i32,
    /// The Sourcegraph version the backup's data belongs to, if it records one.
    pub sourcegraph_version: Option<String>,
    /// The latest schema migration the backup's data is at, if known.
    pub schema_migration: Option<i64>,
    /// Whether the source had failed or unfinished migrations.
    pub migration_problems: bool,
    /// Tables whose data was loaded.
    pub tables_loaded: usize,
    /// Rows loaded.
    pub rows: u64,
    /// Post-data steps run (constraints, indexes, triggers...).
    pub post_data_steps: usize,
    /// Tables the backup holds no data for, each with the reason.
    pub excluded_tables: Vec<ExcludedTable>,
    /// Objects the target already had and the restoring role may not alter, left as found.
    pub left_as_found: BTreeSet<String>,
    /// Where the time went.
    pub timings: PgImportTimings,
}

/// Where an import's time went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PgImportTimings {
    /// The whole import, in seconds.
    pub wall_seconds: f64,
    /// Reading the backup, the target checks, the pre-data schema and the sequence values.
    pub pre_data_seconds: f64,
    /// Parallel connections.
    pub jobs: usize,
    /// Connection-seconds spent loading table data.
    pub load_connection_seconds: f64,
    /// Connection-seconds spent on post-data steps.
    pub post_data_connection_seconds: f64,
    /// Connection-seconds spent on `ANALYZE`.
    pub analyze_connection_seconds: f64,
}

/// Reads the store's details and schema from the backup (details of a newer format are
/// refused before anything else is read).
pub(crate) async fn read_backup(ctx: &ImportContext) -> Result<(PgStoreDetails, SchemaDump), PgError> {
    let malformed = |reason: String| PgError::MalformedBackup {
        store: ctx.store().into(),
        reason,
    };
    let details = PgStoreDetails::from_manifest(ctx.store(), &ctx.store_manifest().details)?;
    let json = ctx
        .read_small(SCHEMA_JSON)
        .await
        .map_err(|source| PgError::Artifact {
            artifact: SCHEMA_JSON.into(),
            source: Box::new(source),
        })?;
    let dump: SchemaDump =
        serde_json::from_slice(&json).map_err(|e| malformed(format!("{SCHEMA_JSON}: {e}")))?;
    Ok((details, dump))
}

/// Runs an import of `ctx` into the database at `config`.
pub(crate) async fn import(
    config: &PgConnectionConfig,
    opts: &PgImportOptions,
    ctx: ImportContext,
) -> Result<ImportReport, PgError> {
    let started = std::time::Instant::now();
    let (details, dump) = read_backup(&ctx).await?;
    let client = config.connect().await?;
    let target = target::prepare(&client, &dump, &details, opts).await?;

    // Pre-data in one transaction.
    let mut render = opts.render.clone();
    render.target_server_version_num = target.server_version_num;
    render
        .leave_as_found
        .extend(target.leave_as_found.iter().cloned());
    let pre = dump.pre_data_sql(&render);
    client
        .batch_execute(&format!("BEGIN;\n{pre}\nCOMMIT;"))
        .await
        .map_err(|source| PgError::Restore {
            what: "the pre-data schema".into(),
            source,
        })?;
    let seq = ctx
        .read_small(SEQUENCES_SQL)
        .await
        .map_err(|source| PgError::Artifact {
            artifact: SEQUENCES_SQL.into(),
            source: Box::new(source),
        })?;
    let seq = String::from_utf8(seq.to_vec()).map_err(|_| PgError::MalformedBackup {
        store: ctx.store().into(),
        reason: format!("{SEQUENCES_SQL} is not UTF-8"),
    })?;
    client
        .batch_execute(&seq)
        .await
        .map_err(|source| PgError::Restore {
            what: "sequence values".into(),
            source,
        })?;
    drop(client);

    let pre_data_secs = started.elapsed().as_secs_f64();
    let steps = dump.post_data_steps(&render);
    let step_count = steps.len();
    let tables = Arc::new(details.tables.clone());
    let jobs = if opts.jobs > 0 {
        opts.jobs
    } else {
        std::thread::available_parallelism().map_or(2, usize::from)
    };
    let outcome = run(config, opts, &ctx, tables.clone(), steps, jobs).await?;

    let version = details
        .probe
        .product_version
        .as_ref()
        .and_then(|v| v.version.clone());
    let migration = details.probe.latest_migration();
    let mut warnings: Vec<String> = target.note.iter().cloned().collect();
    match (&version, migration) {
        (Some(v), m) => warnings.push(format!(
            "this data belongs to Sourcegraph {v}{}: run Sourcegraph {v} against it first, \
             and only then upgrade",
            m.map(|m| format!(" (schema migration {m})")).unwrap_or_default()
        )),
        (None, Some(m)) => warnings.push(format!(
            "this data is at schema migration {m}: run the Sourcegraph version that matches it \
             first, and only then upgrade"
        )),
        (None, None) => {}
    }
    if details.probe.has_migration_problems() {
        warnings.push("the source had failed or unfinished migrations; see the backup's warnings".into());
    }
    for e in &details.excluded {
        warnings.push(format!(
            "the backup holds no data for table {}: {}",
            e.qualified_name, e.reason
        ));
    }
    let report = PgImportReport {
        database: target.database,
        target_server_version_num: target.server_version_num,
        sourcegraph_version: version,
        schema_migration: migration,
        migration_problems: details.probe.has_migration_problems(),
        tables_loaded: tables.len(),
        rows: outcome.rows,
        post_data_steps: step_count,
        excluded_tables: details.excluded,
        left_as_found: target.leave_as_found,
        timings: PgImportTimings {
            wall_seconds: started.elapsed().as_secs_f64(),
            pre_data_seconds: pre_data_secs,
            jobs,
            load_connection_seconds: outcome.load_secs,
            post_data_connection_seconds: outcome.post_data_secs,
            analyze_connection_seconds: outcome.analyze_secs,
        },
    };
    let details = serde_json::to_value(&report).map_err(|e| PgError::Serialize {
        store: ctx.store().into(),
        what: "import report",
        reason: e.to_string(),
    })?;
    Ok(ImportReport {
        details,
        warnings,
        bytes: outcome.stored_bytes,
    })
}

#[derive(Debug, Default)]
struct Outcome {
    rows: u64,
    stored_bytes: u64,
    /// Connection-seconds spent per kind of task: where a restore's time goes.
    load_secs: f64,
    post_data_secs: f64,
    analyze_secs: f64,
}

struct Shared {
    schedule: Mutex<Schedule>,
    notify: Notify,
    tables: Arc<Vec<TableRecord>>,
    outcome: Mutex<Outcome>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run(
    config: &PgConnectionConfig,
    opts: &PgImportOptions,
    ctx: &ImportContext,
    tables: Arc<Vec<TableRecord>>,
    steps: Vec<PostDataStep>,
    jobs: usize,
) -> Result<Outcome, PgError> {
    let shared = Arc::new(Shared {
        schedule: Mutex::new(Schedule::new(&tables, steps, opts.analyze)),
        notify: Notify::new(),
        tables,
        outcome: Mutex::new(Outcome::default()),
    });
    let setup = format!(
        "{}SET maintenance_work_mem = {};\nSET synchronous_commit = off;\n",
        SchemaDump::session_setup_sql(),
        crate::sql::quote_literal(&opts.maintenance_work_mem)
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..jobs.max(1) {
        let (config, ctx, shared, setup) = (config.clone(), ctx.clone(), shared.clone(), setup.clone());
        set.spawn(async move {
            let client = config.connect().await?;
            client
                .batch_execute(&setup)
                .await
                .map_err(|source| PgError::Restore {
                    what: "session setup".into(),
                    source,
                })?;
            worker(&client, &ctx, &shared).await
        });
    }
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(|e| PgError::Worker {
            what: "import",
            reason: e.to_string(),
        });
        if let Err(e) = result.and_then(|r| r) {
            lock(&shared.schedule).failed = true;
            shared.notify.notify_waiters();
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let outcome = std::mem::take(&mut *lock(&shared.outcome));
    Ok(outcome)
}

async fn worker(client: &Client, ctx: &ImportContext, shared: &Shared) -> Result<(), PgError> {
    loop {
        // Registered before the schedule is read, so a task finishing in between still
        // wakes this worker.
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = lock(&shared.schedule).next();
        let task = match next {
            Next::Done => return Ok(()),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::Run(task) => task,
        };
        let started = std::time::Instant::now();
        let result = run_task(client, ctx, shared, &task).await;
        {
            let mut outcome = lock(&shared.outcome);
            let secs = started.elapsed().as_secs_f64();
            match task {
                Task::Load(_) => outcome.load_secs += secs,
                Task::Step(_) => outcome.post_data_secs += secs,
                Task::Analyze(_) => outcome.analyze_secs += secs,
            }
        }
        {
            let mut schedule = lock(&shared.schedule);
            match &result {
                Ok(()) => schedule.finish(&task, &shared.tables),
                Err(_) => schedule.fail(),
            }
        }
        shared.notify.notify_waiters();
        result?;
    }
}

async fn run_task(client: &Client, ctx: &ImportContext, shared: &Shared, task: &Task) -> Result<(), PgError> {
    match task {
        Task::Load(i) => {
            let t = &shared.tables[*i];
            let loaded = copy_in::load_table(client, ctx, t).await?;
            let mut outcome = lock(&shared.outcome);
            outcome.rows += loaded.rows;
            outcome.stored_bytes += loaded.stored_bytes;
            Ok(())
        }
        Task::Step(i) => {
            let (identity, sql) = {
                let schedule = lock(&shared.schedule);
                let s = schedule.step(*i);
                (s.identity.clone(), s.sql.clone())
            };
            let mut attempt = 0;
            loop {
                match client.batch_execute(&sql).await {
                    Ok(()) => return Ok(()),
                    Err(e)
                        if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                            && attempt < DEADLOCK_RETRIES =>
                    {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    }
                    Err(source) => {
                        return Err(PgError::Restore {
                            what: identity,
                            source,
                        })
                    }
                }
            }
        }
        Task::Analyze(i) => {
            let t = &shared.tables[*i];
            client
                .batch_execute(&format!("ANALYZE {}", t.qualified_name))
                .await
                .map_err(|source| PgError::Restore {
                    what: format!("ANALYZE {}", t.qualified_name),
                    source,
                })
        }
    }
}
