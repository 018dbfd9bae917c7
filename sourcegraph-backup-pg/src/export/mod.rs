//! Export: one snapshot, many workers, one artifact per table (or per ctid range of a big
//! table), plus the schema, sequence values and a restore script.
//!
//! The leader connection opens a `REPEATABLE READ READ ONLY` transaction, exports its
//! snapshot, takes `ACCESS SHARE` locks on every dumped table up front (as `pg_dump` does,
//! waiting at most [`PgExportOptions::lock_timeout`] for each), then reads the schema and
//! the sequence values in it. Workers adopt the snapshot with `SET TRANSACTION SNAPSHOT` and
//! stream `COPY ... TO STDOUT`, largest work items first.
//!
//! # Concurrent DDL and lost connections
//!
//! A `DROP TABLE`/`ALTER TABLE` issued on the source while the backup runs waits for it, as
//! with `pg_dump`: the leader's locks are held until the end. A worker that would queue
//! behind such a waiting statement would wait forever (the statement waits for the leader),
//! so workers take their lock with `NOWAIT` and leave that part to the leader, which holds
//! the lock already and copies it once the workers are done.
//!
//! A worker whose connection is lost (backend terminated, server restart, broken socket)
//! reconnects, adopts the snapshot again (possible while the leader's transaction lives)
//! and redoes its current part once; errors in the data or the statement are not retried.
//! The report's warnings list every redone part and every part the leader copied.

mod copy_out;
mod scripts;
mod snapshot;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sourcegraph_backup_core::{ArtifactOptions, Compression, ExportContext, ExportReport, SourceInfo};

use crate::connection::PgConnectionConfig;
use crate::error::{describe, PgError};
use crate::layout::{
    data_artifact, ExcludedTable, PgStoreDetails, TableRecord, DETAILS_FORMAT, POST_DATA_SQL, PRE_DATA_SQL,
    RESTORE_SH, SCHEMA_JSON, SEQUENCES_SQL,
};
use crate::probe::{probe, ProbeOptions};
use crate::schema::{extract_schema, ExtractOptions, RenderOptions, TableInfo};
use crate::sql::query_err;
use copy_out::{copy_statement, Copied, Part, WorkItem};

/// Data of tables matching `pattern` is left out (their schema is kept), for `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDataExclusion {
    /// `name` or `schema.name`; `*` matches any run of characters (e.g. `event_logs*`).
    pub pattern: String,
    /// Why, recorded in the manifest (e.g. "usage statistics").
    pub reason: String,
}

impl TableDataExclusion {
    /// An exclusion rule.
    pub fn new(pattern: impl Into<String>, reason: impl Into<String>) -> Self {
        TableDataExclusion {
            pattern: pattern.into(),
            reason: reason.into(),
        }
    }

    /// The rules that leave out a catalog class's table data, by catalog row id
    /// (`usage-statistics`: Sourcegraph's event log tables). The reason quotes the
    /// catalog. `None` for a row this crate has no table list for.
    pub fn for_catalog_row(catalog_id: &str) -> Option<Vec<TableDataExclusion>> {
        let entry = sourcegraph_backup_core::catalog::catalog_entry(catalog_id)?;
        let patterns: &[&str] = match catalog_id {
            "usage-statistics" => &["event_logs", "event_logs_*", "security_event_logs"],
            _ => return None,
        };
        let reason = format!("catalog class {:?} ({}): {}", entry.id, entry.item, entry.note);
        Some(
            patterns
                .iter()
                .map(|p| TableDataExclusion::new(*p, reason.clone()))
                .collect(),
        )
    }

    /// Whether the rule matches a table.
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        if self.pattern.contains('.') {
            glob(&self.pattern, &format!("{schema}.{name}"))
        } else {
            glob(&self.pattern, name)
        }
    }
}

/// `*`-only glob matching.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// How a Postgres export runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgExportOptions {
    /// Worker connections copying data; 0 means the number of cores.
    pub jobs: usize,
    /// How long the backup waits for each table's `ACCESS SHARE` lock when it starts.
    ///
    /// The leader locks every dumped table before it reads the schema, as `pg_dump` does;
    /// from then on a `DROP`/`ALTER TABLE` on the source waits for the backup to finish.
    /// Only a session holding or queued for an `ACCESS EXCLUSIVE` lock (`ALTER`/`DROP`/
    /// `TRUNCATE TABLE`, `VACUUM FULL`, `CLUSTER`, `LOCK TABLE`) makes the backup wait here;
    /// when the wait runs out, the backup fails before copying anything with
    /// [`PgError::LockTimeout`], naming the table and the blocking session's statement.
    /// `Duration::ZERO` waits forever, as `pg_dump` does without `--lock-wait-timeout`.
    ///
    /// Default: 60 s. Long enough to ride out the short exclusive locks of routine DDL (a
    /// migration's `ALTER TABLE`, a `TRUNCATE`); short enough that a session left idle in
    /// a transaction holding such a lock fails a scheduled backup within a minute, with
    /// the blocker named, instead of hanging it (while it waits, the backup already holds
    /// the locks of the tables before, so DDL on those waits too).
    pub lock_timeout: Duration,
    /// On servers 14+, tables whose main fork is larger than this are split into ctid page
    /// ranges copied in parallel.
    pub split_threshold_bytes: u64,
    /// Tables whose data is left out.
    pub exclude_table_data: Vec<TableDataExclusion>,
    /// Back up a database that is not a Sourcegraph database.
    pub allow_generic: bool,
    /// Which schemas to dump.
    pub extract: ExtractOptions,
    /// Compression of the artifacts (zstd level 1 by default).
    pub compression: Compression,
}

impl Default for PgExportOptions {
    fn default() -> Self {
        PgExportOptions {
            jobs: 0,
            lock_timeout: Duration::from_secs(60),
            split_threshold_bytes: 256 * 1024 * 1024,
            exclude_table_data: Vec::new(),
            allow_generic: false,
            extract: ExtractOptions::default(),
            compression: Compression::DEFAULT_ZSTD,
        }
    }
}

impl PgExportOptions {
    /// The number of workers: `jobs`, or the number of cores.
    pub fn effective_jobs(&self) -> usize {
        if self.jobs > 0 {
            self.jobs
        } else {
            std::thread::available_parallelism().map_or(2, usize::from)
        }
    }
}

/// Most parts one table is split into.
const MAX_PARTS: u64 = 64;
/// Servers from this version scan ctid ranges without reading the whole table.
const TID_RANGE_SCAN_VERSION: i32 = 140_000;

/// Runs an export of the database at `config` into `ctx`.
pub(crate) async fn export(
    config: &PgConnectionConfig,
    opts: &PgExportOptions,
    ctx: ExportContext,
) -> Result<ExportReport, PgError> {
    match export_inner(config, opts, ctx).await {
        Ok(report) => Ok(report),
        Err(e) => Err(snapshot::name_lock_conflict(config, opts.lock_timeout, e).await),
    }
}

async fn export_inner(
    config: &PgConnectionConfig,
    opts: &PgExportOptions,
    ctx: ExportContext,
) -> Result<ExportReport, PgError> {
    // Recorded in the details; serialised first, so that a failure costs no work.
    let options = serde_json::to_value(opts).map_err(|e| PgError::Serialize {
        store: ctx.store().into(),
        what: "export options",
        reason: e.to_string(),
    })?;
    let leader = config.connect().await?;
    snapshot::session_setup(&leader, opts.lock_timeout).await?;
    let snapshot_id = snapshot::begin_leader(&leader).await?;
    // Lock first, then probe and read the schema (the probe's size functions lock tables
    // too): nothing can change a dumped table from here on.
    let locked = snapshot::dumped_tables(&leader, &opts.extract).await?;
    snapshot::lock_tables(&leader, config, &locked, opts.lock_timeout).await?;
    let report = probe(
        &leader,
        ProbeOptions {
            allow_generic: opts.allow_generic,
        },
    )
    .await?;
    let dump = extract_schema(&leader, &opts.extract).await?;
    let locked: HashSet<String> = locked.into_iter().collect();
    let missed: Vec<String> = dump
        .tables
        .iter()
        .filter(|t| !locked.contains(&t.qualified_name))
        .map(|t| t.qualified_name.clone())
        .collect();
    snapshot::lock_tables(&leader, config, &missed, opts.lock_timeout).await?;
    let seq_values = snapshot::sequence_values(&leader, &dump.sequences).await?;

    let suffix = opts.compression.suffix();
    let artifact_opts = |content_type: &str| ArtifactOptions {
        content_type: content_type.into(),
        compression: opts.compression,
    };
    let jobs = opts.effective_jobs();

    // Tables that hold data, the excluded ones, and the work items.
    let mut excluded = Vec::new();
    let data_tables: Vec<&TableInfo> = dump
        .tables
        .iter()
        .filter(|t| !t.is_partitioned)
        .filter(|t| {
            match opts
                .exclude_table_data
                .iter()
                .find(|r| r.matches(&t.schema, &t.name))
            {
                Some(rule) => {
                    excluded.push(ExcludedTable {
                        qualified_name: t.qualified_name.clone(),
                        reason: rule.reason.clone(),
                    });
                    false
                }
                None => true,
            }
        })
        .collect();
    let owned: Vec<TableInfo> = data_tables.iter().map(|t| (*t).clone()).collect();
    let (sizes, block_size) = snapshot::relation_sizes(&leader, &owned).await?;
    let split_ok = report.server_version_num >= TID_RANGE_SCAN_VERSION;
    let mut records = Vec::with_capacity(owned.len());
    let mut items = Vec::new();
    for (i, (t, size)) in owned.iter().zip(&sizes).enumerate() {
        let size = u64::try_from(*size).unwrap_or(0);
        let block = u64::try_from(block_size).unwrap_or(8192).max(1);
        let parts = if split_ok && size > opts.split_threshold_bytes && opts.split_threshold_bytes > 0 {
            size.div_ceil(opts.split_threshold_bytes)
                .max(jobs as u64)
                .min(MAX_PARTS)
        } else {
            1
        };
        let pages = size.div_ceil(block);
        let per_part = pages.div_ceil(parts).max(1);
        let mut artifacts = Vec::new();
        for p in 0..parts {
            let artifact = data_artifact(&t.schema, &t.name, i, p as usize, suffix);
            let (statement, label) = if parts == 1 {
                (
                    copy_statement(&t.qualified_name, &t.quoted_columns_for_copy, None),
                    t.qualified_name.clone(),
                )
            } else {
                let from = p * per_part;
                let to = (p + 1 < parts).then_some((p + 1) * per_part);
                let label = format!(
                    "{} (pages {from}..{})",
                    t.qualified_name,
                    to.map_or_else(|| "end".to_owned(), |v| v.to_string())
                );
                (
                    copy_statement(&t.qualified_name, &t.quoted_columns_for_copy, Some((from, to))),
                    label,
                )
            };
            items.push(WorkItem {
                table: i,
                qualified_name: t.qualified_name.clone(),
                artifact: artifact.clone(),
                statement,
                estimate: size.max(u64::try_from(t.approx_bytes).unwrap_or(0)) / parts,
                label,
            });
            artifacts.push(artifact);
        }
        records.push(TableRecord {
            identity: t.identity.clone(),
            schema: t.schema.clone(),
            name: t.name.clone(),
            qualified_name: t.qualified_name.clone(),
            columns: t.quoted_columns_for_copy.clone(),
            artifacts,
            rows: 0,
            bytes: 0,
        });
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.estimate));

    let data_opts = artifact_opts("text/tab-separated-values");
    let env = WorkerEnv {
        config: config.clone(),
        snapshot_id: snapshot_id.clone(),
        lock_timeout: opts.lock_timeout,
        ctx: ctx.clone(),
        options: data_opts.clone(),
    };
    let WorkerOutcome {
        done: mut copied,
        deferred,
        warnings: worker_warnings,
    } = run_workers(Arc::new(env), items, jobs).await?;
    // Parts whose table another session waits to lock exclusively: the leader holds the
    // lock, so it copies them without queueing.
    for (item, mut part) in deferred {
        copy_out::copy_attempt(&leader, &ctx, &data_opts, &item, &mut part).await?;
        copied.push((item.table, copy_out::finish(&ctx, &data_opts, &item, part).await?));
    }
    for (table, c) in copied {
        if let Some(r) = records.get_mut(table) {
            r.rows += c.rows;
            r.bytes += c.bytes;
        }
    }

    // Schema and scripts.
    let put = |name: &'static str, content_type: &str, data: Vec<u8>| {
        let ctx = ctx.clone();
        let options = if name == RESTORE_SH {
            ArtifactOptions::plain(content_type)
        } else {
            artifact_opts(content_type)
        };
        async move {
            ctx.put_artifact(name, options, Bytes::from(data))
                .await
                .map_err(|source| PgError::Artifact {
                    artifact: name.into(),
                    source: Box::new(source),
                })
        }
    };
    let json = serde_json::to_vec(&dump).map_err(|e| PgError::Serialize {
        store: ctx.store().into(),
        what: "schema dump",
        reason: e.to_string(),
    })?;
    let render = RenderOptions::default();
    put(SCHEMA_JSON, "application/json", json).await?;
    put(
        PRE_DATA_SQL,
        "application/sql",
        dump.pre_data_sql(&render).into_bytes(),
    )
    .await?;
    put(
        POST_DATA_SQL,
        "application/sql",
        dump.post_data_sql(&render).into_bytes(),
    )
    .await?;
    let seq_sql = scripts::sequences_sql(&dump.sequences, &seq_values);
    put(SEQUENCES_SQL, "application/sql", seq_sql.into_bytes()).await?;
    let script = scripts::restore_sh(ctx.store(), ctx.backup_id(), &records);
    put(RESTORE_SH, "text/x-shellscript", script.into_bytes()).await?;

    leader
        .batch_execute("COMMIT")
        .await
        .map_err(query_err("ending the snapshot transaction"))?;

    let mut warnings = report.warnings();
    warnings.extend(worker_warnings);
    for e in &excluded {
        warnings.push(format!(
            "data of table {} left out: {}",
            e.qualified_name, e.reason
        ));
    }
    let source = SourceInfo {
        sourcegraph_version: report.product_version.as_ref().and_then(|v| v.version.clone()),
        schema_versions: report
            .latest_migration()
            .map(|m| [(ctx.store().to_owned(), m.to_string())].into_iter().collect())
            .unwrap_or_default(),
    };
    let details = PgStoreDetails {
        format: DETAILS_FORMAT,
        probe: report,
        tables: records,
        excluded,
        sequences: dump.sequences.len(),
        options,
    };
    Ok(ExportReport {
        details: details.to_manifest(ctx.store())?,
        warnings,
        source,
    })
}

/// What a worker needs besides its connection.
struct WorkerEnv {
    config: PgConnectionConfig,
    snapshot_id: String,
    lock_timeout: Duration,
    ctx: ExportContext,
    options: ArtifactOptions,
}

/// What the workers did.
#[derive(Default)]
struct WorkerOutcome {
    /// Rows/bytes per table index, one entry per finished part.
    done: Vec<(usize, Copied)>,
    /// Parts left to the leader (another session waits to lock their table), with what was
    /// copied of them already.
    deferred: Vec<(WorkItem, Part)>,
    /// Redone parts and parts left to the leader, for the report.
    warnings: Vec<String>,
}

/// How a worker ended one part.
enum ItemOutcome {
    Done(Copied),
    Deferred(Part),
}

/// Runs the work items on `jobs` worker connections in the leader's snapshot. The first
/// failure stops every worker.
async fn run_workers(
    env: Arc<WorkerEnv>,
    items: Vec<WorkItem>,
    jobs: usize,
) -> Result<WorkerOutcome, PgError> {
    let workers = jobs.min(items.len()).max(1);
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (env, queue) = (env.clone(), queue.clone());
        set.spawn(async move {
            let mut client = snapshot::worker(&env.config, &env.snapshot_id, env.lock_timeout).await?;
            let mut locked = HashSet::new();
            let mut out = WorkerOutcome::default();
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                let Some(item) = next else { break };
                match run_item(&env, &mut client, &mut locked, &item, &mut out.warnings).await? {
                    ItemOutcome::Done(c) => out.done.push((item.table, c)),
                    ItemOutcome::Deferred(part) => {
                        out.warnings.push(format!(
                            "table {} was copied on the leader's connection: another session \
                             was waiting to lock it exclusively (a DROP or ALTER TABLE, which \
                             waits for the backup to finish)",
                            item.qualified_name
                        ));
                        out.deferred.push((item, part));
                    }
                }
            }
            Ok::<_, PgError>(out)
        });
    }
    let mut all = WorkerOutcome::default();
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(|e| PgError::Worker {
            what: "export",
            reason: e.to_string(),
        });
        match result.and_then(|r| r) {
            Ok(out) => {
                all.done.extend(out.done);
                all.deferred.extend(out.deferred);
                // One warning per table, however many of its parts went to the leader.
                for w in out.warnings {
                    if !all.warnings.contains(&w) {
                        all.warnings.push(w);
                    }
                }
            }
            Err(e) => {
                set.abort_all();
                return Err(e);
            }
        }
    }
    Ok(all)
}

/// Copies one part on a worker connection. A lost connection is replaced by a new one in
/// the same snapshot (`client` then holds it) and the part is redone once.
async fn run_item(
    env: &WorkerEnv,
    client: &mut tokio_postgres::Client,
    locked: &mut HashSet<String>,
    item: &WorkItem,
    warnings: &mut Vec<String>,
) -> Result<ItemOutcome, PgError> {
    let mut part = Part::new();
    let mut lost: Option<String> = None;
    loop {
        let err = match attempt(env, client, locked, item, &mut part).await {
            Ok(true) => {
                return copy_out::finish(&env.ctx, &env.options, item, part)
                    .await
                    .map(ItemOutcome::Done)
            }
            Ok(false) => return Ok(ItemOutcome::Deferred(part)),
            Err(e) => e,
        };
        if let Some(lost) = lost {
            let reason = match err {
                PgError::Worker { reason, .. } => reason,
                e => e.to_string(),
            };
            return Err(PgError::RedoFailed {
                part: item.label.clone(),
                lost,
                reason,
            });
        }
        let Some(source) = snapshot::connection_lost(&err) else {
            return Err(err);
        };
        let why = describe(source);
        let message = format!(
            "the worker connection copying {} was lost after {} bytes ({why}); the part was \
             redone on a new connection in the same snapshot",
            item.label,
            part.consumed()
        );
        env.ctx.progress().warning(env.ctx.store(), message.clone());
        warnings.push(message);
        locked.clear();
        *client = snapshot::worker(&env.config, &env.snapshot_id, env.lock_timeout)
            .await
            .map_err(|e| PgError::RedoFailed {
                part: item.label.clone(),
                lost: why.clone(),
                reason: format!("re-attaching to the backup's snapshot: {e}"),
            })?;
        lost = Some(why);
    }
}

/// One attempt at a part: the worker's lock (unless it has it), then the COPY. `Ok(false)`
/// when the lock is refused because another session waits for an exclusive one.
async fn attempt(
    env: &WorkerEnv,
    client: &tokio_postgres::Client,
    locked: &mut HashSet<String>,
    item: &WorkItem,
    part: &mut Part,
) -> Result<bool, PgError> {
    if !locked.contains(&item.qualified_name) {
        if !snapshot::try_lock(client, &item.qualified_name, &item.label).await? {
            return Ok(false);
        }
        locked.insert(item.qualified_name.clone());
    }
    copy_out::copy_attempt(client, &env.ctx, &env.options, item, part).await?;
    Ok(true)
}
